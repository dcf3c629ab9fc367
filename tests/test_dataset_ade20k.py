"""ADE20K 2016/2021 person-part loaders: fixtures with known persons and parts, bad input, the
record cache, and the real 2021 sample files in ../shared/realdata/ade20k."""

import json
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from bodyparts.data.contract import DataContractError, decode_rle
from bodyparts.data.datasets.ade20k import (
    _resolve_overlaps,
    decode_ade_classes,
    load_ade20k_2016,
    load_ade20k_2021,
    parse_atr,
    register_all_ade20k,
)
from bodyparts.data.datasets.native import DatasetFormatError, LoadReport
from bodyparts.taxonomy import can_express, get_part_taxonomy, mapping_lut
from tests.fixtures.ade20k import write_ade20k_2016, write_ade20k_2021

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL_2021 = os.path.join(REPO, "..", "shared", "realdata", "ade20k", "ADE20K_2021_17_01")
REAL_DIR = os.path.join(REAL_2021, "images", "ADE", "training", "urban", "street")
NAMES = get_part_taxonomy("ade_person15").part_names
LOADERS = {"2016": load_ade20k_2016, "2021": load_ade20k_2021}
WRITERS = {"2016": write_ade20k_2016, "2021": write_ade20k_2021}
RELEASE_DIRS = {"2016": "ADE20K_2016_07_26", "2021": "ADE20K_2021_17_01"}


def label(name):
    return NAMES.index(name) + 1


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    """Both releases, written once (read-only tests)."""
    root = str(tmp_path_factory.mktemp("ade20k"))
    expected = {r: WRITERS[r](os.path.join(root, RELEASE_DIRS[r])) for r in WRITERS}
    return root, expected


def fresh(tmp_path, release, **kwargs):
    """A private copy of one release for tests that damage files."""
    root = str(tmp_path / RELEASE_DIRS[release])
    return root, WRITERS[release](root, **kwargs)


def by_id(records):
    return {r["image_id"]: r for r in records}


def mask(rle):
    return decode_rle(rle).astype(bool)


def check_against_expected(records, expected, split):
    want = {k: v for k, v in expected.items() if v["split"] == split and v["persons"]}
    assert sorted(by_id(records)) == sorted(want)
    for rec in records:
        exp = want[rec["image_id"]]
        assert rec["file_name"] == exp["base"] + ".jpg"
        assert (rec["height"], rec["width"]) == exp["size"]
        assert rec["part_taxonomy"] == "ade_person15"
        assert [a["ade_id"] for a in rec["annotations"]] == [p["ade_id"] for p in exp["persons"]]
        for ann, person in zip(rec["annotations"], exp["persons"]):
            assert np.array_equal(mask(ann["segmentation"]), person["silhouette"])
            ys, xs = np.nonzero(person["silhouette"])
            assert ann["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() + 1 - xs.min(),
                ys.max() + 1 - ys.min(),
            ]
            if person["parts"] is None:
                assert ann["parts"] is None
                continue
            assert sorted(ann["parts"]) == sorted(person["parts"])
            for lab, m in person["parts"].items():
                assert np.array_equal(mask(ann["parts"][lab]), m), NAMES[lab - 1]
            assert ann["parts_complete"] is person["complete"]


# ---------------------------------------------------------------------------------------------
# Fixtures: known persons, boxes, parts


@pytest.mark.parametrize("release", ["2016", "2021"])
@pytest.mark.parametrize("split", ["train", "val"])
def test_fixture_records_match_construction(fixture_root, release, split):
    root, expected = fixture_root
    records = LOADERS[release](os.path.join(root, RELEASE_DIRS[release]), split)
    check_against_expected(records, expected[release], split)


@pytest.mark.parametrize("release", ["2016", "2021"])
def test_known_persons_boxes_and_labels(fixture_root, release):
    root, _ = fixture_root
    rec = by_id(LOADERS[release](os.path.join(root, RELEASE_DIRS[release]), "train"))[
        "ADE_train_00000001"
    ]
    anns = sorted(rec["annotations"], key=lambda a: a["bbox"][0])
    p1, p3, p2 = anns  # by x: P1 (x 6), P3 (x 28), P2 (x 40)
    assert p1["bbox"] == [6.0, 4.0, 16.0, 40.0]  # the car hides rows 36..43 of columns 14..21
    assert p2["bbox"] == [40.0, 10.0, 10.0, 28.0]
    assert p3["bbox"] == [28.0, 2.0, 6.0, 8.0]
    assert sorted(NAMES[k - 1] for k in p1["parts"]) == [
        "head",
        "left_arm",
        "left_leg",
        "right_leg",
        "torso",
    ]
    assert mask(p1["parts"][label("head")]).sum() == 8 * 8
    assert mask(p1["parts"][label("left_leg")]).sum() == 8 * 8  # visible rows 28..35 only
    assert p1["parts_complete"] is False  # head row has unlabelled person pixels
    assert p2["parts"] is None  # no parts; the chair's back inside its box is not its back
    assert sorted(p3["parts"]) == [label("head"), label("torso")] and p3["parts_complete"] is True
    # label 1 is head = class 1206 (1206 % 256 = 182 would be a wrap bug), no part is "back"
    assert all(label("back") not in (a["parts"] or {}) for a in anns)


@pytest.mark.parametrize("release", ["2016", "2021"])
def test_val_person_parts_and_back_on_person(fixture_root, release):
    root, _ = fixture_root
    (rec,) = LOADERS[release](os.path.join(root, RELEASE_DIRS[release]), "val")
    p4, p5 = sorted(rec["annotations"], key=lambda a: a["bbox"][0])
    assert sorted(p4["parts"]) == [label("head")]
    want = ["back", "buttocks", "left_shoulder", "neck", "right_hand", "right_shoulder"]
    assert sorted(NAMES[k - 1] for k in p5["parts"]) == want
    back = mask(p5["parts"][label("back")])
    assert back.sum() == 13 * 14 - 2 * 3 * 2  # both shoulders are painted over two columns each
    assert not (back & mask(p5["parts"][label("left_shoulder")])).any()


def test_2021_quirks_normalised(fixture_root):
    root, _ = fixture_root
    recs = by_id(load_ade20k_2021(os.path.join(root, RELEASE_DIRS["2021"]), "train"))
    anns = {a["ade_id"]: a for a in recs["ADE_train_00000001"]["annotations"]}
    assert anns[1]["attributes"] == ["walking"] and anns[1]["occluded"] is None  # string, []
    assert anns[4]["attributes"] == ["standing", "talking"] and anns[4]["occluded"] == "no"
    assert anns[0]["occluded"] == "yes"


def test_no_person_image_is_not_returned(tmp_path):
    root, _ = fresh(tmp_path, "2021")
    os.remove(os.path.join(root, "index_ade20k.pkl"))  # the walk lists the car-only image too
    report = LoadReport()
    records = load_ade20k_2021(root, "train", report=report)
    assert report.num_items == 2 and [r["image_id"] for r in records] == ["ADE_train_00000001"]


@pytest.mark.parametrize("release", ["2016", "2021"])
def test_walk_without_index_gives_same_records(tmp_path, fixture_root, release):
    root, expected = fresh(tmp_path, release)
    os.remove(os.path.join(root, "index_ade20k.mat" if release == "2016" else "index_ade20k.pkl"))
    for split in ("train", "val"):
        check_against_expected(LOADERS[release](root, split), expected, split)


def test_2016_index_without_object_presence(tmp_path):
    root, expected = fresh(tmp_path, "2016", with_presence=False)
    report = LoadReport()
    check_against_expected(load_ade20k_2016(root, "train", report=report), expected, "train")
    assert report.num_items == 2  # the car-only image is read (its _seg.png has no person)


def test_index_presence_filters_images(fixture_root):
    root, _ = fixture_root
    for release in ("2016", "2021"):
        report = LoadReport()
        LOADERS[release](os.path.join(root, RELEASE_DIRS[release]), "train", report=report)
        assert report.num_items == 1  # objectPresence of person: the car-only image is not read


def test_decode_classes_never_wraps():
    rgb = np.array([[[40, 182, 7], [110, 4, 9], [0, 83, 0]]], dtype=np.uint8)
    classes, inst = decode_ade_classes(rgb)
    assert classes.tolist() == [[1206, 2820, 83]] and inst.tolist() == [[7, 9, 0]]


def test_parse_atr_fields(tmp_path):
    path = tmp_path / "x_atr.txt"
    path.write_text(
        '002 # 0 # 1 # person, individual, someone # person # "sitting, walking"\n\n'
        '001 # 1 # 0 # head # head # ""\n'
    )
    rows = parse_atr(str(path))
    assert [(r.instance, r.level, r.crop, r.raw_name) for r in rows] == [
        (2, 0, 1, "person"),
        (1, 1, 0, "head"),
    ]
    assert rows[0].attributes == ("sitting", "walking") and rows[1].attributes == ()


def test_overlapping_part_pngs_resolved_by_parts_map():
    a, b = np.zeros((2, 3), bool), np.zeros((2, 3), bool)
    a[:, :2], b[:, 1:] = True, True  # column 1 claimed by both
    classes = np.array([[1206, 2820, 2820], [1206, 0, 2820]])  # head row 0, nothing row 1
    out = _resolve_overlaps({label("head"): a, label("torso"): b}, lambda: classes)
    assert out[label("head")].tolist() == [[True, False, False], [True, False, False]]
    assert out[label("torso")].tolist() == [[False, True, True], [False, False, True]]


def test_2021_overlapping_instance_pngs(tmp_path):
    root, expected = fresh(tmp_path, "2021")
    base = expected["ADE_train_00000001"]["base"]
    torso_png = os.path.join(base, "instance_006_ADE_train_00000001.png")
    torso = np.array(Image.open(torso_png))
    torso[4:12, 10:18] = 255  # the torso PNG also claims the head
    Image.fromarray(torso, mode="L").save(torso_png)
    check_against_expected(load_ade20k_2021(root, "train"), expected, "train")  # _parts_1 decides


def test_metadata_and_registration(tmp_path):
    root = str(tmp_path)
    expected = write_ade20k_2021(os.path.join(root, RELEASE_DIRS["2021"]))
    names = register_all_ade20k(root)
    assert names == [
        "ade20k_2016_person_train",
        "ade20k_2016_person_val",
        "ade20k_2021_person_train",
        "ade20k_2021_person_val",
    ]
    meta = MetadataCatalog.get("ade20k_2021_person_val")
    assert meta.part_taxonomy == "ade_person15" and meta.thing_classes == ["person"]
    assert meta.dataset_root == os.path.join(root, RELEASE_DIRS["2021"])
    pairs = set(meta.part_flip_pairs)
    for part in ("shoulder", "arm", "hand", "leg", "foot"):
        assert (f"left_{part}", f"right_{part}") in pairs
    assert len(pairs) == 5
    check_against_expected(DatasetCatalog.get("ade20k_2021_person_val"), expected, "val")
    # ade_person15 maps onto lr6 only (no upper/lower limbs)
    assert mapping_lut("ade_person15", "lr6")[label("right_hand")] == 4  # right arm
    assert not can_express("ade_person15", "fine_lr") and not can_express("ade_person15", "ppp6")
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


# ---------------------------------------------------------------------------------------------
# Bad input: every problem names its file


def rewrite_json(base, edit):
    path = base + ".json"
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    edit(data["annotation"])
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)
    return path


def object_by_id(ann, oid):
    return next(o for o in ann["object"] if o["id"] == oid)


def expect_error(load, root, split, path, *words):
    with pytest.raises(DatasetFormatError) as info:
        load(root, split)
    assert info.value.path == path, str(info.value)
    for w in words:
        assert w in info.value.problem, str(info.value)


def truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def test_2021_truncated_instance_png(tmp_path):
    root, exp = fresh(tmp_path, "2021")
    png = os.path.join(exp["ADE_train_00000001"]["base"], "instance_000_ADE_train_00000001.png")
    truncate(png)
    expect_error(load_ade20k_2021, root, "train", png, "truncated")


def test_2021_instance_png_size_differs(tmp_path):
    root, exp = fresh(tmp_path, "2021")
    png = os.path.join(exp["ADE_train_00000001"]["base"], "instance_005_ADE_train_00000001.png")
    Image.fromarray(np.zeros((47, 64), np.uint8), mode="L").save(png)
    expect_error(load_ade20k_2021, root, "train", png, "64x47", "64x48")


def test_2021_instance_png_bad_values(tmp_path):
    root, exp = fresh(tmp_path, "2021")
    png = os.path.join(exp["ADE_train_00000001"]["base"], "instance_004_ADE_train_00000001.png")
    Image.fromarray(np.full((48, 64), 77, np.uint8), mode="L").save(png)
    expect_error(load_ade20k_2021, root, "train", png, "0/128/255", "77")
    Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(png)
    expect_error(load_ade20k_2021, root, "train", png, "mode RGB", "expected L")


def test_2021_imsize_differs(tmp_path):
    root, exp = fresh(tmp_path, "2021")
    path = rewrite_json(exp["ADE_val_00000001"]["base"], lambda a: a.update(imsize=[41, 48, 3]))
    expect_error(load_ade20k_2021, root, "val", path, "imsize", "[41, 48, 3]")


def test_2021_json_missing_key(tmp_path):
    root, exp = fresh(tmp_path, "2021")
    path = rewrite_json(
        exp["ADE_val_00000001"]["base"], lambda a: object_by_id(a, 2).pop("name_ndx")
    )
    expect_error(load_ade20k_2021, root, "val", path, "id 2", "'name_ndx'")


def test_2021_truncated_json(tmp_path):
    root, exp = fresh(tmp_path, "2021")
    path = exp["ADE_val_00000001"]["base"] + ".json"
    truncate(path)
    expect_error(load_ade20k_2021, root, "val", path, "not valid JSON")


def test_2021_unknown_person_part_class(tmp_path):
    root, exp = fresh(tmp_path, "2021")

    def edit(ann):
        object_by_id(ann, 7).update(name_ndx=3035, name="wheel")  # P1's left arm

    path = rewrite_json(exp["ADE_train_00000001"]["base"], edit)
    expect_error(
        load_ade20k_2021, root, "train", path, "object id 7", "3035", "'wheel'", "person id 0"
    )


def test_2021_class_name_disagrees_with_index(tmp_path):
    root, exp = fresh(tmp_path, "2021")
    path = rewrite_json(
        exp["ADE_train_00000001"]["base"], lambda a: object_by_id(a, 5).update(name="hat")
    )
    expect_error(load_ade20k_2021, root, "train", path, "object id 5", "'head'", "'hat'")


def test_2021_known_inexpressible_part_left_unlabelled(tmp_path):
    root, exp = fresh(tmp_path, "2021")
    rewrite_json(
        exp["ADE_train_00000001"]["base"],
        lambda a: object_by_id(a, 14).update(name_ndx=1160, name="hair"),
    )
    (rec,) = load_ade20k_2021(root, "train")
    p3 = next(a for a in rec["annotations"] if a["ade_id"] == 4)
    assert sorted(p3["parts"]) == [label("head")] and p3["parts_complete"] is False


@pytest.mark.parametrize("release", ["2016", "2021"])
def test_missing_image(tmp_path, release):
    root, exp = fresh(tmp_path, release)
    jpg = exp["ADE_val_00000001"]["base"] + ".jpg"
    os.remove(jpg)
    expect_error(LOADERS[release], root, "val", jpg, "image not found")


def test_2016_truncated_seg(tmp_path):
    root, exp = fresh(tmp_path, "2016")
    seg = exp["ADE_val_00000001"]["base"] + "_seg.png"
    truncate(seg)
    expect_error(load_ade20k_2016, root, "val", seg, "truncated")


def test_2016_seg_size_differs_from_image(tmp_path):
    root, exp = fresh(tmp_path, "2016")
    seg = exp["ADE_val_00000001"]["base"] + "_seg.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(seg)
    expect_error(load_ade20k_2016, root, "val", seg, "50x40", "48x40")


def test_2016_malformed_atr_line(tmp_path):
    root, exp = fresh(tmp_path, "2016")
    atr = exp["ADE_val_00000001"]["base"] + "_atr.txt"
    lines = open(atr).read().splitlines()
    lines[3] = "004 # 1 # 0 # back # back"  # 5 fields
    open(atr, "w").write("\n".join(lines))
    expect_error(load_ade20k_2016, root, "val", atr, "line 4", "6 '#'-separated fields")
    lines[3] = "004 # 1 # 0 # back # back # no quotes"
    open(atr, "w").write("\n".join(lines))
    expect_error(load_ade20k_2016, root, "val", atr, "line 4", "double-quoted")


def test_2016_atr_cross_checks(tmp_path):
    root, exp = fresh(tmp_path, "2016")
    atr = exp["ADE_val_00000001"]["base"] + "_atr.txt"
    lines = open(atr).read().splitlines()
    person_lines = [i for i, line in enumerate(lines) if " # 0 # 0 # person," in line]
    assert len(person_lines) == 2
    open(atr, "w").write("\n".join(lines[: person_lines[0]] + lines[person_lines[0] + 1 :]))
    expect_error(load_ade20k_2016, root, "val", atr, "2 person instances", "lists 1")
    open(atr, "w").write("\n".join(line for line in lines if "neck" not in line))
    expect_error(load_ade20k_2016, root, "val", atr, "1646", "neck")


def test_index_objectnames_checked(tmp_path):
    import pickle

    root, _ = fresh(tmp_path, "2021")
    path = os.path.join(root, "index_ade20k.pkl")
    with open(path, "rb") as f:
        index = pickle.load(f)
    index["objectnames"][1205] = "hat"  # class 1206 must be head
    with open(path, "wb") as f:
        pickle.dump(index, f)
    expect_error(load_ade20k_2021, root, "train", path, "class 1206", "'hat'", "'head'")


@pytest.mark.parametrize("release", ["2016", "2021"])
def test_on_error_skip_counts(tmp_path, release):
    root, exp = fresh(tmp_path, release, repeat=3)
    bad = ["ADE_train_00000001", "ADE_train_00000101"]
    for name in bad:
        os.remove(exp[name]["base"] + ".jpg")
    report = LoadReport()
    records = LOADERS[release](root, "train", on_error="skip", report=report)
    assert sorted(r["image_id"] for r in records) == ["ADE_train_00000100", "ADE_train_00000102"]
    assert [k.rsplit("/", 1)[-1] for k, _ in report.skipped] == bad
    assert all("image not found" in problem for _, problem in report.skipped)
    with pytest.raises(DataContractError, match="image not found"):  # the cached error, re-raised
        LOADERS[release](root, "train")


# ---------------------------------------------------------------------------------------------
# Record cache


@pytest.mark.parametrize("release", ["2016", "2021"])
def test_cache_hit_and_invalidation(tmp_path, release):
    root, exp = fresh(tmp_path, release, repeat=2)
    load = LOADERS[release]
    cold, warm = LoadReport(), LoadReport()
    first = load(root, "train", report=cold)
    assert cold.num_parsed == cold.num_items == 3 and cold.num_cached == 0
    second = load(root, "train", report=warm)
    assert warm.num_cached == warm.num_items == 3 and warm.num_parsed == 0
    assert second == first
    base = exp["ADE_train_00000100"]["base"]
    source = base + ("_atr.txt" if release == "2016" else ".json")
    st = os.stat(source)
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = LoadReport()
    assert load(root, "train", report=touched) == first
    assert touched.num_parsed == 1 and touched.num_cached == 2
    # a changed source is re-read: P3's torso becomes unannotated
    if release == "2021":
        rewrite_json(base, lambda a: object_by_id(a, 14)["parts"].update(ispartof=[]))
    else:
        parts = np.array(Image.open(base + "_parts_1.png"))
        parts[5:10, 28:34] = 0
        Image.fromarray(parts).save(base + "_parts_1.png")
    changed = LoadReport()
    rec = by_id(load(root, "train", report=changed))["ADE_train_00000100"]
    assert changed.num_parsed == 1
    p3 = next(a for a in rec["annotations"] if a["bbox"][0] == 28.0)
    assert sorted(p3["parts"]) == [label("head")] and p3["parts_complete"] is False


# ---------------------------------------------------------------------------------------------
# Real 2021 files


needs_real = pytest.mark.skipif(
    not os.path.isdir(REAL_DIR), reason=f"real ADE20K 2021 sample files not found at {REAL_DIR}"
)


@needs_real
def test_real_2021_persons_without_parts():
    report = LoadReport()
    records = by_id(load_ade20k_2021(REAL_2021, "train", use_cache=False, report=report))
    assert sorted(records) == ["ADE_train_00016869", "ADE_train_00016900"] and report.num_items == 2
    want_ids = {
        "ADE_train_00016869": [7, 8, 17, 18, 19, 37, 38, 53, 66],
        "ADE_train_00016900": [29, 30, 31, 35],
    }
    for name, rec in records.items():
        assert (rec["width"], rec["height"]) == Image.open(
            os.path.join(REAL_DIR, name + ".jpg")
        ).size
        assert [a["ade_id"] for a in rec["annotations"]] == want_ids[name]  # 9 and 4 persons
        for ann in rec["annotations"]:
            png = os.path.join(REAL_DIR, name, f"instance_{ann['ade_id']:03d}_{name}.png")
            visible = np.array(Image.open(png)) == 255
            assert np.array_equal(mask(ann["segmentation"]), visible)
            ys, xs = np.nonzero(visible)
            assert ann["bbox"] == [
                xs.min(),
                ys.min(),
                xs.max() + 1 - xs.min(),
                ys.max() + 1 - ys.min(),
            ]
            assert ann["parts"] is None  # the cars' and buildings' parts are not taken
    walking = next(a for a in records["ADE_train_00016869"]["annotations"] if a["ade_id"] == 53)
    assert walking["attributes"] == ["walking"]  # a plain string in the JSON
