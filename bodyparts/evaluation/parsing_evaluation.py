"""Human-parsing evaluator: image-level part segmentation, AP^p, PCP and AP^r (docs/metrics.md).

Each image is reduced in :meth:`BodyPartParsingEvaluator.process` to small statistics (a C x C
confusion matrix, per-prediction and per-region numbers); no full-image map of the split is kept.
:meth:`~BodyPartParsingEvaluator.evaluate` gathers them on the main process and computes the
metrics with :mod:`.parsing_metrics`.
"""

import copy
import itertools
import json
import logging
import math
import os
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table
from tabulate import tabulate

from ..config import AP_PERSON_MAPS
from ..data.contract import PERSON_CATEGORY, image_part_map, part_label_crop
from ..taxonomy import PartTaxonomy, get_part_taxonomy, mapping_lut
from .parsing_metrics import (
    VOL_THRESHOLDS,
    PartCrop,
    ap_parsing,
    ap_region,
    confusion_matrix,
    crop_label_areas,
    instance_iou_from_crops,
    nonzero_crop,
    part_region_ious,
    paste_crops_with_owner,
    paste_order,
    pcp,
    semantic_metrics,
    visible_crops,
)
from .person_outputs import person_class_id, person_crop_predictions

__all__ = [
    "BodyPartParsingEvaluator",
    "build_parsing_evaluator",
    "ground_truth_maps",
    "ground_truth_crops",
    "load_ground_truth_index",
    "gather_on_main",
]

logger = logging.getLogger(__name__)


def ground_truth_maps(
    annotations: Sequence[Mapping],
    height: int,
    width: int,
    lut: np.ndarray,
    sem_seg_file: Optional[str] = None,
    *,
    person_class: int = PERSON_CATEGORY,
) -> Tuple[np.ndarray, np.ndarray]:
    """Ground truth of one image in the model's taxonomy: person maps and the image-level map.

    Persons are the annotations with ``category_id == person_class``; other thing classes have no
    parts (background in the image-level map). Person maps: persons without part annotation
    (``parts`` absent/None), crowd regions and persons whose mapped map has no part pixel are left
    out (no ground truth, not in N_gt).

    Image-level map: :func:`~bodyparts.data.contract.image_part_map` (read from ``sem_seg_file``,
    the record's ``sem_seg_file_name``, when given; otherwise built from the persons: silhouettes of
    persons without part annotation, of crowd regions and of persons with ``parts_complete: False``
    ignored (255), then every annotated part label written over them; all other pixels are
    background 0). The semantic mapper's test-time ``sem_seg`` is the same map.

    Args:
        annotations: the record's person annotations (data contract).
        height, width: image size H x W.
        lut: the record's label look-up table (``mapping_lut(record taxonomy, model taxonomy)``).
        sem_seg_file: optional image-level part map PNG in the record's taxonomy (255 ignored).
        person_class: contiguous thing class id of persons (the dataset's
            ``thing_classes.index("person")``; 0 in every bodyparts dataset).
    Returns:
        person_maps: uint8 (G, H, W) model part labels inside the person, 0 elsewhere.
        semantic: uint8 (H, W) model part labels, 255 = ignored.
    """
    crops, semantic = ground_truth_crops(
        annotations, height, width, lut, sem_seg_file, person_class=person_class
    )
    maps = np.zeros((len(crops), height, width), dtype=np.uint8)
    for person, crop in zip(maps, crops):
        h, w = crop.labels.shape
        person[crop.y0 : crop.y0 + h, crop.x0 : crop.x0 + w] = crop.labels
    return maps, semantic


def ground_truth_crops(
    annotations: Sequence[Mapping],
    height: int,
    width: int,
    lut: np.ndarray,
    sem_seg_file: Optional[str] = None,
    *,
    person_class: int = PERSON_CATEGORY,
) -> Tuple[List[PartCrop], np.ndarray]:
    """:func:`ground_truth_maps` with each person as a :class:`PartCrop` (its map's non-zero
    rectangle, 0 outside), decoded inside that rectangle only. Same arguments.

    Returns:
        persons: G crops of uint8 model part labels (255 = ignored).
        semantic: uint8 (H, W) model part labels, 255 = ignored.
    """
    # image_part_map takes the persons as category PERSON_CATEGORY (the data contract's id)
    people = [
        dict(a, category_id=PERSON_CATEGORY)
        for a in annotations
        if a.get("category_id", PERSON_CATEGORY) == person_class
    ]
    lut = np.asarray(lut, dtype=np.uint8)  # maps background 0 to 0
    persons, decoded = [], {}
    for k, ann in enumerate(people):
        if ann.get("parts") is not None and not ann.get("iscrowd", 0):
            decoded[k] = part_label_crop(ann, height, width)
            if decoded[k] is None:
                continue
            labels, y0, x0 = decoded[k]
            # labels of an annotated person are below len(lut)
            mapped = nonzero_crop(lut[labels])
            if mapped is not None:
                persons.append(PartCrop(mapped.labels, y0 + mapped.y0, x0 + mapped.x0))
    semantic = image_part_map(
        people, height, width, lut, sem_seg_file=sem_seg_file, part_crops=decoded
    )
    return persons, semantic


_GT_ANNOTATION_KEYS = (
    "category_id",
    "parts",
    "parts_complete",
    "iscrowd",
    "segmentation",
    "bbox",
    "bbox_mode",
)


def load_ground_truth_index(
    dataset_name: str,
    taxonomy: str,
    *,
    require_taxonomy: bool = True,
    record_keys: Sequence[str] = (),
) -> Dict[Any, Dict[str, Any]]:
    """image_id -> what the evaluators need of each record of ``dataset_name``: ``height``,
    ``width``, ``sem_seg_file_name``, ``lut`` (record part taxonomy -> ``taxonomy``; None when the
    record has none and not ``require_taxonomy``), the annotations' ground-truth fields, and the
    ``record_keys`` asked for (copied).

    Raises:
        ValueError: a record without ``part_taxonomy`` (nor in the metadata) when required.
    """
    default_taxonomy = MetadataCatalog.get(dataset_name).get("part_taxonomy", None)
    luts: Dict[str, np.ndarray] = {}
    index = {}
    for record in DatasetCatalog.get(dataset_name):
        source = record.get("part_taxonomy", default_taxonomy)
        if source is None and require_taxonomy:
            raise ValueError(
                f"dataset {dataset_name!r}, image {record.get('image_id')!r}: no "
                "'part_taxonomy' in the record nor in the dataset metadata"
            )
        if source is not None and source not in luts:
            luts[source] = mapping_lut(source, taxonomy, dataset=dataset_name)
        anns = record.get("annotations", [])
        index[record["image_id"]] = {
            **{k: copy.deepcopy(record[k]) for k in record_keys if k in record},
            "height": int(record["height"]),
            "width": int(record["width"]),
            "lut": luts.get(source),
            "sem_seg_file_name": record.get("sem_seg_file_name"),
            "annotations": [{k: a[k] for k in _GT_ANNOTATION_KEYS if k in a} for a in anns],
        }
    return index


def gather_on_main(items: List[Any], distributed: bool) -> Optional[List[Any]]:
    """An evaluator's per-image statistics of all processes, on the main process (None on the
    others); this process's own when not ``distributed``."""
    if not distributed:
        return items
    comm.synchronize()
    gathered = list(itertools.chain(*comm.gather(items, dst=0)))
    return gathered if comm.is_main_process() else None


class BodyPartParsingEvaluator(DatasetEvaluator):
    """Parsing metrics of an instance part model (``instances.pred_part_masks`` or
    ``pred_part_labels``) or, image level only, of a semantic part model (``sem_seg``).

    Results (``evaluate()["parsing"]``, percentages): ``mIoU``, ``pixel_acc``, ``mean_acc``,
    ``fwIoU``, ``mean_F1``, ``IoU-<label>`` and ``F1-<label>`` for every label (background
    included) and, when the model predicts instances, ``APp50``, ``APp_vol``, ``PCP50``,
    ``APr50``, ``APr_vol``. NaN where undefined (e.g. AP without any ground-truth person).

    Ground truth: the dataset's records (``DatasetCatalog``, loaded once) with their part labels
    mapped to the model's taxonomy (``mapping_lut``); records without ``part_taxonomy`` use the
    dataset metadata's. The image-level map is the record's ``sem_seg_file_name`` when it has one
    (the dataset's own map, e.g. CIHP ``Category_ids``), else built from the persons. See
    :func:`ground_truth_maps` for persons left out and ignored pixels.

    Protocol (docs/metrics.md): mIoU on persons with score >= ``paste_score_threshold`` pasted in
    ascending score order; AP^p and PCP on every person with score >= ``ap_score_threshold``, each
    with its own full-image map; AP^r on the part regions of the persons with score >=
    ``ap_score_threshold`` pasted in ascending score order (non-overlapping regions, as in the
    instance-part PNG that PGN's evaluation reads).
    """

    @configurable
    def __init__(
        self,
        dataset_name: str,
        part_taxonomy: Union[str, PartTaxonomy],
        *,
        distributed: bool = True,
        output_dir: Optional[str] = None,
        paste_score_threshold: float = 0.5,
        ap_score_threshold: float = 0.0,
        person_class: Optional[int] = None,
        ap_person_maps: str = "full",
    ):
        """
        Args:
            dataset_name: a registered dataset whose records follow the bodyparts data contract.
            part_taxonomy: the model's part taxonomy (name or object).
            distributed: gather the statistics of all processes in ``evaluate``; otherwise only
                this process's images are evaluated.
            output_dir: if set, per-prediction statistics are written there
                (``parsing_instances.json``).
            paste_score_threshold: persons with a lower score are not pasted into the image-level
                map (mIoU, accuracies, F1). Default 0.5: low-score duplicates would otherwise
                paint false parts wherever no higher-scored person overwrites them (Parsing
                R-CNN: 0.3 on CIHP, 0.05 on MHP-v2; ``BODYPARTS.PARSING_EVAL.PASTE_SCORE_THRESH``).
            ap_score_threshold: predictions (and their part regions) with a lower score are
                skipped by AP^p, PCP and AP^r. Default 0.0 keeps all (Parsing R-CNN: 0.001;
                ``BODYPARTS.PARSING_EVAL.AP_SCORE_THRESH``).
            person_class: contiguous thing class id of persons; default: the dataset metadata's
                ``thing_classes.index("person")``. Detections of other classes are skipped; a
                model output with ``pred_classes`` on a dataset without a person class is an error.
            ap_person_maps: the person maps AP^p and PCP score: "full" (every person with score
                >= ``ap_score_threshold``, its own full map: Parsing R-CNN) or "pasted" (the
                persons pasted into the image-level map, each with its visible pixels: MHP-v2's
                official ``eval_submission.py``); ``BODYPARTS.PARSING_EVAL.AP_PERSON_MAPS``.
        """
        if ap_person_maps not in AP_PERSON_MAPS:
            raise ValueError(
                f"ap_person_maps {ap_person_maps!r}: choose one of {', '.join(AP_PERSON_MAPS)}"
            )
        self._ap_person_maps = ap_person_maps
        if not isinstance(part_taxonomy, PartTaxonomy):
            part_taxonomy = get_part_taxonomy(part_taxonomy)
        self._dataset_name = dataset_name
        self._taxonomy = part_taxonomy
        self._num_classes = part_taxonomy.num_classes
        self._distributed = distributed
        self._output_dir = output_dir
        self._paste_score_threshold = float(paste_score_threshold)
        self._ap_score_threshold = float(ap_score_threshold)
        if person_class is None:
            person_class = person_class_id(MetadataCatalog.get(dataset_name))
        self._person_class = person_class
        self._cpu_device = torch.device("cpu")
        self._gt = self._load_gt(dataset_name)
        self.reset()

    @classmethod
    def from_config(cls, cfg: CfgNode, dataset_name: str, output_dir: Optional[str] = None):
        node = cfg.BODYPARTS.PARSING_EVAL
        return {
            "dataset_name": dataset_name,
            "part_taxonomy": cfg.BODYPARTS.PART_TAXONOMY,
            "output_dir": output_dir,
            "paste_score_threshold": node.PASTE_SCORE_THRESH,
            "ap_score_threshold": node.AP_SCORE_THRESH,
            "ap_person_maps": node.AP_PERSON_MAPS,
        }

    def _load_gt(self, dataset_name: str) -> Dict[Any, Dict[str, Any]]:
        """image_id -> the few record fields needed (size, look-up table, annotations)."""
        return load_ground_truth_index(dataset_name, self._taxonomy.name)

    def reset(self) -> None:
        self._stats: List[Dict[str, Any]] = []

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Reduce each image to small statistics (no full-image map is kept).

        Args:
            inputs: dataset dicts with ``image_id``.
            outputs: model outputs with ``instances`` (``pred_boxes``, ``scores`` and
                ``pred_part_masks`` or ``pred_part_labels``, in the original image size) or,
                image level only, ``sem_seg`` (C, H, W) scores.
        """
        for inp, out in zip(inputs, outputs):
            image_id = inp["image_id"]
            if image_id not in self._gt:
                raise KeyError(f"image_id {image_id!r} is not in dataset {self._dataset_name!r}")
            self._stats.append(self._image_stats(image_id, self._gt[image_id], out))

    def _image_stats(self, image_id, gt: Mapping, output: Mapping) -> Dict[str, Any]:
        height, width, c = gt["height"], gt["width"], self._num_classes
        size = (height, width)
        gt_crops, gt_sem = ground_truth_crops(
            gt["annotations"],
            height,
            width,
            gt["lut"],
            gt["sem_seg_file_name"],
            person_class=PERSON_CATEGORY if self._person_class is None else self._person_class,
        )
        stats: Dict[str, Any] = {"image_id": image_id, "has_instances": "instances" in output}
        if "instances" in output:
            source = f"dataset {self._dataset_name!r}, image {image_id!r}"
            # per person only the rectangle of its box: no (P, H, W) maps
            crops, scores, _ = person_crop_predictions(
                output["instances"].to(self._cpu_device), height, width, self._person_class, source
            )
            order = paste_order(scores, self._paste_score_threshold)
            sem_pred, owner = paste_crops_with_owner(crops, order, (height, width))
            if self._ap_person_maps == "pasted":
                kept, visible = visible_crops(crops, sem_pred, owner, order)
                stats.update(self._instance_stats(visible, scores[kept], gt_crops, size))
            else:
                stats.update(self._instance_stats(crops, scores, gt_crops, size))
            stats.update(self._region_stats(crops, scores, gt_crops, size))
        elif "sem_seg" in output:
            sem_seg = output["sem_seg"]
            if tuple(sem_seg.shape) != (c, height, width):
                raise ValueError(
                    f"image {image_id!r}: sem_seg of shape {tuple(sem_seg.shape)}, "
                    f"expected ({c}, {height}, {width})"
                )
            sem_pred = sem_seg.argmax(dim=0).to(self._cpu_device).numpy().astype(np.uint8)
        else:
            raise KeyError(
                f"image {image_id!r}: the model output has neither 'instances' (with "
                f"'pred_part_masks') nor 'sem_seg'; keys: {sorted(output)}"
            )
        stats["hist"] = confusion_matrix(gt_sem, sem_pred, c)
        return stats

    def _instance_stats(
        self,
        pred_crops: List[Optional[PartCrop]],
        scores: np.ndarray,
        gt_crops: List[PartCrop],
        size: Tuple[int, int],
    ) -> Dict[str, Any]:
        """AP^p / PCP statistics of one image's P predictions against its G ground-truth persons,
        both as crops of the H x W image (``size``).

        Returns:
            dict of small arrays: ``num_gt``; per prediction (P,): ``scores``, ``best_gt`` (index
            into this image's ground truths, -1 if none; made split-wide in ``evaluate``),
            ``best_iou`` (mIoU_inst, NaN if none), ``part_ious`` (P, C) per-class IoU with it,
            ``gt_present`` (P, C) its part classes; ``gt_region_counts`` (C,) ground-truth part
            regions per class.
        """
        c, num_p, num_g = self._num_classes, len(pred_crops), len(gt_crops)
        miou, iou = instance_iou_from_crops(pred_crops, gt_crops, c, size)  # (P, G), (P, G, C)
        gt_present = crop_label_areas(gt_crops, c, size) > 0  # (G, C)
        gt_present[:, 0] = False
        if num_g:
            best_gt = np.argmax(np.nan_to_num(miou, nan=-np.inf), axis=1)  # first best on ties
            rows = np.arange(num_p)
            best_iou, part_ious = miou[rows, best_gt], iou[rows, best_gt]
            present = gt_present[best_gt]
        else:
            best_gt = np.full(num_p, -1, dtype=np.int64)
            best_iou, part_ious = np.full(num_p, np.nan), np.full((num_p, c), np.nan)
            present = np.zeros((num_p, c), dtype=bool)
        return {
            "num_gt": num_g,
            "scores": scores,
            "best_gt": best_gt.astype(np.int64),
            "best_iou": best_iou,
            "part_ious": part_ious,
            "gt_present": present,
            "gt_region_counts": gt_present.sum(axis=0).astype(np.int64),
        }

    def _region_stats(
        self,
        pred_crops: List[Optional[PartCrop]],
        scores: np.ndarray,
        gt_crops: List[PartCrop],
        size: Tuple[int, int],
    ) -> Dict[str, np.ndarray]:
        """AP^r statistics: the part regions of the persons with score >= the AP score threshold,
        pasted in ascending score order. Returns (Q,) arrays ``region_classes``,
        ``region_scores`` (their person's score) and ``region_ious`` (best IoU with a ground-truth
        region of the class in the image)."""
        order = paste_order(scores, self._ap_score_threshold)
        labels, owner = paste_crops_with_owner(pred_crops, order, size)
        regions = part_region_ious(labels, owner, gt_crops, self._num_classes)
        return {
            "region_classes": regions["cls"],
            "region_scores": np.asarray(scores, dtype=np.float64)[regions["person"]],
            "region_ious": regions["iou"],
        }

    def evaluate(self) -> "OrderedDict[str, Dict[str, float]]":
        stats = gather_on_main(self._stats, self._distributed)
        if stats is None:
            return OrderedDict()
        if not stats:
            logger.warning("[BodyPartParsingEvaluator] did not receive valid predictions.")
            return OrderedDict()
        if self._output_dir:
            self._dump(stats)
        results = self._semantic_results(stats)
        with_instances = [s for s in stats if s["has_instances"]]
        if with_instances:
            results.update(self._instance_results(with_instances))
        self._log(results)
        return OrderedDict(parsing=results)

    def _semantic_results(self, stats: List[Dict[str, Any]]) -> Dict[str, float]:
        sem = semantic_metrics(np.sum([s["hist"] for s in stats], axis=0))
        res = {k: 100 * sem[k] for k in ("mIoU", "pixel_acc", "mean_acc", "fwIoU", "mean_F1")}
        names = self._taxonomy.label_names
        res.update({f"IoU-{n}": 100 * float(v) for n, v in zip(names, sem["IoU"])})
        res.update({f"F1-{n}": 100 * float(v) for n, v in zip(names, sem["F1"])})
        return res

    def _instance_results(self, stats: List[Dict[str, Any]]) -> Dict[str, float]:
        num_gt = int(sum(s["num_gt"] for s in stats))
        offsets = np.cumsum([0] + [s["num_gt"] for s in stats[:-1]])
        best_gt = np.concatenate(
            [np.where(s["best_gt"] >= 0, s["best_gt"] + o, -1) for s, o in zip(stats, offsets)]
        )

        def cat(key: str) -> np.ndarray:
            return np.concatenate([s[key] for s in stats])

        scores, best_iou, thr = cat("scores"), cat("best_iou"), self._ap_score_threshold
        app = ap_parsing(scores, best_iou, best_gt, num_gt, VOL_THRESHOLDS, thr)
        part_ious, gt_present = cat("part_ious"), cat("gt_present")
        pcp50 = pcp(scores, best_iou, best_gt, part_ious, gt_present, num_gt, 0.5, thr)
        gt_regions = np.sum([s["gt_region_counts"] for s in stats], axis=0)
        regions = (cat("region_classes"), cat("region_scores"), cat("region_ious"))
        apr = ap_region(*regions, gt_regions, VOL_THRESHOLDS, thr)
        return {
            "APp50": 100 * app[0.5],
            "APp_vol": 100 * float(np.mean(list(app.values()))),
            "PCP50": 100 * pcp50,
            "APr50": 100 * apr[0.5],
            "APr_vol": 100 * float(np.mean(list(apr.values()))),
        }

    def _log(self, results: Dict[str, float]) -> None:
        summary = {k: v for k, v in results.items() if not k.startswith(("IoU-", "F1-"))}
        logger.info(
            f"Human parsing evaluation of {self._dataset_name}:\n" + create_small_table(summary)
        )
        names = self._taxonomy.label_names
        rows = [(n, results[f"IoU-{n}"], results[f"F1-{n}"]) for n in names]
        table = tabulate(rows, headers=["label", "IoU", "F1"], tablefmt="pipe", floatfmt=".3f")
        logger.info("Per-label image-level results:\n" + table)

    def _dump(self, stats: List[Dict[str, Any]]) -> None:
        """Write the per-prediction statistics to ``output_dir`` (JSON, NaN as null)."""

        def clean(values) -> list:
            return [None if isinstance(v, float) and math.isnan(v) else v for v in values]

        out = []
        for s in stats:
            entry: Dict[str, Any] = {"image_id": s["image_id"]}
            if s["has_instances"]:
                entry["num_gt"] = int(s["num_gt"])
                entry["predictions"] = [
                    {
                        "score": float(score),
                        "best_gt": int(gt),
                        "best_iou": clean([float(iou)])[0],
                        "part_ious": clean(part_ious.tolist()),
                    }
                    for score, gt, iou, part_ious in zip(
                        s["scores"], s["best_gt"], s["best_iou"], s["part_ious"]
                    )
                ]
            out.append(entry)
        PathManager.mkdirs(self._output_dir)
        with PathManager.open(os.path.join(self._output_dir, "parsing_instances.json"), "w") as f:
            json.dump(out, f)


def build_parsing_evaluator(
    cfg: CfgNode, dataset_name: str, output_dir: Optional[str]
) -> DatasetEvaluator:
    """``EVALUATORS`` builder: the parsing evaluator in the model's part taxonomy
    (``cfg.BODYPARTS.PART_TAXONOMY``), gathering over processes."""
    return BodyPartParsingEvaluator(cfg, dataset_name, output_dir)
