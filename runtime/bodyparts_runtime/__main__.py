"""``bodyparts-runtime EXPORT_DIR IMAGE [IMAGE ...] [--output DIR] [--threshold T]``: one JSON
record (``<name>.json``) and one drawing (``<name>_vis.png``) per image in ``--output``."""

import argparse
import json
import os
import sys

import cv2

from .model import ExportFolderError, Runtime


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bodyparts-runtime", description=__doc__)
    parser.add_argument("export_dir", help="tools/export_model.py --format onnx output folder")
    parser.add_argument("images", nargs="+", help="image files")
    parser.add_argument("--output", default="runtime_output", help="output folder")
    parser.add_argument("--threshold", type=float, default=0.5, help="smallest person score")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: auto)")
    args = parser.parse_args(argv)
    try:
        model = Runtime(args.export_dir, num_threads=args.threads or None)
    except ExportFolderError as e:
        print(f"bodyparts-runtime: error: {e}", file=sys.stderr)
        return 2
    os.makedirs(args.output, exist_ok=True)
    for path in args.images:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            print(f"bodyparts-runtime: error: {path}: not a readable image", file=sys.stderr)
            return 2
        stem = os.path.splitext(os.path.basename(path))[0]
        found = model.persons(image, args.threshold)  # the model runs once per image
        record = model.record(found, args.threshold, file_name=os.path.abspath(path))
        with open(os.path.join(args.output, stem + ".json"), "w") as f:
            json.dump(record, f)
        cv2.imwrite(os.path.join(args.output, stem + "_vis.png"), model.draw(image, found=found))
        print(f"{path}: {len(record['persons'])} persons")
    return 0


if __name__ == "__main__":
    sys.exit(main())
