#!/usr/bin/env python
"""Export a bodyparts model to TorchScript or ONNX, in the conventions of Detectron2's
tools/deploy/export_model.py.

    python tools/export_model.py --config-file CFG --format {torchscript,onnx}
                                 --export-method {tracing,scripting} [--sample-image IMG]
                                 --output DIR [--opset 17] [--quantize int8]
                                 [--calibration-images 32] [--eval] [KEY VALUE ...]

e.g. ``MODEL.WEIGHTS output/.../model_final.pth`` as trailing opts. Exports the per-person part
model (BodyPartsRCNN / GeneralizedRCNN: TorchScript by tracing or scripting, ONNX by tracing) and
the semantic part segmenter (tracing). The panoptic model cannot be exported (an error says why).

The sample image (default: the first image of DATASETS.TEST[0]) is resized as DefaultPredictor
does; tracing records the graph on it, and the file is then checked against the eager model on
it (largest absolute difference per output, printed and kept in DIR/export_info.json). DIR gets
model.ts (+ Detectron2's TorchScript IR dumps) or model.onnx, and export_info.json (input, output
names and shapes, label names). Exit code 1 when the model cannot be exported (the message names
the part and why), 2 for usage errors.

``--quantize int8`` (ONNX): ONNX Runtime static quantization of the convolutions and matrix
products, calibrated on the first images of DATASETS.TRAIN; DIR/model_int8.onnx becomes the folder's
model (export_info.json names the op types left in float). ``--eval``: the exported file evaluated
on DATASETS.TEST with the model's evaluators (COCO AP, parsing metrics), the numbers printed and
kept in export_info.json (``evaluation``).
"""

import argparse
import json
import logging
import os
import sys
import warnings
from typing import List, Optional

# Deprecation notices from torch about Detectron2 internals: noise for a command-line tool.
warnings.filterwarnings("ignore", r".*is deprecated", FutureWarning)
warnings.filterwarnings("ignore", r"torch.meshgrid", UserWarning)

from tabulate import tabulate  # noqa: E402

import bodyparts  # noqa: F401,E402  (prepares Detectron2, registers datasets: import first)
from bodyparts.export import (  # noqa: E402
    FORMATS,
    METHODS,
    ONNX_OPSET,
    ExportError,
    build_model_for_export,
    export_metadata,
    export_model,
    prepare_image,
)
from bodyparts.export.quantize import ExportedDetector, quantize_int8  # noqa: E402
from bodyparts.utils.cli import USER_ERRORS, add_weights_flag, make_output_dir  # noqa: E402
from bodyparts.utils.predictions import load_inference_cfg  # noqa: E402


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config-file", required=True, metavar="FILE", help="path to the config file")
    p.add_argument("--format", choices=FORMATS, default="torchscript", help="output format")
    p.add_argument("--export-method", choices=METHODS, default="tracing", help="how to export")
    p.add_argument("--sample-image", metavar="IMG", help="sample input (default: first test image)")
    p.add_argument("--output", required=True, metavar="DIR", help="output directory")
    p.add_argument("--opset", type=int, default=ONNX_OPSET, help="ONNX opset (16 or later)")
    add_weights_flag(p)
    p.add_argument("--quantize", choices=("int8",), help="ONNX: static INT8 quantization")
    p.add_argument(
        "--calibration-images", type=int, default=32, help="INT8: training images to calibrate on"
    )
    p.add_argument("--eval", action="store_true", help="evaluate the file on DATASETS.TEST")
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    args = p.parse_args(argv)
    if not os.path.isfile(args.config_file):
        p.error(f"config file {args.config_file!r} does not exist")
    if args.sample_image is not None and not os.path.isfile(args.sample_image):
        p.error(f"sample image {args.sample_image!r} does not exist")
    if args.quantize and args.format != "onnx":
        p.error("--quantize int8 needs --format onnx")
    if args.calibration_images < 1:
        p.error(f"--calibration-images {args.calibration_images}: give 1 or more")
    if args.opset < 16:
        p.error(
            f"--opset {args.opset}: ROIAlignV2 (half-pixel RoiAlign) needs ONNX opset 16 or later"
        )
    return args


def sample_image_path(cfg) -> str:
    """The first image of DATASETS.TEST[0] (Detectron2's tool uses the first test batch)."""
    from detectron2.data import DatasetCatalog

    from bodyparts.data.datasets.synthetic import register_synthetic_from_cfg

    if not cfg.DATASETS.TEST:
        raise ExportError("no --sample-image and DATASETS.TEST is empty: give a sample image")
    register_synthetic_from_cfg(cfg)
    records = DatasetCatalog.get(cfg.DATASETS.TEST[0])
    if not records:
        raise ExportError(f"no --sample-image and dataset {cfg.DATASETS.TEST[0]!r} is empty")
    return records[0]["file_name"]


def evaluate_export(directory: str, cfg) -> dict:
    """The exported file of ``directory`` on every DATASETS.TEST split, through the test loader and
    the evaluators of the eager model (``Trainer.build_evaluator``)."""
    from detectron2.evaluation import inference_on_dataset

    from bodyparts.engine import Trainer

    if not cfg.DATASETS.TEST:
        raise ValueError("--eval: DATASETS.TEST is empty")
    model = ExportedDetector(directory)
    results = {}
    for name in cfg.DATASETS.TEST:
        evaluator = Trainer.build_evaluator(cfg, name, os.path.join(directory, "inference", name))
        loader = Trainer.build_test_loader(cfg, name)
        found = inference_on_dataset(model, loader, evaluator)
        results[name] = {
            task: {k: float(v) for k, v in values.items() if "-" not in k}
            for task, values in found.items()
        }
    return results


def _write_info(directory: str, info: dict) -> None:
    with open(os.path.join(directory, "export_info.json"), "w") as f:
        json.dump(info, f, indent=2)


def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:  # the config checks of tools/demo.py (file, keys, values, weights file, device)
        cfg = load_inference_cfg(args.config_file, args.opts)
        make_output_dir(args.output)
        model = build_model_for_export(cfg, allow_partial_weights=args.allow_partial_weights)
    except USER_ERRORS + (ValueError,) as e:
        print(f"export_model.py: error: {e}", file=sys.stderr)
        return 2
    try:
        sample = args.sample_image or sample_image_path(cfg)
        image, original_size = prepare_image(cfg, sample)
        metadata = {"config_file": args.config_file, "sample_image": sample, **export_metadata(cfg)}
        info = export_model(
            model,
            image,
            args.output,
            format=args.format,
            method=args.export_method,
            metadata=metadata,
            opset=args.opset,
        )
        if args.quantize:
            info = quantize_int8(
                args.output, cfg, num_images=args.calibration_images, model=model, sample=image
            )
            ops = info["quantization"]["ops"]
            print(f"INT8 model written to {os.path.join(args.output, info['file'])}")
            for kind in ("int8", "float"):
                print(f"  {kind}: " + ", ".join(f"{k} {v}" for k, v in ops[kind].items()))
        if args.eval:
            info["evaluation"] = evaluate_export(args.output, cfg)
            _write_info(args.output, info)
            print(json.dumps(info["evaluation"], indent=1))
    except (ExportError, ValueError) as e:
        print(f"export_model.py: error: {e}", file=sys.stderr)
        return 1
    check = info["sample_check"]
    height, width = check["input_size"]
    print(
        f"{args.format} ({args.export_method}) written to {os.path.join(args.output, info['file'])}"
    )
    print(
        f"input: {info['input']['shape']} float32 {cfg.INPUT.FORMAT}; sample {sample} "
        f"{original_size[0]}x{original_size[1]} -> {height}x{width}"
        + (f", {check['detections']} detections" if check["detections"] is not None else "")
    )
    rows = [[o["name"], o["description"]] for o in info["outputs"]]
    print(tabulate(rows, ["output", "shape and meaning"]))
    rows = [[k, f"{v:.3g}"] for k, v in check["max_abs_diff"].items()]
    print(tabulate(rows, ["vs eager on the sample", "max |difference|"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(parse_args()))
