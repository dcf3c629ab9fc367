"""PQ and PartPQ evaluator of panoptic models.

:class:`PartPanopticEvaluator` reduces each image in :meth:`~PartPanopticEvaluator.process` to small
per-class statistics (:func:`.partpq.segment_stats`): PQ from ``outputs["panoptic_seg"]``, PartPQ
from ``outputs["part_panoptic"]``; ``evaluate`` gathers and averages them. With an ``output_dir``
it also writes the inputs of the reference implementation, the ``panoptic_parts`` package, and
``python tools/eval_part_panoptic.py <output_dir>/part_panoptic`` recomputes the metrics with it
(:mod:`.panoptic_parts_check`).
"""

import json
import logging
import os
import time
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils.file_io import PathManager
from tabulate import tabulate

from ..data.contract import PART_IGNORE
from ..data.panoptic_mapper import read_panoptic_ids
from ..taxonomy import PartTaxonomy, get_part_taxonomy
from .panoptic_parts_check import (
    MAX_INSTANCE_ID,
    MAX_SCENE_ID,
    encode_uids,
    evaluate_with_panoptic_parts,
    file_stem,
    save_png,
    save_tif,
    write_panoptic_parts_specs,
)
from .parsing_evaluation import gather_on_main, ground_truth_maps, load_ground_truth_index
from .partpq import (
    PRED_VOID,
    PanopticStats,
    SceneClasses,
    format_results,
    panoptic_quality,
    segment_stats,
)

__all__ = [
    "PartPanopticEvaluator",
    "build_part_panoptic_evaluator",
    "scene_classes_from_metadata",
    "panoptic_label_maps",
    "evaluate_with_panoptic_parts",
]

logger = logging.getLogger(__name__)


def scene_classes_from_metadata(
    meta: Any, part_thing_ids: Sequence[int] = (0,), dataset_name: str = ""
) -> SceneClasses:
    """The evaluated classes of a panoptic dataset: its things, then its stuff (entry 0 of
    ``stuff_classes``, "things", is not a class).

    Args:
        meta: the dataset's metadata (``thing_classes``, ``stuff_classes``, ``thing_scene_ids``,
            ``stuff_scene_ids``).
        part_thing_ids: thing class ids whose segments carry parts.
        dataset_name: quoted in errors.
    Raises:
        ValueError: a key missing, lengths that disagree, a part thing id outside the things,
            scene ids not unique or outside 1..99 (the panoptic-parts uid format).
    """
    values = {}
    for key in ("thing_classes", "stuff_classes", "thing_scene_ids", "stuff_scene_ids"):
        values[key] = meta.get(key, None)
        if values[key] is None:
            raise ValueError(
                f"dataset {dataset_name!r}: metadata has no {key!r}; PQ / PartPQ need "
                "thing_classes, "
                "stuff_classes (entry 0 'things'), thing_scene_ids and stuff_scene_ids"
            )
    for kind in ("thing", "stuff"):
        if len(values[f"{kind}_scene_ids"]) != len(values[f"{kind}_classes"]):
            raise ValueError(
                f"dataset {dataset_name!r}: metadata {kind}_scene_ids has "
                f"{len(values[f'{kind}_scene_ids'])} entries, {kind}_classes "
                f"{len(values[f'{kind}_classes'])}"
            )
    things = list(values["thing_classes"])
    bad = [c for c in part_thing_ids if not 0 <= int(c) < len(things)]
    if bad:
        raise ValueError(
            f"MODEL.BODYPART_PANOPTIC.PART_THING_IDS {bad} are not thing class ids "
            f"0..{len(things) - 1} of dataset {dataset_name!r}"
        )
    scene_ids = [int(s) for s in values["thing_scene_ids"]] + [
        int(s) for s in values["stuff_scene_ids"][1:]
    ]
    if not all(0 < s <= MAX_SCENE_ID for s in scene_ids) or len(set(scene_ids)) != len(scene_ids):
        raise ValueError(
            f"dataset {dataset_name!r}: scene ids {scene_ids} (thing_scene_ids + "
            f"stuff_scene_ids[1:]) must be unique and in 1..{MAX_SCENE_ID}"
        )
    num_stuff = len(values["stuff_classes"]) - 1
    part_ids = {int(c) for c in part_thing_ids}
    return SceneClasses(
        names=tuple(things) + tuple(values["stuff_classes"][1:]),
        scene_ids=tuple(scene_ids),
        thing=(True,) * len(things) + (False,) * num_stuff,
        parts=tuple(i in part_ids for i in range(len(things))) + (False,) * num_stuff,
    )


def panoptic_label_maps(
    ids: np.ndarray,
    segments_info: Sequence[Mapping[str, Any]],
    thing_scene_ids: Sequence[int],
    stuff_scene_ids: Sequence[int],
    void: int,
    source: str = "",
) -> Tuple[np.ndarray, np.ndarray]:
    """Scene and instance maps of a panoptic segment-id map (ground truth or Detectron2 output).

    Args:
        ids: integer (H, W) segment ids, 0 = no segment.
        segments_info: ``{id, category_id, isthing}`` and optional ``iscrowd`` per segment; thing
            ``category_id`` indexes ``thing_scene_ids``, stuff ``category_id`` ``stuff_scene_ids``.
        void: scene id written where there is no segment (0 for ground truth, 255 for predictions).
        source: quoted in errors.
    Returns:
        sem: int32 (H, W) scene ids; crowd stuff segments are void too.
        inst: int32 (H, W): things 1, 2, ... per scene id in ``segments_info`` order, crowd things
        0; stuff 0.
    Raises:
        ValueError: ids missing from ``segments_info``, a category outside its table, more than
            999 instances of one class.
    """
    uniq, inverse = np.unique(np.asarray(ids), return_inverse=True)
    sem_of = np.full(len(uniq), void, dtype=np.int32)
    inst_of = np.zeros(len(uniq), dtype=np.int32)
    position = {int(u): k for k, u in enumerate(uniq.tolist())}
    known = {int(s["id"]) for s in segments_info}
    missing = [u for u in position if u != 0 and u not in known]
    if missing:
        raise ValueError(
            f"{source}: segment ids {missing[:10]} are in the map but not in segments_info"
        )
    counts: Dict[int, int] = {}
    for seg in segments_info:
        k = position.get(int(seg["id"]))
        if k is None or int(seg["id"]) == 0:
            continue
        table, kind = (thing_scene_ids, "thing") if seg["isthing"] else (stuff_scene_ids, "stuff")
        cat = int(seg["category_id"])
        if not (0 <= cat < len(table)) or (kind == "stuff" and cat == 0):
            raise ValueError(
                f"{source}: segment {seg['id']} has {kind} category_id {cat}, outside the "
                f"{kind} classes"
            )
        crowd = bool(seg.get("iscrowd", 0))
        if crowd and kind == "stuff":
            continue  # crowd stuff: void (the uid format has no stuff crowd)
        sem_of[k] = int(table[cat])
        if kind == "thing" and not crowd:
            counts[sem_of[k]] = counts.get(sem_of[k], 0) + 1
            if counts[sem_of[k]] > MAX_INSTANCE_ID:
                raise ValueError(
                    f"{source}: more than {MAX_INSTANCE_ID} instances of scene class {sem_of[k]}"
                )
            inst_of[k] = counts[sem_of[k]]
    inverse = inverse.reshape(np.shape(ids))
    return sem_of[inverse], inst_of[inverse]


class PartPanopticEvaluator(DatasetEvaluator):
    """PQ of ``outputs["panoptic_seg"]`` and PartPQ of ``outputs["part_panoptic"]`` (see
    :mod:`.partpq` for the definitions; PartPQ is not reported for models without
    ``part_panoptic``, e.g. Detectron2's plain PanopticFPN).

    Ground truth, from the dataset's records: ``pan_seg_file_name`` + ``segments_info`` give the
    scene and instance ids (things numbered per class, crowd things instance 0 = crowd, unlabeled
    = void; crowd stuff is void); the part ids of the classes with parts are the image-level part
    map of :func:`~.parsing_evaluation.ground_truth_maps` in the model's taxonomy, 0 where unknown
    (so, in PartPQ, persons without part annotation are crowd, as the reference treats segments
    without part labels).

    Results (``evaluate()``, percent): ``panoptic_seg`` and ``part_panoptic`` as
    :func:`format_results`, and ``timing``: ``seconds_per_image`` (statistics from the label
    maps), ``total_seconds_per_image`` (also building the maps from records and outputs) and,
    with ``run_panoptic_parts``, ``package_seconds_per_image``.
    """

    @configurable
    def __init__(
        self,
        dataset_name: str,
        part_taxonomy: Union[str, PartTaxonomy],
        *,
        part_thing_ids: Sequence[int] = (0,),
        distributed: bool = True,
        output_dir: Optional[str] = None,
        run_panoptic_parts: bool = False,
    ):
        """
        Args:
            dataset_name: a registered panoptic dataset (records with ``pan_seg_file_name`` and
                ``segments_info``; metadata as :func:`scene_classes_from_metadata`).
            part_taxonomy: the model's part taxonomy (name or object).
            part_thing_ids: thing classes with parts (``MODEL.BODYPART_PANOPTIC.PART_THING_IDS``).
            distributed: gather the statistics of all processes in ``evaluate``.
            output_dir: if set, the panoptic-parts files are written to
                ``<output_dir>/part_panoptic`` (by every process for its images: the folder must
                be shared by the processes).
            run_panoptic_parts: with ``output_dir``, also recompute the metrics with the package
                in ``evaluate`` (:func:`evaluate_with_panoptic_parts`; slow) and log both.
        """
        self._taxonomy = (
            part_taxonomy
            if isinstance(part_taxonomy, PartTaxonomy)
            else get_part_taxonomy(part_taxonomy)
        )
        self._dataset_name = dataset_name
        self._meta = MetadataCatalog.get(dataset_name)
        self._classes = scene_classes_from_metadata(self._meta, part_thing_ids, dataset_name)
        self._thing_scene_ids = [int(s) for s in self._meta.thing_scene_ids]
        self._stuff_scene_ids = [int(s) for s in self._meta.stuff_scene_ids]
        self._distributed = distributed
        self._files_dir = os.path.join(output_dir, "part_panoptic") if output_dir else None
        self._run_panoptic_parts = bool(run_panoptic_parts)
        self._cpu_device = torch.device("cpu")
        self._gt = self._load_gt(dataset_name)
        self.reset()

    @classmethod
    def from_config(cls, cfg: CfgNode, dataset_name: str, output_dir: Optional[str] = None):
        return {
            "dataset_name": dataset_name,
            "part_taxonomy": cfg.BODYPARTS.PART_TAXONOMY,
            "part_thing_ids": list(cfg.MODEL.BODYPART_PANOPTIC.PART_THING_IDS),
            "output_dir": output_dir,
        }

    def _load_gt(self, dataset_name: str) -> Dict[Any, Dict[str, Any]]:
        index = load_ground_truth_index(
            dataset_name,
            self._taxonomy.name,
            require_taxonomy=any(self._classes.parts),
            record_keys=("image_id", "pan_seg_file_name", "segments_info"),
        )
        for image_id, gt in index.items():
            if not gt.get("pan_seg_file_name") or gt.get("segments_info") is None:
                raise ValueError(
                    f"dataset {dataset_name!r}, image {image_id!r}: no 'pan_seg_file_name' / "
                    "'segments_info'; PQ needs panoptic ground truth"
                )
        return index

    def reset(self) -> None:
        self._stats: List[Dict[str, Any]] = []

    def ground_truth(self, image_id: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """int32 (H, W) ground-truth scene, instance and part maps of an image (:mod:`.partpq`)."""
        gt = self._gt[image_id]
        h, w = gt["height"], gt["width"]
        ids = read_panoptic_ids(gt)
        sem, inst = panoptic_label_maps(
            ids,
            gt["segments_info"],
            self._thing_scene_ids,
            self._stuff_scene_ids,
            0,
            gt["pan_seg_file_name"],
        )
        part = np.zeros((h, w), dtype=np.int32)
        part_sids = np.asarray(self._classes.scene_ids)[np.asarray(self._classes.parts, dtype=bool)]
        in_part_class = np.isin(sem, part_sids)
        if in_part_class.any():
            _, labels = ground_truth_maps(
                gt["annotations"], h, w, gt["lut"], gt["sem_seg_file_name"]
            )
            part = np.where(in_part_class & (labels != PART_IGNORE), labels, 0).astype(np.int32)
        return sem, inst, part

    def process(self, inputs: List[Dict[str, Any]], outputs: List[Dict[str, Any]]) -> None:
        """Reduce each image to per-class statistics (and, with an output folder, write its files).

        Args:
            inputs: dataset dicts with ``image_id``.
            outputs: model outputs with ``panoptic_seg`` (int (H, W) segment ids, segments_info)
                and optionally ``part_panoptic`` (uint8 (H, W, 3)), in the original image size.
        """
        for inp, out in zip(inputs, outputs):
            image_id = inp["image_id"]
            if image_id not in self._gt:
                raise KeyError(f"image_id {image_id!r} is not in dataset {self._dataset_name!r}")
            self._stats.append(self._image_stats(self._gt[image_id], out))

    def _prediction_maps(self, gt: Mapping, output: Mapping):
        where = f"image {gt['image_id']!r}"
        if "panoptic_seg" not in output:
            raise KeyError(
                f"{where}: the model output has no 'panoptic_seg' (keys: {sorted(output)})"
            )
        seg, segments_info = output["panoptic_seg"]
        if segments_info is None:
            raise ValueError(
                f"{where}: panoptic_seg without segments_info (label-divisor format) is not "
                "supported"
            )
        size = (gt["height"], gt["width"])
        if tuple(seg.shape) != size:
            raise ValueError(
                f"{where}: panoptic_seg of shape {tuple(seg.shape)}, the image is {size}"
            )
        pq_maps = panoptic_label_maps(
            seg.to(self._cpu_device).numpy() if isinstance(seg, torch.Tensor) else np.asarray(seg),
            segments_info,
            self._thing_scene_ids,
            self._stuff_scene_ids,
            PRED_VOID,
            f"{where} panoptic_seg",
        )
        part_maps = None
        if "part_panoptic" in output:
            pp = output["part_panoptic"]
            pp = pp.to(self._cpu_device).numpy() if isinstance(pp, torch.Tensor) else np.asarray(pp)
            if pp.shape != (*size, 3):
                raise ValueError(
                    f"{where}: part_panoptic of shape {pp.shape}, expected {(*size, 3)}"
                )
            part_maps = (pp[..., 0], pp[..., 1], pp[..., 2])
        return pq_maps, part_maps

    def _image_stats(self, gt: Mapping, output: Mapping) -> Dict[str, Any]:
        start = time.perf_counter()
        gt_maps = self.ground_truth(gt["image_id"])
        (pq_sem, pq_inst), part_maps = self._prediction_maps(gt, output)
        metric_start = time.perf_counter()
        classes = self._classes
        stats = {"image_id": gt["image_id"], "stem": file_stem(gt["image_id"])}
        stats["pq"] = segment_stats(
            *gt_maps[:2], None, pq_sem, pq_inst, None, classes.without_parts()
        )
        stats["part_pq"] = (
            None if part_maps is None else segment_stats(*gt_maps, *part_maps, classes)
        )
        end = time.perf_counter()
        stats["seconds"], stats["total_seconds"] = end - metric_start, end - start
        if self._files_dir:
            self._write_image(stats["stem"], gt_maps, (pq_sem, pq_inst), part_maps)
        return stats

    def _write_image(self, stem: str, gt_maps, pq_maps, part_maps) -> None:
        d = self._files_dir
        for sub in ("gt", "pred_pq") + (("pred",) if part_maps is not None else ()):
            PathManager.mkdirs(os.path.join(d, sub))
        save_tif(encode_uids(*gt_maps, self._classes), os.path.join(d, "gt", stem + ".tif"))
        sem, inst = pq_maps
        inst = np.where(sem == PRED_VOID, PRED_VOID, inst)  # no segment: 255 in all channels
        save_png(
            np.stack([sem, inst, np.full_like(sem, PRED_VOID)], axis=-1),
            os.path.join(d, "pred_pq", stem + ".png"),
        )
        if part_maps is not None:
            save_png(np.stack(part_maps, axis=-1), os.path.join(d, "pred", stem + ".png"))

    def evaluate(self) -> "OrderedDict[str, Dict[str, float]]":
        stats = gather_on_main(self._stats, self._distributed)
        if stats is None:
            return OrderedDict()
        if not stats:
            logger.warning("[PartPanopticEvaluator] did not receive valid predictions.")
            return OrderedDict()
        with_parts = [s["part_pq"] for s in stats if s["part_pq"] is not None]
        if with_parts and len(with_parts) < len(stats):
            logger.warning(
                f"PartPQ of {self._dataset_name}: only {len(with_parts)} of {len(stats)} outputs "
                "had 'part_panoptic'"
            )
        zeros = PanopticStats.zeros(len(self._classes))
        results = format_results(
            self._classes,
            panoptic_seg=sum((s["pq"] for s in stats), zeros),
            part_panoptic=sum(with_parts, zeros) if with_parts else None,
        )
        results["timing"] = {
            "seconds_per_image": float(np.mean([s["seconds"] for s in stats])),
            "total_seconds_per_image": float(np.mean([s["total_seconds"] for s in stats])),
        }
        self._log(results, stats)
        if self._files_dir:
            self._write_index(stats)
            if self._run_panoptic_parts:
                self._check_with_package(results)
        return results

    def _write_index(self, stats: List[Dict[str, Any]]) -> None:
        stems = [s["stem"] for s in stats]
        if len(set(stems)) != len(stems):
            raise ValueError(
                f"{self._dataset_name}: image ids that differ only in special characters would "
                "share files"
            )
        images = [
            # "id": find_filename_in_list of the package's eval_PartPQ.py matches it as a substring
            {"id": f"/{s['stem']}.", "image_id": s["image_id"], "file_name": s["stem"]}
            for s in sorted(stats, key=lambda s: s["stem"])
        ]
        with PathManager.open(os.path.join(self._files_dir, "images.json"), "w") as f:
            json.dump({"images": images}, f, default=str)
        colors = dict(zip(self._meta.thing_classes, self._meta.get("thing_colors", [])))
        colors.update(zip(self._meta.stuff_classes, self._meta.get("stuff_colors", [])))
        write_panoptic_parts_specs(
            self._files_dir, self._classes, self._taxonomy.part_names, self._dataset_name, colors
        )
        logger.info(
            f"Wrote the PQ / PartPQ inputs of the panoptic-parts package to {self._files_dir}; "
            f"re-evaluate them with: python tools/eval_part_panoptic.py {self._files_dir}"
        )

    def _check_with_package(self, results: Mapping[str, Dict[str, float]]) -> None:
        package = evaluate_with_panoptic_parts(self._files_dir)
        diffs = [
            abs(v - package[task][k])
            for task in ("panoptic_seg", "part_panoptic")
            if task in results and task in package
            for k, v in results[task].items()
            if not (np.isnan(v) and np.isnan(package[task][k]))
        ]
        seconds = package["timing"]["package_seconds_per_image"]
        results["timing"]["package_seconds_per_image"] = seconds
        logger.info(
            "panoptic-parts package on the written files: max |difference| of the metrics "
            f"{max(diffs, default=0.0):.3g} (percent points); seconds per image: ours "
            f"{results['timing']['seconds_per_image']:.4f}, package {seconds:.4f}"
        )

    def _log(self, results: Mapping[str, Dict[str, float]], stats: List[Dict[str, Any]]) -> None:
        pq = results["panoptic_seg"]
        groups = panoptic_quality(
            sum((s["pq"] for s in stats), PanopticStats.zeros(len(self._classes))), self._classes
        )
        rows = [
            [name, pq[f"PQ{s}"], pq[f"SQ{s}"], pq[f"RQ{s}"], groups[f"n{s}"]]
            for name, s in (("All", ""), ("Things", "_th"), ("Stuff", "_st"))
        ]
        text = tabulate(
            rows, headers=["", "PQ", "SQ", "RQ", "#categories"], tablefmt="pipe", floatfmt=".3f"
        )
        logger.info(f"Panoptic evaluation of {self._dataset_name}:\n" + text)
        if "part_panoptic" in results:
            ppq = results["part_panoptic"]
            rows = [
                [name, ppq[f"PartPQ{s}"], ppq[f"PartSQ{s}"], ppq[f"PartRQ{s}"]]
                for name, s in (
                    ("All", ""),
                    ("With parts", "_parts"),
                    ("Without parts", "_noparts"),
                )
            ]
            text = tabulate(
                rows, headers=["", "PartPQ", "PartSQ", "PartRQ"], tablefmt="pipe", floatfmt=".3f"
            )
            logger.info(f"Part-aware panoptic evaluation of {self._dataset_name}:\n" + text)
        rows = []
        for k, name in enumerate(self._classes.names):
            row = [name, "thing" if self._classes.thing[k] else "stuff", pq[f"PQ-{name}"]]
            if "part_panoptic" in results:
                row.append(results["part_panoptic"][f"PartPQ-{name}"])
            rows.append(row)
        headers = ["class", "kind", "PQ"] + (["PartPQ"] if "part_panoptic" in results else [])
        logger.info(
            "Per-class results:\n"
            + tabulate(rows, headers=headers, tablefmt="pipe", floatfmt=".3f")
        )
        t = results["timing"]
        logger.info(
            f"PQ / PartPQ statistics: {t['seconds_per_image']:.4f} s per image "
            f"({t['total_seconds_per_image']:.4f} s with reading the ground truth)"
        )


def build_part_panoptic_evaluator(
    cfg: CfgNode, dataset_name: str, output_dir: Optional[str]
) -> DatasetEvaluator:
    """``EVALUATORS`` builder: PQ / PartPQ in the model's part taxonomy
    (``BODYPARTS.PART_TAXONOMY``), the classes with parts being
    ``MODEL.BODYPART_PANOPTIC.PART_THING_IDS``, gathering over processes; writes the
    panoptic-parts files to ``output_dir`` only with ``BODYPARTS.PANOPTIC_EVAL.WRITE_FILES``."""
    write = cfg.BODYPARTS.PANOPTIC_EVAL.WRITE_FILES
    return PartPanopticEvaluator(cfg, dataset_name, output_dir if write else None)
