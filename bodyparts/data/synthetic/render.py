"""Deterministic renderer of synthetic multi-person body-part scenes with exact ground truth.

:func:`render_scene` draws 1-5 articulated, camera-facing (frontal) human figures with random
poses, sizes, mutual overlaps and truncation at the image border on a textured background made
of "stuff" regions (sky / wall / ground). It returns the RGB image together with, per person, a
label map of its *visible* pixels in the :data:`bodyparts.taxonomy.FINE_LR` part taxonomy and its
17 COCO keypoints, plus a stuff label for every pixel. It is the project's embedded default
dataset: fast (about 15 ms per 256x256 scene on one CPU core), seeded, and learnable from
scratch.

Conventions
-----------
* Image coordinates are continuous: pixel ``(i, j)`` (row, column) covers ``[j, j+1) x [i, i+1)``
  in ``(x, y)``; the pixel holding a point ``(x, y)`` is ``(floor(y), floor(x))``. Shapes are
  rasterised with OpenCV in fixed point (4 fractional bits), consistently with this convention.
* "left"/"right" are the person's own sides. Every figure faces the camera, so in the neutral
  pose a person's left arm/leg is on the image's *right* side (larger x). A horizontal flip of the
  image plus :meth:`PartTaxonomy.flip_lut` / the COCO flip map therefore gives a valid sample.
* **Neck convention**: the short neck between torso and head is labelled ``head`` (as in
  Pascal-Person-Part, where the neck is merged into the head); it is drawn in skin colour.
* Label maps are exact (no anti-aliasing). The image is painted from the very same label maps, so
  image and labels agree pixel-exactly: a pixel not owned by any person shows the background
  rendering (:func:`render_background`) unchanged. Face cues (eyes, mouth, nose, hair), cloth
  patterns and shading are drawn in the image only, inside the head / cloth labels.
* Within one person the drawing order decides self-occlusion: legs (feet, lower legs, upper
  legs), arms "behind" the body (each arm with probability 0.25), neck, torso, arms in front,
  head.

Keypoint visibility ``v`` (COCO semantics, exact rules):

* ``v = 0``: the point lies outside the image; then ``x = y = 0``.
* ``v = 2``: the pixel holding the point belongs to this person's visible ``part_map`` with a
  label adjacent to the joint (:data:`KEYPOINT_ADJACENT_PARTS`).
* ``v = 1``: otherwise (inside the image but hidden by another person or another part of the
  same person).

Persons whose visible area is smaller than ``max(60, 0.25 * unoccluded in-image area)`` pixels are
removed from the scene entirely (the scene is composited without them).
"""

from __future__ import annotations

import colorsys
import functools
import math
from dataclasses import dataclass
from typing import List, Sequence, Tuple

import cv2
import numpy as np

from bodyparts.taxonomy import COCO_PERSON_KEYPOINTS, FINE_LR

__all__ = [
    "STUFF_CLASSES",
    "KEYPOINT_ADJACENT_PARTS",
    "MIN_VISIBLE_PIXELS",
    "MIN_VISIBLE_FRACTION",
    "RenderedPerson",
    "RenderedScene",
    "render_scene",
    "render_background",
]

STUFF_CLASSES: Tuple[str, ...] = ("sky", "wall", "ground")
"""Stuff classes of :attr:`RenderedScene.stuff_map`; the class index is the position here."""

_SKY, _WALL, _GROUND = (STUFF_CLASSES.index(n) for n in ("sky", "wall", "ground"))

MIN_VISIBLE_PIXELS = 60
"""A person needs at least this many visible pixels to be kept in a scene."""
MIN_VISIBLE_FRACTION = 0.25
"""... and at least this fraction of its unoccluded in-image area."""

_L = FINE_LR.label_of
_HEAD, _TORSO = _L("head"), _L("torso")
_NUM_LABELS = FINE_LR.num_classes  # 15 incl. background
_SIDES = (("left", 1.0), ("right", -1.0))  # person's side, sign of local x (left = image right)


def _adjacent_parts() -> Tuple[Tuple[int, ...], ...]:
    joint_parts = {
        "shoulder": ("torso", "{s}_upper_arm"),
        "elbow": ("{s}_upper_arm", "{s}_lower_arm"),
        "wrist": ("{s}_lower_arm", "{s}_hand"),
        "hip": ("torso", "{s}_upper_leg"),
        "knee": ("{s}_upper_leg", "{s}_lower_leg"),
        "ankle": ("{s}_lower_leg", "{s}_foot"),
        "eye": ("head",),
        "ear": ("head",),
    }
    out = []
    for name in COCO_PERSON_KEYPOINTS.names:
        if name == "nose":
            out.append((_HEAD,))
            continue
        side, joint = name.split("_", 1)
        out.append(tuple(_L(p.format(s=side)) for p in joint_parts[joint]))
    return tuple(out)


KEYPOINT_ADJACENT_PARTS: Tuple[Tuple[int, ...], ...] = _adjacent_parts()
"""Per COCO keypoint (in :data:`COCO_PERSON_KEYPOINTS` order), the FINE_LR labels adjacent to it:
a keypoint is ``v = 2`` iff the pixel holding it has one of these labels in the person's map."""

_KP_INDEX = {n: i for i, n in enumerate(COCO_PERSON_KEYPOINTS.names)}

_SHIFT = 4  # fractional bits for cv2 drawing
_ONE = 1 << _SHIFT
_MIN_RADIUS_PX = 0.75  # limbs never get thinner than 1.5 px
_NOMINAL_HEIGHT = 0.97  # height (head top to sole) of the neutral pose in local units
_MAX_LAYOUT_TRIES = 8


@dataclass
class RenderedPerson:
    """One person of a :class:`RenderedScene`.

    Attributes:
        part_map: ``(H, W) uint8``; FINE_LR labels (1..14) of this person's *visible* pixels, i.e.
            after occlusion by persons in front of it; 0 elsewhere. Part maps of the persons of a
            scene are pairwise disjoint.
        keypoints: ``(17, 3) float32``; per COCO keypoint ``x, y`` in continuous image coordinates
            (pixels; pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``) and visibility
            ``v in {0, 1, 2}`` (see the module docstring); ``x = y = 0`` where ``v = 0``.
        depth: 0 for the person farthest from the camera; equals its index in
            :attr:`RenderedScene.persons`.
    """

    part_map: np.ndarray
    keypoints: np.ndarray
    depth: int


@dataclass
class RenderedScene:
    """A rendered synthetic scene.

    Attributes:
        image: ``(H, W, 3) uint8`` RGB image.
        persons: the persons, back to front (``persons[k].depth == k``), at least 1.
        stuff_map: ``(H, W) uint8``; index into :data:`STUFF_CLASSES` for every pixel, also the
            pixels covered by persons.
    """

    image: np.ndarray
    persons: List[RenderedPerson]
    stuff_map: np.ndarray


# ------------------------------------------------------------------------------------------------
# argument checks


def _check_int(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def _check_args(
    seed, height, width, min_persons=1, max_persons=1
) -> Tuple[int, int, int, int, int]:
    seed = _check_int("seed", seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    height, width = _check_int("height", height), _check_int("width", width)
    if height < 32:
        raise ValueError(f"height must be >= 32 pixels, got {height}")
    if width < 32:
        raise ValueError(f"width must be >= 32 pixels, got {width}")
    min_persons = _check_int("min_persons", min_persons)
    max_persons = _check_int("max_persons", max_persons)
    if min_persons < 1:
        raise ValueError(f"min_persons must be >= 1, got {min_persons}")
    if max_persons < min_persons:
        raise ValueError(f"max_persons ({max_persons}) must be >= min_persons ({min_persons})")
    return seed, height, width, min_persons, max_persons


def _rngs(seed: int) -> Tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for background, layout and appearance, derived from ``seed`` only."""
    bg, layout, appearance = np.random.default_rng(seed).spawn(3)
    return bg, layout, appearance


# ------------------------------------------------------------------------------------------------
# colours


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """RGB float array (3,) in 0..255 from h, s, v in 0..1."""
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32) * 255.0


def _luma(c: np.ndarray) -> float:
    return float(0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2])


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


def _distinct(rng: np.random.Generator, sampler, avoid: Sequence[np.ndarray], min_dist: float):
    """Sample colours with ``sampler(rng)`` until one is ``min_dist`` away from all of ``avoid``."""
    best, best_d = None, -1.0
    for _ in range(12):
        c = sampler(rng)
        d = min((_dist(c, a) for a in avoid), default=1e9)
        if d >= min_dist:
            return c
        if d > best_d:
            best, best_d = c, d
    return best


_SKIN_TONES = np.array(
    [
        (255, 224, 196),
        (250, 208, 170),
        (241, 194, 125),
        (234, 182, 140),
        (224, 172, 105),
        (210, 150, 110),
        (198, 134, 66),
        (170, 110, 70),
        (141, 85, 36),
        (120, 75, 45),
        (100, 60, 35),
        (85, 50, 30),
    ],
    np.float32,
)
_HAIR = np.array(
    [
        (20, 15, 12),
        (45, 30, 20),
        (80, 50, 25),
        (130, 90, 50),
        (200, 160, 90),
        (170, 70, 30),
        (150, 150, 150),
        (230, 220, 200),
    ],
    np.float32,
)


def _cloth_color(rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    if r < 0.15:  # white / grey / black
        return np.full(
            3, rng.choice([25.0, 60.0, 120.0, 180.0, 235.0]) + rng.uniform(-10, 10), np.float32
        )
    return _hsv(rng.random(), rng.uniform(0.35, 1.0), rng.uniform(0.35, 1.0))


def _trouser_color(rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    if r < 0.3:  # denim
        return _hsv(rng.uniform(0.57, 0.64), rng.uniform(0.4, 0.8), rng.uniform(0.3, 0.7))
    if r < 0.5:  # dark / grey
        return np.full(3, rng.uniform(20, 130), np.float32) + rng.uniform(-8, 8, 3).astype(
            np.float32
        )
    if r < 0.65:  # khaki / brown
        return _hsv(rng.uniform(0.06, 0.12), rng.uniform(0.3, 0.7), rng.uniform(0.35, 0.8))
    return _cloth_color(rng)


def _shoe_color(rng: np.random.Generator) -> np.ndarray:
    r = rng.random()
    if r < 0.4:
        return np.full(3, rng.uniform(10, 60), np.float32)
    if r < 0.6:
        return np.full(3, rng.uniform(200, 250), np.float32)
    return _hsv(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.2, 0.9))


# ------------------------------------------------------------------------------------------------
# background ("stuff")


def _texture(rng: np.random.Generator, kind: str, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A mixing field ``t`` (H, W) float32 in [0, 1] of the given texture kind."""
    H, W = yy.shape
    ang = rng.uniform(0, math.pi)
    u = xx * math.cos(ang) + yy * math.sin(ang)
    if kind == "gradient":
        t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
        return t.astype(np.float32)
    if kind == "stripes":
        period = rng.uniform(4, 40)
        phase = rng.random()
        if rng.random() < 0.5:  # hard stripes
            return (np.mod(u / period + phase, 1.0) < rng.uniform(0.3, 0.7)).astype(np.float32)
        return (0.5 + 0.5 * np.sin(2 * math.pi * (u / period + phase))).astype(np.float32)
    if kind == "checker":
        size = rng.uniform(5, 40)
        v = -xx * math.sin(ang) + yy * math.cos(ang)
        return (np.mod(np.floor(u / size) + np.floor(v / size), 2.0)).astype(np.float32)
    if kind == "blobs":
        cells = int(rng.integers(3, 12))
        low = rng.random((cells, cells)).astype(np.float32)
        t = cv2.resize(low, (W, H), interpolation=cv2.INTER_CUBIC)
        t = np.clip(t, 0.0, 1.0)
        if rng.random() < 0.4:  # hard-edged blobs
            t = (t > 0.5).astype(np.float32)
        return t
    # "noise": fine grain, optionally slightly blurred
    t = rng.random((H, W), dtype=np.float32)
    if rng.random() < 0.5:
        t = cv2.GaussianBlur(t, (0, 0), rng.uniform(0.7, 2.0))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    return t


_TEXTURE_KINDS = ("noise", "stripes", "checker", "gradient", "blobs")
_TEXTURE_WEIGHTS = {
    _SKY: (0.1, 0.05, 0.05, 0.45, 0.35),
    _WALL: (0.15, 0.3, 0.2, 0.15, 0.2),
    _GROUND: (0.3, 0.2, 0.2, 0.1, 0.2),
}


def _stuff_base_color(rng: np.random.Generator, cls: int) -> np.ndarray:
    r = rng.random()
    if cls == _SKY:
        if r < 0.65:  # blue sky
            return _hsv(rng.uniform(0.53, 0.63), rng.uniform(0.15, 0.7), rng.uniform(0.65, 1.0))
        if r < 0.85:  # overcast
            return np.full(3, rng.uniform(150, 240), np.float32)
        return _hsv(rng.uniform(0.0, 0.12), rng.uniform(0.2, 0.6), rng.uniform(0.6, 1.0))  # dusk
    if cls == _GROUND:
        if r < 0.35:  # grass
            return _hsv(rng.uniform(0.2, 0.38), rng.uniform(0.3, 0.8), rng.uniform(0.25, 0.7))
        if r < 0.6:  # earth / sand / wood
            return _hsv(rng.uniform(0.05, 0.13), rng.uniform(0.2, 0.7), rng.uniform(0.3, 0.85))
        if r < 0.8:  # asphalt / concrete
            return np.full(3, rng.uniform(60, 190), np.float32)
        return _hsv(rng.random(), rng.uniform(0.0, 0.8), rng.uniform(0.2, 0.95))
    # wall: anything, mostly muted
    return _hsv(rng.random(), rng.uniform(0.0, 0.6), rng.uniform(0.25, 0.95))


def _stuff_layout(
    rng: np.random.Generator, H: int, W: int, yy: np.ndarray, xx: np.ndarray
) -> np.ndarray:
    r = rng.random()
    if r < 0.06:
        y_h = H * rng.uniform(-0.2, -0.02)  # all ground (seen from above)
    elif r < 0.12:
        y_h = H * rng.uniform(1.02, 1.2)  # no ground visible
    else:
        y_h = H * rng.uniform(0.2, 0.85)
    slope = math.tan(math.radians(rng.uniform(-8, 8)))
    ground = yy > y_h + slope * (xx - W / 2.0)
    r = rng.random()
    if r < 0.4:
        upper = np.full((H, W), _SKY, np.uint8)
    elif r < 0.75:
        upper = np.full((H, W), _WALL, np.uint8)
    else:  # split vertically: sky on one side, wall on the other
        x_s = W * rng.uniform(0.15, 0.85)
        lean = math.tan(math.radians(rng.uniform(-10, 10)))
        right = xx > x_s + lean * (yy - H / 2.0)
        a, b = (_SKY, _WALL) if rng.random() < 0.5 else (_WALL, _SKY)
        upper = np.where(right, np.uint8(b), np.uint8(a))
    return np.where(ground, np.uint8(_GROUND), upper).astype(np.uint8)


@functools.lru_cache(maxsize=8)
def _grid(H: int, W: int) -> Tuple[np.ndarray, np.ndarray]:
    """Read-only float32 pixel-index grids (yy, xx) of shape (H, W)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _render_stuff(rng: np.random.Generator, H: int, W: int) -> Tuple[np.ndarray, np.ndarray]:
    yy, xx = _grid(H, W)
    stuff = _stuff_layout(rng, H, W, yy, xx)
    n = len(STUFF_CLASSES)
    c1 = np.zeros((n, 3), np.float32)
    dc = np.zeros((n, 3), np.float32)
    grain = np.zeros(n, np.float32)
    t = np.zeros((H, W), np.float32)
    for cls in range(n):
        mask = stuff == cls
        if not mask.any():
            continue
        kind = _TEXTURE_KINDS[int(rng.choice(len(_TEXTURE_KINDS), p=_TEXTURE_WEIGHTS[cls]))]
        np.copyto(t, _texture(rng, kind, yy, xx), where=mask)
        c1[cls] = _stuff_base_color(rng, cls)
        contrast = rng.uniform(15, 90)
        dc[cls] = np.clip(c1[cls] + rng.normal(0, 1, 3) * contrast, 0, 255) - c1[cls]
        grain[cls] = rng.uniform(1.5, 7.0)
    noise = rng.standard_normal((H, W), dtype=np.float32) * grain[stuff] + 0.5
    planes = [
        np.clip(c1[stuff, ch] + dc[stuff, ch] * t + noise, 0, 255).astype(np.uint8)
        for ch in range(3)
    ]
    return cv2.merge(planes), stuff


def render_background(
    seed: int, height: int = 256, width: int = 256
) -> Tuple[np.ndarray, np.ndarray]:
    """The background of ``render_scene(seed, height, width, ...)``, without persons.

    Returns:
        ``(image, stuff_map)``: ``(H, W, 3) uint8`` RGB and ``(H, W) uint8`` indices into
        :data:`STUFF_CLASSES`. Every pixel of ``render_scene(seed, height, width, ...).image`` that
        belongs to no person equals this image (the background depends on seed and size only).
    """
    seed, height, width, _, _ = _check_args(seed, height, width)
    return _render_stuff(_rngs(seed)[0], height, width)


# ------------------------------------------------------------------------------------------------
# figures


@dataclass
class _Figure:
    """A posed figure in image pixels, relative to its pelvis (``offset`` added at draw time)."""

    prims: list  # drawing primitives, in draw order (see _draw)
    keypoints: np.ndarray  # (17, 2) float64 relative to the pelvis
    head: tuple  # (center (2,), rx, ry, angle_deg, rot (2, 2)) relative to the pelvis
    bbox: np.ndarray  # (4,) x0, y0, x1, y1 relative to the pelvis
    height_px: float
    tilt: float  # radians
    offset: np.ndarray = None  # pelvis position in the image


def _unit(angle_from_down: float, sgn: float) -> np.ndarray:
    """Unit vector at ``angle_from_down`` radians from straight down, turning toward side
    ``sgn``."""
    return np.array([sgn * math.sin(angle_from_down), math.cos(angle_from_down)])


def _arm_angles(rng: np.random.Generator) -> Tuple[float, float, float]:
    """(upper-arm angle, lower-arm angle, length factor) in degrees from down, + = outward."""
    m = rng.random()
    if m < 0.45:
        th = rng.uniform(4, 35)
    elif m < 0.78:
        th = rng.uniform(35, 110)
    else:
        th = rng.uniform(110, 168)
    b = rng.random()
    if b < 0.45:
        bend = rng.uniform(-15, 15)
    elif b < 0.85:
        bend = -rng.uniform(30, 100 if th > 110 else 135)
    else:
        bend = rng.uniform(10, 40) if th > 110 else rng.uniform(20, 100)
    fore = rng.uniform(0.75, 1.0) if rng.random() < 0.2 else 1.0  # pointing toward the camera
    return th, th + bend, fore


def _sample_pose(rng: np.random.Generator, neutral: bool = False):
    """A random pose in local units (nominal body height ~0.95, y down, +x = person's left,
    pelvis at the origin). Returns (prims, keypoints (17, 2), head params)."""
    U = rng.uniform
    w = 1.0 if neutral else U(0.88, 1.15)  # build (body width)
    t = 1.0 if neutral else U(0.85, 1.2)  # limb thickness
    hw, sw = 0.066 * w, 0.104 * w
    ys = -0.30 * (1.0 if neutral else U(0.96, 1.04))
    kp = np.zeros((17, 2))
    K = _KP_INDEX

    # --- arms
    if neutral:
        arms = {"left": (12.0, 8.0, 1.0), "right": (12.0, 8.0, 1.0)}
    else:
        arms = {"left": _arm_angles(rng), "right": _arm_angles(rng)}
        if rng.random() < 0.3:  # roughly symmetric arms
            th, ph, fo = arms["left"]
            arms["right"] = (th + U(-10, 10), ph + U(-10, 10), fo)
    arm_prims = {}
    for side, sgn in _SIDES:
        th, ph, fore = arms[side]
        sh = np.array([sgn * sw, ys])
        elbow = sh + 0.155 * fore * _unit(math.radians(th), sgn)
        d = _unit(math.radians(ph), sgn)
        wrist = elbow + 0.14 * fore * d
        hand_c = wrist + 0.024 * d
        hand_ang = math.degrees(math.atan2(d[1], d[0]))
        arm_prims[side] = [
            ("capsule", _L(f"{side}_upper_arm"), sh, elbow, 0.025 * t, 0.02 * t),
            ("capsule", _L(f"{side}_lower_arm"), elbow, wrist, 0.019 * t, 0.016 * t),
            ("ellipse", _L(f"{side}_hand"), hand_c, (0.03, 0.021 * t), hand_ang),
        ]
        kp[K[f"{side}_shoulder"]] = sh
        kp[K[f"{side}_elbow"]] = elbow
        kp[K[f"{side}_wrist"]] = wrist

    # --- legs
    crouch = (not neutral) and rng.random() < 0.1
    leg_prims = {}
    for side, sgn in _SIDES:
        if neutral:
            a, g, up = 6.0, 4.0, 1.0
        elif crouch:
            a, up = U(30, 60), U(0.5, 0.75)
            g = U(-12, 8)
        elif rng.random() < 0.08:  # raised knee
            a, up = U(30, 75), U(0.8, 1.0)
            g = a - U(30, 100)
        else:
            a, up = U(-3, 22), U(0.92, 1.0)
            g = a + U(-20, 6)
        hip = np.array([sgn * hw, 0.0])
        knee = hip + 0.235 * up * _unit(math.radians(a), sgn)
        ankle = knee + 0.22 * _unit(math.radians(g), sgn)
        foot_c = ankle + np.array([sgn * 0.012, 0.022])
        foot_ang = sgn * (0.0 if neutral else U(0, 25))
        leg_prims[side] = [
            ("ellipse", _L(f"{side}_foot"), foot_c, (0.038, 0.019 * t), foot_ang),
            ("capsule", _L(f"{side}_lower_leg"), knee, ankle, 0.03 * t, 0.022 * t),
            ("capsule", _L(f"{side}_upper_leg"), hip, knee, 0.04 * t, 0.031 * t),
        ]
        kp[K[f"{side}_hip"]] = hip
        kp[K[f"{side}_knee"]] = knee
        kp[K[f"{side}_ankle"]] = ankle

    # --- torso (hourglass polygon + rounded shoulders), neck, head
    torso = np.array(
        [
            (-sw - 0.012, ys - 0.004),
            (-sw * 0.55, ys - 0.028),
            (sw * 0.55, ys - 0.028),
            (sw + 0.012, ys - 0.004),
            (sw * 0.86, ys + 0.17),
            (hw + 0.034, 0.03),
            (0.0, 0.05),
            (-hw - 0.034, 0.03),
            (-sw * 0.86, ys + 0.17),
        ]
    )
    neck_ang = 0.0 if neutral else float(np.clip(rng.normal(0, 8), -18, 18))
    nd = np.array([math.sin(math.radians(neck_ang)), -math.cos(math.radians(neck_ang))])
    rx = 0.056 * (1.0 if neutral else U(0.92, 1.08))
    ry = rx * (1.22 if neutral else U(1.15, 1.3))
    neck_base = np.array([0.0, ys + 0.01])
    neck_top = neck_base + nd * 0.07
    head_c = neck_top + nd * 0.8 * ry
    hr = _rot(math.radians(neck_ang))
    kp[K["nose"]] = head_c + hr @ (0.0, 0.2 * ry)
    kp[K["left_eye"]] = head_c + hr @ (0.36 * rx, -0.1 * ry)
    kp[K["right_eye"]] = head_c + hr @ (-0.36 * rx, -0.1 * ry)
    kp[K["left_ear"]] = head_c + hr @ (0.8 * rx, 0.0)
    kp[K["right_ear"]] = head_c + hr @ (-0.8 * rx, 0.0)

    # --- draw order
    prims = []
    legs = ["left", "right"]
    if rng.random() < 0.5:
        legs.reverse()
    for side in legs:
        prims += leg_prims[side]
    behind = {side: (not neutral) and rng.random() < 0.25 for side, _ in _SIDES}
    for side, _ in _SIDES:
        if behind[side]:
            prims += arm_prims[side]
    prims.append(("capsule", _HEAD, neck_base, neck_top, 0.022 * w, 0.022 * w))  # neck = head
    prims.append(("poly", _TORSO, torso))
    prims.append(("circle", _TORSO, np.array([sw, ys + 0.004]), 0.03 * w))
    prims.append(("circle", _TORSO, np.array([-sw, ys + 0.004]), 0.03 * w))
    front = [side for side, _ in _SIDES if not behind[side]]
    if rng.random() < 0.5:
        front.reverse()
    for side in front:
        prims += arm_prims[side]
    prims.append(("ellipse", _HEAD, head_c, (rx, ry), neck_ang))
    return prims, kp, (head_c, rx, ry, neck_ang)


def _rot(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


def _make_figure(
    rng: np.random.Generator, height_px: float, tilt_deg: float, neutral=False
) -> _Figure:
    """Sample a pose and transform it to image pixels (scale, tilt), pelvis at the origin."""
    prims, kp, (hc, rx, ry, hang) = _sample_pose(rng, neutral)
    s = height_px / _NOMINAL_HEIGHT
    R = _rot(math.radians(tilt_deg)) * s
    out = []
    pts_all = []
    for p in prims:
        kind, label = p[0], p[1]
        if kind == "capsule":
            a, b = R @ p[2], R @ p[3]
            ra, rb = max(p[4] * s, _MIN_RADIUS_PX), max(p[5] * s, _MIN_RADIUS_PX)
            d = b - a
            n = np.hypot(d[0], d[1])
            if n > 1e-6:
                nv = np.array([-d[1], d[0]]) / n
                quad = np.array([a + nv * ra, b + nv * rb, b - nv * rb, a - nv * ra])
                out.append(("poly", label, quad))
            out.append(("circle", label, a, ra))
            out.append(("circle", label, b, rb))
            pts_all += [a - ra, a + ra, b - rb, b + rb]
        elif kind == "poly":
            q = p[2] @ R.T
            out.append(("poly", label, q))
            pts_all += list(q)
        elif kind == "circle":
            c, r = R @ p[2], max(p[3] * s, _MIN_RADIUS_PX)
            out.append(("circle", label, c, r))
            pts_all += [c - r, c + r]
        else:  # ellipse
            c = R @ p[2]
            ax = (max(p[3][0] * s, _MIN_RADIUS_PX), max(p[3][1] * s, _MIN_RADIUS_PX))
            out.append(("ellipse", label, c, ax, p[4] + tilt_deg))
            m = max(ax)
            pts_all += [c - m, c + m]
    pts_all = np.array(pts_all)
    bbox = np.array([*pts_all.min(0), *pts_all.max(0)])
    head = (R @ hc, rx * s, ry * s, hang + tilt_deg, _rot(math.radians(hang + tilt_deg)))
    return _Figure(out, kp @ R.T, head, bbox, height_px, math.radians(tilt_deg))


def _draw(canvas: np.ndarray, prims: list, offset: np.ndarray) -> None:
    """Rasterise primitives (continuous coords + ``offset``) into ``canvas``, each filled with its
    value (a part label or a face-cue code). Later primitives overwrite earlier ones."""
    ox, oy = float(offset[0]) - 0.5, float(offset[1]) - 0.5  # continuous -> cv2 pixel centres
    for p in prims:
        kind, col = p[0], int(p[1])
        if kind == "poly":
            pts = np.round((p[2] + (ox, oy)) * _ONE).astype(np.int32).reshape(-1, 1, 2)
            cv2.fillPoly(canvas, [pts], col, cv2.LINE_8, _SHIFT)
            continue
        c = (round((p[2][0] + ox) * _ONE), round((p[2][1] + oy) * _ONE))
        if kind == "circle":
            cv2.circle(canvas, c, max(1, round(p[3] * _ONE)), col, -1, cv2.LINE_8, _SHIFT)
        else:
            ax = (max(1, round(p[3][0] * _ONE)), max(1, round(p[3][1] * _ONE)))
            cv2.ellipse(canvas, c, ax, float(p[4]), 0.0, 360.0, col, -1, cv2.LINE_8, _SHIFT)


def _place(rng: np.random.Generator, fig: _Figure, H: int, W: int, truncate: bool) -> np.ndarray:
    """Pelvis position: inside the image if the figure fits, or cut by a border if ``truncate``."""
    x0, y0, x1, y1 = fig.bbox
    ew, eh = x1 - x0, y1 - y0

    def inside(lo, hi, ext, size):
        if ext <= size:
            return rng.uniform(-lo, size - hi)
        return rng.uniform(size - hi, -lo)  # larger than the image: cut on both sides

    px, py = inside(x0, x1, ew, W), inside(y0, y1, eh, H)
    if truncate:
        side = rng.choice(4, p=[0.35, 0.35, 0.2, 0.1])
        f = rng.uniform(0.15, 0.55)
        if side == 0:  # left border
            px = -x0 - f * ew
        elif side == 1:  # right border
            px = W - x1 + f * ew
        elif side == 2:  # bottom
            py = H - y1 + f * eh
        else:  # top
            py = -y0 - f * eh
    return np.array([px, py])


def _sample_layout(rng: np.random.Generator, H: int, W: int, lo: int, hi: int) -> List[_Figure]:
    n = int(rng.integers(lo, hi + 1))
    expo = 1.0 + 0.35 * (n - 1)  # more persons -> smaller on average
    figs, keys = [], []
    for _ in range(n):
        h = H * (0.3 + 0.8 * rng.random() ** expo)
        tilt = float(np.clip(rng.normal(0, 8), -20, 20))
        fig = _make_figure(rng, h, tilt)
        fig.offset = _place(rng, fig, H, W, truncate=rng.random() < 0.2)
        figs.append(fig)
        keys.append(h * rng.uniform(0.85, 1.15))  # bigger persons tend to be nearer
    order = np.argsort(np.array(keys), kind="stable")
    return [figs[i] for i in order]


def _centered_figure(rng: np.random.Generator, H: int, W: int) -> _Figure:
    h = min(0.85 * H, W / 0.45)
    fig = _make_figure(rng, h, 0.0, neutral=True)
    x0, y0, x1, y1 = fig.bbox
    fig.offset = np.array([W / 2.0 - (x0 + x1) / 2.0, H / 2.0 - (y0 + y1) / 2.0])
    return fig


def _visible_filter(figs: List[_Figure], H: int, W: int) -> Tuple[List[_Figure], List[np.ndarray]]:
    """Draw each figure's label canvas and drop (front to back) those with a tiny visible area.

    Visibility of a person depends only on the persons in front of it, so deciding front to back
    is exactly "re-composite without the removed persons"."""
    canvases = []
    for f in figs:
        c = np.zeros((H, W), np.uint8)
        _draw(c, f.prims, f.offset)
        canvases.append(c)
    occupied = np.zeros((H, W), bool)
    keep = [False] * len(figs)
    for k in range(len(figs) - 1, -1, -1):
        m = canvases[k] > 0
        full = int(np.count_nonzero(m))
        vis = int(np.count_nonzero(m & ~occupied))
        if vis >= max(MIN_VISIBLE_PIXELS, MIN_VISIBLE_FRACTION * full):
            keep[k] = True
            occupied |= m
    return [f for f, k in zip(figs, keep) if k], [c for c, k in zip(canvases, keep) if k]


# ------------------------------------------------------------------------------------------------
# appearance


def _sample_appearance(rng: np.random.Generator, bg_mean: np.ndarray) -> dict:
    skin = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] + rng.uniform(-8, 8, 3).astype(np.float32)
    shirt = _distinct(rng, _cloth_color, [skin, bg_mean], 70)
    trousers = _distinct(rng, _trouser_color, [shirt, skin, bg_mean], 60)
    shoes = _distinct(rng, _shoe_color, [trousers], 40)
    hat = rng.random() < 0.12
    hair = _cloth_color(rng) if hat else _HAIR[rng.integers(len(_HAIR))].copy()
    sleeves = rng.random()  # < 0.5 long, < 0.9 short, else sleeveless
    shorts = rng.random() < 0.22
    lut = np.zeros((_NUM_LABELS, 3), np.float32)
    lut[_HEAD], lut[_TORSO] = skin, shirt
    shirt_labels = [_TORSO]
    for side, _ in _SIDES:
        ua, la = _L(f"{side}_upper_arm"), _L(f"{side}_lower_arm")
        lut[ua] = shirt if sleeves < 0.9 else skin
        lut[la] = shirt if sleeves < 0.5 else skin
        shirt_labels += [ua] * (sleeves < 0.9) + [la] * (sleeves < 0.5)
        lut[_L(f"{side}_hand")] = skin
        lut[_L(f"{side}_upper_leg")] = trousers
        lut[_L(f"{side}_lower_leg")] = skin if shorts else trousers
        lut[_L(f"{side}_foot")] = shoes
    pattern = None
    r = rng.random()
    if r < 0.3:
        pattern = (
            "stripes",
            rng.uniform(0.025, 0.06),
            rng.uniform(0.55, 0.8),
            rng.uniform(-90, 90),
        )
    elif r < 0.4:
        pattern = ("checks", rng.uniform(0.03, 0.06), rng.uniform(0.6, 0.85), 0.0)
    return dict(
        lut=lut,
        skin=skin,
        hair=hair,
        hat=hat,
        shirt_labels=shirt_labels,
        pattern=pattern,
        light=rng.uniform(-1, 1, 2),
        light_gain=rng.uniform(0.0, 0.25),
        edge_dark=rng.uniform(0.2, 0.45),
        grain=rng.uniform(2.0, 7.0),
        # eyes contrast with the skin: dark on light skin, light (sclera) on dark skin
        eye=np.full(
            3, rng.uniform(5, 40) if _luma(skin) > 110 else rng.uniform(200, 240), np.float32
        ),
        mouth=np.array(
            [rng.uniform(90, 150), rng.uniform(20, 50), rng.uniform(30, 60)], np.float32
        ),
    )


_FACE_HAIR, _FACE_EYE, _FACE_MOUTH, _FACE_NOSE = 1, 2, 3, 4


def _face_codes(fig: _Figure, app: dict, org: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """Hair, eye, nose and mouth codes (``_FACE_*``, 0 = none) drawn in a ``shape`` window whose
    top-left pixel is at image position ``org`` (x, y). Image only: the labels stay ``head``."""
    hc, rx, ry, ang, hr = fig.head
    c = hc + fig.offset - org

    def at(local):
        return c + hr @ np.asarray(local, np.float64)

    if app["hat"]:
        prims = [("ellipse", _FACE_HAIR, at((0.0, -0.85 * ry)), (1.3 * rx, 0.5 * ry), ang)]
    else:
        prims = [("ellipse", _FACE_HAIR, at((0.0, -0.78 * ry)), (1.18 * rx, 0.48 * ry), ang)]
    er = max(0.55, 0.15 * rx)
    prims += [
        ("circle", _FACE_NOSE, at((0.0, 0.2 * ry)), max(0.5, 0.1 * rx)),
        ("circle", _FACE_EYE, at((0.36 * rx, -0.1 * ry)), er),
        ("circle", _FACE_EYE, at((-0.36 * rx, -0.1 * ry)), er),
        (
            "ellipse",
            _FACE_MOUTH,
            at((0.0, 0.52 * ry)),
            (max(0.6, 0.3 * rx), max(0.5, 0.07 * ry)),
            ang,
        ),
    ]
    codes = np.zeros(shape, np.uint8)
    _draw(codes, prims, np.zeros(2))
    return codes


def _paint(
    bg: np.ndarray,
    figs: List[_Figure],
    part_maps: List[np.ndarray],
    apps: List[dict],
    rng: np.random.Generator,
) -> np.ndarray:
    """Paint the persons over the background: per-part colours, light, dark rims at part
    boundaries, grain, cloth patterns and face cues, all restricted to the visible label maps
    (so every non-person pixel keeps its background value)."""
    H, W = bg.shape[:2]
    img = bg.copy()
    if not figs:
        return img
    # distance to the nearest boundary between parts / persons / background
    comb = np.full((H, W), 0xFFFF, np.uint16)
    for k, pm in enumerate(part_maps):
        np.copyto(comb, (k * _NUM_LABELS + pm).astype(np.uint16), where=pm > 0)
    edge = np.zeros((H, W), bool)
    d = comb[:, 1:] != comb[:, :-1]
    edge[:, 1:] |= d
    edge[:, :-1] |= d
    d = comb[1:, :] != comb[:-1, :]
    edge[1:, :] |= d
    edge[:-1, :] |= d
    dist = cv2.distanceTransform(np.where(edge, 0, 255).astype(np.uint8), cv2.DIST_L2, 3)

    for fig, pm, app in zip(figs, part_maps, apps):
        rows, cols = np.flatnonzero(pm.any(1)), np.flatnonzero(pm.any(0))
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        p = pm[y0:y1, x0:x1]
        m = p > 0
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        dx, dy = xx - np.float32(fig.offset[0]), yy - np.float32(fig.offset[1])
        hpx = fig.height_px
        shade = 1.0 + (app["light_gain"] / hpx) * (dx * app["light"][0] + dy * app["light"][1])
        shade *= 1.0 - app["edge_dark"] * np.exp(-dist[y0:y1, x0:x1] / max(1.0, 0.012 * hpx))
        pat = app["pattern"]
        if pat is not None:
            kind, period, dark, ang = pat
            period_px = max(2.0, period * hpx)
            a = fig.tilt + math.radians(ang if kind == "stripes" else 0.0)
            u = (dx * -math.sin(a) + dy * math.cos(a)) / period_px
            if kind == "stripes":
                on = np.mod(u, 1.0) < 0.5
            else:
                v = (dx * math.cos(a) + dy * math.sin(a)) / period_px
                on = np.mod(np.floor(u) + np.floor(v), 2.0) > 0
            on &= np.isin(p, app["shirt_labels"])
            shade[on] *= dark
        # colour id per pixel: the part label, or a face-cue colour inside the head
        table = np.concatenate(
            [app["lut"], np.stack([app["hair"], app["eye"], app["mouth"], app["skin"] * 0.72])]
        ).astype(np.float32)  # (15 + 4, 3), face codes 1..4 -> 15..18
        codes = _face_codes(fig, app, np.array([x0, y0], np.float64), p.shape)
        cid = np.where((codes > 0) & (p == _HEAD), codes + (_NUM_LABELS - 1), p)
        noise = rng.standard_normal(p.shape, dtype=np.float32) * app["grain"] + 0.5
        out = cv2.merge(
            [np.clip(table[:, ch][cid] * shade + noise, 0, 255).astype(np.uint8) for ch in range(3)]
        )
        np.copyto(img[y0:y1, x0:x1], out, where=m[..., None])
    return img


# ------------------------------------------------------------------------------------------------
# keypoints and the main entry point


def _keypoints(fig: _Figure, part_map: np.ndarray) -> np.ndarray:
    H, W = part_map.shape
    xy = (fig.keypoints + fig.offset).astype(np.float32)
    out = np.zeros((17, 3), np.float32)
    for k in range(17):
        x, y = float(xy[k, 0]), float(xy[k, 1])
        if not (0.0 <= x < W and 0.0 <= y < H):
            continue  # v = 0, x = y = 0
        lab = int(part_map[int(math.floor(y)), int(math.floor(x))])
        out[k] = (x, y, 2.0 if lab in KEYPOINT_ADJACENT_PARTS[k] else 1.0)
    return out


def render_scene(
    seed: int, height: int = 256, width: int = 256, min_persons: int = 1, max_persons: int = 5
) -> RenderedScene:
    """Render a synthetic scene of ``min_persons..max_persons`` frontal figures.

    Args:
        seed: non-negative integer; the output depends only on the arguments (byte-identical for
            the same arguments).
        height, width: image size in pixels, each >= 32.
        min_persons, max_persons: the number of persons to place is drawn uniformly from this
            range (1 <= min_persons <= max_persons). Persons that end up (almost) hidden are
            removed (see the module docstring); if fewer than ``min_persons`` remain, the layout
            is resampled a bounded number of times, then the attempt with most persons is used,
            and if none has a person, one centred figure is placed. So ``1 <= len(persons) <=
            max_persons`` always, and ``len(persons) >= min_persons`` in the vast majority of
            cases.

    Returns:
        :class:`RenderedScene` with ``image (H, W, 3) uint8``, persons back to front and
        ``stuff_map (H, W) uint8``.

    Raises:
        ValueError: naming the offending argument.
    """
    seed, H, W, lo, hi = _check_args(seed, height, width, min_persons, max_persons)
    rng_bg, rng_layout, rng_app = _rngs(seed)
    bg, stuff = _render_stuff(rng_bg, H, W)

    best: Tuple[List[_Figure], List[np.ndarray]] = ([], [])
    for _ in range(_MAX_LAYOUT_TRIES):
        figs, canvases = _visible_filter(_sample_layout(rng_layout, H, W, lo, hi), H, W)
        if len(figs) > len(best[0]):
            best = (figs, canvases)
        if len(figs) >= lo:
            break
    figs, canvases = best
    if not figs:
        figs, canvases = _visible_filter([_centered_figure(rng_layout, H, W)], H, W)
        if not figs:  # cannot happen for H, W >= 32, but never return an empty scene
            fig = _centered_figure(rng_layout, H, W)
            c = np.zeros((H, W), np.uint8)
            _draw(c, fig.prims, fig.offset)
            figs, canvases = [fig], [c]

    # visible part maps: a pixel belongs to the front-most person covering it
    occupied = np.zeros((H, W), bool)
    part_maps: List[np.ndarray] = [None] * len(figs)
    for k in range(len(figs) - 1, -1, -1):
        m = (canvases[k] > 0) & ~occupied
        part_maps[k] = np.where(m, canvases[k], 0).astype(np.uint8)
        occupied |= m

    bg_mean = np.array(cv2.mean(bg)[:3], np.float32)
    apps = [_sample_appearance(rng_app, bg_mean) for _ in figs]
    image = _paint(bg, figs, part_maps, apps, rng_app)
    persons = [
        RenderedPerson(part_map=pm, keypoints=_keypoints(f, pm), depth=k)
        for k, (f, pm) in enumerate(zip(figs, part_maps))
    ]
    return RenderedScene(image=image, persons=persons, stuff_map=stuff)
