"""CIHP native loader: fixtures whose every value is known by construction (tests/fixtures/cihp.py),
each quirk and bad input, the record cache, registration, the mapping into lr6, training in the
native taxonomy, and the real sample files of ../shared/realdata/cihp."""

import json
import math
import os
import shutil

import numpy as np
import pytest
import torch
from conftest import REPO
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from fixtures import cihp as fx
from PIL import Image

from bodyparts.data.contract import decode_rle, image_part_map, part_label_map
from bodyparts.data.datasets.cihp import load_cihp, register_all_cihp, register_cihp_split
from bodyparts.data.datasets.native import DatasetFormatError, LoadReport, validate_records
from bodyparts.data.mappers import BodyPartsDatasetMapper
from bodyparts.data.semantic_mapper import BodyPartsSemSegMapper
from bodyparts.evaluation.parsing_evaluation import ground_truth_maps
from bodyparts.taxonomy import CIHP20, TaxonomyError, can_express, mapping_lut

REAL = os.path.normpath(os.path.join(REPO, "..", "shared", "realdata", "cihp"))
REAL_TRAIN = os.path.join(REAL, "Training")
needs_real = pytest.mark.skipif(
    not os.path.isdir(REAL_TRAIN),
    reason=f"real CIHP samples not found at {REAL} (../shared/realdata/cihp)",
)


@pytest.fixture(scope="module")
def cihp_root(tmp_path_factory):
    """The standard fixture, read-only (tests that break files copy it first)."""
    root = str(tmp_path_factory.mktemp("cihp"))
    fx.write_cihp_fixture(root)
    return root


@pytest.fixture
def broken_root(cihp_root, tmp_path):
    """A writable copy of the fixture's Training folder."""
    split_dir = str(tmp_path / "Training")
    shutil.copytree(os.path.join(cihp_root, "Training"), split_dir)
    return split_dir


def _train(root, **kwargs):
    split_dir = os.path.join(root, "Training")
    return load_cihp(split_dir, fx.TRAIN_IDS, **kwargs)


def _by_id(records):
    return {r["image_id"]: r for r in records}


# ---- records, persons and part maps


def test_records_follow_the_id_list_and_the_contract(cihp_root):
    records = _train(cihp_root)
    assert [r["image_id"] for r in records] == fx.TRAIN_IDS
    validate_records(records, cihp_root, CIHP20.num_parts)
    for rec in records:
        image_id = rec["image_id"]
        assert (rec["height"], rec["width"]) == fx.IMAGES[image_id]["size"]
        assert rec["part_taxonomy"] == "cihp20"
        assert rec["file_name"] == os.path.join(cihp_root, "Training", "Images", f"{image_id}.jpg")
        assert rec["sem_seg_file_name"] == os.path.join(
            cihp_root, "Training", "Category_ids", f"{image_id}.png"
        )
    val = load_cihp(os.path.join(cihp_root, "Validation"), fx.VAL_IDS)
    assert [r["image_id"] for r in val] == ["0000002", "0000001"]  # file order kept


def test_every_person_has_its_silhouette_and_part_map(cihp_root):
    for rec in _train(cihp_root):
        expected = fx.expected_persons(rec["image_id"])
        assert [a["human_id"] for a in rec["annotations"]] == sorted(expected)
        h, w = rec["height"], rec["width"]
        for ann in rec["annotations"]:
            silhouette, labels = expected[ann["human_id"]]
            assert np.array_equal(decode_rle(ann["segmentation"]).astype(bool), silhouette)
            assert ann["area"] == silhouette.sum()
            if labels.any():
                assert np.array_equal(part_label_map(ann, h, w), labels)
                assert ann["parts_complete"] is True
            else:
                assert ann["parts"] is None


def test_two_persons_boxes_and_labels_by_hand(cihp_root):
    rec = _by_id(_train(cihp_root))["0000001"]
    first, second = rec["annotations"]
    # person 1: rows 2..43, columns 4..23 (right arm from column 4, left arm to column 23)
    assert first["bbox"] == [4.0, 2.0, 20.0, 42.0] and first["bbox_mode"] == BoxMode.XYWH_ABS
    assert sorted(first["parts"]) == [2, 5, 9, 13, 14, 15, 18, 19]
    # person 2: hat rows 4..7, dress to row 35, right arm from column 34, dress to column 49
    assert second["bbox"] == [34.0, 4.0, 16.0, 32.0]
    assert sorted(second["parts"]) == [1, 6, 13, 15]
    assert int(decode_rle(second["parts"][6]).sum()) == 22 * 12  # the dress


def test_human_ids_gap_gives_the_persons_present(cihp_root):
    rec = _by_id(_train(cihp_root))["0000002"]
    assert [a["human_id"] for a in rec["annotations"]] == [1, 3]
    assert sorted(rec["annotations"][1]["parts"]) == [fx.HAIR, fx.PANTS]


def test_person_without_categories_and_orphan_part_pixels(cihp_root):
    rec = _by_id(_train(cihp_root))["0000003"]
    unlabelled, face = rec["annotations"]
    assert unlabelled["human_id"] == 1 and unlabelled["parts"] is None
    assert unlabelled["bbox"] == [4.0, 4.0, 10.0, 26.0]  # box and silhouette still train
    assert sorted(face["parts"]) == [fx.FACE]
    # the orphan upper-clothes region belongs to no person but stays in the image-level map
    label, (r0, r1, c0, c1) = fx.ORPHAN
    for ann in rec["annotations"]:
        assert not decode_rle(ann["segmentation"])[r0:r1, c0:c1].any()
    identity = mapping_lut("cihp20", "cihp20")
    semantic = image_part_map(
        rec["annotations"], 40, 40, identity, sem_seg_file=rec["sem_seg_file_name"]
    )
    assert (semantic[r0:r1, c0:c1] == label).all()


def test_image_without_persons_keeps_its_record(cihp_root):
    rec = _by_id(_train(cihp_root))["0000004"]
    assert rec["annotations"] == []


def test_ignored_pixels_are_in_no_part(cihp_root):
    rec = _by_id(_train(cihp_root))["0000005"]
    (person,) = rec["annotations"]
    r0, r1, c0, c1 = fx.IGNORED
    labels = part_label_map(person, 40, 40)
    assert (labels[r0:r1, c0:c1] == 0).all()  # person pixel, part unknown (ignored by the mapper)
    assert decode_rle(person["segmentation"])[r0:r1, c0:c1].all()
    assert np.count_nonzero(labels == fx.UPPER) == 22 * 12 - 4 * 4


def test_instance_ids_of_the_fixture_follow_the_real_convention(cihp_root):
    """The fixture's Instance_ids are rebuilt from the loader's persons (the formula of the real
    files): a check that human_id and the part labels come out as written."""
    for rec in _train(cihp_root):
        path = os.path.join(cihp_root, "Training", "Instance_ids", f"{rec['image_id']}.png")
        inst = np.asarray(Image.open(path)).astype(np.int64)
        assert np.array_equal(_instance_map(rec), inst * (_category_labels(rec) != 255))


def _category_labels(rec):
    return np.asarray(Image.open(rec["sem_seg_file_name"]))


def _instance_map(rec):
    """Instance_ids rebuilt from a record: part label + 20 * (human_id - 1) on each person's
    pixels."""
    h, w = rec["height"], rec["width"]
    out = np.zeros((h, w), dtype=np.int64)
    for ann in rec["annotations"]:
        silhouette = decode_rle(ann["segmentation"]).astype(bool)
        labels = part_label_map(ann, h, w) if ann["parts"] else np.zeros((h, w), dtype=np.uint8)
        out[silhouette] = labels[silhouette] + 20 * (ann["human_id"] - 1)
    return out


def test_image_level_only_reads_no_human_ids(broken_root):
    os.remove(os.path.join(broken_root, "Human_ids", "0000001.png"))
    (rec,) = load_cihp(broken_root, ["0000001"], persons=False)
    assert "annotations" not in rec
    category, _ = fx.maps("0000001")
    lut = mapping_lut("cihp20", "cihp20")
    assert np.array_equal(
        image_part_map([], 48, 64, lut, sem_seg_file=rec["sem_seg_file_name"]), category
    )


# ---- bad inputs


def _rgb(path):
    labels = np.asarray(Image.open(path))
    Image.fromarray(np.stack([labels] * 3, axis=-1), "RGB").save(path)


def _crop(path):
    Image.fromarray(np.asarray(Image.open(path))[:-1]).save(path)


def _label(value):
    def write(path):
        labels = np.asarray(Image.open(path)).copy()
        labels[0, 0] = value
        Image.fromarray(labels).save(path)

    return write


def _sixteen_bit(path):
    labels = np.asarray(Image.open(path)).astype(np.uint16)
    Image.fromarray(labels).save(path)  # mode I;16


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


BAD = {
    "image missing": ("Images", ".jpg", os.remove, r"Images/0000002\.jpg: image not found"),
    "category missing": (
        "Category_ids",
        ".png",
        os.remove,
        r"Category_ids/0000002\.png: Category_ids map not found",
    ),
    "human missing": (
        "Human_ids",
        ".png",
        os.remove,
        r"Human_ids/0000002\.png: Human_ids map not found",
    ),
    "category size": (
        "Category_ids",
        ".png",
        _crop,
        r"Category_ids/0000002\.png: Category_ids map is 40x39 \(W x H\) "
        r"but its image .*0000002\.jpg is 40x40",
    ),
    "human size": ("Human_ids", ".png", _crop, r"Human_ids/0000002\.png: Human_ids map is 40x39"),
    "category RGB": (
        "Category_ids",
        ".png",
        _rgb,
        r"Category_ids/0000002\.png: Category_ids map has PIL mode RGB "
        r".*expected an 8-bit single-channel",
    ),
    "human 16 bit": (
        "Human_ids",
        ".png",
        _sixteen_bit,
        r"Human_ids/0000002\.png: Human_ids map has PIL mode I;16",
    ),
    "category 20": (
        "Category_ids",
        ".png",
        _label(20),
        r"Category_ids/0000002\.png: .*label value\(s\) \[20\] outside 0\.\.19",
    ),
    "category 37": (
        "Category_ids",
        ".png",
        _label(37),
        r"label value\(s\) \[37\] outside 0\.\.19 \(and 255\)",
    ),
    "truncated": (
        "Category_ids",
        ".png",
        _truncate,
        r"Category_ids/0000002\.png: Category_ids map is truncated",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_the_file_or_is_skipped(broken_root, case):
    folder, ext, damage, message = BAD[case]
    damage(os.path.join(broken_root, folder, f"0000002{ext}"))
    with pytest.raises(DatasetFormatError, match=message):
        load_cihp(broken_root, fx.TRAIN_IDS)
    report = LoadReport()
    records = load_cihp(broken_root, fx.TRAIN_IDS, on_error="skip", report=report)
    assert [r["image_id"] for r in records] == ["0000001", "0000003", "0000004", "0000005"]
    assert [key for key, _ in report.skipped] == ["0000002"]


def test_palette_png_gives_the_same_labels(broken_root):
    """A map saved as a palette PNG (mode P, as some tools write label maps): the palette indices
    are the labels."""
    before = _by_id(load_cihp(broken_root, ["0000001"], use_cache=False))["0000001"]
    path = os.path.join(broken_root, "Category_ids", "0000001.png")
    palette = Image.fromarray(np.asarray(Image.open(path)), "P")
    palette.putpalette([v for k in range(256) for v in (k * 7 % 256, k * 3 % 256, k)])
    palette.save(path)
    assert Image.open(path).mode == "P"
    after = _by_id(load_cihp(broken_root, ["0000001"], use_cache=False))["0000001"]
    assert after["annotations"] == before["annotations"]


def test_unknown_id_and_missing_folders(cihp_root, tmp_path):
    with pytest.raises(DatasetFormatError, match=r"Images/9999999\.jpg: image not found"):
        load_cihp(os.path.join(cihp_root, "Training"), ["9999999"])
    with pytest.raises(DatasetFormatError, match=r"Images: image folder not found"):
        load_cihp(str(tmp_path / "nowhere"))


# ---- cache and registration


def test_record_cache_rereads_only_changed_files(broken_root):
    first = LoadReport()
    records = load_cihp(broken_root, fx.TRAIN_IDS, report=first)
    warm = LoadReport()
    assert load_cihp(broken_root, fx.TRAIN_IDS, report=warm) == records
    assert (warm.num_parsed, warm.num_cached) == (0, 5)
    human = os.path.join(broken_root, "Human_ids", "0000002.png")
    _, humans = fx.maps("0000002")
    Image.fromarray(np.where(humans == 3, 2, humans).astype(np.uint8)).save(human)
    changed = LoadReport()
    again = load_cihp(broken_root, fx.TRAIN_IDS, report=changed)
    assert changed.num_parsed == 1
    assert [a["human_id"] for a in _by_id(again)["0000002"]["annotations"]] == [1, 2]


def test_registered_splits(cihp_root, tmp_path, restore_catalogs, monkeypatch):
    root = tmp_path / "datasets"
    os.makedirs(root)
    os.symlink(cihp_root, root / "cihp")
    assert register_all_cihp(str(root)) == ["cihp_train", "cihp_val"]
    assert [r["image_id"] for r in DatasetCatalog.get("cihp_train")] == fx.TRAIN_IDS
    assert [r["image_id"] for r in DatasetCatalog.get("cihp_val")] == fx.VAL_IDS
    meta = MetadataCatalog.get("cihp_val")
    assert meta.part_taxonomy == "cihp20" and meta.thing_classes == ["person"]
    assert meta.part_flip_pairs == [
        ("left_arm", "right_arm"),
        ("left_leg", "right_leg"),
        ("left_shoe", "right_shoe"),
    ]
    assert meta.split_file == os.path.join(str(root), "cihp", "Validation", "val_id.txt")
    # BODYPARTS_ON_ERROR=skip for a registered split with a broken file
    split_dir = str(tmp_path / "copy" / "Training")
    shutil.copytree(os.path.join(cihp_root, "Training"), split_dir)
    os.remove(os.path.join(split_dir, "Human_ids", "0000003.png"))
    register_cihp_split("cihp_test_broken", split_dir)  # no list: every image, sorted
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "raise")
    with pytest.raises(DatasetFormatError, match="0000003.png"):
        DatasetCatalog.get("cihp_test_broken")
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "skip")
    kept = [r["image_id"] for r in DatasetCatalog.get("cihp_test_broken")]
    assert kept == ["0000001", "0000002", "0000004", "0000005"]


def test_missing_id_list_is_named(tmp_path, restore_catalogs):
    register_all_cihp(str(tmp_path))  # lazy: nothing read yet
    with pytest.raises(
        DatasetFormatError, match=r"cihp/Training/train_id\.txt: split list file not found"
    ):
        DatasetCatalog.get("cihp_train")


# ---- taxonomy, mappers and training in the native taxonomy


def test_cihp_to_lr6_maps_body_parts_and_ignores_clothes():
    lut = mapping_lut("cihp20", "lr6")
    # background, hat, hair, glove, sunglasses, upper clothes, dress, coat, socks, pants, torso
    # skin, scarf, skirt, face, left arm, right arm, left leg, right leg, left shoe, right shoe
    assert lut.tolist() == [
        0,
        1,
        1,
        255,
        1,
        255,
        255,
        255,
        255,
        255,
        2,
        255,
        255,
        1,
        3,
        4,
        5,
        6,
        5,
        6,
    ]
    assert not can_express("cihp20", "fine_lr") and not can_express("cihp20", "ppp6")
    with pytest.raises(TaxonomyError, match=r"'cihp20' cannot express taxonomy 'ppp6'.*upper_arms"):
        mapping_lut("cihp20", "ppp6", "cihp_train")
    assert CIHP20.flip_lut().tolist() == [*range(14), 15, 14, 17, 16, 19, 18]


def test_instance_mapper_native_flip_and_lr6_ignore(cihp_root):
    rec = _by_id(_train(cihp_root))["0000001"]
    flip = [T.RandomFlip(prob=1.0, horizontal=True)]
    native = BodyPartsDatasetMapper(
        True,
        augmentations=flip,
        image_format="BGR",
        use_parts=True,
        part_luts={"cihp20": mapping_lut("cihp20", "cihp20")},
        part_flip_lut=CIHP20.flip_lut(),
    )
    maps = native(rec)["instances"].gt_part_maps.tensor.numpy()
    _, labels = fx.expected_persons("0000001")[1]
    mirrored = CIHP20.flip_lut()[labels[:, ::-1]]
    assert np.array_equal(maps[0], mirrored)  # the person's right arm (15) becomes its left (14)
    assert maps[0][12, 64 - 1 - 4] == fx.L_ARM
    lr6 = BodyPartsDatasetMapper(
        True,
        augmentations=[],
        image_format="BGR",
        use_parts=True,
        part_luts={"cihp20": mapping_lut("cihp20", "lr6")},
        part_flip_lut=np.arange(7, dtype=np.uint8),
    )
    person = lr6(rec)["instances"].gt_part_maps.tensor[0].numpy()
    assert (person[26:40, 9:19] == 255).all()  # pants: no lr6 counterpart, ignored
    assert (person[6:12, 11:17] == 1).all() and (person[40:44, 15:19] == 5).all()  # face, left shoe
    assert (person[0:2] == 0).all()  # background above the person


def test_semantic_mapper_reads_category_ids_in_lr6(cihp_root):
    rec = _by_id(_train(cihp_root))["0000003"]
    mapper = BodyPartsSemSegMapper(
        False,
        augmentations=[],
        image_format="BGR",
        part_taxonomy="lr6",
        part_luts={"cihp20": mapping_lut("cihp20", "lr6")},
    )
    sem_seg = mapper(rec)["sem_seg"].numpy()
    category, _ = fx.maps("0000003")
    assert np.array_equal(sem_seg, mapping_lut("cihp20", "lr6")[category])
    label, (r0, r1, c0, c1) = fx.ORPHAN
    assert (sem_seg[r0:r1, c0:c1] == 255).all()  # upper clothes: ignored in lr6


def test_evaluator_ground_truth_is_category_ids(cihp_root):
    rec = _by_id(_train(cihp_root))["0000001"]
    persons, semantic = ground_truth_maps(
        rec["annotations"], 48, 64, mapping_lut("cihp20", "cihp20"), rec["sem_seg_file_name"]
    )
    category, _ = fx.maps("0000001")
    assert np.array_equal(semantic, category)
    assert np.array_equal(persons[1], fx.expected_persons("0000001")[2][1])


def test_one_training_step_in_the_native_taxonomy(cihp_root, tmp_path, restore_catalogs):
    """BODYPARTS.PART_TAXONOMY cihp20: the part head predicts 20 labels; with its layers zeroed the
    logits are 0 and the part loss is ln 20 per labelled pixel times LOSS_WEIGHT; it
    back-propagates."""
    from argparse import Namespace

    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    from bodyparts.engine import build_mapper, setup_cfg

    register_cihp_split("cihp_test_native", os.path.join(cihp_root, "Training"))
    config = os.path.join(
        REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"
    )
    cfg = setup_cfg(
        Namespace(
            config_file=config,
            opts=[
                "OUTPUT_DIR",
                str(tmp_path),
                "DATASETS.TRAIN",
                "('cihp_test_native',)",
                "DATASETS.TEST",
                "('cihp_test_native',)",
                "BODYPARTS.PART_TAXONOMY",
                "cihp20",
                "MODEL.KEYPOINT_ON",
                "False",
                "MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION",
                "8",
                "MODEL.ROI_BODYPART_HEAD.CONV_DIMS",
                "[16]",
                "MODEL.ROI_BODYPART_HEAD.UP_SCALE",
                "1",
                "INPUT.MIN_SIZE_TRAIN",
                "(64,)",
                "INPUT.RANDOM_FLIP",
                "none",
            ],
        ),
        for_launch_only=True,
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    branch = model.roi_heads.part_branch
    with torch.no_grad():
        for p in branch.parameters():
            p.zero_()
    mapper = build_mapper(cfg, list(cfg.DATASETS.TRAIN), True)
    batch = [mapper(r) for r in DatasetCatalog.get("cihp_test_native")[:2]]
    assert int(batch[0]["instances"].gt_part_maps.tensor.max()) == fx.R_SHOE  # native labels
    with EventStorage():
        losses = model(batch)
    expected = cfg.MODEL.ROI_BODYPART_HEAD.LOSS_WEIGHT * math.log(CIHP20.num_classes)
    assert losses["loss_part"].item() == pytest.approx(expected, rel=1e-5)
    losses["loss_part"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in branch.parameters())


# ---- tools/check_dataset.py


def test_check_dataset_on_the_fixture(cihp_root, tmp_path, restore_catalogs):
    from test_check_dataset import _tool

    register_cihp_split("cihp_test_check", os.path.join(cihp_root, "Training"))
    tool = _tool()
    out = tmp_path / "report"
    args = tool.get_parser().parse_args(
        ["cihp_test_check", "--output", str(out), "--taxonomy", "lr6", "--num-vis", "2"]
    )
    assert tool.main(args) == 0
    summary = json.loads((out / "cihp_test_check" / "summary.json").read_text())
    assert summary["images"] == 5 and summary["images_with_persons"] == 4
    # persons: 2 + 2 + 2 + 0 + 1; the unlabelled person of 0000003 has no parts
    assert summary["persons"] == {"total": 7, "full_parts": 6, "no_parts": 1}
    assert summary["problems"] == []
    assert len(os.listdir(out / "cihp_test_check" / "samples")) == 2


# ---- the real files of ../shared/realdata/cihp

REAL_PERSONS = {  # image -> part labels of each person, in Human_ids order (read off the files)
    "0000006": [[1, 7, 9, 10, 13, 14, 15, 19], [1, 7, 9, 10, 13, 14, 18, 19]],
    "0000007": [
        [2, 5, 9, 10, 13, 14, 15],
        [2, 6, 10, 13, 14, 15, 16, 17, 18],
        [1, 2, 5, 9, 10, 13, 14, 15, 18, 19],
        [2, 5, 9, 10, 13, 14, 15, 18],
    ],
    "0000008": [
        [1, 2, 5, 9, 10, 13, 15, 18, 19],
        [1, 2, 4, 5, 9, 10, 11, 13, 15, 18, 19],
        [1, 2, 4, 5, 9, 10, 13, 18],
        [1, 2, 5, 9, 13, 18, 19],
    ],
    "0000010": [[2, 5, 10, 13], [2, 5, 10, 13, 15]],
    "0000011": [
        [2, 5, 9, 18],
        [1, 5, 9],
        [2, 5, 9, 13, 15],
        [2, 5, 9, 13, 17, 18],
        [1, 2, 5, 7, 10, 13, 14, 15],
    ],
    "0000012": [[2, 13, 14, 15], [2, 5, 9, 10, 13, 14, 15], [2, 5, 9, 10, 13, 14, 15]],
}


@needs_real
def test_real_training_images_give_exactly_their_persons():
    records = load_cihp(REAL_TRAIN, sorted(REAL_PERSONS), use_cache=False)
    validate_records(records, REAL_TRAIN, CIHP20.num_parts)
    for rec in records:
        image_id = rec["image_id"]
        assert [sorted(a["parts"]) for a in rec["annotations"]] == REAL_PERSONS[image_id]
        assert [a["human_id"] for a in rec["annotations"]] == list(
            range(1, len(REAL_PERSONS[image_id]) + 1)
        )
        with Image.open(rec["file_name"]) as im:
            assert im.size == (rec["width"], rec["height"])
        category = _category_labels(rec)
        human = np.asarray(Image.open(os.path.join(REAL_TRAIN, "Human_ids", f"{image_id}.png")))
        inst = np.asarray(Image.open(os.path.join(REAL_TRAIN, "Instance_ids", f"{image_id}.png")))
        # the three native maps agree: Instance_ids = Category_ids + 20 (Human_ids - 1) on persons
        assert np.array_equal(inst, fx.instance_ids(category, human))
        # and the loader's persons rebuild Instance_ids exactly
        assert np.array_equal(_instance_map(rec), inst.astype(np.int64))
        persons = np.zeros_like(human)
        for ann in rec["annotations"]:
            persons[decode_rle(ann["segmentation"]).astype(bool)] = ann["human_id"]
        assert np.array_equal(persons, human)


@needs_real
def test_real_image_with_only_category_ids():
    (rec,) = load_cihp(REAL, ["0000002"], persons=False, use_cache=False)
    assert (rec["height"], rec["width"]) == (333, 500)
    assert np.unique(_category_labels(rec)).tolist() == [0, 2, 5, 10, 13, 14, 15]
    with pytest.raises(
        DatasetFormatError, match=r"realdata/cihp/Human_ids/0000002\.png: Human_ids map not found"
    ):
        load_cihp(REAL, ["0000002"], use_cache=False)
    assert load_cihp(REAL, ["0000002"], on_error="skip", use_cache=False) == []


@needs_real
def test_check_dataset_on_the_real_samples(tmp_path, restore_catalogs):
    from test_check_dataset import _tool

    register_cihp_split("cihp_test_real", REAL_TRAIN)
    tool = _tool()
    args = tool.get_parser().parse_args(
        ["cihp_test_real", "--output", str(tmp_path), "--taxonomy", "lr6", "--num-vis", "1"]
    )
    assert tool.main(args) == 0
    summary = json.loads((tmp_path / "cihp_test_real" / "summary.json").read_text())
    assert summary["images"] == 6 and summary["problems"] == []
    assert summary["persons"] == {"total": 20, "full_parts": 20}
