#!/usr/bin/env python
"""Serve a bodyparts model over HTTP, with a web page for the webcam or a chosen file.

    python tools/serve.py --config-file CFG [--host 127.0.0.1] [--port 8000] [--token T]
                          [--max-queue 8] [--max-batch 1] [--max-pixels 12000000]
                          [--max-bytes 20971520] [--confidence-threshold 0.5] [KEY VALUE ...]

Trailing KEY VALUE pairs override the config, e.g. ``MODEL.WEIGHTS out/model_final.pth``
(``MODEL.WEIGHTS ""``: an untrained model, with a warning). Routes: ``POST /predict`` (JSON as
``tools/demo.py --json``), ``POST /render`` (PNG), ``GET /health``, ``GET /info``, ``GET /`` (the
page), ``/docs`` (OpenAPI). See README.md, section "Server". Exit code 2 on a usage error.
"""

import argparse
import os
import sys
import warnings

warnings.filterwarnings("ignore", r"`torch.jit.script` is deprecated", FutureWarning)
warnings.filterwarnings("ignore", r"torch.meshgrid", UserWarning)

import bodyparts  # noqa: F401,E402  (prepares Detectron2, registers datasets: import first)
from bodyparts.serving import BatchPredictor, ServerLimits, create_app, serve  # noqa: E402
from bodyparts.utils.predictions import PredictionFormatter, load_inference_cfg  # noqa: E402

DEFAULTS = ServerLimits()


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--config-file", required=True, metavar="FILE", help="model config (yaml)")
    add(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    add("--port", type=int, default=8000, help="TCP port (default 8000)")
    add(
        "--token",
        default=None,
        help="require 'Authorization: Bearer TOKEN' on /predict and /render",
    )
    add(
        "--max-queue",
        type=int,
        default=DEFAULTS.max_queue,
        metavar="N",
        help=f"requests waiting for the model before 503 (default {DEFAULTS.max_queue})",
    )
    add(
        "--max-batch",
        type=int,
        default=DEFAULTS.max_batch,
        metavar="N",
        help=f"waiting images given to the model in one call (default {DEFAULTS.max_batch})",
    )
    add(
        "--max-pixels",
        type=int,
        default=DEFAULTS.max_pixels,
        metavar="P",
        help=f"largest width x height accepted, 413 above (default {DEFAULTS.max_pixels})",
    )
    add(
        "--max-bytes",
        type=int,
        default=DEFAULTS.max_bytes,
        metavar="B",
        help=f"largest request body, 413 above (default {DEFAULTS.max_bytes})",
    )
    add("--confidence-threshold", type=float, default=0.5, help="minimum person score to keep")
    add("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add("opts", nargs="*", default=[], help="config overrides KEY VALUE ..., at the end")
    return parser


def main(args) -> int:
    try:
        limits = ServerLimits(
            max_pixels=args.max_pixels,
            max_bytes=args.max_bytes,
            max_queue=args.max_queue,
            max_batch=args.max_batch,
        )
        cfg = load_inference_cfg(args.config_file, args.opts)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.token is not None and not args.token.strip():
        print("error: --token is empty", file=sys.stderr)
        return 2
    formatter = PredictionFormatter.from_config(cfg, args.confidence_threshold)
    app = create_app(
        BatchPredictor(cfg),
        formatter,
        limits=limits,
        token=args.token,
        model_name=os.path.basename(args.config_file),
    )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        auth = (
            "with a token" if args.token else "WITHOUT a token (anyone who can reach it may use it)"
        )
        print(f"WARNING: listening on {args.host}, {auth}", file=sys.stderr)
    print(f"bodyparts server: http://{args.host}:{args.port}/ (API docs: /docs)", file=sys.stderr)
    serve(app, args.host, args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
