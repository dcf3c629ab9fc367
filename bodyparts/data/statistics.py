"""Statistics of a split's records, read from the contract's RLE areas without decoding masks:
the per-label pixel counts from which class-balance weights are computed (docs/metrics.md
section 8)."""

from typing import Dict, Iterable

import numpy as np
import pycocotools.mask as mask_util
from detectron2.structures import BoxMode

from .contract import as_pycoco_rle

__all__ = ["part_pixel_counts"]


def part_pixel_counts(
    dataset_dicts: Iterable[dict],
    lut_by_taxonomy: Dict[str, np.ndarray],
    num_classes: int,
    background: str = "box",
) -> np.ndarray:
    """Pixel count per label over a split, from the RLE areas (no decoding).

    Args:
        dataset_dicts: contract records.
        lut_by_taxonomy: each record's ``part_taxonomy`` -> LUT to the model's labels; records of
            other taxonomies are skipped.
        num_classes: C.
        background: how label 0 is counted: ``"box"`` (per-person part branch): each person's box
            area minus its part pixels; ``"image"`` (image-level segmenter): the image area minus
            the part pixels of its persons.
    Returns:
        float64 (C,). Persons without part labels add no part pixels. Pixels of source parts
        that the LUT sends to IGNORE (255: ``taxonomy.PART_UNMAPPED``, e.g. CIHP's clothes in lr6)
        count nowhere, neither as a part nor as background, as in the loss targets.
    """
    if background not in ("box", "image"):
        raise ValueError(
            f"part_pixel_counts: background must be 'box' or 'image', got {background!r}"
        )
    counts = np.zeros(num_classes, dtype=np.float64)
    for rec in dataset_dicts:
        lut = lut_by_taxonomy.get(rec.get("part_taxonomy"))
        if lut is None:
            continue
        image_labelled = 0.0
        for ann in rec.get("annotations", []):
            parts = ann.get("parts")
            if not parts:
                continue
            labelled = 0.0  # every part pixel, also unmapped ones: none of them is background
            for label, rle in parts.items():
                area = float(mask_util.area(as_pycoco_rle(rle)))
                labelled += area
                target = int(lut[int(label)])
                if target < num_classes:  # not IGNORE (an unmapped source part)
                    counts[target] += area
            image_labelled += labelled
            if background == "box":
                x0, y0, x1, y1 = BoxMode.convert(
                    list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS
                )
                counts[0] += max((x1 - x0) * (y1 - y0) - labelled, 0.0)
        if background == "image":
            counts[0] += max(float(rec["height"]) * float(rec["width"]) - image_labelled, 0.0)
    return counts
