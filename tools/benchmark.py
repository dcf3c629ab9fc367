#!/usr/bin/env python
"""Speed and memory of a config, or of two configs side by side on the same images.

    python tools/benchmark.py --config-file A.yaml [--vs B.yaml] [--iters N] [--warmup W]
                              [--images M] [--json out.json] [--phases P,...]
                              [--export-formats eager,torchscript,onnx] [--threads 1,2]
                              [--input-sizes 192,320] [--detections 1,10,100] [KEY VALUE ...]

e.g. A = configs/quick_schedules/person_rcnn_R18_FPN_synthetic_cpu.yaml (the bodyparts model) and
B = configs/quick_schedules/mask_rcnn_R18_FPN_synthetic_cpu.yaml (plain Detectron2 Mask R-CNN).

For each config, in one process: the training step (forward + backward + optimizer step on
pre-loaded batches of SOLVER.IMS_PER_BATCH; data loading excluded), inference per image (batch 1,
no_grad), the peak memory of both, and the throughput of the config's own training data loader.
Both configs see the same records: config A's DATASETS.TRAIN and the first --images of its first
DATASETS.TEST, mapped by each config's own mapper with a fixed seed. Trailing opts apply to both.
A config of Detectron2's DensePose project (``MODEL.DENSEPOSE_ON`` / ``MODEL.ROI_DENSEPOSE_HEAD`` in
it or a ``_BASE_``) can be either one when the project is installed (``import densepose``): its
keys are added with its own ``add_densepose_config``; otherwise the tool says how to install it.

Peak memory is the growth above the level at the start of the phase, which builds the model: on
CUDA from torch.cuda.max_memory_allocated; on CPU the bytes in use of the C heap (glibc's mallinfo2:
tensors and numpy arrays, not memory freed and kept by the allocator), sampled every 2 ms, and
beside it the process RSS (``peak_rss_mb``: freed heap goes back to the OS before each phase, but
heap left fragmented by an earlier phase is reused without growing the RSS, so a later phase can
read low). Without glibc, the RSS is the only CPU figure.
Models load MODEL.WEIGHTS when set; an untrained model keeps up to TEST.DETECTIONS_PER_IMAGE boxes.

Runtimes (phase ``runtimes``, on when --export-formats is given): CPU inference images/s of the
model in each runtime, at each thread count (--threads: ``torch.set_num_threads`` and ONNX Runtime's
intra-op threads) and each test size (--input-sizes: INPUT.MIN_SIZE_TEST, the shortest edge;
default the config's), batch 1, on the same --images test images. ``eager`` runs the model in
PyTorch as the exported file does (model input -> tensors: ``inference(..., do_postprocess=False)``,
nothing pasted into the original image); ``torchscript`` and ``onnx`` export the model once by
tracing (``bodyparts.export``, on the first image at the first size; the traced graph holds for
every size) and run the file with ``torch.jit.load`` / ONNX Runtime; ``onnx_int8`` quantizes the
ONNX file to INT8 first (``bodyparts.export.quantize``: ONNX Runtime static quantization calibrated
on --calibration-images images of DATASETS.TRAIN). A model that cannot be exported gets the error
instead of figures.

Detections (phase ``detections``, on when --detections N,... is given): inference of an instance
model on the first test image with N fixed person boxes given to the ROI heads (Detectron2's
``inference(..., detected_instances=...)``: backbone, then every ROI head on those boxes, then the
post-processing that pastes masks into the image), so that an untrained model can be measured with
N persons. Per N: seconds per image, peak memory above the level after the model was built, and
the memory per detection between the smallest and the largest N.
"""

import argparse
import ctypes
import gc
import json
import os
import statistics
import sys
import threading
import time
from types import SimpleNamespace
from typing import Callable, Dict, List, Optional, Tuple

import detectron2
import torch
from detectron2.config import CfgNode
from detectron2.data import (
    DatasetMapper,
    build_detection_test_loader,
    get_detection_dataset_dicts,
)
from detectron2.structures import Boxes, Instances
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage
from tabulate import tabulate
from tqdm import tqdm

import bodyparts  # noqa: F401  (prepares Detectron2, registers datasets: import first)
from bodyparts.checkpoint import load_weights
from bodyparts.data.datasets.synthetic import register_synthetic_from_cfg
from bodyparts.engine import Trainer, build_mapper, setup_cfg
from bodyparts.utils.cli import make_output_dir, run_tool

SEED = 0  # same augmentations and initial weights for every config
PHASES = ("train", "inference", "data_loader")  # the default phases
ALL_PHASES = PHASES + ("runtimes", "detections")
RUNTIMES = ("eager", "torchscript", "onnx", "onnx_int8")
ROWS = [  # (phase, figure, table label)
    ("train", "s_per_iter_mean", "train s/iter (mean)"),
    ("train", "s_per_iter_median", "train s/iter (median)"),
    ("train", "images_per_s", "train images/s"),
    ("train", "peak_memory_mb", "train peak memory (MB)"),
    ("train", "peak_rss_mb", "train peak RSS (MB)"),
    ("inference", "s_per_image_mean", "inference s/image (mean)"),
    ("inference", "s_per_image_median", "inference s/image (median)"),
    ("inference", "images_per_s", "inference images/s"),
    ("inference", "peak_memory_mb", "inference peak memory (MB)"),
    ("inference", "peak_rss_mb", "inference peak RSS (MB)"),
    ("data_loader", "images_per_s", "data loader images/s"),
]


def _sync(device: str) -> None:
    """Wait for queued CUDA work, so that host timers measure it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _heap_in_use_reader():
    """A function giving the C heap's bytes in use (glibc >= 2.33: allocated chunks + mmapped
    blocks), or None without glibc's mallinfo2."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return None
    mallinfo2.restype = _MallInfo2

    def read() -> int:
        info = mallinfo2()
        return info.uordblks + info.hblkhd

    return read


_HEAP_IN_USE = _heap_in_use_reader()


class PeakMemory:
    """Context manager; ``mb`` = peak memory above the level at entry, in MB, ``rss_mb`` the same
    for the process RSS (CPU; equal to ``mb`` on CUDA and without glibc). See the docstring."""

    def __init__(self, device: str, interval_s: float = 0.002):
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.interval_s = interval_s
        self.mb = self.rss_mb = 0.0

    def _read(self) -> Tuple[int, int]:
        rss = _rss_bytes()
        return (_HEAP_IN_USE() if _HEAP_IN_USE else rss), rss

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            heap, rss = self._read()
            self._peak, self._peak_rss = max(self._peak, heap), max(self._peak_rss, rss)

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        try:  # hand freed heap back to the OS: the phase starts from what the process really holds
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass
        (self._start, self._start_rss) = (self._peak, self._peak_rss) = self._read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            self.mb = self.rss_mb = (peak - self._start) / 2**20
            return
        self._stop.set()
        self._thread.join()
        heap, rss = self._read()
        self.mb = (max(self._peak, heap) - self._start) / 2**20
        self.rss_mb = (max(self._peak_rss, rss) - self._start_rss) / 2**20


def _build_model(cfg: CfgNode) -> torch.nn.Module:
    """The Trainer's model with seeded initial weights (or MODEL.WEIGHTS when set)."""
    seed_all_rng(SEED)
    model = Trainer.build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        load_weights(model, cfg.MODEL.WEIGHTS)
    return model


def map_records(cfg: CfgNode, records: List[Dict], source: str, is_train: bool, count: int):
    """``count`` model inputs from ``records`` (cycled) through Detectron2's test loader, mapped
    by the mapper that the Trainer picks for dataset ``source`` and the config's model kind."""
    mapper = build_mapper(cfg, [source], is_train) or DatasetMapper(cfg, is_train)
    seed_all_rng(SEED)
    cycled = [records[i % len(records)] for i in range(count)]
    return [batch[0] for batch in build_detection_test_loader(cycled, mapper=mapper)]


def _timed(steps: int, warmup: int, device: str, desc: str, step: Callable[[int], None]):
    """Run ``step(i)`` for i < steps with a progress bar; seconds of each step after the warm-up."""
    times = []
    for i in tqdm(range(steps), desc=desc):
        _sync(device)
        start = time.perf_counter()
        step(i)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def _figures(times: List[float], unit: str, images_per_step: int, memory: PeakMemory) -> Dict:
    mean = statistics.mean(times)
    return {
        f"s_per_{unit}_mean": mean,
        f"s_per_{unit}_median": statistics.median(times),
        "images_per_s": images_per_step / mean,
        "peak_memory_mb": memory.mb,
        "peak_rss_mb": memory.rss_mb,
    }


def bench_train(cfg: CfgNode, inputs: List[Dict], warmup: int, iters: int, desc: str) -> Dict:
    """Seconds per training iteration (forward + backward + optimizer step) and peak memory."""
    batch_size, device = cfg.SOLVER.IMS_PER_BATCH, cfg.MODEL.DEVICE
    with PeakMemory(device) as mem, EventStorage(0) as storage:
        model = _build_model(cfg).train()
        optimizer = Trainer.build_optimizer(cfg, model)

        def step(i: int) -> None:
            storage.iter = i
            losses = sum(model(inputs[i * batch_size : (i + 1) * batch_size]).values())
            optimizer.zero_grad()
            losses.backward()
            optimizer.step()

        times = _timed(warmup + iters, warmup, device, desc, step)
    return _figures(times, "iter", batch_size, mem)


def bench_inference(cfg: CfgNode, inputs: List[Dict], warmup: int, desc: str) -> Dict:
    """Seconds per image at batch size 1 over ``inputs`` (after ``warmup`` images), peak memory."""
    device = cfg.MODEL.DEVICE
    with PeakMemory(device) as mem, torch.no_grad():
        model = _build_model(cfg).eval()
        order = [inputs[i % len(inputs)] for i in range(warmup)] + inputs
        times = _timed(len(order), warmup, device, desc, lambda i: model([order[i]]))
    return _figures(times, "image", 1, mem)


def bench_data_loader(cfg: CfgNode, warmup: int, iters: int, desc: str) -> Dict:
    """Images/s of ``Trainer.build_train_loader(cfg)`` (its own datasets and workers) over ``iters``
    batches after ``warmup`` batches (worker start-up falls in the warm-up)."""
    loader = iter(Trainer.build_train_loader(cfg))
    num_images, start = 0, time.perf_counter()
    for i in tqdm(range(warmup + iters), desc=desc, unit="batch"):
        if i == warmup:
            num_images, start = 0, time.perf_counter()
        num_images += len(next(loader))
    seconds = time.perf_counter() - start
    del loader  # stops the workers
    return {"images_per_s": num_images / seconds}


def benchmark(cfg: CfgNode, config_file: str, records, sources, args, label: str) -> Dict:
    """All phases of one config on ``records`` (train, test) of the datasets ``sources``."""
    register_synthetic_from_cfg(cfg)  # this config's own splits, for its data loader
    inputs = {}
    if "train" in args.phases:
        num_train = (args.warmup + args.iters) * cfg.SOLVER.IMS_PER_BATCH
        inputs["train"] = map_records(cfg, records[0], sources[0], True, num_train)
    inputs["test"] = test_inputs = map_records(cfg, records[1], sources[1], False, len(records[1]))
    size = {  # mean (height, width) of the model inputs, in pixels
        split: [round(statistics.mean(x["image"].shape[d] for x in mapped)) for d in (1, 2)]
        for split, mapped in inputs.items()
    }
    out = {"config_file": config_file, "device": cfg.MODEL.DEVICE, "image_size": size}
    if "data_loader" in args.phases:
        out["data_loader"] = bench_data_loader(
            cfg, max(args.warmup, 1), args.iters, f"{label} loader"
        )
    if "train" in args.phases:
        out["train"] = bench_train(cfg, inputs["train"], args.warmup, args.iters, f"{label} train")
    if "inference" in args.phases:
        out["inference"] = bench_inference(cfg, test_inputs, args.warmup, f"{label} inference")
    if "runtimes" in args.phases:
        out["runtimes"] = bench_runtimes(cfg, records[1], sources[1], args, label)
    if "detections" in args.phases:
        out["detections"] = bench_detections(
            cfg, test_inputs, args.detections, args.warmup, f"{label} detections"
        )
    return out


def fixed_boxes(num: int, height: int, width: int) -> torch.Tensor:
    """float (num, 4) XYXY person-like boxes (a third of the image high, a sixth wide) on a
    regular grid over an input of ``height`` x ``width`` pixels, overlapping as crowds do."""
    cols = max(1, int(round((num * width / max(height, 1)) ** 0.5)))
    rows = -(-num // cols)
    box_h, box_w = height / 3.0, width / 6.0
    out = []
    for i in range(num):
        r, c = divmod(i, cols)
        y0 = (height - box_h) * (r / max(rows - 1, 1))
        x0 = (width - box_w) * (c / max(cols - 1, 1))
        out.append([x0, y0, x0 + box_w, y0 + box_h])
    return torch.tensor(out, dtype=torch.float32).reshape(num, 4)


def bench_detections(cfg: CfgNode, inputs: List[Dict], counts: List[int], warmup: int, desc: str):
    """Per N in ``counts``: s/image and peak memory of inference with N given boxes (docstring)."""
    device = cfg.MODEL.DEVICE
    model = _build_model(cfg).eval()
    if not hasattr(model, "roi_heads") or not hasattr(model, "inference"):
        return {"error": f"{type(model).__name__} has no ROI heads: no detections to fix"}
    image = inputs[0]
    height, width = image["image"].shape[-2:]
    out = {}
    for num in counts:
        given = Instances((height, width))
        given.pred_boxes = Boxes(fixed_boxes(num, height, width).to(device))
        given.pred_classes = torch.zeros(num, dtype=torch.long, device=device)
        given.scores = torch.ones(num, device=device)

        def step(i: int, given=given):
            return model.inference([image], detected_instances=[given[:]])

        with torch.no_grad():
            for _ in range(warmup):
                step(0)
            with PeakMemory(device) as mem:
                times = _timed(max(warmup, 1) + 2, max(warmup, 1), device, f"{desc} N={num}", step)
            result = step(0)[0]["instances"]
        out[str(num)] = {
            "s_per_image_mean": statistics.mean(times),
            "peak_memory_mb": mem.mb,
            "peak_rss_mb": mem.rss_mb,
            "detections": len(result),
            "part_maps": int(result.has("pred_part_masks")) * len(result),
        }
    if len(counts) > 1:
        low, high = str(min(counts)), str(max(counts))
        out["mb_per_detection"] = (out[high]["peak_memory_mb"] - out[low]["peak_memory_mb"]) / (
            max(counts) - min(counts)
        )
    return out


def detections_report(results: Dict, counts: List[int]) -> str:
    """Time and peak memory vs N, one column pair per config, and B/A."""
    runs = list(results.items())
    headers = ["detections"]
    for k, r in runs:
        headers += [f"{k} s/image", f"{k} peak MB"]
    if len(runs) == 2:
        headers += ["B/A time", "B/A memory"]
    rows = []
    for num in counts:
        row = [str(num)]
        cells = [r["detections"].get(str(num)) for _, r in runs]
        for cell in cells:
            row += (
                ["-", "-"]
                if cell is None
                else [f"{cell['s_per_image_mean']:.3f}", f"{cell['peak_memory_mb']:.0f}"]
            )
        if len(runs) == 2 and None not in cells:
            a, b = cells
            row += [
                f"{b['s_per_image_mean'] / a['s_per_image_mean']:.3f}",
                f"{b['peak_memory_mb'] / max(a['peak_memory_mb'], 1e-9):.3f}",
            ]
        rows.append(row)
    per = ["MB per detection"]
    for _, r in runs:
        value = r["detections"].get("mb_per_detection")
        per += ["", "-" if value is None else f"{value:.2f}"]
    rows.append(per)
    errors = [f"{k}: {r['detections']['error']}" for k, r in runs if "error" in r["detections"]]
    return tabulate(rows, headers, disable_numparse=True) + "".join(f"\n{e}" for e in errors)


def _at_test_size(cfg: CfgNode, size: int) -> CfgNode:
    """``cfg`` with INPUT.MIN_SIZE_TEST = ``size`` (MAX_SIZE_TEST raised to it if lower)."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.INPUT.MIN_SIZE_TEST = size
    cfg.INPUT.MAX_SIZE_TEST = max(cfg.INPUT.MAX_SIZE_TEST, size)
    cfg.freeze()
    return cfg


def _eager_runner(model: torch.nn.Module) -> Callable[[torch.Tensor], object]:
    """The PyTorch model doing what its exported file does: one image tensor -> outputs."""
    from detectron2.modeling import GeneralizedRCNN

    if isinstance(model, GeneralizedRCNN):
        return lambda image: model.inference([{"image": image}], do_postprocess=False)
    return lambda image: model([{"image": image}])


def bench_runtimes(cfg: CfgNode, records: List[Dict], source: str, args, label: str) -> List[Dict]:
    """Inference images/s per (runtime, threads, input size) on ``records`` (see the docstring)."""
    import tempfile

    from bodyparts.export import ExportError, export_model, load_exported
    from bodyparts.export.quantize import quantize_int8

    model = _build_model(cfg).eval()
    device = cfg.MODEL.DEVICE
    sizes = args.input_sizes or [cfg.INPUT.MIN_SIZE_TEST]
    images = {
        size: [
            x["image"].float()
            for x in map_records(_at_test_size(cfg, size), records, source, False, len(records))
        ]
        for size in sizes
    }
    threads = args.threads or [torch.get_num_threads()]
    results, exported, errors = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="bodyparts_benchmark_") as tmp, torch.no_grad():
        for fmt in args.export_formats:
            if fmt == "eager":
                continue
            folder = os.path.join(tmp, f"{label}_{fmt}")
            try:
                file_format = "onnx" if fmt == "onnx_int8" else fmt
                export_model(
                    model, images[sizes[0]][0], folder, format=file_format, method="tracing"
                )
                if fmt == "onnx_int8":  # calibrated on DATASETS.TRAIN (bodyparts.export.quantize)
                    quantize_int8(folder, cfg, num_images=args.calibration_images)
                exported[fmt] = folder
            except ExportError as e:
                errors[fmt] = str(e)
        original_threads = torch.get_num_threads()
        try:
            for num_threads in threads:
                torch.set_num_threads(num_threads)
                for fmt in args.export_formats:
                    if fmt in errors:
                        results.append(
                            {"runtime": fmt, "threads": num_threads, "error": errors[fmt]}
                        )
                        continue
                    run = (
                        _eager_runner(model)
                        if fmt == "eager"
                        else load_exported(exported[fmt], num_threads=num_threads)
                    )
                    for size in sizes:
                        inputs = images[size]
                        order = [inputs[i % len(inputs)] for i in range(args.warmup)] + inputs
                        desc = f"{label} {fmt} {num_threads} thr {size} px"
                        times = _timed(
                            len(order), args.warmup, device, desc, lambda i: run(order[i])
                        )
                        hw = [round(statistics.mean(x.shape[d] for x in inputs)) for d in (1, 2)]
                        results.append(
                            {
                                "runtime": fmt,
                                "threads": num_threads,
                                "input_size": size,
                                "image_size": hw,
                                "s_per_image_mean": statistics.mean(times),
                                "s_per_image_median": statistics.median(times),
                                "images_per_s": 1.0 / statistics.mean(times),
                            }
                        )
        finally:
            torch.set_num_threads(original_threads)
    return results


def environment(device: str) -> Dict:
    cuda = torch.device(device).type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({os.cpu_count()} cores)",
        "torch": torch.__version__,
        "detectron2": detectron2.__version__,
        "bodyparts": bodyparts.__version__,
        "threads": torch.get_num_threads(),
    }


def _runtime_key(entry: Dict) -> tuple:
    return entry["runtime"], entry["threads"], entry.get("input_size")


def runtime_ratios(a: List[Dict], b: List[Dict]) -> List[Dict]:
    """B/A of images/s for each (runtime, threads, input size) measured for both configs."""
    figures_b = {_runtime_key(e): e for e in b if "error" not in e}
    out = []
    for entry in a:
        other = figures_b.get(_runtime_key(entry))
        if "error" in entry or other is None:
            continue
        key = dict(zip(("runtime", "threads", "input_size"), _runtime_key(entry)))
        out.append({**key, "images_per_s": other["images_per_s"] / entry["images_per_s"]})
    return out


def runtimes_report(results: Dict, ratios: Optional[Dict]) -> str:
    """Table of the runtimes phase: one row per (runtime, threads, input size), images/s per
    config (and B/A); then the export errors, if any."""
    runs = {k: {_runtime_key(e): e for e in r["runtimes"]} for k, r in results.items()}
    keys = list(dict.fromkeys(k for entries in runs.values() for k in entries))
    headers = ["runtime", "threads", "input (HxW)"] + [f"{k} images/s" for k in runs]
    ratio_of = {}
    if ratios is not None and "runtimes" in ratios:
        headers.append("B/A (>1: B faster)")
        ratio_of = {_runtime_key(e): e["images_per_s"] for e in ratios["runtimes"]}
    rows, errors = [], []
    for key in keys:
        if key[2] is None:  # an export error: no figures
            errors += [f"{k} {key[0]}: {runs[k][key]['error']}" for k in runs if key in runs[k]]
            continue
        size = next(runs[k][key]["image_size"] for k in runs if key in runs[k])
        row = [key[0], str(key[1]), "x".join(map(str, size))]
        row += [f"{runs[k][key]['images_per_s']:.3g}" if key in runs[k] else "-" for k in runs]
        if ratio_of:
            row.append(f"{ratio_of[key]:.3f}" if key in ratio_of else "-")
        rows.append(row)
    text = tabulate(rows, headers, disable_numparse=True)
    return text + "".join(f"\nnot exported: {e}" for e in dict.fromkeys(errors))


def report(results: Dict, ratios: Optional[Dict], env: Dict) -> str:
    """The environment line and the table: one column per config, and B/A when there are two;
    the runtimes table below it when that phase ran."""
    headers = [""] + [f"{k}: {os.path.basename(r['config_file'])}" for k, r in results.items()]
    runs = list(results.values())
    sizes = [" / ".join("x".join(map(str, hw)) for hw in r["image_size"].values()) for r in runs]
    rows = [[f"image size {' / '.join(runs[0]['image_size'])} (HxW)", *sizes]]
    shown = [(phase, key, label) for phase, key, label in ROWS if phase in runs[0]]
    rows += [[label] + [f"{r[phase][key]:.4g}" for r in runs] for phase, key, label in shown]
    if ratios is not None:
        headers.append("B/A (>1: B slower / bigger; for images/s: B faster)")
        rows[0].append("")
        for row, (phase, key, _) in zip(rows[1:], shown):
            row.append(f"{ratios[phase][key]:.3f}")
    env_line = ", ".join(f"{k}: {v}" for k, v in env.items())
    text = env_line + "\n" + tabulate(rows, headers, disable_numparse=True)
    if "detections" in runs[0]:
        text += "\n\nInference with N given person boxes (phase detections)\n"
        text += detections_report(
            results, sorted(int(k) for k in runs[0]["detections"] if k.isdigit())
        )
    if "runtimes" in runs[0]:
        text += (
            "\n\nCPU inference by runtime (batch 1, model input -> outputs, no post-processing)\n"
        )
        text += runtimes_report(results, ratios)
    return text


DENSEPOSE_INSTALL = (
    "pip install 'git+https://github.com/facebookresearch/detectron2@main"
    "#subdirectory=projects/DensePose'"
)


def project_configs(config_file: str) -> List[Callable[[CfgNode], None]]:
    """The config functions of the Detectron2 projects a config file needs: DensePose's
    ``add_densepose_config`` for a file (or a ``_BASE_`` of it) with ``MODEL.DENSEPOSE_ON`` or
    ``MODEL.ROI_DENSEPOSE_HEAD``. The project is imported only then, if it is installed.

    Raises:
        ImportError: naming the file, when DensePose is needed and not importable.
    """
    model = CfgNode.load_yaml_with_base(config_file).get("MODEL")  # _BASE_ files merged in
    needs_densepose = isinstance(model, dict) and bool(
        {"DENSEPOSE_ON", "ROI_DENSEPOSE_HEAD"} & set(model)
    )
    if not needs_densepose:
        return []
    try:
        from densepose import add_densepose_config
    except ImportError as e:
        raise ImportError(
            f"{config_file} is a DensePose config, and Detectron2's DensePose project is not "
            f"importable ({e}); install it: {DENSEPOSE_INSTALL}"
        ) from None
    return [add_densepose_config]


def load_cfgs(args: argparse.Namespace) -> Dict[str, CfgNode]:
    """Configs A (and B) with the trailing opts: ``setup_cfg`` without ``default_setup`` (no logs,
    no files in OUTPUT_DIR), with the keys of the Detectron2 projects they need
    (:func:`project_configs`). Exits with the message of a bad key or a missing project before
    anything is measured."""
    files = {"A": args.config_file, "B": args.vs} if args.vs else {"A": args.config_file}
    try:
        cfgs = {
            k: setup_cfg(
                SimpleNamespace(config_file=f, opts=args.opts),
                for_launch_only=True,
                add_configs=project_configs(f),
            )
            for k, f in files.items()
        }
    except (KeyError, ValueError, AssertionError, ImportError, OSError) as e:
        sys.exit(f"benchmark.py: error: {e.args[0] if e.args else e}")
    for k, cfg in cfgs.items():
        if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
            sys.exit(
                f"benchmark.py: error: {files[k]}: MODEL.DEVICE {cfg.MODEL.DEVICE}: no GPU here; "
                "pass MODEL.DEVICE cpu"
            )
    return cfgs


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config-file", required=True, metavar="A.yaml", help="config to measure")
    p.add_argument("--vs", metavar="B.yaml", help="second config, measured on the same images")
    p.add_argument("--iters", type=int, default=20, help="timed training iterations (and batches)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations (and images) first")
    p.add_argument("--images", type=int, default=20, help="number of images timed in inference")
    p.add_argument("--json", metavar="OUT.json", help="write all figures to this file")
    p.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated phases among {','.join(ALL_PHASES)} (default: {','.join(PHASES)}, "
        "plus runtimes with --export-formats, detections with --detections)",
    )
    p.add_argument(
        "--export-formats",
        default="",
        metavar="R,...",
        help=f"runtimes to compare in inference, among {','.join(RUNTIMES)} (phase runtimes)",
    )
    p.add_argument(
        "--threads", default="", metavar="N,...", help="thread counts of the runtimes phase"
    )
    p.add_argument(
        "--calibration-images", type=int, default=32, help="onnx_int8: calibration images"
    )
    p.add_argument(
        "--input-sizes",
        default="",
        metavar="S,...",
        help="test sizes (INPUT.MIN_SIZE_TEST) of the runtimes phase (default: the config's)",
    )
    p.add_argument(
        "--detections",
        default="",
        metavar="N,...",
        help="also measure inference with N fixed person boxes through the ROI heads (phase "
        "detections): time and peak memory vs N",
    )
    p.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides, for both configs")
    args = p.parse_args(argv)
    for f in filter(None, (args.config_file, args.vs)):
        if not os.path.isfile(f):
            p.error(f"config file {f!r} does not exist")
    if args.iters < 1 or args.images < 1 or args.warmup < 0:
        p.error("--iters and --images must be >= 1, --warmup >= 0")
    phases_given = "--phases" in (argv if argv is not None else sys.argv[1:])
    args.phases = _choices(p, "--phases", args.phases, ALL_PHASES)
    args.export_formats = _choices(p, "--export-formats", args.export_formats, RUNTIMES)
    args.threads = _positive_ints(p, "--threads", args.threads)
    args.input_sizes = _positive_ints(p, "--input-sizes", args.input_sizes)
    args.detections = _positive_ints(p, "--detections", args.detections)
    if args.detections and "detections" not in args.phases and not phases_given:
        args.phases.append("detections")
    if "detections" in args.phases and not args.detections:
        p.error("the detections phase needs --detections (e.g. 1,10,100)")
    if args.export_formats and "runtimes" not in args.phases and not phases_given:
        args.phases.append("runtimes")
    if "runtimes" in args.phases and not args.export_formats:
        p.error("the runtimes phase needs --export-formats (e.g. eager,torchscript,onnx)")
    if not args.phases:
        p.error("--phases is empty")
    return args


def _choices(p: argparse.ArgumentParser, flag: str, text: str, allowed) -> List[str]:
    values = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in values if v not in allowed]
    if bad:
        p.error(f"{flag}: unknown {bad}; choose among {','.join(allowed)}")
    return list(dict.fromkeys(values))


def _positive_ints(p: argparse.ArgumentParser, flag: str, text: str) -> List[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        p.error(f"{flag}: expected comma-separated integers, got {text!r}")
    if any(v < 1 for v in values):
        p.error(f"{flag}: values must be >= 1, got {text!r}")
    return list(dict.fromkeys(values))


def main(args: argparse.Namespace) -> Dict:
    cfgs = load_cfgs(args)
    cfg_a, files = cfgs["A"], {"A": args.config_file, "B": args.vs}
    if not cfg_a.DATASETS.TRAIN or not cfg_a.DATASETS.TEST:
        sys.exit(f"benchmark.py: error: {args.config_file} needs DATASETS.TRAIN and DATASETS.TEST")
    if args.json and os.path.dirname(args.json):  # fail now, not after the measurements
        make_output_dir(os.path.dirname(args.json), "--json")
    torch.backends.cudnn.benchmark = cfg_a.CUDNN_BENCHMARK
    register_synthetic_from_cfg(cfg_a)
    sources = (cfg_a.DATASETS.TRAIN[0], cfg_a.DATASETS.TEST[0])
    filter_empty = cfg_a.DATALOADER.FILTER_EMPTY_ANNOTATIONS
    records = (  # loaded before B registers its own splits, so both configs get A's records
        get_detection_dataset_dicts(list(cfg_a.DATASETS.TRAIN), filter_empty=filter_empty),
        get_detection_dataset_dicts([sources[1]], filter_empty=False)[: args.images],
    )
    results = {k: benchmark(cfg, files[k], records, sources, args, k) for k, cfg in cfgs.items()}
    ratios = None
    if "B" in results:  # B / A of every figure
        a, b = results["A"], results["B"]
        ratios = {p: {k: b[p][k] / a[p][k] for k in a[p]} for p in PHASES if p in a}
        if "runtimes" in a:
            ratios["runtimes"] = runtime_ratios(a["runtimes"], b["runtimes"])
    env = environment(cfg_a.MODEL.DEVICE)
    print(report(results, ratios, env))
    out = {"environment": env, "settings": {k: v for k, v in vars(args).items() if k != "json"}}
    out.update(configs=results, ratios=ratios)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


def run(args: argparse.Namespace) -> int:
    main(args)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(run, parse_args(), prog="benchmark.py"))
