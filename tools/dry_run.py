#!/usr/bin/env python
"""A few training iterations of a published-schedule config at its real input sizes, on generated
data, reporting time and peak memory per iteration: does one GPU's share of the schedule fit?

    python tools/dry_run.py --config-file configs/cihp/bodyparts_rcnn_R50_FPN_1x.yaml --iters 5
    python tools/dry_run.py --config-file configs/mhp_v2/bodyparts_rcnn_R50_FPN_1x.yaml \\
        --ims-per-batch 2 MODEL.DEVICE cuda

The model is the config's (backbone, heads, ROI sampling, INPUT.MIN_SIZE_TRAIN / MAX_SIZE_TRAIN,
augmentation) with random weights (MODEL.WEIGHTS "": no download) and learning rate 0, so that it
cannot diverge; each step is a full forward, backward and optimizer update. The data are
synthetic people (bodyparts' generator) at the dataset's typical image size and person count,
their part labels spread over the config's part taxonomy, so the part head gets targets of every
class. The batch is one device's share of the schedule: SOLVER.IMS_PER_BATCH / --schedule-devices
(8 GPUs by default), at least 1. Peak memory per iteration: the process's resident memory (sampled
every 5 ms) on CPU, ``torch.cuda.max_memory_allocated`` on CUDA. Writes ``dry_run.json`` to
--output.

Usage errors (missing config, unknown key, bad value) exit with code 2.
"""

import argparse
import json
import os
import resource
import sys
import threading
import time
import warnings

for _message in (
    "`torch.jit.script` is deprecated",
    "torch.meshgrid: in an upcoming release",
    "The given NumPy array is not writable",
    "Creating a tensor from a list of numpy.ndarrays",
):
    warnings.filterwarnings("ignore", message=_message)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.engine import HookBase  # noqa: E402

import bodyparts  # noqa: E402,F401  (prepares Detectron2, registers datasets)
from bodyparts.data.contract import encode_mask, part_label_map  # noqa: E402
from bodyparts.data.datasets.generic import bodyparts_metadata  # noqa: E402
from bodyparts.data.datasets.synthetic import register_synthetic_people  # noqa: E402
from bodyparts.engine import Trainer, setup_cfg  # noqa: E402
from bodyparts.taxonomy import get_part_taxonomy  # noqa: E402
from bodyparts.utils.cli import ToolError, make_output_dir, run_tool  # noqa: E402

# first DATASETS.TRAIN name prefix -> (generated image side, most persons per image): typical
# sizes of each dataset's training images (the resize to INPUT.MIN_SIZE_TRAIN follows)
DATASET_SIZES = {
    "cihp": (640, 7),
    "mhp_v2": (800, 7),
    "lip": (256, 1),
    "pascal": (500, 5),
}
DEFAULT_SIZE = (640, 5)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--config-file", required=True, metavar="FILE", help="the config to dry-run")
    add("--iters", type=int, default=5, help="training iterations (default 5)")
    add("--ims-per-batch", type=int, default=0, help="images per iteration (default: see above)")
    add("--schedule-devices", type=int, default=8, help="devices the schedule's batch is for")
    add("--image-size", type=int, default=0, help="generated image side (default: the dataset's)")
    add("--max-persons", type=int, default=0, help="most persons per image (default: dataset's)")
    add("--images", type=int, default=8, help="generated training images (default 8)")
    add("--output", default="output/dry_run", metavar="DIR", help="output folder")
    add("opts", nargs=argparse.REMAINDER, default=[], help="config overrides KEY VALUE ..., last")
    return parser


def relabelled_records(records, num_classes: int, taxonomy: str):
    """The synthetic records with their part labels k spread over the target taxonomy's part
    labels (1 + (k - 1) mod (C - 1); parts that meet are merged), ``part_taxonomy`` the target."""
    out = []
    for record in records:
        annotations = []
        for ann in record["annotations"]:
            ann = dict(ann)
            if ann.get("parts") is not None:
                labels = part_label_map(ann, record["height"], record["width"])
                mapped = np.where(
                    labels > 0, 1 + (labels.astype(np.int64) - 1) % (num_classes - 1), 0
                )
                ann["parts"] = {
                    int(c): encode_mask(mapped == c) for c in np.unique(mapped) if c > 0
                }
            ann.pop("keypoints", None)
            annotations.append(ann)
        out.append(dict(record, annotations=annotations, part_taxonomy=taxonomy))
    return out


class _PeakMemory(HookBase):
    """Peak memory and time of every iteration (CUDA: allocator peak; CPU: resident set size
    sampled by a thread)."""

    def __init__(self, cuda: bool):
        self.cuda = cuda
        self.rows = []
        self._peak = 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _sample(self):
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, self._rss())

    def before_train(self):
        if not self.cuda:
            threading.Thread(target=self._sample, daemon=True).start()

    def after_train(self):
        self._stop.set()

    def before_step(self):
        self._start = time.perf_counter()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self._peak = self._rss()

    def after_step(self):
        if self.cuda:
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = max(self._peak, self._rss())
        losses = {
            k: float(v.median(1))
            for k, v in self.trainer.storage.histories().items()
            if k.startswith("loss") or k == "total_loss"
        }
        self.rows.append(
            {
                "iter": self.trainer.iter,
                "seconds": time.perf_counter() - self._start,
                "peak_mb": peak / 2**20,
                "total_loss": losses.get("total_loss"),
            }
        )
        print(
            f"iter {self.trainer.iter}: {self.rows[-1]['seconds']:.1f} s, "
            f"peak {'CUDA allocated' if self.cuda else 'resident'} "
            f"{self.rows[-1]['peak_mb']:.0f} MB",
            flush=True,
        )


def main(args) -> int:
    for name in ("iters", "schedule_devices", "images"):
        if getattr(args, name) < 1:
            raise ToolError(f"--{name.replace('_', '-')} {getattr(args, name)}: give 1 or more")
    opts = ["MODEL.WEIGHTS", "", *args.opts]
    setup_args = argparse.Namespace(
        config_file=args.config_file, opts=opts, eval_only=False, resume=False, num_gpus=1
    )
    try:
        cfg = setup_cfg(setup_args, for_launch_only=True)
    except (KeyError, ValueError) as e:
        raise ToolError(e.args[0] if e.args else str(e)) from None
    train = cfg.DATASETS.TRAIN[0] if cfg.DATASETS.TRAIN else ""
    side, persons = next((v for k, v in DATASET_SIZES.items() if train.startswith(k)), DEFAULT_SIZE)
    side, persons = args.image_size or side, args.max_persons or persons
    batch = args.ims_per_batch or max(1, cfg.SOLVER.IMS_PER_BATCH // args.schedule_devices)
    taxonomy = get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY)
    make_output_dir(args.output)

    generated = register_synthetic_people(
        num_train=args.images, num_val=1, image_size=side, max_persons=persons, prefix="dry_run"
    )[0]
    name = f"dry_run_{taxonomy.name}_{side}"
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(
        name,
        lambda: relabelled_records(
            DatasetCatalog.get(generated), taxonomy.num_classes, taxonomy.name
        ),
    )
    MetadataCatalog.get(name).set(**bodyparts_metadata(taxonomy.name, None))
    cfg.defrost()
    cfg.DATASETS.TRAIN, cfg.DATASETS.TEST = (name,), ()
    # learning rate 0: the weights stay at their random initialisation (a from-scratch R-50 with
    # frozen BatchNorm diverges within a few steps); every step still runs forward, backward and
    # the optimizer update, so time and memory are a real step's
    cfg.SOLVER.BASE_LR = 0.0
    cfg.SOLVER.IMS_PER_BATCH = batch
    cfg.SOLVER.MAX_ITER = args.iters
    cfg.SOLVER.STEPS = ()
    cfg.SOLVER.CHECKPOINT_PERIOD = 10**9
    cfg.TEST.EVAL_PERIOD = 0
    cfg.DATALOADER.NUM_WORKERS = min(cfg.DATALOADER.NUM_WORKERS, os.cpu_count() or 1)
    cfg.MODEL.KEYPOINT_ON = False  # the generated people carry no keypoints of the config's set
    cfg.OUTPUT_DIR = args.output
    cfg.freeze()
    cuda = torch.device(cfg.MODEL.DEVICE).type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ToolError(f"MODEL.DEVICE {cfg.MODEL.DEVICE}: no CUDA device here")

    print(
        f"{args.config_file}: {args.iters} iterations of {batch} image(s) at "
        f"INPUT.MIN_SIZE_TRAIN {tuple(cfg.INPUT.MIN_SIZE_TRAIN)} / MAX {cfg.INPUT.MAX_SIZE_TRAIN}, "
        f"generated {side} x {side} images with up to {persons} persons, "
        f"{taxonomy.num_classes} part labels, {cfg.MODEL.DEVICE}",
        flush=True,
    )
    trainer = Trainer(cfg)
    hook = _PeakMemory(cuda)
    trainer.register_hooks([hook])
    trainer.train()
    peaks = [r["peak_mb"] for r in hook.rows]
    summary = {
        "config": args.config_file,
        "device": cfg.MODEL.DEVICE,
        "ims_per_batch": batch,
        "image_size": side,
        "max_persons": persons,
        "min_size_train": list(cfg.INPUT.MIN_SIZE_TRAIN),
        "max_size_train": cfg.INPUT.MAX_SIZE_TRAIN,
        "iterations": hook.rows,
        "peak_mb": max(peaks),
        "process_max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    with open(os.path.join(args.output, "dry_run.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(f"peak memory {max(peaks):.0f} MB over {len(peaks)} iterations; see {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main, get_parser().parse_args(), prog="dry_run.py"))
