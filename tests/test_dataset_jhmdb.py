"""J-HMDB native loader against fixtures whose every value is known by construction.

The fixture (tests/fixtures/jhmdb.py) draws one puppet per frame from fixed part rectangles,
moved ``SHIFT`` pixels right per frame, with joints on known pixel centres (1-based ``pos_img``).
"""

import logging
import os

import numpy as np
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from bodyparts.data.contract import decode_rle, part_label_map
from bodyparts.data.datasets.jhmdb import load_jhmdb, read_jhmdb_split, register_all_jhmdb
from bodyparts.data.datasets.native import DatasetFormatError, LoadReport, validate_records
from bodyparts.taxonomy import (
    JHMDB_KEYPOINTS,
    TaxonomyError,
    get_keypoint_taxonomy,
    get_part_taxonomy,
    keypoint_index_map,
    mapping_lut,
)
from tests.fixtures import jhmdb as fx

CLIP_A, CLIP_B, CLIP_C, CLIP_D = fx.CLIPS  # full; mask T-1; no flow; flow T-1
LOGGER = "bodyparts.data.datasets.jhmdb"


@pytest.fixture(scope="module")
def jhmdb_root(tmp_path_factory):
    """The standard fixture, read-only (tests that modify files write their own)."""
    return fx.write_jhmdb_fixture(str(tmp_path_factory.mktemp("jhmdb")))


def _by_clip(records):
    out = {}
    for rec in records:
        out.setdefault(rec["video_id"], []).append(rec)
    return out


def _expected_count(split, subset, stride=1):
    value = {"train": 1, "test": 2}[subset]
    usable = [fx.usable_frames(c) for c, v in fx.SPLITS[split].items() if v == value]
    return sum(len(range(0, n, stride)) for n in usable)


# ---- splits and strides


@pytest.mark.parametrize("split", [1, 2, 3])
@pytest.mark.parametrize("subset", ["train", "test"])
def test_records_per_split(jhmdb_root, split, subset):
    records = load_jhmdb(jhmdb_root, split, subset)
    assert len(records) == _expected_count(split, subset)
    clips = [c for c, v in fx.SPLITS[split].items() if v == {"train": 1, "test": 2}[subset]]
    assert sorted(_by_clip(records)) == sorted(clips)
    validate_records(records, jhmdb_root, 10, list(JHMDB_KEYPOINTS.names))


@pytest.mark.parametrize("stride", [2, 5])
def test_frame_stride(jhmdb_root, stride):
    records = load_jhmdb(jhmdb_root, 2, "train", frame_stride=stride)
    assert len(records) == _expected_count(2, "train", stride)
    for clip, recs in _by_clip(records).items():
        assert [r["frame_index"] for r in recs] == list(range(0, fx.usable_frames(clip), stride))


def test_split_lists(jhmdb_root):
    assert read_jhmdb_split(jhmdb_root, 1, "test") == [
        tuple(CLIP_B.split("/")),
        tuple(CLIP_D.split("/")),
    ]
    with pytest.raises(ValueError, match="split_number"):
        read_jhmdb_split(jhmdb_root, 4, "train")
    with pytest.raises(ValueError, match="subset"):
        load_jhmdb(jhmdb_root, 1, "val")


def test_listfiles_split_folder(tmp_path):
    root = fx.write_jhmdb_fixture(
        str(tmp_path), split_folder=os.path.join("listfiles", "JHMDB_splits")
    )
    assert len(load_jhmdb(root, 3, "train")) == _expected_count(3, "train")


# ---- one person per frame: box, silhouette, parts, keypoints


def test_person_against_construction(jhmdb_root):
    records = load_jhmdb(jhmdb_root, 1, "train") + load_jhmdb(jhmdb_root, 1, "test")
    assert len(records) == 16
    for rec in records:
        t = rec["frame_index"]
        assert rec["file_name"] == os.path.join(
            jhmdb_root, "Rename_Images", rec["video_id"], f"{t + 1:05d}.png"
        )
        assert rec["image_id"] == f"{rec['video_id']}/{t + 1:05d}"
        assert (rec["height"], rec["width"], rec["part_taxonomy"]) == (240, 320, "jhmdb10")
        (ann,) = rec["annotations"]
        x, y, w, h = fx.BOX0
        assert ann["bbox"] == [x + fx.SHIFT * t, y, w, h] and ann["bbox_mode"] == BoxMode.XYWH_ABS
        silhouette, flow = fx.person_maps(t)
        np.testing.assert_array_equal(decode_rle(ann["segmentation"]), silhouette)
        kps = np.array(ann["keypoints"]).reshape(15, 3)
        if rec["video_id"] == CLIP_A and t == 1:
            continue  # the joint outside the frame: test_keypoints_outside_invisible
        np.testing.assert_allclose(kps[:, :2], fx.expected_keypoints(t))
        assert (kps[:, 2] == 2).all()
        if rec["video_id"] == CLIP_C:
            assert ann["parts"] is None  # no puppet_flow.mat: person without part labels
            continue
        labels = part_label_map(ann, 240, 320)
        np.testing.assert_array_equal(labels, flow * silhouette)  # flow outside the silhouette cut
        for lab, (r0, r1, c0, c1) in fx.part_rects(t).items():
            assert (labels[r0:r1, c0:c1] == lab).all()
            assert decode_rle(ann["parts"][lab]).sum() == (r1 - r0) * (c1 - c0)
        assert ann["parts_complete"] is True


def test_coordinate_convention(tmp_path):
    """pos_img is 1-based: MATLAB (1, 1) = centre of the top-left pixel = contract (0.5, 0.5)."""
    fx.write_clip(str(tmp_path), "clap/v", 1)
    pos = fx.pos_img(1)
    pos[:, 0, 0] = (1.0, 1.0)  # top-left pixel centre
    pos[:, 1, 0] = (320.0, 240.0)  # bottom-right pixel centre
    pos[:, 2, 0] = (320.6, 240.0)  # beyond the right edge (continuous x = 320.1 > 320)
    fx.write_joints(fx.clip_dirs(str(tmp_path), "clap/v")["joints"], pos)
    fx.write_split_files(str(tmp_path), {1: {"clap/v": 1}})
    (rec,) = load_jhmdb(str(tmp_path), 1, "train")
    kps = rec["annotations"][0]["keypoints"]
    assert kps[0:3] == [0.5, 0.5, 2] and kps[3:6] == [319.5, 239.5, 2] and kps[6:9] == [0.0, 0.0, 0]


# ---- frame-count mismatches and joints outside the frame


def test_mask_with_fewer_frames(jhmdb_root, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        records = load_jhmdb(jhmdb_root, 1, "test", use_cache=False)
    clips = _by_clip(records)
    assert [r["frame_index"] for r in clips[CLIP_B]] == [0, 1, 2, 3]  # frame 5 has no mask: dropped
    assert [r["frame_index"] for r in clips[CLIP_D]] == [0, 1, 2, 3, 4]  # flow T-1: same rule
    assert f"{CLIP_B}: 1 of 5 frames dropped" in caplog.text
    assert f"{CLIP_D}: 1 of 6 frames dropped" in caplog.text


def test_keypoints_outside_invisible(jhmdb_root, caplog):
    with caplog.at_level(logging.INFO, logger=LOGGER):
        records = load_jhmdb(jhmdb_root, 1, "train", use_cache=False)
    rec = next(r for r in records if r["video_id"] == CLIP_A and r["frame_index"] == 1)
    kps = np.array(rec["annotations"][0]["keypoints"]).reshape(15, 3)
    assert kps[13].tolist() == [0.0, 0.0, 0]  # right ankle at x = 400 (MATLAB) > 320
    expected = fx.expected_keypoints(1)
    np.testing.assert_allclose(np.delete(kps[:, :2], 13, 0), np.delete(expected, 13, 0))
    assert (np.delete(kps[:, 2], 13) == 2).all()
    assert f"{CLIP_A}: 1 joint positions outside the frame set invisible" in caplog.text
    assert "jhmdb_split1_train: 7 frames, 1 joint positions outside the frame" in caplog.text


def test_keypoints_outside_error(jhmdb_root):
    with pytest.raises(DatasetFormatError, match="frame 2, joint right_ankle at") as e:
        load_jhmdb(jhmdb_root, 1, "train", keypoints_outside="error")
    assert e.value.path == fx.clip_dirs(jhmdb_root, CLIP_A)["joints"]


def test_flow_variant(tmp_path):
    root = str(tmp_path)
    fx.write_clip(root, "pour/v", 2, flow_variant="ann")
    fx.write_split_files(root, {1: {"pour/v": 2}})
    assert all(r["annotations"][0]["parts"] is None for r in load_jhmdb(root, 1, "test"))
    records = load_jhmdb(root, 1, "test", flow_variant="ann")
    assert sorted(records[1]["annotations"][0]["parts"]) == list(range(1, 11))


# ---- bad input


def _truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def _bad_clip(tmp_path, damage):
    """A one-clip root (``clap/v``, 4 frames) with ``damage(paths)`` applied; returns the root."""
    root = str(tmp_path)
    paths = fx.write_clip(
        root, "clap/v", 4, frame_hw=(120, 160) if damage == "size" else (240, 320)
    )
    fx.write_split_files(root, {1: {"clap/v": 1}})
    if callable(damage):
        damage(paths)
    return root, paths


BAD_INPUTS = {
    "truncated mask": (lambda p: _truncate(p["mask"]), "mask", "cannot read MATLAB file"),
    "truncated joints": (lambda p: _truncate(p["joints"]), "joints", "cannot read MATLAB file"),
    "truncated flow": (lambda p: _truncate(p["flow"]), "flow", "cannot read MATLAB file"),
    "pos_img shape": (
        lambda p: fx.write_joints(p["joints"], np.zeros((2, 14, 4))),
        "joints",
        r"\(2, 15, T\) array, got shape \(2, 14, 4\)",
    ),
    "mask shape": (
        lambda p: fx.write_mat(p["mask"], part_mask=np.zeros((240, 320, 4, 2), np.uint8)),
        "mask",
        r"\(H, W, T\) array, got shape \(240, 320, 4, 2\)",
    ),
    "no pos_img": (
        lambda p: fx.write_mat(p["joints"], scale=np.ones((1, 4))),
        "joints",
        "no variable 'pos_img'",
    ),
    "no joints file": (lambda p: os.remove(p["joints"]), "joints", "file not found"),
    "flow size": (
        lambda p: fx.write_mat(p["flow"], part_mask=np.zeros((240, 300, 4), np.uint8)),
        "flow",
        r"is 240x300 \(H x W\) but puppet_mask",
    ),
    "flow label 11": (
        lambda p: fx.write_mat(p["flow"], part_mask=np.full((240, 320, 4), 11, np.uint8)),
        "flow",
        r"frame 1: part label\(s\) \[11\] outside 0..10",
    ),
    "missing middle frame": (
        lambda p: os.remove(os.path.join(p["frames"], "00002.png")),
        os.path.join("frames", "00002.png"),
        "frame image missing",
    ),
    "missing last frame": (
        lambda p: os.remove(os.path.join(p["frames"], "00004.png")),
        os.path.join("frames", "00004.png"),
        r"frames in joint_positions.mat 4, puppet_mask.mat 4, puppet_flow.mat 4; 3 images in",
    ),
    "frame size": (
        "size",
        os.path.join("frames", "00001.png"),
        r"image is 120x160 \(H x W\) but .* is 240x320x4",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input(tmp_path, case):
    damage, where, problem = BAD_INPUTS[case]
    root, paths = _bad_clip(tmp_path, damage)
    key, _, rest = where.partition(os.sep)
    expected_path = os.path.join(paths[key], rest) if rest else paths[key]
    with pytest.raises(DatasetFormatError, match=problem) as e:
        load_jhmdb(root, 1, "train")
    assert e.value.path == expected_path
    assert e.value.path in str(e.value)


def test_bad_split_files(tmp_path):
    root = str(tmp_path)
    with pytest.raises(DatasetFormatError, match="no split files <class>_test_split1.txt"):
        load_jhmdb(root, 1, "train")
    os.makedirs(os.path.join(root, "splits"))
    path = os.path.join(root, "splits", "clap_test_split1.txt")
    with open(path, "w") as f:
        f.write("a.avi 1\nb.avi 3\n")
    with pytest.raises(DatasetFormatError, match="line 2: expected '<video>.avi <1|2>'") as e:
        load_jhmdb(root, 1, "train")
    assert e.value.path == path


def test_on_error_skip(tmp_path):
    root = fx.write_jhmdb_fixture(str(tmp_path))
    mask = fx.clip_dirs(root, CLIP_C)["mask"]
    _truncate(mask)
    damaged = open(mask, "rb").read()
    with pytest.raises(DatasetFormatError, match="puppet_mask.mat: cannot read"):
        load_jhmdb(root, 1, "train")
    for _ in range(2):  # cold, then warm: the cache remembers the skip
        report = LoadReport()
        records = load_jhmdb(root, 1, "train", on_error="skip", report=report)
        assert len(records) == fx.usable_frames(CLIP_A)
        assert [k for k, _ in report.skipped] == [CLIP_C]
        assert mask in report.skipped[0][1]
        assert open(mask, "rb").read() == damaged  # the loader never writes into the dataset
    assert report.num_cached == 2


# ---- record cache


def test_cache_hit_and_invalidation(tmp_path):
    root = fx.write_jhmdb_fixture(str(tmp_path))
    first, second, third = LoadReport(), LoadReport(), LoadReport()
    cold = load_jhmdb(root, 1, "test", report=first)
    warm = load_jhmdb(root, 1, "test", report=second)
    assert (first.num_parsed, second.num_cached, second.num_parsed) == (2, 2, 0)
    assert warm == cold
    # one joint moved in clip D: exactly that clip is re-read, with the new value
    joints = fx.clip_dirs(root, CLIP_D)["joints"]
    pos = fx.pos_img(6)
    pos[:, 0, 0] = (11.0, 21.0)
    fx.write_joints(joints, pos)
    st = os.stat(joints)
    os.utime(joints, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = load_jhmdb(root, 1, "test", report=third)
    assert (third.num_parsed, third.num_cached) == (1, 1)
    changed = next(r for r in again if r["video_id"] == CLIP_D and r["frame_index"] == 0)
    assert changed["annotations"][0]["keypoints"][:3] == [10.5, 20.5, 2]
    assert [r for r in again if r["video_id"] == CLIP_B] == [
        r for r in cold if r["video_id"] == CLIP_B
    ]


def test_cache_sees_frame_folder_change(tmp_path):
    root = fx.write_jhmdb_fixture(str(tmp_path))
    load_jhmdb(root, 1, "test")
    fx.write_frames(fx.clip_dirs(root, CLIP_B)["frames"], 6)  # a 6th frame, without annotations
    report = LoadReport()
    records = load_jhmdb(root, 1, "test", report=report)
    assert (report.num_parsed, report.num_cached, len(records)) == (1, 1, 9)


# ---- registration, metadata and taxonomy mappings


def test_register_all_and_metadata(tmp_path, monkeypatch):
    fx.write_jhmdb_fixture(str(tmp_path / "jhmdb"))
    names = register_all_jhmdb(str(tmp_path))
    try:
        assert names == [
            "jhmdb_split1_train",
            "jhmdb_split1_test",
            "jhmdb_split2_train",
            "jhmdb_split2_test",
            "jhmdb_split3_train",
            "jhmdb_split3_test",
            "jhmdb_split1_train_stride5",
        ]
        assert len(DatasetCatalog.get("jhmdb_split3_test")) == _expected_count(3, "test")
        assert len(DatasetCatalog.get("jhmdb_split1_train_stride5")) == _expected_count(
            1, "train", 5
        )
        meta = MetadataCatalog.get("jhmdb_split1_train")
        assert meta.part_taxonomy == "jhmdb10" and meta.keypoint_taxonomy == "jhmdb15"
        assert meta.part_names[3] == "left_upper_arm"  # label 4
        assert ("left_upper_arm", "right_upper_arm") in meta.part_flip_pairs
        assert ("left_lower_leg", "right_lower_leg") in meta.part_flip_pairs
        assert len(meta.part_flip_pairs) == 4
        assert meta.keypoint_names[:4] == ["neck", "belly", "face", "right_shoulder"]
        assert ("left_shoulder", "right_shoulder") in meta.keypoint_flip_map
        assert len(meta.keypoint_flip_map) == 6 and len(meta.keypoint_oks_sigmas) == 15
        assert meta.jhmdb_root == str(tmp_path / "jhmdb")
        monkeypatch.setenv(
            "BODYPARTS_ON_ERROR", "skip"
        )  # registered splits take the skip policy from it
        _truncate(fx.clip_dirs(str(tmp_path / "jhmdb"), CLIP_C)["mask"])
        assert len(DatasetCatalog.get("jhmdb_split1_train")) == fx.usable_frames(CLIP_A)
        assert MetadataCatalog.get("jhmdb_split1_train_stride5").jhmdb_split["frame_stride"] == 5
    finally:
        register_all_jhmdb()  # back to the default root (bodyparts registers it at import)


def test_part_mapping_of_known_pixels(jhmdb_root):
    rec = load_jhmdb(jhmdb_root, 1, "train")[0]  # clip A, frame 0
    labels = part_label_map(rec["annotations"][0], 240, 320)
    lr6, ppp6 = mapping_lut("jhmdb10", "lr6"), mapping_lut("jhmdb10", "ppp6")
    expected = {  # pixel (row, col) -> (jhmdb10 part, lr6 part, ppp6 part)
        (50, 190): ("left_upper_arm", "left_arm", "upper_arms"),
        (80, 125): ("right_lower_arm", "right_arm", "lower_arms"),
        (150, 170): ("left_lower_leg", "left_leg", "lower_legs"),
        (30, 160): ("head", "head", "head"),
        (60, 160): ("torso", "torso", "torso"),
    }
    for (r, c), (native, coarse, ppp) in expected.items():
        assert labels[r, c] == get_part_taxonomy("jhmdb10").label_of(native)
        assert lr6[labels[r, c]] == get_part_taxonomy("lr6").label_of(coarse)
        assert ppp6[labels[r, c]] == get_part_taxonomy("ppp6").label_of(ppp)
    with pytest.raises(TaxonomyError, match="no source parts for .*left_hand"):
        mapping_lut("jhmdb10", "fine_lr", "jhmdb_split1_train")  # no hands or feet


def test_keypoints_to_coco17(jhmdb_root):
    rec = load_jhmdb(jhmdb_root, 1, "train")[0]
    kps = np.array(rec["annotations"][0]["keypoints"]).reshape(15, 3)
    index = keypoint_index_map("jhmdb15", "coco17")
    coco = get_keypoint_taxonomy("coco17").names
    assert (index >= 0).sum() == 12
    assert all(
        index[coco.index(n)] == -1
        for n in ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    )
    coco_kps = np.where(index[:, None] >= 0, kps[index], 0)
    left_shoulder = coco_kps[coco.index("left_shoulder")]
    assert left_shoulder.tolist() == [190.5, 42.5, 2]  # JOINT_PIXELS[4] = (row 42, col 190)
    assert coco_kps[coco.index("right_ankle")].tolist() == [150.5, 178.5, 2]


def test_matlab_variants_single_frame_and_double(tmp_path):
    """MATLAB drops trailing singleton dims (1-frame clip) and may store labels as double."""
    root = str(tmp_path)
    paths = fx.write_clip(root, "sit/v", 1)
    silhouette, flow = fx.person_maps(0)
    fx.write_mat(paths["mask"], part_mask=silhouette.astype(np.float64))  # (240, 320), double
    fx.write_mat(paths["flow"], part_mask=flow.astype(np.float64))
    fx.write_mat(paths["joints"], pos_img=fx.pos_img(1)[:, :, 0])  # (2, 15)
    fx.write_split_files(root, {2: {"sit/v": 2}})
    (rec,) = load_jhmdb(root, 2, "test")
    ann = rec["annotations"][0]
    np.testing.assert_array_equal(part_label_map(ann, 240, 320), flow * silhouette)
    np.testing.assert_allclose(
        np.array(ann["keypoints"]).reshape(15, 3)[:, :2], fx.expected_keypoints(0)
    )


# ---- the real clip of ../shared/realdata/jhmdb (40 frames, joints and silhouettes, no puppet flow)

REAL = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "realdata", "jhmdb"
)
REAL_CLIP = "catch/Goal_Keeping_Tips_catch_f_cm_np1_fr_med_2"
needs_real_clip = pytest.mark.skipif(
    not os.path.isdir(os.path.join(REAL, "Rename_Images", REAL_CLIP)),
    reason="real J-HMDB clip ../shared/realdata/jhmdb not found",
)


@pytest.fixture(scope="module")
def real_root(tmp_path_factory):
    """A J-HMDB tree of symlinks to the real clip's folders, with our own split list (the real
    sample has none): the clip is in the train subset of split 1."""
    root = tmp_path_factory.mktemp("jhmdb_real")
    for sub in ("Rename_Images", "joint_positions", "puppet_mask"):
        os.symlink(os.path.realpath(os.path.join(REAL, sub)), root / sub)
    (root / "splits").mkdir()
    (root / "splits" / "catch_test_split1.txt").write_text(f"{REAL_CLIP.split('/')[1]}.avi 1\n")
    return str(root)


def _real_arrays():
    import scipy.io

    pos = scipy.io.loadmat(os.path.join(REAL, "joint_positions", REAL_CLIP, "joint_positions.mat"))[
        "pos_img"
    ]
    mask = scipy.io.loadmat(os.path.join(REAL, "puppet_mask", REAL_CLIP, "puppet_mask.mat"))[
        "part_mask"
    ]
    return pos, mask


@needs_real_clip
def test_real_clip_is_read_exactly(real_root):
    pos, mask = _real_arrays()
    assert pos.shape == (2, 15, 40) and mask.shape == (240, 320, 40) and mask.dtype == np.uint8
    records = load_jhmdb(real_root, 1, "train", use_cache=False)
    assert len(records) == 40
    validate_records(records, real_root, 10, list(JHMDB_KEYPOINTS.names))
    for t, rec in enumerate(records):
        assert rec["file_name"].endswith(os.path.join(REAL_CLIP, f"{t + 1:05d}.png"))
        assert (rec["height"], rec["width"], rec["frame_index"]) == (240, 320, t)
        assert rec["image_id"] == f"{REAL_CLIP}/{t + 1:05d}" and rec["video_id"] == REAL_CLIP
        (person,) = rec["annotations"]  # one person per frame
        silhouette = mask[:, :, t] != 0
        assert (
            decode_rle(person["segmentation"]).astype(bool) == silhouette
        ).all()  # pixel for pixel
        rows, cols = np.nonzero(silhouette)
        box = [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
        assert person["bbox"] == [float(v) for v in box] and person["area"] == float(
            silhouette.sum()
        )
        assert person["parts"] is None  # no puppet_flow in the sample: no part labels
        kps = np.asarray(person["keypoints"], dtype=np.float64).reshape(15, 3)
        # 1-based MATLAB positions -> continuous coordinates: minus half a pixel
        np.testing.assert_allclose(kps[:, :2], pos[:, :, t].T - 0.5)
        assert (kps[:, 2] == 2).all()  # every joint of this clip lies inside the frame
    assert records[0]["annotations"][0]["bbox"] == [257.0, 91.0, 57.0, 112.0]


@needs_real_clip
def test_real_clip_decides_the_coordinate_base():
    """pos_img is 1-based (MATLAB): in frame 1 (a key frame, all positions on half pixels) the
    puppet's head is symmetric about the face-neck line. The head's column runs between the face
    (y 90.5) and the neck (y 106.5) are centred, in 0-based pixel indices, on pos_img x - 1 (285.5
    for x 286.5), not on x (0-based positions) or x - 0.5 (continuous positions)."""
    pos, mask = _real_arrays()
    (neck_x, neck_y), (face_x, face_y) = pos[:, 0, 0], pos[:, 2, 0]
    assert neck_x == face_x == 286.5 and (face_y, neck_y) == (90.5, 106.5)
    centres = []
    for row in range(int(face_y), int(neck_y) - 3):  # 0-based rows inside the head
        col = int(face_x) - 1
        if not mask[row, col, 0]:
            continue
        left, right = col, col
        while mask[row, left - 1, 0]:
            left -= 1
        while mask[row, right + 1, 0]:
            right += 1
        centres.append((left + right) / 2)
    assert len(centres) >= 10
    assert np.median(centres) == face_x - 1  # 0-based centre = pos_img - 1: the origin is 1
    from bodyparts.data.datasets.jhmdb import POS_IMG_ORIGIN

    assert POS_IMG_ORIGIN == 1.0


@needs_real_clip
def test_real_clip_registered_and_checked(real_root, tmp_path, monkeypatch):
    """The real clip through a registered split and tools/check_dataset.py: 40 frames, 40 persons
    without part labels, 15 joints each, no problem."""
    import importlib.util
    import json

    datasets = tmp_path / "datasets"
    datasets.mkdir()
    os.symlink(real_root, datasets / "jhmdb")
    register_all_jhmdb(str(datasets))
    try:
        tool_path = os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "check_dataset.py"
        )
        spec = importlib.util.spec_from_file_location(
            "bodyparts_check_dataset_tool_jhmdb", tool_path
        )
        tool = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tool)
        monkeypatch.setenv("BODYPARTS_ON_ERROR", "raise")
        out = tmp_path / "report"
        args = tool.get_parser().parse_args(
            ["jhmdb_split1_train", "--output", str(out), "--num-vis", "1"]
        )
        assert tool.main(args) == 0
        summary = json.loads((out / "jhmdb_split1_train" / "summary.json").read_text())
        assert (
            summary["images"] == 40 == summary["images_with_persons"] and summary["problems"] == []
        )
        persons = summary["persons"]
        assert persons["total"] == persons["no_parts"] == persons["with_keypoints"] == 40
        assert persons["visible_keypoints"] == 40 * 15
    finally:
        register_all_jhmdb()
