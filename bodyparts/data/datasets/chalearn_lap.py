"""ChaLearn Looking at People 2014, Track 1 (human pose recovery): native-format loader.

Native layout (``datasets/chalearn_lap.md``)::

    <split_dir>/SeqXX/             (the doubled SeqXX/SeqXX/ layout of some ZIPs is accepted too)
      imagesjpg/XX_YYYY.jpg        RGB frame YYYY (1-based) of sequence XX
      masks/XX_YYYY_W.png          "panoramic" form: actor W (1, 2), the 14 limb masks as tiles
                                   left to right, tile width = frame width (480 px in the dataset)
      maskspng/XX_YYYY_W_Z.png     per-limb form: actor W, limb Z (1..14), frame-sized

Decisions (each is tested in tests/test_dataset_chalearn_lap.py):

* Labels: taxonomy ``lap14``, label = limb id Z (1 head, 2 torso, 3 lhand, ..., 14 rthigh).
  "l" is taken as the subject's own left (the project's convention; unverified for LAP).
* Mask values: a pixel is foreground when its value is > :data:`MASK_THRESHOLD` (127), as the
  official evaluator thresholds; masks stored as 0/1 would therefore read as empty. Multi-channel
  PNGs (the starter kit reads 3 identical channels) are read from their first channel in OpenCV's
  order, as the official code does.
* Panoramic tiles are cut at ``[(Z-1)*w, Z*w)`` with ``w = png width / 14``, which must equal the
  frame width. The official code drops the last column of each tile (an off-by-one); we do not.
* Both layouts in one sequence: the panoramic ``masks/`` folder is used (the official code reads
  it).
* Person = actor W. There is no silhouette: the person's silhouette is the union of its 14 limbs.
  An actor whose union is empty is not a person (debug log). A missing panoramic file, or all 14
  per-limb files missing, means the actor is absent (counted in an info log); in the per-limb form a
  single missing limb file is an empty (invisible) limb.
* Parts are made disjoint by :data:`OVERLAP_PRIORITY`: where limb masks of one actor overlap, the
  more distal, usually front-most limb wins: hands, feet, forearms, lower legs, upper arms, thighs,
  head, torso (left before right within a pair). Persons may overlap each other (one annotation
  each).
* One record per frame ``1, 1 + stride, ...`` (by frame number). A frame with at least one mask file
  whose persons are all empty is kept as a negative image (no annotations). A frame without any
  mask file is unlabelled and skipped (info log); a sequence without a mask folder (validation /
  test without labels) is skipped with an info log.
* ``image_id`` is ``"XX_YYYY"`` (sequence and frame), unique across sequences.

Bad input raises :class:`~.native.DatasetFormatError` naming the file: missing or unreadable frame
JPEG, truncated PNG, panoramic width not 14x the frame width, mask size different from the frame,
actor or limb number out of range. With ``on_error="skip"`` that frame is skipped and counted.
"""

import functools
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import cv2
import numpy as np

from ...taxonomy import get_part_taxonomy
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
    validate_records,
)
from .synthetic import datasets_root

__all__ = [
    "PART_TAXONOMY",
    "NUM_LIMBS",
    "ACTORS",
    "MASK_THRESHOLD",
    "OVERLAP_PRIORITY",
    "SPLITS",
    "limbs_to_label_map",
    "load_chalearn_lap",
    "chalearn_lap_metadata",
    "register_all_chalearn_lap",
]

logger = logging.getLogger(__name__)

PART_TAXONOMY = "lap14"
NUM_LIMBS = 14
ACTORS = (1, 2)
MASK_THRESHOLD = 127  # foreground: value > 127
# Limb ids, highest priority first: hands, feet, forearms, lower legs, upper arms, thighs, head,
# torso.
OVERLAP_PRIORITY = (3, 4, 9, 10, 5, 6, 11, 12, 7, 8, 13, 14, 1, 2)
# registered name -> (folder under <root>/chalearn_lap2014, frame stride)
SPLITS = {
    "chalearn_lap2014_train": ("train", 1),
    "chalearn_lap2014_val": ("validation", 1),
    "chalearn_lap2014_train_stride6": ("train", 6),
}
_LOADER_VERSION = "1"
_SEQ_RE = re.compile(r"^Seq(\d+)$")
_JPG_RE = re.compile(r"^(\d+)_(\d+)\.jpg$", re.IGNORECASE)
_PANO_RE = re.compile(r"^(\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)
_LIMB_RE = re.compile(r"^(\d+)_(\d+)_(\d+)_(\d+)\.png$", re.IGNORECASE)


@dataclass
class _Frame:
    """What one frame is read from. ``masks[actor]`` is a panoramic path or ``{limb: path}``."""

    image_id: str
    jpg: str
    panoramic: bool
    masks: Dict[int, Union[str, Dict[int, str]]] = field(default_factory=dict)
    problem: Optional[Tuple[str, str]] = None  # (path, problem) found while listing

    def sources(self) -> Tuple[str, ...]:
        out = [self.jpg]
        for actor in sorted(self.masks):
            m = self.masks[actor]
            out.extend([m] if isinstance(m, str) else [m[z] for z in sorted(m)])
        return tuple(out)


# ---------------------------------------------------------------- reading files


def _read_mask(path: str) -> np.ndarray:
    """bool (H, W): pixels > MASK_THRESHOLD of the PNG's first channel (as OpenCV reads it)."""
    values = cv2.imread(path, cv2.IMREAD_UNCHANGED)  # ~30% faster than PIL on 6720 px panoramas
    if values is None:
        problem = "mask file not found" if not os.path.isfile(path) else "unreadable or truncated"
        raise DatasetFormatError(path, f"{problem} mask PNG")
    if values.ndim == 3:
        values = values[:, :, 0]
    return values > MASK_THRESHOLD


def _panoramic_limbs(path: str, h: int, w: int) -> np.ndarray:
    """bool (14, H, W): the 14 tiles of a panoramic mask, tile Z at columns [(Z-1)*w, Z*w)."""
    fg = _read_mask(path)
    ph, pw = fg.shape
    if pw % NUM_LIMBS or pw // NUM_LIMBS != w:
        raise DatasetFormatError(
            path,
            f"panoramic mask is {pw} px wide: tile width {pw}/{NUM_LIMBS} = {pw / NUM_LIMBS:g} px "
            f"differs from the frame width {w} px (expected {NUM_LIMBS * w} px)",
        )
    if ph != h:
        raise DatasetFormatError(
            path, f"panoramic mask height {ph} differs from the frame height {h}"
        )
    return fg.reshape(h, NUM_LIMBS, w).transpose(1, 0, 2)


def _per_limb_limbs(paths: Dict[int, str], h: int, w: int) -> np.ndarray:
    """bool (14, H, W) from per-limb PNGs ``{limb: path}``; a limb without file is empty."""
    out = np.zeros((NUM_LIMBS, h, w), dtype=bool)
    for limb, path in paths.items():
        fg = _read_mask(path)
        if fg.shape != (h, w):
            raise DatasetFormatError(
                path,
                f"limb mask size {fg.shape[1]}x{fg.shape[0]} differs from the frame size {w}x{h}",
            )
        out[limb - 1] = fg
    return out


# ---------------------------------------------------------------- building records


def limbs_to_label_map(limbs: np.ndarray) -> np.ndarray:
    """Disjoint limb labels of one actor.

    Args:
        limbs: bool (14, H, W), limb Z at index Z - 1.

    Returns:
        uint8 (H, W): limb id (1..14) by :data:`OVERLAP_PRIORITY` where limbs overlap, 0 elsewhere.
    """
    labels = np.zeros(limbs.shape[1:], dtype=np.uint8)
    for limb in reversed(OVERLAP_PRIORITY):  # lowest priority first, overwritten by higher ones
        labels[limbs[limb - 1]] = limb
    return labels


def _person(labels: np.ndarray) -> Dict[str, Any]:
    """Contract annotation of one actor from its label map (H, W) uint8 (not all zero)."""
    ann = person_annotation(labels > 0, labels)
    ann["parts_complete"] = True
    return ann


def _convert_frame(frame: _Frame) -> List[Dict[str, Any]]:
    """One record (a list of one) for a frame; raises DatasetFormatError on bad input."""
    if frame.problem is not None:
        raise DatasetFormatError(*frame.problem)
    h, w = image_size(frame.jpg, "frame image not found (its masks exist)")
    annotations = []
    for actor in sorted(frame.masks):
        m = frame.masks[actor]
        limbs = _panoramic_limbs(m, h, w) if isinstance(m, str) else _per_limb_limbs(m, h, w)
        labels = limbs_to_label_map(limbs)
        if not labels.any():
            logger.debug("%s: actor %d has empty masks; not a person", frame.image_id, actor)
            continue
        annotations.append({"id": f"{frame.image_id}_{actor}", **_person(labels)})
    record = {
        "file_name": frame.jpg,
        "height": h,
        "width": w,
        "image_id": frame.image_id,
        "part_taxonomy": PART_TAXONOMY,
        "annotations": annotations,
    }
    validate_records([record], frame.jpg, get_part_taxonomy(PART_TAXONOMY).num_parts)
    return [record]


# ---------------------------------------------------------------- listing a split


def _sequence_root(seq_dir: str, name: str) -> str:
    """``seq_dir`` or, for the doubled ZIP layout, ``seq_dir/SeqXX``."""
    inner = os.path.join(seq_dir, name)
    if not os.path.isdir(os.path.join(seq_dir, "imagesjpg")) and os.path.isdir(inner):
        return inner
    return seq_dir


def _list_sequences(
    split_dir: str, sequences: Optional[Iterable[Union[int, str]]]
) -> List[Tuple[int, str]]:
    """[(sequence number, sequence root)] sorted by number, restricted to ``sequences``."""
    if not os.path.isdir(split_dir):
        raise DatasetFormatError(
            split_dir, "split directory not found (expected SeqXX/ folders in it)"
        )
    found = {}
    for name in sorted(os.listdir(split_dir)):
        m = _SEQ_RE.match(name)
        if m and os.path.isdir(os.path.join(split_dir, name)):
            seq = int(m.group(1))
            if seq in found:
                raise DatasetFormatError(
                    os.path.join(split_dir, name), f"sequence {seq} appears twice"
                )
            found[seq] = _sequence_root(os.path.join(split_dir, name), name)
    if sequences is not None:
        wanted = [
            int(_SEQ_RE.match(s).group(1)) if isinstance(s, str) and _SEQ_RE.match(s) else int(s)
            for s in sequences
        ]
        missing = [s for s in wanted if s not in found]
        if missing:
            raise DatasetFormatError(
                split_dir, f"sequences {missing} not found; found {sorted(found)}"
            )
        found = {s: found[s] for s in wanted}
    if not found:
        raise DatasetFormatError(split_dir, "no SeqXX/ sequence folders")
    return sorted(found.items())


def _scan(folder: str, pattern: "re.Pattern", seq: int) -> List[Tuple[str, Tuple[int, ...]]]:
    """[(file name, numbers after the sequence number)] of sequence ``seq``'s files in folder."""
    out = []
    for name in sorted(os.listdir(folder)):
        m = pattern.match(name)
        if m and int(m.group(1)) == seq:
            out.append((name, tuple(int(g) for g in m.groups()[1:])))
        else:
            logger.debug("ignoring %s (not a file of sequence %d)", os.path.join(folder, name), seq)
    return out


def _panoramic_files(mask_dir: str, seq: int) -> Tuple[Dict[int, Dict[int, Any]], Dict]:
    """({frame: {actor: path}}, {frame: (path, problem)}) of ``masks/XX_YYYY_W.png`` files."""
    frames: Dict[int, Dict[int, Any]] = {}
    problems: Dict[int, Tuple[str, str]] = {}
    for name, (frame, actor) in _scan(mask_dir, _PANO_RE, seq):
        path = os.path.join(mask_dir, name)
        frames.setdefault(frame, {})[actor] = path
        if actor not in ACTORS:
            problems[frame] = (path, f"actor {actor} is not one of {ACTORS}")
    return frames, problems


def _per_limb_files(mask_dir: str, seq: int) -> Tuple[Dict[int, Dict[int, Any]], Dict]:
    """({frame: {actor: {limb: path}}}, {frame: (path, problem)}) of ``maskspng/`` files."""
    frames: Dict[int, Dict[int, Any]] = {}
    problems: Dict[int, Tuple[str, str]] = {}
    for name, (frame, actor, limb) in _scan(mask_dir, _LIMB_RE, seq):
        path = os.path.join(mask_dir, name)
        frames.setdefault(frame, {}).setdefault(actor, {})[limb] = path
        if actor not in ACTORS or not 1 <= limb <= NUM_LIMBS:
            problems[frame] = (
                path,
                f"actor {actor} / limb {limb} out of range (actors {ACTORS}, limbs 1..{NUM_LIMBS})",
            )
    return frames, problems


def _mask_files(seq_root: str, seq: int) -> Tuple[Optional[bool], Dict[int, Dict[int, Any]], Dict]:
    """Masks of a sequence: (panoramic?, {frame: {actor: path | {limb: path}}}, {frame: problem}).

    The panoramic ``masks/`` folder wins when both layouts have files. ``panoramic`` is None when
    the sequence has no mask file (unlabelled).
    """
    pano_dir, limb_dir = os.path.join(seq_root, "masks"), os.path.join(seq_root, "maskspng")
    if os.path.isdir(pano_dir):
        frames, problems = _panoramic_files(pano_dir, seq)
        if frames:
            if os.path.isdir(limb_dir):
                logger.info("%s: both mask layouts present; using the panoramic masks/", seq_root)
            return True, frames, problems
    if os.path.isdir(limb_dir):
        frames, problems = _per_limb_files(limb_dir, seq)
        if frames:
            return False, frames, problems
    return None, {}, {}


def _sequence_frames(seq: int, seq_root: str, stride: int) -> List[_Frame]:
    """The selected frames (1, 1 + stride, ...) of one sequence that have mask files."""
    panoramic, masks, problems = _mask_files(seq_root, seq)
    if panoramic is None:
        logger.info("%s: no mask files (unlabelled validation/test sequence); skipped", seq_root)
        return []
    jpg_dir = os.path.join(seq_root, "imagesjpg")
    jpgs = (
        {f: name for name, (f,) in _scan(jpg_dir, _JPG_RE, seq)} if os.path.isdir(jpg_dir) else {}
    )
    selected = sorted(f for f in set(jpgs) | set(masks) if (f - 1) % stride == 0)
    unlabelled = [f for f in selected if f not in masks]
    absent = sum(1 for f in selected if f in masks for a in ACTORS if a not in masks[f])
    if unlabelled:
        logger.info(
            "%s: %d frames without any mask file skipped (e.g. frame %d)",
            seq_root,
            len(unlabelled),
            unlabelled[0],
        )
    if absent:
        logger.info(
            "%s: %d actor mask files missing; those actors are treated as absent", seq_root, absent
        )
    out = []
    for f in selected:
        if f in masks:
            jpg = os.path.join(jpg_dir, jpgs.get(f, f"{seq:02d}_{f:04d}.jpg"))
            out.append(_Frame(f"{seq:02d}_{f:04d}", jpg, panoramic, masks[f], problems.get(f)))
    return out


# ---------------------------------------------------------------- public API


def load_chalearn_lap(
    split_dir: str,
    *,
    sequences: Optional[Iterable[Union[int, str]]] = None,
    frame_stride: int = 1,
    on_error: str = "raise",
    use_cache: bool = True,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Load the labelled frames of extracted ChaLearn LAP 2014 Track 1 sequences.

    Args:
        split_dir: folder holding ``SeqXX/`` (or ``SeqXX/SeqXX/``) sequence folders.
        sequences: sequence numbers or folder names ("Seq01") to load; None = all.
        frame_stride: keep frames 1, 1 + stride, 1 + 2 * stride, ... (by frame number).
        on_error: "raise" or "skip" (bad frames are logged, skipped and counted in ``report``).
        use_cache: reuse the per-frame record cache (:func:`.native.load_items_cached`).
        report: filled with item/record/cache counts when given.

    Returns:
        one contract record per labelled frame (``part_taxonomy`` "lap14", one annotation per
        actor with a non-empty union of limbs; parts are disjoint limb masks).
    """
    check_on_error(on_error)
    if int(frame_stride) < 1:
        raise ValueError(f"frame_stride must be >= 1, got {frame_stride!r}")
    seqs = _list_sequences(split_dir, sequences)
    frames: Dict[str, _Frame] = {}
    for seq, seq_root in seqs:
        for frame in _sequence_frames(seq, seq_root, int(frame_stride)):
            frames[frame.image_id] = frame
    items = [LoadItem(key, frame.sources()) for key, frame in frames.items()]
    cache_key = f"{os.path.abspath(split_dir)}|{[s for s, _ in seqs]}|stride={int(frame_stride)}"
    return load_items_cached(
        "chalearn_lap",
        cache_key,
        _LOADER_VERSION,
        items,
        lambda item: _convert_frame(frames[item.key]),
        on_error=on_error,
        use_cache=use_cache,
        desc=f"chalearn_lap {os.path.basename(os.path.normpath(split_dir))}",
        report=report,
    )


def chalearn_lap_metadata(split_dir: str, frame_stride: int) -> Dict[str, Any]:
    """Metadata of a LAP split: the lap14 part tables (flip pairs) plus where and how it is read."""
    return {
        **bodyparts_metadata(PART_TAXONOMY, None),
        "dataset_root": split_dir,
        "frame_stride": frame_stride,
        "mask_threshold": MASK_THRESHOLD,
        "part_overlap_priority": list(OVERLAP_PRIORITY),
    }


def register_all_chalearn_lap(root: Optional[str] = None) -> List[str]:
    """Register :data:`SPLITS` lazily from ``<root>/chalearn_lap2014/{train,validation}/SeqXX/``.

    Args:
        root: datasets root; default ``$DETECTRON2_DATASETS`` (``./datasets``).

    Returns:
        the registered names.
    """
    root = datasets_root() if root is None else root
    for name, (folder, stride) in SPLITS.items():
        split_dir = os.path.join(root, "chalearn_lap2014", folder)
        load = functools.partial(load_chalearn_lap, split_dir, frame_stride=stride)
        register_native_split(name, load, chalearn_lap_metadata(split_dir, stride))
    return list(SPLITS)
