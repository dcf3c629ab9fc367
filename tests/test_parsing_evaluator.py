"""BodyPartParsingEvaluator on tiny in-memory datasets, against hand-computed results.

Ground truth is in the fine_lr taxonomy, the model predicts lr6 (C = 7: 0 background, 1 head,
2 torso, 3 left_arm, 4 right_arm, 5 left_leg, 6 right_leg); fine_lr 5 (left_lower_arm) maps to
lr6 3 (left_arm). Predictions are one-hot ROI probabilities on pixel-aligned boxes with M equal to
the box side, so pasting reproduces the intended labels exactly.
"""

import json
import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import dataset_name, parts_from_map, write_label_png  # noqa: F401  (fixture)
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils import comm

from bodyparts import add_bodyparts_config
from bodyparts.config import check_bodyparts_config
from bodyparts.data.contract import encode_mask
from bodyparts.evaluation import (
    BodyPartParsingEvaluator,
    build_parsing_evaluator,
    ground_truth_maps,
)
from bodyparts.taxonomy import mapping_lut

C = 7
LR6_LABELS = ["background", "head", "torso", "left_arm", "right_arm", "left_leg", "right_leg"]


def _person(part_map=None, silhouette=None):
    """A contract annotation; ``part_map`` None = no part annotation."""
    if silhouette is None:
        silhouette = part_map > 0
    ys, xs = np.nonzero(silhouette)
    ann = {
        "bbox": [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
        "bbox_mode": BoxMode.XYXY_ABS,
        "category_id": 0,
        "iscrowd": 0,
        "segmentation": encode_mask(silhouette),
    }
    if part_map is not None:
        ann["parts"] = parts_from_map(part_map)
    return ann


def _records():
    """Image 1 (2 x 6): a1 head + left_lower_arm, a2 torso, a3 without part annotation.
    Image 2 (2 x 4): b1 torso + head, b2 annotated with no part at all (parts = {})."""
    a1 = np.array([[1, 1, 0, 0, 0, 0], [5, 5, 0, 0, 0, 0]], dtype=np.uint8)
    a2 = np.array([[0, 0, 2, 2, 0, 0], [0, 0, 2, 2, 0, 0]], dtype=np.uint8)
    a3 = np.array([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]], dtype=bool)
    b1 = np.array([[2, 1, 0, 0], [2, 0, 0, 0]], dtype=np.uint8)
    b2 = np.array([[0, 0, 1, 1], [0, 0, 0, 0]], dtype=bool)
    empty_parts = dict(_person(silhouette=b2), parts={})
    return [
        {
            "file_name": "img1.png",
            "height": 2,
            "width": 6,
            "image_id": 1,
            "part_taxonomy": "fine_lr",
            "annotations": [_person(a1), _person(a2), _person(silhouette=a3)],
        },
        {
            "file_name": "img2.png",
            "height": 2,
            "width": 4,
            "image_id": 2,
            "part_taxonomy": "fine_lr",
            "annotations": [_person(b1), empty_parts],
        },
    ]


def _instances(image_size, boxes, scores, roi_labels):
    """Instances with one-hot ``pred_part_masks`` (R, C, M, M) from ROI label maps (R, M, M)."""
    inst = Instances(image_size)
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.scores = torch.tensor(scores, dtype=torch.float32)
    labels = torch.tensor(np.array(roi_labels), dtype=torch.long)
    labels = labels.reshape(len(scores), *np.shape(roi_labels)[1:])
    inst.pred_part_masks = F.one_hot(labels, C).permute(0, 3, 1, 2).float()
    return inst


def _outputs():
    """(inputs, outputs) per image, in lr6 labels.

    Image 1: p1 (0.9) a1 with one left_arm pixel missing, p2 (0.8) a2 exactly, p3 (0.7) a1's head
    only (a duplicate), p4 (0.3) a head on the unannotated a3. Image 2: q1 (0.6) b1 with its head
    pixel labelled torso, q2 (0.4) a head on background.
    """
    img1 = _instances(
        (2, 6),
        [[0, 0, 2, 2], [2, 0, 4, 2], [0, 0, 2, 2], [4, 0, 6, 2]],
        [0.9, 0.8, 0.7, 0.3],
        [[[1, 1], [3, 0]], [[2, 2], [2, 2]], [[1, 1], [0, 0]], [[1, 1], [1, 1]]],
    )
    img2 = _instances(
        (2, 4), [[0, 0, 2, 2], [2, 0, 4, 2]], [0.6, 0.4], [[[2, 2], [2, 0]], [[1, 1], [1, 1]]]
    )
    return [({"image_id": 1}, {"instances": img1}), ({"image_id": 2}, {"instances": img2})]


# Hand computation (lr6 labels):
# Image-level maps (score >= 0.5, ascending): image 1 [[1,1,2,2,0,0],[3,0,2,2,0,0]] vs ground
# truth [[1,1,2,2,255,255],[3,3,2,2,255,255]] (a3 ignored); image 2 (q1 only) [[2,2,0,0],[2,0,0,0]]
# vs [[2,1,0,0],[2,0,0,0]]. hist[g, p]: (0,0) 5, (1,1) 2, (1,2) 1, (2,2) 6, (3,3) 1, (3,0) 1;
# rows 5, 3, 6, 2; cols 6, 2, 7, 1; total 16.
IOU = {"background": 5 / 6, "head": 2 / 3, "torso": 6 / 7, "left_arm": 1 / 2}  # 5/(5+6-5) ...
F1 = {"background": 10 / 11, "head": 4 / 5, "torso": 12 / 13, "left_arm": 2 / 3}  # 2TP/(row+col)
# Per-instance mIoU with the best GT (C = 7, whole image):
#   p1-a1: IoU0 8/(8+9-8), IoU1 1, IoU3 1/(2+1-1) -> (8/9 + 1 + 1/2) / 3 = 43/54 = 0.796
#   p2-a2: 1;  p3-a1: (8/10 + 1 + 0) / 3 = 0.6;  p4-a1: (4/12) / 3 = 1/9 (a3 is not ground truth)
#   q1-b1: (5/5 + 0 + 2/3) / 3 = 5/9 = 0.556;  q2-b1: (1/8) / 3 = 1/24.  N_gt = 3 (a1, a2, b1).
# Ranked: p1 .9, p2 .8, p3 .7, q1 .6, q2 .4, p4 .3
#   t = .1 ... .5: TP TP FP(a1 taken) TP FP FP -> 1/3 + 1/3 + 1/3 * 3/4 = 11/12
#   t = .6, .7:    TP TP FP FP FP FP            -> 2/3
#   t = .8, .9:    FP TP FP FP FP FP            -> 1/3 * 1/2 = 1/6
# PCP50: p1-a1 parts {head 1, left_arm 1/2 (not > .5)} -> 1/2; p2-a2 {torso 1} -> 1;
#   q1-b1 {head 0, torso 2/3} -> 1/2; (1/2 + 1 + 1/2) / 3 = 2/3
# AP^r: regions of the persons pasted in ascending score order (p4, p3, p2, p1; q2, q1): p1
#   overwrites all of p3 (head only), so p3 has no region. GT regions head 2 (a1, b1), torso 2
#   (a2, b1), left_arm 1 (a1). Region IoUs: p1 head 1, p1 left_arm 1/2, p2 torso 1, p4 head 0
#   (a3 is no ground truth); q1 torso 2/(3 + 2 - 2) = 2/3, q2 head 0.
#   head: p1 .9 TP, q2 .4 FP, p4 .3 FP at every t -> AP 1/2
#   torso: p2 1, q1 2/3 -> AP 1 for t <= .6, 1/2 for t >= .7
#   left_arm: p1 1/2 -> AP 1 for t <= .4, 0 for t >= .5
#   APr: t .1-.4: 5/6; .5, .6: 1/2; .7-.9: 1/3 -> vol (10/3 + 1 + 1) / 9 = 16/27
EXPECTED = {
    "mIoU": (5 / 6 + 2 / 3 + 6 / 7 + 1 / 2) / 4,  # 5/7
    "pixel_acc": 14 / 16,
    "mean_acc": (5 / 5 + 2 / 3 + 6 / 6 + 1 / 2) / 4,  # 19/24
    "fwIoU": (5 * 5 / 6 + 3 * 2 / 3 + 6 * 6 / 7 + 2 * 1 / 2) / 16,  # 517/672
    "mean_F1": (10 / 11 + 4 / 5 + 12 / 13 + 2 / 3) / 4,
    **{f"IoU-{n}": IOU.get(n, math.nan) for n in LR6_LABELS},
    **{f"F1-{n}": F1.get(n, math.nan) for n in LR6_LABELS},
    "APp50": 11 / 12,
    "APp_vol": (5 * 11 / 12 + 2 * 2 / 3 + 2 * 1 / 6) / 9,  # 25/36
    "PCP50": 2 / 3,
    "APr50": 1 / 2,
    "APr_vol": 16 / 27,
}


def _check(results, expected):
    assert list(results) == ["parsing"]
    res = results["parsing"]
    assert set(res) == set(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(res[key]), key
        else:
            assert res[key] == pytest.approx(100 * value), key


@pytest.fixture
def parsing_dataset(dataset_name):  # noqa: F811
    DatasetCatalog.register(dataset_name, _records)
    MetadataCatalog.get(dataset_name).set(thing_classes=["person"])
    return dataset_name


def test_evaluator_hand_computed(parsing_dataset, tmp_path):
    ev = BodyPartParsingEvaluator(
        parsing_dataset, "lr6", distributed=False, output_dir=str(tmp_path)
    )
    ev.reset()
    for inp, out in _outputs():
        ev.process([inp], [out])
    _check(ev.evaluate(), EXPECTED)
    dumped = json.load(open(os.path.join(tmp_path, "parsing_instances.json")))
    assert [d["image_id"] for d in dumped] == [1, 2] and [d["num_gt"] for d in dumped] == [2, 1]
    p1 = dumped[0]["predictions"][0]
    assert p1["score"] == pytest.approx(0.9) and p1["best_gt"] == 0
    assert p1["best_iou"] == pytest.approx(43 / 54)
    # background 8/9, head 1, torso absent from both (NaN -> null), left_arm 1/2, others absent
    assert p1["part_ious"] == [pytest.approx(8 / 9), 1.0, None, 0.5, None, None, None]
    # a second round starts from scratch
    ev.reset()
    ev.process(*zip(*_outputs()))
    _check(ev.evaluate(), EXPECTED)


def test_evaluator_gather_two_ranks(parsing_dataset, monkeypatch):
    (in1, out1), (in2, out2) = _outputs()
    ranks = [BodyPartParsingEvaluator(parsing_dataset, "lr6") for _ in range(2)]
    ranks[0].process([in2], [out2])  # rank 0 got image 2, rank 1 image 1
    ranks[1].process([in1], [out1])
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: [ranks[0]._stats, ranks[1]._stats])
    monkeypatch.setattr(comm, "is_main_process", lambda: True)
    _check(ranks[0].evaluate(), EXPECTED)
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert ranks[1].evaluate() == {}


def test_builder_reads_model_taxonomy(parsing_dataset):
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.BODYPARTS.PART_TAXONOMY = "lr6"
    ev = build_parsing_evaluator(cfg, parsing_dataset, None)
    assert isinstance(ev, BodyPartParsingEvaluator) and ev._num_classes == C and ev._distributed
    ev._distributed = False
    ev.process(*zip(*_outputs()))
    _check(ev.evaluate(), EXPECTED)


def test_empty_images_and_predictions_without_gt(dataset_name):  # noqa: F811
    # image 1: no person, no detection; image 2: no person, one head pixel predicted (an FP)
    records = [
        {"file_name": f"{i}.png", "height": 2, "width": 2, "image_id": i, "annotations": []}
        for i in (1, 2)
    ]
    DatasetCatalog.register(dataset_name, lambda: records)
    MetadataCatalog.get(dataset_name).set(part_taxonomy="fine_lr")  # records without part_taxonomy
    ev = BodyPartParsingEvaluator(dataset_name, "lr6", distributed=False)
    empty = _instances((2, 2), np.zeros((0, 4)), [], np.zeros((0, 1, 1)))
    ev.process([{"image_id": 1}], [{"instances": empty}])
    one_head_pixel = _instances((2, 2), [[0, 0, 1, 1]], [0.9], [[[1]]])
    ev.process([{"image_id": 2}], [{"instances": one_head_pixel}])
    # hist: (0,0) 4 + 3, (0,1) 1 -> IoU0 = 7/8, IoU1 = 0/1; no ground truth person: AP undefined
    res = ev.evaluate()["parsing"]
    assert res["mIoU"] == pytest.approx(100 * (7 / 8 + 0) / 2)
    assert res["pixel_acc"] == pytest.approx(100 * 7 / 8)
    assert res["IoU-head"] == 0.0 and math.isnan(res["IoU-torso"])
    for key in ("APp50", "APp_vol", "PCP50", "APr50", "APr_vol"):
        assert math.isnan(res[key]), key


def test_image_level_path_with_sem_seg_file(dataset_name, tmp_path):  # noqa: F811
    # ground truth from sem_seg_file_name (fine_lr, 255 ignored):
    # [[1,5,255],[0,0,2]] -> lr6 [[1,3,255],[0,0,2]]
    png = str(tmp_path / "sem.png")
    write_label_png(png, np.array([[1, 5, 255], [0, 0, 2]]))
    record = {
        "file_name": "x.png",
        "height": 2,
        "width": 3,
        "image_id": "x",
        "part_taxonomy": "fine_lr",
        "sem_seg_file_name": png,
        "annotations": [],
    }
    DatasetCatalog.register(dataset_name, lambda: [record])
    ev = BodyPartParsingEvaluator(dataset_name, "lr6", distributed=False)
    pred = np.array([[1, 3, 4], [0, 2, 2]])
    sem_seg = F.one_hot(torch.tensor(pred), C).permute(2, 0, 1).float()
    ev.process([{"image_id": "x"}], [{"sem_seg": sem_seg}])
    res = ev.evaluate()["parsing"]
    # hist: (1,1) (3,3) (0,0) (0,2) (2,2); the 4 under 255 is ignored
    # rows 2, 1, 1, 1; cols 1, 1, 2, 1 -> IoU 1/2, 1, 1/2, 1; other classes NaN
    assert res["mIoU"] == pytest.approx(100 * 3 / 4)
    assert res["pixel_acc"] == pytest.approx(100 * 4 / 5)
    assert math.isnan(res["IoU-right_arm"])
    assert "APp50" not in res and "PCP50" not in res


def test_errors_name_the_problem(parsing_dataset):
    ev = BodyPartParsingEvaluator(parsing_dataset, "lr6", distributed=False)
    boxes = Boxes(torch.tensor([[0.0, 0, 2, 2]]))
    inst = Instances((2, 6), pred_boxes=boxes, scores=torch.tensor([0.9]))
    with pytest.raises(KeyError, match="pred_part_masks.*part branch"):
        ev.process([{"image_id": 1}], [{"instances": inst}])
    with pytest.raises(KeyError, match="neither 'instances'"):
        ev.process([{"image_id": 1}], [{}])
    with pytest.raises(KeyError, match="not in dataset"):
        ev.process([{"image_id": 99}], [{"instances": inst}])
    with pytest.raises(ValueError, match="sem_seg of shape"):
        ev.process([{"image_id": 1}], [{"sem_seg": torch.zeros(3, 2, 6)}])
    assert ev.evaluate() == {}  # nothing processed


def test_ground_truth_maps_ignore_rules():
    # 3 x 4 image, fine_lr -> lr6. Person A: head (1) + left_lower_arm (5 -> 3) with
    # parts_complete False and a silhouette (polygon) one pixel larger; person B: no part
    # annotation, box [3, 0, 4, 3] (no segmentation); a crowd region at (2, 0); person C: parts {}.
    lut = mapping_lut("fine_lr", "lr6")
    part_a = np.array([[1, 5, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], dtype=np.uint8)
    person_a = dict(_person(part_a), parts_complete=False)
    person_a["segmentation"] = [[0.0, 0.0, 3.0, 0.0, 3.0, 1.0, 0.0, 1.0]]  # row 0, columns 0-2
    person_b = {"bbox": [3.0, 0.0, 1.0, 3.0], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0}
    crowd = dict(_person(np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=np.uint8)))
    crowd["iscrowd"] = 1
    person_c = dict(_person(silhouette=np.array([[0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]) > 0))
    person_c["parts"] = {}
    persons, semantic = ground_truth_maps([person_a, person_b, crowd, person_c], 3, 4, lut)
    # only A is a ground-truth person (B has no parts, the crowd is excluded, C has no part pixel)
    np.testing.assert_array_equal(persons, [[[1, 3, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])
    # A's unlabelled silhouette pixel (0, 2), B's box column 3 and the crowd pixel are ignored;
    # C is annotated as having no part: background
    np.testing.assert_array_equal(semantic, [[1, 3, 255, 255], [0, 0, 0, 255], [255, 0, 0, 255]])


def test_other_thing_classes_have_no_parts(dataset_name):  # noqa: F811
    """Panoptic datasets hold other thing classes (a car, category 1, parts None): their pixels are
    background in the part ground truth (not ignored), they are no ground-truth person, and the
    evaluator skips predicted boxes of other classes."""
    person = np.array([[1, 2, 0, 0]], dtype=np.uint8)
    car = dict(_person(silhouette=np.array([[0, 0, 1, 1]]) > 0), category_id=1)
    persons, semantic = ground_truth_maps(
        [_person(person), car], 1, 4, mapping_lut("fine_lr", "lr6")
    )
    np.testing.assert_array_equal(persons, [[[1, 2, 0, 0]]])
    np.testing.assert_array_equal(semantic, [[1, 2, 0, 0]])

    record = {
        "file_name": "c.png",
        "height": 1,
        "width": 4,
        "image_id": 0,
        "part_taxonomy": "fine_lr",
        "annotations": [_person(person), car],
    }
    DatasetCatalog.register(dataset_name, lambda: [record])
    MetadataCatalog.get(dataset_name).set(part_taxonomy="fine_lr", thing_classes=["person", "car"])
    evaluator = BodyPartParsingEvaluator(dataset_name, "lr6", distributed=False)
    # the person exactly, and a "car" box predicted with head labels over the car's pixels
    inst = _instances((1, 4), [[0, 0, 2, 1], [2, 0, 4, 1]], [0.9, 0.8], [[[1, 2]], [[1, 1]]])
    inst.pred_classes = torch.tensor([0, 1])
    evaluator.process([{"image_id": 0}], [{"instances": inst}])
    res = evaluator.evaluate()["parsing"]
    assert res["pixel_acc"] == 100.0 and res["APp50"] == 100.0


# ------------------------------------------------------------------------------ protocol settings


def test_thresholds_from_config(parsing_dataset):
    """BODYPARTS.PARSING_EVAL.* reach the evaluator; hand computation on the records above with
    paste threshold 0.3 and AP score threshold 0.65.

    Image level: q2 (0.4, a head on image 2's background cols 2-3) is now pasted; p4 (0.3) paints
    a3's ignored pixels only. hist[g, p]: (0,0) 1, (0,1) 4, (1,1) 2, (1,2) 1, (2,2) 6, (3,3) 1,
    (3,0) 1; rows 5, 3, 6, 2; cols 2, 6, 7, 1 -> IoU 1/6, 2/7, 6/7, 1/2.
    AP: q1 (0.6), q2, p4 are skipped. Ranked p1 TP, p2 TP, p3 FP (t <= .7; p1 FP at t >= .8):
    AP 2/3 for t <= .7, 1/6 for t .8, .9 -> vol (14/3 + 1/3) / 9 = 5/9. PCP50: (1/2 + 1 + 0) / 3.
    AP^r: persons p3, p2, p1 pasted (p3 overwritten): head p1 1 (of 2 GT heads) -> 1/2; torso p2 1
    (of 2) -> 1/2; left_arm p1 1/2 -> 1 for t <= .4, else 0. APr_t: 2/3 (t <= .4), 1/3 (t >= .5).
    """
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    assert cfg.BODYPARTS.PARSING_EVAL.PASTE_SCORE_THRESH == 0.5  # defaults keep the old behaviour
    assert cfg.BODYPARTS.PARSING_EVAL.AP_SCORE_THRESH == 0.0
    cfg.BODYPARTS.PART_TAXONOMY = "lr6"
    cfg.merge_from_list(
        [
            "BODYPARTS.PARSING_EVAL.PASTE_SCORE_THRESH",
            "0.3",
            "BODYPARTS.PARSING_EVAL.AP_SCORE_THRESH",
            "0.65",
        ]
    )
    ev = build_parsing_evaluator(cfg, parsing_dataset, None)
    ev._distributed = False
    ev.process(*zip(*_outputs()))
    res = ev.evaluate()["parsing"]
    iou = [1 / 6, 2 / 7, 6 / 7, 1 / 2]
    assert res["mIoU"] == pytest.approx(100 * sum(iou) / 4)
    assert res["pixel_acc"] == pytest.approx(100 * 10 / 16)
    assert res["IoU-head"] == pytest.approx(100 * 2 / 7)
    assert res["APp50"] == pytest.approx(100 * 2 / 3)
    assert res["APp_vol"] == pytest.approx(100 * 5 / 9)
    assert res["PCP50"] == pytest.approx(100 * 1 / 2)
    assert res["APr50"] == pytest.approx(100 * 1 / 3)
    assert res["APr_vol"] == pytest.approx(100 * (4 * 2 / 3 + 5 / 3) / 9)  # 13/27
    cfg.BODYPARTS.PARSING_EVAL.AP_PERSON_MAPS = "pasted"
    assert build_parsing_evaluator(cfg, parsing_dataset, None)._ap_person_maps == "pasted"
    cfg.BODYPARTS.PARSING_EVAL.AP_PERSON_MAPS = "visible"
    with pytest.raises(ValueError, match="AP_PERSON_MAPS 'visible' is not valid; choose one of"):
        check_bodyparts_config(cfg, "test")


def test_part_labels_pasted_by_the_model_are_used(parsing_dataset):
    """BodyPartsRCNN with PASTE_IN_IMAGE gives pred_part_labels (R, H, W): the evaluator scores
    them (same numbers as from pred_part_masks); maps of another size are an error."""
    from bodyparts.modeling.inference import part_label_maps_in_image

    outputs = []
    for inp, out in _outputs():
        inst = out["instances"]
        labels = Instances(inst.image_size, pred_boxes=inst.pred_boxes, scores=inst.scores)
        labels.pred_part_labels = part_label_maps_in_image(inst)
        outputs.append((inp, {"instances": labels}))
    ev = BodyPartParsingEvaluator(parsing_dataset, "lr6", distributed=False)
    ev.process(*zip(*outputs))
    _check(ev.evaluate(), EXPECTED)
    inp, out = outputs[0]
    wrong = Instances(
        (2, 5), pred_boxes=out["instances"].pred_boxes, scores=out["instances"].scores
    )
    wrong.pred_part_labels = torch.zeros(4, 2, 5, dtype=torch.uint8)
    with pytest.raises(
        ValueError, match=r"image 1: person part maps of size \(2, 5\), the image is \(2, 6\)"
    ):
        ev.process([inp], [{"instances": wrong}])


def test_person_class_from_metadata(dataset_name):  # noqa: F811
    """Persons are thing_classes.index("person"), here 1 (a "car" dataset with persons second):
    the car annotation (category 0) and the car detection are not persons."""
    person = np.array([[1, 2, 0, 0]], dtype=np.uint8)
    car = dict(_person(silhouette=np.array([[0, 0, 1, 1]]) > 0), category_id=0)
    record = {
        "file_name": "c.png",
        "height": 1,
        "width": 4,
        "image_id": 0,
        "part_taxonomy": "lr6",
        "annotations": [dict(_person(person), category_id=1), car],
    }
    DatasetCatalog.register(dataset_name, lambda: [record])
    MetadataCatalog.get(dataset_name).set(thing_classes=["car", "person"])
    evaluator = BodyPartParsingEvaluator(dataset_name, "lr6", distributed=False)
    inst = _instances((1, 4), [[0, 0, 2, 1], [2, 0, 4, 1]], [0.9, 0.8], [[[1, 2]], [[1, 1]]])
    inst.pred_classes = torch.tensor([1, 0])
    evaluator.process([{"image_id": 0}], [{"instances": inst}])
    res = evaluator.evaluate()["parsing"]
    # the person is found exactly; the car's head labels are not pasted (pixels 2-3 background)
    assert res["pixel_acc"] == 100.0 and res["APp50"] == 100.0 and res["APr50"] == 100.0
    # with person = 0 the car is taken for the person: it has no part annotation, so there is no
    # ground-truth person (AP undefined), the real person's pixels are background and the car's
    # ignored; the "car" detection is the only person (its head pixels land on ignored pixels)
    wrong = BodyPartParsingEvaluator(dataset_name, "lr6", distributed=False, person_class=0)
    wrong.process([{"image_id": 0}], [{"instances": inst}])
    res = wrong.evaluate()["parsing"]
    assert math.isnan(res["APp50"]) and math.isnan(res["IoU-head"]) and math.isnan(res["IoU-torso"])
    assert res["IoU-background"] == 100.0


def test_no_person_class_is_an_error(dataset_name):  # noqa: F811
    record = {
        "file_name": "c.png",
        "height": 1,
        "width": 4,
        "image_id": 0,
        "part_taxonomy": "lr6",
        "annotations": [_person(np.array([[1, 2, 0, 0]], dtype=np.uint8))],
    }
    DatasetCatalog.register(dataset_name, lambda: [record])
    MetadataCatalog.get(dataset_name).set(thing_classes=["car"])
    evaluator = BodyPartParsingEvaluator(dataset_name, "lr6", distributed=False)
    inst = _instances((1, 4), [[0, 0, 2, 1]], [0.9], [[[1, 2]]])
    inst.pred_classes = torch.tensor([0])
    with pytest.raises(
        ValueError, match=rf"dataset '{dataset_name}', image 0: .*no 'person' in thing_classes"
    ):
        evaluator.process([{"image_id": 0}], [{"instances": inst}])
    # without pred_classes every detection is a person
    inst.remove("pred_classes")
    evaluator.process([{"image_id": 0}], [{"instances": inst}])
    assert evaluator.evaluate()["parsing"]["pixel_acc"] == 100.0


def test_image_level_map_of_the_dataset_is_the_miou_ground_truth(dataset_name, tmp_path):  # noqa: F811
    """CIHP-like record: the image-level mIoU is scored on the record's sem_seg_file_name (the
    dataset's own map, CIHP Category_ids), not on a map rebuilt from the persons; AP^p uses the
    persons.

    2 x 4 image, lr6. Person g: head (0,0), torso (1,0). The dataset's map also labels (0,3) head
    (e.g. a person not annotated as an instance) and ignores (1,3) (255):
    [[1, 0, 0, 1], [2, 0, 0, 255]]. Prediction: g exactly (score 0.9).
    hist: (1,1) 1, (2,2) 1, (0,0) 4, (1,0) 1 -> IoU background 4/5, head 1/2, torso 1.
    """
    png = str(tmp_path / "Category_ids" / "x.png")
    write_label_png(png, np.array([[1, 0, 0, 1], [2, 0, 0, 255]]))
    g = np.array([[1, 0, 0, 0], [2, 0, 0, 0]], dtype=np.uint8)
    record = {
        "file_name": "x.jpg",
        "height": 2,
        "width": 4,
        "image_id": "x",
        "part_taxonomy": "lr6",
        "sem_seg_file_name": png,
        "annotations": [_person(g)],
    }
    DatasetCatalog.register(dataset_name, lambda: [record])
    MetadataCatalog.get(dataset_name).set(thing_classes=["person"])
    ev = BodyPartParsingEvaluator(dataset_name, "lr6", distributed=False)
    inst = _instances((2, 4), [[0, 0, 1, 2]], [0.9], [[[1], [2]]])
    ev.process([{"image_id": "x"}], [{"instances": inst}])
    res = ev.evaluate()["parsing"]
    assert res["mIoU"] == pytest.approx(100 * (4 / 5 + 1 / 2 + 1) / 3)
    assert res["pixel_acc"] == pytest.approx(100 * 6 / 7)
    assert res["IoU-head"] == pytest.approx(50.0)
    assert res["APp50"] == 100.0 and res["PCP50"] == 100.0


def test_part_region_ap_as_pgn_defines_it(dataset_name):  # noqa: F811
    """AP^r (METRICS.md section 5, PGN test_inst_part_ap.py) on a constructed case.

    2 x 4 image, lr6. GT g1: head (0,0),(0,1), torso (1,0),(1,1); g2: head (0,3), torso (1,3).
    Predictions: A 0.9 head (0,0); B 0.8 head (0,1); E 0.7 head (0,3),(1,3); D 0.6 torso on the
    2 x 2 box at columns 0-1. Pasted in ascending score (D, E, B, A): D keeps only row 1, so its
    region is g1's torso exactly (IoU 1; its own map's torso would have IoU 1/2).
    Regions: A head 1/(1+2-1) = 1/2 with g1, B head 1/2, E head 1/(2+1-1) = 1/2 with g2, D torso 1.
    GT regions: head 2, torso 2.
    head, ranked A, B, E: t <= .4 three TPs (GT regions are not marked used): recall 1/2, 1, 3/2,
    precision 1 -> AP 3/2 (the reference's recall > 1 quirk); t >= .5 three FPs -> 0.
    torso: D TP at every t, recall 1/2 -> AP 1/2.
    APr_t = (3/2 + 1/2) / 2 = 1 for t <= .4, (0 + 1/2) / 2 = 1/4 for t >= .5 -> vol 7/12.
    """
    g1 = np.array([[1, 1, 0, 0], [2, 2, 0, 0]], dtype=np.uint8)
    g2 = np.array([[0, 0, 0, 1], [0, 0, 0, 2]], dtype=np.uint8)
    record = {
        "file_name": "r.jpg",
        "height": 2,
        "width": 4,
        "image_id": 7,
        "part_taxonomy": "lr6",
        "annotations": [_person(g1), _person(g2)],
    }
    DatasetCatalog.register(dataset_name, lambda: [record])
    MetadataCatalog.get(dataset_name).set(thing_classes=["person"])
    ev = BodyPartParsingEvaluator(dataset_name, "lr6", distributed=False)
    inst = Instances((2, 4))
    boxes = [[0, 0, 1, 1], [1, 0, 2, 1], [3, 0, 4, 2], [0, 0, 2, 2]]
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    # M = 2 for every box (the 1 x 1 boxes: all four ROI cells one label)
    rois = [[[1, 1], [1, 1]], [[1, 1], [1, 1]], [[1, 1], [1, 1]], [[2, 2], [2, 2]]]
    inst.pred_part_masks = F.one_hot(torch.tensor(rois), C).permute(0, 3, 1, 2).float()
    ev.process([{"image_id": 7}], [{"instances": inst}])
    res = ev.evaluate()["parsing"]
    assert res["APr50"] == pytest.approx(25.0)
    assert res["APr_vol"] == pytest.approx(100 * 7 / 12)


def test_mhp_v2_submission_protocol_by_hand(dataset_name):  # noqa: F811
    """AP_PERSON_MAPS "pasted" (MHP-v2's eval_submission.py) on the hand-computed case above:
    only the persons pasted into the image-level map (score >= 0.5: p1, p2, p3, q1) with their
    visible pixels; p3 lies entirely under p1 and has none, so it is left out, and p4 / q2 are not
    pasted. Ranked p1 .9, p2 .8, q1 .6 with the mIoUs of the full maps (all visible):
    t <= .5: TP TP TP -> AP 1; t = .6, .7: TP TP FP -> 2/3; t = .8, .9: FP TP FP -> 1/6.
    APp_vol = (5 + 2 * 2/3 + 2 * 1/6) / 9 = 20/27 (Parsing R-CNN's "full": 25/36); PCP50 2/3 as
    there (the same three matches)."""
    DatasetCatalog.register(dataset_name, _records)
    MetadataCatalog.get(dataset_name).set(thing_classes=["person"], part_taxonomy="fine_lr")
    results = {}
    for maps in ("full", "pasted"):
        evaluator = BodyPartParsingEvaluator(
            dataset_name, "lr6", distributed=False, ap_person_maps=maps
        )
        for inp, out in _outputs():
            evaluator.process([inp], [out])
        results[maps] = evaluator.evaluate()["parsing"]
    pasted, full = results["pasted"], results["full"]
    assert pasted["APp50"] == pytest.approx(100.0)
    assert pasted["APp_vol"] == pytest.approx(100 * 20 / 27)
    assert pasted["PCP50"] == pytest.approx(100 * 2 / 3)
    assert full["APp50"] == pytest.approx(100 * 11 / 12)
    assert full["APp_vol"] == pytest.approx(100 * 25 / 36)
    for key in ("mIoU", "pixel_acc", "APr50", "APr_vol"):  # not touched by the setting
        assert pasted[key] == pytest.approx(full[key], abs=1e-12), key
