"""tools/export_parsing_predictions.py and ParsingPredictionWriter: the files written, read back by
a reimplementation (here, in the test) of the reference evaluation code's readers and metrics,
give BodyPartParsingEvaluator's numbers.

Reference code reimplemented (facts of its reading and counting, not its code):

* Parsing R-CNN ``utils/data/evaluation/parsing_eval.py``: ``parsing_iou`` (one confusion matrix
  over ``parsing_predict/*.png`` against the image-level ground-truth PNGs of the same name,
  ground truth outside [0, n) ignored, nanmean IoU) and ``eval_parsing_ap`` (persons by descending
  score, skipped below the score threshold, best ground truth by whole-image mIoU with strict ``>``,
  first claim wins, no fallback; PCP; VOC all-point AP).
* MHP-v2 ``eval_mhp.py``: the per-person ``MASKS`` / ``DETS`` (x1, y1, x2, y2, score) entries.
* PGN ``evaluation/test_inst_part_ap.py``: per class, the instance-part PNG's ids listed on the
  prediction text lines of that class (line i = id i + 1: ``class_id score``) and the ground truth's
  ids of that class (``inst_id class_id human_id`` lines); a region is a TP when its largest IoU
  with a ground-truth region of the class is > t, ground truth never marked used; scores sorted with
  ``np.argsort(scores)[::-1]``; recall over the ground-truth regions of the class; VOC AP.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
from argparse import Namespace
from typing import Dict, List

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import dataset_name, parts_from_map, write_image, write_label_png  # noqa: F401
from _serving import SMALL_MODEL_OPTS
from conftest import REPO
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, BoxMode, Instances
from PIL import Image

from bodyparts.data.contract import encode_mask
from bodyparts.data.datasets.generic import bodyparts_metadata
from bodyparts.evaluation import (
    BodyPartParsingEvaluator,
    ParsingPredictionWriter,
    export_parsing_predictions,
    ground_truth_maps,
)
from bodyparts.taxonomy import mapping_lut

TOOL = os.path.join(REPO, "tools", "export_parsing_predictions.py")
PARTS_CONFIG = os.path.join(
    REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"
)
THRESHOLDS = [k / 10 for k in range(1, 10)]
C = 7  # lr6: background, head, torso, left_arm, right_arm, left_leg, right_leg
PASTE, AP = 0.3, 0.001  # Parsing R-CNN's CIHP protocol


# ------------------------------------------------------------------ reference reimplementation


def ref_voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    for i in range(mpre.size - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    steps = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))


def ref_class_ious(gt: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    valid = (gt >= 0) & (gt < n)
    hist = np.bincount(n * gt[valid].astype(int) + pred[valid], minlength=n * n).reshape(n, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))


def ref_parsing_iou(predict_dir: str, gt_dir: str, n: int) -> Dict[str, float]:
    hist = np.zeros((n, n))
    for name in sorted(os.listdir(predict_dir)):
        gt = cv2.imread(os.path.join(gt_dir, name), 0)
        pred = cv2.imread(os.path.join(predict_dir, name), 0)
        assert gt.shape == pred.shape
        valid = (gt >= 0) & (gt < n)
        hist += np.bincount(n * gt[valid].astype(int) + pred[valid], minlength=n * n).reshape(n, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        mean_acc = np.nanmean(np.diag(hist) / hist.sum(1))
    return {
        "mIoU": np.nanmean(iou),
        "pixel_acc": np.diag(hist).sum() / hist.sum(),
        "mean_acc": mean_acc,
    }


def ref_read_persons(person_dir: str, stem: str):
    """MHP-v2 ``results_all[img]``: MASKS and DETS from ``<img>_<k>.png`` and ``<img>.txt``."""
    with open(os.path.join(person_dir, stem + ".txt")) as f:
        dets = [
            tuple(float(v) for v in line.split()) for line in f.read().splitlines() if line.strip()
        ]
    masks = [
        np.array(Image.open(os.path.join(person_dir, f"{stem}_{k}.png")))
        for k in range(1, len(dets) + 1)
    ]
    return {"MASKS": masks, "DETS": dets}


def ref_eval_parsing_ap(
    results: Dict[str, dict], gt_persons: Dict[str, List[np.ndarray]], n: int, score_thresh: float
):
    confidence, image_ids, local = [], [], []
    for stem, res in results.items():
        for idx, rect in enumerate(res["DETS"]):
            confidence.append(rect[-1])
            image_ids.append(stem)
            local.append(idx)
    confidence = np.array(confidence)
    order = np.argsort(-confidence)
    npos = sum(len(v) for v in gt_persons.values())
    aps, pcps = [], []
    for t in THRESHOLDS:
        det = {stem: [False] * len(v) for stem, v in gt_persons.items()}
        tp, fp, pcp_list = np.zeros(order.size), np.zeros(order.size), []
        for d, i in enumerate(order):
            if confidence[i] < score_thresh:
                continue
            pred = results[image_ids[i]]["MASKS"][local[i]].astype(np.uint8)
            ovmax, jmax = -np.inf, -1
            for j, gt in enumerate(gt_persons[image_ids[i]]):
                ious = ref_class_ious(gt, pred, n)
                m = np.nanmean(ious)
                if m > ovmax:
                    ovmax, jmax, best_ious, gt_labels = m, j, ious, np.unique(gt)
            if ovmax > t and not det[image_ids[i]][jmax]:
                tp[d] = 1
                det[image_ids[i]][jmax] = True
                denom = len(gt_labels[(gt_labels > 0) & (gt_labels < n)])
                pcp_list.append(float(np.sum(best_ious[1:] > t)) / denom if denom else 0.0)
            else:
                fp[d] = 1
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        aps.append(ref_voc_ap(tp / npos, tp / np.maximum(tp + fp, np.finfo(np.float64).eps)))
        pcps.append(np.mean(pcp_list + [0.0] * (npos - len(pcp_list))))
    return aps, pcps


def ref_masks(id_map: np.ndarray, wanted: set) -> List[np.ndarray]:
    return [id_map == i for i in np.unique(id_map) if i != 0 and i in wanted]


def ref_class_apr(pred_dir: str, gt_dir: str, stems: List[str], class_id: int):
    tp = [[] for _ in THRESHOLDS]
    scores, gt_num = [], 0
    for stem in stems:
        gt_map = np.array(Image.open(os.path.join(gt_dir, stem + ".png")))
        with open(os.path.join(gt_dir, stem + ".txt")) as f:
            gt_lines = [
                [int(v) for v in line.split()] for line in f.read().splitlines() if line.strip()
            ]
        pred_map = np.array(Image.open(os.path.join(pred_dir, stem + ".png")))
        with open(os.path.join(pred_dir, stem + ".txt")) as f:
            items = [line.split() for line in f.read().splitlines() if line.strip()]
        pred_ids = [i + 1 for i, item in enumerate(items) if int(item[0]) == class_id]
        pred_scores = [float(item[1]) for item in items if int(item[0]) == class_id]
        gt_masks = ref_masks(gt_map, {line[0] for line in gt_lines if line[1] == class_id})
        pred_masks = ref_masks(pred_map, set(pred_ids))
        gt_num += len(gt_masks)
        if not pred_masks:
            continue
        scores += pred_scores
        for pred in pred_masks:
            best = 0.0
            for gt in gt_masks:
                inter = np.logical_and(gt, pred).sum()
                best = max(best, inter / (gt.sum() + pred.sum() - inter))
            for k, t in enumerate(THRESHOLDS):
                tp[k].append(1 if best > t else 0)
    order = np.argsort(scores)[::-1]
    aps = []
    for k in range(len(THRESHOLDS)):
        hits = np.array(tp[k], dtype=np.float64)[order]
        ctp, cfp = np.cumsum(hits), np.cumsum(1 - hits)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = ctp / float(gt_num)
        aps.append(ref_voc_ap(recall, ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)))
    return np.array(aps), gt_num


def ref_apr(pred_dir: str, gt_dir: str, num_classes: int):
    stems = [name[:-4] for name in sorted(os.listdir(pred_dir)) if name.endswith(".txt")]
    per_class = [ref_class_apr(pred_dir, gt_dir, stems, c) for c in range(1, num_classes)]
    plain = np.mean([ap for ap, _ in per_class], axis=0)  # the reference's mean over all classes
    with_gt = np.mean([ap for ap, n in per_class if n > 0], axis=0)
    return plain, with_gt


def reference_numbers(out: str, gt_root: str, n: int) -> Dict[str, float]:
    """Every metric from the exported files and the reference-format ground truth."""
    res = ref_parsing_iou(
        os.path.join(out, "parsing_predict"), os.path.join(gt_root, "Category_ids"), n
    )
    person_dir = os.path.join(out, "parsing_person")
    stems = [name[:-4] for name in sorted(os.listdir(person_dir)) if name.endswith(".txt")]
    results = {stem: ref_read_persons(person_dir, stem) for stem in stems}
    gt_persons = {}
    for stem in stems:
        with open(os.path.join(gt_root, "persons", stem + ".txt")) as f:
            names = f.read().split()
        gt_persons[stem] = [cv2.imread(os.path.join(gt_root, "persons", name), 0) for name in names]
    aps, pcps = ref_eval_parsing_ap(results, gt_persons, n, AP)
    plain, with_gt = ref_apr(
        os.path.join(out, "instance_part"), os.path.join(gt_root, "Instance_ids"), n
    )
    res.update(
        APp50=aps[4],
        APp_vol=np.mean(aps),
        PCP50=pcps[4],
        APr50=with_gt[4],
        APr_vol=np.mean(with_gt),
    )
    res["APr_all_classes"] = plain
    return {k: v if k == "APr_all_classes" else 100 * float(v) for k, v in res.items()}


# ---------------------------------------------------------------- ground truth in reference formats


def write_reference_ground_truth(records: List[dict], taxonomy: str, root: str) -> None:
    """The records' ground truth (model taxonomy) as the reference scripts read it:
    ``Category_ids/<img>.png`` (image-level, 255 ignored), ``persons/<img>_<NN>_<KK>.png`` with
    their list ``persons/<img>.txt``, and PGN's ``Instance_ids/<img>.png`` (id = class + 20 *
    (person - 1)) with ``<img>.txt`` lines ``inst_id class_id human_id``."""
    for folder in ("Category_ids", "persons", "Instance_ids"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    for rec in records:
        stem = os.path.splitext(os.path.basename(rec["file_name"]))[0]
        lut = mapping_lut(rec["part_taxonomy"], taxonomy)
        persons, semantic = ground_truth_maps(
            rec["annotations"], rec["height"], rec["width"], lut, rec.get("sem_seg_file_name")
        )
        write_label_png(os.path.join(root, "Category_ids", stem + ".png"), semantic)
        names = [f"{stem}_{len(persons):02d}_{k:02d}.png" for k in range(1, len(persons) + 1)]
        for name, person in zip(names, persons):
            write_label_png(os.path.join(root, "persons", name), person)
        with open(os.path.join(root, "persons", stem + ".txt"), "w") as f:
            f.write("\n".join(names))
        ids = np.zeros((rec["height"], rec["width"]), dtype=np.uint8)
        lines = []
        for human, person in enumerate(persons, start=1):
            assert not (ids[(person > 0) & (person < 255)]).any(), (
                "reference GT persons must not overlap"
            )
            for c in np.unique(person):
                if 0 < c < 255:
                    inst = int(c) + 20 * (human - 1)
                    ids[person == c] = inst
                    lines.append(f"{inst} {int(c)} {human}")
        write_label_png(os.path.join(root, "Instance_ids", stem + ".png"), ids)
        with open(os.path.join(root, "Instance_ids", stem + ".txt"), "w") as f:
            f.write("".join(line + "\n" for line in lines))


def test_pgn_ground_truth_txt_format_of_the_real_files():
    """The real CIHP instance-part ground truth of PGN's repository: three integers per line,
    ``inst_id class_id human_id`` with ``inst_id == class_id + 20 * (human_id - 1)``, no score. The
    predictions PGN's reader takes are other lines (``class_id score``, line i = region id i + 1).
    """
    folder = os.path.join(
        REPO, "..", "shared", "realdata", "cihp", "evaluation", "Instance_part_val"
    )
    if not os.path.isdir(folder):
        pytest.skip(f"real CIHP files not found: {folder} (../shared/realdata)")
    names = sorted(n for n in os.listdir(folder) if n.endswith(".txt"))
    assert names == ["0000001.txt", "0000003.txt", "0000004.txt"]
    for name in names:
        with open(os.path.join(folder, name)) as f:
            rows = [line.split() for line in f.read().splitlines() if line.strip()]
        assert rows and all(len(r) == 3 and all(v.isdigit() for v in r) for r in rows), name
        for inst, cls, human in (map(int, r) for r in rows):
            assert 1 <= cls <= 19 and human >= 1 and inst == cls + 20 * (human - 1), (name, inst)
    with open(os.path.join(folder, "0000001.txt")) as f:
        first = f.read().split("\n")[:3]
    assert first == ["2 2 1", "5 5 1", "9 9 1"]


# ------------------------------------------------------------------------ constructed round trip


def _person(part_map: np.ndarray) -> dict:
    ys, xs = np.nonzero(part_map)
    return {
        "bbox": [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
        "bbox_mode": BoxMode.XYXY_ABS,
        "category_id": 0,
        "iscrowd": 0,
        "segmentation": encode_mask(part_map > 0),
        "parts": parts_from_map(part_map),
    }


G1 = np.array(
    [[1, 1, 0, 0, 0, 0], [3, 2, 4, 0, 0, 0], [0, 2, 0, 0, 0, 0], [5, 0, 6, 0, 0, 0]], np.uint8
)
G2 = np.array(
    [[0, 0, 0, 0, 1, 0], [0, 0, 0, 3, 2, 4], [0, 0, 0, 0, 2, 0], [0, 0, 0, 5, 0, 6]], np.uint8
)
G3 = np.array([[0, 1, 1, 0], [0, 2, 2, 0], [0, 5, 6, 0]], np.uint8)


def _records(root: str) -> List[dict]:
    """CIHP-like records (lr6): the image-level map is the record's sem_seg_file_name."""
    cat_a = np.maximum(G1, G2)
    cat_a[0, 2] = 1  # a labelled pixel of no annotated person: only the image-level map has it
    specs = [
        ("0000001", G1.shape, [G1, G2], cat_a),
        ("0000002", G3.shape, [G3], G3),
        ("0000003", (2, 2), [], np.zeros((2, 2), np.uint8)),
    ]
    records = []
    for i, (stem, (h, w), persons, category) in enumerate(specs):
        png = os.path.join(root, "dataset", "Category_ids", stem + ".png")
        write_label_png(png, category)
        records.append(
            {
                "file_name": os.path.join(root, "dataset", "Images", stem + ".jpg"),
                "height": h,
                "width": w,
                "image_id": i + 1,
                "part_taxonomy": "lr6",
                "sem_seg_file_name": png,
                "annotations": [_person(p) for p in persons],
            }
        )
    return records


def _instances(size, boxes, scores, rois) -> Instances:
    """One-hot pred_part_masks (R, C, 24, 24) from ROI label maps (h x w labels of a pixel-aligned
    box of h x w pixels, h, w in 1..4): each label repeated 24 / w (even) times, so the bilinear
    paste samples between two equal cells and gives the labels back exactly."""
    inst = Instances(size)
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    side = 24
    masks = torch.zeros(len(rois), C, side, side)
    for k, roi in enumerate(rois):  # resize each ROI map to side x side by nearest
        roi = torch.tensor(roi)
        ys = (torch.arange(side) * roi.shape[0]) // side
        xs = (torch.arange(side) * roi.shape[1]) // side
        masks[k] = F.one_hot(roi[ys][:, xs], C).permute(2, 0, 1).float()
    inst.pred_part_masks = masks
    return inst


def _predictions() -> Dict[int, Instances]:
    """Image 1: pA1 (0.91) G1 with (2, 1) missed; pA2 (0.83) G2 with its head called torso;
    pA3 (0.47) torso over columns 1-3 (overlaps both, pasted under them); pA4 (0.12) a head box
    (below the paste threshold, above the AP one); pA5 (0.0005) below every threshold.
    Image 2: pB1 (0.66) G3 exactly, pB2 (0.35) a shifted duplicate. Image 3: nothing."""
    a1 = G1[:, :3].copy()
    a1[2, 1] = 0
    a2 = G2[:, 3:].copy()
    a2[0, 1] = 2
    img1 = _instances(
        (4, 6),
        [[0, 0, 3, 4], [3, 0, 6, 4], [1, 0, 4, 4], [0, 0, 2, 2], [4, 2, 6, 4]],
        [0.91, 0.83, 0.47, 0.12, 0.0005],
        [a1.tolist(), a2.tolist(), [[2] * 3] * 4, [[1, 1], [1, 1]], [[6, 6], [6, 6]]],
    )
    img2 = _instances(
        (3, 4),
        [[1, 0, 3, 3], [0, 0, 2, 3]],
        [0.66, 0.35],
        [G3[:, 1:3].tolist(), [[1, 1], [2, 2], [5, 5]]],
    )
    img3 = _instances((2, 2), np.zeros((0, 4)), [], [])
    return {1: img1, 2: img2, 3: img3}


class _Replay(torch.nn.Module):
    """Stands in for a model: returns the prepared outputs of each input's image."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = outputs

    def forward(self, inputs):
        return [{"instances": self.outputs[inp["image_id"]]} for inp in inputs]


@pytest.fixture
def exported(dataset_name, tmp_path):  # noqa: F811
    records = _records(str(tmp_path))
    DatasetCatalog.register(dataset_name, lambda: records)
    MetadataCatalog.get(dataset_name).set(thing_classes=["person"], part_taxonomy="lr6")
    out = str(tmp_path / "export")
    writer = ParsingPredictionWriter(
        dataset_name,
        out,
        "lr6",
        paste_score_threshold=PASTE,
        ap_score_threshold=AP,
        distributed=False,
    )
    evaluator = BodyPartParsingEvaluator(
        dataset_name, "lr6", paste_score_threshold=PASTE, ap_score_threshold=AP, distributed=False
    )
    loader = [[{k: r[k] for k in ("file_name", "image_id", "height", "width")}] for r in records]
    results = export_parsing_predictions(
        _Replay(_predictions()), loader, writer, evaluator, progress=False
    )
    gt_root = str(tmp_path / "reference_gt")
    write_reference_ground_truth(records, "lr6", gt_root)
    return out, gt_root, results["parsing"]


def test_files_follow_the_reference_conventions(exported):
    out, _, _ = exported
    stems = ["0000001", "0000002", "0000003"]
    assert sorted(os.listdir(os.path.join(out, "parsing_predict"))) == [s + ".png" for s in stems]
    # image 1 pasted (score >= 0.3, ascending): pA3 torso, then pA2, then pA1
    pred = cv2.imread(os.path.join(out, "parsing_predict", "0000001.png"), cv2.IMREAD_UNCHANGED)
    # pA3's torso shows in columns 1-3 where pA2 / pA1 have no part (also at (2, 1), missed by
    # pA1); (0, 4) is pA2's wrong head; pA4 (0.12) is not pasted
    expected = [[1, 1, 2, 2, 2, 0], [3, 2, 4, 3, 2, 4], [0, 2, 2, 2, 2, 0], [5, 2, 6, 5, 0, 6]]
    np.testing.assert_array_equal(pred, expected)
    ids = cv2.imread(os.path.join(out, "parsing_instance", "0000001.png"), cv2.IMREAD_UNCHANGED)
    assert (
        ids.dtype == np.uint8
        and ids[0, 0] == 3
        and ids[1, 4] == 2
        and ids[0, 2] == 1
        and ids[0, 5] == 0
    )
    with open(os.path.join(out, "results.txt")) as f:
        lines = f.read().splitlines()
    assert lines[0].split()[:1] == ["0000001"] and lines[0].split()[1::2] == ["1", "2", "3"]
    assert [float(v) for v in lines[0].split()[2::2]] == pytest.approx([0.47, 0.83, 0.91])
    assert lines[2] == "0000003"
    # per-person maps: the 4 persons with score >= 0.001, best first; DETS lines x1 y1 x2 y2 score
    with open(os.path.join(out, "parsing_person", "0000001.txt")) as f:
        dets = [[float(v) for v in line.split()] for line in f.read().splitlines()]
    assert [d[4] for d in dets] == pytest.approx([0.91, 0.83, 0.47, 0.12])
    assert dets[0][:4] == [0.0, 0.0, 3.0, 4.0]
    person2 = np.array(Image.open(os.path.join(out, "parsing_person", "0000001_2.png")))
    assert (
        person2.shape == (4, 6)
        and person2[0, 4] == 2
        and person2[1, 3] == 3
        and not person2[:, :3].any()
    )
    assert not os.path.exists(os.path.join(out, "parsing_person", "0000001_5.png"))
    # instance parts: line i (``class score k``) describes region id i + 1 of the PNG
    parts = np.array(Image.open(os.path.join(out, "instance_part", "0000001.png")))
    with open(os.path.join(out, "instance_part", "0000001.txt")) as f:
        items = [line.split() for line in f.read().splitlines()]
    assert len(items) == parts.max() and set(np.unique(parts)) == set(range(len(items) + 1))
    for region, (cls, score, k) in enumerate(items, start=1):
        owner_map = np.array(Image.open(os.path.join(out, "parsing_person", f"0000001_{k}.png")))
        assert (owner_map[parts == region] == int(cls)).all()  # the region is part of person k
        assert float(score) == pytest.approx(dets[int(k) - 1][4])
    assert [int(item[0]) for item in items] == sorted(int(item[0]) for item in items)  # by class
    # the image without detections still has its files (the reference lists the folders)
    assert os.path.getsize(os.path.join(out, "instance_part", "0000003.txt")) == 0
    assert not cv2.imread(
        os.path.join(out, "parsing_instance", "0000003.png"), cv2.IMREAD_UNCHANGED
    ).any()
    info = json.load(open(os.path.join(out, "export_info.json")))
    assert (
        info["images"] == 3
        and info["paste_score_threshold"] == PASTE
        and info["labels"][1] == "head"
    )


def test_reference_code_on_the_files_gives_the_evaluator_numbers(exported):
    out, gt_root, ours = exported
    ref = reference_numbers(out, gt_root, C)
    for key in ("mIoU", "pixel_acc", "mean_acc", "APp50", "APp_vol", "PCP50", "APr50", "APr_vol"):
        assert ref[key] == pytest.approx(ours[key], abs=1e-9), key
    # every class has ground truth here, so the reference's plain mean over classes is the same
    assert 100 * ref["APr_all_classes"][4] == pytest.approx(ours["APr50"], abs=1e-9)
    # and the numbers are not trivial
    assert 0 < ours["APp_vol"] < 100 and 0 < ours["APr_vol"] < 100 and 0 < ours["mIoU"] < 100


def ref_submission_results(out: str) -> Dict[str, dict]:
    """MHP-v2's official ``eval_submission.py`` reading of the files: per ``results.txt`` line, the
    persons ``(id, score)``; person ``id``'s map is ``global_seg`` (``parsing_predict``) where
    ``global_tag`` (``parsing_instance``) is ``id``, persons without a pixel skipped; DETS are
    the map's extent and the score."""
    results = {}
    with open(os.path.join(out, "results.txt")) as f:
        lines = [line.split() for line in f.read().splitlines()]
    for key, *items in lines:
        seg = np.array(Image.open(os.path.join(out, "parsing_predict", key + ".png")))
        tag = np.array(Image.open(os.path.join(out, "parsing_instance", key + ".png")))
        dets, masks = [], []
        for k in range(len(items) // 2):
            person, score = int(items[2 * k]), float(items[2 * k + 1])
            mask = tag == person
            if mask.sum() == 0:
                continue
            ys, xs = np.where(mask)
            dets.append((xs.min(), ys.min(), xs.max(), ys.max(), score))
            masks.append(mask * seg)
        results[key] = {"MASKS": masks, "DETS": dets}
    return results


def test_mhp_v2_submission_protocol_is_the_official_scripts(exported, dataset_name):  # noqa: F811
    """AP_PERSON_MAPS "pasted" gives the numbers of MHP-v2's eval_submission.py on the exported
    results.txt / global_seg / global_tag (each pasted person's visible pixels; pA3 is partly
    covered, pA4 not pasted). Where the two protocols differ: test_parsing_evaluator.py."""
    out, gt_root, full = exported
    evaluator = BodyPartParsingEvaluator(
        dataset_name,
        "lr6",
        paste_score_threshold=PASTE,
        ap_score_threshold=AP,
        distributed=False,
        ap_person_maps="pasted",
    )
    predictions = _predictions()
    for image_id in (1, 2, 3):
        evaluator.process([{"image_id": image_id}], [{"instances": predictions[image_id]}])
    pasted = evaluator.evaluate()["parsing"]
    results = ref_submission_results(out)
    gt_persons = {}
    for stem in results:
        with open(os.path.join(gt_root, "persons", stem + ".txt")) as f:
            names = f.read().split()
        gt_persons[stem] = [cv2.imread(os.path.join(gt_root, "persons", name), 0) for name in names]
    aps, pcps = ref_eval_parsing_ap(results, gt_persons, C, 0.0)
    assert 100 * aps[4] == pytest.approx(pasted["APp50"], abs=1e-9)
    assert 100 * np.mean(aps) == pytest.approx(pasted["APp_vol"], abs=1e-9)
    assert 100 * pcps[4] == pytest.approx(pasted["PCP50"], abs=1e-9)
    # only the three pasted persons of image 1 and both of image 2 are scored; pA4 (0.12) is not
    assert sum(len(r["DETS"]) for r in results.values()) == 5
    # the image-level and region metrics do not depend on the setting
    for key in ("mIoU", "pixel_acc", "APr50", "APr_vol"):
        assert pasted[key] == pytest.approx(full[key], abs=1e-12), key
    with pytest.raises(ValueError, match="ap_person_maps 'visible': choose one of full, pasted"):
        BodyPartParsingEvaluator(dataset_name, "lr6", distributed=False, ap_person_maps="visible")


def test_writer_errors(dataset_name, tmp_path):  # noqa: F811
    DatasetCatalog.register(dataset_name, lambda: [])
    MetadataCatalog.get(dataset_name).set(thing_classes=["person"])
    with pytest.raises(ValueError, match=r"unknown export formats \['pngs'\]"):
        ParsingPredictionWriter(dataset_name, str(tmp_path), "lr6", formats=["pngs"])
    writer = ParsingPredictionWriter(dataset_name, str(tmp_path), "lr6", distributed=False)
    inst = _instances((2, 2), [[0, 0, 2, 2]], [0.9], [[[1, 1], [1, 1]]])
    base = {"height": 2, "width": 2}
    writer.process([dict(base, image_id=1, file_name="a/x.jpg")], [{"instances": inst}])
    writer.process([dict(base, image_id=2, file_name="b/x.png")], [{"instances": inst}])
    with pytest.raises(ValueError, match=r"images 1 and 2 have the same file name 'x'"):
        writer.evaluate()
    with pytest.raises(KeyError, match="has no 'file_name'"):
        writer.process([dict(base, image_id=3)], [{"instances": inst}])


def test_many_regions_use_16_bit_ids(dataset_name, tmp_path):  # noqa: F811
    """More than 255 regions in one image (300 one-pixel persons): 16-bit instance PNGs, read back
    by PIL as PGN's reader does."""
    DatasetCatalog.register(dataset_name, lambda: [])
    MetadataCatalog.get(dataset_name).set(thing_classes=["person"])
    writer = ParsingPredictionWriter(
        dataset_name, str(tmp_path), "lr6", paste_score_threshold=0.0, distributed=False
    )
    n = 300
    boxes = [[x, 0, x + 1, 1] for x in range(n)]
    inst = _instances((1, n), boxes, list(np.linspace(0.9, 0.1, n)), [[[1]]] * n)
    writer.process(
        [{"image_id": 1, "file_name": "w.jpg", "height": 1, "width": n}], [{"instances": inst}]
    )
    parts = np.array(Image.open(os.path.join(tmp_path, "instance_part", "w.png")))
    assert parts.dtype == np.uint16 and sorted(np.unique(parts)) == list(range(1, n + 1))
    ids = np.array(Image.open(os.path.join(tmp_path, "parsing_instance", "w.png")))
    assert ids.dtype == np.uint16 and ids[0, 0] == n and ids[0, n - 1] == 1  # best pasted last


# ------------------------------------------------------------------------------------ the tool


def _load_tool():
    spec = importlib.util.spec_from_file_location("bodyparts_export_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TOOL_OPTS = [  # the server tests' small untrained model, 5 detections, the protocol's thresholds
    *SMALL_MODEL_OPTS,
    "TEST.DETECTIONS_PER_IMAGE",
    "5",
    "DATALOADER.NUM_WORKERS",
    "0",
    "BODYPARTS.PARSING_EVAL.PASTE_SCORE_THRESH",
    str(PASTE),
    "BODYPARTS.PARSING_EVAL.AP_SCORE_THRESH",
    str(AP),
]


def test_tool_round_trip_on_a_model(dataset_name, tmp_path, monkeypatch):  # noqa: F811
    """The tool on a real (untrained) model: its files, read by the reference reimplementation,
    give the numbers it wrote to metrics.json."""
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    records = []
    for i, (h, w) in enumerate([(48, 64), (64, 48)]):
        image = str(tmp_path / "images" / f"im{i}.png")
        write_image(image, h, w)
        person = np.zeros((h, w), np.uint8)
        person[8:20, 10:20] = 1  # fine_lr head
        person[20:40, 8:22] = 2  # torso
        person[20:40, 22:26] = 3  # left_upper_arm
        records.append(
            {
                "file_name": image,
                "height": h,
                "width": w,
                "image_id": i,
                "part_taxonomy": "fine_lr",
                "annotations": [_person(person)],
            }
        )
    DatasetCatalog.register(dataset_name, lambda: records)
    MetadataCatalog.get(dataset_name).set(**bodyparts_metadata("fine_lr", None))
    tool = _load_tool()
    out = str(tmp_path / "out")
    args = tool.get_parser().parse_args(
        [
            "--config-file",
            PARTS_CONFIG,
            "--dataset",
            dataset_name,
            "--output",
            out,
            "--eval",
            "--no-progress",
            *TOOL_OPTS,
        ]
    )
    assert tool.main(args) == 0
    ours = json.load(open(os.path.join(out, "metrics.json")))["parsing"]
    gt_root = str(tmp_path / "gt")
    write_reference_ground_truth(records, "fine_lr", gt_root)
    ref = reference_numbers(out, gt_root, 15)
    with open(os.path.join(out, "parsing_person", "im0.txt")) as f:
        assert len(f.read().splitlines()) == 5  # every detection (scores > 0.001) is a person map
    for key in ("mIoU", "pixel_acc", "mean_acc", "APp50", "APp_vol", "PCP50", "APr50", "APr_vol"):
        assert ref[key] == pytest.approx(ours[key], abs=1e-9, nan_ok=True), key

    with pytest.raises(tool.ExportError, match="is not registered"):
        tool.main(
            tool.get_parser().parse_args(
                [
                    "--config-file",
                    PARTS_CONFIG,
                    "--dataset",
                    "no_such_split",
                    "--output",
                    out,
                    *TOOL_OPTS,
                ]
            )
        )
    with pytest.raises(tool.ExportError, match="MODEL.WEIGHTS file .*missing.pth does not exist"):
        tool.main(
            tool.get_parser().parse_args(
                [
                    "--config-file",
                    PARTS_CONFIG,
                    "--dataset",
                    dataset_name,
                    "--output",
                    out,
                    *TOOL_OPTS,
                    "MODEL.WEIGHTS",
                    str(tmp_path / "missing.pth"),
                ]
            )
        )
    with pytest.raises(tool.ExportError, match="--formats 'pngs'"):
        tool.main(Namespace(**{**vars(args), "formats": "pngs"}))


def test_two_processes_write_the_files_and_numbers_of_one(tmp_path):
    """--num-gpus 2 (two CPU processes sharing the images) writes the same files, byte for byte,
    and the same metrics.json as one process, on 4 synthetic images."""
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "datasets"), OMP_NUM_THREADS="1")
    opts = [
        *TOOL_OPTS,
        "MODEL.DEVICE",
        "cpu",
        "BODYPARTS.SYNTHETIC.NUM_TRAIN",
        "2",
        "BODYPARTS.SYNTHETIC.NUM_VAL",
        "4",
    ]
    outputs = {}
    for n in (1, 2):
        out = str(tmp_path / f"out{n}")
        cmd = [sys.executable, TOOL, "--config-file", PARTS_CONFIG, "--dataset"]
        cmd += ["bodyparts_synthetic_val", "--output", out, "--eval", "--no-progress"]
        cmd += ["--num-gpus", str(n), *opts]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        outputs[n] = out

    def files(root):
        found = {}
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, root)] = f.read()
        return found

    one, two = files(outputs[1]), files(outputs[2])
    assert sorted(one) == sorted(two)
    assert len([p for p in one if p.startswith("parsing_predict")]) == 4
    for path in one:
        assert one[path] == two[path], path
    metrics = json.loads(one["metrics.json"])["parsing"]
    assert 0 <= metrics["pixel_acc"] <= 100 and not math.isnan(metrics["pixel_acc"])
