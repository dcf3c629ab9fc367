"""Per-person part maps of an instance model's output, as numpy, for evaluation, export and drawing.

Shapes: R = detections of one image, C = part labels including background 0, M = ROI resolution of
the part branch, H x W = image size in pixels.
"""

from typing import Any, List, Optional, Tuple

import numpy as np
import torch
from detectron2.structures import Instances

from ..modeling.inference import part_label_maps_in_image, paste_in_box
from ..modeling.part_outputs import as_part_predictions
from .parsing_metrics import PartCrop, nonzero_crop

__all__ = [
    "person_part_maps",
    "person_part_crops",
    "person_predictions",
    "person_crop_predictions",
    "person_class_id",
]


def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def person_part_maps(instances: Instances) -> Optional[np.ndarray]:
    """uint8 (R, H, W) per-person part maps in image space: ``pred_part_labels`` when present
    (``BodyPartsRCNN`` with ``MODEL.ROI_BODYPART_HEAD.PASTE_IN_IMAGE``), else pasted from
    ``pred_part_masks`` (``PartPredictions``) and ``pred_boxes``; None when the instances have
    neither."""
    if instances.has("pred_part_labels"):
        maps = instances.pred_part_labels
    elif instances.has("pred_part_masks"):
        maps = part_label_maps_in_image(instances)
    else:
        return None
    return _numpy(maps).astype(np.uint8)


def person_class_id(metadata: Any) -> Optional[int]:
    """The contiguous thing class id of persons in a dataset: ``thing_classes.index("person")``;
    None when the metadata has no ``thing_classes`` or none is called "person"."""
    thing_classes = list(metadata.get("thing_classes", None) or [])
    return thing_classes.index("person") if "person" in thing_classes else None


def person_predictions(
    instances: Instances, height: int, width: int, person_class: Optional[int], source: str = ""
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The persons of one image's detections with their part maps.

    Detections of other thing classes (``pred_classes != person_class``; multi-class models) are
    left out; instances without ``pred_classes`` are all persons.

    Args:
        instances: model output of one image (``scores``, ``pred_boxes`` and ``pred_part_labels``
            (R, H, W) or ``pred_part_masks``), in the H x W image.
        height, width: size H x W of the image the maps must have.
        person_class: contiguous person class id (:func:`person_class_id`); needed only when
            ``pred_classes`` is present.
        source: what to name in errors (e.g. the dataset and image).
    Returns:
        maps: uint8 (P, H, W) part labels inside each person, 0 elsewhere.
        scores: float64 (P,) person scores.
        boxes: float64 (P, 4) XYXY boxes in image pixels.
    Raises:
        KeyError: detections without part outputs.
        ValueError: ``pred_classes`` but no person class; maps of another size than H x W.
    """
    persons = _persons(instances, height, width, person_class, source)
    if persons is None:
        return np.zeros((0, height, width), dtype=np.uint8), np.zeros((0,)), np.zeros((0, 4))
    maps = person_part_maps(persons)
    _check_parts(maps, instances, source)
    if maps.shape[1:] != (height, width):
        raise ValueError(
            f"{source}: person part maps of size {maps.shape[1:]}, the image is {(height, width)}"
        )
    return (maps, *_scores_and_boxes(persons))


def person_crop_predictions(
    instances: Instances, height: int, width: int, person_class: Optional[int], source: str = ""
) -> Tuple[List[Optional[PartCrop]], np.ndarray, np.ndarray]:
    """:func:`person_predictions` with each person's part labels as a :class:`PartCrop` (None: no
    part pixel) instead of a full-image map: the same labels, computed and stored inside each box
    only (:func:`person_part_crops`). Same arguments and errors."""
    persons = _persons(instances, height, width, person_class, source)
    if persons is None:
        return [], np.zeros((0,)), np.zeros((0, 4))
    if persons.has("pred_part_labels") and tuple(persons.pred_part_labels.shape[1:]) != (
        height,
        width,
    ):
        raise ValueError(
            f"{source}: person part maps of size {tuple(persons.pred_part_labels.shape[1:])}, "
            f"the image is {(height, width)}"
        )
    if not persons.has("pred_part_labels") and tuple(persons.image_size) != (height, width):
        raise ValueError(
            f"{source}: person part maps of size {tuple(persons.image_size)}, the image is "
            f"{(height, width)}"
        )
    crops = person_part_crops(persons)
    _check_parts(crops, instances, source)
    return (crops, *_scores_and_boxes(persons))


def _persons(
    instances: Instances, height: int, width: int, person_class: Optional[int], source: str
) -> Optional[Instances]:
    """The person detections of ``instances``; None when there is none."""
    fields = instances.get_fields()
    if not fields:  # Instances without any field (no detection): Instances has no len() then
        return None
    if "pred_classes" in fields and len(instances):
        if person_class is None:
            raise ValueError(
                f"{source}: the detections have pred_classes, but the dataset metadata has no "
                "'person' in thing_classes, so persons cannot be told from other classes"
            )
        keep = instances.pred_classes == int(person_class)
        if not bool(keep.all()):  # no copy of every field when all are persons
            instances = instances[keep]
    return instances if len(instances) else None


def _check_parts(parts, instances: Instances, source: str) -> None:
    if parts is None:
        raise KeyError(
            f"{source}: instances have no 'pred_part_masks' (fields: "
            f"{sorted(instances.get_fields())}); the parsing evaluation needs a model with the "
            "part branch (MODEL.BODYPART_ON: True)"
        )


def _scores_and_boxes(instances: Instances) -> Tuple[np.ndarray, np.ndarray]:
    scores = (
        _numpy(instances.scores).astype(np.float64)
        if instances.has("scores")
        else np.ones(len(instances))
    )
    boxes = _numpy(instances.pred_boxes.tensor).astype(np.float64).reshape(-1, 4)
    return scores, boxes


def person_part_crops(instances: Instances) -> Optional[List[Optional[PartCrop]]]:
    """Per detection (R), its part labels in image space as a :class:`PartCrop` (None: no part
    pixel).

    From ``pred_part_labels`` (R, H, W): the bounding rectangle of each map's non-zero pixels
    (views). From ``pred_part_masks`` (``PartPredictions``) and ``pred_boxes``: pasted inside each
    box only (:func:`bodyparts.modeling.paste_in_box`), with the values :func:`person_part_maps`
    gives there (it is zero elsewhere). None when the instances have neither field.
    """
    if instances.has("pred_part_labels"):
        maps = _numpy(instances.pred_part_labels).astype(np.uint8, copy=False)
        return [nonzero_crop(labels) for labels in maps]
    if not instances.has("pred_part_masks"):
        return None
    height, width = (int(v) for v in instances.image_size)
    pred = as_part_predictions(instances.pred_part_masks)
    boxes = instances.pred_boxes.tensor.to(pred.probs.dtype)
    rows = {int(i): j for j, i in enumerate(pred.index.tolist())}
    crops: List[Optional[PartCrop]] = []
    for i in range(len(instances)):
        j = rows.get(i)
        pasted = None if j is None else paste_in_box(pred.probs[j], boxes[i], height, width)
        if pasted is None:
            crops.append(None)
            continue
        labels, y0, x0 = pasted
        crops.append(PartCrop(_numpy(labels), y0, x0))
    return crops
