"""MHP-v2 native loader against fixtures whose every value is known by construction.

The fixture (tests/fixtures/mhp_v2.py) paints each person's labels as rectangles into its own
full-size PNG (3-channel, grayscale or palette), with known pose rows per person.
"""

import importlib.util
import json
import logging
import os
import shutil
import time

import numpy as np
import pytest
import scipy.io
import torch
from conftest import REPO
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from fixtures import mhp_v2 as fx

from bodyparts.data.contract import decode_rle, image_part_map, part_label_map
from bodyparts.data.datasets.mhp_v2 import (
    load_mhp_v2,
    parse_person_file_name,
    register_all_mhp_v2,
)
from bodyparts.data.datasets.native import DatasetFormatError, LoadReport
from bodyparts.data.mappers import BodyPartsDatasetMapper, keypoint_hflip_indices
from bodyparts.taxonomy import (
    MHP59,
    MHP_KEYPOINTS,
    TaxonomyError,
    can_express,
    get_keypoint_taxonomy,
    get_part_taxonomy,
    keypoint_index_map,
    mapping_lut,
)

LOGGER = "bodyparts.data.datasets.mhp_v2"

# The official README's order (checked against M2FP's register_mhpv2_parsing.py): label -> name
OFFICIAL = {
    1: "cap_hat",
    2: "helmet",
    3: "face",
    4: "hair",
    5: "left_arm",
    6: "right_arm",
    7: "left_hand",
    8: "right_hand",
    9: "protector",
    10: "bikini_bra",
    11: "jacket_windbreaker_hoodie",
    12: "t_shirt",
    16: "torso_skin",
    17: "pants",
    18: "shorts_swim_shorts",
    21: "socks",
    22: "left_boot",
    29: "right_sandal",
    30: "left_leg",
    31: "right_leg",
    32: "left_foot",
    33: "right_foot",
    34: "coat",
    35: "dress",
    37: "jumpsuit",
    38: "other_full_body_clothes",
    39: "headwear",
    47: "sunglasses",
    48: "eyewear",
    49: "glove",
    55: "tie",
    56: "other_accessary",
    57: "other_upper_body_clothes",
    58: "other_lower_body_clothes",
}


@pytest.fixture(scope="module")
def mhp_root(tmp_path_factory):
    """The standard fixture, read-only (tests that modify files write their own)."""
    return fx.write_mhp_v2_fixture(str(tmp_path_factory.mktemp("mhp")))


def _fresh(tmp_path):
    return fx.write_mhp_v2_fixture(str(tmp_path))


def _by_id(records):
    return {r["image_id"]: r for r in records}


# ---- taxonomies


def test_label_order_and_flip_pairs():
    assert MHP59.num_parts == 58 and get_part_taxonomy("mhp59") is MHP59
    for label, name in OFFICIAL.items():
        assert MHP59.label_of(name) == label
    pairs = [(MHP59.label_of(a), MHP59.label_of(b)) for a, b in MHP59.flip_pairs]
    # Parsing R-CNN's and M2FP's FLIP_MAP for MHP-v2
    assert pairs == [(5, 6), (7, 8), (22, 23), (24, 25), (26, 27), (28, 29), (30, 31), (32, 33)]
    lut = MHP59.flip_lut()
    assert lut[5] == 6 and lut[33] == 32 and lut[3] == 3 and lut[17] == 17  # face, pants stay
    assert (lut[lut] == np.arange(59)).all()


def test_lr6_mapping_ignores_clothes():
    """Only lr6 is expressed: skin, head gear and sided footwear map to their lr6 part, every label
    that covers several lr6 parts or has no side (a t-shirt holds torso and sleeves, pants both
    legs, gloves) maps to 255 (ignored), never to background; fine_lr and ppp6 (upper/lower limbs)
    are start-up errors naming the missing parts."""
    assert [t for t in ("fine_lr", "lr6", "ppp6") if can_express("mhp59", t)] == ["lr6"]
    with pytest.raises(
        TaxonomyError,
        match=r"dataset 'mhp_v2_train'.*'mhp59' cannot express taxonomy 'fine_lr'.*'head'",
    ):
        mapping_lut("mhp59", "fine_lr", dataset="mhp_v2_train")
    lut = mapping_lut("mhp59", "lr6")
    lr6 = get_part_taxonomy("lr6")
    expected = {
        "cap_hat": "head",
        "face": "head",
        "hair": "head",
        "sunglasses": "head",
        "torso_skin": "torso",
        "singlet": "torso",
        "left_arm": "left_arm",
        "right_hand": "right_arm",
        "left_shoe": "left_leg",
        "right_highheel": "right_leg",
        "left_foot": "left_leg",
        "right_leg": "right_leg",
    }
    for part, target in expected.items():
        assert lut[MHP59.label_of(part)] == lr6.label_of(target), part
    for part in (
        "t_shirt",
        "pants",
        "dress",
        "coat",
        "glove",
        "socks",
        "backpack",
        "other_accessary",
    ):
        assert lut[MHP59.label_of(part)] == 255, part
    assert lut[0] == 0 and (lut != 0).sum() == 58  # no part falls to background
    assert (mapping_lut("mhp59", "mhp59") == np.arange(59)).all()


def test_keypoint_taxonomy_and_coco_mapping():
    kp = get_keypoint_taxonomy("mhp16")
    assert kp is MHP_KEYPOINTS and kp.num_keypoints == 16 == len(kp.oks_sigmas)
    # the annotation tool's row order (MPII's)
    assert kp.names[:6] == (
        "right_ankle",
        "right_knee",
        "right_hip",
        "left_hip",
        "left_knee",
        "left_ankle",
    )
    assert kp.names[6:10] == ("pelvis", "thorax", "upper_neck", "head_top")
    assert kp.names[10:] == (
        "right_wrist",
        "right_elbow",
        "right_shoulder",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
    )
    coco = get_keypoint_taxonomy("coco17")
    index = keypoint_index_map("mhp16", "coco17")
    assert (index >= 0).sum() == 12  # nose, eyes, ears have no MHP-v2 source
    assert (
        index[coco.names.index("left_ankle")] == 5 and index[coco.names.index("right_wrist")] == 10
    )
    assert index[coco.names.index("nose")] == -1
    flip = keypoint_hflip_indices("mhp16")
    assert flip[0] == 5 and flip[10] == 15 and flip[12] == 13 and flip[6] == 6  # pelvis stays


def test_person_file_names():
    assert parse_person_file_name("12345_03_02.png") == ("12345", 3, 2)
    assert parse_person_file_name("a_b_10_12.png") == ("a_b", 10, 12)
    assert parse_person_file_name("12345.png") is None
    assert parse_person_file_name("12345_03_02.jpg") is None


# ---- records against the construction


def test_known_persons_boxes_and_part_pixels(mhp_root):
    records = _by_id(load_mhp_v2(mhp_root, "train"))
    assert list(records) == ["1", "2", "3"]
    rec = records["1"]
    assert (rec["height"], rec["width"]) == (fx.H, fx.W) and rec["mhp_num_persons"] == 3
    assert rec["file_name"] == os.path.join(mhp_root, "train", "images", "1.jpg")
    assert rec["part_taxonomy"] == "mhp59" and rec["keypoint_taxonomy"] == "mhp16"
    expected = fx.expected_persons("1")
    assert len(rec["annotations"]) == 3 == len(expected)
    # one per PNG kind: 3-channel (labels in channel 0 only), grayscale, palette
    for ann, (_, labels) in zip(rec["annotations"], expected):
        assert ann["bbox_mode"] == BoxMode.XYWH_ABS and ann["category_id"] == 0
        assert (decode_rle(ann["segmentation"]).astype(bool) == (labels > 0)).all()
        assert (part_label_map(ann, fx.H, fx.W) == labels).all()
        assert ann["area"] == float((labels > 0).sum()) and ann["parts_complete"] is True
    # person A by hand: hair rows 4..8 x cols 10..19 (a part of it under the face), shoes 4 x 5
    a = rec["annotations"][0]
    assert a["bbox"] == [4.0, 4.0, 22.0, 50.0]  # x 4..25 (arms), y 4..53 (hair to shoes)
    areas = {lab: int(decode_rle(rle).sum()) for lab, rle in a["parts"].items()}
    assert areas == {
        fx.HAIR: 5 * 10 - 1 * 8,
        fx.FACE: 6 * 8,
        fx.T_SHIRT: 16 * 14,
        fx.R_ARM: 14 * 4,
        fx.R_HAND: 3 * 4,
        fx.L_ARM: 14 * 4,
        fx.L_HAND: 3 * 4,
        fx.PANTS: 20 * 12,
        fx.R_SHOE: 20,
        fx.L_SHOE: 20,
    }
    # the person's right shoe is on the image's left (the person faces the camera)
    assert decode_rle(a["parts"][fx.R_SHOE])[52, 10] == 1
    assert rec["annotations"][1]["bbox"] == [40.0, 10.0, 20.0, 50.0]
    assert rec["annotations"][2]["bbox"] == [68.0, 2.0, 18.0, 61.0]


def test_keypoints_flags_and_positions(mhp_root, caplog):
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        rec = _by_id(load_mhp_v2(mhp_root, "train", use_cache=False))["1"]
    a, b, c = rec["annotations"]
    kps = np.asarray(a["keypoints"], dtype=np.float64).reshape(16, 3)
    np.testing.assert_array_equal(kps, fx.EXPECTED_KEYPOINTS_1)
    assert "1 keypoints outside the image" in caplog.text  # left_ankle at x = 200
    r0, c0 = fx.PERSON_B[0][1][0], fx.PERSON_B[0][1][2]
    np.testing.assert_array_equal(
        np.asarray(b["keypoints"]).reshape(16, 3), [[c0 + 0.5, r0 + 0.5, 2]] * 16
    )
    assert c["keypoints"] is None  # the pose file has no person_2


def test_keypoints_outside_error(mhp_root):
    pose = os.path.join(mhp_root, "train", "pose_annos", "1.mat")
    with pytest.raises(
        DatasetFormatError,
        match=r"1\.mat: 'person_0' keypoint left_ankle at \(200\.5, 52\.5\) lies outside the 96x64",
    ):
        load_mhp_v2(mhp_root, "train", keypoints_outside="error", use_cache=False)
    assert os.path.isfile(pose)


def test_missing_person_file_empty_person_and_missing_pose(mhp_root, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        records = _by_id(load_mhp_v2(mhp_root, "train", use_cache=False))
    # image 2: NN = 3, no file for person 2: persons 1 and 3 are loaded, each with its own pose
    rec = records["2"]
    assert rec["mhp_num_persons"] == 3 and len(rec["annotations"]) == 2
    for ann, (kk, labels) in zip(rec["annotations"], fx.expected_persons("2")):
        assert (part_label_map(ann, fx.H, fx.W) == labels).all()
        rows = fx.POSES["2"][f"person_{kk - 1}"]
        assert ann["keypoints"][:2] == [rows[0, 0] + 0.5, rows[0, 1] + 0.5]
    assert "2: 1 of 3 person files missing (persons [2])" in caplog.text
    # image 3: person 2's file is all background (no person); no pose file (no keypoints)
    rec = records["3"]
    assert rec["mhp_num_persons"] == 2 and len(rec["annotations"]) == 1
    assert rec["annotations"][0]["keypoints"] is None
    assert (
        "3 images, 6 persons (2 without pose annotation); 2 images with fewer persons"
        in caplog.text
    )


def test_image_level_map_from_persons(mhp_root):
    """The semantic ground truth (contract.image_part_map) of image 1: every person's labels."""
    rec = _by_id(load_mhp_v2(mhp_root, "train"))["1"]
    semantic = image_part_map(rec["annotations"], fx.H, fx.W, np.arange(59, dtype=np.uint8))
    expected = np.zeros((fx.H, fx.W), dtype=np.uint8)
    for _, labels in fx.expected_persons("1"):
        expected = np.where(labels > 0, labels, expected)
    assert (semantic == expected).all()


# ---- broken files: errors naming the file, skips counted


def test_val_errors_name_the_file(mhp_root):
    with pytest.raises(
        DatasetFormatError,
        match=r"11_02_02\.png: label map is 64x90 \(H x W\) but its image is 64x96",
    ):
        load_mhp_v2(mhp_root, "val", use_cache=False)
    with pytest.raises(
        DatasetFormatError, match=r"12_02_01\.png: label value\(s\) \[60\] outside 0\.\.58"
    ):
        load_mhp_v2(
            mhp_root, "val", list_file=_list(mhp_root, "only12", ["10", "12"]), use_cache=False
        )


def _list(root, name, ids):
    path = os.path.join(root, "list", f"{name}.txt")
    with open(path, "w") as f:
        f.write("\n".join(ids) + "\n")
    return path


def test_on_error_skip_counts_cold_and_warm(tmp_path):
    root = _fresh(tmp_path)
    for expected_parsed in (3, 0):  # cold, then warm: the cache remembers the skips
        report = LoadReport()
        records = load_mhp_v2(root, "val", on_error="skip", report=report)
        assert [r["image_id"] for r in records] == ["10"]
        assert [k for k, _ in report.skipped] == ["11", "12"]
        assert "64x90" in report.skipped[0][1] and "[60]" in report.skipped[1][1]
        assert report.num_parsed == expected_parsed


def _truncate(path):
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _damage(root, case):
    """Break image 10 of the val split; returns the file the error must name."""
    val = os.path.join(root, "val")
    png1, png2 = (os.path.join(val, "parsing_annos", f"10_02_0{k}.png") for k in (1, 2))
    pose = os.path.join(val, "pose_annos", "10.mat")
    if case == "truncated_png":
        _truncate(png1)
        return png1, "not a readable PNG"
    if case == "nn_disagrees":
        os.rename(png2, os.path.join(val, "parsing_annos", "10_03_02.png"))
        return (
            os.path.join(val, "parsing_annos", "10_03_02.png"),
            "says 3 persons, but 10_02_01.png says 2",
        )
    if case == "kk_above_nn":
        os.rename(png2, os.path.join(val, "parsing_annos", "10_02_03.png"))
        return os.path.join(val, "parsing_annos", "10_02_03.png"), r"person index 3 outside 1\.\.2"
    if case == "no_person_file":
        os.remove(png1), os.remove(png2)
        return os.path.join(val, "parsing_annos", "10_<NN>_<KK>.png"), "no person annotation file"
    if case == "missing_image":
        os.remove(os.path.join(val, "images", "10.jpg"))
        return os.path.join(val, "images", "10.jpg"), "image file not found"
    if case == "pose_shape":
        scipy.io.savemat(pose, {"person_0": np.zeros((10, 3)), "person_1": np.zeros((20, 3))})
        return pose, r"'person_0' must be a numeric \(16 \+ 4, 3\) array"
    if case == "pose_flag":
        rows = fx.pose_rows(fx.PERSON_A)
        rows[3, 2] = 3
        scipy.io.savemat(pose, {"person_0": rows})
        return pose, r"'person_0' keypoint left_hip: expected finite x, y and a flag in 0/1/2"
    if case == "pose_unreadable":
        _truncate(pose)
        return pose, "cannot read MATLAB file"
    if case == "png_size":
        fx.write_person_png(png1, np.zeros((fx.H + 1, fx.W), np.uint8), "rgb")
        return png1, r"label map is 65x96 \(H x W\) but its image is 64x96"
    raise ValueError(case)


CASES = [
    "truncated_png",
    "nn_disagrees",
    "kk_above_nn",
    "no_person_file",
    "missing_image",
    "pose_shape",
    "pose_flag",
    "pose_unreadable",
    "png_size",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input(tmp_path, case):
    root = _fresh(tmp_path)
    ids = _list(root, "good", ["10"])
    bad_file, problem = _damage(root, case)
    with pytest.raises(DatasetFormatError, match=problem) as e:
        load_mhp_v2(root, "val", list_file=ids, use_cache=False)
    assert e.value.path == bad_file
    report = LoadReport()
    assert (
        load_mhp_v2(root, "val", list_file=ids, on_error="skip", use_cache=False, report=report)
        == []
    )
    assert [k for k, _ in report.skipped] == ["10"]


def test_missing_list_and_folders(tmp_path):
    root = _fresh(tmp_path)
    with pytest.raises(DatasetFormatError, match=r"list/test\.txt: split list file not found"):
        load_mhp_v2(root, "val", list_file=os.path.join(root, "list", "test.txt"))
    shutil.rmtree(os.path.join(root, "val", "parsing_annos"))
    with pytest.raises(DatasetFormatError, match=r"val: no person annotation folder"):
        load_mhp_v2(root, "val")
    with pytest.raises(ValueError, match="split must be one of"):
        load_mhp_v2(root, "test")
    with pytest.raises(ValueError, match="keypoints_outside"):
        load_mhp_v2(root, "train", keypoints_outside="drop")


def test_annotations_folder_of_the_evaluation_code(tmp_path, mhp_root):
    """``annotations/`` (the folder name in the official mhp_data.py) reads like parsing_annos/."""
    root = _fresh(tmp_path)
    os.rename(
        os.path.join(root, "train", "parsing_annos"), os.path.join(root, "train", "annotations")
    )
    renamed = load_mhp_v2(root, "train", use_cache=False)
    standard = load_mhp_v2(mhp_root, "train")
    assert [len(r["annotations"]) for r in renamed] == [len(r["annotations"]) for r in standard]
    for r, s in zip(renamed, standard):
        for a, b in zip(r["annotations"], s["annotations"]):
            assert a["parts"] == b["parts"] and a["keypoints"] == b["keypoints"]


# ---- record cache


def test_cache_hit_and_invalidation(tmp_path):
    root = _fresh(tmp_path)
    report = LoadReport()
    cold = load_mhp_v2(root, "train", report=report)
    assert (report.num_parsed, report.num_cached) == (3, 0)
    warm = load_mhp_v2(root, "train", report=report)
    assert (report.num_parsed, report.num_cached) == (0, 3) and warm == cold
    # a changed PNG re-reads its image only
    png = fx.person_file(root, "1", 2)
    fx.write_person_png(png, fx.person_labels(fx.PERSON_D), "gray")
    future = time.time() + 10
    os.utime(png, (future, future))
    records = _by_id(load_mhp_v2(root, "train", report=report))
    assert (report.num_parsed, report.num_cached) == (1, 2)
    assert (
        part_label_map(records["1"]["annotations"][1], fx.H, fx.W) == fx.person_labels(fx.PERSON_D)
    ).all()
    # the missing person file of image 2 appears: image 2 is re-read and has 3 persons
    fx.write_person_png(fx.person_file(root, "2", 2), fx.person_labels(fx.PERSON_C), "rgb")
    records = _by_id(load_mhp_v2(root, "train", report=report))
    assert (report.num_parsed, report.num_cached) == (1, 2)
    assert len(records["2"]["annotations"]) == 3


# ---- registration, tools, mapper and training in the native taxonomy


@pytest.fixture
def registered(tmp_path):
    datasets = str(tmp_path / "datasets")
    fx.write_mhp_v2_fixture(datasets)
    names = register_all_mhp_v2(datasets)
    yield datasets, names
    register_all_mhp_v2()  # back to the default datasets root


def test_register_all_and_metadata(registered, monkeypatch):
    datasets, names = registered
    assert names == ["mhp_v2_train", "mhp_v2_val"]
    meta = MetadataCatalog.get("mhp_v2_train")
    assert meta.part_taxonomy == "mhp59" and meta.keypoint_taxonomy == "mhp16"
    assert len(meta.part_names) == 58 and ("left_shoe", "right_shoe") in meta.part_flip_pairs
    assert meta.keypoint_names == list(MHP_KEYPOINTS.names)
    assert meta.mhp_v2_root == os.path.join(datasets, "LV-MHP-v2") and meta.mhp_v2_split == "train"
    assert [r["image_id"] for r in DatasetCatalog.get("mhp_v2_train")] == ["1", "2", "3"]
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "raise")
    with pytest.raises(DatasetFormatError, match="11_02_02.png"):
        DatasetCatalog.get("mhp_v2_val")
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "skip")  # registered splits take the policy from it
    assert [r["image_id"] for r in DatasetCatalog.get("mhp_v2_val")] == ["10"]


def _check_tool():
    spec = importlib.util.spec_from_file_location(
        "bodyparts_check_dataset_tool_mhp", os.path.join(REPO, "tools", "check_dataset.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_check_dataset_tool_on_the_fixture(registered, tmp_path, monkeypatch):
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "raise")
    tool = _check_tool()
    out = tmp_path / "report"
    args = tool.get_parser().parse_args(["mhp_v2_train", "--output", str(out), "--num-vis", "2"])
    assert tool.main(args) == 0
    summary = json.loads((out / "mhp_v2_train" / "summary.json").read_text())
    assert summary["images"] == 3 and summary["problems"] == []
    assert summary["part_taxonomy"] == "mhp59" and summary["keypoint_taxonomy"] == "mhp16"
    persons = summary["persons"]
    assert persons["total"] == 6 == persons["full_parts"] and persons["with_keypoints"] == 4
    # labelled keypoints (v > 0): person 1A 12 of 16 (one of them occluded), 1B, 2B, 2D all 16
    assert persons["visible_keypoints"] == 12 + 16 * 3
    assert summary["part_share"]["torso_skin"] == 0.0 and summary["part_share"]["t_shirt"] > 0
    assert len(os.listdir(out / "mhp_v2_train" / "samples")) == 2
    # the broken val images: an error, or 1 image with --skip-bad
    with pytest.raises(tool.DataContractError, match="11_02_02.png"):
        tool.main(tool.get_parser().parse_args(["mhp_v2_val", "--output", str(out)]))
    assert (
        tool.main(tool.get_parser().parse_args(["mhp_v2_val", "--output", str(out), "--skip-bad"]))
        == 0
    )
    assert json.loads((out / "mhp_v2_val" / "summary.json").read_text())["images"] == 1
    # shares in lr6 count the mapped pixels only (clothes are ignored); ppp6 is a usage error
    assert (
        tool.main(
            tool.get_parser().parse_args(
                ["mhp_v2_train", "--output", str(out), "--taxonomy", "lr6"]
            )
        )
        == 0
    )
    shares = json.loads((out / "mhp_v2_train" / "summary.json").read_text())["part_share_lr6"]
    assert shares["head"] > 0 and shares["left_leg"] == shares["right_leg"] > 0
    assert shares["torso"] == 0.0  # no torso skin, bikini or singlet in the fixture
    with pytest.raises(tool.CheckError, match="'mhp59' cannot express taxonomy 'ppp6'"):
        tool.main(
            tool.get_parser().parse_args(
                ["mhp_v2_train", "--output", str(out), "--taxonomy", "ppp6"]
            )
        )


def test_mapper_flips_native_labels_and_maps_keypoints_to_coco(mhp_root):
    rec = _by_id(load_mhp_v2(mhp_root, "train"))["1"]
    mapper = BodyPartsDatasetMapper(
        True,
        augmentations=[T.RandomFlip(prob=1.0)],
        image_format="BGR",
        use_keypoint=True,
        keypoint_hflip_indices=keypoint_hflip_indices("coco17"),
        keypoint_taxonomy="coco17",
        part_luts={"mhp59": mapping_lut("mhp59", "mhp59")},
        part_flip_lut=MHP59.flip_lut(),
    )
    inst = mapper(rec)["instances"]
    parts = inst.gt_part_maps.tensor.numpy()
    labels = fx.expected_persons("1")[0][1][:, ::-1]  # person A mirrored ...
    assert (parts[0] == MHP59.flip_lut()[labels]).all()  # ... and its sides swapped
    assert parts[0][52, fx.W - 1 - 10] == fx.L_SHOE  # the right shoe became a left shoe
    coco = get_keypoint_taxonomy("coco17")
    kps = inst.gt_keypoints.tensor
    assert kps.shape == (3, 17, 3)
    # the person's right ankle (11.5, 52.5) is the left ankle of the mirrored image
    assert kps[0, coco.names.index("left_ankle")].tolist() == [fx.W - 11.5, 52.5, 2.0]
    assert kps[0, coco.names.index("nose")].tolist() == [0.0, 0.0, 0.0]
    assert (kps[2] == 0).all()  # person C has no pose annotation
    # in lr6: the mirrored person A's face is head, its t-shirt and pants ignored (255)
    lr6_mapper = BodyPartsDatasetMapper(
        True,
        augmentations=[T.RandomFlip(prob=1.0)],
        image_format="BGR",
        part_luts={"mhp59": mapping_lut("mhp59", "lr6")},
        part_flip_lut=get_part_taxonomy("lr6").flip_lut(),
    )
    lr6_parts = lr6_mapper(rec)["instances"].gt_part_maps.tensor.numpy()[0]
    lr6 = get_part_taxonomy("lr6")
    assert lr6_parts[10, fx.W - 1 - 15] == lr6.label_of("head")
    assert lr6_parts[20, fx.W - 1 - 15] == 255 and lr6_parts[40, fx.W - 1 - 15] == 255
    assert lr6_parts[52, fx.W - 1 - 10] == lr6.label_of("left_leg")  # right shoe, mirrored
    assert lr6_parts[0, 0] == 0


def test_training_steps_in_the_native_taxonomy(registered, tmp_path):
    """Two training steps of the quick part model on the fixture in mhp59 (59 labels) with the MHP
    keypoints mapped to COCO-17: every loss is finite and the part loss is there."""
    from argparse import Namespace

    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from bodyparts.engine import Trainer, setup_cfg

    args = Namespace(
        config_file=os.path.join(
            REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"
        ),
        opts=[
            "OUTPUT_DIR",
            str(tmp_path / "out"),
            "DATASETS.TRAIN",
            "('mhp_v2_train',)",
            "DATASETS.TEST",
            "('mhp_v2_train',)",
            "BODYPARTS.PART_TAXONOMY",
            "mhp59",
            "MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE",
            "0",
            "INPUT.MIN_SIZE_TRAIN",
            "(64,)",
            "INPUT.MAX_SIZE_TRAIN",
            "96",
            "MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION",
            "8",
            "MODEL.ROI_BODYPART_HEAD.CONV_DIMS",
            "[16, 16]",
            "MODEL.ROI_BODYPART_HEAD.UP_SCALE",
            "1",
            "SOLVER.IMS_PER_BATCH",
            "2",
            "DATALOADER.NUM_WORKERS",
            "0",
            "DATALOADER.ASPECT_RATIO_GROUPING",
            "False",
        ],
    )
    cfg = setup_cfg(args, for_launch_only=True)
    torch.manual_seed(0)
    model = build_model(cfg)
    assert model.roi_heads.part_branch.num_classes == 59
    optim = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    loader = iter(Trainer.build_train_loader(cfg))
    with EventStorage():
        for _ in range(2):
            batch = next(loader)
            for item in batch:
                labels = item["instances"].gt_part_maps.tensor
                assert int(labels[labels != 255].max()) <= 58
            losses = model(batch)
            assert {"loss_part", "loss_keypoint", "loss_mask"} <= set(losses)
            assert all(np.isfinite(v.item()) for v in losses.values()), losses
            optim.zero_grad()
            sum(losses.values()).backward()
            optim.step()
