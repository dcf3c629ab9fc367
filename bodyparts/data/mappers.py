"""Dataset mappers: contract records -> model inputs.

:class:`BodyPartsDatasetMapper` does what Detectron2's ``DatasetMapper`` does (image, augmentation,
boxes, silhouettes, keypoints with their flip map) and adds each person's part label map:
``instances.gt_part_maps`` (:class:`~bodyparts.structures.PartMaps`, (N, H, W) uint8 in the model's
part taxonomy, 255 where a person has no part annotation). Part labels are mapped from the record's
taxonomy to the model's with the declarative tables of :mod:`bodyparts.taxonomy`, resized with
nearest-neighbour sampling, and swapped left <-> right on a horizontal flip. Silhouette pixels that
no part label covers (datasets whose part masks miss some of the person) are ignored (255), not
taught as background.

Augmentations are Detectron2's (:func:`detectron2_augmentations`): ``INPUT.CROP`` means what it
means for ``DatasetMapper``, a ``RandomCrop`` first in training, with boxes recomputed from the
cropped silhouettes when ``MODEL.MASK_ON``. The crop moves part maps, silhouettes, boxes and
keypoints together; keypoints outside the crop become unlabelled (0, 0, 0) and persons cropped away
entirely are dropped (``filter_empty_instances``), as in Detectron2. Polygon silhouettes are
rasterised before a crop when masks are bitmasks (Detectron2 would clip the polygons with
``shapely`` and fails on a polygon cropped away entirely).

Images are read by :class:`~bodyparts.data.image_io.RecordImageReader`: a broken image is an error
naming the file and the problem, or, in training with ``BODYPARTS_ON_ERROR=skip``, a logged and
counted skip (the mapper returns None and Detectron2's ``MapDataset`` maps another record).

Joint training on several datasets: part labels come from each record's ``part_taxonomy``, keypoints
from each record's ``keypoint_taxonomy`` (default: the model's), both mapped to the model's
taxonomies; a person without keypoints (a dataset that has none, or a joint the dataset lacks) gets
visibility 0, so Detectron2's keypoint loss, normalised by the visible keypoints, ignores it.
"""

import copy
import logging
from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from ..structures import PartMaps
from ..taxonomy import (
    get_keypoint_taxonomy,
    get_part_taxonomy,
    keypoint_index_map,
    mapping_lut,
    uint8_lut,
)
from .contract import PART_IGNORE, encode_mask, part_label_map, silhouette_mask
from .image_io import RecordImageReader

__all__ = [
    "BodyPartsDatasetMapper",
    "detectron2_augmentations",
    "part_luts_for_datasets",
    "count_hflips",
    "transform_part_map",
    "keypoint_hflip_indices",
    "map_keypoints",
]

logger = logging.getLogger(__name__)


def part_luts_for_datasets(dataset_names: List[str], target_taxonomy: str) -> Dict[str, np.ndarray]:
    """For each part taxonomy used by ``dataset_names``, the LUT to ``target_taxonomy``.

    Raises TaxonomyError at start-up when a dataset cannot express the target taxonomy.
    """
    luts = {}
    for name in dataset_names:
        source = MetadataCatalog.get(name).get("part_taxonomy", None)
        if source is None:
            continue
        luts[source] = mapping_lut(source, target_taxonomy, dataset=name)
    return luts


def detectron2_augmentations(cfg, is_train: bool) -> List[T.Augmentation]:
    """The augmentations of Detectron2's ``DatasetMapper.from_config``: ``utils.build_augmentation``
    (resize, flip), preceded in training by ``RandomCrop(INPUT.CROP.TYPE, INPUT.CROP.SIZE)`` when
    ``INPUT.CROP.ENABLED``."""
    augs = utils.build_augmentation(cfg, is_train)
    if is_train and cfg.INPUT.CROP.ENABLED:
        augs.insert(0, T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
    return augs


def _has_crop(transforms: T.TransformList) -> bool:
    return any(isinstance(t, T.CropTransform) for t in transforms.transforms)


def count_hflips(transforms: T.TransformList) -> int:
    """Number of horizontal flips in a transform list (odd = the image is mirrored)."""
    return sum(isinstance(t, T.HFlipTransform) for t in transforms.transforms)


def transform_part_map(
    part_map: np.ndarray, transforms: T.TransformList, lut: np.ndarray, flip_lut: np.ndarray
) -> np.ndarray:
    """Map labels to the target taxonomy, apply the geometric transforms, swap sides if mirrored.

    Args:
        part_map: uint8 (H, W) labels in the source taxonomy, PART_IGNORE = unlabelled.
        transforms: the image's transforms (segmentation = nearest-neighbour).
        lut: uint8 (C_src,) source -> target labels.
        flip_lut: uint8 (C_dst,) target label -> label after a horizontal flip.
    Returns:
        uint8 (H', W') labels in the target taxonomy, PART_IGNORE kept.
    """
    out = transforms.apply_segmentation(uint8_lut(lut)[part_map])
    if count_hflips(transforms) % 2 == 1:
        out = uint8_lut(flip_lut, rest="identity")[out]
    return out


def keypoint_hflip_indices(keypoint_taxonomy: str) -> np.ndarray:
    """int64 (K,): keypoint index -> index after a horizontal flip, from the taxonomy's flip map
    (the model's keypoints; every training dataset's keypoints are mapped to them)."""
    kps = get_keypoint_taxonomy(keypoint_taxonomy)
    flip = dict(kps.flip_map)
    flip.update({b: a for a, b in kps.flip_map})
    return np.asarray([kps.names.index(flip.get(n, n)) for n in kps.names], dtype=np.int64)


def map_keypoints(keypoints: Optional[list], index_map: np.ndarray) -> List[float]:
    """Keypoints of one person mapped to the model's keypoint taxonomy.

    Args:
        keypoints: flat [x0, y0, v0, ...] in the source taxonomy (K_src * 3), or None (no
            keypoints).
        index_map: int64 (K,): source index of each model keypoint, -1 = the source lacks it.
    Returns:
        flat list of K * 3 floats; missing keypoints are (0, 0, 0).
    """
    out = np.zeros((len(index_map), 3), dtype=np.float64)
    if keypoints is not None:
        src = np.asarray(keypoints, dtype=np.float64).reshape(-1, 3)
        have = index_map >= 0
        if have.any() and index_map[have].max() >= len(src):
            raise ValueError(
                f"person has {len(src)} keypoints, the mapping expects at least "
                f"{index_map.max() + 1}"
            )
        out[have] = src[index_map[have]]
    return out.reshape(-1).tolist()


def _keypoints_on(cfg) -> bool:
    """Keypoints are trained by Detectron2's keypoint head or by the part branch."""
    return bool(cfg.MODEL.KEYPOINT_ON or cfg.MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS)


class BodyPartsDatasetMapper:
    """Map one record to ``{"image", "instances", "height", "width", "file_name", "image_id"}``.

    Instances fields: ``gt_boxes``, ``gt_classes``, ``gt_masks`` (silhouettes, when
    ``use_instance_mask``), ``gt_keypoints`` (when ``use_keypoint``), ``gt_part_maps`` (when
    ``use_parts``).
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: List,
        image_format: str,
        use_instance_mask: bool = False,
        instance_mask_format: str = "bitmask",
        use_keypoint: bool = False,
        keypoint_hflip_indices: Optional[np.ndarray] = None,
        keypoint_taxonomy: str = "coco17",
        use_parts: bool = True,
        part_luts: Optional[Dict[str, np.ndarray]] = None,
        part_flip_lut: Optional[np.ndarray] = None,
        recompute_boxes: bool = False,
        on_error: Optional[str] = None,
    ):
        """
        Args:
            is_train: training (instances from the annotations) or test mapping (image only).
            augmentations: Detectron2 augmentations (:func:`detectron2_augmentations`).
            image_format: ``INPUT.FORMAT``.
            use_instance_mask, instance_mask_format, use_keypoint, keypoint_hflip_indices,
                recompute_boxes: as Detectron2's ``DatasetMapper``.
            keypoint_taxonomy: the model's keypoint taxonomy; records' keypoints are mapped to it.
            use_parts: add ``gt_part_maps``.
            part_luts: record part taxonomy -> uint8 LUT to the model's taxonomy
                (:func:`part_luts_for_datasets`).
            part_flip_lut: uint8 (C,) model part label -> label after a horizontal flip.
            on_error: "skip" = in training, a record whose image cannot be read gives None (logged,
                counted in ``num_skipped``); "raise" = an error naming the file. None =
                ``$BODYPARTS_ON_ERROR``. At test time errors always raise: an evaluation never runs
                on a silently different set of images.
        """
        if recompute_boxes and not use_instance_mask:
            raise ValueError("recompute_boxes requires instance masks")
        if use_parts and (part_luts is None or part_flip_lut is None):
            raise ValueError("use_parts needs part_luts and part_flip_lut")
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.use_instance_mask = use_instance_mask
        self.instance_mask_format = instance_mask_format
        self.use_keypoint = use_keypoint
        self.keypoint_hflip_indices = keypoint_hflip_indices
        self.keypoint_taxonomy = keypoint_taxonomy
        self._keypoint_maps: Dict[str, np.ndarray] = {}
        self.use_parts = use_parts
        self.part_luts = part_luts or {}
        self.part_flip_lut = part_flip_lut
        self.recompute_boxes = recompute_boxes
        self.image_reader = RecordImageReader(
            image_format, on_error if is_train else "raise", owner=type(self).__name__
        )
        mode = "training" if is_train else "inference"
        logger.info(f"[{type(self).__name__}] Augmentations used in {mode}: {augmentations}")

    @property
    def num_skipped(self) -> int:
        """Distinct images this mapper (this DataLoader worker's copy) skipped as unreadable."""
        return self.image_reader.num_skipped

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        datasets = list(cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST)
        target = cfg.BODYPARTS.PART_TAXONOMY
        ret = {
            "is_train": is_train,
            "augmentations": detectron2_augmentations(cfg, is_train),
            "image_format": cfg.INPUT.FORMAT,
            "use_instance_mask": cfg.MODEL.MASK_ON,
            "instance_mask_format": cfg.INPUT.MASK_FORMAT,
            "use_keypoint": _keypoints_on(cfg),
            "keypoint_taxonomy": cfg.BODYPARTS.KEYPOINT_TAXONOMY,
            # as Detectron2: after a crop, boxes are the tight boxes of the cropped silhouettes
            "recompute_boxes": bool(is_train and cfg.INPUT.CROP.ENABLED and cfg.MODEL.MASK_ON),
            "use_parts": is_train,
            "part_luts": part_luts_for_datasets(datasets, target),
            "part_flip_lut": get_part_taxonomy(target).flip_lut(),
        }
        if _keypoints_on(cfg) and is_train:
            ret["keypoint_hflip_indices"] = keypoint_hflip_indices(cfg.BODYPARTS.KEYPOINT_TAXONOMY)
        return ret

    def _part_map(self, record: dict, ann: dict, transforms: T.TransformList) -> np.ndarray:
        source = record.get("part_taxonomy")
        if source not in self.part_luts:
            raise KeyError(
                f"{record.get('file_name')}: record part taxonomy {source!r} has no mapping to "
                f"the model's taxonomy (mapper knows {sorted(self.part_luts)}); "
                "is the dataset in DATASETS.TRAIN?"
            )
        h, w = record["height"], record["width"]
        raw = part_label_map(ann, h, w)
        if ann.get("parts") is not None and ann.get("segmentation") is not None:
            raw[(raw == 0) & silhouette_mask(ann, h, w)] = PART_IGNORE  # person pixel, part unknown
        return transform_part_map(raw, transforms, self.part_luts[source], self.part_flip_lut)

    def _keypoints(self, record: dict, ann: dict) -> List[float]:
        source = record.get("keypoint_taxonomy", self.keypoint_taxonomy)
        if source not in self._keypoint_maps:
            self._keypoint_maps[source] = keypoint_index_map(source, self.keypoint_taxonomy)
        try:
            return map_keypoints(ann.get("keypoints"), self._keypoint_maps[source])
        except ValueError as e:
            raise ValueError(
                f"{record.get('file_name')}: keypoints in taxonomy {source!r}: {e}"
            ) from None

    def __call__(self, dataset_dict: dict) -> Optional[dict]:
        """The model input of one record; None when its image is skipped (see ``on_error``)."""
        image = self.image_reader(dataset_dict)
        if image is None:
            return None
        record = copy.deepcopy(dataset_dict)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        image_shape = image.shape[:2]
        record["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        annos_in = record.pop("annotations", None)
        if not self.is_train or annos_in is None:
            return record
        annos_in = [a for a in annos_in if a.get("iscrowd", 0) == 0]
        part_maps = (
            [self._part_map(record, a, transforms) for a in annos_in] if self.use_parts else None
        )
        rasterise = self.instance_mask_format == "bitmask" and _has_crop(transforms)
        annos = []
        for a in annos_in:
            a = dict(a)
            if not self.use_instance_mask:
                a.pop("segmentation", None)
            elif rasterise and isinstance(a.get("segmentation"), list):
                h, w = record["height"], record["width"]
                a["segmentation"] = encode_mask(silhouette_mask(a, h, w))
            if self.use_keypoint:
                a["keypoints"] = self._keypoints(record, a)
            else:
                a.pop("keypoints", None)
            a.pop("parts", None)
            annos.append(
                utils.transform_instance_annotations(
                    a, transforms, image_shape, keypoint_hflip_indices=self.keypoint_hflip_indices
                )
            )
        instances = utils.annotations_to_instances(
            annos, image_shape, mask_format=self.instance_mask_format
        )
        if part_maps is not None:
            tensor = (
                torch.from_numpy(np.stack(part_maps))
                if part_maps
                else torch.zeros((0, *image_shape), dtype=torch.uint8)
            )
            instances.gt_part_maps = PartMaps(tensor)
        if self.recompute_boxes:
            instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
        record["instances"] = utils.filter_empty_instances(instances)
        return record
