#!/usr/bin/env python
"""Frames per second of the web page with the model in the browser (ONNX Runtime Web) against the
server's round trip (POST /render), same model, same image, same machine; optionally a screenshot.

    python scripts/measure_browser_model.py --export EXPORT_DIR --config-file CFG --image IMG
        [--frames 10] [--rounds 3] [--threshold 0.5] [--screenshot PNG] [KEY VALUE ...]

EXPORT_DIR is ``tools/export_model.py --format onnx`` of the model that CFG and the trailing
KEY VALUE pairs (e.g. ``MODEL.WEIGHTS model_final.pth``) describe. The real server runs in this
process (uvicorn in a thread); the page runs in headless Chromium (Debian's, driven by Playwright;
``scripts/setup_browser.sh`` installs both and onnxruntime-web). In the page, the image is run
``--frames`` times through each engine after one warm-up frame, one frame after the other as the
camera loop does (the page's own functions: ``runInBrowser``, ``sendImage``), in ``--rounds``
rounds where the engines take turns, and frames per second are frames / wall time, drawing
included. The in-browser result is also compared with the Python runtime
(runtime/bodyparts_runtime) on the same image, whose model time in ONNX Runtime's native CPU build
is printed beside.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import cv2
import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "runtime"))

import bodyparts  # noqa: F401,E402  (prepares Detectron2: import first)
from bodyparts.serving import BatchPredictor, ServerThread, create_app  # noqa: E402
from bodyparts.utils.predictions import PredictionFormatter, load_inference_cfg  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# as root, without network (tests/test_browser.py)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# In the page: `frames` frames through one engine, after one warm-up frame.
MEASURE = """async ([engine, frames]) => {
  const file = document.getElementById("file").files[0];
  document.getElementById("engine-choice").value = engine;
  showEngine();
  const pixels = await filePixels(file);
  const once = () => (engine === "browser" ? runInBrowser(pixels) : sendImage(file));
  await once();
  const model = [];
  const t0 = performance.now();
  for (let i = 0; i < frames; i++) {
    await once();
    model.push(parseFloat(document.getElementById("model-ms").textContent));
  }
  return { seconds: (performance.now() - t0) / 1000, model_ms: model,
    persons: document.getElementById("persons").textContent,
    engine: document.getElementById("engine").textContent };
}"""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--export", required=True, help="an ONNX export folder of the model")
    parser.add_argument("--config-file", required=True, help="the model's config (the server's)")
    parser.add_argument("--image", required=True, help="the image file to run")
    parser.add_argument("--frames", type=int, default=10, help="frames per round (default 10)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of --frames frames per engine, the engines taking turns (default 3)",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="person score threshold")
    parser.add_argument("--screenshot", default=None, help="save the page (in-browser result)")
    parser.add_argument("opts", nargs="*", default=[], help="config overrides KEY VALUE ...")
    return parser


def compare_with_runtime(page, export: str, image_path: str, threshold: float) -> dict:
    """The page's last in-browser result against bodyparts_runtime's on the same file."""
    from bodyparts_runtime import Runtime

    got = page.evaluate(
        "() => { const r = window.bodypartsLastResult; return {boxes: r.boxes, scores: r.scores,"
        " keypoints: r.keypoints, partMap: Array.from(r.partMap)}; }"
    )
    image = cv2.imread(image_path)
    runtime = Runtime(export)
    expected = runtime.persons(image, threshold)
    ours = np.asarray(got["partMap"], np.uint8).reshape(image.shape[:2])
    theirs = runtime.part_map(expected)
    either = (ours > 0) | (theirs > 0)
    stats = {"persons": [len(got["scores"]), len(expected["scores"])]}
    if len(got["scores"]) == len(expected["scores"]) and got["scores"]:
        stats["box_px"] = float(np.abs(np.asarray(got["boxes"]) - expected["boxes"]).max())
        kps = np.asarray(got["keypoints"])[..., :2] - expected["keypoints"][..., :2]
        stats["keypoint_px"] = float(np.abs(kps).max())
    stats["part_map_agreement"] = float((ours[either] == theirs[either]).mean())
    times = []
    for _ in range(10):  # the same model in ONNX Runtime's native CPU build, for comparison
        start = time.perf_counter()
        runtime.raw(image)
        times.append(1000 * (time.perf_counter() - start))
    stats["native_onnxruntime_model_ms_median"] = float(np.median(times))
    return stats


def main(args) -> int:
    from playwright.sync_api import sync_playwright

    cfg = load_inference_cfg(args.config_file, args.opts)
    formatter = PredictionFormatter.from_config(cfg, args.threshold)
    app = create_app(
        BatchPredictor(cfg),
        formatter,
        model_name=os.path.basename(args.config_file),
        browser_model=args.export,
    )
    results = {}
    with ServerThread(app) as server, sync_playwright() as playwright:
        with tempfile.TemporaryDirectory() as profile:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1180, "height": 560},
            )
            page = context.new_page()
            errors = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(server.url + "/")
            page.wait_for_function(
                "document.getElementById('engine').textContent.startsWith('in browser')",
                timeout=180_000,
            )
            page.set_input_files("#file", args.image)
            page.wait_for_function("Number(document.getElementById('result').dataset.frames) >= 1")
            runs = {"server": [], "browser": []}
            for _ in range(args.rounds):  # taking turns: a change in the machine's load hits both
                for engine, done in runs.items():
                    done.append(page.evaluate(MEASURE, [engine, args.frames]))
            for engine, done in runs.items():
                seconds = sum(r["seconds"] for r in done)
                frames = args.frames * len(done)
                results[engine] = {
                    "engine": done[-1]["engine"],
                    "persons": done[-1]["persons"],
                    "fps": frames / seconds,
                    "ms_per_frame": 1000 * seconds / frames,
                    "model_ms_median": float(np.median([m for r in done for m in r["model_ms"]])),
                    "fps_per_round": [args.frames / r["seconds"] for r in done],
                }
                print(engine, json.dumps(results[engine]), flush=True)
            results["parity"] = compare_with_runtime(page, args.export, args.image, args.threshold)
            print("in browser vs bodyparts_runtime:", json.dumps(results["parity"]))
            if args.screenshot:
                page.screenshot(path=args.screenshot, full_page=True)
                print("screenshot:", args.screenshot)
            print("console errors:", errors)
            context.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(get_parser().parse_args()))
