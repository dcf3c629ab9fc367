"""ChaLearn LAP 2014 Track 1 loader on native-layout fixtures with known limb rectangles."""

import logging
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from bodyparts.data.contract import decode_rle, part_label_map
from bodyparts.data.datasets.chalearn_lap import (
    MASK_THRESHOLD,
    OVERLAP_PRIORITY,
    load_chalearn_lap,
    register_all_chalearn_lap,
)
from bodyparts.data.datasets.native import DatasetFormatError, LoadReport, validate_records
from bodyparts.taxonomy import LAP14, LR6, PPP6, mapping_lut
from tests.fixtures.chalearn_lap import (
    FRAME_SIZE,
    actor_box,
    expected_label_map,
    limb_masks,
    write_frame,
    write_panoramic,
    write_per_limb,
    write_sequence,
    write_split_tree,
)

W, H = FRAME_SIZE


def _load(split_dir, **kw):
    kw.setdefault("use_cache", False)
    return load_chalearn_lap(str(split_dir), **kw)


def _label_maps(record):
    return [part_label_map(a, record["height"], record["width"]) for a in record["annotations"]]


def _strip(records):
    """Records without file paths (to compare two layouts of the same content)."""
    return [{k: v for k, v in r.items() if k != "file_name"} for r in records]


@pytest.fixture
def pano(tmp_path):
    """Seq01, panoramic masks, 3 frames, actor 2 blank in frame 2."""
    write_sequence(str(tmp_path), 1, 3, blank=[(2, 2)])
    return tmp_path


def test_panoramic_records(pano):
    records = _load(pano)
    validate_records(records, "test", LAP14.num_parts)
    assert [r["image_id"] for r in records] == ["01_0001", "01_0002", "01_0003"]
    assert [len(r["annotations"]) for r in records] == [2, 1, 2]
    for r in records:
        assert (r["width"], r["height"], r["part_taxonomy"]) == (W, H, "lap14")
        assert r["file_name"] == os.path.join(
            str(pano), "Seq01", "imagesjpg", r["image_id"] + ".jpg"
        )
    frame = 3
    for actor, ann in zip((1, 2), records[frame - 1]["annotations"]):
        assert ann["bbox_mode"] == BoxMode.XYWH_ABS and ann["category_id"] == 0
        assert tuple(ann["bbox"]) == actor_box(frame, actor)
        assert sorted(ann["parts"]) == list(range(1, 15))
        expected = expected_label_map(frame, actor, OVERLAP_PRIORITY)
        np.testing.assert_array_equal(part_label_map(ann, H, W), expected)
        # silhouette = union of the 14 limbs
        union = limb_masks(frame, actor).any(axis=0)
        np.testing.assert_array_equal(decode_rle(ann["segmentation"]).astype(bool), union)
        assert ann["area"] == union.sum()


def test_known_pixels_and_overlap_priority(pano):
    labels = _label_maps(_load(pano)[0])[0]  # frame 1, actor 1 at x offset 0
    assert labels[7, 15] == 1  # head over torso
    assert labels[15, 15] == 2  # torso
    assert labels[21, 22] == 3  # lhand over lforearm
    assert labels[21, 21] == 3  # lhand over torso
    assert labels[22, 8] == 4  # rhand over torso
    assert labels[28, 17] == 13  # lthigh
    assert labels[30, 40] == 0  # background (actor 2 is another person)


def test_full_overlap_follows_priority(tmp_path):
    def same_rect(frame, actor):
        m = np.zeros((14, H, W), dtype=np.uint8)
        m[:, 10:20, 5 + 30 * (actor - 1) : 15 + 30 * (actor - 1)] = 255
        return m

    write_sequence(str(tmp_path), 5, 1, masks_fn=same_rect)
    (rec,) = _load(tmp_path)
    for ann in rec["annotations"]:
        assert list(ann["parts"]) == [OVERLAP_PRIORITY[0]] == [3]  # lhand wins everything
    assert OVERLAP_PRIORITY[-2:] == (1, 2) and sorted(OVERLAP_PRIORITY) == list(range(1, 15))


def test_both_layouts_give_equal_records(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_sequence(str(a), 1, 3, blank=[(2, 2)])
    write_sequence(str(b), 1, 3, blank=[(2, 2)], layout="per_limb")
    ra, rb = _load(a), _load(b)
    assert len(ra) == 3 and _strip(ra) == _strip(rb)


def test_doubled_layout_and_three_channel_masks(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_sequence(str(a), 2, 2)
    write_sequence(str(b), 2, 2, doubled=True, channels=3)
    assert os.path.isdir(b / "Seq02" / "Seq02" / "imagesjpg")
    rb = _load(b)
    assert rb[0]["file_name"] == os.path.join(str(b), "Seq02", "Seq02", "imagesjpg", "02_0001.jpg")
    assert _strip(_load(a)) == _strip(rb)


def test_threshold_127(tmp_path):
    def grey(frame, actor):
        m = np.zeros((14, H, W), dtype=np.uint8)
        m[0, 0:4, 4:8] = MASK_THRESHOLD + 1  # foreground
        m[1, 10:14, 4:8] = MASK_THRESHOLD  # background
        m[1, 20:22, 4:8] = 1  # a 0/1 mask reads as background
        return m

    write_sequence(str(tmp_path), 1, 1, masks_fn=grey)
    (rec,) = _load(tmp_path)
    assert [a["bbox"] for a in rec["annotations"]] == [[4.0, 0.0, 4.0, 4.0]] * 2
    assert [list(a["parts"]) for a in rec["annotations"]] == [[1], [1]]


def test_stride_and_sequence_selection(tmp_path):
    write_sequence(str(tmp_path), 1, 7)
    write_sequence(str(tmp_path), 3, 2, layout="per_limb")
    ids = [r["image_id"] for r in _load(tmp_path, frame_stride=3)]
    assert ids == ["01_0001", "01_0004", "01_0007", "03_0001"]
    assert [r["image_id"] for r in _load(tmp_path, sequences=["Seq03"])] == ["03_0001", "03_0002"]
    assert len(_load(tmp_path, sequences=[1])) == 7
    with pytest.raises(DatasetFormatError, match=r"sequences \[9\] not found"):
        _load(tmp_path, sequences=[9])
    with pytest.raises(ValueError, match="frame_stride"):
        _load(tmp_path, frame_stride=0)


def test_unlabelled_sequence_skipped(tmp_path, caplog):
    write_sequence(str(tmp_path), 1, 2)
    write_sequence(str(tmp_path), 4, 2, layout="none")
    with caplog.at_level(logging.INFO, logger="bodyparts.data.datasets.chalearn_lap"):
        records = _load(tmp_path)
    assert {r["image_id"][:2] for r in records} == {"01"}
    assert "Seq04: no mask files" in caplog.text


def test_missing_actor_blank_frame_and_unlabelled_frame(tmp_path, caplog):
    seq_root = write_sequence(str(tmp_path), 1, 3, missing=[(1, 2)], blank=[(2, 1), (2, 2)])
    write_frame(seq_root, 1, 4)  # a frame with a JPEG and no mask file at all
    with caplog.at_level(logging.INFO, logger="bodyparts.data.datasets.chalearn_lap"):
        records = _load(tmp_path)
    assert [(r["image_id"], len(r["annotations"])) for r in records] == [
        ("01_0001", 1),  # actor 2's file is missing: actor absent
        ("01_0002", 0),  # both actors blank: kept as a negative image
        ("01_0003", 2),
    ]
    assert "1 actor mask files missing" in caplog.text
    assert "1 frames without any mask file skipped" in caplog.text


def test_per_limb_missing_limb_file_is_empty_limb(tmp_path):
    seq_root = write_sequence(str(tmp_path), 1, 1, layout="per_limb")
    os.remove(os.path.join(seq_root, "maskspng", "01_0001_1_1.png"))  # head of actor 1
    anns = _load(tmp_path)[0]["annotations"]
    assert 1 not in anns[0]["parts"] and sorted(anns[1]["parts"]) == list(range(1, 15))


def test_image_ids_unique_across_sequences(tmp_path):
    for seq in (1, 2, 10):
        write_sequence(str(tmp_path), seq, 2)
    ids = [r["image_id"] for r in _load(tmp_path)]
    assert len(ids) == len(set(ids)) == 6 and ids[-1] == "10_0002"


# ---------------------------------------------------------------- bad input


def test_truncated_png(pano):
    path = os.path.join(str(pano), "Seq01", "masks", "01_0002_1.png")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(DatasetFormatError, match="truncated") as e:
        _load(pano)
    assert e.value.path == path


def test_panoramic_width_not_14_frame_widths(pano):
    path = os.path.join(str(pano), "Seq01", "masks", "01_0001_2.png")
    Image.fromarray(np.zeros((H, 13 * W), dtype=np.uint8)).save(path)
    with pytest.raises(DatasetFormatError, match="differs from the frame width 64") as e:
        _load(pano)
    assert e.value.path == path


def test_panoramic_height_mismatch(pano):
    path = os.path.join(str(pano), "Seq01", "masks", "01_0001_2.png")
    Image.fromarray(np.zeros((H + 2, 14 * W), dtype=np.uint8)).save(path)
    with pytest.raises(DatasetFormatError, match="height 50 differs from the frame height 48"):
        _load(pano)


def test_limb_mask_size_mismatch(tmp_path):
    seq_root = write_sequence(str(tmp_path), 1, 1, layout="per_limb")
    path = os.path.join(seq_root, "maskspng", "01_0001_2_7.png")
    Image.fromarray(np.zeros((H, W + 1), dtype=np.uint8)).save(path)
    with pytest.raises(
        DatasetFormatError, match="size 65x48 differs from the frame size 64x48"
    ) as e:
        _load(tmp_path)
    assert e.value.path == path


def test_limb_number_out_of_range(tmp_path):
    seq_root = write_sequence(str(tmp_path), 1, 1, layout="per_limb")
    path = os.path.join(seq_root, "maskspng", "01_0001_1_15.png")
    Image.fromarray(np.zeros((H, W), dtype=np.uint8)).save(path)
    with pytest.raises(DatasetFormatError, match="limb 15 out of range") as e:
        _load(tmp_path)
    assert e.value.path == path


def test_missing_jpeg_and_skip_count(pano):
    jpg = os.path.join(str(pano), "Seq01", "imagesjpg", "01_0003.jpg")
    os.remove(jpg)
    with pytest.raises(DatasetFormatError, match="frame image not found") as e:
        _load(pano)
    assert e.value.path == jpg
    report = LoadReport()
    records = _load(pano, on_error="skip", report=report)
    assert [r["image_id"] for r in records] == ["01_0001", "01_0002"]
    assert len(report.skipped) == 1 and report.skipped[0][0] == "01_0003"
    assert jpg in report.skipped[0][1]


def test_missing_split_dir(tmp_path):
    with pytest.raises(DatasetFormatError, match="split directory not found"):
        _load(tmp_path / "nope")
    with pytest.raises(DatasetFormatError, match="no SeqXX"):
        _load(tmp_path)


# ---------------------------------------------------------------- cache


def test_cache_hit_and_invalidation(pano):
    first, second, third = LoadReport(), LoadReport(), LoadReport()
    cold = load_chalearn_lap(str(pano), report=first)
    warm = load_chalearn_lap(str(pano), report=second)
    assert (first.num_parsed, second.num_cached, second.num_parsed) == (3, 3, 0)
    assert warm == cold
    # frame 2: actor 2 was blank; give it masks -> exactly that frame is re-read
    seq_root = os.path.join(str(pano), "Seq01")
    path = write_panoramic(seq_root, 1, 2, 2, limb_masks(2, 2))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = load_chalearn_lap(str(pano), report=third)
    assert (third.num_parsed, third.num_cached) == (1, 2)
    assert [len(r["annotations"]) for r in again] == [2, 2, 2]
    assert again[0] == cold[0] and again[2] == cold[2]


# ---------------------------------------------------------------- registration and taxonomy


def test_registration_metadata_and_splits(tmp_path):
    base = write_split_tree(str(tmp_path), train_frames=7, val_frames=2)
    names = register_all_chalearn_lap(str(tmp_path))
    try:
        assert names == [
            "chalearn_lap2014_train",
            "chalearn_lap2014_val",
            "chalearn_lap2014_train_stride6",
        ]
        meta = MetadataCatalog.get("chalearn_lap2014_train")
        assert meta.part_taxonomy == "lap14" and meta.part_names[2:4] == ["lhand", "rhand"]
        pairs = set(meta.part_flip_pairs)
        assert {("lhand", "rhand"), ("lforearm", "rforearm"), ("larm", "rarm")} <= pairs
        assert {("lfoot", "rfoot"), ("lleg", "rleg"), ("lthigh", "rthigh")} <= pairs and len(
            pairs
        ) == 6
        assert LAP14.flip_lut()[[3, 4, 13, 14, 1, 2]].tolist() == [4, 3, 14, 13, 1, 2]
        assert meta.dataset_root == os.path.join(base, "train")
        assert not hasattr(meta, "keypoint_names")
        train = DatasetCatalog.get("chalearn_lap2014_train")
        assert len(train) == 14 and {r["image_id"][:2] for r in train} == {"01", "02"}
        stride6 = DatasetCatalog.get("chalearn_lap2014_train_stride6")
        assert [r["image_id"] for r in stride6] == ["01_0001", "01_0007", "02_0001", "02_0007"]
        val = DatasetCatalog.get("chalearn_lap2014_val")  # Seq04 has no masks: skipped
        assert [r["image_id"] for r in val] == ["03_0001", "03_0002"]
    finally:
        register_all_chalearn_lap()  # back to the built-in registration under $DETECTRON2_DATASETS


def test_known_pixel_maps_to_lr6_and_ppp6(pano):
    labels = _label_maps(_load(pano)[0])[0]
    pixels = {(21, 22): "lhand", (28, 17): "lthigh", (7, 15): "head", (12, 24): "larm"}
    lr6, ppp6 = mapping_lut("lap14", "lr6"), mapping_lut("lap14", "ppp6")
    expected = {
        "lhand": ("left_arm", "lower_arms"),
        "lthigh": ("left_leg", "upper_legs"),
        "head": ("head", "head"),
        "larm": ("left_arm", "upper_arms"),
    }
    for (y, x), limb in pixels.items():
        label = labels[y, x]
        assert label == LAP14.label_of(limb)
        assert lr6[label] == LR6.label_of(expected[limb][0])
        assert ppp6[label] == PPP6.label_of(expected[limb][1])


def test_both_layouts_in_one_sequence_use_panoramic(tmp_path, caplog):
    seq_root = write_sequence(str(tmp_path), 1, 2)
    for frame in (1, 2):
        for actor in (1, 2):
            write_per_limb(seq_root, 1, frame, actor, np.zeros((14, H, W), dtype=np.uint8))
    with caplog.at_level(logging.INFO, logger="bodyparts.data.datasets.chalearn_lap"):
        records = _load(tmp_path)
    assert [len(r["annotations"]) for r in records] == [2, 2]
    assert "both mask layouts present" in caplog.text


def test_full_size_frames_480_wide(tmp_path):
    write_sequence(str(tmp_path), 6, 1, size=(480, 360))
    path = os.path.join(str(tmp_path), "Seq06", "masks", "06_0001_1.png")
    assert Image.open(path).size == (14 * 480, 360)
    (rec,) = _load(tmp_path)
    assert (rec["width"], rec["height"]) == (480, 360)
    assert [tuple(a["bbox"]) for a in rec["annotations"]] == [actor_box(1, 1), actor_box(1, 2)]
    labels = _label_maps(rec)[1]
    np.testing.assert_array_equal(labels, expected_label_map(1, 2, OVERLAP_PRIORITY, (480, 360)))
