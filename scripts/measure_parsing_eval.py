#!/usr/bin/env python
"""Milliseconds per image of the parsing evaluator (``BodyPartParsingEvaluator.process``) on a
CIHP-size image, for 10-100 predictions per image.

    python scripts/measure_parsing_eval.py [--predictions 10 50 100] [--repeats 7]
        [--height 512] [--width 680] [--persons 6] [--resolution 128] [--json FILE]

The inputs are generated (seeded, so two checkouts measured one after the other see the same
images): ``--persons`` ground-truth persons with CIHP's 20 labels (parts as compressed RLE, as the
CIHP loader gives them), and per prediction a box near a person or elsewhere, a score, and
(20, M, M) part probabilities as the R-50 CIHP head returns them (``PartPredictions``). One torch
thread; the median over ``--repeats`` runs of ``process`` on the same image, after one warm-up run.
Run it with ``PYTHONPATH`` set to another checkout to time that code on the same inputs.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, REPO)

from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from detectron2.structures import Boxes, BoxMode, Instances  # noqa: E402

import bodyparts  # noqa: E402,F401  (prepares Detectron2: import first)
from bodyparts.data.contract import encode_mask  # noqa: E402
from bodyparts.evaluation import BodyPartParsingEvaluator  # noqa: E402
from bodyparts.modeling.part_outputs import PartPredictions  # noqa: E402

TAXONOMY = "cihp20"
NUM_CLASSES = 20


def person_map(rng: np.random.Generator, height: int, width: int, box) -> np.ndarray:
    """uint8 (H, W) part labels of one person: an ellipse in its box cut into six horizontal bands
    (head, torso, arms, legs), each with a left and a right label."""
    x0, y0, x1, y1 = box
    ys, xs = np.mgrid[0:height, 0:width]
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    inside = ((ys - cy) / ((y1 - y0) / 2)) ** 2 + ((xs - cx) / ((x1 - x0) / 2)) ** 2 <= 1
    bands = np.clip(((ys - y0) / max(y1 - y0, 1) * 6).astype(int), 0, 5)
    left = xs < cx
    labels = np.array([[2, 13], [5, 10], [14, 15], [9, 12], [16, 17], [18, 19]])
    out = labels[bands, left.astype(int)].astype(np.uint8)
    out[~inside] = 0
    return out


def roi_probs(rng: np.random.Generator, labels: np.ndarray, box, m: int) -> torch.Tensor:
    """float32 (C, M, M) part probabilities as a trained head gives them: the person's labels
    (``labels`` in the image, ``box`` around it) resampled to M x M, as smooth logits with noise;
    a prediction in another box gets a person's shape there."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    crop = labels[max(y0, 0) : max(y1, y0 + 1), max(x0, 0) : max(x1, x0 + 1)]
    rows = np.linspace(0, crop.shape[0] - 1, m).round().astype(int)
    cols = np.linspace(0, crop.shape[1] - 1, m).round().astype(int)
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[crop[rows][:, cols]].transpose(2, 0, 1)
    logits = torch.from_numpy(4 * onehot)[None]
    logits = torch.nn.functional.avg_pool2d(logits, 9, stride=1, padding=4)  # soft edges
    noise = torch.from_numpy(rng.normal(0, 1, (1, NUM_CLASSES, 8, 8)).astype(np.float32))
    logits = logits + torch.nn.functional.interpolate(noise, size=(m, m), mode="bilinear")
    return logits[0].softmax(dim=0)


def make_image(seed: int, height: int, width: int, num_persons: int, num_preds: int, m: int):
    """One record (the ground truth) and the model output for it."""
    rng = np.random.default_rng(seed)
    annotations, boxes, maps = [], [], []
    for _ in range(num_persons):
        w, h = rng.uniform(0.15, 0.35) * width, rng.uniform(0.4, 0.9) * height
        x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = (x0, y0, x0 + w, y0 + h)
        labels = person_map(rng, height, width, box)
        for earlier in maps:  # a later person stands in front (one instance map, as CIHP's)
            earlier[labels > 0] = 0
        maps.append(labels)
        boxes.append(box)
    for labels, box in zip(maps, boxes):
        parts = {int(c): encode_mask(labels == c) for c in np.unique(labels) if c}
        annotations.append(
            {
                "bbox": list(box),
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 0,
                "iscrowd": 0,
                "segmentation": encode_mask(labels > 0),
                "parts": parts,
            }
        )
    pred_boxes = []
    for k in range(num_preds):
        if k < 3 * num_persons:  # near a person
            x0, y0, x1, y1 = boxes[k % num_persons]
            jitter = rng.normal(0, 0.05, 4) * [x1 - x0, y1 - y0, x1 - x0, y1 - y0]
            box = np.array([x0, y0, x1, y1]) + jitter
        else:
            w, h = rng.uniform(0.05, 0.4) * width, rng.uniform(0.1, 0.9) * height
            x0, y0 = rng.uniform(0, width - w), rng.uniform(0, height - h)
            box = np.array([x0, y0, x0 + w, y0 + h])
        box[0::2] = np.clip(box[0::2], 0, width)
        box[1::2] = np.clip(box[1::2], 0, height)
        pred_boxes.append(box)
    probs = torch.stack(
        [roi_probs(rng, maps[k % num_persons], boxes[k % num_persons], m) for k in range(num_preds)]
    )
    instances = Instances((height, width))
    instances.pred_boxes = Boxes(torch.tensor(np.array(pred_boxes), dtype=torch.float32))
    instances.scores = torch.from_numpy(rng.uniform(0.05, 1.0, num_preds).astype("f4"))
    instances.pred_classes = torch.zeros(num_preds, dtype=torch.int64)
    instances.pred_part_masks = PartPredictions(probs, torch.arange(num_preds), num_preds)
    record = {
        "file_name": f"image{seed}.jpg",
        "image_id": seed,
        "height": height,
        "width": width,
        "part_taxonomy": TAXONOMY,
        "annotations": annotations,
    }
    return record, {"instances": instances}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--predictions", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--height", type=int, default=512)
    parser.add_argument("--width", type=int, default=680)
    parser.add_argument("--persons", type=int, default=6)
    parser.add_argument("--resolution", type=int, default=128, help="M of the part outputs")
    parser.add_argument("--json", help="also write the results there")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    images = {
        n: make_image(n, args.height, args.width, args.persons, n, args.resolution)
        for n in args.predictions
    }
    name = "measure_parsing_eval"
    DatasetCatalog.register(name, lambda: [record for record, _ in images.values()])
    MetadataCatalog.get(name).set(thing_classes=["person"], part_taxonomy=TAXONOMY)
    evaluator = BodyPartParsingEvaluator(name, TAXONOMY, distributed=False)
    results = {}
    for n, (record, output) in images.items():
        times = []
        for run in range(args.repeats + 1):
            evaluator.reset()
            start = time.perf_counter()
            evaluator.process([{"image_id": record["image_id"]}], [output])
            if run:  # the first is a warm-up
                times.append(1000 * (time.perf_counter() - start))
        results[n] = statistics.median(times)
        print(f"{n:4d} predictions: {results[n]:7.1f} ms / image (median of {args.repeats})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({str(k): v for k, v in results.items()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
