"""Part branch: head shapes, pure loss / target / inference functions, ROI heads, plug-in mixin."""

import math
import os
from argparse import Namespace

import numpy as np
import pytest
import torch
from conftest import QUICK_CONFIG, TINY_OPTS
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, CascadeROIHeads
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from bodyparts.engine import Trainer, setup_cfg
from bodyparts.modeling import (
    BodyPartHeadsMixin,
    PartDilatedContextHead,
    PartPredictions,
    PartRCNNConvDeconvHead,
    class_balance_weights,
    part_loss,
    part_targets,
    paste_part_masks,
)
from bodyparts.structures import PartMaps


def test_head_output_shapes():
    x = torch.randn(3, 8, 7, 7)
    head = PartRCNNConvDeconvHead(
        ShapeSpec(channels=8), num_classes=15, conv_dims=[16, 16], up_scale=2
    )
    assert head(x).shape == (3, 15, 28, 28)  # M = P * 2 * up_scale
    assert head.trunk(x).shape == (3, 16, 7, 7)
    dil = PartDilatedContextHead(
        ShapeSpec(channels=8), num_classes=7, conv_dims=[16] * 3, dilations=[1, 2, 4], up_scale=1
    )
    assert dil(x).shape == (3, 7, 14, 14)
    assert [c.dilation for c in dil.convs] == [(1, 1), (2, 2), (4, 4)]
    with pytest.raises(ValueError, match="DILATIONS"):
        PartDilatedContextHead(
            ShapeSpec(channels=8), num_classes=7, conv_dims=[16, 16], dilations=[1]
        )


def test_part_loss_hand_computed():
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)  # uniform: -log softmax = log 2 everywhere
    targets = torch.tensor([[[0, 1], [255, 1]]])
    assert part_loss(logits, targets).item() == pytest.approx(math.log(2))
    # outer weighting: (1 * log2 + 3 * log2 + 3 * log2) / 3 labelled pixels
    w = torch.tensor([1.0, 3.0])
    assert part_loss(logits, targets, w).item() == pytest.approx(7 * math.log(2) / 3)


def test_part_loss_without_labels_is_zero_and_connected():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    for targets in (torch.full((2, 4, 4), 255), torch.zeros((0, 4, 4), dtype=torch.long)):
        loss = part_loss(logits, targets)
        assert loss.item() == 0 and loss.requires_grad
        loss.backward()
        assert torch.count_nonzero(logits.grad) == 0
    empty = torch.zeros(0, 3, 4, 4, requires_grad=True)
    assert part_loss(empty, torch.zeros((0, 4, 4), dtype=torch.long)).requires_grad


def test_part_targets_mixes_persons_with_and_without_parts():
    maps = torch.zeros(2, 8, 8, dtype=torch.uint8)
    maps[0, :4, :] = 1
    maps[1] = 255  # a person without part labels
    with_parts = Instances(
        (8, 8),
        proposal_boxes=Boxes(torch.tensor([[0.0, 0.0, 8.0, 8.0], [0.0, 0.0, 8.0, 8.0]])),
        gt_part_maps=PartMaps(maps)[torch.tensor([0, 1])],
    )
    no_parts = Instances(
        (8, 8), proposal_boxes=Boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0]]))
    )  # dataset without parts
    t = part_targets([with_parts, no_parts], 2)
    assert t.shape == (3, 2, 2)
    assert t[0].tolist() == [[1, 1], [0, 0]]
    assert (t[1] == 255).all() and (t[2] == 255).all()
    # the normaliser counts only the 4 labelled pixels
    logits = torch.zeros(3, 2, 2, 2)
    assert part_loss(logits, t).item() == pytest.approx(math.log(2))


def test_class_balance_weights_hand_computed():
    counts = [6.0, 3.0, 1.0]
    # inverse: f = (.6, .3, .1), 1/f = (5/3, 10/3, 10), mean 5 -> (1/3, 2/3, 2)
    np.testing.assert_allclose(
        class_balance_weights(counts, "inverse"), [1 / 3, 2 / 3, 2], rtol=1e-6
    )
    # exponential: B = (1, 2, 6), mean 3, std sqrt(14/3)
    b, std = np.array([1.0, 2.0, 6.0]), math.sqrt(14 / 3)
    np.testing.assert_allclose(
        class_balance_weights(counts, "exponential"), b * np.exp(-(b - 3) / (4 * std)), rtol=1e-6
    )
    np.testing.assert_allclose(class_balance_weights(counts, "none"), [1, 1, 1])
    assert class_balance_weights([4.0, 0.0, 4.0], "inverse")[1] == 0  # absent class
    with pytest.raises(ValueError, match="unknown class balance"):
        class_balance_weights(counts, "sqrt")


def test_paste_part_masks_exact_on_pixel_aligned_box():
    probs = torch.zeros(1, 3, 2, 2)
    labels = torch.tensor([[1, 2], [0, 2]])
    probs[0].scatter_(0, labels[None], 1.0)  # one-hot
    out = paste_part_masks(probs, torch.tensor([[2.0, 1.0, 6.0, 5.0]]), (6, 8))
    expected = torch.zeros(6, 8, dtype=torch.uint8)
    expected[1:3, 2:4], expected[1:3, 4:6], expected[3:5, 4:6] = 1, 2, 2
    assert torch.equal(out[0], expected)
    assert paste_part_masks(torch.zeros(0, 3, 2, 2), torch.zeros(0, 4), (6, 8)).shape == (0, 6, 8)


PART_OPTS = [
    "MODEL.META_ARCHITECTURE",
    "BodyPartsRCNN",
    "MODEL.ROI_HEADS.NAME",
    "BodyPartROIHeads",
    "MODEL.BODYPART_ON",
    "True",
    "MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION",
    "8",
    "MODEL.ROI_BODYPART_HEAD.CONV_DIMS",
    "[32, 32]",
    "MODEL.ROI_BODYPART_HEAD.UP_SCALE",
    "1",
    "MODEL.ROI_BODYPART_HEAD.MAX_FG_PER_IMAGE",
    "4",
]


def _train_cfg(tmp_path, *opts):
    return setup_cfg(
        Namespace(
            config_file=QUICK_CONFIG,
            opts=[*TINY_OPTS, "OUTPUT_DIR", str(tmp_path), *PART_OPTS, *opts],
            eval_only=False,
            resume=False,
            num_gpus=1,
        ),
        for_launch_only=True,
    )


def _batch(cfg):
    from bodyparts.data.datasets import register_synthetic_from_cfg

    register_synthetic_from_cfg(cfg)
    return next(iter(Trainer.build_train_loader(cfg)))


def test_bodypart_roi_heads_train_step_and_inference(datasets_root, tmp_path):
    cfg = _train_cfg(tmp_path, "MODEL.ROI_BODYPART_HEAD.PASTE_IN_IMAGE", "True")
    model = build_model(cfg)
    batch = _batch(cfg)
    assert batch[0]["instances"].has("gt_part_maps")
    with EventStorage():
        losses = model(batch)
    assert {"loss_part", "loss_mask", "loss_keypoint", "loss_cls"} <= set(losses)
    # uniform initial prediction over 15 labels: loss_part ~ 2 * log(15)
    assert losses["loss_part"].item() == pytest.approx(2 * math.log(15), rel=0.05)
    sum(losses.values()).backward()
    head_grad = model.roi_heads.part_branch.head.predictor.weight.grad
    assert head_grad is not None and head_grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model([{"image": batch[0]["image"], "height": 50, "width": 60}])[0]["instances"]
    r = len(out)
    assert out.pred_part_masks.index.tolist() == list(range(r))
    assert out.pred_part_masks.probs.shape == (r, 15, 16, 16)
    assert torch.allclose(out.pred_part_masks.probs.sum(dim=1), torch.ones(r, 16, 16), atol=1e-5)
    assert out.has("pred_masks") and out.has("pred_keypoints")
    # pasted at the requested output size, with the boxes rescaled to it
    assert out.pred_part_labels.dtype == torch.uint8 and out.pred_part_labels.shape == (r, 50, 60)
    if r:
        x0, y0, x1, y1 = out.pred_boxes.tensor[0].tolist()
        outside = torch.ones(50, 60, dtype=torch.bool)
        outside[max(int(y0), 0) : int(math.ceil(y1)), max(int(x0), 0) : int(math.ceil(x1))] = False
        assert (out.pred_part_labels[0][outside] == 0).all()


def test_silhouette_from_parts(datasets_root, tmp_path):
    cfg = _train_cfg(
        tmp_path, "MODEL.MASK_ON", "False", "MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS", "True"
    )
    model = build_model(cfg).eval()
    batch = _batch(cfg)
    with torch.no_grad():
        out = model([{"image": batch[0]["image"]}])[0]["instances"]
    assert (
        out.has("pred_masks") and out.pred_masks.dtype == torch.bool
    )  # pasted by detector_postprocess
    cfg_bad = _train_cfg(tmp_path, "MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS", "True")
    with pytest.raises(ValueError, match="choose one source"):
        build_model(cfg_bad)


@ROI_HEADS_REGISTRY.register()
class CascadeBodyPartROIHeadsForTest(BodyPartHeadsMixin, CascadeROIHeads):
    """What docs/plug_in.md shows: the part branch added to Detectron2's CascadeROIHeads."""


def test_mixin_adds_parts_to_cascade_roi_heads(datasets_root, tmp_path):
    cfg = _train_cfg(
        tmp_path,
        "MODEL.ROI_HEADS.NAME",
        "CascadeBodyPartROIHeadsForTest",
        "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG",
        "True",
    )
    model = build_model(cfg)
    assert isinstance(model.roi_heads, CascadeROIHeads) and model.roi_heads.part_on
    batch = _batch(cfg)
    with EventStorage():
        losses = model(batch)
    assert "loss_part" in losses and "loss_cls_stage2" in losses
    model.eval()
    with torch.no_grad():
        out = model([{"image": batch[0]["image"]}])[0]["instances"]
    assert out.has("pred_part_masks") and out.pred_part_masks.probs.shape[1:] == (15, 16, 16)


def test_part_branch_off_changes_nothing(datasets_root, tmp_path):
    cfg = _train_cfg(tmp_path, "MODEL.BODYPART_ON", "False")
    model = build_model(cfg)
    assert not model.roi_heads.part_on
    with EventStorage():
        losses = model(_batch(cfg))
    assert "loss_part" not in losses


def test_keypoints_from_part_features(datasets_root, tmp_path):
    cfg = _train_cfg(
        tmp_path,
        "MODEL.KEYPOINT_ON",
        "False",
        "MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS",
        "True",
    )
    model = build_model(cfg)
    assert (
        model.roi_heads.keypoint_on is False
        and model.roi_heads.part_branch.keypoint_predictor is not None
    )
    batch = _batch(cfg)
    assert batch[0]["instances"].has("gt_keypoints")
    with EventStorage():
        losses = model(batch)
    assert "loss_keypoint" in losses and losses["loss_keypoint"].item() > 0
    sum(losses.values()).backward()
    assert model.roi_heads.part_branch.keypoint_predictor.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model([{"image": batch[0]["image"]}])[0]["instances"]
    assert out.pred_keypoints.shape == (len(out), 17, 3)
    with pytest.raises(ValueError, match="choose one keypoint head"):
        build_model(_train_cfg(tmp_path, "MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS", "True"))


def test_class_weights_from_training_set(datasets_root, tmp_path):
    from bodyparts.modeling.roi_heads.class_weights import class_weights_from_cfg

    cfg = _train_cfg(tmp_path, "MODEL.ROI_BODYPART_HEAD.CLASS_BALANCE", "inverse")
    _batch(cfg)  # registers the synthetic splits of this config
    w = class_weights_from_cfg(cfg)
    assert w.shape == (15,) and torch.isclose(w[w > 0].mean(), torch.tensor(1.0))
    # hands and feet are the rarest parts: they get larger weights than the torso and background
    tax = __import__("bodyparts").taxonomy.FINE_LR
    for small in ("left_hand", "right_foot"):
        assert w[tax.label_of(small)] > w[tax.label_of("torso")] > w[0]
    explicit = _train_cfg(tmp_path, "MODEL.ROI_BODYPART_HEAD.CLASS_WEIGHTS", "[1.0, 2.0]")
    with pytest.raises(ValueError, match="has 2 values"):
        class_weights_from_cfg(explicit)


def test_unflip_part_probs_swaps_sides_and_columns():
    from bodyparts.modeling.test_time_augmentation import unflip_part_probs
    from bodyparts.taxonomy import LR6

    lut = LR6.flip_lut()  # 3 <-> 4 (arms), 5 <-> 6 (legs)
    probs = torch.zeros(1, 7, 1, 2)
    probs[0, 3, 0, 0] = 1.0  # "left_arm" at column 0 of the mirrored view
    out = unflip_part_probs(probs, lut)
    assert out[0, 4, 0, 1] == 1.0 and out.sum() == 1.0  # right_arm at the last column


class _TwoViewPartModel(torch.nn.Module):
    """Stands in for a part model with known outputs: one detection, box (1, 0, 3, 2) in a 2 x 5
    image, with LR6 part probabilities ``ORIGINAL`` on the image and ``MIRRORED`` on the mirrored
    image (ROI of 1 x 2 cells)."""

    def __init__(self):
        super().__init__()
        self.mirrored_boxes = None

    def inference(self, batched_inputs, detected_instances=None, do_postprocess=True):
        assert not do_postprocess and len(batched_inputs) == 1
        height, width = batched_inputs[0]["image"].shape[1:]
        if detected_instances is None:
            inst = Instances(
                (height, width),
                pred_boxes=Boxes(torch.tensor([[1.0, 0.0, 3.0, 2.0]])),
                scores=torch.tensor([0.9]),
                pred_classes=torch.tensor([0]),
            )
            inst.pred_part_masks = PartPredictions.from_dense(_lr6_probs(ORIGINAL))
        else:
            inst = detected_instances[0]
            self.mirrored_boxes = inst.pred_boxes.tensor.tolist()
            inst.pred_part_masks = PartPredictions.from_dense(_lr6_probs(MIRRORED))
        return [inst]


def _lr6_probs(columns):
    """(1, 7, 1, 2) probabilities from {label: (p at column 0, p at column 1)}."""
    probs = torch.zeros(1, 7, 1, 2)
    for label, (p0, p1) in columns.items():
        probs[0, label, 0] = torch.tensor([p0, p1])
    return probs


# LR6: 0 background, 3 left_arm, 4 right_arm. Original view: column 0 left_arm 0.8 / background 0.2,
# column 1 background. Mirrored view (columns swapped, left and right swapped): its column 1 is the
# original column 0, where it says left_arm 0.6 (= right_arm 0.6 in the original) / background 0.4.
ORIGINAL = {0: (0.2, 1.0), 3: (0.8, 0.0)}
MIRRORED = {0: (1.0, 0.4), 3: (0.0, 0.6)}
# averaged: column 0: background (0.2 + 0.4) / 2, left_arm 0.8 / 2, right_arm 0.6 / 2;
# column 1: background
EXPECTED = {0: (0.3, 1.0), 3: (0.4, 0.0), 4: (0.3, 0.0)}


def test_flip_tta_averages_the_unflipped_mirrored_view():
    from bodyparts.modeling.test_time_augmentation import PartFlipTTA
    from bodyparts.taxonomy import LR6

    model = _TwoViewPartModel()
    out = PartFlipTTA(model, LR6.flip_lut())([{"image": torch.zeros(3, 2, 5)}])[0]["instances"]
    assert model.mirrored_boxes == [[2.0, 0.0, 4.0, 2.0]]  # x -> 5 - x
    assert torch.allclose(out.pred_part_masks.probs, _lr6_probs(EXPECTED))
    assert out.pred_boxes.tensor.tolist() == [[1.0, 0.0, 3.0, 2.0]]


def test_flip_tta_keeps_the_models_fields_with_paste_in_image(datasets_root, tmp_path):
    from bodyparts.modeling import part_label_maps_in_image
    from bodyparts.modeling.test_time_augmentation import PartFlipTTA
    from bodyparts.taxonomy import FINE_LR

    opts = [
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
        "0.0",
        "MODEL.ROI_BODYPART_HEAD.PASTE_IN_IMAGE",
        "True",
    ]
    cfg = _train_cfg(tmp_path, *opts)
    model = build_model(cfg).eval()
    inputs = [{"image": _batch(cfg)[0]["image"], "height": 50, "width": 60}]
    with torch.no_grad():
        plain = model(inputs)[0]["instances"]
    out = PartFlipTTA(model, FINE_LR.flip_lut())(inputs)[0]["instances"]
    assert len(out) == len(plain) > 0
    assert set(out.get_fields()) == set(plain.get_fields()) and out.has("pred_part_labels")
    assert out.pred_part_labels.shape == (len(out), 50, 60)
    # the labels are those of the averaged probabilities, pasted at the output size
    assert torch.equal(out.pred_part_labels, part_label_maps_in_image(out))


def _explicit_branch(num_classes=5, max_fg=2):
    """A BodyPartBranch built from explicit arguments, no config."""
    from detectron2.modeling.poolers import ROIPooler

    from bodyparts.modeling import BodyPartBranch

    head = PartRCNNConvDeconvHead(
        ShapeSpec(channels=4), num_classes=num_classes, conv_dims=[8], up_scale=1
    )
    pooler = ROIPooler(output_size=4, scales=(1.0 / 4,), sampling_ratio=2, pooler_type="ROIAlignV2")
    return BodyPartBranch(
        in_features=["p2"],
        pooler=pooler,
        head=head,
        num_classes=num_classes,
        loss_weight=2.0,
        max_fg_per_image=max_fg,
    )


def test_branch_on_empty_and_half_empty_instances():
    torch.manual_seed(0)
    branch = _explicit_branch()
    features = {"p2": torch.randn(2, 4, 8, 8)}
    maps = torch.zeros(1, 32, 32, dtype=torch.uint8)
    maps[0, 8:24, 8:24] = 2
    full = Instances(
        (32, 32),
        proposal_boxes=Boxes(torch.tensor([[8.0, 8.0, 24.0, 24.0], [0.0, 0.0, 5.0, 5.0]])),
        gt_classes=torch.tensor([0, 1]),
        gt_part_maps=PartMaps(maps)[torch.tensor([0, 0])],
    )
    empty = Instances(
        (32, 32),
        proposal_boxes=Boxes(torch.zeros(0, 4)),
        gt_classes=torch.zeros(0, dtype=torch.long),
        gt_part_maps=PartMaps(maps)[torch.zeros(0, dtype=torch.long)],
    )
    branch.train()
    with EventStorage():
        # half-empty batch: one image has one foreground proposal (gt_classes 0), the other none
        loss = branch(features, [full, empty], num_classes=1)["loss_part"]
        assert loss.item() > 0
        # seeded value: loss_weight 2 * CE of near-uniform logits over 5 labels ~ 2 * log 5
        assert loss.item() == pytest.approx(2 * math.log(5), rel=0.02)
        # no foreground at all: zero loss, still connected to every parameter
        zero = branch(features, [empty, empty], num_classes=1)["loss_part"]
        assert zero.item() == 0 and zero.requires_grad
        zero.backward()
        assert all(p.grad is not None for p in branch.parameters())
    branch.eval()
    det = Instances(
        (32, 32), pred_boxes=Boxes(torch.zeros(0, 4)), pred_classes=torch.zeros(0, dtype=torch.long)
    )
    out = branch(features, [det, det])
    assert len(out[0].pred_part_masks) == 0
    assert out[0].pred_part_masks.probs.shape == (0, 5, 8, 8)


def test_two_cpu_processes_train_the_part_model(datasets_root, tmp_path):
    """DDP over 2 gloo processes with the part branch: no unused-parameter errors, same result
    files."""
    import subprocess
    import sys

    from conftest import REPO

    cfg_file = os.path.join(
        REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"
    )
    cmd = [
        sys.executable,
        os.path.join(REPO, "tools", "train_net.py"),
        "--config-file",
        cfg_file,
        "--num-gpus",
        "2",
        *TINY_OPTS,
        "OUTPUT_DIR",
        str(tmp_path),
        "SOLVER.MAX_ITER",
        "3",
        "TEST.EVAL_PERIOD",
        "0",
        "DATASETS.TEST",
        "()",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp_path / "model_final.pth").exists() and (tmp_path / "log.txt.rank1").exists()
    state = torch.load(tmp_path / "model_final.pth", map_location="cpu", weights_only=False)
    assert state["iteration"] == 2 and any(
        k.startswith("roi_heads.part_branch.") for k in state["model"]
    )


def test_tiny_model_overfits_one_image_parts(datasets_root, tmp_path):
    """Trained on one synthetic image, the part branch fits it: part mIoU (background + 14 parts,
    hands and feet included) > 0.9 on it with GT boxes given, so that the test measures the part
    branch, not the detector. ROI output 96 x 96 (24 x 24 pooling): at 64 x 64 the fit plateaus
    at 0.90-0.91, limited by the pasted resolution of hands and feet. (Measured with 1 thread: 0.82
    after 200 steps, 0.91 after 300, 0.93 after 350 and 400.)"""
    from detectron2.data import DatasetCatalog
    from detectron2.structures import BoxMode

    from bodyparts.data.contract import part_label_map
    from bodyparts.data.datasets import register_synthetic_from_cfg
    from bodyparts.evaluation import confusion_matrix, semantic_metrics
    from bodyparts.modeling import part_label_maps_in_image

    cfg = _train_cfg(
        tmp_path,
        "BODYPARTS.SYNTHETIC.NUM_TRAIN",
        "1",
        "BODYPARTS.SYNTHETIC.IMAGE_SIZE",
        "128",
        "BODYPARTS.SYNTHETIC.MAX_PERSONS",
        "1",
        "INPUT.MIN_SIZE_TRAIN",
        "(128,)",
        "INPUT.MIN_SIZE_TEST",
        "128",
        "INPUT.RANDOM_FLIP",
        "none",
        "SOLVER.IMS_PER_BATCH",
        "1",
        "SOLVER.BASE_LR",
        "0.01",
        "MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION",
        "24",
        "MODEL.ROI_BODYPART_HEAD.UP_SCALE",
        "2",
        "MODEL.MASK_ON",
        "False",
        "MODEL.KEYPOINT_ON",
        "False",
    )
    register_synthetic_from_cfg(cfg)
    torch.manual_seed(0)
    model = build_model(cfg)
    batch = next(iter(Trainer.build_train_loader(cfg)))
    optim = torch.optim.Adam(model.parameters(), lr=3e-3)
    # step decay for the last 150 steps: the fit converges instead of oscillating at the top lr
    schedule = torch.optim.lr_scheduler.MultiStepLR(optim, milestones=[250, 330], gamma=0.3)
    with EventStorage():
        for _ in range(400):
            losses = model(batch)
            optim.zero_grad()
            sum(losses.values()).backward()
            optim.step()
            schedule.step()
    record = DatasetCatalog.get("bodyparts_synthetic_train")[0]
    h, w = record["height"], record["width"]
    gt = np.zeros((h, w), dtype=np.uint8)
    boxes = []
    for ann in record["annotations"]:
        pm = part_label_map(ann, h, w)
        gt[pm > 0] = pm[pm > 0]
        boxes.append(BoxMode.convert(list(ann["bbox"]), ann["bbox_mode"], BoxMode.XYXY_ABS))
    given = Instances(
        (h, w),
        pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
        pred_classes=torch.zeros(len(boxes), dtype=torch.long),
        scores=torch.ones(len(boxes)),
    )
    model.eval()
    with torch.no_grad():
        out = model.inference(
            [{"image": batch[0]["image"]}], detected_instances=[given], do_postprocess=False
        )[0]
    pred = np.zeros((h, w), dtype=np.uint8)
    for m in part_label_maps_in_image(out).numpy():
        pred[m > 0] = m[m > 0]
    miou = semantic_metrics(confusion_matrix(gt, pred, 15))["mIoU"]
    print(f"part mIoU on the training image: {miou:.3f}")
    assert miou > 0.9, miou


@pytest.mark.parametrize(
    "opts,task",
    [
        (
            ["MODEL.KEYPOINT_ON", "False", "MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS", "True"],
            "keypoints",
        ),
        (
            ["MODEL.MASK_ON", "False", "MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS", "True"],
            "segm",
        ),
    ],
)
def test_coco_tasks_follow_the_part_branch_options(datasets_root, tmp_path, opts, task):
    from bodyparts.engine.trainer import build_coco_evaluator

    cfg = _train_cfg(tmp_path, *opts)
    _batch(cfg)  # registers the tiny synthetic splits
    __import__("detectron2.data", fromlist=["DatasetCatalog"]).DatasetCatalog.get(
        "bodyparts_synthetic_val"
    )
    evaluator = build_coco_evaluator(cfg, "bodyparts_synthetic_val", str(tmp_path))
    assert task in evaluator._tasks
