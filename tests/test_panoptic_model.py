"""The part-aware panoptic model: its mapper (semantic-branch target from a panoptic PNG), the
part-aware merge on a constructed case, the model from the quick configs, start-up checks,
drawing."""

import os

import cv2
import numpy as np
import pytest
import torch
from _helpers import (
    dataset_name,  # noqa: F401  (fixture)
    parts_from_map,
    write_image,
)
from conftest import REPO, TINY_OPTS
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.catalog import Metadata
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.panoptic_fpn import combine_semantic_and_instance_outputs
from detectron2.structures import Boxes, BoxMode, Instances
from detectron2.utils.events import EventStorage
from detectron2.utils.visualizer import Visualizer

from bodyparts import add_bodyparts_config
from bodyparts.data.contract import encode_mask
from bodyparts.data.datasets.synthetic import PANOPTIC_METADATA, register_synthetic_from_cfg
from bodyparts.data.panoptic_mapper import BodyPartsPanopticMapper, panoptic_semantic_labels
from bodyparts.engine.trainer import build_mapper
from bodyparts.modeling.inference import paste_part_masks
from bodyparts.modeling.losses import part_loss
from bodyparts.modeling.panoptic import BodyPartsPanopticFPN, part_panoptic_map
from bodyparts.taxonomy import FINE_LR, mapping_lut
from bodyparts.utils.visualizer import draw_part_panoptic, part_overlay

QUICK = os.path.join(
    REPO, "configs", "quick_schedules", "panoptic_bodyparts_R18_FPN_synthetic_cpu.yaml"
)
PLAIN = os.path.join(
    REPO, "configs", "quick_schedules", "panoptic_fpn_plain_R18_FPN_synthetic_cpu.yaml"
)

# ------------------------------------------------------------------------------------- mapper

# A 4 x 6 panoptic id map: 1 person, 2 crowd person, 300 sky (stuff 1), 301 ground (stuff 3),
# 302 wall (stuff 2), 0 unlabeled.
PAN_IDS = np.array(
    [
        [300, 300, 300, 300, 301, 301],
        [1, 1, 2, 2, 301, 301],
        [1, 1, 2, 2, 0, 301],
        [1, 1, 0, 0, 302, 302],
    ]
)
SEGMENTS = [
    {"id": 1, "category_id": 0, "iscrowd": 0, "isthing": True},
    {"id": 2, "category_id": 0, "iscrowd": 1, "isthing": True},
    {"id": 300, "category_id": 1, "iscrowd": 0, "isthing": False},
    {"id": 301, "category_id": 3, "iscrowd": 0, "isthing": False},
    {"id": 302, "category_id": 2, "iscrowd": 0, "isthing": False},
]
# stuff -> its category, things -> 0, crowd and unlabeled -> 255
SEM_SEG = [
    [1, 1, 1, 1, 3, 3],
    [0, 0, 255, 255, 3, 3],
    [0, 0, 255, 255, 255, 3],
    [0, 0, 255, 255, 2, 2],
]
# part map (fine_lr) of person 1 (rows 1-3, columns 0-1): head, torso / left_upper_arm, torso
PERSON_PARTS = np.zeros((4, 6), np.uint8)
PERSON_PARTS[1, 0:2] = 1
PERSON_PARTS[2:4, 0] = 3
PERSON_PARTS[2:4, 1] = 2


def _write_pan_png(path, ids: np.ndarray) -> None:
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    assert cv2.imwrite(str(path), rgb[:, :, ::-1])


def _annotation(mask: np.ndarray, category_id: int, parts=None) -> dict:
    ys, xs = np.nonzero(mask)
    return {
        "bbox": [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)],
        "bbox_mode": BoxMode.XYXY_ABS,
        "category_id": category_id,
        "iscrowd": 0,
        "segmentation": encode_mask(mask),
        "parts": parts,
    }


@pytest.fixture
def pan_record(tmp_path):
    write_image(tmp_path / "img.png", 4, 6)
    _write_pan_png(tmp_path / "pan.png", PAN_IDS)
    person = PAN_IDS == 1
    car = np.zeros((4, 6), bool)
    car[0, 0:2] = True  # a second thing class (no segment needed for this test)
    return {
        "file_name": str(tmp_path / "img.png"),
        "pan_seg_file_name": str(tmp_path / "pan.png"),
        "segments_info": [dict(s) for s in SEGMENTS],
        "height": 4,
        "width": 6,
        "image_id": 7,
        "part_taxonomy": "fine_lr",
        "annotations": [
            _annotation(person, 0, parts_from_map(PERSON_PARTS)),
            _annotation(car, 1, parts_from_map(car.astype(np.uint8))),  # parts on a car: ignored
        ],
    }


def _mapper(augmentations=(), use_parts=True):
    return BodyPartsPanopticMapper(
        True,
        augmentations=list(augmentations),
        image_format="BGR",
        use_instance_mask=True,
        use_parts=use_parts,
        part_luts={"fine_lr": mapping_lut("fine_lr", "fine_lr")},
        part_flip_lut=FINE_LR.flip_lut(),
        part_thing_ids=[0],
    )


def test_semantic_labels_from_panoptic_ids():
    out = panoptic_semantic_labels(PAN_IDS, SEGMENTS, "pan.png")
    assert out.dtype == np.uint8 and out.tolist() == SEM_SEG


def test_mapper_sem_seg_and_part_maps(pan_record):
    out = _mapper()(pan_record)
    assert out["sem_seg"].dtype == torch.long and out["sem_seg"].tolist() == SEM_SEG
    inst = out["instances"]
    assert inst.gt_classes.tolist() == [0, 1]
    maps = inst.gt_part_maps.tensor
    assert maps[0].numpy().tolist() == PERSON_PARTS.tolist()  # 0 = background around the person
    assert (maps[1] == 255).all()  # a thing class without parts: no part loss


def test_things_without_parts_add_no_part_loss(pan_record):
    """The car's all-255 map gives all-ignore part targets: the part loss of person + car ROIs
    equals the person's alone (it is normalised by the labelled pixels)."""
    inst = _mapper()(pan_record)["instances"]
    targets = inst.gt_part_maps.crop_and_resize(inst.gt_boxes.tensor, 8)
    assert (targets[1] == 255).all() and (targets[0] != 255).all()
    logits = torch.randn(2, FINE_LR.num_classes, 8, 8, requires_grad=True)
    assert part_loss(logits[1:], targets[1:]).item() == 0.0
    assert torch.allclose(part_loss(logits, targets), part_loss(logits[:1], targets[:1]))
    part_loss(logits, targets).backward()
    assert (logits.grad[1] == 0).all() and (logits.grad[0] != 0).any()


def test_mapper_flip_and_resize_are_nearest(pan_record):
    flipped = _mapper([T.RandomFlip(prob=1.0, horizontal=True)])(pan_record)
    assert flipped["sem_seg"].tolist() == np.fliplr(np.array(SEM_SEG)).tolist()
    resized = _mapper([T.Resize((8, 12))])(pan_record)
    assert (
        resized["sem_seg"].tolist() == np.repeat(np.repeat(np.array(SEM_SEG), 2, 0), 2, 1).tolist()
    )
    assert resized["image"].shape == (3, 8, 12)


def test_mapper_without_parts_and_at_test_time(pan_record):
    out = _mapper(use_parts=False)(pan_record)
    assert not out["instances"].has("gt_part_maps") and out["sem_seg"].tolist() == SEM_SEG
    test_mapper = BodyPartsPanopticMapper(
        False, augmentations=[], image_format="BGR", use_parts=False
    )
    out = test_mapper(pan_record)
    assert "sem_seg" not in out and "instances" not in out and out["segments_info"] == SEGMENTS


def test_mapper_errors_name_the_file(pan_record, tmp_path):
    rec = dict(pan_record, pan_seg_file_name=str(tmp_path / "missing.png"))
    with pytest.raises(FileNotFoundError, match="missing.png"):
        _mapper()(rec)
    _write_pan_png(tmp_path / "small.png", PAN_IDS[:3])
    with pytest.raises(ValueError, match=r"small.png: panoptic PNG is 3x6, the record says 4x6"):
        _mapper()(dict(pan_record, pan_seg_file_name=str(tmp_path / "small.png")))
    rec = dict(pan_record, segments_info=[s for s in SEGMENTS if s["id"] != 301])
    with pytest.raises(
        ValueError, match=r"pan.png: panoptic ids \[301\] are not in the record's segments_info"
    ):
        _mapper()(rec)
    rec = {k: v for k, v in pan_record.items() if k != "pan_seg_file_name"}
    with pytest.raises(KeyError, match="img.png.*no 'pan_seg_file_name'"):
        _mapper()(rec)


# ------------------------------------------------------------------------ the part-aware merge

H, W = 10, 12
C = 4  # background + 3 part labels in this constructed case


def _roi_probs(rows) -> torch.Tensor:
    """(C, 3, 3) one-hot probabilities, label ``rows[r]`` on ROI row r."""
    probs = torch.zeros(C, 3, 3)
    for r, label in enumerate(rows):
        probs[label, r, :] = 1.0
    return probs


def _box_mask(y0, y1, x0, x1) -> torch.Tensor:
    mask = torch.zeros(H, W, dtype=torch.bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _constructed_case():
    """Detections A (0.9), B (0.8, overlaps A by 8 of its 36 pixels), D (0.7, 10 of its 12 pixels
    under A), E (0.3, below the score threshold); semantic labels 1 (12 px), 2 (5 px), 3 (18 px)."""
    boxes = [(1, 1, 6, 7), (4, 3, 10, 9), (2, 2, 4, 8), (8, 0, 12, 3)]  # XYXY (x0, y0, x1, y1)
    masks = [
        _box_mask(1, 7, 1, 6),
        _box_mask(3, 9, 4, 10),
        _box_mask(2, 8, 2, 4),
        _box_mask(0, 3, 8, 12),
    ]
    inst = Instances((H, W))
    inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.scores = torch.tensor([0.9, 0.8, 0.7, 0.3])
    inst.pred_classes = torch.tensor([0, 0, 0, 0])
    inst.pred_masks = torch.stack(masks)
    # ROI rows: A head, torso, background; B torso, arm, arm; D, E head
    inst.pred_part_masks = torch.stack(
        [_roi_probs([1, 2, 0]), _roi_probs([2, 3, 3]), _roi_probs([1] * 3), _roi_probs([1] * 3)]
    )
    sem = torch.zeros(H, W, dtype=torch.long)  # 0 = things
    sem[0, :] = 1  # sky: the top row
    sem[1:, 10:] = 3  # ground: the two right columns below it
    sem[9, 0:5] = 2  # wall: 5 pixels, below the stuff area limit
    return inst, sem


def test_panoptic_merge_constructed_case():
    inst, sem = _constructed_case()
    panoptic_seg, segments = combine_semantic_and_instance_outputs(inst, sem, 0.5, 6, 0.5)
    # Detectron2's merge: A -> 1, B -> 2 (minus A's pixels), D dropped (overlap 10/12 > 0.5),
    # E dropped (score), then stuff in label order: sky -> 3, wall dropped (5 < 6), ground -> 4
    assert [(s["id"], s["isthing"], s["category_id"]) for s in segments] == [
        (1, True, 0),
        (2, True, 0),
        (3, False, 1),
        (4, False, 3),
    ]
    assert [s["instance_id"] for s in segments[:2]] == [0, 1]
    a = _box_mask(1, 7, 1, 6)
    b = _box_mask(3, 9, 4, 10) & ~a
    sky, ground = _box_mask(0, 1, 0, 12), _box_mask(1, 10, 10, 12)
    expected_seg = torch.zeros(H, W, dtype=torch.int32)
    for sid, m in ((1, a), (2, b), (3, sky), (4, ground)):
        expected_seg[m] = sid
    assert torch.equal(panoptic_seg, expected_seg)
    assert segments[2]["area"] == 12 and segments[3]["area"] == 18

    # pasted with bilinear sampling at pixel centres: a 6-row box maps 2 pixel rows to each ROI row
    part_maps = paste_part_masks(inst.pred_part_masks, inst.pred_boxes.tensor, (H, W))
    out = part_panoptic_map(panoptic_seg, segments, part_maps, [1], [-1, 2, 3, 4], [0])
    assert out.dtype == torch.uint8 and out.shape == (H, W, 3) and out.device.type == "cpu"
    expected = np.full((H, W, 3), 255, np.uint8)  # void: e.g. the 5 wall pixels
    expected[a.numpy()] = (1, 1, 0)  # A, part label 0 (background) in rows 5-6
    expected[1:3, 1:6, 2] = 1  # A rows 1-2: head
    expected[3:5, 1:6, 2] = 2  # A rows 3-4: torso
    expected[b.numpy()] = (1, 2, 3)  # B: arm ...
    expected[3:5, 6:10, 2] = 2  # ... except its rows 3-4: torso
    expected[sky.numpy()] = (2, 0, 255)
    expected[ground.numpy()] = (4, 0, 255)
    assert out.numpy().tolist() == expected.tolist()
    # parts only inside each person's own segment: under A, B's map says arm, A's background
    overlap = a & _box_mask(3, 9, 4, 10)
    assert (part_maps[1][5:7, 4:6] == 3).all() and overlap[5:7, 4:6].all()
    assert (out[5:7, 4:6, 2] == 0).all()


def test_part_panoptic_map_other_classes_and_errors():
    seg = torch.tensor([[1, 2, 3], [4, 0, 5]], dtype=torch.int32)
    segments = [
        {"id": 1, "isthing": True, "category_id": 1, "instance_id": 0},  # a car: no parts
        {"id": 2, "isthing": True, "category_id": 0, "instance_id": 2},  # person without part map
        {"id": 3, "isthing": True, "category_id": 0, "instance_id": 1},
        {"id": 4, "isthing": True, "category_id": 1, "instance_id": 3},
        {"id": 5, "isthing": False, "category_id": 1},
    ]
    maps = {
        0: torch.full((2, 3), 7, dtype=torch.uint8),
        1: torch.full((2, 3), 5, dtype=torch.uint8),
    }
    out = part_panoptic_map(seg, segments, maps, [15, 7], [-1, 21], [0])
    assert out.tolist() == [
        [[7, 1, 255], [15, 1, 255], [15, 2, 5]],
        [[7, 2, 255], [255, 255, 255], [21, 0, 255]],
    ]
    assert (part_panoptic_map(seg, segments, None, [15, 7], [-1, 21], [0])[..., 2] == 255).all()
    with pytest.raises(ValueError, match="stuff category 0 has scene id -1"):
        part_panoptic_map(
            seg, [{"id": 5, "isthing": False, "category_id": 0}], None, [15], [-1, 21], [0]
        )
    with pytest.raises(ValueError, match="thing category_id 2 outside 0..1"):
        part_panoptic_map(seg, [dict(segments[0], category_id=2)], None, [15, 7], [-1, 21], [0])


# ---------------------------------------------------------------------------- the models


def _cfg(path, *opts):
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_file(path)
    cfg.merge_from_list([*TINY_OPTS, *opts])
    register_synthetic_from_cfg(cfg)
    return cfg


def _train_steps(cfg, model, steps: int = 2):
    mapper = build_mapper(cfg, list(cfg.DATASETS.TRAIN), True)
    assert type(mapper) is BodyPartsPanopticMapper
    records = DatasetCatalog.get(cfg.DATASETS.TRAIN[0])[:2]
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.005)
    losses = []
    with EventStorage():
        for _ in range(steps):
            loss = model([mapper(r) for r in records])
            assert all(torch.isfinite(v) for v in loss.values()), loss
            sum(loss.values()).backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss)
    return losses


def _infer(cfg, model):
    mapper = build_mapper(cfg, list(cfg.DATASETS.TEST), False)
    record = DatasetCatalog.get(cfg.DATASETS.TEST[0])[0]
    model.eval()
    with torch.no_grad():
        return model([mapper(record)])[0], record


def test_quick_config_model_trains_and_outputs_part_panoptic(datasets_root):
    # every detection becomes a candidate segment, so the untrained model has thing segments
    cfg = _cfg(
        QUICK,
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
        "0.0",
        "MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH",
        "0.0",
        "MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT",
        "0",
    )
    torch.manual_seed(0)
    model = build_model(cfg)
    assert isinstance(model, BodyPartsPanopticFPN) and model.roi_heads.part_on
    losses = _train_steps(cfg, model)
    assert {"loss_sem_seg", "loss_part", "loss_keypoint", "loss_cls", "loss_rpn_cls"} <= set(
        losses[0]
    )
    assert "loss_mask" not in losses[0]  # silhouettes from the part branch
    out, record = _infer(cfg, model)
    h, w = record["height"], record["width"]
    assert set(out) == {"instances", "sem_seg", "panoptic_seg", "part_panoptic"}
    assert out["sem_seg"].shape == (4, h, w) and out["sem_seg"].dtype == torch.float32
    seg, segments = out["panoptic_seg"]
    assert seg.dtype == torch.int32 and seg.shape == (h, w)
    pp = out["part_panoptic"]
    assert pp.dtype == torch.uint8 and pp.shape == (h, w, 3) and pp.device.type == "cpu"
    assert (pp[seg == 0] == 255).all()
    things = [s for s in segments if s["isthing"]]
    assert things, "no thing segment with every detection kept"
    inst = out["instances"]
    for k, s in enumerate(things):
        mask = seg == s["id"]
        assert s["area"] == int(mask.sum())
        i = s["instance_id"]
        expected = paste_part_masks(
            inst.pred_part_masks[i : i + 1], inst.pred_boxes.tensor[i : i + 1], (h, w)
        )[0]
        assert (pp[mask][:, 0] == 1).all() and (pp[mask][:, 1] == k + 1).all()
        assert torch.equal(pp[mask][:, 2], expected[mask])
    for s in segments:
        if not s["isthing"]:
            assert (
                pp[seg == s["id"]]
                == torch.tensor([s["category_id"] + 1, 0, 255], dtype=torch.uint8)
            ).all()


def test_plain_panoptic_fpn_trains_on_the_same_data(datasets_root):
    cfg = _cfg(PLAIN)
    torch.manual_seed(0)
    model = build_model(cfg)
    assert type(model).__name__ == "PanopticFPN"
    losses = _train_steps(cfg, model, steps=1)
    assert {"loss_sem_seg", "loss_mask", "loss_cls"} <= set(
        losses[0]
    ) and "loss_part" not in losses[0]
    out, _ = _infer(cfg, model)
    assert set(out) == {"instances", "sem_seg", "panoptic_seg"}


@pytest.mark.parametrize(
    "opts, message",
    [
        (
            ["MODEL.SEM_SEG_HEAD.NUM_CLASSES", "5"],
            r"MODEL.SEM_SEG_HEAD.NUM_CLASSES=5 but dataset 'bodyparts_synthetic_train' "
            r"has 4 stuff_classes",
        ),
        (
            ["MODEL.ROI_HEADS.NUM_CLASSES", "2"],
            r"MODEL.ROI_HEADS.NUM_CLASSES=2 but .* has 1 thing_classes",
        ),
        (
            ["MODEL.BODYPART_PANOPTIC.PART_THING_IDS", "[1]"],
            r"PART_THING_IDS \[1\] are not thing class ids 0..0",
        ),
    ],
)
def test_start_up_checks(datasets_root, opts, message):
    with pytest.raises(ValueError, match=message):
        build_model(_cfg(QUICK, *opts))


def test_start_up_checks_dataset_metadata(datasets_root, dataset_name):  # noqa: F811
    DatasetCatalog.register(dataset_name, lambda: [])
    MetadataCatalog.get(dataset_name).set(
        thing_classes=["person"], stuff_classes=PANOPTIC_METADATA["stuff_classes"]
    )
    with pytest.raises(
        ValueError, match=f"dataset '{dataset_name}': metadata has no 'thing_scene_ids'"
    ):
        build_model(_cfg(QUICK, "DATASETS.TEST", f"('{dataset_name}',)"))
    MetadataCatalog.get(dataset_name).set(thing_scene_ids=[1], stuff_scene_ids=[-1, 2, 3, 5])
    with pytest.raises(ValueError, match="disagree on metadata 'stuff_scene_ids'"):
        build_model(_cfg(QUICK, "DATASETS.TEST", f"('{dataset_name}',)"))


# ------------------------------------------------------------------------------- drawing


def test_draw_part_panoptic_colours_parts_inside_person_segments():
    h, w = 60, 80
    image = np.full((h, w, 3), 100, np.uint8)
    seg = torch.zeros(h, w, dtype=torch.int32)
    seg[:, :] = 2  # sky
    seg[10:50, 20:50] = 1  # the person
    seg[50:, :] = 0  # void
    parts = np.full((h, w, 3), 255, np.uint8)
    parts[10:30, 20:50, 2] = 1  # head
    parts[30:50, 20:50, 2] = 2  # torso
    segments = [
        {"id": 1, "isthing": True, "category_id": 0, "score": 0.9},
        {"id": 2, "isthing": False, "category_id": 1},
    ]
    meta = Metadata(name="bodyparts_test_draw_part_panoptic")
    meta.set(
        **{k: PANOPTIC_METADATA[k] for k in ("stuff_classes", "stuff_colors")},
        thing_classes=["person"],
    )
    out = draw_part_panoptic(image, seg, segments, parts, meta, "fine_lr", alpha=0.5)
    assert out.shape == (h, w, 3) and out.dtype == np.uint8
    overlay = part_overlay(image, parts[..., 2], FINE_LR.palette(), 0.5)
    assert out[13, 23].tolist() == overlay[13, 23].tolist() != image[13, 23].tolist()  # head colour
    assert (
        out[47, 23].tolist() == overlay[47, 23].tolist() != overlay[13, 23].tolist()
    )  # torso colour
    stuff_only = (
        Visualizer(image, meta).draw_panoptic_seg(seg, [dict(segments[1])], alpha=0.5).get_image()
    )
    assert (
        out[4, 4].tolist() == stuff_only[4, 4].tolist() != image[4, 4].tolist()
    )  # sky as Detectron2
    assert out[56, 40].tolist() == image[56, 40].tolist()  # void
    assert segments[1] == {"id": 2, "isthing": False, "category_id": 1}  # inputs not modified
    with_legend = draw_part_panoptic(image, seg, segments, parts, meta, "fine_lr", legend=True)
    assert with_legend.shape[0] == h and with_legend.shape[1] > w


# ------------------------------------------------- thing classes without parts (multi-class data)

SIDE = 96


def _two_class_dataset(name: str) -> dict:
    """Register ``name``: panoptic metadata with persons (parts) and cars (no parts), one 96 x 96
    record with a person whose box is (10, 20)-(40, 80): head above torso."""
    person = np.zeros((SIDE, SIDE), bool)
    person[20:80, 10:40] = True
    parts = np.zeros((SIDE, SIDE), np.uint8)
    parts[20:40, 10:40] = 1
    parts[40:80, 10:40] = 2
    record = {
        "file_name": "scene.png",
        "height": SIDE,
        "width": SIDE,
        "image_id": 0,
        "part_taxonomy": "fine_lr",
        "annotations": [_annotation(person, 0, parts_from_map(parts))],
    }
    DatasetCatalog.register(name, lambda: [record])
    MetadataCatalog.get(name).set(
        thing_classes=["person", "car"],
        thing_scene_ids=[1, 5],
        part_taxonomy="fine_lr",
        **{k: PANOPTIC_METADATA[k] for k in ("stuff_classes", "stuff_colors", "stuff_scene_ids")},
    )
    return record


TWO_CLASS_OPTS = [
    "MODEL.ROI_HEADS.NUM_CLASSES",
    "2",
    "MODEL.MASK_ON",
    "True",
    "MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS",
    "False",
    "MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS",
    "False",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
    "0.0",
    "TEST.DETECTIONS_PER_IMAGE",
    "200",  # every proposal's person and car detections are kept
]


def _two_class_cfg(name, *opts):
    datasets = ["DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", f"('{name}',)"]
    return _cfg(QUICK, *datasets, *TWO_CLASS_OPTS, *opts)


def _two_class_model(name, *opts):
    cfg = _two_class_cfg(name, *opts)
    torch.manual_seed(0)
    return cfg, build_model(cfg).eval()


def test_part_slots_and_maps_only_for_classes_with_parts(datasets_root, dataset_name):  # noqa: F811
    from bodyparts.modeling import PartPredictions
    from bodyparts.utils.visualizer import draw_predictions, person_part_maps

    _two_class_dataset(dataset_name)
    cfg, model = _two_class_model(dataset_name)
    branch = model.roi_heads.part_branch
    # training: part slots for person proposals only (test_part_branch.py checks the selection)
    assert branch.part_class_ids == [0]
    assert build_model(_cfg(QUICK)).roi_heads.part_branch.part_class_ids is None  # all have parts
    silhouettes = [
        "MODEL.MASK_ON",
        "False",
        "MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS",
        "True",
    ]
    with pytest.raises(ValueError, match="SILHOUETTE_FROM_PARTS"):
        build_model(_two_class_cfg(dataset_name, *silhouettes))

    # given detections: persons 0 and 3, cars 1, 2, 4; the part head sees the 2 persons only
    seen = []
    branch.head.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    boxes = [[10, 20, 40, 80], [50, 50, 90, 70], [60, 10, 90, 40], [30, 20, 60, 90], [0, 0, 20, 20]]
    dets = Instances(
        (SIDE, SIDE),
        pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
        pred_classes=torch.tensor([0, 1, 1, 0, 1]),
        scores=torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5]),
    )
    torch.manual_seed(1)
    image = torch.randint(0, 256, (3, SIDE, SIDE)).float()
    with torch.no_grad():
        features = model.backbone(model.preprocess_image([{"image": image}]).tensor)
        (inst,) = model.roi_heads.forward_with_given_boxes(features, [dets])
    node = cfg.MODEL.ROI_BODYPART_HEAD
    c, m = FINE_LR.num_classes, 2 * node.POOLER_RESOLUTION * node.UP_SCALE
    masks = inst.pred_part_masks
    assert seen == [2] and isinstance(masks, PartPredictions) and masks.index.tolist() == [0, 3]
    assert masks.probs.shape == (2, c, m, m)  # memory: 2 of 5 detections
    assert inst.pred_masks.shape[0] == 5  # silhouettes of every class from the mask head

    # the merge: parts inside the person segment, none (255) inside the car segment
    seg = torch.zeros(SIDE, SIDE, dtype=torch.int32)
    seg[20:80, 10:40], seg[50:70, 50:90], seg[:10, 60:] = 1, 2, 3
    segments = [
        {"id": 1, "isthing": True, "category_id": 0, "instance_id": 0},
        {"id": 2, "isthing": True, "category_id": 1, "instance_id": 1},
        {"id": 3, "isthing": False, "category_id": 1},
    ]
    maps = model._part_label_maps(inst, segments)
    out = part_panoptic_map(seg, segments, maps, [1, 5], PANOPTIC_METADATA["stuff_scene_ids"], [0])
    person = paste_part_masks(masks.probs[:1], inst.pred_boxes.tensor[:1], (SIDE, SIDE))[0]
    assert torch.equal(out[20:80, 10:40, 2], person[20:80, 10:40])
    assert (out[50:70, 50:90] == torch.tensor([5, 1, 255], dtype=torch.uint8)).all()

    # the visualizer: the cars' maps are empty, the persons' are their pasted probabilities
    maps = person_part_maps(inst)
    assert maps.shape == (5, SIDE, SIDE) and not maps[[1, 2, 4]].any()
    persons = paste_part_masks(masks.probs, inst.pred_boxes.tensor[[0, 3]], (SIDE, SIDE))
    np.testing.assert_array_equal(maps[[0, 3]], persons.numpy())
    drawn = draw_predictions(np.zeros((SIDE, SIDE, 3), np.uint8), inst, FINE_LR, score_threshold=0)
    assert drawn.shape == (SIDE, SIDE, 3) and drawn.any()


def test_panoptic_outputs_with_thing_classes_without_parts(datasets_root, dataset_name):  # noqa: F811
    """The whole model on an image: part maps only for person detections, and the parsing evaluator
    scores them exactly as the same persons given with dense part probabilities."""
    from bodyparts.evaluation import BodyPartParsingEvaluator
    from bodyparts.modeling import PartPredictions

    _two_class_dataset(dataset_name)
    combine = "MODEL.PANOPTIC_FPN.COMBINE"
    _, model = _two_class_model(
        dataset_name,
        f"{combine}.INSTANCES_CONFIDENCE_THRESH",
        "0.0",
        f"{combine}.STUFF_AREA_LIMIT",
        "0",
    )
    torch.manual_seed(1)
    image = torch.randint(0, 256, (3, SIDE, SIDE)).float()
    with torch.no_grad():
        out = model([{"image": image, "height": SIDE, "width": SIDE}])[0]
    inst = out["instances"]
    person = inst.pred_classes == 0
    assert person.any() and (~person).any(), inst.pred_classes.tolist()
    masks = inst.pred_part_masks
    assert isinstance(masks, PartPredictions) and torch.equal(masks.has_parts(), person)
    assert masks.probs.shape[0] == int(person.sum())
    seg, segments = out["panoptic_seg"]
    for s in segments:
        if s["isthing"] and s["category_id"] == 1:
            assert (out["part_panoptic"][seg == s["id"]][:, 2] == 255).all()

    results = []
    for given in (inst, inst[person]):
        if given is not inst:
            given.pred_part_masks = given.pred_part_masks.probs  # the persons, a dense tensor
        evaluator = BodyPartParsingEvaluator(dataset_name, "fine_lr", distributed=False)
        evaluator.process([{"image_id": 0}], [{"instances": given}])
        results.append(evaluator.evaluate()["parsing"])
    assert results[0].keys() == results[1].keys()
    for key, value in results[0].items():
        assert value == pytest.approx(results[1][key], nan_ok=True), key
