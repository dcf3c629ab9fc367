"""Part maps through augmentation (flip swaps sides, nearest resize) and BodyPartsDatasetMapper."""

import cv2
import numpy as np
import pytest
import torch
from _helpers import (
    FINE_PART_MAP,
    dataset_name,  # noqa: F401  (fixture)
    keypoints,
    parts_from_map,
    write_image,
)
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode

from bodyparts import add_bodyparts_config
from bodyparts.data.contract import encode_mask
from bodyparts.data.datasets.generic import register_bodyparts_json
from bodyparts.data.mappers import BodyPartsDatasetMapper, count_hflips, transform_part_map
from bodyparts.structures import PartMaps
from bodyparts.taxonomy import COCO_PERSON_KEYPOINTS as KP
from bodyparts.taxonomy import FINE_LR, LR6, TaxonomyError, get_part_taxonomy, mapping_lut

H, W = 4, 6

# FINE_PART_MAP with the last two pixels of the bottom row unlabelled (255)
PART_MAP = FINE_PART_MAP.copy()
PART_MAP[3, 4:] = 255

# PART_MAP mirrored, then left <-> right swapped
# (3 <-> 4, 5 <-> 6, 7 <-> 8, 9 <-> 10, 11 <-> 12, 13 <-> 14)
PART_MAP_FLIPPED = np.array(
    [
        [0, 0, 1, 1, 4, 4],
        [0, 0, 8, 2, 2, 6],
        [0, 0, 2, 2, 10, 10],
        [255, 255, 0, 2, 14, 12],
    ],
    dtype=np.uint8,
)

# PART_MAP in lr6 (1 head, 2 torso, 3 left_arm, 4 right_arm, 5 left_leg, 6 right_leg)
PART_MAP_LR6 = np.array(
    [
        [3, 3, 1, 1, 0, 0],
        [3, 2, 2, 3, 0, 0],
        [5, 5, 2, 2, 0, 0],
        [5, 5, 2, 0, 255, 255],
    ],
    dtype=np.uint8,
)


def _apply(part_map, *transforms, target="fine_lr"):
    """transform_part_map from fine_lr to ``target`` with the given transforms."""
    flip_lut = get_part_taxonomy(target).flip_lut()
    lut = mapping_lut("fine_lr", target)
    return transform_part_map(part_map, T.TransformList(list(transforms)), lut, flip_lut)


# ------------------------------------------------------------ transform_part_map


def test_identity_transforms():
    out = _apply(PART_MAP, T.NoOpTransform())
    assert out.dtype == np.uint8 and out.shape == (H, W) and (out == PART_MAP).all()
    assert (_apply(PART_MAP) == PART_MAP).all()


def test_hflip_mirrors_and_swaps_sides():
    out = _apply(PART_MAP, T.HFlipTransform(W))
    assert out.tolist() == PART_MAP_FLIPPED.tolist()
    assert PART_MAP[0, 0] == FINE_LR.label_of("left_upper_arm")
    assert out[0, W - 1] == FINE_LR.label_of("right_upper_arm")


def test_two_hflips_cancel():
    assert (_apply(PART_MAP, T.HFlipTransform(W), T.HFlipTransform(W)) == PART_MAP).all()
    flips = T.TransformList([T.HFlipTransform(W), T.VFlipTransform(H), T.HFlipTransform(W)])
    assert count_hflips(flips) == 2


def test_vflip_does_not_swap_sides():
    assert (_apply(PART_MAP, T.VFlipTransform(H)) == PART_MAP[::-1]).all()


def test_mapping_to_lr6():
    assert _apply(PART_MAP, target="lr6").tolist() == PART_MAP_LR6.tolist()


def test_mapping_to_lr6_and_flip():
    out = _apply(PART_MAP, T.HFlipTransform(W), target="lr6")
    # mirrored lr6 map with left_arm (3) <-> right_arm (4), left_leg (5) <-> right_leg (6)
    assert out.tolist() == [
        [0, 0, 1, 1, 4, 4],
        [0, 0, 4, 2, 2, 4],
        [0, 0, 2, 2, 6, 6],
        [255, 255, 0, 2, 6, 6],
    ]


@pytest.mark.parametrize("target", ["fine_lr", "lr6", "ppp6"])
def test_ignore_stays_ignore(target):
    ignore = np.full((H, W), 255, np.uint8)
    assert (_apply(ignore, target=target) == 255).all()
    assert (_apply(ignore, T.HFlipTransform(W), target=target) == 255).all()


def test_resize_up_is_nearest():
    out = _apply(PART_MAP, T.ResizeTransform(H, W, 2 * H, 3 * W))
    assert out.shape == (2 * H, 3 * W) and out.dtype == np.uint8
    assert (out == np.repeat(np.repeat(PART_MAP, 2, axis=0), 3, axis=1)).all()


def test_resize_down_creates_no_new_labels():
    # bilinear resizing would blend e.g. 3 and 1 into 2, or 0 and 255 into 127
    out = _apply(PART_MAP, T.ResizeTransform(H, W, 3, 5))
    assert out.shape == (3, 5)
    assert set(np.unique(out).tolist()) <= set(np.unique(PART_MAP).tolist())


# ------------------------------------------------------------ BodyPartsDatasetMapper


@pytest.fixture
def record(tmp_path):
    """One 4 x 6 image with two persons: one with parts and two keypoints, one with parts None."""
    image = write_image(tmp_path / "img.png", H, W)
    silhouette = FINE_PART_MAP > 0
    other = np.zeros((H, W), np.uint8)
    other[1:3, 4:6] = 1
    rec = {
        "file_name": str(tmp_path / "img.png"),
        "height": H,
        "width": W,
        "image_id": 3,
        "part_taxonomy": "fine_lr",
        "annotations": [
            {
                "bbox": [0.0, 0.0, 4.0, 4.0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "iscrowd": 0,
                "segmentation": encode_mask(silhouette),
                "keypoints": keypoints({"nose": (2.5, 0.5, 2), "left_wrist": (0.5, 1.5, 2)}),
                "parts": parts_from_map(FINE_PART_MAP),
            },
            {
                "bbox": [4.0, 1.0, 6.0, 3.0],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 0,
                "iscrowd": 0,
                "segmentation": encode_mask(other),
                "keypoints": keypoints(),
                "parts": None,
            },
        ],
    }
    return rec, image, silhouette, other


def _flip_indices():
    """COCO-17 keypoint flip indices built by hand from the taxonomy's flip map."""
    pair = dict(KP.flip_map)
    pair.update({b: a for a, b in KP.flip_map})
    return np.array([KP.names.index(pair.get(n, n)) for n in KP.names])


def _train_mapper(flip_indices, target="fine_lr", target_flip=FINE_LR.flip_lut()):
    return BodyPartsDatasetMapper(
        True,
        augmentations=[T.RandomFlip(prob=1.0)],
        image_format="BGR",
        use_instance_mask=True,
        instance_mask_format="bitmask",
        use_keypoint=True,
        keypoint_hflip_indices=flip_indices,
        part_luts={"fine_lr": mapping_lut("fine_lr", target)},
        part_flip_lut=target_flip,
    )


def test_hand_built_flip_indices_match_detectron2(dataset_name):  # noqa: F811
    register_bodyparts_json(dataset_name, "unused.json", "unused", part_taxonomy="fine_lr")
    indices = utils.create_keypoint_hflip_indices([dataset_name])
    assert list(indices) == _flip_indices().tolist()
    assert indices[9] == 10 and indices[10] == 9  # left/right wrist swap
    assert indices[0] == 0  # the nose stays


def test_train_mapper_with_flip(record, dataset_name):  # noqa: F811
    rec, image, silhouette, other = record
    register_bodyparts_json(dataset_name, "unused.json", "unused", part_taxonomy="fine_lr")
    mapper = _train_mapper(utils.create_keypoint_hflip_indices([dataset_name]))
    out = mapper(rec)

    assert out["image"].shape == (3, H, W) and out["image"].dtype == torch.uint8
    assert (out["image"].numpy() == image[:, ::-1].transpose(2, 0, 1)).all()
    assert "annotations" not in out
    assert rec["annotations"][0]["parts"] is not None  # the input record is untouched

    inst = out["instances"]
    assert len(inst) == 2 and inst.image_size == (H, W)
    assert inst.gt_classes.tolist() == [0, 0]
    # boxes: x -> W - x
    assert inst.gt_boxes.tensor.tolist() == [[2.0, 0.0, 6.0, 4.0], [0.0, 1.0, 2.0, 3.0]]
    # silhouettes mirrored
    masks = inst.gt_masks.tensor.numpy()
    assert (masks[0] == silhouette[:, ::-1]).all()
    assert (masks[1] == other[:, ::-1].astype(bool)).all()

    # part maps mirrored and swapped; the person without parts is all-ignore
    assert isinstance(inst.gt_part_maps, PartMaps)
    parts = inst.gt_part_maps.tensor
    assert parts.dtype == torch.uint8 and parts.shape == (2, H, W)
    expected = PART_MAP_FLIPPED.copy()
    expected[3, :2] = 0  # the record's pixels are labelled background, not ignore
    assert parts[0].tolist() == expected.tolist()
    assert parts[0, 0, W - 1] == FINE_LR.label_of("right_upper_arm")
    assert (parts[1] == 255).all()
    assert inst.gt_part_maps.has_parts().tolist() == [True, False]

    # keypoints: x -> W - x and left_wrist (9) <-> right_wrist (10)
    kps = inst.gt_keypoints.tensor
    assert kps.shape == (2, 17, 3)
    assert kps[0, 0].tolist() == [3.5, 0.5, 2.0]  # nose
    assert kps[0, 10].tolist() == [5.5, 1.5, 2.0]  # the left wrist is now the right wrist
    assert kps[0, 9].tolist() == [0.0, 0.0, 0.0]
    assert (kps[1] == 0).all()


def test_train_mapper_lr6_target(record):
    rec, _, _, _ = record
    out = _train_mapper(_flip_indices(), target="lr6", target_flip=LR6.flip_lut())(rec)
    parts = out["instances"].gt_part_maps.tensor
    assert parts[0, 0, W - 1] == LR6.label_of("right_arm")
    assert parts[0, 1].tolist() == [0, 0, 4, 2, 2, 4]
    assert set(parts[0].unique().tolist()) <= set(range(LR6.num_classes))


def test_train_mapper_without_flip_keeps_maps(record):
    rec, _, _, _ = record
    mapper = BodyPartsDatasetMapper(
        True,
        augmentations=[],
        image_format="BGR",
        part_luts={"fine_lr": mapping_lut("fine_lr", "fine_lr")},
        part_flip_lut=FINE_LR.flip_lut(),
    )
    inst = mapper(rec)["instances"]
    assert (inst.gt_part_maps.tensor[0].numpy() == FINE_PART_MAP).all()
    assert inst.gt_boxes.tensor.tolist() == [[0.0, 0.0, 4.0, 4.0], [4.0, 1.0, 6.0, 3.0]]
    assert not inst.has("gt_masks") and not inst.has("gt_keypoints")


def test_crowd_annotations_dropped(record):
    rec, _, _, _ = record
    rec["annotations"][1]["iscrowd"] = 1
    inst = _train_mapper(_flip_indices())(rec)["instances"]
    assert len(inst) == 1 and len(inst.gt_part_maps) == 1


def test_no_annotations_gives_empty_part_maps(record):
    rec, _, _, _ = record
    rec["annotations"] = []
    inst = _train_mapper(_flip_indices())(rec)["instances"]
    assert len(inst) == 0 and inst.gt_part_maps.tensor.shape == (0, H, W)


def test_unmapped_record_taxonomy_is_a_clear_error(record):
    rec, _, _, _ = record
    rec["part_taxonomy"] = "lr6"
    with pytest.raises(KeyError, match=r"record part taxonomy 'lr6' has no mapping"):
        _train_mapper(_flip_indices())(rec)


def test_test_mode_returns_no_instances(record):
    rec, image, _, _ = record
    mapper = BodyPartsDatasetMapper(False, augmentations=[], image_format="BGR", use_parts=False)
    out = mapper(rec)
    assert "instances" not in out and "annotations" not in out
    assert (out["image"].numpy() == image.transpose(2, 0, 1)).all()
    assert (out["height"], out["width"], out["image_id"]) == (H, W, 3)


def test_use_parts_needs_luts():
    with pytest.raises(ValueError, match="use_parts needs part_luts and part_flip_lut"):
        BodyPartsDatasetMapper(True, augmentations=[], image_format="BGR")


# ------------------------------------------------------------ from_config


def _cfg(train, target):
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.DATASETS.TRAIN = (train,)
    cfg.DATASETS.TEST = ()
    cfg.BODYPARTS.PART_TAXONOMY = target
    return cfg


def test_from_config_rejects_inexpressible_taxonomy(dataset_name):  # noqa: F811
    register_bodyparts_json(dataset_name, "unused.json", "unused", part_taxonomy="lr6")
    with pytest.raises(TaxonomyError) as e:
        BodyPartsDatasetMapper(_cfg(dataset_name, "ppp6"), is_train=True)
    msg = str(e.value)
    assert f"dataset {dataset_name!r}" in msg and "'lr6'" in msg and "'ppp6'" in msg
    for part in ("upper_arms", "lower_arms", "upper_legs", "lower_legs"):
        assert part in msg


def test_from_config_builds_luts(dataset_name):  # noqa: F811
    register_bodyparts_json(dataset_name, "unused.json", "unused", part_taxonomy="fine_lr")
    cfg = _cfg(dataset_name, "ppp6")
    cfg.MODEL.KEYPOINT_ON = True
    mapper = BodyPartsDatasetMapper(cfg, is_train=True)
    assert sorted(mapper.part_luts) == ["fine_lr"]
    assert mapper.part_luts["fine_lr"].tolist() == mapping_lut("fine_lr", "ppp6").tolist()
    assert mapper.part_flip_lut.tolist() == list(range(7))
    assert list(mapper.keypoint_hflip_indices)[9:11] == [10, 9]
    assert mapper.use_parts and mapper.is_train


def test_from_config_test_mode_skips_parts(dataset_name):  # noqa: F811
    register_bodyparts_json(dataset_name, "unused.json", "unused", part_taxonomy="lr6")
    cfg = _cfg(dataset_name, "ppp6")
    cfg.DATASETS.TEST = ("bodyparts_synthetic_val",)
    mapper = BodyPartsDatasetMapper(cfg, is_train=False)  # the lr6 train set is not consulted
    assert not mapper.use_parts and not mapper.is_train


# ----------------------------------------------------------- joint training: keypoints and coverage


def test_keypoint_hflip_indices_from_taxonomy():
    from bodyparts.data.mappers import keypoint_hflip_indices

    assert keypoint_hflip_indices("coco17").tolist() == _flip_indices().tolist()
    jh = keypoint_hflip_indices("jhmdb15")
    # neck, belly, face stay; right_shoulder (3) <-> left_shoulder (4);
    # right_ankle (13) <-> left_ankle (14)
    assert jh[:5].tolist() == [0, 1, 2, 4, 3] and jh[13:].tolist() == [14, 13]


def test_map_keypoints_by_name():
    from bodyparts.data.mappers import map_keypoints
    from bodyparts.taxonomy import JHMDB_KEYPOINTS, keypoint_index_map

    src = np.zeros((15, 3))
    for k in range(15):
        src[k] = (10 + k, 20 + k, 2)
    out = np.asarray(
        map_keypoints(src.reshape(-1).tolist(), keypoint_index_map("jhmdb15", "coco17"))
    ).reshape(17, 3)
    j = JHMDB_KEYPOINTS.names.index
    assert out[KP.names.index("left_wrist")].tolist() == [
        10 + j("left_wrist"),
        20 + j("left_wrist"),
        2,
    ]
    assert out[KP.names.index("right_ankle")].tolist() == [
        10 + j("right_ankle"),
        20 + j("right_ankle"),
        2,
    ]
    # COCO's face keypoints have no J-HMDB source: unlabelled
    for name in ("nose", "left_eye", "right_ear"):
        assert out[KP.names.index(name)].tolist() == [0, 0, 0]
    # no keypoints at all (a dataset without them): all unlabelled
    assert map_keypoints(None, keypoint_index_map("coco17", "coco17")) == [0.0] * 51


def _mixed_mapper(use_keypoint=True):
    return BodyPartsDatasetMapper(
        True,
        augmentations=[],
        image_format="BGR",
        use_instance_mask=True,
        use_keypoint=use_keypoint,
        keypoint_hflip_indices=_flip_indices(),
        keypoint_taxonomy="coco17",
        part_luts={"fine_lr": mapping_lut("fine_lr", "fine_lr")},
        part_flip_lut=FINE_LR.flip_lut(),
    )


def test_mapper_fills_missing_keypoints_with_unlabelled(record):
    rec, _, _, _ = record
    for ann in rec["annotations"]:
        ann.pop("keypoints")  # e.g. a PASCAL-Part record
    inst = _mixed_mapper()(rec)["instances"]
    assert inst.gt_keypoints.tensor.shape == (2, 17, 3)
    assert (inst.gt_keypoints.tensor == 0).all()


def test_mapper_maps_record_keypoint_taxonomy(record):
    rec, _, _, _ = record
    rec["keypoint_taxonomy"] = "jhmdb15"
    kp15 = np.zeros((15, 3))
    kp15[11] = (1.5, 2.5, 2)  # jhmdb right_wrist
    kp15[2] = (2.5, 0.5, 2)  # jhmdb face: not mapped to COCO
    for ann in rec["annotations"]:
        ann["keypoints"] = kp15.reshape(-1).tolist()
    kps = _mixed_mapper()(rec)["instances"].gt_keypoints.tensor
    assert kps[0, KP.names.index("right_wrist")].tolist() == [1.5, 2.5, 2.0]
    assert (kps[0, KP.names.index("nose")] == 0).all()
    assert int((kps[0, :, 2] > 0).sum()) == 1


def test_mapper_rejects_keypoint_count_mismatch(record):
    rec, _, _, _ = record
    rec["annotations"][0]["keypoints"] = [1.0, 1.0, 2] * 5  # 5 keypoints, record says coco17
    with pytest.raises(ValueError, match=r"img.png: keypoints in taxonomy 'coco17'.*5 keypoints"):
        _mixed_mapper()(rec)


def test_uncovered_silhouette_pixels_are_ignored(record):
    """A person pixel without a part label (PASCAL-Part parts miss ~1.5 % of the silhouette) is
    ignored (255), not taught as background; pixels outside the silhouette stay background."""
    rec, _, silhouette, _ = record
    ann = rec["annotations"][0]
    bigger = silhouette.copy()
    bigger[3, 3] = True  # one silhouette pixel that no part covers
    assert FINE_PART_MAP[3, 3] == 0
    ann["segmentation"] = encode_mask(bigger)
    parts = _mixed_mapper()(rec)["instances"].gt_part_maps.tensor[0].numpy()
    assert parts[3, 3] == 255
    assert (parts[~bigger] == 0).all()
    assert (parts[silhouette] == FINE_PART_MAP[silhouette]).all()


# -------------------------------------------------------- INPUT.CROP, as Detectron2's DatasetMapper


def _always_last_offset(monkeypatch):
    """Make RandomCrop pick its last offset: h0 = H - crop_h, w0 = W - crop_w (a known crop)."""

    def randint(low, high=None, size=None, dtype=int):
        assert size is None
        return (low if high is None else high) - 1

    monkeypatch.setattr(np.random, "randint", randint)


def _crop_cfg(dataset_name, mask_on):  # noqa: F811
    if dataset_name not in DatasetCatalog.list():
        register_bodyparts_json(dataset_name, "unused.json", "unused", part_taxonomy="fine_lr")
    cfg = _cfg(dataset_name, "fine_lr")
    cfg.MODEL.MASK_ON = mask_on
    cfg.MODEL.KEYPOINT_ON = True
    cfg.INPUT.MASK_FORMAT = "bitmask"
    cfg.INPUT.CROP.ENABLED = True
    cfg.INPUT.CROP.TYPE = "absolute"
    cfg.INPUT.CROP.SIZE = [3, 4]  # (height, width)
    cfg.INPUT.MIN_SIZE_TRAIN = (3,)  # the crop's short side: the resize keeps 3 x 4
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.INPUT.RANDOM_FLIP = "none"
    return cfg


@pytest.fixture
def crop_record(record):
    """The 4 x 6 record plus a third person on row 0, columns 4-5 (outside the known crop), and a
    visible left hip of person 0 inside it."""
    rec, image, silhouette, other = record
    third = np.zeros((H, W), np.uint8)
    third[0, 4:6] = 1
    assert not (third.astype(bool) & (silhouette | other.astype(bool))).any()
    rec["annotations"].append(
        {
            "bbox": [4.0, 0.0, 6.0, 1.0],
            "bbox_mode": BoxMode.XYXY_ABS,
            "category_id": 0,
            "iscrowd": 0,
            "segmentation": encode_mask(third),
            "keypoints": keypoints(),
            "parts": parts_from_map(third),
        }
    )
    rec["annotations"][0]["keypoints"] = keypoints(
        {"nose": (2.5, 0.5, 2), "left_wrist": (0.5, 1.5, 2), "left_hip": (3.5, 2.5, 2)}
    )
    return rec, image


def test_from_config_crop_is_detectron2s(dataset_name):  # noqa: F811
    """INPUT.CROP gives the augmentations and box recomputation of Detectron2's DatasetMapper."""
    from detectron2.data import DatasetMapper

    for mask_on in (True, False):
        cfg = _crop_cfg(dataset_name, mask_on)
        ours, theirs = BodyPartsDatasetMapper(cfg, is_train=True), DatasetMapper(cfg, is_train=True)
        assert repr(ours.augmentations) == repr(theirs.augmentations)
        assert isinstance(ours.augmentations.augs[0], T.RandomCrop)
        assert ours.recompute_boxes is theirs.recompute_boxes is mask_on
        # no crop at test time
        test_augs = BodyPartsDatasetMapper(cfg, is_train=False).augmentations.augs
        assert not any(isinstance(a, T.RandomCrop) for a in test_augs)


@pytest.mark.parametrize("mask_on", [True, False])
def test_known_crop_transforms_everything(
    crop_record,
    dataset_name,  # noqa: F811
    monkeypatch,
    mask_on,
):
    rec, image = crop_record
    _always_last_offset(monkeypatch)  # crop rows 1..3, columns 2..5 (y0 = 4 - 3, x0 = 6 - 4)
    out = BodyPartsDatasetMapper(_crop_cfg(dataset_name, mask_on), is_train=True)(rec)

    assert out["image"].shape == (3, 3, 4)
    assert (out["image"].numpy() == image[1:4, 2:6].transpose(2, 0, 1)).all()
    inst = out["instances"]
    assert inst.image_size == (3, 4)
    assert len(inst) == 2  # the third person lies on row 0, cropped away entirely: dropped
    # person 0: box [0, 0, 4, 4] - (2, 1) clipped to the crop; person 1: [4, 1, 6, 3] - (2, 1)
    assert inst.gt_boxes.tensor.tolist() == [[0.0, 0.0, 2.0, 3.0], [2.0, 0.0, 4.0, 2.0]]
    assert inst.gt_part_maps.tensor[0].tolist() == [[2, 7, 0, 0], [2, 2, 0, 0], [2, 0, 0, 0]]
    assert (inst.gt_part_maps.tensor[1] == 255).all()  # person 1 has no part annotation
    if mask_on:
        assert inst.gt_masks.tensor[0].int().tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [1, 0, 0, 0]]
        assert inst.gt_masks.tensor[1].int().tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]
    # keypoints: (x - 2, y - 1); nose (0.5, -0.5) and left wrist (-1.5, 0.5) fall outside: invisible
    kps = inst.gt_keypoints.tensor
    assert kps[0, KP.names.index("left_hip")].tolist() == [1.5, 1.5, 2.0]
    assert kps[0, KP.names.index("nose")].tolist() == [0.0, 0.0, 0.0]
    assert kps[0, KP.names.index("left_wrist")].tolist() == [0.0, 0.0, 0.0]
    assert int((kps[0, :, 2] > 0).sum()) == 1 and (kps[1] == 0).all()


def test_known_crop_of_polygon_silhouettes(crop_record, dataset_name, monkeypatch):  # noqa: F811
    """Polygon silhouettes (COCO-style data) are cropped too, also when a person is cropped away."""
    rec, _ = crop_record
    rec["annotations"][1]["segmentation"] = [[4.0, 1.0, 6.0, 1.0, 6.0, 3.0, 4.0, 3.0]]
    rec["annotations"][2]["segmentation"] = [[4.0, 0.0, 6.0, 0.0, 6.0, 1.0, 4.0, 1.0]]
    _always_last_offset(monkeypatch)
    inst = BodyPartsDatasetMapper(_crop_cfg(dataset_name, True), is_train=True)(rec)["instances"]
    assert len(inst) == 2
    assert inst.gt_boxes.tensor[1].tolist() == [2.0, 0.0, 4.0, 2.0]
    assert inst.gt_masks.tensor[1].int().tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]]


def test_semantic_mapper_known_crop(record, dataset_name, monkeypatch):  # noqa: F811
    from bodyparts.data.semantic_mapper import BodyPartsSemSegMapper

    rec, image, _, _ = record
    _always_last_offset(monkeypatch)
    out = BodyPartsSemSegMapper(_crop_cfg(dataset_name, False), is_train=True)(rec)
    assert (out["image"].numpy() == image[1:4, 2:6].transpose(2, 0, 1)).all()
    # the image-level map of the record, rows 1..3, columns 2..5; person 1 (no parts) is ignored
    assert out["sem_seg"].tolist() == [[2, 7, 255, 255], [2, 2, 255, 255], [2, 0, 0, 0]]


def test_panoptic_mapper_known_crop(record, dataset_name, monkeypatch, tmp_path):  # noqa: F811
    from bodyparts.data.panoptic_mapper import BodyPartsPanopticMapper

    rec, image, silhouette, other = record
    ids = np.where(silhouette, 1, np.where(other.astype(bool), 2, 3)).astype(np.int64)  # 3 = stuff
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    assert cv2.imwrite(str(tmp_path / "pan.png"), rgb[:, :, ::-1])
    rec["pan_seg_file_name"] = str(tmp_path / "pan.png")
    rec["segments_info"] = [
        {"id": 1, "category_id": 0, "iscrowd": 0, "isthing": True},
        {"id": 2, "category_id": 0, "iscrowd": 0, "isthing": True},
        {"id": 3, "category_id": 1, "iscrowd": 0, "isthing": False},
    ]
    cfg = _crop_cfg(dataset_name, True)
    cfg.MODEL.BODYPART_ON = True
    _always_last_offset(monkeypatch)
    out = BodyPartsPanopticMapper(cfg, is_train=True)(rec)
    assert (out["image"].numpy() == image[1:4, 2:6].transpose(2, 0, 1)).all()
    assert out["sem_seg"].tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1]]
    parts = out["instances"].gt_part_maps.tensor
    assert parts[0].tolist() == [[2, 7, 0, 0], [2, 2, 0, 0], [2, 0, 0, 0]]
    assert out["instances"].gt_boxes.tensor.tolist() == [[0.0, 0.0, 2.0, 3.0], [2.0, 0.0, 4.0, 2.0]]
