"""Files in the panoptic-parts format, and the ``panoptic_parts`` package's evaluation of them.

The reference implementation of PartPQ is the PyPI package ``panoptic-parts`` (2.0rc6).
:class:`~.panoptic_evaluation.PartPanopticEvaluator` with an ``output_dir`` writes, under
``<output_dir>/part_panoptic/``, everything the package needs to recompute its numbers::

    gt/<image>.tif       ground truth, int32 uids (sid; sid*1000 + iid; sid*100000 + iid*100 + pid)
    pred/<image>.png     part_panoptic predictions, 3-channel [scene id, instance id, part id]
    pred_pq/<image>.png  panoptic_seg predictions in the same format (part channel 255)
    images.json          {"images": [{"id", "image_id", "file_name"}]}
    dataset_spec.yaml    the package's DatasetSpec, from the dataset metadata
    eval_spec.yaml       PartPQEvalSpec; classes with parts: MODEL.BODYPART_PANOPTIC.PART_THING_IDS
    eval_spec_pq.yaml    the same without classes with parts: its PartPQ is PQ

The one command that re-evaluates them with the package (:func:`evaluate_with_panoptic_parts`)::

    python tools/eval_part_panoptic.py OUTPUT_DIR/inference/<dataset>/part_panoptic [--official]

``--official`` runs PartPQ through the package's entry point ``evaluate_PartPQ_multicore``. The
package needs scikit-learn and does not import on Python >= 3.10 (its version check reads "3.1";
pmeletis/panoptic_parts#28): :func:`import_panoptic_parts` works around that. On Python <= 3.9 its
own script runs on the same files: ``python -m panoptic_parts.evaluation.eval_PartPQ
DIR/eval_spec.yaml DIR/gt DIR/pred DIR/images.json`` (at least 5 images per process it starts; the
``id`` in images.json is ``"/<file stem>."`` since that script finds files by substring match).
"""

import functools
import json
import math
import multiprocessing
import os
import platform
import re
import sys
import time
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from detectron2.utils.file_io import PathManager
from PIL import Image, features

from .partpq import PRED_VOID, PanopticStats, SceneClasses, format_results

__all__ = [
    "encode_uids",
    "write_panoptic_parts_specs",
    "import_panoptic_parts",
    "panoptic_parts_stats",
    "evaluate_with_panoptic_parts",
    "load_eval_spec",
    "file_stem",
    "save_png",
    "save_tif",
    "MAX_SCENE_ID",
]

MAX_SCENE_ID, MAX_INSTANCE_ID, MAX_PART_ID = 99, 999, 99  # limits of the uid encoding


def encode_uids(
    sem: np.ndarray, inst: np.ndarray, part: np.ndarray, classes: SceneClasses
) -> np.ndarray:
    """Ground-truth maps (see :mod:`.partpq`) -> panoptic-parts uids, int32 (H, W).

    Void (no evaluated class) -> 0; stuff and crowd things (instance 0) -> the scene id ``sid``;
    instances -> ``sid * 1000 + iid`` or, where their part is defined (> 0), ``sid * 100000 +
    iid * 100 + pid``. Parts are written for the classes with parts only.

    Raises:
        ValueError: a scene id > 99, an instance id > 999 or a part id > 99 (the format's limits).
    """
    ids = np.asarray(classes.scene_ids)
    sem, inst, part = (np.asarray(a, dtype=np.int64) for a in (sem, inst, part))
    valid = np.isin(sem, ids)
    with_parts = np.isin(sem, ids[np.asarray(classes.parts, dtype=bool)])
    for name, a, top in (("scene id", sem, MAX_SCENE_ID), ("instance id", inst, MAX_INSTANCE_ID)):
        if a[valid].size and a[valid].max() > top:
            raise ValueError(
                f"encode_uids: {name} {a[valid].max()} exceeds the uid format's limit {top}"
            )
    pid = np.where(with_parts & (inst > 0), part, 0)
    if pid.max(initial=0) > MAX_PART_ID:
        raise ValueError(
            f"encode_uids: part id {pid.max()} exceeds the uid format's limit {MAX_PART_ID}"
        )
    uids = np.where(
        inst > 0, np.where(pid > 0, sem * 100000 + inst * 100 + pid, sem * 1000 + inst), sem
    )
    return np.where(valid, uids, 0).astype(np.int32)


def _yaml_dump(data: Mapping, path: str) -> None:
    from ruamel.yaml import YAML

    with PathManager.open(path, "w") as f:
        YAML().dump(data, f)


def write_panoptic_parts_specs(
    directory: str,
    classes: SceneClasses,
    part_names: Sequence[str],
    dataset_name: str = "bodyparts",
    colors: Optional[Mapping[str, Sequence[int]]] = None,
) -> Dict[str, str]:
    """Write the panoptic-parts DatasetSpec and the two PartPQEvalSpecs of ``classes``.

    The DatasetSpec lists the scene classes in scene-id order (the format's sids are positions;
    unused ids get placeholder classes ``unused_<sid>``); classes with parts get ``part_names``
    (the model taxonomy without background, pid = label). Both eval specs map ids identically;
    ``eval_spec.yaml`` has the classes with parts, ``eval_spec_pq.yaml`` none (so its PartPQ is PQ).

    Args:
        directory: output folder (created).
        classes: the evaluated classes (scene ids <= 99).
        part_names: names of part labels 1, 2, ...
        dataset_name: the spec's ``name``.
        colors: optional RGB per class name (default black).
    Returns:
        {"dataset_spec", "eval_spec", "eval_spec_pq"}: absolute paths.
    """
    directory = os.path.abspath(directory)
    PathManager.mkdirs(directory)
    colors = dict(colors or {})
    by_sid = dict(zip(classes.scene_ids, range(len(classes))))
    scene2parts, scene2color = {}, {}
    for sid in range(1, max(classes.scene_ids) + 1):
        k = by_sid.get(sid)
        name = f"unused_{sid}" if k is None else classes.names[k]
        scene2parts[name] = list(part_names) if k is not None and classes.parts[k] else []
        scene2color[name] = [int(c) for c in colors.get(name, (0, 0, 0))]
    paths = {
        key: os.path.join(directory, f"{key}.yaml")
        for key in ("dataset_spec", "eval_spec", "eval_spec_pq")
    }
    _yaml_dump(
        {
            "version": "2.0",
            "name": dataset_name,
            "scene_class2part_classes": scene2parts,
            "scene_classes_with_instances": [n for n, t in zip(classes.names, classes.thing) if t],
            "scene_class2color": scene2color,
        },
        paths["dataset_spec"],
    )
    sids = [int(s) for s in classes.scene_ids]
    for key, with_parts in (
        ("eval_spec", classes.parts),
        ("eval_spec_pq", (False,) * len(classes)),
    ):
        part_sids = [s for s, p in zip(sids, with_parts) if p]
        sid_pids = [s * 100 + pid for s in part_sids for pid in range(1, len(part_names) + 1)]
        # the spec needs at least one sid_pid; a single pid never makes a class "with parts"
        sid_pids = sid_pids or [sids[0] * 100 + 1]
        flat = {sp: k + 1 for k, sp in enumerate(sid_pids)}
        name_of = dict(zip(sids, classes.names))
        part_label = {0: "background"}
        part_label.update(
            {
                flat[sp]: f"{name_of[sp // 100]}-{(list(part_names) or ['part'])[sp % 100 - 1]}"
                for sp in sid_pids
            }
        )
        spec = {
            "version": 2.0,
            "comments": [f"generated by bodyparts for dataset {dataset_name!r}"],
            "dataset_spec_path": paths["dataset_spec"],
            "ignore_label": PRED_VOID,
            "dataset_sid2eval_sid": {**{s: s for s in sids}, 0: "IGNORED", "DEFAULT": "IGNORED"},
            "dataset_sid_pid2eval_sid_pid": {**{sp: sp for sp in sid_pids}, "DEFAULT": "IGNORED"},
            "eval_sid_things": [s for s, t in zip(sids, classes.thing) if t],
            "eval_sid_stuff": [s for s, t in zip(sids, classes.thing) if not t],
            "eval_sid_parts": part_sids,
            "eval_sid_no_parts": [s for s in sids if s not in part_sids],
            "eval_sid_pid2eval_pid_flat": flat,
            "eval_sid2scene_label": name_of,
            "eval_pid_flat2scene_part_label": part_label,
        }
        _yaml_dump(spec, paths[key])
    return paths


def file_stem(image_id: Any) -> str:
    """File name stem of an image: its id with characters other than ``[A-Za-z0-9._-]`` as ``_``."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(image_id))
    return stem if stem and not stem.startswith(".") else f"_{stem}"


def save_png(rgb: np.ndarray, path: str) -> None:
    with PathManager.open(path, "wb") as f:
        Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).save(f, format="PNG")


def save_tif(uids: np.ndarray, path: str) -> None:
    compression = "tiff_deflate" if features.check("libtiff") else None
    with PathManager.open(path, "wb") as f:
        Image.fromarray(np.ascontiguousarray(uids, dtype=np.int32)).save(
            f, format="TIFF", compression=compression
        )


@contextmanager
def _python_version_reported_as(version: str, when: bool):
    """While the block runs, ``platform.python_version()`` returns ``version`` (if ``when`` and
    Python >= 3.10); restored afterwards."""
    if not when or sys.version_info < (3, 10):
        yield
        return
    original = platform.python_version
    platform.python_version = lambda: version
    try:
        yield
    finally:
        platform.python_version = original


def import_panoptic_parts():
    """Import and return ``panoptic_parts.utils.evaluation_PartPQ`` (PyPI ``panoptic-parts``).

    On Python >= 3.10 the package's import-time check ``float(platform.python_version()[:3]) <=
    3.6`` fails ("3.1"; pmeletis/panoptic_parts#28), so the import runs with
    ``platform.python_version`` reporting 3.9 for its duration.

    Raises:
        ImportError: the package or scikit-learn (which it imports) is not installed.
    """
    with _python_version_reported_as("3.9.0", "panoptic_parts" not in sys.modules):
        try:
            import panoptic_parts.evaluation.eval_PartPQ  # noqa: F401  (pred_reader_fn)
            import panoptic_parts.utils.evaluation_PartPQ as reference
        except ImportError as e:
            raise ImportError(
                f"the panoptic-parts evaluation cannot be imported ({e}); it needs `pip install "
                "panoptic-parts==2.0rc6 scikit-learn` (requirements/base.txt and test.txt)"
            ) from e
    return reference


@functools.lru_cache(maxsize=8)
def load_eval_spec(path: str):
    """The package's ``PartPQEvalSpec`` of a spec file (cached)."""
    import_panoptic_parts()
    from panoptic_parts.specs.eval_spec import PartPQEvalSpec

    return PartPQEvalSpec(path)


def _spec_classes(spec) -> SceneClasses:
    """Our classes of a generated eval spec (order of its ``eval_sid2scene_label``)."""
    labels = dict(spec.eval_sid2scene_label)
    return SceneClasses(
        names=tuple(labels.values()),
        scene_ids=tuple(int(s) for s in labels),
        thing=tuple(s in spec.eval_sid_things for s in labels),
        parts=tuple(s in spec.eval_sid_parts for s in labels),
    )


def panoptic_parts_stats(
    spec, gt_uids: np.ndarray, pred_sem, pred_inst, pred_part, classes: SceneClasses
) -> PanopticStats:
    """The package's statistics of one image, in the order of ``classes``: its per-image steps
    (those of ``evaluate_single_core``: ``annotation_parsing``, ``prediction_parsing``,
    ``generate_ignore_info_tiff`` plus the segments it turned into crowd, ``ignore_img_parsing``,
    ``pq_part``) on in-memory maps.

    Args:
        spec: a ``PartPQEvalSpec``.
        gt_uids: int32 (H, W) ground-truth uids.
        pred_sem, pred_inst, pred_part: integer (H, W) prediction channels.
        classes: the classes of the spec (scene ids = its eval sids).
    """
    ref = import_panoptic_parts()
    cat_definition = spec.cat_definition
    gt_uids = np.asarray(gt_uids, dtype=np.int32)
    gt, crowd_extra = ref.annotation_parsing(spec, gt_uids)
    pred = ref.prediction_parsing(
        cat_definition, *(np.asarray(a, dtype=np.int32) for a in (pred_sem, pred_inst, pred_part))
    )
    ignore = ref.generate_ignore_info_tiff(gt_uids, spec)
    ignore[crowd_extra != 0] = crowd_extra[crowd_extra != 0]
    crowd = ref.ignore_img_parsing(ignore, cat_definition)
    pq_stat = ref.pq_part(pred, gt, crowd, cat_definition, spec.ignore_label)
    out = PanopticStats.zeros(len(classes))
    index = {int(s): k for k, s in enumerate(classes.scene_ids)}
    for cat_id, cat in enumerate(cat_definition["cat_def"]):
        k, s = index[int(cat["sem_cls"][0])], pq_stat[cat_id]
        out.iou[k], out.tp[k], out.fp[k], out.fn[k] = s.iou, s.tp, s.fp, s.fn
    return out


def _package_file_stats(spec_path: str, gt_file: str, pred_file: str) -> PanopticStats:
    spec = load_eval_spec(spec_path)
    from panoptic_parts.evaluation.eval_PartPQ import pred_reader_fn

    gt_uids = np.array(Image.open(gt_file)).astype(np.int32)
    return panoptic_parts_stats(spec, gt_uids, *pred_reader_fn(pred_file), _spec_classes(spec))


def _read_images(directory: str) -> List[Dict[str, Any]]:
    path = os.path.join(directory, "images.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: {directory} is not a folder written by PartPanopticEvaluator"
        )
    with open(path) as f:
        return json.load(f)["images"]


def evaluate_with_panoptic_parts(
    directory: str, processes: int = 1, official: bool = False
) -> "OrderedDict[str, Dict[str, float]]":
    """Recompute PQ and PartPQ of the files written by
    :class:`~.panoptic_evaluation.PartPanopticEvaluator` with the ``panoptic_parts`` package (the
    independent check).

    Args:
        directory: the evaluator's ``<output_dir>/part_panoptic`` folder.
        processes: worker processes.
        official: run the package's entry point ``evaluate_PartPQ_multicore`` (PartPQ only; it
            needs >= 5 images per process, and a class with and one without parts present, else
            it divides by zero) instead of its per-image steps (:func:`panoptic_parts_stats`).
    Returns:
        the evaluator's result format (:func:`format_results`, percent): ``panoptic_seg`` (from
        ``pred_pq/`` with ``eval_spec_pq.yaml``), ``part_panoptic`` (``pred/``, ``eval_spec.yaml``;
        absent without ``pred/``), and ``timing``: ``package_seconds_per_image`` (per image, PQ and
        PartPQ together, reading the files included).
    """
    images = _read_images(directory)
    import_panoptic_parts()
    results: "OrderedDict[str, Dict[str, float]]" = OrderedDict()
    seconds = []
    runs = [
        ("panoptic_seg", "pred_pq", "eval_spec_pq.yaml"),
        ("part_panoptic", "pred", "eval_spec.yaml"),
    ]
    if official:
        runs = runs[1:]
    for key, pred_dir, spec_name in runs:
        if not os.path.isdir(os.path.join(directory, pred_dir)):
            continue
        spec_path = os.path.join(directory, spec_name)
        pairs = [
            (
                os.path.join(directory, "gt", im["file_name"] + ".tif"),
                os.path.join(directory, pred_dir, im["file_name"] + ".png"),
            )
            for im in images
        ]
        start = time.perf_counter()
        if official:
            results[key] = _official_partpq(spec_path, pairs, processes)
        else:
            args = [(spec_path, *p) for p in pairs]
            if processes > 1:
                with multiprocessing.get_context("fork").Pool(processes) as pool:
                    per_image = pool.starmap(_package_file_stats, args)
            else:
                per_image = [_package_file_stats(*a) for a in args]
            total = sum(
                per_image, PanopticStats.zeros(len(_spec_classes(load_eval_spec(spec_path))))
            )
            results.update(
                format_results(**{key: total}, classes=_spec_classes(load_eval_spec(spec_path)))
            )
        seconds.append((time.perf_counter() - start) / max(len(pairs), 1))
    results["timing"] = {"package_seconds_per_image": float(sum(seconds)) if seconds else math.nan}
    return results


def _official_partpq(
    spec_path: str, pairs: List[Tuple[str, str]], processes: int
) -> Dict[str, float]:
    """PartPQ from the package's ``evaluate_PartPQ_multicore``: its averages and per-class PartPQ
    (0 for a class without ground truth and predictions), as percentages."""
    if len(pairs) < 5 * processes:
        raise ValueError(
            "evaluate_PartPQ_multicore needs at least 5 images per process; got "
            f"{len(pairs)} images for {processes} process(es)"
        )
    ref = import_panoptic_parts()
    from panoptic_parts.evaluation.eval_PartPQ import pred_reader_fn

    spec = load_eval_spec(spec_path)
    averages, per_class = ref.evaluate_PartPQ_multicore(
        spec, pairs, pred_reader_fn, cpu_num=processes
    )
    out = {}
    for group, suffix in zip(averages, ("", "_parts", "_noparts")):
        out.update(
            {f"Part{m}{suffix}": 100 * float(group[f"Part{m}{suffix}"]) for m in ("PQ", "SQ", "RQ")}
        )
    for cat_id, cat in enumerate(spec.cat_definition["cat_def"]):
        out[f"PartPQ-{spec.eval_sid2scene_label[cat['sem_cls'][0]]}"] = 100 * float(
            per_class[cat_id]["PartPQ"]
        )
    return out
