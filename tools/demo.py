#!/usr/bin/env python
"""Run a bodyparts model on images and save visualizations (and, with --json, the predictions).

    python tools/demo.py --config-file CFG --input PATH [PATH ...] --output DIR
                         [--confidence-threshold 0.5] [--json] [--no-legend] [KEY VALUE ...]

PATH: image or video files, folders (their .jpg/.jpeg/.png/.bmp images and .mp4/.avi/.mov/.mkv/
.webm/.mpg videos, sorted; not recursive) or globs (quote them). Trailing KEY VALUE pairs override the config, e.g. ``MODEL.WEIGHTS out/model_final.pth
MODEL.DEVICE cpu``. ``MODEL.WEIGHTS ""`` runs an untrained model (random weights, with a warning).

Per image ``NAME.ext``, written to DIR (created if needed; never an input folder):

* ``NAME.png``: the image with part colours, boxes and scores, silhouette contours, keypoints and
  skeleton, and a legend of the parts present on the right (unless --no-legend). For the semantic
  part segmenter (``BodyPartsSemanticSegmentor``): its image-level part map; for the part-aware
  panoptic model: the stuff and thing segments with part colours inside each person.
* with --json, ``NAME.json``: image size, taxonomies, and per person (score >= threshold, best
  first) ``box_xyxy``, ``score``, ``keypoints`` [[x, y, score] * K], ``silhouette`` (COCO RLE) and
  ``parts`` {part name: COCO RLE}; ``part_labels`` maps part names to the labels of
  ``NAME_parts.png``.
* with --json, ``NAME_parts.png``: the image-level part map (uint8 labels, 0 = background; persons
  pasted in ascending score order, METRICS.md section 1). The semantic segmenter's JSON holds the
  size, the part labels and the pixels per part.
* panoptic models, with --json: ``NAME_panoptic.png`` (segment ids as COCO-panoptic RGB, id = R +
  256 G + 256^2 B; ``segments_info`` in the JSON) and ``NAME_part_panoptic.png`` (the panoptic-parts
  3-channel format: scene class, instance id, part id; 255 = none).

Per video ``NAME.ext`` (every --video-stride-th frame): ``NAME.mp4``, the rendered frames at the
video's frame rate divided by the stride (no legend, so every frame has the same size); with
--json, ``NAME.jsonl`` (one line per processed frame: the JSON above plus ``frame_index``, 0-based)
and ``NAME_parts/frame_NNNNNN.png``.

Unreadable or empty images are reported by name and skipped; the exit code is then 1. Usage
errors (missing config or weights file, no images, --output an input folder) exit with code 2.
"""
import argparse
import glob
import json
import os
import re
import sys
import warnings
from argparse import Namespace
from typing import Dict, List, Optional, Tuple

# Deprecation notices from torch about Detectron2 internals: noise for a command-line tool.
warnings.filterwarnings("ignore", r"`torch.jit.script` is deprecated", FutureWarning)
warnings.filterwarnings("ignore", r"torch.meshgrid", UserWarning)

import bodyparts  # noqa: F401,E402  (prepares Detectron2, registers datasets: import first)
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from bodyparts.data.contract import encode_mask  # noqa: E402
from bodyparts.engine import setup_cfg  # noqa: E402
from bodyparts.utils.visualizer import (  # noqa: E402
    draw_part_map,
    draw_part_panoptic,
    draw_predictions,
    image_level_part_map,
    metadata_for,
    person_part_maps,
)
from detectron2.config import CfgNode  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.data.detection_utils import read_image  # noqa: E402
from detectron2.engine import DefaultPredictor  # noqa: E402
from detectron2.structures import Instances  # noqa: E402
from PIL import UnidentifiedImageError  # noqa: E402
from tqdm import tqdm  # noqa: E402

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")


class DemoError(Exception):
    """A usage error: reported as one line, exit code 2."""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--config-file", required=True, metavar="FILE", help="model config (yaml)")
    add("--input", required=True, nargs="+", metavar="PATH", help="image files, folders or globs")
    add("--output", required=True, metavar="DIR", help="output folder (created if needed)")
    add("--confidence-threshold", type=float, default=0.5, help="minimum person score to keep")
    add("--json", action="store_true", help="also write NAME.json and NAME_parts.png")
    add("--no-legend", action="store_true", help="no part legend next to the visualization")
    add("--video-stride", type=int, default=1, metavar="N", help="videos: process every N-th frame")
    add("opts", nargs="*", default=[], help="config overrides KEY VALUE ..., at the end")
    return parser


# ----------------------------------------------------------------------------------------------
# inputs and outputs


def _is_image(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS)


def _is_video(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def collect_inputs(paths: List[str]) -> Tuple[List[str], List[str]]:
    """(image files in order, without duplicates; folders read). Raises DemoError naming a path
    that does not exist, a folder without images or a glob without matches."""
    files, folders = [], []
    for path in paths:
        if os.path.isdir(path):
            entries = (os.path.join(path, n) for n in os.listdir(path))
            found = sorted(f for f in entries if _is_image(f) or (_is_video(f) and os.path.isfile(f)))
            if not found:
                kinds = "/".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
                raise DemoError(f"folder {path} holds no images or videos ({kinds})")
            files += found
            folders.append(path)
        elif os.path.isfile(path):
            files.append(path)
        elif glob.has_magic(path):
            found = sorted(f for f in glob.glob(path) if os.path.isfile(f))
            if not found:
                raise DemoError(f"no files match {path!r}")
            files += found
        else:
            raise DemoError(f"input {path} does not exist")
    unique = list(dict.fromkeys(os.path.abspath(f) for f in files))
    return unique, folders


def check_output_dir(output: str, files: List[str], folders: List[str]) -> None:
    """Refuse an output folder that is an input folder or holds an input file (outputs could
    overwrite inputs)."""
    out = os.path.realpath(output)
    if os.path.exists(output) and not os.path.isdir(output):
        raise DemoError(f"--output {output} exists and is not a folder")
    for folder in folders + [os.path.dirname(f) for f in files]:
        if os.path.realpath(folder) == out:
            raise DemoError(
                f"--output {output} is an input folder; choose another folder "
                "(inputs are never overwritten)"
            )


def output_names(files: List[str]) -> List[str]:
    """Output stem per input: the file name without extension, made unique (``a.jpg`` and ``a.png``
    -> ``a`` and ``a_1``) so that no output overwrites another, ``_parts`` files included."""
    used, names = set(), []
    for f in files:
        stem = os.path.splitext(os.path.basename(f))[0]
        name, n = stem, 0
        while name in used or f"{name}_parts" in used:
            n += 1
            name = f"{stem}_{n}"
        used.update((name, f"{name}_parts"))
        names.append(name)
    return names


def read_input_image(path: str) -> Tuple[Optional[np.ndarray], str]:
    """(BGR image (H, W, 3) uint8, "") or (None, the reason it cannot be used)."""
    try:
        if os.path.getsize(path) == 0:
            return None, "empty file"
        image = read_image(path, format="BGR")  # EXIF orientation applied
    except UnidentifiedImageError:
        return None, "not a readable image (corrupt file or unsupported format)"
    except Exception as e:  # noqa: BLE001  (PIL raises many types for truncated or odd files)
        return None, f"cannot read the image ({type(e).__name__}: {e})"
    if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        return None, f"unusable image shape {image.shape}"
    return image, ""


# ----------------------------------------------------------------------------------------------
# model and predictions


def setup(args) -> CfgNode:
    if not os.path.isfile(args.config_file):
        raise DemoError(f"config file {args.config_file} does not exist")
    try:
        cfg_args = Namespace(config_file=args.config_file, opts=args.opts)
        cfg = setup_cfg(cfg_args, for_launch_only=True)
    except (KeyError, ValueError) as e:
        raise DemoError(str(e.args[0] if e.args else e)) from None
    weights = cfg.MODEL.WEIGHTS
    if not weights:
        print(
            "WARNING: MODEL.WEIGHTS is empty: running an UNTRAINED model with random weights; "
            "its predictions are meaningless (pass MODEL.WEIGHTS path/to/model_final.pth)",
            file=sys.stderr,
        )
        torch.manual_seed(0)  # reproducible random weights
    elif "://" not in weights and not os.path.isfile(weights):
        raise DemoError(f"MODEL.WEIGHTS file {weights} does not exist")
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise DemoError(f"MODEL.DEVICE {cfg.MODEL.DEVICE}: no GPU here; pass MODEL.DEVICE cpu")
    return cfg


def _rle(mask: np.ndarray) -> Dict:
    return encode_mask(mask.astype(np.uint8))


def predictions_json(
    instances: Instances, part_maps: Optional[np.ndarray], path: str, meta, threshold: float
) -> Dict:
    """JSON-serialisable predictions of one image (see the module docstring)."""
    height, width = instances.image_size
    part_names = list(meta.get("part_names") or [])
    persons = []
    for i in range(len(instances)):
        inst = instances[i]
        person = {
            "box_xyxy": [round(float(v), 2) for v in inst.pred_boxes.tensor[0].tolist()],
            "score": float(inst.scores[0]),
            "category": int(inst.pred_classes[0]) if inst.has("pred_classes") else 0,
            "keypoints": None,
            "silhouette": None,
            "parts": None,
        }
        if inst.has("pred_keypoints"):
            kps = inst.pred_keypoints[0].tolist()
            person["keypoints"] = [[round(float(v), 2) for v in kp] for kp in kps]
        if inst.has("pred_masks") and tuple(inst.pred_masks.shape[-2:]) == (height, width):
            person["silhouette"] = _rle(inst.pred_masks[0].numpy() >= 0.5)
        if part_maps is not None:
            labels = part_maps[i]
            present = [k for k in np.unique(labels).tolist() if 0 < k <= len(part_names)]
            person["parts"] = {part_names[k - 1]: _rle(labels == k) for k in present}
        persons.append(person)
    return {
        "file_name": os.path.abspath(path),
        "height": int(height),
        "width": int(width),
        "score_threshold": threshold,
        "part_taxonomy": meta.get("part_taxonomy"),
        "part_labels": {name: k + 1 for k, name in enumerate(part_names)},
        "keypoint_names": list(meta.get("keypoint_names") or []),
        "persons": persons,
    }


def _persons(instances: Instances, threshold: float) -> Tuple[Instances, Optional[np.ndarray]]:
    """(instances with score >= threshold on CPU, per-person part maps (N, H, W) uint8 or None)."""
    instances = instances.to("cpu")
    instances = instances[instances.scores >= threshold]
    part_maps = person_part_maps(instances)
    if part_maps is not None and not instances.has("pred_part_labels"):
        instances.pred_part_labels = torch.from_numpy(part_maps)  # paste ROI maps only once
    return instances, part_maps


def render(image_bgr: np.ndarray, instances: Instances, meta, threshold: float, legend: bool) -> np.ndarray:
    """BGR visualization of the predictions (wider than the image when ``legend``)."""
    image_rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    vis = draw_predictions(image_rgb, instances, meta, threshold, legend=legend)
    return np.ascontiguousarray(vis[:, :, ::-1])


def semantic_json(labels: np.ndarray, path: str, meta) -> Dict:
    """JSON-serialisable summary of an image-level part map: size, labels, pixels per part."""
    part_names = list(meta.get("part_names") or [])
    counts = np.bincount(labels.reshape(-1), minlength=len(part_names) + 1)
    return {
        "file_name": os.path.abspath(path),
        "height": int(labels.shape[0]),
        "width": int(labels.shape[1]),
        "part_taxonomy": meta.get("part_taxonomy"),
        "part_labels": {name: k + 1 for k, name in enumerate(part_names)},
        "part_pixels": {name: int(counts[k + 1]) for k, name in enumerate(part_names) if counts[k + 1]},
    }


def run_model(predictor, image_bgr: np.ndarray, path: str, args, meta, legend: bool):
    """Predict one image; by model kind, return (BGR visualization, JSON record, {file suffix:
    uint8 image to write with --json})."""
    threshold = args.confidence_threshold
    outputs = predictor(image_bgr)
    image_rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
    if "instances" not in outputs:  # image-level part segmenter
        labels = outputs["sem_seg"].argmax(dim=0).to("cpu").numpy().astype(np.uint8)
        vis = draw_part_map(image_rgb, labels, meta, legend=legend)
        return np.ascontiguousarray(vis[:, :, ::-1]), semantic_json(labels, path, meta), {"_parts": labels}
    instances, part_maps = _persons(outputs["instances"], threshold)
    record = predictions_json(instances, part_maps, path, meta, threshold)
    extra = {} if part_maps is None else {"_parts": image_level_part_map(instances, threshold)}
    if "panoptic_seg" in outputs:  # (part-aware) panoptic model
        seg, segments = outputs["panoptic_seg"]
        seg = seg.to("cpu").numpy().astype(np.int64)
        keys = ("id", "isthing", "category_id", "score", "area")
        record["segments_info"] = [
            {k: (v.item() if hasattr(v, "item") else v) for k, v in s.items() if k in keys} for s in segments
        ]
        extra["_panoptic"] = np.stack([seg % 256, seg // 256 % 256, seg // 65536], axis=-1).astype(np.uint8)
        part_panoptic = outputs.get("part_panoptic")
        if part_panoptic is None:  # plain PanopticFPN: no part labels
            part_panoptic = np.full((*seg.shape, 3), 255, dtype=np.uint8)
        else:
            extra["_part_panoptic"] = np.asarray(part_panoptic.to("cpu"))
        vis = draw_part_panoptic(
            image_rgb, seg, segments, part_panoptic, args.panoptic_meta, args.part_taxonomy, legend=legend
        )
        return np.ascontiguousarray(vis[:, :, ::-1]), record, extra
    vis = render(image_bgr, instances, meta, threshold, legend=legend)
    return vis, record, extra


def _write_png(path: str, array: np.ndarray) -> None:
    """Write a label map: 2-D as is, 3-channel with its channels in RGB order in the file."""
    cv2.imwrite(path, array[:, :, ::-1] if array.ndim == 3 else array)


def process(predictor, image_bgr: np.ndarray, path: str, name: str, args, meta) -> None:
    """Predict one image and write its outputs."""
    vis, record, extra = run_model(predictor, image_bgr, path, args, meta, legend=not args.no_legend)
    cv2.imwrite(os.path.join(args.output, name + ".png"), vis)
    if not args.json:
        return
    with open(os.path.join(args.output, name + ".json"), "w") as f:
        json.dump(record, f)
    for suffix, array in extra.items():
        _write_png(os.path.join(args.output, name + suffix + ".png"), array)


def process_video(predictor, path: str, name: str, args, meta) -> str:
    """Predict every ``args.video_stride``-th frame of a video and write its outputs.

    Returns "" on success, else the reason the video could not be used (nothing is left half-
    written under the final names: the video and JSON lines are written to temporary names first)."""
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        return "not a readable video (corrupt file or unsupported codec)"
    stride = max(1, args.video_stride)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    video_out = os.path.join(args.output, name + ".mp4")
    jsonl_out = os.path.join(args.output, name + ".jsonl")
    writer, lines, index, used = None, None, 0, 0
    bar = tqdm(total=total or None, desc=os.path.basename(path), unit="frame", leave=False)
    try:
        if args.json:
            lines = open(jsonl_out + ".tmp", "w")
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            bar.update(1)
            if index % stride == 0:
                vis, record, extra = run_model(predictor, frame, path, args, meta, legend=False)
                if writer is None:
                    size = (vis.shape[1], vis.shape[0])
                    writer = cv2.VideoWriter(video_out + ".tmp.mp4", cv2.VideoWriter_fourcc(*"mp4v"), fps / stride, size)
                writer.write(vis)
                if lines is not None:
                    lines.write(json.dumps({"frame_index": index, **record}) + "\n")
                    for suffix, array in extra.items():  # NAME_parts/frame_NNNNNN.png, ...
                        folder = os.path.join(args.output, name + suffix)
                        os.makedirs(folder, exist_ok=True)
                        _write_png(os.path.join(folder, f"frame_{index:06d}.png"), array)
                used += 1
            index += 1
    finally:
        bar.close()
        capture.release()
        if writer is not None:
            writer.release()
        if lines is not None:
            lines.close()
    if used == 0:
        for tmp in (video_out + ".tmp.mp4", jsonl_out + ".tmp"):
            if os.path.exists(tmp):
                os.remove(tmp)
        return "no frame could be decoded"
    os.replace(video_out + ".tmp.mp4", video_out)
    if args.json:
        os.replace(jsonl_out + ".tmp", jsonl_out)
    return ""


_CONFIG_KEY = re.compile(r"^[A-Z][A-Z0-9_]*(\.[A-Z0-9_]+)+$")


def split_trailing_opts(args) -> None:
    """``--input a.jpg MODEL.WEIGHTS x.pth``: argparse gives the config overrides to --input; move
    everything from the first config key that is not an existing path into ``args.opts``."""
    for i, item in enumerate(args.input):
        if _CONFIG_KEY.match(item) and not os.path.exists(item):
            args.opts = args.input[i:] + list(args.opts)
            args.input = args.input[:i]
            if not args.input:
                raise DemoError("--input needs at least one path before the config overrides")
            return


def main(args) -> int:
    split_trailing_opts(args)
    files, folders = collect_inputs(args.input)
    check_output_dir(args.output, files, folders)
    cfg = setup(args)
    os.makedirs(args.output, exist_ok=True)
    keypoint_taxonomy = cfg.BODYPARTS.KEYPOINT_TAXONOMY if cfg.MODEL.KEYPOINT_ON else None
    meta = metadata_for(cfg.BODYPARTS.PART_TAXONOMY, keypoint_taxonomy)
    args.part_taxonomy = cfg.BODYPARTS.PART_TAXONOMY
    # class names and colours of a panoptic model: its training data's (stuff_classes, thing_classes)
    args.panoptic_meta = MetadataCatalog.get(cfg.DATASETS.TRAIN[0]) if cfg.DATASETS.TRAIN else meta
    predictor = DefaultPredictor(cfg)  # takes BGR images, converts to cfg.INPUT.FORMAT itself
    failed = []
    if args.video_stride < 1:
        raise DemoError(f"--video-stride must be >= 1, got {args.video_stride}")
    progress = tqdm(files, desc="demo", unit="input", dynamic_ncols=True)
    for path, name in zip(progress, output_names(files)):
        if _is_video(path):
            reason = process_video(predictor, path, name, args, meta)
            if reason:
                failed.append((path, reason))
                tqdm.write(f"SKIPPED {path}: {reason}", file=sys.stderr)
            continue
        image, reason = read_input_image(path)
        if image is None:
            failed.append((path, reason))
            tqdm.write(f"SKIPPED {path}: {reason}", file=sys.stderr)
            continue
        process(predictor, image, path, name, args, meta)
    done = len(files) - len(failed)
    print(f"{done} of {len(files)} inputs written to {args.output}")
    if failed:
        print(f"{len(failed)} image(s) failed:", file=sys.stderr)
        for path, reason in failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    arguments = get_parser().parse_intermixed_args()
    try:
        sys.exit(main(arguments))
    except DemoError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
