"""J-HMDB (Jhuang et al., ICCV 2013) in its native layout: silhouettes, 10 puppet parts, 15 joints.

Expected tree (``root``; ``register_all_jhmdb`` uses ``$DETECTRON2_DATASETS/jhmdb``)::

    Rename_Images/<cls>/<video>/00001.png ...          frames (320 x 240), numbered from 1
    joint_positions/<cls>/<video>/joint_positions.mat  pos_img (2, 15, T): x, y per joint, frame
    puppet_mask/<cls>/<video>/puppet_mask.mat          part_mask (H, W, T): silhouette, 0/1
    puppet_flow_com/<cls>/<video>/puppet_flow.mat      part_mask (H, W, T): 0 bg, 1..10 parts
    puppet_flow_ann/<cls>/<video>/puppet_flow.mat      (the other puppet-flow variant)
    splits/<cls>_test_split<N>.txt                     "<video>.avi <1|2>" (1 train, 2 test)
                                                       (``listfiles/JHMDB_splits/`` works too)

Records: one per frame (every ``frame_stride``-th frame of a clip, counted from the first), with
one person, ``part_taxonomy = "jhmdb10"`` (label = value of puppet_flow's ``part_mask``) and the 15
joints of keypoint taxonomy ``"jhmdb15"`` in ``pos_img`` order.

Format decisions (see ``datasets/jhmdb.md``):

* Silhouette = non-zero pixels of ``puppet_mask`` ``part_mask[:, :, t]``. Parts = puppet_flow's
  ``part_mask[:, :, t]`` restricted to that silhouette (flow labels outside it are dropped, so the
  parts are disjoint and inside the person by construction). Silhouette pixels with flow label 0
  are in no part mask (the mapper treats them as "person pixel, part unknown": ignored). A value
  outside 0..10 is an error. ``parts_complete`` is True: the puppet has no other parts.
* ``pos_img`` is taken as MATLAB pixel coordinates (1-based: the centre of the top-left pixel is
  (1, 1)). Checked on a real clip (``datasets/jhmdb.md``, "The real clip"): in its first frame the
  puppet's head is symmetric about the face-neck line at 0-based column ``pos_img_x - 1``
  (``tests/test_dataset_jhmdb.py``). The contract's continuous coordinates put that centre at
  (0.5, 0.5), so ``x = pos_img_x - 0.5`` (:data:`POS_IMG_ORIGIN`).
* J-HMDB has no occlusion flags: a joint inside the frame gets visibility 2. A joint outside the
  frame (``0 <= x <= W``, ``0 <= y <= H`` fails) gets visibility 0 at (0, 0) with
  ``keypoints_outside="invisible"`` (counted in the log), or an error naming the file, frame and
  joint with ``"error"``.
* Frame counts: frame ``t`` is used only when the images, ``pos_img``, ``puppet_mask`` and (when the
  clip has one) puppet_flow all have frame ``t``. Frames at the end of a clip without a mask (or
  without flow, whose T may be one less: flow is between adjacent frames) are dropped and counted
  in the log. The last mask is NOT reused for them: the puppet moves between frames, so a stale
  mask would give a wrong silhouette, box and parts, i.e. a silently wrong label. An annotation
  with more frames than there are images means a missing image: an error naming its path.
* A clip without ``puppet_flow.mat`` gives persons with ``parts: None`` (no part loss; box,
  silhouette and keypoints still used). A frame whose silhouette is empty keeps its record with
  no person (the dropped persons are counted in a debug log).
* A single-frame clip saved by MATLAB drops the trailing singleton dimension: (H, W) and (2, 15)
  are read as T = 1.

Conversion runs once per clip; :func:`load_items_cached` caches the records of each clip and
re-reads a clip when one of its ``.mat`` files or its frame folder changes.
"""

import logging
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...taxonomy import get_keypoint_taxonomy, get_part_taxonomy
from ..contract import person_annotation
from .generic import bodyparts_metadata
from .native import (
    DatasetFormatError,
    LoadItem,
    LoadReport,
    check_on_error,
    image_size,
    load_items_cached,
    register_native_split,
)
from .synthetic import datasets_root

__all__ = [
    "PART_TAXONOMY",
    "KEYPOINT_TAXONOMY",
    "CLASSES",
    "POS_IMG_ORIGIN",
    "SPLIT_DIRS",
    "read_jhmdb_split",
    "load_jhmdb",
    "register_jhmdb_split",
    "register_all_jhmdb",
]

logger = logging.getLogger(__name__)

PART_TAXONOMY = "jhmdb10"
KEYPOINT_TAXONOMY = "jhmdb15"
# The 21 action classes (for reference; the loader takes the classes from the split files).
# fmt: off
CLASSES = (
    "brush_hair", "catch", "clap", "climb_stairs", "golf", "jump", "kick_ball", "pick", "pour",
    "pullup", "push", "run", "shoot_ball", "shoot_bow", "shoot_gun", "sit", "stand",
    "swing_baseball", "throw", "walk", "wave",
)
# fmt: on
POS_IMG_ORIGIN = 1.0  # pos_img value of the top-left pixel's centre (MATLAB, 1-based)
SPLIT_DIRS = ("splits", os.path.join("listfiles", "JHMDB_splits"))  # searched in this order
FLOW_VARIANTS = ("com", "ann")
SUBSETS = {"train": 1, "test": 2}
_VERSION = f"jhmdb-1-origin{POS_IMG_ORIGIN}"
_SPLIT_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d+)\.txt$")


@dataclass(frozen=True)
class _Options:
    frame_stride: int
    keypoints_outside: str


@dataclass(frozen=True)
class _ClipPaths:
    """The files of one clip ``<class>/<video>``."""

    clip: str
    frame_dir: str
    joints: str
    mask: str
    flow: str

    @classmethod
    def of(cls, root: str, action: str, video: str, flow_variant: str) -> "_ClipPaths":
        rel = os.path.join(action, video)
        return cls(
            clip=f"{action}/{video}",
            frame_dir=os.path.join(root, "Rename_Images", rel),
            joints=os.path.join(root, "joint_positions", rel, "joint_positions.mat"),
            mask=os.path.join(root, "puppet_mask", rel, "puppet_mask.mat"),
            flow=os.path.join(root, f"puppet_flow_{flow_variant}", rel, "puppet_flow.mat"),
        )


# ---------------------------------------------------------------------------------------------
# Split lists


def _split_files(root: str, split_number: int) -> List[str]:
    for sub in SPLIT_DIRS:
        folder = os.path.join(root, sub)
        if not os.path.isdir(folder):
            continue
        matches = (_SPLIT_FILE.match(f) for f in os.listdir(folder))
        names = sorted(m.string for m in matches if m and int(m.group("n")) == split_number)
        if names:
            return [os.path.join(folder, f) for f in names]
    raise DatasetFormatError(
        root,
        f"no split files <class>_test_split{split_number}.txt in any of {list(SPLIT_DIRS)}",
    )


def _parse_split_file(path: str) -> List[Tuple[str, int]]:
    """``<video>.avi <1|2>`` lines -> [(video, 1 train | 2 test)] in file order."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    out: Dict[str, int] = {}
    for num, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("1", "2"):
            raise DatasetFormatError(
                path,
                f"line {num}: expected '<video>.avi <1|2>' (1 = train, 2 = test), got {line!r}",
            )
        video = fields[0][:-4] if fields[0].endswith(".avi") else fields[0]
        if out.get(video, int(fields[1])) != int(fields[1]):
            raise DatasetFormatError(
                path, f"line {num}: video {video!r} listed as both train and test"
            )
        out[video] = int(fields[1])
    return list(out.items())


def read_jhmdb_split(root: str, split_number: int, subset: str) -> List[Tuple[str, str]]:
    """The clips of one split.

    Args:
        root: the J-HMDB root (holding ``splits/`` or ``listfiles/JHMDB_splits/``).
        split_number: 1, 2 or 3.
        subset: "train" or "test".

    Returns:
        [(class, video)] sorted by class, in file order within a class.
    """
    if split_number not in (1, 2, 3):
        raise ValueError(f"J-HMDB split_number must be 1, 2 or 3, got {split_number!r}")
    if subset not in SUBSETS:
        raise ValueError(f"J-HMDB subset must be one of {sorted(SUBSETS)}, got {subset!r}")
    clips = []
    for path in _split_files(root, split_number):
        action = _SPLIT_FILE.match(os.path.basename(path)).group("cls")
        clips += [(action, v) for v, s in _parse_split_file(path) if s == SUBSETS[subset]]
    return clips


# ---------------------------------------------------------------------------------------------
# Native files


def _read_mat_var(path: str, name: str, whole_file: bool = True) -> np.ndarray:
    """Variable ``name`` of a MATLAB file. ``whole_file=False`` stops reading once the variable is
    found (puppet_flow.mat also holds the flow field, which is large and unused here), so damage
    after it goes unnoticed; the small files are read whole, so any truncation is an error."""
    import scipy.io

    if not os.path.isfile(path):
        raise DatasetFormatError(path, "file not found")
    try:
        data = scipy.io.loadmat(path, variable_names=None if whole_file else [name])
    except Exception as e:  # truncated, not a .mat, v7.3/HDF5, ...: all name the file
        raise DatasetFormatError(
            path, f"cannot read MATLAB file ({type(e).__name__}: {e})"
        ) from None
    if name not in data:
        found = [k for k in data if not k.startswith("__")]
        raise DatasetFormatError(path, f"no variable {name!r} (found {found})")
    return np.asarray(data[name])


def _read_volume(path: str, whole_file: bool = True) -> np.ndarray:
    """``part_mask`` of puppet_mask.mat / puppet_flow.mat -> integer array (H, W, T)."""
    vol = _read_mat_var(path, "part_mask", whole_file)
    if vol.ndim == 2:
        vol = vol[:, :, None]  # MATLAB drops the trailing singleton dimension of 1-frame clips
    if vol.ndim != 3 or min(vol.shape) == 0 or vol.dtype.kind not in "biuf":
        raise DatasetFormatError(
            path,
            f"'part_mask' must be a numeric (H, W, T) array, got shape {vol.shape} {vol.dtype}",
        )
    if vol.dtype.kind == "f":
        if not np.array_equal(vol, np.round(vol)):
            raise DatasetFormatError(path, "'part_mask' holds non-integer values")
    return vol


def _read_joints(path: str, num_joints: int) -> np.ndarray:
    """``pos_img`` of joint_positions.mat -> float64 (2, K, T)."""
    pos = _read_mat_var(path, "pos_img")
    if pos.ndim == 2:
        pos = pos[:, :, None]
    if (
        pos.ndim != 3
        or pos.shape[:2] != (2, num_joints)
        or pos.shape[2] == 0
        or pos.dtype.kind not in "biuf"
    ):
        raise DatasetFormatError(
            path,
            f"'pos_img' must be a numeric (2, {num_joints}, T) array, "
            f"got shape {pos.shape} {pos.dtype}",
        )
    return pos.astype(np.float64)


def _frame_files(frame_dir: str) -> List[str]:
    """Frame paths in frame order; checks that the numbers run 1..N without gaps."""
    if not os.path.isdir(frame_dir):
        raise DatasetFormatError(frame_dir, "frame folder not found")
    by_number: Dict[int, str] = {}
    for name in os.listdir(frame_dir):
        stem, ext = os.path.splitext(name)
        if ext.lower() != ".png":
            continue
        if not stem.isdigit():
            raise DatasetFormatError(
                os.path.join(frame_dir, name), "frame name is not a frame number"
            )
        by_number[int(stem)] = os.path.join(frame_dir, name)
    if not by_number:
        raise DatasetFormatError(frame_dir, "no .png frames")
    for n in range(1, len(by_number) + 1):
        if n not in by_number:
            width = len(os.path.splitext(os.path.basename(next(iter(by_number.values()))))[0])
            raise DatasetFormatError(
                os.path.join(frame_dir, f"{n:0{width}d}.png"), "frame image missing"
            )
    return [by_number[n] for n in range(1, len(by_number) + 1)]


# ---------------------------------------------------------------------------------------------
# Clip -> records


def _check_flow(
    paths: _ClipPaths, flow: np.ndarray, mask_hw: Tuple[int, int], num_parts: int
) -> None:
    if flow.shape[:2] != mask_hw:
        raise DatasetFormatError(
            paths.flow,
            f"'part_mask' is {flow.shape[0]}x{flow.shape[1]} (H x W) but puppet_mask {paths.mask} "
            f"is {mask_hw[0]}x{mask_hw[1]}",
        )
    bad = (flow < 0) | (flow > num_parts)
    if bad.any():
        t = int(np.nonzero(bad.any(axis=(0, 1)))[0][0])
        values = sorted(set(np.unique(flow[:, :, t][bad[:, :, t]]).tolist()))[:5]
        raise DatasetFormatError(
            paths.flow, f"frame {t + 1}: part label(s) {values} outside 0..{num_parts}"
        )


def _num_usable(paths: _ClipPaths, frames: List[str], counts: Dict[str, int]) -> int:
    """Number of leading frames that have every annotation; drops the rest with a log line."""
    longer = ", ".join(f"{os.path.basename(p)} {t}" for p, t in counts.items() if t > len(frames))
    if longer:
        width = len(os.path.splitext(os.path.basename(frames[-1]))[0])
        missing = os.path.join(paths.frame_dir, f"{len(frames) + 1:0{width}d}.png")
        raise DatasetFormatError(
            missing, f"frame image missing (frames in {longer}; {len(frames)} images in the folder)"
        )
    usable = min(counts.values())
    if usable < len(frames):
        short = ", ".join(
            f"{os.path.basename(p)} {t}" for p, t in counts.items() if t < len(frames)
        )
        logger.info(
            "%s: %d of %d frames dropped (frames in %s; missing masks are never filled in)",
            paths.clip,
            len(frames) - usable,
            len(frames),
            short,
        )
    return usable


def _keypoints(
    paths: _ClipPaths,
    pos: np.ndarray,
    t: int,
    hw: Tuple[int, int],
    opts: _Options,
    names: Sequence[str],
) -> Tuple[List[float], int]:
    """pos_img[:, :, t] -> (flat [x, y, v] * K in continuous coords, number outside the frame)."""
    h, w = hw
    out, outside = [], 0
    for k in range(pos.shape[1]):
        x, y = (float(v) - POS_IMG_ORIGIN + 0.5 for v in pos[:, k, t])
        if not (np.isfinite(x) and np.isfinite(y)):
            raise DatasetFormatError(
                paths.joints, f"frame {t + 1}, joint {names[k]}: non-finite position"
            )
        if 0 <= x <= w and 0 <= y <= h:
            out += [x, y, 2]
            continue
        if opts.keypoints_outside == "error":
            raise DatasetFormatError(
                paths.joints,
                f"frame {t + 1}, joint {names[k]} at ({x:.1f}, {y:.1f}) lies outside the "
                f"{w}x{h} frame",
            )
        outside += 1
        out += [0.0, 0.0, 0]
    return out, outside


def _person(silhouette: np.ndarray, part_map: Optional[np.ndarray], keypoints: List[float]) -> Dict:
    """The frame's person. silhouette: bool (H, W); part_map: (H, W) labels or None."""
    inside = (
        None if part_map is None else np.where(silhouette, part_map, 0)
    )  # labels checked: 0..10
    ann = person_annotation(silhouette, inside)
    ann["keypoints"] = keypoints
    if inside is not None:
        ann["parts_complete"] = True
    return ann


def _convert_clip(paths: _ClipPaths, opts: _Options) -> List[Dict[str, Any]]:
    """One clip -> its frame records (every ``frame_stride``-th usable frame)."""
    kp_names = get_keypoint_taxonomy(KEYPOINT_TAXONOMY).names
    num_parts = get_part_taxonomy(PART_TAXONOMY).num_parts
    frames = _frame_files(paths.frame_dir)
    pos = _read_joints(paths.joints, len(kp_names))
    mask = _read_volume(paths.mask)
    flow = _read_volume(paths.flow, whole_file=False) if os.path.isfile(paths.flow) else None
    counts = {paths.joints: pos.shape[2], paths.mask: mask.shape[2]}
    if flow is not None:
        _check_flow(paths, flow, mask.shape[:2], num_parts)
        flow = flow.astype(np.uint8, copy=False)  # labels 0..num_parts (checked)
        counts[paths.flow] = flow.shape[2]
    usable = _num_usable(paths, frames, counts)
    records, outside, empty = [], 0, 0
    for t in range(0, usable, opts.frame_stride):
        hw = image_size(frames[t], "frame image missing")
        if hw != mask.shape[:2]:
            raise DatasetFormatError(
                frames[t],
                f"image is {hw[0]}x{hw[1]} (H x W) but {paths.mask} 'part_mask' is "
                f"{mask.shape[0]}x{mask.shape[1]}x{mask.shape[2]} (H x W x T)",
            )
        kps, n_out = _keypoints(paths, pos, t, hw, opts, kp_names)
        outside += n_out
        silhouette = mask[:, :, t] != 0
        persons = []
        if silhouette.any():
            persons.append(_person(silhouette, None if flow is None else flow[:, :, t], kps))
        else:
            empty += 1
        records.append(_record(paths, frames[t], t, hw, persons))
    if outside:
        logger.info("%s: %d joint positions outside the frame set invisible", paths.clip, outside)
    if empty:
        logger.debug("%s: %d frames with an empty silhouette have no person", paths.clip, empty)
    return records


def _record(
    paths: _ClipPaths, frame: str, t: int, hw: Tuple[int, int], persons: List[Dict]
) -> Dict:
    stem = os.path.splitext(os.path.basename(frame))[0]
    return {
        "file_name": frame,
        "height": hw[0],
        "width": hw[1],
        "image_id": f"{paths.clip}/{stem}",
        "video_id": paths.clip,
        "frame_index": t,  # 0-based index into the clip's frames and annotation arrays
        "part_taxonomy": PART_TAXONOMY,
        "keypoint_taxonomy": KEYPOINT_TAXONOMY,  # the mapper maps jhmdb15 to the model's set
        "annotations": persons,
    }


# ---------------------------------------------------------------------------------------------
# Public API


def load_jhmdb(
    root: str,
    split_number: int,
    subset: str,
    *,
    frame_stride: int = 1,
    flow_variant: str = "com",
    keypoints_outside: str = "invisible",
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Load one J-HMDB split as contract records (one per used frame, one person each).

    Args:
        root: the J-HMDB root (tree in the module docstring).
        split_number: 1, 2 or 3 (``<class>_test_split<N>.txt``).
        subset: "train" (split value 1) or "test" (split value 2).
        frame_stride: keep frames 0, s, 2s, ... of each clip (0-based frame index).
        flow_variant: "com" or "ann": which ``puppet_flow_<variant>`` gives the part labels.
        keypoints_outside: "invisible" (visibility 0, counted in the log) or "error".
        on_error: "raise" or "skip" (a bad clip is logged, skipped and counted).
        use_cache: reuse the per-clip record cache (``$BODYPARTS_CACHE_DIR``).
        report: filled with counts (items = clips) and timing.

    Returns:
        records (see :mod:`bodyparts.data.contract`), clips in split order, frames in order.
        Records carry ``video_id`` ("<class>/<video>") and ``frame_index`` (0-based) too.
    """
    check_on_error(on_error)
    if flow_variant not in FLOW_VARIANTS:
        raise ValueError(f"flow_variant must be one of {FLOW_VARIANTS}, got {flow_variant!r}")
    if keypoints_outside not in ("invisible", "error"):
        raise ValueError(
            f"keypoints_outside must be 'invisible' or 'error', got {keypoints_outside!r}"
        )
    if not isinstance(frame_stride, int) or frame_stride < 1:
        raise ValueError(f"frame_stride must be a positive integer, got {frame_stride!r}")
    root = os.path.abspath(root)
    opts = _Options(frame_stride=frame_stride, keypoints_outside=keypoints_outside)
    clips = {}
    for action, video in read_jhmdb_split(root, split_number, subset):
        paths = _ClipPaths.of(root, action, video, flow_variant)
        clips[paths.clip] = paths
    items = [
        LoadItem(key=c, sources=(p.joints, p.mask, p.flow, p.frame_dir)) for c, p in clips.items()
    ]
    name = f"jhmdb_split{split_number}_{subset}"
    records = load_items_cached(
        "jhmdb",
        repr((root, split_number, subset, frame_stride, flow_variant, keypoints_outside)),
        _VERSION,
        items,
        lambda item: _convert_clip(clips[item.key], opts),
        on_error=on_error,
        use_cache=use_cache,
        desc=name,
        report=report,
    )
    _log_summary(name, records)
    return records


def _log_summary(name: str, records: List[Dict[str, Any]]) -> None:
    invisible = sum(
        1 for r in records for a in r["annotations"] for v in a["keypoints"][2::3] if v == 0
    )
    no_parts = sum(1 for r in records for a in r["annotations"] if a.get("parts") is None)
    logger.info(
        "%s: %d frames, %d joint positions outside the frame (visibility 0), %d persons without "
        "puppet_flow parts",
        name,
        len(records),
        invisible,
        no_parts,
    )


def register_jhmdb_split(
    name: str, root: str, split_number: int, subset: str, *, frame_stride: int = 1, **load_kwargs
) -> None:
    """Register one split under ``name`` (lazy: files are read on first ``DatasetCatalog.get``).

    ``load_kwargs`` go to :func:`load_jhmdb` (``flow_variant``, ``keypoints_outside``, ...);
    ``on_error`` is decided at load time by :func:`register_native_split` (``$BODYPARTS_ON_ERROR``).
    """
    meta = bodyparts_metadata(PART_TAXONOMY, KEYPOINT_TAXONOMY)
    meta.update(
        jhmdb_root=root,
        jhmdb_split=dict(split_number=split_number, subset=subset, frame_stride=frame_stride),
    )

    def load(on_error: str = "raise") -> List[Dict[str, Any]]:
        return load_jhmdb(
            root, split_number, subset, frame_stride=frame_stride, on_error=on_error, **load_kwargs
        )

    register_native_split(name, load, meta)


def register_all_jhmdb(root: Optional[str] = None) -> List[str]:
    """Register the J-HMDB splits under ``<root>/jhmdb`` (root default: ``$DETECTRON2_DATASETS``).

    Names: ``jhmdb_split{1,2,3}_{train,test}`` (every frame) and ``jhmdb_split1_train_stride5``.
    """
    jhmdb_root = os.path.join(datasets_root() if root is None else root, "jhmdb")
    names = []
    for n in (1, 2, 3):
        for subset in ("train", "test"):
            names.append(f"jhmdb_split{n}_{subset}")
            register_jhmdb_split(names[-1], jhmdb_root, n, subset)
    names.append("jhmdb_split1_train_stride5")
    register_jhmdb_split(names[-1], jhmdb_root, 1, "train", frame_stride=5)
    return names
