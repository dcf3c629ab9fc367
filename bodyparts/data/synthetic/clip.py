"""Generated video clips of synthetic people walking across a background, with their identities.

:func:`render_clip` takes ``persons`` figures of :func:`render_scene` (one per scene, whole and
upright) and moves them horizontally over :func:`render_background`: they walk from alternate
sides, so that neighbours cross, at different speeds and heights; persons later in the list are
nearer and hide the ones behind. Each frame comes with the boxes of the persons visible in it and
their identities, the ground truth of a tracker (id switches, :mod:`bodyparts_runtime.tracking`).

    python -m bodyparts.data.synthetic.clip OUT.mp4 [--frames 48] [--persons 3] [--seed 0]

writes such a clip (and prints its boxes per frame as JSON lines with ``--boxes FILE``).
"""

import argparse
import json
from dataclasses import dataclass
from typing import List

import cv2
import numpy as np

from .render import render_background, render_scene

__all__ = ["RenderedClip", "render_clip"]


@dataclass
class RenderedClip:
    """Attributes:
    frames: RGB uint8 (H, W, 3) images, in order.
    boxes: per frame, float32 (N, 4) x0, y0, x1, y1 of the persons visible in it (their
        visible pixels' extent), back to front.
    identities: per frame, int64 (N,) the person (0 .. persons - 1) of each box.
    """

    frames: List[np.ndarray]
    boxes: List[np.ndarray]
    identities: List[np.ndarray]


def _sprite(seed: int, height: int):
    """(RGB pixels, mask) of one whole figure about 0.55-0.8 x ``height`` tall: the first of seeds
    ``seed * 1000 + k`` whose single person touches no border."""
    for k in range(1000):
        scene = render_scene(seed * 1000 + k, height, height, 1, 1)
        mask = scene.persons[0].part_map > 0
        ys, xs = np.nonzero(mask)
        if len(ys) == 0 or ys.min() == 0 or xs.min() == 0:
            continue
        if ys.max() == height - 1 or xs.max() == height - 1:
            continue
        if not 0.55 * height <= ys.max() - ys.min() + 1 <= 0.8 * height:
            continue
        crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        return scene.image[crop], mask[crop]
    raise RuntimeError(f"no whole figure among 1000 scenes of seed {seed}")


def render_clip(
    seed: int = 0,
    frames: int = 48,
    height: int = 192,
    width: int = 320,
    persons: int = 3,
    speed: float = 5.0,
) -> RenderedClip:
    """A clip of ``persons`` people walking across a ``height`` x ``width`` background.

    Person k starts outside the frame on the left (k even) or the right (k odd), at
    ``speed * (1 + 0.25 k)`` pixels per frame, its feet at a height of its own; everyone is in
    view for most of the clip and neighbours cross. Deterministic in the arguments.
    """
    if persons < 1 or frames < 1:
        raise ValueError(f"persons and frames must be >= 1, got {persons}, {frames}")
    rng = np.random.default_rng(seed)
    background, _ = render_background(seed, height, width)
    sprites = [_sprite(seed * 100 + k + 1, height) for k in range(persons)]
    walkers = []
    for k, (pixels, mask) in enumerate(sprites):
        h, w = mask.shape
        v = speed * (1.0 + 0.25 * k)
        # enter so that the crossings fall in the middle of the clip
        start = width / 2 - v * frames / 2 - w / 2 + rng.uniform(-20, 20)
        x0 = start if k % 2 == 0 else width - start - w
        feet = height - 2 - rng.uniform(0, 0.12 * height)
        walkers.append((pixels, mask, x0, v if k % 2 == 0 else -v, int(round(feet)) - h))
    out = RenderedClip([], [], [])
    for t in range(frames):
        image = background.copy()
        owner = np.full((height, width), -1, np.int64)
        for k, (pixels, mask, x0, v, y0) in enumerate(walkers):  # back to front
            x = int(round(x0 + v * t))
            h, w = mask.shape
            ys, xs = slice(max(y0, 0), min(y0 + h, height)), slice(max(x, 0), min(x + w, width))
            if ys.start >= ys.stop or xs.start >= xs.stop:
                continue
            sub = mask[ys.start - y0 : ys.stop - y0, xs.start - x : xs.stop - x]
            image[ys, xs][sub] = pixels[ys.start - y0 : ys.stop - y0, xs.start - x : xs.stop - x][
                sub
            ]
            owner[ys, xs][sub] = k
        boxes, idents = [], []
        for k in range(persons):
            ys, xs = np.nonzero(owner == k)
            if len(ys) >= 60:  # a person with a few pixels left in view is not counted
                boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
                idents.append(k)
        out.frames.append(image)
        out.boxes.append(np.array(boxes, np.float32).reshape(-1, 4))
        out.identities.append(np.array(idents, np.int64))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", help="the clip to write (.mp4)")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--persons", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--boxes", metavar="FILE", help="write the boxes per frame (JSON lines)")
    args = parser.parse_args(argv)
    clip = render_clip(args.seed, args.frames, args.height, args.width, args.persons)
    writer = cv2.VideoWriter(
        args.output, cv2.VideoWriter_fourcc(*"mp4v"), args.fps, (args.width, args.height)
    )
    for frame in clip.frames:
        writer.write(np.ascontiguousarray(frame[:, :, ::-1]))
    writer.release()
    if args.boxes:
        with open(args.boxes, "w") as f:
            for t, (boxes, idents) in enumerate(zip(clip.boxes, clip.identities)):
                line = {"frame_index": t, "boxes": boxes.tolist(), "identities": idents.tolist()}
                f.write(json.dumps(line) + "\n")
    print(f"{args.output}: {len(clip.frames)} frames, {args.persons} persons")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
