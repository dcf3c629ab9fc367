"""Shared machinery of the native-format loaders: errors, skip policy, the record cache,
registration.

Every native loader (PASCAL-Part, ChaLearn LAP, ADE20K, J-HMDB) splits its dataset into *items*
(one annotation file, one frame, ...), each read from a few source files, and turns each item into
zero or more contract records (:mod:`bodyparts.data.contract`). :func:`load_items_cached` runs that
conversion once and keeps the records in a compact cache file; a later load re-reads only the
items whose source files changed (size or modification time), so a warm load of thousands of
``.mat`` files takes a fraction of a second per thousand.

Errors: a loader raises :class:`DatasetFormatError` naming the file and the problem. With
``on_error="skip"`` the item is logged and skipped and the final count is logged; skipped items are
remembered in the cache too, so a warm load reports the same skips.
"""

import hashlib
import inspect
import logging
import os
import pickle
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from ...checkpoint import WeightsFileError, restricted_load
from ..contract import validate_record
from ..errors import DataContractError, DatasetFormatError, check_on_error, default_on_error
from ..image_io import read_label_map

__all__ = [
    "DatasetFormatError",
    "LoadItem",
    "LoadReport",
    "load_items_cached",
    "cache_dir",
    "register_native_split",
    "default_on_error",
    "check_on_error",
    "validate_records",
    "image_size",
    "read_label_png",
    "read_id_list",
]

logger = logging.getLogger(__name__)

_CACHE_FORMAT = 2
# What a record cache may name besides plain data and numpy arrays (records' ``bbox_mode``).
CACHE_GLOBALS = ("detectron2.structures.boxes.BoxMode",)


@dataclass(frozen=True)
class LoadItem:
    """One unit of a native dataset.

    Attributes:
        key: unique, stable id of the item within the split (e.g. the image id or "seq/frame").
        sources: the files the item is read from; their size and mtime decide cache validity.
    """

    key: str
    sources: Tuple[str, ...]


@dataclass
class LoadReport:
    """What the last :func:`load_items_cached` call did (also logged)."""

    num_items: int = 0
    num_records: int = 0
    num_parsed: int = 0  # items converted from their source files in this call
    num_cached: int = 0  # items taken from the cache
    skipped: Tuple[Tuple[str, str], ...] = ()  # (item key, problem) of skipped items
    seconds: float = 0.0


def cache_dir() -> str:
    """Directory of the record caches: ``$BODYPARTS_CACHE_DIR``, default
    ``~/.cache/bodyparts/datasets``."""
    default = os.path.join(os.path.expanduser("~"), ".cache", "bodyparts", "datasets")
    return os.environ.get("BODYPARTS_CACHE_DIR", default)


def _fingerprint(sources: Sequence[str]) -> Tuple:
    out = []
    for path in sources:
        try:
            st = os.stat(path)
            out.append((path, st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append((path, -1, -1))
    return tuple(out)


def _cache_file(loader: str, cache_key: str) -> str:
    digest = hashlib.sha1(cache_key.encode("utf-8")).hexdigest()[:16]
    return os.path.join(cache_dir(), f"{loader}-{digest}.pkl")


def _valid_cache_entry(entry: Any) -> bool:
    """A cache entry: ``(fingerprint, "ok", [record dict, ...])`` or
    ``(fingerprint, "error", (file, problem))``."""
    if not (isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[0], tuple)):
        return False
    _, status, value = entry
    if status == "ok":
        return isinstance(value, list) and all(isinstance(r, dict) for r in value)
    return status == "error" and isinstance(value, tuple) and len(value) == 2


def _read_cache(path: str, version: str) -> Dict[str, Any]:
    """The cached items, or {} when the cache is missing, stale, unreadable, not plain data
    (read with :func:`bodyparts.checkpoint.restricted_load`: nothing in it can run code) or not
    of the expected layout: such a cache is rebuilt, never trusted."""
    try:
        with open(path, "rb") as f:
            payload = restricted_load(f, path=path, extra_globals=CACHE_GLOBALS)
    except FileNotFoundError:
        return {}
    except (WeightsFileError, OSError) as e:
        logger.warning("ignoring unusable record cache %s (%s); rebuilding it", path, e)
        return {}
    if (
        not isinstance(payload, dict)
        or payload.get("format") != _CACHE_FORMAT
        or payload.get("version") != version
    ):
        return {}
    items = payload.get("items")
    if not isinstance(items, dict) or not all(
        isinstance(k, str) and _valid_cache_entry(v) for k, v in items.items()
    ):
        logger.warning("ignoring malformed record cache %s; rebuilding it", path)
        return {}
    return items


def _write_cache(path: str, version: str, items: Dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump({"format": _CACHE_FORMAT, "version": version, "items": items}, f, protocol=4)
    os.replace(tmp, path)


def load_items_cached(
    loader: str,
    cache_key: str,
    version: str,
    items: Sequence[LoadItem],
    convert: Callable[[LoadItem], List[Dict[str, Any]]],
    *,
    on_error: str = "raise",
    use_cache: bool = True,
    desc: Optional[str] = None,
    report: Optional[LoadReport] = None,
) -> List[Dict[str, Any]]:
    """Convert ``items`` to records, reusing the cache for unchanged items.

    Args:
        loader: short loader name (cache file prefix), e.g. "pascal_part".
        cache_key: everything else that changes the output (root, split, options); hashed.
        version: the loader's output version; bump it when the conversion changes.
        items: the split's items in order.
        convert: item -> list of records; raises :class:`DatasetFormatError` (or
            :class:`DataContractError`) on bad input.
        on_error: "raise" or "skip" (log each bad item, log the count at the end).
        use_cache: False = convert everything and leave the cache alone.
        desc: progress-bar label.
        report: filled with counts and timing when given.

    Returns:
        the records of all items, in item order.
    """
    check_on_error(on_error)
    start = time.perf_counter()
    path = _cache_file(loader, cache_key)
    cached = _read_cache(path, version) if use_cache else {}
    fresh: Dict[str, Any] = {}
    todo = []
    for item in items:
        fp = _fingerprint(item.sources)
        hit = cached.get(item.key)
        if hit is not None and hit[0] == fp:
            fresh[item.key] = hit
        else:
            todo.append((item, fp))
    if todo:
        from tqdm import tqdm

        label = desc or loader
        bar = tqdm(
            todo,
            desc=f"{label}: reading {len(todo)} of {len(items)} items",
            unit="item",
            disable=len(todo) < 20,
            mininterval=1.0,
        )
        for item, fp in bar:
            try:
                fresh[item.key] = (fp, "ok", convert(item))
            except DataContractError as e:
                if on_error == "raise":
                    raise
                where = (e.path, e.problem) if isinstance(e, DatasetFormatError) else (None, str(e))
                fresh[item.key] = (fp, "error", where)
    records: List[Dict[str, Any]] = []
    skipped = []
    for item in items:
        _, status, value = fresh[item.key]
        if status == "ok":
            records.extend(value)
            continue
        bad_file, problem = value  # remembered from an earlier load with on_error="skip"
        if on_error == "raise":
            raise (
                DatasetFormatError(bad_file, problem)
                if bad_file is not None
                else DataContractError(problem)
            )
        message = f"{bad_file}: {problem}" if bad_file is not None else problem
        skipped.append((item.key, message))
        logger.warning("skipping %s: %s", item.key, message)
    if use_cache and (todo or set(cached) != set(fresh)):
        try:
            _write_cache(path, version, fresh)
        except OSError as e:
            logger.warning(
                "could not write the record cache %s (%s); the next load re-reads the files",
                path,
                e,
            )
    if skipped:
        logger.warning(
            "%s: skipped %d of %d items with problems", desc or loader, len(skipped), len(items)
        )
    rep = report if report is not None else LoadReport()
    rep.num_items, rep.num_records = len(items), len(records)
    rep.num_parsed, rep.num_cached = len(todo), len(items) - len(todo)
    rep.skipped, rep.seconds = tuple(skipped), time.perf_counter() - start
    logger.info(
        "%s: %d records from %d items (%d read, %d from cache %s) in %.2f s",
        desc or loader,
        len(records),
        len(items),
        len(todo),
        len(items) - len(todo),
        path,
        rep.seconds,
    )
    return records


def register_native_split(
    name: str,
    load: Callable[..., List[Dict[str, Any]]],
    metadata: Dict[str, Any],
) -> None:
    """Register a lazily loaded split: ``load(on_error=...)`` runs on first
    ``DatasetCatalog.get(name)``.

    ``on_error`` is :func:`default_on_error` at load time, so ``BODYPARTS_ON_ERROR=skip`` trains on
    a dataset with a few broken files (each logged, with a final count). ``load`` may also take no
    argument. ``metadata`` is typically :func:`bodyparts.data.datasets.generic.bodyparts_metadata`
    plus dataset-specific entries (root directories, split list file, ...).
    """
    takes_on_error = "on_error" in inspect.signature(load).parameters

    def _load() -> List[Dict[str, Any]]:
        return load(on_error=default_on_error()) if takes_on_error else load()

    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, _load)
    MetadataCatalog.get(name).set(**metadata)


def image_size(path: str, missing: str = "image not found") -> Tuple[int, int]:
    """(H, W) of an image from its header (no full decode).

    Raises:
        DatasetFormatError: naming ``path``, with ``missing`` when the file does not exist, or the
            reason when it is not a readable image (truncated, not an image, ...).
    """
    from PIL import Image

    if not os.path.isfile(path):
        raise DatasetFormatError(path, missing)
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception as e:  # PIL raises many types for truncated or odd files
        raise DatasetFormatError(path, f"not a readable image ({type(e).__name__}: {e})") from None
    return h, w


def read_label_png(
    path: str,
    what: str,
    size: Optional[Tuple[int, int]] = None,
    image: str = "",
    num_labels: Optional[int] = None,
    ignore_value: Optional[int] = None,
) -> np.ndarray:
    """Decode an 8-bit single-channel label PNG (PIL mode ``L`` or ``P``: grey values or palette
    indices, which both are the labels).

    Args:
        path: the PNG.
        what: what the file is, for errors (e.g. "Category_ids map").
        size: expected (H, W), the size of ``image``; None = not checked.
        image: the image the map belongs to, named in size errors.
        num_labels: labels must lie in ``0 .. num_labels - 1`` (or be ``ignore_value``); None = any.
        ignore_value: one more allowed value (e.g. 255 = ignore), or None.
    Returns:
        uint8 (H, W).
    Raises:
        DatasetFormatError: naming ``path``: missing, empty, not an image, truncated or corrupt,
            another pixel mode (an RGB or 16-bit PNG where an 8-bit label map is expected; these
            come from :func:`bodyparts.data.image_io.read_label_map` as its ``ImageFileError``),
            another size than the image, labels outside the allowed range (the first few are
            listed).
    """
    labels = read_label_map(path, what)
    if size is not None and labels.shape != tuple(size):
        of = f" but its image {image}" if image else " but its image"
        raise DatasetFormatError(
            path,
            f"{what} is {labels.shape[1]}x{labels.shape[0]} (W x H){of} is {size[1]}x{size[0]}",
        )
    if num_labels is not None:
        present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
        bad = [int(v) for v in present if v >= num_labels and v != ignore_value]
        if bad:
            allowed = f"0..{num_labels - 1}"
            if ignore_value is not None:
                allowed += f" (and {ignore_value})"
            raise DatasetFormatError(
                path, f"{what} holds label value(s) {bad[:8]} outside {allowed}"
            )
    return labels


def read_id_list(list_file: str) -> List[str]:
    """Image ids of a split list, in file order.

    Accepts one id per line (VOC ``ImageSets/Main/train.txt``, Pascal-Person-Part ``train_id.txt``)
    or ``<image path> <gt path>`` per line (Pascal-Person-Part ``train.txt``; the id is the image
    file's stem and must equal the GT file's). Blank lines are ignored; duplicate ids are an error.
    """
    try:
        with open(list_file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise DatasetFormatError(list_file, "split list file not found") from None
    except UnicodeDecodeError as e:
        raise DatasetFormatError(list_file, f"not a text file ({e})") from None
    ids: List[str] = []
    first_line: Dict[str, int] = {}
    for lineno, line in enumerate(lines, 1):
        tokens = line.split()
        if not tokens:
            continue
        stems = [os.path.splitext(os.path.basename(t))[0] for t in tokens]
        if len(tokens) > 2 or (len(tokens) == 2 and stems[0] != stems[1]) or not stems[0]:
            raise DatasetFormatError(
                list_file,
                f"line {lineno}: expected '<id>' or '<image path> <gt path>' of one id, "
                f"got {line!r}",
            )
        if stems[0] in first_line:
            raise DatasetFormatError(
                list_file,
                f"line {lineno}: id {stems[0]!r} already listed on line {first_line[stems[0]]}",
            )
        first_line[stems[0]] = lineno
        ids.append(stems[0])
    return ids


def validate_records(
    records: List[Dict[str, Any]], source: str, num_parts: int, keypoint_names=None
) -> None:
    """Validate converter output against the contract (raises DataContractError naming
    ``source``)."""
    for rec in records:
        validate_record(
            rec, source=source, num_classes=1, num_parts=num_parts, keypoint_names=keypoint_names
        )
