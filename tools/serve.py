#!/usr/bin/env python
"""Serve a bodyparts model over HTTP, with a web page for the webcam or a chosen file.

    python tools/serve.py --config-file CFG [--host 127.0.0.1] [--port 8000] [--token T]
                          [--allowed-hosts NAME,...] [--max-queue 8] [--max-batch 1]
                          [--max-pixels 12000000] [--max-bytes 20971520] [--body-timeout 30]
                          [--shutdown-timeout 10] [--confidence-threshold 0.5]
                          [--browser-model EXPORT_DIR] [KEY VALUE ...]

Trailing KEY VALUE pairs override the config, e.g. ``MODEL.WEIGHTS out/model_final.pth``
(``MODEL.WEIGHTS ""``: an untrained model, with a warning). Routes: ``POST /predict`` (JSON as
``tools/demo.py --json``), ``POST /render`` (PNG), ``GET /health``, ``GET /info``, ``GET /`` (the
page), ``/docs`` (OpenAPI). See README.md, section "Server". Exit code 2 on a usage error.

Answer headers: X-Queue-Ms (waiting for the model thread), X-Inference-Ms (the model alone),
X-Postprocess-Ms (JSON or drawing + PNG encoding, in a thread pool beside the model thread),
X-Person-Count. A request whose client disconnects before its turn is dropped before the model
(one log line; /health counts it in "dropped"). A body that does not arrive within --body-timeout
is answered 408 and its connection closed. On SIGTERM or Ctrl-C new requests get 503, queued ones
still run for --shutdown-timeout seconds and those not started by then get 503; the process exits
a few seconds after that bound at most. Requests whose Host header is not allowed get 400
(DNS-rebinding protection, --allowed-hosts).

--browser-model EXPORT_DIR (a ``tools/export_model.py --format onnx`` folder of the same model):
the page may run the model in the browser with ONNX Runtime Web (``scripts/setup_browser.sh``
installs it), the server being its fallback; see docs/deployment.md, "The model in the browser".
"""

import argparse
import logging
import os
import sys
import warnings

warnings.filterwarnings("ignore", r"`torch.jit.script` is deprecated", FutureWarning)
warnings.filterwarnings("ignore", r"torch.meshgrid", UserWarning)

import bodyparts  # noqa: F401,E402  (prepares Detectron2, registers datasets: import first)
from bodyparts.serving import (  # noqa: E402
    BatchPredictor,
    BrowserModel,
    BrowserModelError,
    ServerLimits,
    create_app,
    default_allowed_hosts,
    serve,
)
from bodyparts.serving.hosts import is_loopback  # noqa: E402
from bodyparts.utils.cli import add_weights_flag, run_tool  # noqa: E402
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
        "--allowed-hosts",
        default="",
        metavar="NAMES",
        help="comma-separated Host header names accepted besides the defaults (any port; '*' any "
        "host, '*.example.com' its subdomains); other hosts get 400. Defaults: bound to a "
        "loopback address, 127.0.0.1, localhost and ::1; bound to another address, that "
        "address; bound to 0.0.0.0 or ::, the loopback names (list the names clients use)",
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
    add(
        "--body-timeout",
        type=float,
        default=DEFAULTS.body_timeout,
        metavar="S",
        help="seconds a request body may take to arrive; 408 and the connection closed after "
        f"(default {DEFAULTS.body_timeout:g})",
    )
    add(
        "--shutdown-timeout",
        type=float,
        default=DEFAULTS.shutdown_timeout,
        metavar="S",
        help="on SIGTERM / Ctrl-C, seconds the queued requests may still run; those not started "
        f"by then get 503 (default {DEFAULTS.shutdown_timeout:g})",
    )
    add(
        "--postprocess-threads",
        type=int,
        default=DEFAULTS.postprocess_threads,
        metavar="N",
        help="threads that format the answers (JSON, drawing, PNG) beside the model thread "
        f"(default {DEFAULTS.postprocess_threads})",
    )
    add("--confidence-threshold", type=float, default=0.5, help="minimum person score to keep")
    add(
        "--browser-model",
        default=None,
        metavar="EXPORT_DIR",
        help="an ONNX export folder of the same model (tools/export_model.py --format onnx): the "
        "web page may run it in the browser (ONNX Runtime Web), the server being its fallback",
    )
    add("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    add("opts", nargs="*", default=[], help="config overrides KEY VALUE ..., at the end")
    add_weights_flag(parser)
    return parser


def _log_to_stderr(level: str) -> None:
    """The server's own lines (dropped requests, body timeouts, shutdown) beside uvicorn's."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)-9s %(message)s"))
    logger = logging.getLogger("bodyparts.serving")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


def main(args) -> int:
    try:
        limits = ServerLimits(
            max_pixels=args.max_pixels,
            max_bytes=args.max_bytes,
            max_queue=args.max_queue,
            max_batch=args.max_batch,
            body_timeout=args.body_timeout,
            shutdown_timeout=args.shutdown_timeout,
            postprocess_threads=args.postprocess_threads,
        )
        cfg = load_inference_cfg(args.config_file, args.opts)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.token is not None and not args.token.strip():
        print("error: --token is empty", file=sys.stderr)
        return 2
    if args.browser_model is not None:  # before the model loads: a usage error, said at once
        try:
            BrowserModel.load(args.browser_model)
        except BrowserModelError as e:
            print(f"error: --browser-model: {e}", file=sys.stderr)
            return 2
    allowed_hosts = default_allowed_hosts(args.host, args.allowed_hosts.split(","))
    formatter = PredictionFormatter.from_config(cfg, args.confidence_threshold)
    try:
        app = create_app(
            BatchPredictor(cfg, allow_partial_weights=args.allow_partial_weights),
            formatter,
            limits=limits,
            token=args.token,
            model_name=os.path.basename(args.config_file),
            allowed_hosts=allowed_hosts,
            browser_model=args.browser_model,
        )
    except BrowserModelError as e:  # e.g. ONNX Runtime Web not installed (scripts/setup_browser.sh)
        print(f"error: --browser-model: {e}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        auth = (
            "with a token" if args.token else "WITHOUT a token (anyone who can reach it may use it)"
        )
        print(f"WARNING: listening on {args.host}, {auth}", file=sys.stderr)
    _log_to_stderr(args.log_level)
    print(f"allowed Host names: {', '.join(allowed_hosts)} (--allowed-hosts)", file=sys.stderr)
    print(f"bodyparts server: http://{args.host}:{args.port}/ (API docs: /docs)", file=sys.stderr)
    serve(app, args.host, args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, get_parser().parse_args(), prog="serve.py"))
