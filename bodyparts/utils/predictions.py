"""One image's model outputs -> the JSON record, the label-map images and the drawing that
``tools/demo.py`` writes and ``tools/serve.py`` answers with (one implementation for both).

Shapes: H x W = image size in pixels, R = persons kept (score >= threshold), K = keypoints per
person. Images are BGR uint8 (H, W, 3), as OpenCV reads them and ``DefaultPredictor`` takes them.

The JSON record of an instance model (per-person part model, part-aware panoptic model)::

    {"file_name": str or None, "height": H, "width": W, "score_threshold": float,
     "part_taxonomy": str, "part_labels": {part name: label},   # labels of the "_parts" map
     "keypoint_names": [str] * K,
     "persons": [  # score >= threshold, best first
        {"box_xyxy": [x0, y0, x1, y1], "score": float, "category": int,
         "keypoints": [[x, y, score]] * K or None,
         "silhouette": COCO RLE or None, "parts": {part name: COCO RLE} or None}],
     "segments_info": [...]}   # panoptic models only: id, isthing, category_id, score, area

The image-level part segmenter's record holds ``file_name``, ``height``, ``width``,
``part_taxonomy``, ``part_labels`` and ``part_pixels`` {part name: pixels}.

Cost: per person, the work is in its box (part labels pasted there once,
:func:`bodyparts.utils.visualizer.person_part_crops`; its masks and RLEs computed from crops), plus
one image-level part map for the drawing and the ``_parts`` label map; never persons x image
pixels.
"""

import os
import sys
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pycocotools.mask as mask_util
import torch
from bodyparts_runtime.tracking import PersonTracker
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.structures import Instances

from ..engine import setup_cfg
from ..evaluation.parsing_metrics import paste_order
from ..taxonomy import get_part_taxonomy
from .visualizer import (
    PartCrop,
    draw_part_map,
    draw_part_panoptic,
    draw_predictions,
    mask_crop,
    metadata_for,
    paste_part_crops,
    person_part_crops,
    select_instances,
)

__all__ = [
    "load_inference_cfg",
    "FormattedPrediction",
    "PredictionFormatter",
    "persons_above",
    "predictions_json",
    "semantic_json",
]


def load_inference_cfg(config_file: str, opts: Sequence[str] = ()) -> CfgNode:
    """The frozen config of a model to run on images (``tools/demo.py``, ``tools/serve.py``).

    ``MODEL.WEIGHTS ""`` runs an untrained model: a warning on stderr (its random weights are
    seeded where the model is built, :class:`bodyparts.utils.predictor.Predictor`; the global
    random state is not touched here).

    Raises:
        ValueError naming the problem: a missing config file, a bad key or value, a missing
        weights file, a CUDA device without a GPU.
    """
    if not os.path.isfile(config_file):
        raise ValueError(f"config file {config_file} does not exist")
    try:
        cfg = setup_cfg(Namespace(config_file=config_file, opts=list(opts)), for_launch_only=True)
    except (KeyError, ValueError) as e:
        raise ValueError(str(e.args[0] if e.args else e)) from None
    weights = cfg.MODEL.WEIGHTS
    if not weights:
        print(
            "WARNING: MODEL.WEIGHTS is empty: running an UNTRAINED model with random weights; "
            "its predictions are meaningless (pass MODEL.WEIGHTS path/to/model_final.pth)",
            file=sys.stderr,
        )
    elif "://" not in weights and not os.path.isfile(weights):
        raise ValueError(f"MODEL.WEIGHTS file {weights} does not exist")
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"MODEL.DEVICE {cfg.MODEL.DEVICE}: no GPU here; pass MODEL.DEVICE cpu")
    return cfg


def _runs_by_value(crop: np.ndarray, y0: int, x0: int, height: int) -> Dict[int, Tuple]:
    """The runs of each non-zero value of ``crop`` (integer (h, w), placed at rows ``y0..``,
    columns ``x0..`` of an image of ``height`` rows) in the image's column-major (COCO RLE) order:
    {value: (starts, ends)}, int64 positions in the flattened image, ascending, adjacent runs
    joined. One pass over the crop for all values."""
    h, w = crop.shape
    flat = np.ascontiguousarray(crop.T).reshape(-1)  # column-major
    if flat.size == 0:
        return {}
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    columns = np.arange(h, flat.size, h)  # a run ends at the bottom of a crop column
    starts = np.concatenate([[0], np.union1d(change, columns)]).astype(np.int64)
    lengths = np.diff(np.append(starts, flat.size))
    values = flat[starts]
    keep = values != 0
    starts, lengths, values = starts[keep], lengths[keep], values[keep]
    if values.size == 0:
        return {}
    starts = (x0 + starts // h) * height + y0 + starts % h  # positions in the image
    ends = starts + lengths
    order = np.argsort(values, kind="stable")
    values, starts, ends = values[order], starts[order], ends[order]
    bounds = np.flatnonzero(np.diff(values)) + 1
    runs = {}
    for v, s, e in zip(np.split(values, bounds), np.split(starts, bounds), np.split(ends, bounds)):
        if s.size > 1:  # a run that goes on at the top of the next column is one run
            joined = s[1:] == e[:-1]
            s, e = s[np.concatenate([[True], ~joined])], e[np.concatenate([~joined, [True]])]
        runs[int(v[0])] = (s, e)
    return runs


def _rle_of_runs(starts: np.ndarray, ends: np.ndarray, height: int, width: int) -> Dict:
    """COCO compressed RLE (JSON-serialisable ``counts``) of the (H, W) = (``height``,
    ``width``) mask that is 1 on the column-major runs [starts, ends): the same as
    ``bodyparts.data.contract.encode_mask`` of that mask (runs alternate, zeros first)."""
    bounds = np.empty(2 * starts.size + 2, dtype=np.int64)
    bounds[0], bounds[-1] = 0, height * width
    bounds[1:-1:2], bounds[2:-1:2] = starts, ends
    counts = np.diff(bounds)
    if counts.size > 1 and counts[-1] == 0:  # the mask ends with ones: no final zero run
        counts = counts[:-1]
    rle = mask_util.frPyObjects(
        {"counts": counts.astype(np.uint32), "size": [height, width]}, height, width
    )
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _rle(crop: np.ndarray, y0: int, x0: int, height: int, width: int) -> Dict:
    """COCO RLE of the (H, W) mask that is the bool ``crop`` at (``y0``, ``x0``), 0 elsewhere."""
    runs = _runs_by_value(crop.view(np.uint8), y0, x0, height).get(1)
    empty = np.zeros(0, dtype=np.int64)
    return _rle_of_runs(*(runs or (empty, empty)), height, width)


def persons_above(
    instances: Instances, threshold: float
) -> Tuple[Instances, Optional[List[Optional[PartCrop]]]]:
    """(instances with ``scores >= threshold`` on CPU, their part labels as crops
    (:func:`bodyparts.utils.visualizer.person_part_crops`: per person a ``PartCrop`` or None) or
    None without a part branch). The kept persons are a slice (no copy) when they come first."""
    instances = instances.to("cpu")
    instances = select_instances(instances, instances.scores >= threshold)
    return instances, person_part_crops(instances)


def predictions_json(
    instances: Instances,
    part_maps: Union[None, np.ndarray, Sequence[Optional[PartCrop]]],
    file_name: Optional[str],
    meta: Any,
    threshold: float,
) -> Dict[str, Any]:
    """The JSON record of one image's persons (module docstring).

    Args:
        instances: the persons kept (:func:`persons_above`), image size (H, W), on CPU.
        part_maps: their part labels: per person a ``PartCrop`` or None (:func:`persons_above`),
            or uint8 (R, H, W) maps; None without a part branch.
        file_name: recorded as given (the demo passes an absolute path, the server the upload's
            name or None).
        meta: Metadata with ``part_names``, ``part_taxonomy``, ``keypoint_names``.
        threshold: the score threshold the persons passed.
    """
    height, width = (int(v) for v in instances.image_size)
    part_names = list(meta.get("part_names") or [])
    if isinstance(part_maps, (np.ndarray, torch.Tensor)):
        part_maps = person_part_crops(Instances((height, width), pred_part_labels=part_maps))
    image_masks = instances.has("pred_masks") and tuple(instances.pred_masks.shape[1:]) == (
        height,
        width,
    )
    persons = []
    for i in range(len(instances)):
        inst = instances[i]
        person = {
            "box_xyxy": [round(float(v), 2) for v in inst.pred_boxes.tensor[0].tolist()],
            "score": float(inst.scores[0]),
            "category": int(inst.pred_classes[0]) if inst.has("pred_classes") else 0,
            "keypoints": None,
            "silhouette": None,
            "parts": None,
        }
        if inst.has("pred_keypoints"):
            kps = inst.pred_keypoints[0].tolist()
            person["keypoints"] = [[round(float(v), 2) for v in kp] for kp in kps]
        if image_masks:
            crop, y0, x0 = mask_crop(inst.pred_masks[0], inst.pred_boxes.tensor[0].tolist())
            person["silhouette"] = _rle(crop, y0, x0, height, width)
        if part_maps is not None:
            crop = part_maps[i]
            person["parts"] = {}
            if crop is not None:
                runs = _runs_by_value(crop.labels, crop.y0, crop.x0, height)
                for k in sorted(runs):
                    if k <= len(part_names):
                        rle = _rle_of_runs(*runs[k], height, width)
                        person["parts"][part_names[k - 1]] = rle
        persons.append(person)
    return {
        "file_name": file_name,
        "height": int(height),
        "width": int(width),
        "score_threshold": threshold,
        "part_taxonomy": meta.get("part_taxonomy"),
        "part_labels": {name: k + 1 for k, name in enumerate(part_names)},
        "keypoint_names": list(meta.get("keypoint_names") or []),
        "persons": persons,
    }


def semantic_json(labels: np.ndarray, file_name: Optional[str], meta: Any) -> Dict[str, Any]:
    """The JSON record of an image-level part map uint8 (H, W): size, labels, pixels per part."""
    part_names = list(meta.get("part_names") or [])
    counts = np.bincount(labels.reshape(-1), minlength=len(part_names) + 1)
    return {
        "file_name": file_name,
        "height": int(labels.shape[0]),
        "width": int(labels.shape[1]),
        "part_taxonomy": meta.get("part_taxonomy"),
        "part_labels": {name: k + 1 for k, name in enumerate(part_names)},
        "part_pixels": {
            name: int(counts[k + 1]) for k, name in enumerate(part_names) if counts[k + 1]
        },
    }


@dataclass
class FormattedPrediction:
    """What one image's model outputs become.

    Attributes:
        record: the JSON record (module docstring), None when not asked for.
        label_maps: {file suffix: uint8 image}: ``_parts`` (H, W) image-level part map; panoptic
            models also ``_panoptic`` (H, W, 3) segment ids as COCO-panoptic RGB and
            ``_part_panoptic`` (H, W, 3) scene class, instance id, part id. Empty when not asked
            for.
        vis_bgr: uint8 BGR drawing (H, W, 3), (H, W + L, 3) with the legend; None when not asked
            for.
        num_persons: persons kept (score >= threshold); None for the image-level segmenter.
    """

    record: Optional[Dict[str, Any]] = None
    label_maps: Dict[str, np.ndarray] = field(default_factory=dict)
    vis_bgr: Optional[np.ndarray] = None
    num_persons: Optional[int] = None


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, :, ::-1])


class PredictionFormatter:
    """Turns the outputs of a bodyparts model (``DefaultPredictor(cfg)(image_bgr)``) into the
    record, label maps and drawing of :class:`FormattedPrediction`, by model kind: ``sem_seg`` only
    (image-level part segmenter), ``instances`` (per-person part model), ``instances`` +
    ``panoptic_seg`` (+ ``part_panoptic``) (panoptic models)."""

    def __init__(
        self,
        metadata: Any,
        *,
        score_threshold: float = 0.5,
        panoptic_metadata: Any = None,
    ):
        """
        Args:
            metadata: drawing and naming tables of the model's taxonomies (:func:`metadata_for`).
            score_threshold: persons with a lower score are left out of everything.
            panoptic_metadata: ``thing_classes`` / ``stuff_classes`` of a panoptic model (its
                training set's Metadata); default ``metadata``.
        """
        self.metadata = metadata
        self.score_threshold = float(score_threshold)
        self.panoptic_metadata = metadata if panoptic_metadata is None else panoptic_metadata
        self.part_taxonomy = get_part_taxonomy(metadata.get("part_taxonomy"))

    @classmethod
    def from_config(cls, cfg: CfgNode, score_threshold: float = 0.5) -> "PredictionFormatter":
        """The formatter of the model ``cfg`` builds: its taxonomies (keypoints only with
        ``MODEL.KEYPOINT_ON``) and, for panoptic models, the class names of ``DATASETS.TRAIN[0]``.
        """
        keypoint_taxonomy = cfg.BODYPARTS.KEYPOINT_TAXONOMY if cfg.MODEL.KEYPOINT_ON else None
        meta = metadata_for(cfg.BODYPARTS.PART_TAXONOMY, keypoint_taxonomy)
        panoptic = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]) if cfg.DATASETS.TRAIN else None
        return cls(meta, score_threshold=score_threshold, panoptic_metadata=panoptic)

    def legend(self) -> List[Dict[str, Any]]:
        """The part labels: [{"label": k, "name": str, "color": [r, g, b]}] for k = 1..C-1."""
        palette = self.part_taxonomy.palette()
        names = self.part_taxonomy.label_names
        return [
            {"label": k, "name": names[k], "color": [int(c) for c in palette[k]]}
            for k in range(1, len(names))
        ]

    def __call__(
        self,
        outputs: Dict[str, Any],
        image_bgr: np.ndarray,
        file_name: Optional[str] = None,
        *,
        record: bool = True,
        label_maps: bool = True,
        draw: bool = True,
        legend: bool = True,
        tracker: Optional[PersonTracker] = None,
        timestamp: Optional[float] = None,
    ) -> FormattedPrediction:
        """Format one image's outputs.

        Args:
            outputs: the model's outputs for the image (``DefaultPredictor`` output).
            image_bgr: uint8 (H, W, 3) the image the model was given.
            file_name: recorded in the JSON as given.
            record, label_maps, draw: what to compute (:class:`FormattedPrediction`).
            legend: draw the legend of the parts present on the right of the drawing.
            tracker: this stream's :class:`bodyparts_runtime.tracking.PersonTracker` (frames of a
                video or camera, in order): the persons kept get ids (``"id"`` in the record, an int
                or None before the tracker confirms them) and are drawn in their id's colour.
            timestamp: the frame's time in seconds for ``tracker`` (None: evenly spaced frames).
        """
        meta, threshold = self.metadata, self.score_threshold
        image_rgb = _bgr(image_bgr)
        result = FormattedPrediction()
        if "instances" not in outputs:  # image-level part segmenter
            labels = outputs["sem_seg"].argmax(dim=0).to("cpu").numpy().astype(np.uint8)
            if record:
                result.record = semantic_json(labels, file_name, meta)
            if label_maps:
                result.label_maps["_parts"] = labels
            if draw:
                result.vis_bgr = _bgr(draw_part_map(image_rgb, labels, meta, legend=legend))
            return result
        instances, crops = persons_above(outputs["instances"], threshold)
        result.num_persons = len(instances)
        track_ids = None
        if tracker is not None:
            boxes = instances.pred_boxes.tensor.numpy() if len(instances) else np.zeros((0, 4))
            scores = instances.scores.numpy() if len(instances) else np.zeros(0)
            track_ids = tracker.update(boxes, scores, timestamp)
        if record:
            result.record = predictions_json(instances, crops, file_name, meta, threshold)
            if track_ids is not None:
                for person, track_id in zip(result.record["persons"], track_ids.tolist()):
                    person["id"] = track_id if track_id > 0 else None
        per_person = "panoptic_seg" not in outputs  # per-person part model
        part_map = None
        if crops is not None and (label_maps or (draw and per_person)):
            # the image-level map (bodyparts.utils.visualizer.image_level_part_map), pasted once
            scores = instances.scores.numpy() if len(instances) else np.zeros(0)
            part_map = paste_part_crops(crops, paste_order(scores, threshold), instances.image_size)
            if label_maps:
                result.label_maps["_parts"] = part_map
        if per_person:
            if draw:
                vis = draw_predictions(
                    image_rgb,
                    instances,
                    meta,
                    threshold,
                    legend=legend,
                    part_label_map=part_map,
                    track_ids=track_ids,
                )
                result.vis_bgr = _bgr(vis)
            return result
        seg, segments = outputs["panoptic_seg"]  # (part-aware) panoptic model
        seg = seg.to("cpu").numpy().astype(np.int64)
        if record:
            keys = ("id", "isthing", "category_id", "score", "area")
            result.record["segments_info"] = [
                {k: (v.item() if hasattr(v, "item") else v) for k, v in s.items() if k in keys}
                for s in segments
            ]
        part_panoptic = outputs.get("part_panoptic")
        if part_panoptic is None:  # plain PanopticFPN: no part labels
            part_panoptic = np.full((*seg.shape, 3), 255, dtype=np.uint8)
        else:
            part_panoptic = np.asarray(part_panoptic.to("cpu"))
            if label_maps:
                result.label_maps["_part_panoptic"] = part_panoptic
        if label_maps:
            ids = [seg % 256, seg // 256 % 256, seg // 65536]
            result.label_maps["_panoptic"] = np.stack(ids, axis=-1).astype(np.uint8)
        if draw:
            vis = draw_part_panoptic(
                image_rgb,
                seg,
                segments,
                part_panoptic,
                self.panoptic_metadata,
                self.part_taxonomy,
                legend=legend,
            )
            result.vis_bgr = _bgr(vis)
        return result
