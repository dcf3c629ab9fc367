"""Reading a record's image: one function for every mapper and for ``tools/check_dataset.py``.

:func:`read_image` gives what Detectron2's ``detection_utils.read_image`` gives (an H x W x C array
in the model's ``INPUT.FORMAT``, EXIF orientation applied, Pillow's mode conversion), but every
image-level fault is an :class:`ImageFileError` that names the file and the problem, where
Detectron2 would raise a bare ``OSError: image file is truncated (31 bytes not processed)`` from
inside the data loader. Loaders read only image headers, so these faults surface here:

* missing file, unreadable file, 0-byte file;
* content Pillow cannot identify (a text file behind a ``.jpg`` name);
* data truncated or corrupt after an intact header (the header gives the size, decoding fails);
* a pixel mode with no defined 8-bit image (32-bit integer ``I`` or float ``F`` pixels of unknown
  range, e.g. a TIFF), or one Pillow cannot convert to the format;
* (:func:`read_record_image`) a decoded size other than the record's ``height`` x ``width``:
  :class:`ImageSizeMismatchError`, also a Detectron2 ``SizeMismatchError``.

:func:`read_label_map` reads label maps (a record's ``sem_seg_file_name``, the label PNGs of the
native loaders) with the same faults named, and one more: a pixel mode other than 8-bit single
channel (an RGB or 16-bit PNG is an error, never cut to 8 bits or taken channel by channel).

Odd but well-defined images load: the content decides, not the name (a PNG behind a ``.jpg`` name
is that PNG); CMYK and other modes are converted by Pillow as Detectron2 does (CMYK -> RGB is
Pillow's ``R = 255 - C - K``, without colour management); a 16-bit grey PNG (mode ``I;16``) is
scaled to 8 bits (``v >> 8``, as Pillow reads 16-bit colour PNGs), where Pillow's own conversion
would clip every value above 255 to white.

:class:`RecordImageReader` applies the skip policy of a training mapper
(``BODYPARTS_ON_ERROR=skip``, :func:`~bodyparts.data.datasets.native.default_on_error`): the bad
image is logged with its file and problem, counted, and the mapper returns None, which Detectron2's
``MapDataset`` answers by mapping another index (on v0.6 with Python >= 3.11 through the fix in
:mod:`bodyparts.compat.runtime`).
"""

import logging
from typing import BinaryIO, Mapping, Optional, Set

import numpy as np
from detectron2.data import detection_utils as utils
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.utils.file_io import PathManager
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import DatasetFormatError, check_on_error, default_on_error

__all__ = [
    "ImageFileError",
    "ImageSizeMismatchError",
    "read_image",
    "read_record_image",
    "read_label_map",
    "RecordImageReader",
]

logger = logging.getLogger(__name__)

_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_EXIF_ORIENTATION = 0x0112  # EXIF tag "Orientation"


class ImageFileError(DatasetFormatError):
    """An image file (a photo or a label map) is missing, empty, not an image, truncated or
    corrupt, or of a pixel mode that has no 8-bit image (label maps: no 8-bit single-channel map).
    ``path`` is the file, ``problem`` what is wrong with it."""


class ImageSizeMismatchError(ImageFileError, SizeMismatchError):
    """The decoded image's size differs from its record's ``height`` x ``width``."""


def _open(f: BinaryIO, file_name: str) -> Image.Image:
    """The open file ``f`` opened by Pillow (header only; nothing decoded yet)."""
    head = f.read(12)
    if not head:
        raise ImageFileError(file_name, "empty file (0 bytes)")
    f.seek(0)
    try:
        return Image.open(f)
    except UnidentifiedImageError:
        raise ImageFileError(
            file_name, f"not an image Pillow can identify (the file starts with {head!r})"
        ) from None
    except Exception as e:  # e.g. DecompressionBombError
        raise ImageFileError(
            file_name, f"cannot be opened as an image ({type(e).__name__}: {e})"
        ) from None


def _decode(f: BinaryIO, file_name: str, image_format: Optional[str]) -> np.ndarray:
    image = _open(f, file_name)
    file_format = image.format  # transposed copies lose it
    try:
        image.load()
    except Exception as e:  # OSError "image file is truncated", SyntaxError "broken PNG file", ...
        raise ImageFileError(
            file_name,
            f"truncated or corrupt {file_format or 'image'} data (Pillow: {e}); the header says "
            f"{image.width} x {image.height} (width x height)",
        ) from None
    try:
        if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
            image = ImageOps.exif_transpose(image)
    except Exception:  # unreadable EXIF: keep the pixels as stored, as Detectron2 does
        pass
    image = _to_eight_bit(image, file_name, file_format)
    try:
        return utils.convert_PIL_to_numpy(image, image_format)
    except ValueError as e:  # Pillow: "conversion from X to Y not supported"
        raise ImageFileError(
            file_name, f"image mode {image.mode} cannot be converted to {image_format} ({e})"
        ) from None


def _to_eight_bit(image: Image.Image, file_name: str, file_format: Optional[str]) -> Image.Image:
    """16-bit grey -> 8-bit grey (``v >> 8``); other modes unchanged; I / F (no range): error.
    ``file_format``: Pillow's name of the file's format ("PNG", "TIFF", ...)."""
    if image.mode in _SIXTEEN_BIT_MODES or (image.mode == "I" and file_format == "PNG"):
        values = np.asarray(image).astype(np.uint32)  # a PNG's "I" holds 16-bit values
        return Image.fromarray((values >> 8).astype(np.uint8))
    if image.mode in ("I", "F"):
        kind = "32-bit integer" if image.mode == "I" else "32-bit float"
        raise ImageFileError(
            file_name,
            f"image mode {image.mode} ({kind} pixels{f', {file_format}' if file_format else ''}) "
            "has no defined 8-bit range; save it as an 8-bit RGB or grey image",
        )
    return image


def read_image(file_name: str, image_format: Optional[str]) -> np.ndarray:
    """Read and decode an image file in full.

    Args:
        file_name: the image's path (any path ``PathManager`` opens).
        image_format: the model's ``INPUT.FORMAT`` ("BGR", "RGB", "L", "YUV-BT.601", or any Pillow
            mode), as for Detectron2's ``read_image``; None keeps the file's mode.
    Returns:
        (H, W, C) array, H x W the size after EXIF orientation: uint8 for "BGR" / "RGB" (C = 3) and
        "L" (C = 1), float for "YUV-BT.601".
    Raises:
        ImageFileError: naming ``file_name`` and the problem (see the module docstring).
    """
    try:
        f = PathManager.open(file_name, "rb")
    except FileNotFoundError:
        raise ImageFileError(file_name, "image not found") from None
    except OSError as e:  # a directory, no permission, ...
        raise ImageFileError(file_name, f"cannot be read ({e.strerror or e})") from None
    with f:
        return _decode(f, file_name, image_format)


_LABEL_MODES = ("L", "P")  # grey values or palette indices: both are the labels


def _label_mode_problem(mode: str) -> str:
    bands = Image.getmodebands(mode)
    if bands > 1:
        return f"{bands} channels"
    return "1-bit pixels" if mode == "1" else "pixels wider than 8 bits"


def read_label_map(file_name: str, what: str = "label map") -> np.ndarray:
    """Read and decode an 8-bit single-channel label PNG in full (Pillow mode ``L``: grey values,
    or ``P``: palette indices; both are the labels).

    Args:
        file_name: the file (any path ``PathManager`` opens).
        what: what the file is, for the errors (e.g. "part map", "Category_ids map").
    Returns:
        uint8 (H, W) labels as stored (no look-up table applied, 255 kept).
    Raises:
        ImageFileError: naming ``file_name``, ``what`` and the problem: not found or unreadable,
            empty, not an image, truncated or corrupt data, or another pixel mode (RGB, 16-bit,
            1-bit, ...).
    """
    try:
        f = PathManager.open(file_name, "rb")
    except FileNotFoundError:
        raise ImageFileError(file_name, f"{what} not found") from None
    except OSError as e:  # a directory, no permission, ...
        raise ImageFileError(file_name, f"{what} cannot be read ({e.strerror or e})") from None
    with f:
        head = f.read(12)
        if not head:
            raise ImageFileError(file_name, f"{what} is an empty file (0 bytes)")
        f.seek(0)
        try:
            image = Image.open(f)
        except UnidentifiedImageError:
            raise ImageFileError(
                file_name,
                f"{what} is not an image Pillow can identify (the file starts with {head!r})",
            ) from None
        except Exception as e:  # e.g. DecompressionBombError
            raise ImageFileError(
                file_name, f"{what} cannot be opened as an image ({type(e).__name__}: {e})"
            ) from None
        with image:
            if image.mode not in _LABEL_MODES:  # known from the header: nothing decoded
                raise ImageFileError(
                    file_name,
                    f"{what} has PIL mode {image.mode} ({_label_mode_problem(image.mode)}); "
                    "expected an 8-bit single-channel label map (mode L or P)",
                )
            try:
                image.load()
            except Exception as e:  # OSError "image file is truncated", SyntaxError, ...
                raise ImageFileError(
                    file_name,
                    f"{what} is truncated or corrupt {image.format or 'image'} data (Pillow: {e}); "
                    f"the header says {image.width} x {image.height} (width x height)",
                ) from None
            return np.array(image, dtype=np.uint8)


def _exif_orientation(file_name: str) -> Optional[int]:
    try:
        with PathManager.open(file_name, "rb") as f, Image.open(f) as im:
            return im.getexif().get(_EXIF_ORIENTATION)
    except Exception:
        return None


def read_record_image(record: Mapping, image_format: Optional[str]) -> np.ndarray:
    """:func:`read_image` of ``record["file_name"]``, checked against the record's size.

    Raises:
        ImageFileError: the file cannot be read (see :func:`read_image`).
        ImageSizeMismatchError: the decoded (H, W) differs from the record's height and width.
    """
    file_name = record["file_name"]
    image = read_image(file_name, image_format)
    try:
        utils.check_image_size(record, image)
    except SizeMismatchError:
        orientation = _exif_orientation(file_name)
        rotated = (
            f" after its EXIF orientation {orientation}" if orientation not in (None, 1) else ""
        )
        raise ImageSizeMismatchError(
            file_name,
            f"the image is {image.shape[0]} x {image.shape[1]} (height x width){rotated}, "
            f"the record says {record.get('height')} x {record.get('width')}",
        ) from None
    return image


class RecordImageReader:
    """The image reading of one mapper, under a skip policy.

    ``on_error="raise"``: :func:`read_record_image`'s errors propagate. ``on_error="skip"``: a
    record whose image cannot be read gives None; the first time, a warning names the image, the
    file and the problem; the file is remembered, so that later draws of the same record are
    skipped without reading it again. ``num_skipped`` counts the distinct images skipped (per
    mapper copy: every DataLoader worker has its own).
    """

    def __init__(
        self, image_format: Optional[str], on_error: Optional[str] = None, *, owner: str = "mapper"
    ):
        """
        Args:
            image_format: ``INPUT.FORMAT``.
            on_error: "raise" or "skip"; None = ``$BODYPARTS_ON_ERROR`` (default "raise").
            owner: the mapper's name, quoted in the log.
        """
        self.image_format = image_format
        self.on_error = default_on_error() if on_error is None else on_error
        check_on_error(self.on_error)
        self.owner = owner
        self._bad: Set[str] = set()

    @property
    def num_skipped(self) -> int:
        """Distinct images skipped so far by this reader."""
        return len(self._bad)

    def __call__(self, record: Mapping) -> Optional[np.ndarray]:
        """(H, W, C) image of ``record`` in ``image_format``, or None when skipped."""
        if record["file_name"] in self._bad:
            return None
        try:
            return read_record_image(record, self.image_format)
        except ImageFileError as e:
            if self.on_error == "raise":
                raise
            self._bad.add(record["file_name"])
            logger.warning(
                "%s: skipping image %r: %s (BODYPARTS_ON_ERROR=skip; %d image(s) skipped so far "
                "in this data loader process)",
                self.owner,
                record.get("image_id"),
                e,
                self.num_skipped,
            )
            return None
