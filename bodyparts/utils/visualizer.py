"""Visualization of body-part predictions and ground truth.

Shapes: H x W = image size in pixels, C = number of part labels including background (label 0),
R = persons (detections or annotations), K = keypoints per person.

Pure numpy helpers (:func:`part_overlay`, :func:`paste_part_maps`, :func:`part_legend`) build the
raster layers. Per-person part maps are kept as crops (:class:`PartCrop`, :func:`person_part_crops`:
each person's labels inside its box), so that formatting and drawing cost the boxes' areas plus one
image-level map, not persons x image pixels. :func:`draw_predictions` and
:func:`draw_ground_truth` draw boxes, scores, silhouette contours and keypoints on top with
Detectron2's :class:`Visualizer` primitives, so they look like Detectron2's own visualizations.
Label 255 (``PART_IGNORE``) means "no part annotation" and is never coloured.
"""

import math
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import pycocotools.mask as mask_util
import torch
from bodyparts_runtime.tracking import id_color
from detectron2.data.catalog import Metadata
from detectron2.data.detection_utils import read_image
from detectron2.structures import BoxMode, Instances
from detectron2.utils.colormap import colormap
from detectron2.utils.visualizer import GenericMask, Visualizer

from ..data.contract import PART_IGNORE, decode_rle, part_label_map
from ..data.datasets.generic import bodyparts_metadata
from ..evaluation.parsing_metrics import (
    PartCrop,
    paste_crops_with_owner,
    paste_order,
    paste_part_maps,
)
from ..evaluation.person_outputs import person_part_crops, person_part_maps
from ..taxonomy import KeypointTaxonomy, PartTaxonomy, get_keypoint_taxonomy, get_part_taxonomy

__all__ = [
    "part_overlay",
    "paste_part_maps",
    "image_level_part_map",
    "person_part_maps",
    "PartCrop",
    "person_part_crops",
    "paste_part_crops",
    "mask_crop",
    "select_instances",
    "part_legend",
    "add_part_legend",
    "draw_predictions",
    "draw_ground_truth",
    "draw_part_map",
    "metadata_for",
    "draw_part_panoptic",
]

MetadataLike = Union[Metadata, Mapping[str, Any], PartTaxonomy]

_LEGEND_ROW_PX = 14  # height of one legend entry
_LEGEND_FONT_SCALE = 0.4  # cv2 Hershey font scale of legend text (about 9 px high)
_LEGEND_BG = (32, 32, 32)  # RGB background of the legend strip
_LEGEND_FG = (235, 235, 235)  # RGB text colour
# Keypoints with a score (or COCO visibility) above it are drawn, as in Detectron2.
KEYPOINT_THRESHOLD = 0.05


# ----------------------------------------------------------------------------------------------
# pure numpy layers


def part_overlay(
    image_rgb: np.ndarray, label_map: np.ndarray, palette: np.ndarray, alpha: float = 0.6
) -> np.ndarray:
    """Blend part colours into an image.

    Args:
        image_rgb: uint8 (H, W, 3) RGB image.
        label_map: uint8 (H, W) part labels; 0 (background) and 255 (ignore) keep the image.
        palette: uint8 (C, 3) RGB colour of each label (row 0, background, is not used).
        alpha: opacity of the part colours, in [0, 1].
    Returns:
        uint8 (H, W, 3): ``floor((1 - alpha) * image + alpha * palette[label] + 0.5)`` where
        ``1 <= label < C``, the image unchanged elsewhere.

    Raises:
        ValueError: on mismatched shapes, or a label >= C other than 255.
    """
    image_rgb = np.asarray(image_rgb)
    label_map = np.asarray(label_map)
    palette = np.asarray(palette)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f"image_rgb must be (H, W, 3), got {image_rgb.shape}")
    if label_map.shape != image_rgb.shape[:2]:
        raise ValueError(
            f"label_map {label_map.shape} does not match the image {image_rgb.shape[:2]}"
        )
    if palette.ndim != 2 or palette.shape[1] != 3:
        raise ValueError(f"palette must be (C, 3), got {palette.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    num_classes = palette.shape[0]
    unknown = np.setdiff1d(_labels_present(label_map), [*range(num_classes), PART_IGNORE])
    if unknown.size:
        raise ValueError(
            f"label_map has labels {unknown.tolist()} outside the palette's 0..{num_classes - 1}"
        )
    painted = (label_map > 0) & (label_map < num_classes) & (label_map != PART_IGNORE)
    out = image_rgb.astype(np.uint8, copy=True)
    colors = palette.astype(np.float64)[label_map[painted]]
    blended = (1.0 - alpha) * image_rgb[painted].astype(np.float64) + alpha * colors
    out[painted] = np.floor(blended + 0.5).clip(0, 255).astype(np.uint8)
    return out


def _labels_present(label_map: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer map, as ``np.unique`` (a histogram for uint8: one
    pass, no sort)."""
    label_map = np.asarray(label_map)
    if label_map.dtype == np.uint8:
        return np.flatnonzero(np.bincount(label_map.reshape(-1), minlength=256)).astype(np.uint8)
    return np.unique(label_map)


def paste_part_crops(
    crops: Sequence[Optional[PartCrop]], order: Optional[Sequence[int]], image_size
) -> np.ndarray:
    """:func:`paste_part_maps` of per-person crops: uint8 (H, W) labels, persons pasted in
    ``order`` (default all, in index order), only labels 1..254 overwriting
    (:func:`bodyparts.evaluation.parsing_metrics.paste_crops_with_owner`)."""
    return paste_crops_with_owner(crops, order, image_size)[0]


def mask_crop(mask, box: Sequence[float]) -> Tuple[np.ndarray, int, int]:
    """A person's image-space silhouette (H, W) (bool, or float thresholded at 0.5) as (bool crop
    (h, w), y0, x0): its box grown by 1 px (Detectron2 pastes masks inside the box), or the whole
    image when some pixel of the mask lies outside that rectangle (checked by counting)."""
    mask = _numpy(mask)
    height, width = mask.shape
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        x0, y0, x1, y1 = 0.0, 0.0, float(width), float(height)
    ix0, iy0 = max(math.floor(x0) - 1, 0), max(math.floor(y0) - 1, 0)
    ix1, iy1 = min(math.ceil(x1) + 1, width), min(math.ceil(y1) + 1, height)
    ix1, iy1 = max(ix1, ix0), max(iy1, iy0)
    crop = mask[iy0:iy1, ix0:ix1]
    if mask.dtype == bool:
        total = np.count_nonzero(mask)
    else:  # rare (Detectron2's image-space masks are bool): thresholded in full once
        mask = mask >= 0.5
        crop, total = mask[iy0:iy1, ix0:ix1], np.count_nonzero(mask)
    if np.count_nonzero(crop) != total:
        return mask, 0, 0
    return crop, iy0, ix0


def select_instances(instances: Instances, keep: torch.Tensor) -> Instances:
    """``instances[keep]`` for a bool (R,) ``keep``; a slice (views, no copy of the per-person
    image-size fields) when the kept persons are the first ones, as after score sorting."""
    index = torch.nonzero(keep).flatten()
    n = int(index.numel())
    if n == len(instances) or bool((index == torch.arange(n, device=index.device)).all()):
        return instances[:n]
    return instances[keep]


def image_level_part_map(instances: Instances, score_threshold: float) -> np.ndarray:
    """Image-level part map of one image's predictions (docs/metrics.md section 1), by the rule the
    parsing evaluator scores (:func:`bodyparts.evaluation.parsing_metrics.image_level_map`).

    Persons with ``scores >= score_threshold`` are pasted in ascending score order, so a higher
    score overwrites a lower one (ties: the later index overwrites); only part labels overwrite,
    a person's background never erases another person's parts.

    Args:
        instances: Instances of one image with ``image_size`` (H, W), ``scores`` (R,) and either
            ``pred_part_labels`` uint8 (R, H, W) or ``pred_part_masks`` (R, C, M, M) with
            ``pred_boxes``.
    Returns:
        uint8 (H, W) part labels, 0 = background.
    """
    crops = person_part_crops(instances)
    if crops is None:
        raise ValueError(
            "instances have neither pred_part_labels nor pred_part_masks (no part branch?)"
        )
    scores = _numpy(instances.scores) if instances.has("scores") else np.ones(len(instances))
    order = paste_order(scores, score_threshold)
    return paste_part_crops(crops, order, instances.image_size)


def part_legend(
    label_names: Sequence[str], palette: np.ndarray, labels: Sequence[int], height: int
) -> np.ndarray:
    """A legend strip: a colour swatch and the name of each label, in columns of ``height`` px.

    Args:
        label_names: name of each label (C,).
        palette: uint8 (C, 3) RGB colours.
        labels: the labels to list, in this order.
        height: height of the strip in pixels (entries wrap into further columns).
    Returns:
        uint8 (height, L, 3) RGB strip; L = 0 when ``labels`` is empty.
    """
    labels = [int(k) for k in labels]
    if not labels:
        return np.zeros((height, 0, 3), dtype=np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    text_w = max(cv2.getTextSize(label_names[k], font, _LEGEND_FONT_SCALE, 1)[0][0] for k in labels)
    col_w = 4 + 10 + 4 + text_w + 6
    rows = max(1, (height - 4) // _LEGEND_ROW_PX)
    cols = math.ceil(len(labels) / rows)
    strip = np.empty((height, cols * col_w, 3), dtype=np.uint8)
    strip[:] = _LEGEND_BG
    for n, k in enumerate(labels):
        x = (n // rows) * col_w + 4
        y = 2 + (n % rows) * _LEGEND_ROW_PX
        color = tuple(int(c) for c in np.asarray(palette)[k])
        cv2.rectangle(strip, (x, y + 2), (x + 9, y + 11), color, thickness=-1)
        cv2.putText(
            strip,
            label_names[k],
            (x + 14, y + 10),
            font,
            _LEGEND_FONT_SCALE,
            _LEGEND_FG,
            thickness=1,
            lineType=cv2.LINE_AA,
        )
    return strip


def add_part_legend(
    vis_rgb: np.ndarray,
    label_names: Sequence[str],
    palette: np.ndarray,
    labels: Optional[Sequence[int]] = None,
) -> np.ndarray:
    """uint8 (H, W + L, 3): ``vis_rgb`` (H, W, 3) with :func:`part_legend` appended on its right.
    ``labels`` default: all part labels 1..C-1."""
    labels = range(1, len(label_names)) if labels is None else labels
    strip = part_legend(label_names, palette, labels, vis_rgb.shape[0])
    return np.concatenate([vis_rgb, strip], axis=1)


# ----------------------------------------------------------------------------------------------
# drawing


@dataclass
class _Person:
    """One person to draw: XYXY box (pixels), label text, RGB colour in [0, 1], silhouette
    bool (h, w) or None with the image position (x0, y0) of its top-left pixel, keypoints (K, 3)
    [x, y, score or visibility] or None."""

    box: Sequence[float]
    text: str
    color: tuple
    mask: Optional[np.ndarray] = None
    keypoints: Optional[np.ndarray] = None
    mask_origin: Tuple[int, int] = (0, 0)


@dataclass
class _Style:
    """What the drawing needs from metadata: label names, palette, class names, keypoint rules."""

    part_taxonomy: Optional[str]
    label_names: List[str]
    palette: np.ndarray
    thing_classes: List[str]
    keypoints: Metadata  # keypoint_names / keypoint_connection_rules for Visualizer


def _style(
    source: Optional[MetadataLike], keypoint_taxonomy: Optional[KeypointTaxonomy] = None
) -> _Style:
    if isinstance(source, PartTaxonomy):
        taxonomy, meta = source, {}
    elif source is not None and source.get("part_names"):
        taxonomy, meta = None, source
    elif source is not None and source.get("part_taxonomy"):
        taxonomy, meta = get_part_taxonomy(source.get("part_taxonomy")), source
    else:
        raise ValueError(
            "need a PartTaxonomy or metadata with 'part_names' / 'part_taxonomy' "
            "(e.g. bodyparts.data.datasets.generic.bodyparts_metadata(...))"
        )
    if taxonomy is not None:
        name, label_names, palette = taxonomy.name, taxonomy.label_names, taxonomy.palette()
    else:
        name = meta.get("part_taxonomy")
        label_names = ["background", *meta.get("part_names")]
        palette = np.array([(0, 0, 0), *meta.get("part_colors")], dtype=np.uint8)
    kp = Metadata(name="bodyparts_visualizer")
    if keypoint_taxonomy is not None:
        kp.keypoint_names = list(keypoint_taxonomy.names)
        kp.keypoint_connection_rules = keypoint_taxonomy.connection_rules()
    elif meta.get("keypoint_names"):
        kp.keypoint_names = list(meta.get("keypoint_names"))
        kp.keypoint_connection_rules = list(meta.get("keypoint_connection_rules") or [])
    thing_classes = list(meta.get("thing_classes") or ["person"])
    return _Style(name, list(label_names), palette, thing_classes, kp)


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _person_color(i: int) -> tuple:
    colors = colormap(rgb=True, maximum=1)
    return tuple(float(c) for c in colors[i % len(colors)])


def _draw_keypoints(
    vis: Visualizer, keypoints: np.ndarray, meta: Metadata, radius: float, line_width: float
) -> None:
    """Keypoints (K, 3) [x, y, score or visibility] with score > ``KEYPOINT_THRESHOLD`` as dots,
    joined by the skeleton lines of ``meta.keypoint_connection_rules`` (name, name, RGB 0..255).
    Thinner than ``Visualizer.draw_and_connect_keypoints`` so that the part colours stay visible."""
    names = meta.get("keypoint_names") or []
    visible = {}
    for k, (x, y, score) in enumerate(np.asarray(keypoints, dtype=np.float64)):
        if score > KEYPOINT_THRESHOLD:
            visible[names[k] if k < len(names) else k] = (x, y)
    for a, b, color in meta.get("keypoint_connection_rules") or []:
        if a in visible and b in visible:
            (x0, y0), (x1, y1) = visible[a], visible[b]
            rgb = tuple(c / 255.0 for c in color)
            vis.draw_line([x0, x1], [y0, y1], color=rgb, linewidth=line_width)
    for x, y in visible.values():
        vis.draw_circle((x, y), color=(1.0, 0.0, 0.0), radius=radius)


def _render(
    image_rgb: np.ndarray,
    label_map: Optional[np.ndarray],
    persons: List[_Person],
    style: _Style,
    alpha: float,
    legend: bool,
) -> np.ndarray:
    """Part overlay, then per person: silhouette contour, box, label text, keypoints + skeleton."""
    base = image_rgb
    if label_map is not None:
        base = part_overlay(image_rgb, label_map, style.palette, alpha)
    height, width = base.shape[:2]
    vis = Visualizer(base, metadata=style.keypoints)
    font_size = max(6.0, min(10.0, math.sqrt(height * width) / 20))
    for p in persons:
        if p.mask is not None and p.mask.any():
            # findContours pads with zeros: a crop holding every pixel gives the same contours
            mask_h, mask_w = p.mask.shape
            for segment in GenericMask(p.mask.astype(np.uint8), mask_h, mask_w).polygons:
                segment = segment.reshape(-1, 2)
                if p.mask_origin != (0, 0):
                    segment = segment + np.asarray(p.mask_origin, dtype=segment.dtype)
                vis.draw_polygon(segment, color=p.color, edge_color=p.color, alpha=0.0)
        vis.draw_box(p.box, alpha=0.9, edge_color=p.color)
        # the label sits just above the box (inside it at the top edge of the image); font size is
        # in points, the figure has 1 px per 1/dpi inch
        text_height = 1.6 * font_size * vis.output.dpi / 72
        text_y = p.box[1] - text_height if p.box[1] >= text_height else p.box[1]
        vis.draw_text(
            p.text,
            (p.box[0], text_y),
            font_size=font_size,
            color=p.color,
            horizontal_alignment="left",
        )
    for p in persons:  # keypoints on top of every box and contour
        if p.keypoints is not None and len(p.keypoints):
            _draw_keypoints(
                vis, p.keypoints, style.keypoints, radius=font_size / 6, line_width=font_size / 10
            )
    out = vis.get_output().get_image()
    if legend and label_map is not None:
        present = [k for k in _labels_present(label_map) if 0 < k < len(style.label_names)]
        out = add_part_legend(out, style.label_names, style.palette, present)
    return out


def draw_predictions(
    image_rgb: np.ndarray,
    instances: Instances,
    metadata_or_taxonomy: MetadataLike,
    score_threshold: float = 0.5,
    *,
    keypoint_taxonomy: Optional[KeypointTaxonomy] = None,
    alpha: float = 0.6,
    legend: bool = False,
    part_label_map: Optional[np.ndarray] = None,
    track_ids: Optional[Sequence[int]] = None,
) -> np.ndarray:
    """Draw one image's predictions (persons with ``scores >= score_threshold``).

    Args:
        image_rgb: uint8 (H, W, 3) RGB image, the size of ``instances.image_size``.
        instances: model output for the image (after post-processing, boxes in image pixels).
            Uses whichever is present of ``pred_part_labels`` / ``pred_part_masks`` (part overlay,
            :func:`image_level_part_map`), ``pred_boxes``, ``scores``, ``pred_classes``,
            ``pred_masks`` (R, H, W) silhouettes (contours), ``pred_keypoints`` (R, K, 3).
        metadata_or_taxonomy: dataset Metadata / dict (``part_names`` + ``part_colors`` or
            ``part_taxonomy``; ``keypoint_names`` and ``keypoint_connection_rules`` for the
            skeleton; ``thing_classes``), or a PartTaxonomy.
        score_threshold: persons below it are not drawn.
        keypoint_taxonomy: skeleton to draw (overrides the metadata's); without one (and without
            keypoint metadata) keypoints are drawn without skeleton.
        alpha: opacity of the part colours.
        legend: append a legend of the part labels present on the right edge.
        part_label_map: uint8 (H, W) the :func:`image_level_part_map` of ``instances`` when the
            caller has it already (it is not pasted again).
        track_ids: the persons' ids across frames (:class:`bodyparts_runtime.tracking.
            PersonTracker`; -1: none yet), one per person with ``scores >= score_threshold``, in
            their order: each is drawn in its id's colour (:func:`bodyparts_runtime.tracking.
            id_color`) with ``#id`` in its label. Default: a colour per person of this image.
    Returns:
        uint8 (H, W, 3) RGB visualization; (H, W + L, 3) with ``legend``.
    """
    style = _style(metadata_or_taxonomy, keypoint_taxonomy)
    image_rgb = np.asarray(image_rgb)
    height, width = image_rgb.shape[:2]
    if tuple(instances.image_size) != (height, width):
        raise ValueError(
            f"instances are for an image of {tuple(instances.image_size)}, "
            f"the image is {(height, width)}"
        )
    instances = instances.to("cpu")
    has_parts = instances.has("pred_part_labels") or instances.has("pred_part_masks")
    label_map = part_label_map
    if label_map is None and has_parts:
        label_map = image_level_part_map(instances, score_threshold)
    if instances.has("scores"):
        instances = select_instances(instances, instances.scores >= score_threshold)
    if track_ids is not None and len(track_ids) != len(instances):
        raise ValueError(f"{len(track_ids)} track ids for {len(instances)} persons")
    persons = []
    for i in range(len(instances)):
        inst = instances[i]
        cls = int(inst.pred_classes[0]) if inst.has("pred_classes") else 0
        name = style.thing_classes[cls] if cls < len(style.thing_classes) else str(cls)
        color = _person_color(i)
        if track_ids is not None:
            track_id = int(track_ids[i])
            color = tuple(c / 255.0 for c in id_color(track_id))
            name = f"#{track_id} {name}" if track_id > 0 else name
        text = f"{name} {100 * float(inst.scores[0]):.0f}%" if inst.has("scores") else name
        box = _numpy(inst.pred_boxes.tensor[0]).tolist()
        mask, origin = None, (0, 0)
        if inst.has("pred_masks") and tuple(inst.pred_masks.shape[1:]) == (height, width):
            # image-space silhouette (ROI-space masks, not post-processed, get no contour)
            mask, y0, x0 = mask_crop(inst.pred_masks[0], box)
            origin = (x0, y0)
        persons.append(
            _Person(
                box=box,
                text=text,
                color=color,
                mask=mask,
                keypoints=_numpy(inst.pred_keypoints[0]) if inst.has("pred_keypoints") else None,
                mask_origin=origin,
            )
        )
    return _render(image_rgb, label_map, persons, style, alpha, legend)


def draw_part_map(
    image_rgb: np.ndarray,
    label_map: np.ndarray,
    metadata_or_taxonomy: MetadataLike,
    *,
    alpha: float = 0.6,
    legend: bool = False,
) -> np.ndarray:
    """Draw an image-level part map (the semantic part segmenter's output, or a ground-truth map).

    Args:
        image_rgb: uint8 (H, W, 3) RGB image.
        label_map: uint8 (H, W) labels of the taxonomy (0 background, 255 ignored: not painted).
        metadata_or_taxonomy: as in :func:`draw_predictions`.
        alpha: opacity of the part colours.
        legend: append a legend of the part labels present on the right edge.
    Returns:
        uint8 (H, W, 3) RGB visualization; (H, W + L, 3) with ``legend``.
    """
    style = _style(metadata_or_taxonomy)
    image_rgb = np.asarray(image_rgb)
    label_map = _numpy(label_map).astype(np.uint8)
    return _render(image_rgb, label_map, [], style, alpha, legend)


def _silhouette(segmentation, height: int, width: int) -> Optional[np.ndarray]:
    if segmentation is None:
        return None
    if isinstance(segmentation, list):  # polygons
        if not segmentation:
            return None
        rles = mask_util.frPyObjects(segmentation, height, width)
        return mask_util.decode(mask_util.merge(rles)).astype(bool)
    return decode_rle(segmentation).astype(bool)


def draw_ground_truth(
    record: Mapping[str, Any],
    metadata: Optional[MetadataLike] = None,
    *,
    image_rgb: Optional[np.ndarray] = None,
    alpha: float = 0.6,
    legend: bool = False,
) -> np.ndarray:
    """Draw a data-contract record (:mod:`bodyparts.data.contract`) like :func:`draw_predictions`.

    Args:
        record: dataset dict with ``file_name``, ``height``, ``width``, ``annotations``.
        metadata: as for :func:`draw_predictions`; default: the record's ``part_taxonomy`` and the
            COCO-17 keypoint skeleton. Must use the record's part taxonomy.
        image_rgb: uint8 (H, W, 3) image to draw on; default: read ``record["file_name"]``.
        alpha, legend: as for :func:`draw_predictions`.
    Returns:
        uint8 (H, W, 3) RGB visualization ((H, W + L, 3) with ``legend``). Persons are pasted in
        annotation order; a person without part annotation shows no parts and says "no parts".
    """
    record_taxonomy = record.get("part_taxonomy")
    if metadata is None:
        if not record_taxonomy:
            raise ValueError(
                f"record {record.get('file_name')!r} has no 'part_taxonomy': pass its metadata"
            )
        style = _style(get_part_taxonomy(record_taxonomy), get_keypoint_taxonomy("coco17"))
    else:
        style = _style(metadata)
    if record_taxonomy and style.part_taxonomy and record_taxonomy != style.part_taxonomy:
        raise ValueError(
            f"record {record.get('file_name')!r} has part taxonomy {record_taxonomy!r}, "
            f"the metadata {style.part_taxonomy!r}"
        )
    height, width = int(record["height"]), int(record["width"])
    if image_rgb is None:
        image_rgb = read_image(record["file_name"], format="RGB")
    if image_rgb.shape[:2] != (height, width):
        raise ValueError(
            f"{record['file_name']}: image is {image_rgb.shape[:2]}, "
            f"the record says {(height, width)}"
        )
    maps, persons = [], []
    for i, ann in enumerate(record.get("annotations", [])):
        box = BoxMode.convert(list(ann["bbox"]), BoxMode(ann["bbox_mode"]), BoxMode.XYXY_ABS)
        cls = int(ann.get("category_id", 0))
        text = style.thing_classes[cls] if cls < len(style.thing_classes) else str(cls)
        if ann.get("iscrowd"):
            text += " crowd"
        if ann.get("parts") is None:
            text += " (no parts)"
        else:
            maps.append(part_label_map(ann, height, width))
        kps = ann.get("keypoints")
        persons.append(
            _Person(
                box=[float(v) for v in box],
                text=text,
                color=_person_color(i),
                mask=_silhouette(ann.get("segmentation"), height, width),
                keypoints=None if kps is None else np.asarray(kps, dtype=np.float64).reshape(-1, 3),
            )
        )
    maps = np.asarray(maps, dtype=np.uint8).reshape(-1, height, width)
    label_map = paste_part_maps(maps, None, (height, width))
    return _render(np.asarray(image_rgb), label_map, persons, style, alpha, legend)


def metadata_for(part_taxonomy: str, keypoint_taxonomy: Optional[str] = "coco17") -> Metadata:
    """A Metadata with the drawing tables of the given taxonomies (no dataset registration)."""
    meta = Metadata(name=f"bodyparts_{part_taxonomy}")
    for key, value in bodyparts_metadata(part_taxonomy, keypoint_taxonomy).items():
        setattr(meta, key, value)
    return meta


def draw_part_panoptic(
    image_rgb: np.ndarray,
    panoptic_seg: Union[torch.Tensor, np.ndarray],
    segments_info: Sequence[Mapping[str, Any]],
    part_panoptic: Union[torch.Tensor, np.ndarray],
    metadata: Metadata,
    part_taxonomy: Union[str, PartTaxonomy],
    *,
    alpha: float = 0.6,
    legend: bool = False,
) -> np.ndarray:
    """Draw a part-aware panoptic prediction (``BodyPartsPanopticFPN`` output of one image).

    Stuff and things without part labels are drawn by Detectron2's ``Visualizer.draw_panoptic_seg``;
    segments with part labels (persons) show their part colours inside the segment, with the
    segment's contour and label text on top.

    Args:
        image_rgb: uint8 (H, W, 3) RGB image.
        panoptic_seg: integer (H, W) segment ids (output ``panoptic_seg[0]``).
        segments_info: the segments (output ``panoptic_seg[1]``): ``id``, ``isthing``,
            ``category_id``, optional ``score``.
        part_panoptic: uint8 (H, W, 3) (output ``part_panoptic``); channel 2 = part label,
            255 = none.
        metadata: Metadata with ``thing_classes`` and ``stuff_classes`` (optional ``thing_colors``,
            ``stuff_colors``), e.g. the dataset's.
        part_taxonomy: the model's part taxonomy (``BODYPARTS.PART_TAXONOMY``) or a PartTaxonomy.
        alpha: opacity of the segment and part colours.
        legend: append a legend of the part labels present on the right edge.
    Returns:
        uint8 (H, W, 3) RGB visualization; (H, W + L, 3) with ``legend``.
    """
    taxonomy = get_part_taxonomy(part_taxonomy) if isinstance(part_taxonomy, str) else part_taxonomy
    image_rgb = np.asarray(image_rgb)
    seg = _numpy(panoptic_seg).astype(np.int64)
    parts = _numpy(part_panoptic)[..., 2]
    if seg.shape != image_rgb.shape[:2] or parts.shape != seg.shape:
        raise ValueError(
            f"image {image_rgb.shape[:2]}, panoptic_seg {seg.shape} and part_panoptic "
            f"{parts.shape} must have the same height and width"
        )
    with_parts = [
        s for s in segments_info if s["isthing"] and (parts[seg == s["id"]] != PART_IGNORE).any()
    ]
    part_ids = [s["id"] for s in with_parts]
    others = [dict(s) for s in segments_info if s["id"] not in part_ids]  # D2 adds "area": copies
    vis = Visualizer(image_rgb, metadata)
    base = vis.draw_panoptic_seg(torch.from_numpy(seg), others, alpha=alpha).get_image()
    inside = np.isin(seg, part_ids)
    label_map = np.where(inside, parts, PART_IGNORE).astype(np.uint8)
    base = part_overlay(base, label_map, taxonomy.palette(), alpha)
    vis = Visualizer(base, metadata)
    names = list(metadata.get("thing_classes", None) or [])
    for i, s in enumerate(with_parts):
        cat = int(s["category_id"])
        text = names[cat] if cat < len(names) else str(cat)
        if s.get("score") is not None:
            text += f" {100 * float(s['score']):.0f}%"
        color = _person_color(i)
        vis.draw_binary_mask(seg == s["id"], color=color, edge_color=color, text=text, alpha=0.0)
    out = vis.get_output().get_image()
    if legend:
        present = [k for k in np.unique(label_map) if 0 < k < taxonomy.num_classes]
        out = add_part_legend(out, taxonomy.label_names, taxonomy.palette(), present)
    return out
