"""``bodyparts-runtime EXPORT_DIR INPUT [INPUT ...] [--output DIR] [--threshold T]``.

Per image ``NAME.ext``: ``NAME.json`` (the record of ``tools/demo.py --json``) and ``NAME_vis.png``
(the drawing) in ``--output``. Per video ``NAME.ext`` (.mp4, .avi, .mov, .mkv, .webm, .mpg):
``NAME.jsonl``, one record per frame with ``frame_index`` and, unless ``--no-track``, each person's
``id`` across frames (:class:`bodyparts_runtime.tracking.PersonTracker`: needs the ``trackers``
package), and ``NAME_vis.mp4``, the drawings (a colour per id)."""

import argparse
import json
import os
import sys

import cv2

from .model import ExportFolderError, Runtime

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg")


class _InputError(Exception):
    pass


def _image(model: Runtime, path: str, args) -> str:
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise _InputError(f"{path}: not a readable image")
    stem = os.path.splitext(os.path.basename(path))[0]
    found = model.persons(image, args.threshold)  # the model runs once per image
    record = model.record(found, args.threshold, file_name=os.path.abspath(path))
    with open(os.path.join(args.output, stem + ".json"), "w") as f:
        json.dump(record, f)
    cv2.imwrite(os.path.join(args.output, stem + "_vis.png"), model.draw(image, found=found))
    return f"{len(record['persons'])} persons"


def _video(model: Runtime, path: str, args) -> str:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise _InputError(f"{path}: not a readable video (corrupt file or unsupported codec)")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    tracker = None
    if not args.no_track:
        from .tracking import PersonTracker

        try:
            tracker = PersonTracker(args.threshold, frame_rate=fps)
        except ImportError as e:
            capture.release()
            raise _InputError(f"{e}; or pass --no-track") from None
    stem = os.path.splitext(os.path.basename(path))[0]
    lines_path = os.path.join(args.output, stem + ".jsonl")
    video_path = os.path.join(args.output, stem + "_vis.mp4")
    writer, frames = None, 0
    # written under temporary names, renamed when done: nothing half-written under the final ones
    with open(lines_path + ".tmp", "w") as lines:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            found = model.persons(frame, args.threshold)
            record = model.record(found, args.threshold, file_name=os.path.abspath(path))
            ids = None
            if tracker is not None:
                record = tracker.track(record)
                ids = [p["id"] for p in record["persons"]]
            lines.write(json.dumps({"frame_index": frames, **record}) + "\n")
            drawing = model.draw(frame, found=found, ids=ids)
            if writer is None:
                size = (drawing.shape[1], drawing.shape[0])
                fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                writer = cv2.VideoWriter(video_path + ".tmp.mp4", fourcc, fps, size)
            writer.write(drawing)
            frames += 1
    capture.release()
    if writer is not None:
        writer.release()
    if frames == 0:
        os.remove(lines_path + ".tmp")
        raise _InputError(f"{path}: no frame could be decoded")
    os.replace(lines_path + ".tmp", lines_path)
    os.replace(video_path + ".tmp.mp4", video_path)
    return f"{frames} frames"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="bodyparts-runtime", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("export_dir", help="tools/export_model.py --format onnx output folder")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files")
    parser.add_argument("--output", default="runtime_output", help="output folder")
    parser.add_argument("--threshold", type=float, default=0.5, help="smallest person score")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: auto)")
    parser.add_argument("--no-track", action="store_true", help="videos: no person ids")
    args = parser.parse_args(argv)
    try:
        model = Runtime(args.export_dir, num_threads=args.threads or None)
    except ExportFolderError as e:
        print(f"bodyparts-runtime: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.output, exist_ok=True)
    for path in args.inputs:
        run = _video if path.lower().endswith(VIDEO_EXTENSIONS) else _image
        try:
            done = run(model, path, args)
        except _InputError as e:
            print(f"bodyparts-runtime: error: {e}", file=sys.stderr)
            return 2
        print(f"{path}: {done}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
