"""tools/check_dataset.py on a registered PASCAL-Part fixture split with one broken file."""

import importlib.util
import json
import os

import numpy as np
import pytest
from _helpers import (
    dataset_name,  # noqa: F401  (fixture)
    parts_from_map,
    write_image,
)
from conftest import REPO
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from fixtures.pascal_part import write_pascal_part_fixture

from bodyparts.data.contract import encode_mask
from bodyparts.data.datasets.pascal_part import register_all_pascal_part
from bodyparts.taxonomy import get_part_taxonomy

TOOL = os.path.join(REPO, "tools", "check_dataset.py")


def _tool():
    spec = importlib.util.spec_from_file_location("bodyparts_check_dataset_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def pascal_root(tmp_path, restore_catalogs):
    """The PASCAL-Part fixture in the registered layout; the val list names a corrupt .mat. The
    splits registered under it are undone afterwards (restore_catalogs), also after a failure."""
    root = tmp_path / "datasets"
    anno = root / "pascal_part" / "Annotations_Part"
    images = root / "VOCdevkit" / "VOC2010" / "JPEGImages"
    expected = write_pascal_part_fixture(
        str(root / "pascal_part"), image_dir="../VOCdevkit/VOC2010/JPEGImages"
    )
    main = root / "VOCdevkit" / "VOC2010" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    ids = sorted(expected)
    (main / "train.txt").write_text("\n".join(ids) + "\n")
    (anno / "2010_000009.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(40))
    (main / "val.txt").write_text("2008_000002\n2010_000009\n")
    assert images.is_dir()
    register_all_pascal_part(str(root))
    yield root, expected


def test_check_dataset_reports_counts_and_renders(pascal_root, tmp_path, monkeypatch, capsys):
    root, expected = pascal_root
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "raise")
    tool = _tool()
    out = tmp_path / "report"
    args = tool.get_parser().parse_args(
        [
            "pascal_part_person_train",
            "--output",
            str(out),
            "--num-vis",
            "2",
            "--taxonomy",
            "lr6",
            "--timing",
        ]
    )
    assert tool.main(args) == 0
    summary = json.loads((out / "pascal_part_person_train" / "summary.json").read_text())
    # images with persons: 2008_000001 (persons a, b, c) and 2008_000002 (one person); 2009_000003
    # (a cat and a boat) has none and gives no record
    assert summary["images"] == 2 and summary["images_with_persons"] == 2
    persons = sum(len(expected[i].persons) for i in ("2008_000001", "2008_000002"))
    assert summary["persons"]["total"] == persons == 4
    assert summary["persons"].get("with_keypoints", 0) == 0
    assert summary["problems"] == []
    assert set(summary["part_share_lr6"]) == {
        "head",
        "torso",
        "left_arm",
        "right_arm",
        "left_leg",
        "right_leg",
    }
    assert summary["part_share_lr6"]["right_arm"] == 0.0  # no right arm part in the fixture
    assert summary["timing"]["warm_records_per_s"] > 0
    samples = sorted(os.listdir(out / "pascal_part_person_train" / "samples"))
    assert samples == ["2008_000001.png", "2008_000002.png"]
    assert "with all parts" in capsys.readouterr().out


def test_check_dataset_broken_file_stops_or_is_skipped(pascal_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "raise")
    tool = _tool()
    args = tool.get_parser().parse_args(["pascal_part_person_val", "--output", str(tmp_path / "r")])
    with pytest.raises(tool.DataContractError, match=r"2010_000009.mat: .*truncated or corrupt"):
        tool.main(args)
    args = tool.get_parser().parse_args(
        ["pascal_part_person_val", "--output", str(tmp_path / "r"), "--skip-bad"]
    )
    assert tool.main(args) == 0
    summary = json.loads((tmp_path / "r" / "pascal_part_person_val" / "summary.json").read_text())
    assert summary["images"] == 1  # 2008_000002; the broken file is skipped (and logged)
    with pytest.raises(tool.CheckError, match="unknown dataset 'pascal_part_person_tset'"):
        tool.main(tool.get_parser().parse_args(["pascal_part_person_tset"]))


def _cihp_split(tmp_path, name):
    """One 8 x 8 CIHP image (cihp20 labels), one person with 10 part pixels: hair 2, face 2 (both
    lr6 head), upper clothes 4 (unmapped in lr6: 255, ignored), left arm 2 (lr6 left_arm)."""
    cihp = get_part_taxonomy("cihp20")
    parts = np.zeros((8, 8), dtype=np.uint8)
    parts[0, 2:4] = cihp.label_of("hair")
    parts[1, 2:4] = cihp.label_of("face")
    parts[2:4, 2:4] = cihp.label_of("upper_clothes")
    parts[2, 1], parts[3, 1] = cihp.label_of("left_arm"), cihp.label_of("left_arm")
    image = str(tmp_path / "img" / "0000001.jpg")
    write_image(image, 8, 8)
    ann = {
        "bbox": [1.0, 0.0, 3.0, 4.0],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 0,
        "iscrowd": 0,
        "segmentation": encode_mask(parts > 0),
        "parts": parts_from_map(parts),
    }
    record = {
        "file_name": image,
        "height": 8,
        "width": 8,
        "image_id": "0000001",
        "part_taxonomy": "cihp20",
        "annotations": [ann],
    }
    DatasetCatalog.register(name, lambda: [record])
    MetadataCatalog.get(name).set(part_taxonomy="cihp20", thing_classes=["person"])


def test_lr6_shares_leave_ignored_pixels_out(tmp_path, dataset_name, capsys):  # noqa: F811
    """``--taxonomy lr6`` on a split with unmapped labels: the lr6 part shares are over the pixels
    that lr6 labels (6 of the 10 part pixels: head 4, left_arm 2) and sum to 100; the ignored
    share (4 of 10 = 40 %) is its own line. The native shares are over all 10 part pixels."""
    _cihp_split(tmp_path, dataset_name)
    tool = _tool()
    out = tmp_path / "report"
    args = tool.get_parser().parse_args(
        [dataset_name, "--output", str(out), "--num-vis", "1", "--taxonomy", "lr6"]
    )
    assert tool.main(args) == 0
    summary = json.loads((out / dataset_name / "summary.json").read_text())
    assert summary["problems"] == []
    shares = summary["part_share_lr6"]
    assert shares == {
        "head": 66.67,
        "torso": 0.0,
        "left_arm": 33.33,
        "right_arm": 0.0,
        "left_leg": 0.0,
        "right_leg": 0.0,
    }
    assert sum(shares.values()) == pytest.approx(100.0)
    assert summary["ignored_share_lr6"] == 40.0 and summary["background_share_lr6"] == 0.0
    native = summary["part_share"]
    assert {k: v for k, v in native.items() if v} == {
        "hair": 20.0,
        "face": 20.0,
        "upper_clothes": 40.0,
        "left_arm": 20.0,
    }
    printed = capsys.readouterr().out
    assert "part_share_lr6: head 66.67%, torso 0.0%, left_arm 33.33%" in printed
    assert (
        "lr6: 40.0% of the part pixels ignored (unmapped labels: no loss, not scored); "
        "part_share_lr6 is over the other 60.0%" in printed
    )


def test_catalogs_are_restored_after_a_failing_test(tmp_path):
    """What restore_catalogs does when a test fails after re-registering the PASCAL-Part splits
    under another root and registering a split of its own."""
    from _helpers import catalogs_restored
    from detectron2.data import DatasetCatalog, MetadataCatalog

    name = "pascal_part_person_train"
    loader, meta = DatasetCatalog[name], MetadataCatalog.get(name)
    attributes = dict(vars(meta))
    with pytest.raises(RuntimeError, match="the test failed"):
        with catalogs_restored():
            register_all_pascal_part(str(tmp_path))
            assert DatasetCatalog[name] is not loader and MetadataCatalog.get(name) is not meta
            DatasetCatalog.register("bodyparts_test_added_split", list)
            MetadataCatalog.get("bodyparts_test_added_split").set(part_taxonomy="lr6")
            raise RuntimeError("the test failed")
    assert DatasetCatalog[name] is loader and MetadataCatalog.get(name) is meta
    assert vars(MetadataCatalog.get(name)) == attributes
    assert str(tmp_path) not in str(attributes)  # the default root, not the test's
    assert "bodyparts_test_added_split" not in DatasetCatalog.list()
    assert "bodyparts_test_added_split" not in MetadataCatalog.list()
