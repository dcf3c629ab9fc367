"""PartPanopticEvaluator: ground truth from records, PQ / PartPQ end to end on the synthetic split
(perfect and perturbed predictions built from the ground truth files), the written panoptic-parts
files re-evaluated by the package, and errors."""

import json
import logging
import math
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from _helpers import dataset_name, parts_from_map, remove_dataset  # noqa: F401  (fixture)
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils import comm
from PIL import Image
from test_partpq import needs_package

from bodyparts import add_bodyparts_config
from bodyparts.data.contract import encode_mask
from bodyparts.data.datasets.synthetic import register_synthetic_people
from bodyparts.data.panoptic_mapper import read_panoptic_ids
from bodyparts.evaluation import (
    PartPanopticEvaluator,
    SceneClasses,
    build_part_panoptic_evaluator,
    evaluate_with_panoptic_parts,
)
from bodyparts.evaluation.panoptic_parts_check import encode_uids

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ----------------------------------------------------------------------------- a hand-made dataset

# 4 x 6 panoptic ids: 1 person with parts, 2 person without part annotation, 3 crowd person,
# 4 car, 1000 sky, 1001 crowd wall (-> void), 0 unlabeled (-> void)
PAN_IDS = np.array(
    [
        [1000, 1000, 1000, 1000, 1001, 1001],
        [1, 1, 2, 2, 3, 3],
        [1, 1, 2, 2, 3, 4],
        [0, 0, 4, 4, 4, 4],
    ]
)
SEGMENTS = [
    {"id": 1, "category_id": 0, "iscrowd": 0, "isthing": True},
    {"id": 2, "category_id": 0, "iscrowd": 0, "isthing": True},
    {"id": 3, "category_id": 0, "iscrowd": 1, "isthing": True},
    {"id": 4, "category_id": 1, "iscrowd": 0, "isthing": True},
    {"id": 1000, "category_id": 1, "iscrowd": 0, "isthing": False},
    {"id": 1001, "category_id": 2, "iscrowd": 1, "isthing": False},
]
# person 1 in fine_lr: head at (1, 0), torso at (1, 1) and (2, 0), (2, 1) without part label
PERSON1_PARTS = np.array([[0] * 6, [1, 2, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0], [0] * 6], dtype=np.uint8)
EXPECTED_SEM = [[2, 2, 2, 2, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 5], [0, 0, 5, 5, 5, 5]]
EXPECTED_INST = [[0, 0, 0, 0, 0, 0], [1, 1, 2, 2, 0, 0], [1, 1, 2, 2, 0, 1], [0, 0, 1, 1, 1, 1]]
EXPECTED_PART = [[0] * 6, [1, 2, 0, 0, 0, 0], [2, 0, 0, 0, 0, 0], [0] * 6]


def _write_pan_png(path, ids):
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])


def _person(mask, parts=None, iscrowd=0):
    ys, xs = np.nonzero(mask)
    ann = {
        "bbox": [
            float(xs.min()),
            float(ys.min()),
            float(xs.max() - xs.min() + 1),
            float(ys.max() - ys.min() + 1),
        ],
        "bbox_mode": 1,
        "category_id": 0,
        "iscrowd": iscrowd,
        "segmentation": encode_mask(mask),
    }
    if parts is not None:
        ann["parts"] = parts_from_map(parts)
    return ann


@pytest.fixture
def hand_dataset(dataset_name, tmp_path):  # noqa: F811
    png = tmp_path / "pan.png"
    _write_pan_png(png, PAN_IDS)
    record = {
        "file_name": str(tmp_path / "img.jpg"),
        "height": 4,
        "width": 6,
        "image_id": "a/1",
        "part_taxonomy": "fine_lr",
        "pan_seg_file_name": str(png),
        "segments_info": SEGMENTS,
        "annotations": [
            _person(PAN_IDS == 1, PERSON1_PARTS),
            _person(PAN_IDS == 2),  # no part annotation
            _person(PAN_IDS == 3, iscrowd=1),
        ],
    }
    DatasetCatalog.register(dataset_name, lambda: [record])
    MetadataCatalog.get(dataset_name).set(
        thing_classes=["person", "car"],
        stuff_classes=["things", "sky", "wall"],
        thing_scene_ids=[1, 5],
        stuff_scene_ids=[-1, 2, 3],
        part_taxonomy="fine_lr",
    )
    return dataset_name


def _hand_outputs():
    """Exact segments, plus a person over the crowd region and a wall over the void crowd wall;
    person 1's part at (1, 1) predicted head (1) instead of torso."""
    ids = np.array(
        [[5, 5, 5, 5, 6, 6], [1, 1, 2, 2, 3, 3], [1, 1, 2, 2, 3, 4], [0, 0, 4, 4, 4, 4]],
        dtype=np.int32,
    )
    segments = [
        {"id": 1, "isthing": True, "category_id": 0, "instance_id": 0, "score": 0.9},
        {"id": 2, "isthing": True, "category_id": 0, "instance_id": 1, "score": 0.9},
        {"id": 3, "isthing": True, "category_id": 0, "instance_id": 2, "score": 0.9},
        {"id": 4, "isthing": True, "category_id": 1, "instance_id": 3, "score": 0.9},
        {"id": 5, "isthing": False, "category_id": 1},
        {"id": 6, "isthing": False, "category_id": 2},
    ]
    sem = np.array(
        [[2, 2, 2, 2, 3, 3], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 5], [255, 255, 5, 5, 5, 5]]
    )
    inst = np.array(
        [[0, 0, 0, 0, 0, 0], [1, 1, 2, 2, 3, 3], [1, 1, 2, 2, 3, 1], [255, 255, 1, 1, 1, 1]]
    )
    part = np.full((4, 6), 255)
    part[1:3, 0:2] = [[1, 1], [2, 7]]  # (2, 1): undefined in the ground truth, not evaluated
    part[1:3, 2:4] = 4
    part[1:3, 4:6] = 3
    part[2, 5] = 255
    pp = torch.as_tensor(np.stack([sem, inst, part], axis=-1).astype(np.uint8))
    return {"panoptic_seg": (torch.as_tensor(ids), segments), "part_panoptic": pp}


def test_ground_truth_from_records(hand_dataset):
    ev = PartPanopticEvaluator(hand_dataset, "fine_lr", distributed=False)
    sem, inst, part = ev.ground_truth("a/1")
    np.testing.assert_array_equal(sem, EXPECTED_SEM)  # crowd wall and unlabeled: void 0
    np.testing.assert_array_equal(inst, EXPECTED_INST)  # crowd person: instance 0
    np.testing.assert_array_equal(part, EXPECTED_PART)  # person 2 (no parts) and crowd: 0
    uids = encode_uids(sem, inst, part, ev._classes)
    # sid, sid*1000 + iid, sid*100000 + iid*100 + pid
    expected = [
        [2, 2, 2, 2, 0, 0],
        [100101, 100102, 1002, 1002, 1, 1],
        [100102, 1001, 1002, 1002, 1, 5001],
        [0, 0, 5001, 5001, 5001, 5001],
    ]
    np.testing.assert_array_equal(uids, expected)
    assert uids.dtype == np.int32


def test_hand_dataset_pq_partpq_and_files(hand_dataset, tmp_path):
    ev = PartPanopticEvaluator(hand_dataset, "fine_lr", distributed=False, output_dir=str(tmp_path))
    ev.process([{"image_id": "a/1"}], [_hand_outputs()])
    res = ev.evaluate()
    pq, ppq = res["panoptic_seg"], res["part_panoptic"]
    # PQ: persons 1, 2, car, sky exact (IoU 1); the person on the crowd region and the wall on the
    # void are no FP; wall has neither ground truth nor FP -> not counted
    assert (
        pq["PQ"]
        == pq["PQ_th"]
        == pq["PQ_st"]
        == pq["PQ-person"]
        == pq["PQ-car"]
        == pq["PQ-sky"]
        == 100
    )
    assert math.isnan(pq["PQ-wall"])
    # PartPQ: person 2 has no part labels -> crowd (its exact prediction: no FP, no FN).
    # Person 1: evaluated = 24 - 4 void - 7 person crowd - 1 undefined = 12 pixels:
    # (1,1), (2,1), (2,2), (0,0) x 9 -> IoU_0 = 1, IoU_1 = 1/2, IoU_2 = 1/2 -> mIoU 2/3
    assert ppq["PartPQ-person"] == pytest.approx(200 / 3)
    assert ppq["PartPQ_parts"] == pytest.approx(200 / 3) and ppq["PartSQ_parts"] == pytest.approx(
        200 / 3
    )
    assert ppq["PartPQ_noparts"] == ppq["PartPQ-car"] == ppq["PartPQ-sky"] == 100
    assert ppq["PartPQ"] == pytest.approx((200 / 3 + 200) / 3)
    assert ppq["PartRQ"] == 100
    files = os.path.join(tmp_path, "part_panoptic")
    images = json.load(open(os.path.join(files, "images.json")))["images"]
    assert images == [{"id": "/a_1.", "image_id": "a/1", "file_name": "a_1"}]
    tif = np.array(Image.open(os.path.join(files, "gt", "a_1.tif")))
    assert tif.dtype == np.int32 and tif[1, 0] == 100101 and tif[2, 5] == 5001
    pred = np.array(Image.open(os.path.join(files, "pred", "a_1.png")))
    np.testing.assert_array_equal(pred, _hand_outputs()["part_panoptic"].numpy())
    pred_pq = np.array(Image.open(os.path.join(files, "pred_pq", "a_1.png")))
    assert pred_pq[0, 4].tolist() == [3, 0, 255] and pred_pq[3, 0].tolist() == [255, 255, 255]
    assert pred_pq[1, 4].tolist() == [1, 3, 255]  # third person of the image
    if needs_package.args[0]:
        return
    package = evaluate_with_panoptic_parts(files)
    for task in ("panoptic_seg", "part_panoptic"):
        _assert_same(package[task], res[task])
    with pytest.raises(ValueError, match="at least 5 images per process; got 1 images"):
        evaluate_with_panoptic_parts(files, official=True)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert (math.isnan(a[k]) and math.isnan(b[k])) or a[k] == pytest.approx(b[k], abs=1e-9), k


# ----------------------------------------------------------------------------- the synthetic split


@pytest.fixture(scope="module")
def synthetic(datasets_root):
    names = register_synthetic_people(
        datasets_root, num_train=1, num_val=6, image_size=64, prefix="pq_eval_test"
    )
    yield names[1]
    for n in names:
        remove_dataset(n)


def _outputs_from_gt(records, drop=None, void_parts=None, with_parts=True):
    """Predictions copied from the ground-truth files (pan PNG, image-level part PNG): person k of
    image i is instance k + 1. ``drop`` = (image index, person id) is left out, ``void_parts`` =
    (image index, person id) gets part 255 everywhere."""
    pairs = []
    for i, rec in enumerate(records):
        ids = read_panoptic_ids(rec).astype(np.int32)
        parts = cv2.imread(rec["sem_seg_file_name"], cv2.IMREAD_UNCHANGED).astype(np.int64)
        segments, sem = [], np.full(ids.shape, 255)
        inst, part = np.full(ids.shape, 255), np.full(ids.shape, 255)
        for seg in rec["segments_info"]:
            m = ids == seg["id"]
            if (i, seg["id"]) == drop:
                ids[m] = 0
                continue
            segments.append(
                {"id": seg["id"], "isthing": seg["isthing"], "category_id": seg["category_id"]}
            )
            sem[m] = 1 if seg["isthing"] else 1 + seg["category_id"]
            inst[m] = seg["id"] if seg["isthing"] else 0
            if seg["isthing"]:
                part[m] = 255 if (i, seg["id"]) == void_parts else parts[m]
        out = {"panoptic_seg": (torch.as_tensor(ids), segments)}
        if with_parts:
            out["part_panoptic"] = torch.as_tensor(
                np.stack([sem, inst, part], axis=-1).astype(np.uint8)
            )
        pairs.append(({"image_id": rec["image_id"]}, out))
    return pairs


def _run(dataset, pairs, **kwargs):
    ev = PartPanopticEvaluator(dataset, "fine_lr", distributed=False, **kwargs)
    for inp, out in pairs:
        ev.process([inp], [out])
    return ev.evaluate()


def test_perfect_predictions_score_100(synthetic):
    res = _run(synthetic, _outputs_from_gt(DatasetCatalog.get(synthetic)))
    for task, metric in (("panoptic_seg", "PQ"), ("part_panoptic", "PartPQ")):
        for k, v in res[task].items():
            assert v == pytest.approx(100.0), (task, k)
    assert set(res["timing"]) == {"seconds_per_image", "total_seconds_per_image"}
    assert 0 < res["timing"]["seconds_per_image"] <= res["timing"]["total_seconds_per_image"]


@pytest.fixture(scope="module")
def perturbed(synthetic, tmp_path_factory):
    """Image 0 loses person 1, person 2 of image 1 gets no part labels (all 255); evaluated with
    files written."""
    records = DatasetCatalog.get(synthetic)
    out_dir = str(tmp_path_factory.mktemp("pq_out"))
    res = _run(
        synthetic, _outputs_from_gt(records, drop=(0, 1), void_parts=(1, 2)), output_dir=out_dir
    )
    return records, res, os.path.join(out_dir, "part_panoptic")


def test_perturbed_predictions_known_drop(perturbed):
    records, res, _ = perturbed
    person_ids = [
        np.unique(ids[(ids > 0) & (ids < 1000)]) for ids in map(read_panoptic_ids, records)
    ]
    n = sum(len(p) for p in person_ids)  # visible persons (ids 1..999; stuff is 1000 + k)
    ids1 = read_panoptic_ids(records[1])
    parts1 = cv2.imread(records[1]["sem_seg_file_name"], cv2.IMREAD_UNCHANGED)
    k = len(np.unique(parts1[(ids1 == 2) & (parts1 > 0)]))  # part labels of the void-part person
    assert n >= 6 and k >= 3
    # PQ: one FN person, the others exact: (n - 1) / (n - 1 + 0.5); stuff exact
    assert res["panoptic_seg"]["PQ-person"] == pytest.approx(100 * (n - 1) / (n - 0.5))
    assert res["panoptic_seg"]["PQ_st"] == 100
    assert res["panoptic_seg"]["PQ"] == pytest.approx((100 * (n - 1) / (n - 0.5) + 300) / 4)
    # PartPQ: the void-part person's labels 1..k have IoU 0, label 0 IoU 1, 255 dropped -> 1/(1+k)
    expected = 100 * (n - 2 + 1 / (1 + k)) / (n - 0.5)
    assert res["part_panoptic"]["PartPQ-person"] == pytest.approx(expected)
    assert res["part_panoptic"]["PartSQ_parts"] == pytest.approx(
        100 * (n - 2 + 1 / (1 + k)) / (n - 1)
    )
    assert res["part_panoptic"]["PartPQ_noparts"] == 100


@needs_package
def test_written_files_give_our_numbers_with_the_package(perturbed):
    _, res, files = perturbed
    package = evaluate_with_panoptic_parts(files)
    for task in ("panoptic_seg", "part_panoptic"):
        _assert_same(package[task], res[task])
    assert package["timing"]["package_seconds_per_image"] > 0
    in_two_processes = evaluate_with_panoptic_parts(files, processes=2)
    for task in ("panoptic_seg", "part_panoptic"):
        _assert_same(in_two_processes[task], res[task])
    # the package's own entry point, evaluate_PartPQ_multicore (6 images, 1 process)
    official = evaluate_with_panoptic_parts(files, processes=1, official=True)
    assert list(official) == ["part_panoptic", "timing"]
    _assert_same(official["part_panoptic"], res["part_panoptic"])


@needs_package
def test_evaluator_runs_the_package_on_request(synthetic, tmp_path):
    pairs = _outputs_from_gt(DatasetCatalog.get(synthetic), drop=(0, 1), void_parts=(1, 2))
    log, messages = logging.getLogger("bodyparts.evaluation.panoptic_evaluation"), []
    handler, level = logging.Handler(logging.INFO), log.level
    handler.emit = lambda record: messages.append(record.getMessage())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        res = _run(synthetic, pairs, output_dir=str(tmp_path), run_panoptic_parts=True)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert res["timing"]["package_seconds_per_image"] > 0
    assert any("max |difference| of the metrics 0 (percent points)" in m for m in messages)


@needs_package
def test_command_line_tool(perturbed):
    _, res, files = perturbed
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "eval_part_panoptic.py"), files],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    package = json.loads(out.stdout)
    for task in ("panoptic_seg", "part_panoptic"):
        _assert_same(package[task], res[task])


def test_plain_panoptic_model_has_no_partpq(synthetic, tmp_path):
    records = DatasetCatalog.get(synthetic)
    res = _run(
        synthetic,
        _outputs_from_gt(records, drop=(0, 1), with_parts=False),
        output_dir=str(tmp_path),
    )
    assert list(res) == ["panoptic_seg", "timing"]
    files = tmp_path / "part_panoptic"
    assert (files / "pred_pq").is_dir() and not (files / "pred").exists()
    if not needs_package.args[0]:
        package = evaluate_with_panoptic_parts(str(files))
        assert list(package) == ["panoptic_seg", "timing"]
        _assert_same(package["panoptic_seg"], res["panoptic_seg"])


def test_gather_two_ranks(synthetic, monkeypatch):
    pairs = _outputs_from_gt(DatasetCatalog.get(synthetic), drop=(0, 1))
    ranks = [PartPanopticEvaluator(synthetic, "fine_lr") for _ in range(2)]
    for r, (inp, out) in enumerate(pairs):
        ranks[r % 2].process([inp], [out])
    monkeypatch.setattr(comm, "synchronize", lambda: None)
    monkeypatch.setattr(comm, "gather", lambda data, dst=0: [ranks[0]._stats, ranks[1]._stats])
    monkeypatch.setattr(comm, "is_main_process", lambda: True)
    res = ranks[0].evaluate()
    single = _run(synthetic, pairs)
    _assert_same(res["panoptic_seg"], single["panoptic_seg"])
    _assert_same(res["part_panoptic"], single["part_panoptic"])
    monkeypatch.setattr(comm, "is_main_process", lambda: False)
    assert ranks[1].evaluate() == {}


def test_builder_reads_the_config(synthetic):
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.BODYPARTS.PART_TAXONOMY = "fine_lr"
    pairs = _outputs_from_gt(DatasetCatalog.get(synthetic), void_parts=(1, 2))
    ev = build_part_panoptic_evaluator(cfg, synthetic, None)
    assert (
        isinstance(ev, PartPanopticEvaluator)
        and ev._distributed
        and ev._classes.parts == (True, False, False, False)
    )
    cfg.MODEL.BODYPART_PANOPTIC.PART_THING_IDS = []  # no class with parts: PartPQ is PQ
    ev = build_part_panoptic_evaluator(cfg, synthetic, None)
    ev._distributed = False
    ev.process(*zip(*pairs))
    res = ev.evaluate()
    assert res["part_panoptic"]["PartPQ"] == res["panoptic_seg"]["PQ"] == 100
    assert math.isnan(res["part_panoptic"]["PartPQ_parts"])


def test_errors_name_the_problem(hand_dataset, synthetic):
    ev = PartPanopticEvaluator(hand_dataset, "fine_lr", distributed=False)
    good = _hand_outputs()
    with pytest.raises(KeyError, match="not in dataset"):
        ev.process([{"image_id": "nope"}], [good])
    with pytest.raises(KeyError, match="no 'panoptic_seg'"):
        ev.process([{"image_id": "a/1"}], [{"part_panoptic": good["part_panoptic"]}])
    with pytest.raises(ValueError, match=r"panoptic_seg of shape \(2, 6\)"):
        ev.process(
            [{"image_id": "a/1"}],
            [{"panoptic_seg": (good["panoptic_seg"][0][:2], good["panoptic_seg"][1])}],
        )
    with pytest.raises(
        ValueError, match=r"segment ids \[6\] are in the map but not in segments_info"
    ):
        ev.process(
            [{"image_id": "a/1"}],
            [{"panoptic_seg": (good["panoptic_seg"][0], good["panoptic_seg"][1][:5])}],
        )
    with pytest.raises(ValueError, match=r"part_panoptic of shape \(4, 6\)"):
        ev.process([{"image_id": "a/1"}], [dict(good, part_panoptic=good["part_panoptic"][..., 0])])
    with pytest.raises(ValueError, match="PART_THING_IDS \\[2\\]"):
        PartPanopticEvaluator(hand_dataset, "fine_lr", part_thing_ids=[2])
    meta = MetadataCatalog.get(hand_dataset).as_dict()
    for key, value, message in (
        ("thing_scene_ids", [1, 500], r"scene ids \[1, 500, 2, 3\] .* must be unique and in 1..99"),
        ("stuff_scene_ids", [-1, 2], "stuff_scene_ids has 2 entries, stuff_classes 3"),
        ("stuff_scene_ids", None, "metadata has no 'stuff_scene_ids'"),
    ):
        MetadataCatalog.remove(hand_dataset)
        changed = {
            k: v for k, v in dict(meta, **{key: value}).items() if k != "name" and v is not None
        }
        MetadataCatalog.get(hand_dataset).set(**changed)
        with pytest.raises(ValueError, match=message):
            PartPanopticEvaluator(hand_dataset, "fine_lr")


def test_uid_format_limits():
    classes = SceneClasses(("person", "sky"), (1, 2), (True, False), (True, False))
    one = np.ones((1, 2), dtype=np.int64)
    # parts are written for classes with parts only, crowd (instance 0) as the bare scene id
    uids = encode_uids(np.array([[1, 2]]), np.array([[0, 7]]), np.array([[5, 5]]), classes)
    np.testing.assert_array_equal(uids, [[1, 2007]])
    with pytest.raises(ValueError, match="instance id 1000 exceeds the uid format's limit 999"):
        encode_uids(one, one * 1000, one, classes)
    with pytest.raises(ValueError, match="part id 100 exceeds the uid format's limit 99"):
        encode_uids(one, one, one * 100, classes)
    big = SceneClasses(("person",), (120,), (True,), (False,))
    with pytest.raises(ValueError, match="scene id 120 exceeds the uid format's limit 99"):
        encode_uids(one * 120, one, one, big)


def test_records_without_panoptic_ground_truth_are_rejected(dataset_name):  # noqa: F811
    DatasetCatalog.register(
        dataset_name,
        lambda: [{"file_name": "x.jpg", "height": 2, "width": 2, "image_id": 7, "annotations": []}],
    )
    MetadataCatalog.get(dataset_name).set(
        thing_classes=["person"],
        stuff_classes=["things"],
        thing_scene_ids=[1],
        stuff_scene_ids=[-1],
        part_taxonomy="fine_lr",
    )
    with pytest.raises(ValueError, match="image 7: no 'pan_seg_file_name'"):
        PartPanopticEvaluator(dataset_name, "fine_lr")
