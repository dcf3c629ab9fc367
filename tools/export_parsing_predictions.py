#!/usr/bin/env python
"""Write a model's parsing predictions on a registered split in the formats the reference
evaluation code reads (Parsing R-CNN, PGN, MHP-v2), and optionally evaluate them in the same pass.

    python tools/export_parsing_predictions.py --config-file CFG --dataset cihp_val --output DIR \\
        [--eval] [--formats parsing_predict,parsing_instance,parsing_person,instance_part] \\
        [--num-gpus N] MODEL.WEIGHTS model_final.pth [KEY VALUE ...]

``--num-gpus N`` shares the images among N processes (N GPUs, or N CPU processes with
``MODEL.DEVICE cpu``, as ``tools/train_net.py``); the files and numbers are those of one process.

Writes under DIR (file formats: ``bodyparts/evaluation/parsing_export.py``):
``parsing_predict/<img>.png`` (image-level labels), ``parsing_instance/<img>.png`` (instance ids),
``parsing_person/<img>_<k>.png`` + ``<img>.txt`` (per-person maps, ``x1 y1 x2 y2 score`` lines),
``instance_part/<img>.png`` + ``<img>.txt`` (PGN instance-part format, ``class_id score k`` lines),
``results.txt`` (MHP-v2 submission lines), ``export_info.json``; with --eval also ``metrics.json``
(BodyPartParsingEvaluator's numbers on the same predictions). Thresholds come from
``BODYPARTS.PARSING_EVAL.*`` (Parsing R-CNN's CIHP protocol: ``PASTE_SCORE_THRESH 0.3
AP_SCORE_THRESH 0.001``; MHP-v2: ``PASTE_SCORE_THRESH 0.05``).

Usage errors (missing config or weights file, unknown dataset or format) exit with code 2.
"""

import argparse
import json
import os
import sys
import warnings

# Deprecation notices from torch about Detectron2 internals: noise for a command-line tool.
warnings.filterwarnings("ignore", r"`torch.jit.script` is deprecated", FutureWarning)
warnings.filterwarnings("ignore", r"torch.meshgrid", UserWarning)

from detectron2.data import DatasetCatalog  # noqa: E402
from detectron2.utils import comm  # noqa: E402

import bodyparts  # noqa: F401,E402  (prepares Detectron2, registers datasets: import first)
from bodyparts.checkpoint import load_weights  # noqa: E402
from bodyparts.data.datasets.synthetic import register_synthetic_from_cfg  # noqa: E402
from bodyparts.engine import Trainer, launch  # noqa: E402
from bodyparts.evaluation import (  # noqa: E402
    EXPORT_FORMATS,
    BodyPartParsingEvaluator,
    ParsingPredictionWriter,
    export_parsing_predictions,
)
from bodyparts.utils.cli import ToolError, add_weights_flag, make_output_dir, run_tool  # noqa: E402
from bodyparts.utils.predictions import load_inference_cfg  # noqa: E402
from bodyparts.utils.predictor import seeded_if_untrained  # noqa: E402


class ExportError(ToolError):
    """A usage error: reported as one line, exit code 2."""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--config-file", required=True, metavar="FILE", help="model config (yaml)")
    add("--dataset", required=True, metavar="NAME", help="registered split, e.g. cihp_val")
    add("--output", required=True, metavar="DIR", help="output folder (created if needed)")
    add("--eval", action="store_true", help="also evaluate (metrics.json in DIR)")
    add("--formats", default=",".join(EXPORT_FORMATS), help="comma-separated subset of the formats")
    add("--no-progress", action="store_true", help="no progress bar")
    add(
        "--num-gpus",
        type=int,
        default=1,
        metavar="N",
        help="processes sharing the images: GPUs, or CPU processes with MODEL.DEVICE cpu",
    )
    add("--dist-url", default="auto", help="as tools/train_net.py (default: a free local port)")
    add_weights_flag(parser)
    add(
        "opts",
        nargs=argparse.REMAINDER,
        default=[],
        help="config overrides KEY VALUE ..., at the end",
    )
    return parser


def setup(args):
    try:  # the config checks of tools/demo.py and tools/serve.py (file, keys, weights, device)
        cfg = load_inference_cfg(args.config_file, args.opts)
    except ValueError as e:
        raise ExportError(str(e)) from None
    register_synthetic_from_cfg(cfg)
    if args.dataset not in DatasetCatalog.list():
        raise ExportError(f"dataset {args.dataset!r} is not registered (see datasets/README.md)")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = sorted(set(formats) - set(EXPORT_FORMATS))
    if unknown or not formats:
        raise ExportError(f"--formats {args.formats!r}: choose from {','.join(EXPORT_FORMATS)}")
    return cfg, formats


def main(args) -> int:
    """Check the arguments, then export in ``--num-gpus`` processes (:func:`export`)."""
    cfg, _ = setup(args)
    if args.num_gpus < 1:
        raise ExportError(f"--num-gpus {args.num_gpus}: give 1 or more")
    make_output_dir(args.output)
    if args.num_gpus > 1:  # load (generate, cache) the split once, not in every process at once
        DatasetCatalog.get(args.dataset)
    launch(export, args.num_gpus, dist_url=args.dist_url, args=(args,), device=cfg.MODEL.DEVICE)
    return 0


def export(args) -> None:
    """One process's share: its images through the model, files written; the main process
    gathers results.txt, export_info.json and the evaluation."""
    cfg, formats = setup(args)
    distributed = comm.get_world_size() > 1
    with seeded_if_untrained(cfg):  # MODEL.WEIGHTS "": the same random weights in every process
        model = Trainer.build_model(cfg)
    load_weights(model, cfg.MODEL.WEIGHTS, allow_partial=args.allow_partial_weights)
    loader = Trainer.build_test_loader(cfg, args.dataset)
    writer = ParsingPredictionWriter(
        cfg, args.dataset, args.output, formats=formats, distributed=distributed
    )
    evaluator = None
    if args.eval:
        evaluator = BodyPartParsingEvaluator(cfg, args.dataset, None, distributed=distributed)
    results = export_parsing_predictions(
        model, loader, writer, evaluator, progress=not args.no_progress
    )
    if not comm.is_main_process():
        return
    if args.eval:
        with open(os.path.join(args.output, "metrics.json"), "w") as f:
            json.dump(results, f, indent=2)
        summary = {k: round(v, 3) for k, v in results.get("parsing", {}).items() if "-" not in k}
        print(json.dumps(summary))
    print(f"predictions of {args.dataset} written to {args.output}")


if __name__ == "__main__":
    sys.exit(run_tool(main, get_parser().parse_args(), prog="export_parsing_predictions.py"))
