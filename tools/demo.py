#!/usr/bin/env python
"""Run a bodyparts model on images and save visualizations (and, with --json, the predictions).

    python tools/demo.py --config-file CFG --input PATH [PATH ...] --output DIR
                         [--confidence-threshold 0.5] [--json] [--no-legend] [--no-track]
                         [KEY VALUE ...]
    python tools/demo.py --config-file CFG --webcam [--camera-index N] [--output DIR]
                         [--max-frames N] [--json] [--no-track] [KEY VALUE ...]

PATH: image or video files, folders (their .jpg/.jpeg/.png/.bmp images and .mp4/.avi/.mov/.mkv/
.webm/.mpg videos, sorted; not recursive) or globs (quote them). Trailing KEY VALUE pairs override
the config, e.g. ``MODEL.WEIGHTS out/model_final.pth MODEL.DEVICE cpu``. ``MODEL.WEIGHTS ""`` runs
an untrained model (random weights, with a warning).

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
  pasted in ascending score order, docs/metrics.md section 1). The semantic segmenter's JSON has the
  size, the part labels and the pixels per part.
* panoptic models, with --json: ``NAME_panoptic.png`` (segment ids as COCO-panoptic RGB, id = R +
  256 G + 256^2 B; ``segments_info`` in the JSON) and ``NAME_part_panoptic.png`` (the panoptic-parts
  3-channel format: scene class, instance id, part id; 255 = none).

Per video ``NAME.ext`` (every --video-stride-th frame): ``NAME.mp4``, the rendered frames at the
video's frame rate divided by the stride (no legend, so every frame has the same size); with
--json, ``NAME.jsonl`` (one line per processed frame: the JSON above plus ``frame_index``, 0-based)
and ``NAME_parts/frame_NNNNNN.png``.

Videos and the camera are tracked (unless --no-track): each person keeps an id across frames
(ByteTrack, ``bodyparts_runtime.tracking``; a new person gets its id on the second frame it is seen
in), drawn as ``#id`` in a colour per id and written as ``"id"`` (int, or null before that) per
person in the JSON lines. One tracker per video, at the video's frame rate over the stride.

With --webcam (OpenCV capture of camera --camera-index): the rendered frames are shown in a window
(q or Esc quits), or with --output DIR written to ``DIR/webcam.mp4`` at the camera's frame rate
(the frames the model had time for; no legend) and, with --json, ``DIR/webcam.jsonl`` and
``DIR/webcam_parts/``; Ctrl-C or --max-frames N ends it and keeps what was written. No camera, or an
OpenCV without window support and no --output: a clear error (exit code 2).

The JSON and the drawings come from ``bodyparts.utils.predictions`` (the server answers with the
same). Unreadable or empty images are reported by name and skipped; the exit code is then 1. Usage
errors (missing config or weights file, no images, --output an input folder) exit with code 2.
"""

import argparse
import glob
import json
import os
import re
import sys
import warnings
from typing import Callable, Dict, List, Optional, Tuple

# Deprecation notices from torch about Detectron2 internals: noise for a command-line tool.
warnings.filterwarnings("ignore", r"`torch.jit.script` is deprecated", FutureWarning)
warnings.filterwarnings("ignore", r"torch.meshgrid", UserWarning)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from bodyparts_runtime.tracking import PersonTracker  # noqa: E402
from detectron2.config import CfgNode  # noqa: E402
from detectron2.data.detection_utils import read_image  # noqa: E402
from PIL import UnidentifiedImageError  # noqa: E402
from tqdm import tqdm  # noqa: E402

import bodyparts  # noqa: F401,E402  (prepares Detectron2, registers datasets: import first)
from bodyparts.utils.cli import ToolError, add_weights_flag, make_output_dir, run_tool  # noqa: E402
from bodyparts.utils.predictions import PredictionFormatter, load_inference_cfg  # noqa: E402
from bodyparts.utils.predictor import Predictor  # noqa: E402

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")


class DemoError(ToolError):
    """A usage error: reported as one line, exit code 2."""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--config-file", required=True, metavar="FILE", help="model config (yaml)")
    add("--input", nargs="+", metavar="PATH", help="image or video files, folders or globs")
    add("--webcam", action="store_true", help="read frames from a camera instead of --input")
    add(
        "--camera-index",
        type=int,
        default=0,
        metavar="N",
        help="--webcam: camera number (default 0)",
    )
    add(
        "--max-frames",
        type=int,
        default=0,
        metavar="N",
        help="--webcam: stop after N frames (0: q, Esc, Ctrl-C)",
    )
    add("--output", metavar="DIR", help="output folder (created if needed); optional with --webcam")
    add("--confidence-threshold", type=float, default=0.5, help="minimum person score to keep")
    add("--json", action="store_true", help="also write NAME.json and NAME_parts.png")
    add("--no-legend", action="store_true", help="no part legend next to the visualization")
    add_weights_flag(parser)
    add("--video-stride", type=int, default=1, metavar="N", help="videos: process every N-th frame")
    add("--no-track", action="store_true", help="videos, --webcam: no person ids across frames")
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
            found = sorted(
                f for f in entries if _is_image(f) or (_is_video(f) and os.path.isfile(f))
            )
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
    """The model's config (:func:`bodyparts.utils.predictions.load_inference_cfg`); DemoError on a
    bad config, key or weights file."""
    try:
        return load_inference_cfg(args.config_file, args.opts)
    except ValueError as e:
        raise DemoError(str(e)) from None


def run_model(
    predictor,
    image_bgr: np.ndarray,
    path: str,
    formatter: PredictionFormatter,
    legend: bool,
    tracker: Optional[PersonTracker] = None,
):
    """Predict one image; return (BGR visualization, JSON record, {file suffix: uint8 image to
    write with --json}) (:class:`bodyparts.utils.predictions.PredictionFormatter`); ``tracker``:
    the stream's person tracker (frames in order), None for a still image."""
    outputs = predictor(image_bgr)
    result = formatter(outputs, image_bgr, os.path.abspath(path), legend=legend, tracker=tracker)
    return result.vis_bgr, result.record, result.label_maps


def make_tracker(args, frame_rate: float) -> Optional[PersonTracker]:
    """The person tracker of one stream (None with --no-track); DemoError without the package."""
    if args.no_track:
        return None
    try:
        return PersonTracker(args.confidence_threshold, frame_rate=frame_rate)
    except ImportError as e:
        raise DemoError(f"{e}; or pass --no-track") from None


def _write_png(path: str, array: np.ndarray) -> None:
    """Write a label map: 2-D as is, 3-channel with its channels in RGB order in the file."""
    cv2.imwrite(path, array[:, :, ::-1] if array.ndim == 3 else array)


def process(predictor, image_bgr: np.ndarray, path: str, name: str, args, formatter) -> None:
    """Predict one image and write its outputs."""
    vis, record, extra = run_model(predictor, image_bgr, path, formatter, legend=not args.no_legend)
    cv2.imwrite(os.path.join(args.output, name + ".png"), vis)
    if not args.json:
        return
    with open(os.path.join(args.output, name + ".json"), "w") as f:
        json.dump(record, f)
    for suffix, array in extra.items():
        _write_png(os.path.join(args.output, name + suffix + ".png"), array)


class FrameWriter:
    """Writes the rendered frames of a stream to ``DIR/NAME.mp4`` and, with ``json_lines``, one
    JSON line per frame to ``DIR/NAME.jsonl`` and its label maps to ``DIR/NAME_parts/`` (...).

    The video and the JSON lines are written under temporary names and renamed by :meth:`finish`,
    so nothing is left half-written under the final names; frames written before an interruption
    (Ctrl-C, a camera that stops) are kept."""

    def __init__(self, output: str, name: str, fps: float, json_lines: bool):
        self.output, self.name, self.fps = output, name, fps
        self.video_out = os.path.join(output, name + ".mp4")
        self.jsonl_out = os.path.join(output, name + ".jsonl") if json_lines else None
        self.writer = None
        self.lines = open(self.jsonl_out + ".tmp", "w") if self.jsonl_out else None
        self.count = 0

    def write(
        self, index: int, vis: np.ndarray, record: Dict, extra: Dict[str, np.ndarray]
    ) -> None:
        """Add frame ``index`` (0-based in the stream): BGR drawing, JSON record, label maps."""
        if self.writer is None:
            size = (vis.shape[1], vis.shape[0])
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self.writer = cv2.VideoWriter(self.video_out + ".tmp.mp4", fourcc, self.fps, size)
        self.writer.write(vis)
        if self.lines is not None:
            self.lines.write(json.dumps({"frame_index": index, **record}) + "\n")
            for suffix, array in extra.items():  # NAME_parts/frame_NNNNNN.png, ...
                folder = os.path.join(self.output, self.name + suffix)
                os.makedirs(folder, exist_ok=True)
                _write_png(os.path.join(folder, f"frame_{index:06d}.png"), array)
        self.count += 1

    def finish(self) -> int:
        """Close the files and move them to their final names (removed when no frame was
        written); returns the number of frames written."""
        if self.writer is not None:
            self.writer.release()
        if self.lines is not None:
            self.lines.close()
        pairs = [(self.video_out + ".tmp.mp4", self.video_out)]
        if self.jsonl_out:
            pairs.append((self.jsonl_out + ".tmp", self.jsonl_out))
        for tmp, final in pairs:
            if self.count == 0 and os.path.exists(tmp):
                os.remove(tmp)
            elif self.count:
                os.replace(tmp, final)
        return self.count


def process_video(predictor, path: str, name: str, args, formatter) -> str:
    """Predict every ``args.video_stride``-th frame of a video and write its outputs
    (:class:`FrameWriter`). Returns "" on success, else the reason the video could not be used."""
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        return "not a readable video (corrupt file or unsupported codec)"
    stride = max(1, args.video_stride)
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    sink = FrameWriter(args.output, name, fps / stride, args.json)
    tracker = make_tracker(args, fps / stride)
    index = 0
    bar = tqdm(total=total or None, desc=os.path.basename(path), unit="frame", leave=False)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            bar.update(1)
            if index % stride == 0:
                drawn = run_model(predictor, frame, path, formatter, False, tracker)
                sink.write(index, *drawn)
            index += 1
    finally:
        bar.close()
        capture.release()
        used = sink.finish()
    return "" if used else "no frame could be decoded"


# ----------------------------------------------------------------------------------------------
# webcam


def open_camera(index: int, video_capture: Callable = cv2.VideoCapture):
    """The opened capture of camera ``index`` (``video_capture(index)``: OpenCV's VideoCapture, or a
    stand-in with ``isOpened``, ``read``, ``get`` and ``release``). Raises DemoError when there is
    no such camera."""
    capture = video_capture(index)
    if not capture.isOpened():
        capture.release()
        devices = sorted(glob.glob("/dev/video*"))
        found = (
            f"video devices here: {', '.join(devices)}" if devices else "no /dev/video* device here"
        )
        raise DemoError(
            f"camera {index} cannot be opened ({found}); pass --camera-index N, or --input FILE"
        )
    return capture


class WindowSink:
    """Shows the rendered frames in an OpenCV window; q or Esc stops."""

    TITLE = "bodyparts demo (q or Esc: quit)"

    def __init__(self):
        try:
            cv2.namedWindow(self.TITLE, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise DemoError(
                "this OpenCV build has no window support (opencv-python-headless): "
                "pass --output DIR to write the rendered webcam frames to DIR/webcam.mp4 instead"
            ) from None
        self.count = 0

    def write(
        self, index: int, vis: np.ndarray, record: Dict, extra: Dict[str, np.ndarray]
    ) -> bool:
        cv2.imshow(self.TITLE, vis)
        self.count += 1
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def finish(self) -> int:
        cv2.destroyWindow(self.TITLE)
        return self.count


def webcam_loop(
    predictor,
    capture,
    formatter,
    sink,
    max_frames: int = 0,
    legend: bool = False,
    tracker: Optional[PersonTracker] = None,
) -> int:
    """Read frames from ``capture`` until it fails, ``max_frames`` (> 0) are done, the sink asks to
    stop (returns False) or Ctrl-C; predict (person ids from ``tracker``, timed by the clock), draw
    and hand each to ``sink.write(index, vis, record, label maps)``. Always releases the capture
    and finishes the sink; returns the frames done."""
    index = 0
    try:
        while max_frames <= 0 or index < max_frames:
            ok, frame = capture.read()
            if not ok or frame is None:
                if index == 0:
                    raise DemoError("the camera gave no frame")
                break
            name = f"camera:{index}"
            vis, record, extra = run_model(predictor, frame, name, formatter, legend, tracker)
            record["file_name"] = None  # a camera frame has no file
            if sink.write(index, vis, record, extra) is False:
                break
            index += 1
    except KeyboardInterrupt:
        print(f"interrupted after {index} frames", file=sys.stderr)
    finally:
        capture.release()
        sink.finish()
    return index


def run_webcam(args, cfg: CfgNode, formatter, video_capture: Callable = cv2.VideoCapture) -> int:
    """``--webcam``: camera ``--camera-index`` -> a window, or ``DIR/webcam.mp4`` (+ ``.jsonl``
    with --json) with --output DIR."""
    capture = open_camera(args.camera_index, video_capture)
    try:
        if args.output:
            make_output_dir(args.output)
            fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
            sink = FrameWriter(args.output, "webcam", fps, args.json)
        else:
            sink = WindowSink()
        predictor = Predictor(cfg, allow_partial_weights=args.allow_partial_weights)
    except BaseException:
        capture.release()
        raise
    legend = not args.output and not args.no_legend  # a video file needs one frame size
    tracker = make_tracker(args, capture.get(cv2.CAP_PROP_FPS) or 25.0)
    done = webcam_loop(predictor, capture, formatter, sink, args.max_frames, legend, tracker)
    where = f"written to {os.path.join(args.output, 'webcam.mp4')}" if args.output else "shown"
    print(f"{done} camera frames {where}")
    return 0


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


def main(args, video_capture: Callable = cv2.VideoCapture) -> int:
    """Run the demo; ``video_capture`` opens the camera of --webcam (a stand-in in tests)."""
    if args.webcam == bool(args.input):
        raise DemoError("give either --input PATH ... or --webcam")
    if args.input:
        split_trailing_opts(args)
        if not args.output:
            raise DemoError("--input needs --output DIR")
        files, folders = collect_inputs(args.input)
        check_output_dir(args.output, files, folders)
    if args.video_stride < 1:
        raise DemoError(f"--video-stride must be >= 1, got {args.video_stride}")
    cfg = setup(args)
    formatter = PredictionFormatter.from_config(cfg, args.confidence_threshold)
    if args.webcam:
        return run_webcam(args, cfg, formatter, video_capture)
    make_output_dir(args.output)
    # takes BGR images, converts to cfg.INPUT.FORMAT itself
    predictor = Predictor(cfg, allow_partial_weights=args.allow_partial_weights)
    failed = []
    progress = tqdm(files, desc="demo", unit="input", dynamic_ncols=True)
    for path, name in zip(progress, output_names(files)):
        if _is_video(path):
            reason = process_video(predictor, path, name, args, formatter)
            if reason:
                failed.append((path, reason))
                tqdm.write(f"SKIPPED {path}: {reason}", file=sys.stderr)
            continue
        image, reason = read_input_image(path)
        if image is None:
            failed.append((path, reason))
            tqdm.write(f"SKIPPED {path}: {reason}", file=sys.stderr)
            continue
        process(predictor, image, path, name, args, formatter)
    done = len(files) - len(failed)
    print(f"{done} of {len(files)} inputs written to {args.output}")
    if failed:
        print(f"{len(failed)} image(s) failed:", file=sys.stderr)
        for path, reason in failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, get_parser().parse_intermixed_args(), prog="demo.py"))
