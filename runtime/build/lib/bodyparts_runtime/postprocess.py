"""The post-processing of bodyparts / Detectron2 in numpy: the test resize, pasting ROI
probabilities into the image, keypoint decoding and COCO RLE.

Shapes: R = detections, C = part labels including background (0), M = side of the part
branch's ROI output, Ms = side of the silhouette output, K = keypoints, Mk = side of the keypoint
heatmaps, H x W = the image. Boxes are XYXY in pixels.

Each function follows the PyTorch code it stands for (named in its docstring) operation by
operation in float32, so the results agree with it up to floating-point rounding.
"""

import math
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

__all__ = [
    "resized_shape",
    "resize",
    "pillow_bilinear",
    "paste_parts",
    "paste_mask",
    "decode_keypoints",
    "rle_encode",
]

_F32 = np.float32


def resized_shape(height: int, width: int, short: int, longest: int) -> Tuple[int, int]:
    """(h, w) of Detectron2's ``ResizeShortestEdge.get_output_shape``: the shortest edge to
    ``short``, the longest at most ``longest``, rounded half up."""
    scale = short * 1.0 / min(height, width)
    if height < width:
        newh, neww = short * 1.0, scale * width
    else:
        newh, neww = scale * height, short * 1.0
    if max(newh, neww) > longest:
        scale = longest * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


def resize(image: np.ndarray, short: int, longest: int) -> np.ndarray:
    """uint8 (H, W, C) -> (h, w, C) at :func:`resized_shape`, as Detectron2's ``ResizeTransform``
    resizes uint8 images: Pillow's bilinear filter (:func:`pillow_bilinear`)."""
    height, width = image.shape[:2]
    h, w = resized_shape(height, width, short, longest)
    if (h, w) == (height, width):
        return image
    return pillow_bilinear(image, h, w)


_PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed point for 8-bit images


def _pillow_coefficients(in_size: int, out_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pillow's ``precompute_coeffs`` + ``normalize_coeffs_8bpc`` for its bilinear filter: per
    output pixel, the first input pixel and the fixed-point weights of its taps.
    Returns (int64 (out,) first, int64 (out, taps) weights, 0 past each pixel's taps)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    taps = int(math.ceil(support)) * 2 + 1
    first = np.zeros(out_size, dtype=np.int64)
    weights = np.zeros((out_size, taps), dtype=np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        k = [max(0.0, 1.0 - abs((x + xmin - center + 0.5) / filterscale)) for x in range(xmax)]
        total = sum(k)
        k = [v / total if total != 0.0 else v for v in k]
        first[xx] = xmin
        weights[xx, :xmax] = [
            int((0.5 if v >= 0 else -0.5) + v * (1 << _PRECISION_BITS)) for v in k
        ]
    return first, weights


def _pillow_pass(image: np.ndarray, out_size: int, axis: int) -> np.ndarray:
    """One of Pillow's two resampling passes (``ImagingResampleHorizontal_8bpc`` / ``Vertical``)
    of a uint8 image along ``axis`` (1: columns, 0: rows)."""
    first, weights = _pillow_coefficients(image.shape[axis], out_size)
    moved = np.moveaxis(image, axis, 0).astype(np.int64)
    acc = np.full((out_size,) + moved.shape[1:], 1 << (_PRECISION_BITS - 1), dtype=np.int64)
    last = moved.shape[0] - 1
    for t in range(weights.shape[1]):
        rows = np.minimum(first + t, last)  # past a pixel's taps the weight is 0
        w = weights[:, t].reshape((-1,) + (1,) * (moved.ndim - 1))
        acc += moved[rows] * w
    out = np.clip(acc >> _PRECISION_BITS, 0, 255)
    out[acc >= (1 << _PRECISION_BITS << 8)] = 255
    return np.moveaxis(out.astype(np.uint8), 0, axis)


def pillow_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 (H, W, C) resized to (height, width) as ``PIL.Image.resize(..., BILINEAR)`` does:
    two fixed-point passes, columns first (each output pixel a normalised triangle filter over
    its input pixels, widened by the shrink factor), rounded to uint8 in between. Equal to
    Pillow's for the aspect-preserving resizes of the test resize; Pillow 13 passes over the rows
    first for some resizes that shrink one axis and not the other, where this differs by a grey
    level on some pixels."""
    out = image
    if width != image.shape[1]:
        out = _pillow_pass(out, width, axis=1)
    if height != image.shape[0]:
        out = _pillow_pass(out, height, axis=0)
    return out


def _sample(maps: np.ndarray, gy: np.ndarray, gx: np.ndarray, border: bool) -> np.ndarray:
    """PyTorch's ``grid_sample(maps[None], grid, mode="bilinear", align_corners=False)`` on the
    separable grid ``grid[i, j] = (gx[j], gy[i])`` (normalised coordinates): float32 (C, h, w).
    ``border``: padding_mode "border" (coordinates clamped), else "zeros"."""
    _, height, width = maps.shape

    def source(coord: np.ndarray, size: int):
        pos = ((coord + _F32(1)) * _F32(size) - _F32(1)) / _F32(2)
        if border:
            pos = np.clip(pos, _F32(0), _F32(size - 1))
        low = np.floor(pos)
        return pos, low.astype(np.int64), low

    iy, y0, fy0 = source(gy.astype(_F32), height)
    ix, x0, fx0 = source(gx.astype(_F32), width)
    # grid_sample's weights: nw = (x_se - x) * (y_se - y), ne = (x - x_sw) * (y_sw - y), ...
    wy = [(fy0 + _F32(1)) - iy, iy - fy0]
    wx = [(fx0 + _F32(1)) - ix, ix - fx0]
    out = np.zeros((maps.shape[0], gy.size, gx.size), dtype=_F32)
    for dy in (0, 1):
        rows = y0 + dy
        row_ok = (rows >= 0) & (rows < height)
        for dx in (0, 1):
            cols = x0 + dx
            col_ok = (cols >= 0) & (cols < width)
            weight = wy[dy][:, None] * wx[dx][None, :]
            weight = np.where(row_ok[:, None] & col_ok[None, :], weight, _F32(0))
            values = maps[:, np.clip(rows, 0, height - 1)[:, None], np.clip(cols, 0, width - 1)]
            out += values * weight[None]
    return out


def paste_parts(
    probs: np.ndarray, box: np.ndarray, height: int, width: int
) -> Optional[Tuple[np.ndarray, int, int]]:
    """One person's part labels in the H x W image, inside its box only
    (``bodyparts.modeling.paste_in_box``): bilinear resampling of the float32 (C, M, M)
    probabilities at the pixel centres, border padding, then the arg-max; 0 where the pixel centre
    lies outside the box. Returns (uint8 (h, w) labels, y0, x0), or None when the box holds no
    pixel."""
    x0, y0, x1, y1 = (float(v) for v in np.asarray(box, dtype=_F32))
    ix0, iy0 = max(int(x0), 0), max(int(y0), 0)
    ix1, iy1 = min(math.ceil(x1), width), min(math.ceil(y1), height)
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    xs = (np.arange(ix0, ix1, dtype=_F32) + _F32(0.5) - _F32(x0)) / _F32(max(x1 - x0, 1e-6))
    ys = (np.arange(iy0, iy1, dtype=_F32) + _F32(0.5) - _F32(y0)) / _F32(max(y1 - y0, 1e-6))
    xs, ys = xs * _F32(2) - _F32(1), ys * _F32(2) - _F32(1)
    pasted = _sample(np.asarray(probs, dtype=_F32), ys, xs, border=True)
    labels = pasted.argmax(axis=0).astype(np.uint8)
    inside = (np.abs(ys) <= 1)[:, None] & (np.abs(xs) <= 1)[None, :]
    labels[~inside] = 0
    return labels, iy0, ix0


def paste_mask(
    mask: np.ndarray, box: np.ndarray, height: int, width: int, threshold: float = 0.5
) -> Tuple[np.ndarray, int, int]:
    """One silhouette in the H x W image (Detectron2's ``paste_masks_in_image`` on CPU): the float
    (Ms, Ms) probabilities resampled bilinearly (zero padding) over the box grown by one pixel,
    then ``>= threshold``. Returns (bool (h, w), y0, x0); the image is False elsewhere."""
    box = np.asarray(box, dtype=_F32)
    x0, y0, x1, y1 = box
    ix0, iy0 = max(int(math.floor(x0)) - 1, 0), max(int(math.floor(y0)) - 1, 0)
    ix1, iy1 = min(int(math.ceil(x1)) + 1, width), min(int(math.ceil(y1)) + 1, height)
    img_x = np.arange(ix0, max(ix1, ix0), dtype=_F32) + _F32(0.5)
    img_y = np.arange(iy0, max(iy1, iy0), dtype=_F32) + _F32(0.5)
    gx = (img_x - x0) / (x1 - x0) * _F32(2) - _F32(1)
    gy = (img_y - y0) / (y1 - y0) * _F32(2) - _F32(1)
    pasted = _sample(np.asarray(mask, dtype=_F32)[None], gy, gx, border=False)[0]
    return pasted >= threshold, iy0, ix0


def decode_keypoints(heatmaps: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Detectron2's ``heatmaps_to_keypoints`` (as its keypoint head decodes them): each (K, Mk, Mk)
    map resized bicubically to the box's size in whole pixels, the arg-max per keypoint, its
    softmax score over the map. Returns float32 (R, K, 3): x, y, score in the boxes' pixels."""
    heatmaps = np.asarray(heatmaps, dtype=_F32)
    boxes = np.asarray(boxes, dtype=_F32)
    num, k = heatmaps.shape[:2]
    out = np.zeros((num, k, 3), dtype=_F32)
    for i in range(num):
        x0, y0 = boxes[i, 0], boxes[i, 1]
        w = max(boxes[i, 2] - x0, _F32(1))
        h = max(boxes[i, 3] - y0, _F32(1))
        wc, hc = int(math.ceil(w)), int(math.ceil(h))
        maps = heatmaps[i]
        roi = cv2.resize(maps.transpose(1, 2, 0), (wc, hc), interpolation=cv2.INTER_CUBIC)
        roi = roi.reshape(hc, wc, k).transpose(2, 0, 1)
        flat = roi.reshape(k, -1)
        best = flat.max(axis=1)
        pos = flat.argmax(axis=1)
        ys, xs = np.divmod(pos, wc)
        pool = np.exp(maps - best[:, None, None]).sum(axis=(1, 2))
        score = np.exp(flat[np.arange(k), pos] - best) / pool
        out[i, :, 0] = (xs.astype(_F32) + _F32(0.5)) * (w / _F32(wc)) + x0
        out[i, :, 1] = (ys.astype(_F32) + _F32(0.5)) * (h / _F32(hc)) + y0
        out[i, :, 2] = score
    return out


def _runs(crop: np.ndarray, y0: int, x0: int, height: int) -> List[Tuple[int, int]]:
    """[start, end) runs of True of the bool ``crop`` at (y0, x0) in the image's column-major
    order (positions in the flattened H x W image), runs that continue from one column into the
    next joined."""
    h, w = crop.shape
    if h == 0 or w == 0:
        return []
    padded = np.zeros((w, h + 2), dtype=np.int8)
    padded[:, 1:-1] = crop.T
    change = np.diff(padded.reshape(-1))
    starts = np.flatnonzero(change == 1) + 1
    ends = np.flatnonzero(change == -1) + 1
    cs, rs = np.divmod(starts, h + 2)
    ce, re = np.divmod(ends, h + 2)
    starts = (x0 + cs) * height + y0 + rs - 1
    ends = (x0 + ce) * height + y0 + re - 1
    runs: List[Tuple[int, int]] = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((s, e))
    return runs


def _counts_string(counts: List[int]) -> str:
    """COCO's compressed RLE string of run lengths (pycocotools' ``rleToString``)."""
    chars = []
    for i, x in enumerate(counts):
        if i > 2:
            x -= counts[i - 2]
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            chars.append(chr(c + 48))
    return "".join(chars)


def rle_encode(crop: np.ndarray, y0: int, x0: int, height: int, width: int) -> Dict:
    """COCO compressed RLE ``{"size": [H, W], "counts": str}`` of the H x W mask that is the bool
    ``crop`` at (y0, x0) and False elsewhere (what ``pycocotools.mask.encode`` gives)."""
    bounds = [0]
    for s, e in _runs(np.asarray(crop, dtype=bool), y0, x0, height):
        bounds += [s, e]
    bounds.append(height * width)
    counts = np.diff(np.asarray(bounds, dtype=np.int64)).tolist()
    if len(counts) > 1 and counts[-1] == 0:  # the mask ends with ones: no final zero run
        counts = counts[:-1]
    return {"size": [int(height), int(width)], "counts": _counts_string(counts)}
