"""LIP native loader: fixtures whose every value is known by construction (tests/fixtures/lip.py),
the three folder layouts, each bad input, the record cache, registration, the lip20 taxonomy
(no shared taxonomy can be expressed) and the semantic mapper in lip20."""

import json
import os
import shutil

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from fixtures import lip as fx
from PIL import Image

from bodyparts.data.contract import decode_rle, part_label_map
from bodyparts.data.datasets.lip import lip_paths, load_lip, register_all_lip
from bodyparts.data.datasets.native import DatasetFormatError, LoadReport, validate_records
from bodyparts.data.semantic_mapper import BodyPartsSemSegMapper
from bodyparts.taxonomy import CIHP20, LIP20, TaxonomyError, can_express, mapping_lut


@pytest.fixture(scope="module")
def lip_root(tmp_path_factory):
    return fx.write_lip_fixture(str(tmp_path_factory.mktemp("lip")))


@pytest.fixture
def broken_root(lip_root, tmp_path):
    root = str(tmp_path / "lip")
    shutil.copytree(lip_root, root)
    return root


def _by_id(records):
    return {r["image_id"]: r for r in records}


def test_records_of_the_id_lists(lip_root):
    records = load_lip(lip_root, "train")
    assert [r["image_id"] for r in records] == fx.TRAIN_IDS
    validate_records(records, lip_root, LIP20.num_parts)
    images, segs, _ = fx.split_dirs(lip_root, "train")
    for rec in records:
        assert (rec["height"], rec["width"]) == fx.IMAGES[rec["image_id"]]["size"]
        assert rec["part_taxonomy"] == "lip20"
        assert rec["file_name"] == os.path.join(images, f"{rec['image_id']}.jpg")
        assert rec["sem_seg_file_name"] == os.path.join(segs, f"{rec['image_id']}.png")
    assert [r["image_id"] for r in load_lip(lip_root, "val")] == fx.VAL_IDS


def test_the_foreground_is_the_one_person(lip_root):
    records = _by_id(load_lip(lip_root, "train"))
    (person,) = records["100034_483681"]["annotations"]
    labels = fx.label_map("100034_483681")
    assert np.array_equal(part_label_map(person, 60, 40), labels)
    assert np.array_equal(decode_rle(person["segmentation"]).astype(bool), labels > 0)
    # hair from row 2, shoes to row 55; right arm from column 6, left arm to column 33
    assert person["bbox"] == [6.0, 2.0, 28.0, 54.0]
    assert sorted(person["parts"]) == [2, 4, 10, 13, 14, 15, 18, 19]  # 10 = jumpsuits
    assert person["parts_complete"] is True
    assert records["100098_0"]["annotations"] == []  # all background: no person


def test_ignored_pixels_are_neither_person_nor_part(lip_root):
    (person,) = _by_id(load_lip(lip_root, "train"))["100051_1189183"]["annotations"]
    r0, r1, c0, c1 = fx.IGNORED
    assert not decode_rle(person["segmentation"])[r0:r1, c0:c1].any()
    assert (part_label_map(person, 30, 50)[r0:r1, c0:c1] == 0).all()
    assert int(decode_rle(person["parts"][fx.COAT]).sum()) == 20 * 20 - 4 * 4


def test_nested_and_flat_layouts(tmp_path):
    nested = fx.write_lip_fixture(str(tmp_path / "nested"), nested=True)
    paths = lip_paths(nested, "train")
    assert paths["images"].endswith(
        os.path.join("TrainVal_images", "TrainVal_images", "train_images")
    )
    records = load_lip(nested, "train")
    assert [r["image_id"] for r in records] == fx.TRAIN_IDS
    flat = (
        tmp_path / "flat"
    )  # CE2P, sssegmentation: train_images/, train_segmentations/, train_id.txt
    images, segs, ids = fx.split_dirs(nested, "val", nested=True)
    shutil.copytree(images, flat / "val_images")
    shutil.copytree(segs, flat / "val_segmentations")
    shutil.copy(ids, flat / "val_id.txt")
    (rec,) = load_lip(str(flat), "val")
    assert rec["file_name"] == str(flat / "val_images" / "100051_1189183.jpg")
    missing = r"TrainVal_images/train_images: images folder not found \(tried "
    with pytest.raises(DatasetFormatError, match=missing):
        load_lip(str(tmp_path / "empty"), "train")
    with pytest.raises(ValueError, match="split must be one of"):
        load_lip(nested, "test")


def _rgb(path):
    labels = np.asarray(Image.open(path))
    Image.fromarray(np.stack([labels] * 3, axis=-1), "RGB").save(path)


def _crop(path):
    Image.fromarray(np.asarray(Image.open(path))[:, :-2]).save(path)


def _label_20(path):
    labels = np.asarray(Image.open(path)).copy()
    labels[0, :3] = [20, 21, 254]
    Image.fromarray(labels).save(path)


BAD = {
    "image missing": (0, os.remove, r"train_images/100051_1189183\.jpg: image not found"),
    "annotation missing": (
        1,
        os.remove,
        r"train_segmentations/100051_1189183\.png: parsing annotation not found",
    ),
    "annotation RGB": (1, _rgb, r"100051_1189183\.png: parsing annotation has PIL mode RGB"),
    "size mismatch": (
        1,
        _crop,
        r"100051_1189183\.png: parsing annotation is 48x30 \(W x H\) but its image .* is 50x30",
    ),
    "labels outside": (
        1,
        _label_20,
        r"label value\(s\) \[20, 21, 254\] outside 0\.\.19 \(and 255\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_the_file_or_is_skipped(broken_root, case):
    which, damage, message = BAD[case]
    damage(
        fx.split_dirs(broken_root, "train")[which]
        + ("/100051_1189183.jpg", "/100051_1189183.png")[which]
    )
    with pytest.raises(DatasetFormatError, match=message):
        load_lip(broken_root, "train")
    report = LoadReport()
    records = load_lip(broken_root, "train", on_error="skip", report=report)
    assert [r["image_id"] for r in records] == ["100034_483681", "100098_0"]
    assert [key for key, _ in report.skipped] == ["100051_1189183"]


def test_cache_and_registration(broken_root, tmp_path, restore_catalogs, monkeypatch):
    root = tmp_path / "datasets"
    os.makedirs(root)
    os.symlink(broken_root, root / "lip")
    assert register_all_lip(str(root)) == ["lip_train", "lip_val"]
    meta = MetadataCatalog.get("lip_train")
    assert meta.part_taxonomy == "lip20" and meta.part_names[9] == "jumpsuits"
    first = LoadReport()
    load_lip(broken_root, "train", report=first)
    warm = LoadReport()
    load_lip(broken_root, "train", report=warm)
    assert (warm.num_parsed, warm.num_cached) == (0, 3)
    os.remove(fx.split_dirs(broken_root, "train")[1] + "/100098_0.png")
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "skip")
    assert [r["image_id"] for r in DatasetCatalog.get("lip_train")] == [
        "100034_483681",
        "100051_1189183",
    ]
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "raise")
    with pytest.raises(DatasetFormatError, match=r"100098_0\.png: parsing annotation not found"):
        DatasetCatalog.get("lip_train")


def test_lip20_differs_from_cihp20_only_in_label_10():
    differ = [k for k, (a, b) in enumerate(zip(LIP20.label_names, CIHP20.label_names)) if a != b]
    assert (
        differ == [10]
        and LIP20.label_names[10] == "jumpsuits"
        and CIHP20.label_names[10] == "torso_skin"
    )
    assert LIP20.flip_lut().tolist() == [*range(14), 15, 14, 17, 16, 19, 18]
    for target in ("lr6", "fine_lr", "ppp6", "cihp20"):
        assert not can_express("lip20", target), target
    message = (
        r"dataset 'lip_train' .* 'lip20' cannot express taxonomy 'lr6': "
        r"no source parts for \['torso'\]"
    )
    with pytest.raises(TaxonomyError, match=message):
        mapping_lut("lip20", "lr6", "lip_train")


def test_semantic_mapper_in_lip20_swaps_sides_on_a_flip(lip_root):
    rec = _by_id(load_lip(lip_root, "train"))["100034_483681"]
    mapper = BodyPartsSemSegMapper(
        True,
        augmentations=[T.RandomFlip(prob=1.0, horizontal=True)],
        image_format="BGR",
        part_taxonomy="lip20",
        part_luts={"lip20": mapping_lut("lip20", "lip20")},
    )
    sem_seg = mapper(rec)["sem_seg"].numpy()
    labels = fx.label_map("100034_483681")
    assert np.array_equal(sem_seg, LIP20.flip_lut()[labels[:, ::-1]])
    assert sem_seg[20, 40 - 1 - 6] == fx.L_ARM and sem_seg[52, 40 - 1 - 12] == fx.L_SHOE


def test_check_dataset_on_the_fixture(lip_root, tmp_path, restore_catalogs):
    from test_check_dataset import _tool

    root = tmp_path / "datasets"
    os.makedirs(root)
    os.symlink(lip_root, root / "lip")
    register_all_lip(str(root))
    tool = _tool()
    args = tool.get_parser().parse_args(
        ["lip_train", "--output", str(tmp_path / "out"), "--num-vis", "3"]
    )
    assert tool.main(args) == 0
    summary = json.loads((tmp_path / "out" / "lip_train" / "summary.json").read_text())
    assert summary["images"] == 3 and summary["images_with_persons"] == 2
    assert summary["persons"] == {"total": 2, "full_parts": 2}
    assert summary["part_share"]["jumpsuits"] > 0 and summary["problems"] == []
    with pytest.raises(tool.CheckError, match="'lip20' cannot express taxonomy 'lr6'"):
        args = ["lip_train", "--output", str(tmp_path / "o2"), "--taxonomy", "lr6"]
        tool.main(tool.get_parser().parse_args(args))
