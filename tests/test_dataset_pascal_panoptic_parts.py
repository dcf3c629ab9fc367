"""Pascal-Panoptic-Parts loader: .tif fixtures in the exact uid encoding -> exact records, panoptic
PNGs and metadata; agreement with the panoptic_parts package; bad files; the cache; registration."""

import dataclasses
import os
import platform
from unittest import mock

import numpy as np
import pytest
import yaml
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.coco import convert_to_coco_dict
from detectron2.structures import BoxMode
from fixtures.pascal_panoptic_parts import (
    BOTTLE,
    CAR,
    GROUND,
    PERSON,
    SKY,
    WALL,
    image_a,
    image_b,
    image_c,
    uid,
    write_label_tif,
    write_ppp_fixture,
)
from fixtures.pascal_part import write_jpeg
from PIL import Image

from bodyparts.data.contract import decode_rle, part_label_map, validate_record
from bodyparts.data.datasets.native import DatasetFormatError, LoadReport
from bodyparts.data.datasets.pascal_panoptic_parts import (
    decode_ppp_uids,
    load_pascal_panoptic_parts,
    load_ppp_classes,
    panoptic_parts_file,
    ppp_metadata,
    read_ppp_label,
    register_all_pascal_panoptic_parts,
)
from bodyparts.taxonomy import PASCAL_PART24

A, B, C = "2008_000001", "2008_000002", "2008_000003"
# Contiguous ids, by hand from the 59-class eval spec: things = person, then sids 1..14, 16..20 (so
# car 7 -> 7, bottle 5 -> 5); stuff = "things", then the 39 evaluated stuff sids in order
# 21 23 24 25 28 34 35 38 39 40 42 43 45 46 48 49 50 53 [54 ground -> 19] 56 58 62 63 69 70 74 75 80
# 81 82 [84 sky -> 31] 86 92 93 94 [95 wall -> 36] 96 97 99.
CAT_PERSON, CAT_CAR, CAT_BOTTLE = 0, 7, 5
STUFF_GROUND, STUFF_SKY, STUFF_WALL = 19, 31, 36


@pytest.fixture(scope="module")
def ppp(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ppp"))
    paths = write_ppp_fixture(root)
    train = os.path.join(paths["label_root"], "training")
    records = load_pascal_panoptic_parts(train, paths["image_root"], use_cache=False)
    return paths, {r["image_id"]: r for r in records}


def _pan_ids(record):
    rgb = np.asarray(Image.open(record["pan_seg_file_name"]).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _package_decode_uids():
    """panoptic_parts' own decode_uids. Its dataset_spec module rejects every Python >= 3.10 (it
    compares float("3.11"[:3]) = 3.1 <= 3.6), so it is imported under a 3.9 version string."""
    pytest.importorskip("ruamel.yaml")
    with mock.patch.object(platform, "python_version", return_value="3.9.18"):
        from panoptic_parts.utils.format import decode_uids
    return decode_uids


# ---- classes, taxonomy and metadata


def test_person_pids_are_pascal_part24_labels():
    with open(panoptic_parts_file("specs/dataset_specs/ppp_datasetspec.yaml")) as f:
        spec = yaml.safe_load(f)
    person = list(spec["scene_class2part_classes"])[PERSON - 1]
    assert person == "person"  # sid 15 (1-based order of the spec)
    pids = spec["scene_class2part_classes"]["person"]
    assert tuple(pids) == PASCAL_PART24.part_names  # pid k == pascal_part24 label k
    assert PASCAL_PART24.label_of("rhand") == pids.index("rhand") + 1 == 18


def test_classes_and_metadata():
    c = load_ppp_classes()
    assert len(c.names) == 100 and c.names[PERSON] == "person" and c.names[SKY] == "sky"
    assert c.thing_sids == (15,) + tuple(range(1, 15)) + tuple(range(16, 21))
    assert len(c.stuff_sids) == 39 and c.stuff_sids == tuple(sorted(c.stuff_sids))
    # largest pid in the files: person 24, car 59 (countable windows 40..59), boat none, sky none
    assert (c.max_pid[PERSON], c.max_pid[CAR], c.max_pid[4], c.max_pid[SKY]) == (24, 59, 0, 0)
    meta = ppp_metadata(c)
    assert meta["thing_classes"][:3] == ["person", "aeroplane", "bicycle"]
    assert len(meta["thing_classes"]) == len(meta["thing_colors"]) == 20
    assert meta["thing_classes"][CAT_CAR] == "car" and meta["thing_classes"][CAT_BOTTLE] == "bottle"
    assert meta["thing_colors"][0] == (192, 128, 128)  # the spec's person color
    assert len(meta["stuff_classes"]) == len(meta["stuff_colors"]) == 40
    assert meta["stuff_classes"][0] == "things"
    assert [meta["stuff_classes"][k] for k in (STUFF_GROUND, STUFF_SKY, STUFF_WALL)] == [
        "ground",
        "sky",
        "wall",
    ]
    assert meta["thing_scene_ids"] == list(c.thing_sids)
    assert meta["stuff_scene_ids"][0] == -1 and meta["stuff_scene_ids"][STUFF_SKY] == SKY
    assert meta["thing_dataset_id_to_contiguous_id"][PERSON] == 0
    assert meta["thing_dataset_id_to_contiguous_id"][CAR] == CAT_CAR
    assert meta["part_taxonomy"] == "pascal_part24" and len(meta["part_names"]) == 24
    assert (meta["evaluator_type"], meta["data_format"]) == ("bodyparts", "bodyparts")
    assert os.path.isfile(meta["ppp_eval_spec_file"]) and os.path.isfile(
        meta["ppp_dataset_spec_file"]
    )


# ---- record content


def test_image_a_annotations(ppp):
    paths, records = ppp
    rec = records[A]
    validate_record(rec, num_classes=20, num_parts=24)
    assert (rec["height"], rec["width"], rec["part_taxonomy"]) == (10, 12, "pascal_part24")
    assert rec["file_name"] == os.path.join(paths["image_root"], A + ".jpg")
    assert rec["ppp_file_name"] == os.path.join(paths["label_root"], "training", A + ".tif")
    anns = rec["annotations"]
    # person iid 1, person iid 20, the person crowd region, car iid 1
    assert [(a["category_id"], a["iscrowd"], a["bbox"], a["area"]) for a in anns] == [
        (CAT_PERSON, 0, [0.0, 3.0, 5.0, 5.0], 25.0),
        (CAT_PERSON, 0, [5.0, 3.0, 3.0, 5.0], 15.0),
        (CAT_PERSON, 1, [8.0, 3.0, 2.0, 3.0], 6.0),
        (CAT_CAR, 0, [8.0, 6.0, 2.0, 2.0], 4.0),
    ]
    assert all(a["bbox_mode"] == BoxMode.XYWH_ABS for a in anns)
    expected_silhouettes = [
        (slice(3, 8), slice(0, 5)),
        (slice(3, 8), slice(5, 8)),
        (slice(3, 6), slice(8, 10)),
    ]
    expected_silhouettes.append((slice(6, 8), slice(8, 10)))
    for ann, (rows, cols) in zip(anns, expected_silhouettes):
        sil = np.zeros((10, 12), bool)
        sil[rows, cols] = True
        np.testing.assert_array_equal(decode_rle(ann["segmentation"]).astype(bool), sil)
    # person 1: 24 of 25 pixels labelled (one part-void pixel) -> complete (>= 95 %)
    p1 = np.zeros((10, 12), np.uint8)
    p1[3:8, 0:5] = [[1] * 5, [11] * 5, [14, 14, 11, 11, 11], [11, 11, 11, 11, 0], [19] * 5]
    np.testing.assert_array_equal(part_label_map(anns[0], 10, 12), p1)
    assert sorted(anns[0]["parts"]) == [1, 11, 14, 19] and anns[0]["parts_complete"] is True
    # person 20: head row, two torso rows, two instance-only rows -> 9 / 15 labelled, incomplete
    p20 = np.zeros((10, 12), np.uint8)
    p20[3:8, 5:8] = [[1] * 3, [11] * 3, [11] * 3, [0] * 3, [0] * 3]
    np.testing.assert_array_equal(part_label_map(anns[1], 10, 12), p20)
    assert anns[1]["parts_complete"] is False
    # the crowd region and the car have no part annotation (car parts are checked, not kept)
    assert anns[2]["parts"] is None and anns[3]["parts"] is None


def test_image_a_panoptic_png_and_segments(ppp):
    _, records = ppp
    rec = records[A]
    S, G, P1, P20, CR, K = SKY, GROUND, 15001, 15020, PERSON, 7001
    person_rows = [P1] * 5 + [P20] * 3
    expected = np.array(
        [[S] * 12, [S] * 12, [S] * 11 + [0]]
        + [person_rows + [CR, CR, 0, 0]] * 3  # the basket (ignored by the eval spec) is void
        + [person_rows + [K, K, 0, 0]] * 2
        + [[G] * 12, [0] + [G] * 11]
    )
    np.testing.assert_array_equal(_pan_ids(rec), expected)
    assert rec["segments_info"] == [
        {"id": 15001, "category_id": CAT_PERSON, "iscrowd": 0, "isthing": True},
        {"id": 15020, "category_id": CAT_PERSON, "iscrowd": 0, "isthing": True},
        {"id": 15, "category_id": CAT_PERSON, "iscrowd": 1, "isthing": True},
        {"id": 7001, "category_id": CAT_CAR, "iscrowd": 0, "isthing": True},
        {"id": GROUND, "category_id": STUFF_GROUND, "iscrowd": 0, "isthing": False},
        {"id": SKY, "category_id": STUFF_SKY, "iscrowd": 0, "isthing": False},
    ]


def test_image_b_void_iid0_and_person_without_parts(ppp):
    _, records = ppp
    rec = records[B]
    anns = rec["annotations"]
    assert [(a["category_id"], a["iscrowd"], a["bbox"], a["area"], a["parts"]) for a in anns] == [
        (CAT_PERSON, 0, [0.0, 4.0, 3.0, 4.0], 12.0, None),  # instance-level uids only
        (CAT_BOTTLE, 0, [3.0, 4.0, 3.0, 2.0], 6.0, None),  # iid 0 is an instance (uid 5000)
    ]
    expected = np.zeros((8, 6), np.int64)
    expected[0:4] = WALL
    expected[0, 0] = 0  # void -1
    expected[4:8, 0:3] = 15001
    expected[4:6, 3:6] = uid(BOTTLE, 0)  # 5000
    np.testing.assert_array_equal(_pan_ids(rec), expected)
    assert [s["id"] for s in rec["segments_info"]] == [15001, 5000, WALL]
    assert rec["segments_info"][2]["category_id"] == STUFF_WALL


def test_decode_agrees_with_panoptic_parts_package(ppp):
    decode_uids = _package_decode_uids()
    rng = np.random.default_rng(0)
    sids = rng.integers(1, 100, 500)
    iids, pids = rng.integers(0, 1000, 500), rng.integers(0, 100, 500)
    level = rng.integers(0, 3, 500)
    random = np.where(
        level == 0,
        sids,
        np.where(level == 1, sids * 1000 + iids, (sids * 1000 + iids) * 100 + pids),
    )
    for uids in (
        image_a(),
        np.maximum(image_b(), 0),
        image_c(),
        random.astype(np.int32).reshape(20, 25),
    ):
        ours = decode_ppp_uids(uids)
        theirs = decode_uids(uids.astype(np.int32))
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)
    assert uid(PERSON, 3, 18) == 1500318  # DATASETS.md: person instance 3, right hand
    assert tuple(int(v) for v in decode_ppp_uids(np.array([1500318, 23, 23003, 1501000]))[2]) == (
        18,
        -1,
        -1,
        0,
    )
    # the panoptic PNG of image A equals the package's sids_iids on the evaluated classes, and the
    # person part labels equal its pids
    s, _, p, sids_iids = decode_uids(image_a(), return_sids_iids=True)
    c = load_ppp_classes()
    evaluated = np.isin(s, c.thing_sids + c.stuff_sids)
    np.testing.assert_array_equal(_pan_ids(ppp[1][A]), np.where(evaluated, sids_iids, 0))
    persons = [
        a for a in ppp[1][A]["annotations"] if a["category_id"] == CAT_PERSON and not a["iscrowd"]
    ]
    labels = np.max([part_label_map(a, 10, 12) for a in persons], axis=0)
    np.testing.assert_array_equal(labels, np.where((s == PERSON) & (p > 0), p, 0))


def test_val_split_folder_and_float_tiff(tmp_path, ppp):
    paths, _ = ppp
    (rec,) = load_pascal_panoptic_parts(
        os.path.join(paths["label_root"], "validation"), paths["image_root"], use_cache=False
    )
    (ann,) = rec["annotations"]
    assert ann["bbox"] == [2.0, 1.0, 3.0, 4.0] and ann["parts_complete"] is True
    assert sorted(ann["parts"]) == [1, 11, 20, 23]
    # a float32 TIFF of integer uids reads as the same int32 map
    write_label_tif(str(tmp_path / "f.tif"), image_a(), np.float32)
    np.testing.assert_array_equal(read_ppp_label(str(tmp_path / "f.tif")), image_a())


# ---- bad files


def _one(tmp_path, uids=None, jpeg_shape=None, write=None):
    """A one-image dataset in tmp_path; returns (label_dir, image_dir, tif path)."""
    labels, images = str(tmp_path / "labels"), str(tmp_path / "JPEGImages")
    tif = os.path.join(labels, "x.tif")
    uids = image_a() if uids is None else uids
    if write is not None:
        os.makedirs(labels, exist_ok=True)
        write(tif)
    else:
        write_label_tif(tif, uids)
    write_jpeg(os.path.join(images, "x.jpg"), *(jpeg_shape or uids.shape))
    return labels, images, tif


def _bad(uid_value):
    u = image_a()
    u[4, 7] = uid_value
    return u


BAD_WRITERS = {  # cases whose file is not an int32 TIFF
    "png": lambda p: Image.fromarray(image_a().astype(np.uint8)).save(p, format="PNG"),
    "garbage": lambda p: open(p, "wb").write(b"II*\x00 truncated"),
    "uint8": lambda p: write_label_tif(p, image_a() % 200, np.uint8),
    "uint16": lambda p: write_label_tif(p, image_a() % 200, np.uint16),
    "rgb": lambda p: Image.new("RGB", (12, 10)).save(p, format="TIFF"),
    "float": lambda p: write_label_tif(p, image_a() + 0.5, np.float32),
}
BAD_UIDS = {  # cases with one bad uid at row 4, column 7 of image A
    "3digit": 150,
    "8digit": 15000101,
    "negative": -5,
    "stuff_iid": uid(SKY, 1),
    "person_pid": uid(PERSON, 1, 25),
    "boat_pid": uid(4, 2, 1),
    "stuff_pid": uid(SKY, 0, 3),
}


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
@pytest.mark.parametrize(
    "case, message",
    [
        ("png", "not a TIFF file (it is a PNG image)"),
        ("garbage", "not a readable TIFF image"),
        ("uint8", "samples are uint8 (Pillow mode L), which cannot hold the up to 7-digit uids"),
        ("uint16", "samples are uint16 (Pillow mode I;16)"),
        ("rgb", "expected a single-channel label image, got 3 channels"),
        ("float", "float samples (float32) that are not integer uids"),
        ("size", "label image is 10x12 (HxW) but the image"),
        (
            "3digit",
            "1 pixel(s) with invalid 3-digit uids (uids have 1-2, 4-5 or 6-7 digits) "
            "(values [150]; first at row 4, column 7)",
        ),
        ("8digit", "uids of more than 7 digits (values [15000101]"),
        ("negative", "negative uids (only -1 = void is accepted) (values [-5]"),
        ("stuff_iid", "instance id 1 of the stuff class 'sky' (sid 84)"),
        (
            "person_pid",
            "part id 25 out of range for 'person' (sid 15, part ids 1..24) (values [1500125]",
        ),
        ("boat_pid", "part id 1 out of range for 'boat' (sid 4, no parts)"),
        ("stuff_pid", "part id 3 out of range for 'sky' (sid 84, no parts)"),
    ],
)
def test_bad_label_files(tmp_path, case, message):
    uids, shape = None, (10, 13) if case == "size" else None
    write = BAD_WRITERS.get(case)
    if case in BAD_UIDS:
        uids = _bad(BAD_UIDS[case])
    labels, images, tif = _one(tmp_path, uids, shape, write)
    with pytest.raises(DatasetFormatError) as e:
        load_pascal_panoptic_parts(labels, images, use_cache=False)
    assert e.value.path == tif
    assert message in e.value.problem


def test_unknown_sid_and_missing_files(tmp_path):
    labels, images, tif = _one(tmp_path)
    # a dataset spec without the sids above 59: the sky (84) of image A is unknown
    c = load_ppp_classes()
    small = dataclasses.replace(c, names=c.names[:60], max_pid=c.max_pid[:60], stuff_sids=(54,))
    with pytest.raises(DatasetFormatError) as e:
        load_pascal_panoptic_parts(labels, images, classes=small, use_cache=False)
    assert e.value.path == tif
    assert "unknown scene id 84 (the dataset spec has sids 0..59)" in e.value.problem
    assert "35 pixel(s)" in e.value.problem and "first at row 0, column 0" in e.value.problem
    with pytest.raises(DatasetFormatError) as e:
        load_pascal_panoptic_parts(labels, images, ["x", "y"], use_cache=False)
    assert (
        e.value.path == os.path.join(labels, "y.tif") and e.value.problem == "label file not found"
    )
    os.remove(os.path.join(images, "x.jpg"))
    with pytest.raises(DatasetFormatError) as e:
        load_pascal_panoptic_parts(labels, images, use_cache=False)
    assert (
        e.value.path == os.path.join(images, "x.jpg") and "image file not found" in e.value.problem
    )
    with pytest.raises(DatasetFormatError, match="label directory not found"):
        load_pascal_panoptic_parts(str(tmp_path / "nowhere"), images)


# ---- cache and skip mode


def test_cache_hit_invalidation_and_png_rewrite(tmp_path):
    root = str(tmp_path)
    paths = write_ppp_fixture(root)
    labels = os.path.join(paths["label_root"], "training")
    cold, warm, changed, repaired = LoadReport(), LoadReport(), LoadReport(), LoadReport()
    first = load_pascal_panoptic_parts(labels, paths["image_root"], report=cold)
    again = load_pascal_panoptic_parts(labels, paths["image_root"], report=warm)
    assert (cold.num_parsed, cold.num_cached, warm.num_parsed, warm.num_cached) == (2, 0, 0, 2)
    assert again == first
    # a changed .tif is re-read (only that one) and its PNG rewritten
    u = image_a()
    u[2, 11] = SKY
    tif = os.path.join(labels, A + ".tif")
    write_label_tif(tif, u)
    st = os.stat(tif)
    os.utime(tif, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    recs = load_pascal_panoptic_parts(labels, paths["image_root"], report=changed)
    assert (changed.num_parsed, changed.num_cached) == (1, 1)
    assert _pan_ids(recs[0])[2, 11] == SKY
    # a deleted PNG is written again even though the record comes from the cache
    os.remove(recs[1]["pan_seg_file_name"])
    recs = load_pascal_panoptic_parts(labels, paths["image_root"], report=repaired)
    assert repaired.num_cached == 2 and _pan_ids(recs[1])[5, 0] == 15001


def test_skip_mode_counts_and_remembers(tmp_path):
    root = str(tmp_path)
    paths = write_ppp_fixture(root)
    labels = os.path.join(paths["label_root"], "training")
    write_label_tif(os.path.join(labels, "2008_000010.tif"), _bad(150))
    write_label_tif(os.path.join(labels, "2008_000011.tif"), image_a(), np.uint8)
    for k in (10, 11):
        write_jpeg(os.path.join(paths["image_root"], f"2008_0000{k}.jpg"), 10, 12)
    for expected_parsed in (4, 0):  # cold, then warm: the skips are remembered
        rep = LoadReport()
        recs = load_pascal_panoptic_parts(labels, paths["image_root"], on_error="skip", report=rep)
        assert [r["image_id"] for r in recs] == [A, B]
        assert [k for k, _ in rep.skipped] == ["2008_000010", "2008_000011"]
        assert "3-digit" in rep.skipped[0][1] and "uint8" in rep.skipped[1][1]
        assert rep.num_parsed == expected_parsed
    with pytest.raises(DatasetFormatError, match="3-digit"):
        load_pascal_panoptic_parts(labels, paths["image_root"])


# ---- registration


@pytest.mark.parametrize("layout", ["split", "flat"])
def test_registered_splits(tmp_path, layout):
    root = str(tmp_path)
    paths = write_ppp_fixture(root, layout)
    try:
        names = register_all_pascal_panoptic_parts(root)
        assert names == ["pascal_panoptic_parts_train", "pascal_panoptic_parts_val"]
        train, val = (DatasetCatalog.get(n) for n in names)
        assert [r["image_id"] for r in train] == [A, B]  # flat: 2008_000099 has no label file
        assert [r["image_id"] for r in val] == [C]
        meta = MetadataCatalog.get(names[0])
        assert meta.label_root == paths["label_root"] and meta.split == "train"
        assert meta.thing_classes[0] == "person" and meta.stuff_scene_ids[STUFF_SKY] == SKY
        if layout == "split":  # Detectron2's COCO conversion (COCOEvaluator without json_file)
            coco = convert_to_coco_dict(names[0])
            assert coco["categories"][:2] == [
                {"id": 15, "name": "person"},
                {"id": 1, "name": "aeroplane"},
            ]
            first = [
                (a["category_id"], a["iscrowd"]) for a in coco["annotations"] if a["image_id"] == A
            ]
            assert first == [(15, 0), (15, 0), (15, 1), (CAR, 0)]
    finally:
        register_all_pascal_panoptic_parts()  # back to the default datasets root


def test_registered_split_without_labels_names_the_tree(tmp_path):
    try:
        register_all_pascal_panoptic_parts(str(tmp_path))
        with pytest.raises(DatasetFormatError) as e:
            DatasetCatalog.get("pascal_panoptic_parts_val")
        assert (
            "labels/validation or labels/val" in e.value.problem
            and "Main/val.txt" in e.value.problem
        )
    finally:
        register_all_pascal_panoptic_parts()


def test_builtin_registration():
    import bodyparts  # noqa: F401

    assert {"pascal_panoptic_parts_train", "pascal_panoptic_parts_val"} <= set(
        DatasetCatalog.list()
    )
    assert MetadataCatalog.get("pascal_panoptic_parts_val").evaluator_type == "bodyparts"
