"""Dataset mapper of the image-level part segmenter: contract records -> ``image`` + ``sem_seg``.

:class:`BodyPartsSemSegMapper` reads and augments the image exactly as Detectron2's
``DatasetMapper`` does (:func:`~bodyparts.data.mappers.detectron2_augmentations`: Detectron2's
``utils.build_augmentation`` and, in training, ``INPUT.CROP`` as a ``RandomCrop``, not the
``RandomCrop_CategoryAreaConstraint`` of Detectron2's semantic projects) and transforms the
image-level part map with it (``T.AugInput(image, sem_seg=...)``, nearest-neighbour sampling);
on an odd number of horizontal flips the left/right labels are swapped (the model taxonomy's
``flip_lut``).

The part map is :func:`~bodyparts.data.contract.image_part_map` in the model's taxonomy
(``BODYPARTS.PART_TAXONOMY``), mapped from each record's ``part_taxonomy``: the record's
``sem_seg_file_name`` wins when present (the dataset's own image-level map, as in the evaluator's
ground truth); otherwise it is built from the person annotations. Persons without part annotation,
crowd regions and persons with ``parts_complete: False`` are ignored (255) over their silhouette.
In training, silhouette pixels that no part covers are ignored too (not taught as background); at
test time they are background, so that the test-time ``sem_seg`` is exactly the ground truth of
:class:`~bodyparts.evaluation.BodyPartParsingEvaluator` (in the resized input frame).

Images are read by :class:`~bodyparts.data.image_io.RecordImageReader` (errors name the file and
the problem; ``BODYPARTS_ON_ERROR=skip`` skips unreadable images in training).
"""

import copy
import logging
from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import transforms as T

from ..taxonomy import TaxonomyError, get_part_taxonomy, mapping_lut, uint8_lut
from .contract import image_part_map
from .image_io import RecordImageReader
from .mappers import count_hflips, detectron2_augmentations, part_luts_for_datasets

__all__ = ["BodyPartsSemSegMapper"]

logger = logging.getLogger(__name__)


class BodyPartsSemSegMapper:
    """Map one record to ``{"image", "sem_seg", "height", "width", "file_name", "image_id", ...}``.

    ``image``: uint8 (3, H', W') in ``image_format`` after augmentation; ``sem_seg``: long (H', W')
    model part labels, 255 = ignored. ``sem_seg`` is left out at test time for records without
    ground truth (neither ``annotations`` nor ``sem_seg_file_name``).
    """

    @configurable
    def __init__(
        self,
        is_train: bool,
        *,
        augmentations: List,
        image_format: str,
        part_taxonomy: str,
        part_luts: Optional[Dict[str, np.ndarray]] = None,
        ignore_unlabelled: Optional[bool] = None,
        on_error: Optional[str] = None,
    ):
        """
        Args:
            is_train: training (a record without ground truth is an error) or test mapping.
            augmentations: Detectron2 augmentations
                (:func:`~bodyparts.data.mappers.detectron2_augmentations`).
            image_format: ``INPUT.FORMAT``.
            part_taxonomy: the model's part taxonomy (name); its ``flip_lut`` swaps sides.
            part_luts: record taxonomy -> LUT to ``part_taxonomy``, checked at start-up for the
                configured datasets; other record taxonomies are mapped on first use.
            ignore_unlabelled: ignore silhouette pixels no part covers (default: ``is_train``).
            on_error: "skip" = in training, a record whose image cannot be read gives None (logged,
                counted in ``num_skipped``); "raise" = an error naming the file; None =
                ``$BODYPARTS_ON_ERROR``. At test time errors always raise.
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        self.part_taxonomy = part_taxonomy
        self.part_luts = dict(part_luts or {})
        self.flip_lut = uint8_lut(get_part_taxonomy(part_taxonomy).flip_lut(), rest="identity")
        self.ignore_unlabelled = is_train if ignore_unlabelled is None else ignore_unlabelled
        self.image_reader = RecordImageReader(
            image_format, on_error if is_train else "raise", owner=type(self).__name__
        )
        mode = "training" if is_train else "inference"
        logger.info(f"[BodyPartsSemSegMapper] Augmentations used in {mode}: {augmentations}")

    @property
    def num_skipped(self) -> int:
        """Distinct images this mapper (this DataLoader worker's copy) skipped as unreadable."""
        return self.image_reader.num_skipped

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        augs = detectron2_augmentations(cfg, is_train)
        datasets = list(cfg.DATASETS.TRAIN if is_train else cfg.DATASETS.TEST)
        target = cfg.BODYPARTS.PART_TAXONOMY
        return {
            "is_train": is_train,
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "part_taxonomy": target,
            "part_luts": part_luts_for_datasets(datasets, target),
        }

    def _lut(self, record: dict) -> np.ndarray:
        source = record.get("part_taxonomy")
        if source is None:
            raise KeyError(
                f"{record.get('file_name')}: record has no 'part_taxonomy' (data contract)"
            )
        if source not in self.part_luts:
            try:
                self.part_luts[source] = mapping_lut(source, self.part_taxonomy)
            except TaxonomyError as e:
                raise TaxonomyError(f"{record.get('file_name')}: {e}") from None
        return self.part_luts[source]

    def part_map(self, record: dict) -> Optional[np.ndarray]:
        """uint8 (H, W) image-level part map of ``record`` in the model taxonomy, before
        augmentation; None when the record has no ground truth."""
        sem_seg_file = record.get("sem_seg_file_name")
        if "annotations" not in record and not sem_seg_file:
            if self.is_train:
                raise KeyError(
                    f"{record.get('file_name')}: a training record needs 'annotations' or "
                    "'sem_seg_file_name' for the part map"
                )
            return None
        return image_part_map(
            record.get("annotations", []),
            record["height"],
            record["width"],
            self._lut(record),
            sem_seg_file=sem_seg_file,
            ignore_unlabelled=self.ignore_unlabelled,
        )

    def __call__(self, dataset_dict: dict) -> Optional[dict]:
        """The model input of one record; None when its image is skipped (see ``on_error``)."""
        image = self.image_reader(dataset_dict)
        if image is None:
            return None
        record = copy.deepcopy(dataset_dict)
        sem_seg = self.part_map(record)
        aug_input = T.AugInput(image, sem_seg=sem_seg)
        transforms = self.augmentations(aug_input)
        image, sem_seg = aug_input.image, aug_input.sem_seg
        record["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if sem_seg is not None:
            if count_hflips(transforms) % 2 == 1:
                sem_seg = self.flip_lut[sem_seg]
            record["sem_seg"] = torch.as_tensor(sem_seg.astype(np.int64))
        for key in ("annotations", "sem_seg_file_name", "pan_seg_file_name", "segments_info"):
            record.pop(key, None)
        return record
