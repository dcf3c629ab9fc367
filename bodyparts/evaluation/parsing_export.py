"""A model's parsing predictions in the file formats the reference evaluation code reads.

The files (``<img>`` = the image file's name without extension, e.g. CIHP ``0000001``):

* ``parsing_predict/<img>.png``: uint8 image-level part labels, the persons with score >=
  ``paste_score_threshold`` pasted in ascending score order (Parsing R-CNN ``parsing_png``; its
  ``parsing_iou`` scores these against the dataset's image-level maps, e.g. CIHP ``Category_ids``).
  For a semantic part model: the arg-max of ``sem_seg``.
* ``parsing_instance/<img>.png``: the same persons' instance ids 1..K, in paste order (the
  highest score has the highest id), 0 elsewhere (Parsing R-CNN ``parsing_instance``). uint8, or
  uint16 when K > 255.
* ``parsing_person/<img>_<k>.png`` and ``parsing_person/<img>.txt``: every person with score >=
  ``ap_score_threshold`` as a full-image uint8 label map, k = 1, 2, ... by descending score; line k
  of the text file is ``x1 y1 x2 y2 score`` (the ``DETS`` entry of MHP-v2's ``eval_mhp.py``, whose
  ``MASKS`` entry is ``<img>_<k>.png``; Parsing R-CNN's ``eval_parsing_ap`` takes the same
  per-person maps and scores).
* ``instance_part/<img>.png`` and ``instance_part/<img>.txt``: PGN's instance-part prediction
  format (``evaluation/test_inst_part_ap.py`` reads ``<img>.png`` and, on line i, ``class_id score``
  of region id i). Regions are the part regions of the persons with score >= ``ap_score_threshold``
  pasted in ascending score order, ids 1..Q by class, then person; each line is ``class_id score k``
  (the third column, ignored by the reference reader, is the person's k of ``parsing_person``).
  uint8, or uint16 when Q > 255 (PGN's reader, ``np.array(Image.open(...))``, reads both).
* ``results.txt``: MHP-v2's submission format (``eval_submission.py``): per image, one line
  ``<img> <id> <score> <id> <score> ...`` with the ``parsing_instance`` ids (``global_tag``) and
  scores; ``parsing_predict`` is its ``global_seg``. That script scores each listed person by its
  *visible* pixels in the pasted map (persons with score >= ``paste_score_threshold`` only): its
  AP^p and PCP are the evaluator's with ``BODYPARTS.PARSING_EVAL.AP_PERSON_MAPS "pasted"``, not
  with the default "full" (Parsing R-CNN's protocol, which ``parsing_person`` serves).
* ``export_info.json``: thresholds, taxonomy labels, number of images.

Every image of the split gets its files, also without any detection (empty maps and text files):
the reference scripts list the prediction folders, so a missing image would drop its ground truth.
Each file is written under a temporary name and renamed, so an interrupted export leaves only
complete files.
"""

import json
import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import cv2
import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.evaluation.evaluator import inference_context
from detectron2.utils import comm
from tqdm import tqdm

from ..taxonomy import PartTaxonomy, get_part_taxonomy
from .parsing_evaluation import gather_on_main
from .parsing_metrics import image_level_map, instance_level_map, part_region_ious, paste_order
from .person_outputs import person_class_id, person_predictions

__all__ = ["ParsingPredictionWriter", "export_parsing_predictions", "EXPORT_FORMATS", "image_stem"]

logger = logging.getLogger(__name__)

# what can be written: image-level maps, instance ids, per-person maps, PGN instance parts
EXPORT_FORMATS = ("parsing_predict", "parsing_instance", "parsing_person", "instance_part")


def image_stem(file_name: str) -> str:
    """``<img>`` of the exported files: the file name without folder and extension."""
    return os.path.splitext(os.path.basename(file_name))[0]


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _write_png(path: str, array: np.ndarray) -> None:
    """Single-channel PNG of uint8 or uint16 ``array`` (H, W), written atomically."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise OSError(f"{path}: could not encode a PNG of shape {array.shape}, dtype {array.dtype}")
    _write_atomic(path, buf.tobytes())


def _write_lines(path: str, lines: Sequence[str]) -> None:
    _write_atomic(path, "".join(line + "\n" for line in lines).encode("utf-8"))


def _ids_dtype(max_id: int):
    return np.uint8 if max_id <= 255 else np.uint16


def _num(value: float) -> str:
    """Shortest text that reads back as the same float (Python's repr)."""
    return repr(float(value))


class ParsingPredictionWriter(DatasetEvaluator):
    """A ``DatasetEvaluator`` that writes each image's predictions in the reference formats (module
    docstring) to ``output_dir`` and returns no metric. Person maps and scores are taken exactly as
    :class:`~.parsing_evaluation.BodyPartParsingEvaluator` takes them, with the same thresholds,
    so the reference scripts on these files give the evaluator's numbers: Parsing R-CNN's and
    MHP-v2's ``eval_mhp.py`` on ``parsing_predict`` / ``parsing_person`` and PGN's on
    ``instance_part`` those of ``AP_PERSON_MAPS "full"``, MHP-v2's ``eval_submission.py`` on
    ``results.txt`` those of ``"pasted"`` (module docstring)."""

    @configurable
    def __init__(
        self,
        dataset_name: str,
        output_dir: str,
        part_taxonomy: Union[str, PartTaxonomy],
        *,
        paste_score_threshold: float = 0.5,
        ap_score_threshold: float = 0.0,
        person_class: Optional[int] = None,
        formats: Sequence[str] = EXPORT_FORMATS,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: the registered split the inputs come from (for its person class).
            output_dir: folder of the files (created).
            part_taxonomy: the model's part taxonomy (its labels are the exported labels).
            paste_score_threshold: persons pasted into ``parsing_predict`` / ``parsing_instance``
                have score >= it.
            ap_score_threshold: persons in ``parsing_person`` / ``instance_part`` have score >= it.
            person_class: contiguous person class id; default the metadata's
                ``thing_classes.index("person")``.
            formats: subset of :data:`EXPORT_FORMATS` to write.
            distributed: gather ``results.txt`` lines and image names over processes.
        """
        unknown = sorted(set(formats) - set(EXPORT_FORMATS))
        if unknown:
            raise ValueError(f"unknown export formats {unknown}; known: {list(EXPORT_FORMATS)}")
        if not isinstance(part_taxonomy, PartTaxonomy):
            part_taxonomy = get_part_taxonomy(part_taxonomy)
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._taxonomy = part_taxonomy
        self._paste_score_threshold = float(paste_score_threshold)
        self._ap_score_threshold = float(ap_score_threshold)
        if person_class is None:
            person_class = person_class_id(MetadataCatalog.get(dataset_name))
        self._person_class = person_class
        self._formats = tuple(f for f in EXPORT_FORMATS if f in formats)
        self._distributed = distributed
        for folder in self._formats:
            os.makedirs(os.path.join(output_dir, folder), exist_ok=True)
        self.reset()

    @classmethod
    def from_config(cls, cfg: CfgNode, dataset_name: str, output_dir: str, formats=EXPORT_FORMATS):
        node = cfg.BODYPARTS.PARSING_EVAL
        return {
            "dataset_name": dataset_name,
            "output_dir": output_dir,
            "part_taxonomy": cfg.BODYPARTS.PART_TAXONOMY,
            "paste_score_threshold": node.PASTE_SCORE_THRESH,
            "ap_score_threshold": node.AP_SCORE_THRESH,
            "formats": formats,
        }

    def reset(self) -> None:
        self._images: List[Dict[str, Any]] = []  # per image: stem, image_id, results.txt pairs

    def _path(self, folder: str, name: str) -> str:
        return os.path.join(self._output_dir, folder, name)

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Write the files of each image.

        Args:
            inputs: dataset dicts with ``file_name``, ``image_id``, ``height``, ``width``.
            outputs: model outputs with ``instances`` (original image size) or ``sem_seg``.
        """
        for inp, out in zip(inputs, outputs):
            if "file_name" not in inp:
                raise KeyError(f"input of image {inp.get('image_id')!r} has no 'file_name'")
            stem = image_stem(inp["file_name"])
            source = f"dataset {self._dataset_name!r}, image {inp.get('image_id')!r}"
            height, width = int(inp["height"]), int(inp["width"])
            pairs: List[str] = []
            if "instances" in out:
                instances = out["instances"].to(torch.device("cpu"))
                maps, scores, boxes = person_predictions(
                    instances, height, width, self._person_class, source
                )
                pairs = self._write_instances(stem, maps, scores, boxes, (height, width))
            elif "sem_seg" in out:
                labels = out["sem_seg"].argmax(dim=0).to("cpu").numpy().astype(np.uint8)
                if labels.shape != (height, width):
                    raise ValueError(
                        f"{source}: sem_seg of size {labels.shape}, the image is {(height, width)}"
                    )
                if "parsing_predict" in self._formats:
                    _write_png(self._path("parsing_predict", stem + ".png"), labels)
            else:
                raise KeyError(f"{source}: the model output has neither 'instances' nor 'sem_seg'")
            self._images.append({"stem": stem, "image_id": inp.get("image_id"), "pairs": pairs})

    def _write_instances(
        self, stem: str, maps: np.ndarray, scores: np.ndarray, boxes: np.ndarray, size
    ) -> List[str]:
        """Write one image's instance files; returns the ``results.txt`` id / score pairs."""
        pairs = []
        if {"parsing_predict", "parsing_instance"} & set(self._formats):
            order = paste_order(scores, self._paste_score_threshold)
            labels = image_level_map(maps, scores, self._paste_score_threshold, size)
            ids = np.zeros(size, dtype=_ids_dtype(order.size))
            for rank, i in enumerate(order, start=1):
                ids[maps[i] > 0] = rank
                pairs += [str(rank), _num(scores[i])]
            if "parsing_predict" in self._formats:
                _write_png(self._path("parsing_predict", stem + ".png"), labels)
            if "parsing_instance" in self._formats:
                _write_png(self._path("parsing_instance", stem + ".png"), ids)
        kept = np.nonzero(scores >= self._ap_score_threshold)[0]
        kept = kept[np.argsort(-scores[kept], kind="stable")]  # k = 1, 2, ... by descending score
        if "parsing_person" in self._formats:
            lines = []
            for k, i in enumerate(kept, start=1):
                _write_png(self._path("parsing_person", f"{stem}_{k}.png"), maps[i])
                lines.append(" ".join(_num(v) for v in (*boxes[i], scores[i])))
            _write_lines(self._path("parsing_person", stem + ".txt"), lines)
        if "instance_part" in self._formats:
            labels, owner = instance_level_map(maps, scores, self._ap_score_threshold, size)
            regions = part_region_ious(
                labels, owner, np.zeros((0, *size), np.uint8), self._taxonomy.num_classes
            )
            person_k = np.zeros(len(scores), dtype=np.int64)
            person_k[kept] = np.arange(1, kept.size + 1)
            num_regions = regions["cls"].size
            region_ids = np.zeros(size, dtype=_ids_dtype(num_regions))
            fg = labels > 0
            if num_regions:  # regions are sorted by (class, person): find each pixel's by key
                span = int(owner[fg].max()) + 1
                region_keys = regions["cls"] * span + regions["person"]
                pixel_keys = labels[fg].astype(np.int64) * span + owner[fg]
                region_ids[fg] = np.searchsorted(region_keys, pixel_keys) + 1
            lines = [
                f"{c} {_num(scores[p])} {person_k[p]}"
                for c, p in zip(regions["cls"], regions["person"])
            ]
            _write_png(self._path("instance_part", stem + ".png"), region_ids)
            _write_lines(self._path("instance_part", stem + ".txt"), lines)
        return pairs

    def evaluate(self) -> "OrderedDict[str, Any]":
        """Check that image names are unique, write ``results.txt`` and ``export_info.json`` (main
        process). Returns an empty dict (no metric)."""
        images = gather_on_main(self._images, self._distributed)
        if images is None:
            return OrderedDict()
        seen: Dict[str, Any] = {}
        for image in images:
            stem = image["stem"]
            if stem in seen and seen[stem] != image["image_id"]:
                raise ValueError(
                    f"dataset {self._dataset_name!r}: images {seen[stem]!r} and "
                    f"{image['image_id']!r} have the same file name {stem!r}; "
                    "the exported files would overwrite each other"
                )
            seen[stem] = image["image_id"]
        if {"parsing_predict", "parsing_instance"} & set(self._formats):
            lines = [
                " ".join([im["stem"], *im["pairs"]])
                for im in sorted(images, key=lambda im: im["stem"])
            ]
            _write_lines(os.path.join(self._output_dir, "results.txt"), lines)
        info = {
            "dataset": self._dataset_name,
            "images": len(seen),
            "part_taxonomy": self._taxonomy.name,
            "labels": list(self._taxonomy.label_names),
            "paste_score_threshold": self._paste_score_threshold,
            "ap_score_threshold": self._ap_score_threshold,
            "formats": list(self._formats),
        }
        _write_atomic(
            os.path.join(self._output_dir, "export_info.json"), json.dumps(info, indent=2).encode()
        )
        logger.info(f"Wrote parsing predictions of {len(seen)} images to {self._output_dir}")
        return OrderedDict()


def export_parsing_predictions(
    model: torch.nn.Module,
    data_loader,
    writer: ParsingPredictionWriter,
    evaluator: Optional[DatasetEvaluator] = None,
    *,
    progress: bool = True,
) -> Mapping[str, Any]:
    """Run ``model`` on every batch of ``data_loader`` (eval mode, no gradients), write the
    predictions with ``writer`` and, if given, evaluate them with ``evaluator`` in the same pass.

    Returns:
        the evaluator's results (``{}`` without one, and on processes other than the main one).
    """
    writer.reset()
    if evaluator is not None:
        evaluator.reset()
    total = len(data_loader) if hasattr(data_loader, "__len__") else None
    show = progress and comm.is_main_process()
    with inference_context(model), torch.no_grad():
        for inputs in tqdm(data_loader, total=total, desc="export", unit="image", disable=not show):
            outputs = model(inputs)
            writer.process(inputs, outputs)
            if evaluator is not None:
                evaluator.process(inputs, outputs)
    writer.evaluate()
    results = evaluator.evaluate() if evaluator is not None else None
    return results or {}
