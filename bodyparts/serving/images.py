"""Decoding of uploaded images, with errors that name the problem.

Images come back as BGR uint8 (H, W, 3), EXIF orientation applied, as ``tools/demo.py`` reads
files (``detectron2.data.detection_utils.read_image(path, format="BGR")``).
"""

import io
from typing import Optional

import numpy as np
from detectron2.data.detection_utils import convert_PIL_to_numpy
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageInputError", "RAW_IMAGE_TYPES", "check_raw_content_type", "decode_image"]

# Content types of a raw (non-multipart) request body; any image/* type is accepted too.
RAW_IMAGE_TYPES = ("application/octet-stream",)


class ImageInputError(ValueError):
    """A request whose image cannot be used: HTTP ``status``, a short ``code`` and a message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def check_raw_content_type(content_type: Optional[str], what: str = "the request body") -> None:
    """Raise ImageInputError (415) unless ``content_type`` is ``image/*`` or
    ``application/octet-stream`` (parameters such as ``; charset`` are ignored)."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media.startswith("image/") or media in RAW_IMAGE_TYPES:
        return
    shown = f"Content-Type {media!r}" if media else "no Content-Type"
    raise ImageInputError(
        415,
        "unsupported_content_type",
        f"{what} has {shown}: send an image (image/jpeg, image/png, ... or "
        "application/octet-stream) as the raw body, or multipart/form-data with a 'file' field",
    )


def decode_image(data: bytes, max_pixels: int, name: str = "the image") -> np.ndarray:
    """Decode an encoded image (JPEG, PNG, BMP, WebP, GIF: first frame, TIFF, ...).

    The size is checked from the header before any pixel is decoded, so an image over the limit
    costs no memory.

    Args:
        data: the encoded file.
        max_pixels: the largest width x height accepted.
        name: what to call the image in errors.
    Returns:
        uint8 (H, W, 3) BGR.
    Raises:
        ImageInputError: 400 ``empty_body``, ``not_an_image``, ``corrupt_image`` (truncated or
        broken data, unsupported pixel mode), 413 ``image_too_large``.
    """
    if not data:
        raise ImageInputError(400, "empty_body", f"{name} is empty (0 bytes): send an image file")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageInputError(
            400,
            "not_an_image",
            f"{name} ({len(data)} bytes) is not an image Pillow can read "
            "(JPEG, PNG, BMP, WebP, GIF, TIFF, ...)",
        ) from None
    except Image.DecompressionBombError as e:
        raise ImageInputError(413, "image_too_large", f"{name}: {e}") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageInputError(
            413,
            "image_too_large",
            f"{name} is {width} x {height} = {width * height} pixels, over the limit of "
            f"{max_pixels} pixels (the server's --max-pixels)",
        )
    if width < 1 or height < 1:
        raise ImageInputError(400, "corrupt_image", f"{name} has no pixels ({width} x {height})")
    try:
        image = ImageOps.exif_transpose(image)  # decodes the pixels
        image = image.convert("RGB")
        array = convert_PIL_to_numpy(image, "BGR")
    except Exception as e:  # noqa: BLE001  (Pillow raises OSError, SyntaxError, ValueError, ...)
        raise ImageInputError(
            400,
            "corrupt_image",
            f"{name} ({image.format or 'unknown format'}, {width} x {height}) cannot be decoded: "
            f"truncated or corrupt data ({type(e).__name__}: {e})",
        ) from None
    return np.ascontiguousarray(array)
