"""The synthetic people dataset on disk: deterministic, disjoint splits, consistent ground truth."""

import filecmp
import json
import os

import cv2
import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from bodyparts.data.contract import decode_rle, part_label_map, validate_record
from bodyparts.data.datasets.synthetic import (
    STUFF_ID_OFFSET,
    generate_synthetic_split,
    register_synthetic_people,
    scene_seed,
)
from bodyparts.taxonomy import FINE_LR


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("synth"))
    json_file = generate_synthetic_split(root, "train", 6, image_size=96, seed=3, max_persons=4)
    return root, json_file


def test_deterministic(split, tmp_path):
    root, json_file = split
    again = generate_synthetic_split(
        str(tmp_path), "train", 6, image_size=96, seed=3, max_persons=4
    )
    assert filecmp.cmp(json_file, again, shallow=False)
    d1, d2 = os.path.dirname(json_file), os.path.dirname(again)
    for sub in ("images", "sem_seg", "panoptic"):
        names = sorted(os.listdir(os.path.join(d1, sub)))
        assert len(names) == 6 and names == sorted(os.listdir(os.path.join(d2, sub)))
        _, mismatch, errors = filecmp.cmpfiles(
            os.path.join(d1, sub), os.path.join(d2, sub), names, shallow=False
        )
        assert not mismatch and not errors


def test_second_call_reuses_files(split):
    root, json_file = split
    mtime = os.path.getmtime(json_file)
    assert (
        generate_synthetic_split(root, "train", 6, image_size=96, seed=3, max_persons=4)
        == json_file
    )
    assert os.path.getmtime(json_file) == mtime


def test_train_and_val_never_share_a_scene():
    train = {scene_seed(0, "train", i) for i in range(0, 500_000, 997)}
    val = {scene_seed(0, "val", i) for i in range(0, 500_000, 997)}
    assert not train & val
    assert max(scene_seed(0, "train", i) for i in (0, 499_999)) < min(
        scene_seed(0, "val", i) for i in (0, 1)
    )
    with pytest.raises(ValueError, match="split"):
        scene_seed(0, "test", 0)


def _records(split):
    from bodyparts.data.datasets.generic import load_bodyparts_json

    root, json_file = split
    return load_bodyparts_json(json_file, os.path.dirname(json_file))


def test_ground_truth_consistent(split):
    records = _records(split)
    assert len(records) == 6
    n_persons = [len(r["annotations"]) for r in records]
    assert all(1 <= n <= 4 for n in n_persons)
    for rec in records:
        validate_record(rec, num_classes=1, num_parts=FINE_LR.num_parts, keypoint_names=["k"] * 17)
        h, w = rec["height"], rec["width"]
        assert (h, w) == (96, 96) and rec["part_taxonomy"] == "fine_lr"
        taken = np.zeros((h, w), dtype=bool)
        sem = np.zeros((h, w), dtype=np.uint8)
        for ann in rec["annotations"]:
            sil = decode_rle(ann["segmentation"]).astype(bool)
            parts = part_label_map(ann, h, w)
            # part pixels + background partition the person exactly: parts == silhouette
            assert np.array_equal(parts > 0, sil)
            assert not (taken & sil).any(), "persons overlap"
            taken |= sil
            sem[sil] = parts[sil]
            ys, xs = np.nonzero(sil)
            x0, y0, bw, bh = ann["bbox"]
            assert ann["bbox_mode"] == BoxMode.XYWH_ABS
            assert (x0, y0, x0 + bw, y0 + bh) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            kps = np.array(ann["keypoints"]).reshape(17, 3)
            vis = kps[:, 2] == 2
            # visible joints lie on the person (hence inside its box)
            for x, y, _ in kps[vis]:
                assert sil[int(y), int(x)]
                assert x0 <= x <= x0 + bw and y0 <= y <= y0 + bh
            assert np.all(kps[kps[:, 2] == 0, :2] == 0)
        png = cv2.imread(rec["sem_seg_file_name"], cv2.IMREAD_UNCHANGED)
        assert np.array_equal(png, sem)
        pan = cv2.imread(rec["pan_seg_file_name"], cv2.IMREAD_COLOR)[:, :, ::-1].astype(np.int64)
        ids = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
        seg_ids = {s["id"]: s for s in rec["segments_info"]}
        assert set(np.unique(ids)) == set(seg_ids)
        for k, ann in enumerate(rec["annotations"]):
            assert seg_ids[k + 1]["isthing"] and seg_ids[k + 1]["category_id"] == 0
            assert np.array_equal(ids == k + 1, decode_rle(ann["segmentation"]).astype(bool))
        stuff = {i: s for i, s in seg_ids.items() if i >= STUFF_ID_OFFSET}
        assert all(not s["isthing"] for s in stuff.values())
        # the file indexes STUFF_CLASSES; registered splits shift to stuff_classes (0 = "things")
        assert all(s["category_id"] == i - STUFF_ID_OFFSET for i, s in stuff.items())


def test_generic_file_is_coco_compatible(split):
    from pycocotools.coco import COCO

    _, json_file = split
    coco = COCO(json_file)
    assert coco.getCatIds() == [1]
    ann = coco.loadAnns(coco.getAnnIds())[0]
    assert coco.annToMask(ann).sum() == ann["area"]
    with open(json_file) as f:
        info = json.load(f)["info"]
    assert info["part_taxonomy"] == "fine_lr" and info["seed"] == 3


def test_registration_and_metadata(tmp_path):
    names = register_synthetic_people(
        str(tmp_path), num_train=3, num_val=2, image_size=64, seed=1, prefix="test_synth_reg"
    )
    try:
        assert names == ["test_synth_reg_train", "test_synth_reg_val"]
        assert not os.path.exists(os.path.join(tmp_path, "bodyparts_synthetic")), (
            "registration must be lazy"
        )
        assert len(DatasetCatalog.get("test_synth_reg_val")) == 2
        meta = MetadataCatalog.get("test_synth_reg_train")
        assert meta.thing_classes == ["person"] and meta.part_taxonomy == "fine_lr"
        assert meta.evaluator_type == "bodyparts" and meta.data_format == "bodyparts"
        assert len(meta.keypoint_names) == 17
        # flip pairs are valid: both names exist, and left/right of the same body part
        for a, b in meta.part_flip_pairs:
            assert a.startswith("left_") and b == "right_" + a[len("left_") :]
            assert a in meta.part_names and b in meta.part_names
        for a, b in meta.keypoint_flip_map:
            assert a.replace("left", "right") == b
        # re-registering with other settings replaces the split
        register_synthetic_people(
            str(tmp_path), num_train=3, num_val=1, image_size=64, seed=1, prefix="test_synth_reg"
        )
        assert len(DatasetCatalog.get("test_synth_reg_val")) == 1
    finally:
        for n in names:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)


def test_bad_size_rejected(tmp_path):
    with pytest.raises(ValueError, match="num_images"):
        generate_synthetic_split(str(tmp_path), "train", 0)
