"""Dataset mapper of the part-aware panoptic model: instance targets plus the semantic-branch
target.

:class:`BodyPartsPanopticMapper` gives everything
:class:`~bodyparts.data.mappers.BodyPartsDatasetMapper` gives (boxes, classes, silhouettes,
keypoints, part maps) and, in training, ``sem_seg``: the target of Detectron2's semantic branch in
its *separated* panoptic convention, built from the record's ``pan_seg_file_name`` and
``segments_info`` (see :mod:`bodyparts.data.contract`) and transformed with the image's geometric
transforms (nearest-neighbour, ``INPUT.CROP`` included). Part maps are kept for the thing classes
that carry parts (persons); other thing classes get all-255 maps, so the part loss ignores them.

Shapes: H x W = image size in pixels (before augmentation for the record, after it for the output).
"""

import logging
from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T

from .contract import PART_IGNORE
from .image_io import ImageFileError, read_image
from .mappers import BodyPartsDatasetMapper

__all__ = ["BodyPartsPanopticMapper", "panoptic_semantic_labels", "read_panoptic_ids"]

logger = logging.getLogger(__name__)


def read_panoptic_ids(record: Mapping) -> np.ndarray:
    """int64 (H, W) segment ids of the record's COCO-panoptic PNG (id = R + 256 G + 256^2 B).

    Raises:
        KeyError: the record has no ``pan_seg_file_name``.
        FileNotFoundError: the PNG cannot be read (missing, empty, truncated, not an image).
        ValueError: the PNG's size differs from the record's ``height`` x ``width``.
    """
    where = f"image {record.get('image_id', '?')!r} ({record.get('file_name', '?')})"
    path = record.get("pan_seg_file_name")
    if not path:
        raise KeyError(
            f"{where}: no 'pan_seg_file_name'; the panoptic model needs panoptic ground truth"
        )
    try:
        rgb = read_image(path, "RGB").astype(np.int64)
    except ImageFileError as e:  # missing, empty, truncated, ...: "<path>: <problem>"
        raise FileNotFoundError(f"{where}: cannot read the panoptic PNG {e}") from None
    size = (record.get("height"), record.get("width"))
    if rgb.shape[:2] != size:
        raise ValueError(
            f"{path}: panoptic PNG is {rgb.shape[0]}x{rgb.shape[1]}, "
            f"the record says {size[0]}x{size[1]}"
        )
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def panoptic_semantic_labels(
    ids: np.ndarray, segments_info: Sequence[Mapping], source: str = ""
) -> np.ndarray:
    """Semantic-branch labels of a panoptic id map (Detectron2's separated convention).

    Args:
        ids: integer (H, W) segment ids, 0 = unlabeled.
        segments_info: the record's segments ``{id, category_id, iscrowd, isthing}``; stuff
            ``category_id`` indexes ``stuff_classes`` (entry 0 is "things", so stuff ids are >= 1).
        source: the PNG's path, quoted in errors.
    Returns:
        uint8 (H, W): the stuff ``category_id`` on stuff segments, 0 on thing segments, 255 on
        unlabeled pixels (id 0) and on crowd segments.
    Raises:
        ValueError: ids in the map that ``segments_info`` lacks, or a stuff category outside 1..254.
    """
    uniq, inverse = np.unique(ids, return_inverse=True)
    by_id = {int(s["id"]): s for s in segments_info}
    missing = [int(u) for u in uniq if u != 0 and int(u) not in by_id]
    if missing:
        raise ValueError(
            f"{source}: panoptic ids {missing[:10]} are not in the record's segments_info"
        )
    table = np.full(len(uniq), PART_IGNORE, dtype=np.uint8)
    for k, u in enumerate(uniq.tolist()):
        seg = by_id.get(u)
        if seg is None or seg.get("iscrowd", 0):
            continue
        cat = 0 if seg["isthing"] else int(seg["category_id"])
        if not seg["isthing"] and not 1 <= cat < PART_IGNORE:
            raise ValueError(
                f"{source}: stuff segment {u} has category_id {cat}; stuff ids index stuff_classes "
                "from 1 (entry 0 is 'things') and must stay below 255"
            )
        table[k] = cat
    return table[inverse.reshape(ids.shape)]


class _RecordedAugmentations:
    """An AugmentationList that keeps the transforms of its latest call (one per mapper instance;
    every DataLoader worker has its own copy), so that extra targets get the image's transforms."""

    def __init__(self, augmentations: T.AugmentationList):
        self.augmentations = augmentations
        self.last: Optional[T.TransformList] = None

    def __call__(self, aug_input: T.AugInput) -> T.TransformList:
        self.last = self.augmentations(aug_input)
        return self.last

    def __repr__(self) -> str:
        return repr(self.augmentations)


class BodyPartsPanopticMapper(BodyPartsDatasetMapper):
    """Map one panoptic record to ``{"image", "instances", "sem_seg", ...}`` (``sem_seg`` and
    ``instances`` in training only, as Detectron2's ``DatasetMapper``).

    ``instances`` as :class:`BodyPartsDatasetMapper` (every thing class, not only persons);
    ``gt_part_maps`` of instances whose class is not in ``part_thing_ids`` are all 255.
    ``sem_seg``: long (H, W), see :func:`panoptic_semantic_labels`.
    """

    @configurable
    def __init__(self, is_train: bool, *, part_thing_ids: Sequence[int] = (0,), **kwargs):
        """
        Args:
            part_thing_ids: contiguous thing class ids whose instances have part maps.
            Other arguments: as :class:`BodyPartsDatasetMapper`.
        """
        super().__init__(is_train, **kwargs)
        self.part_thing_ids = frozenset(int(c) for c in part_thing_ids)
        self.augmentations = _RecordedAugmentations(self.augmentations)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        ret = super().from_config(cfg, is_train)
        ret["use_parts"] = is_train and cfg.MODEL.BODYPART_ON  # plain PanopticFPN: no part maps
        ret["part_thing_ids"] = list(cfg.MODEL.BODYPART_PANOPTIC.PART_THING_IDS)
        return ret

    def _part_map(self, record: dict, ann: dict, transforms: T.TransformList) -> np.ndarray:
        if int(ann.get("category_id", 0)) not in self.part_thing_ids:
            ann = {**ann, "parts": None}  # a class without parts: all 255, no part loss
        return super()._part_map(record, ann, transforms)

    def __call__(self, dataset_dict: dict) -> Optional[dict]:
        record = super().__call__(dataset_dict)
        if record is None:  # unreadable image, skipped (BODYPARTS_ON_ERROR=skip)
            return None
        if self.is_train:
            source = dataset_dict.get("pan_seg_file_name", dataset_dict.get("file_name"))
            labels = panoptic_semantic_labels(
                read_panoptic_ids(dataset_dict), dataset_dict.get("segments_info", []), source
            )
            labels = self.augmentations.last.apply_segmentation(labels)
            record["sem_seg"] = torch.as_tensor(np.ascontiguousarray(labels).astype(np.int64))
        return record
