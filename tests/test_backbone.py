"""The RegNet backbones (Detectron2's RegNet, registered by bodyparts) and the light part-model
config: output shapes and strides, config errors, one train step with backward, export."""

import os
from argparse import Namespace

import pytest
import torch
from conftest import REPO, TINY_OPTS
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone, build_model
from detectron2.modeling.backbone import FPN
from detectron2.modeling.backbone.regnet import RegNet
from detectron2.utils.env import seed_all_rng
from detectron2.utils.events import EventStorage

from bodyparts import add_bodyparts_config
from bodyparts.engine import Trainer, setup_cfg
from bodyparts.export import ExportError, export_model

LIGHT_CONFIG = os.path.join(
    REPO,
    "configs",
    "quick_schedules",
    "bodyparts_rcnn_light_RegNetX400MF_FPN_synthetic_cpu_shared.yaml",
)
MAIN_CONFIG = os.path.join(
    REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu_shared.yaml"
)
# RegNetX-400MF (DEPTH 22, W_0 24, W_A 24.48, W_M 2.54, GROUP_WIDTH 16): the RegNet rule gives block
# k the width 24 * 2.54^round(log((24 + 24.48 k) / 24) / log 2.54), quantised to multiples of 8 (24,
# 64, 152, 392) and made compatible with groups of 16: stages of 1, 2, 7 and 12 blocks of 32, 64,
# 160 and 384 channels
WIDTHS = {"s1": 32, "s2": 64, "s3": 160, "s4": 384}
DEPTHS = {"s1": 1, "s2": 2, "s3": 7, "s4": 12}
STRIDES = {"s1": 4, "s2": 8, "s3": 16, "s4": 32}


def _cfg(*opts):
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_list(list(opts))
    return cfg


def test_regnet_backbone_is_registered_with_hand_checked_shapes():
    assert (
        "build_regnet_backbone" in BACKBONE_REGISTRY
        and "build_regnet_fpn_backbone" in BACKBONE_REGISTRY
    )
    net = build_backbone(
        _cfg("MODEL.BACKBONE.NAME", "build_regnet_backbone"), ShapeSpec(channels=3)
    )
    assert isinstance(net, RegNet)
    shapes = net.output_shape()
    assert {k: v.channels for k, v in shapes.items()} == WIDTHS
    assert {k: v.stride for k, v in shapes.items()} == STRIDES
    assert {name: len(list(getattr(net, name).children())) for name in WIDTHS} == DEPTHS
    out = net(torch.rand(2, 3, 64, 96))
    for name, stride in STRIDES.items():
        assert out[name].shape == (2, WIDTHS[name], 64 // stride, 96 // stride)
    # the group convs: 16 channels per group in every block's 3x3 conv
    conv = net.s3.b1.f.b
    assert conv.groups == 160 // 16 and conv.stride == (2, 2)


def test_regnet_fpn_backbone_levels():
    # fmt: off
    cfg = _cfg(
        "MODEL.BACKBONE.NAME", "build_regnet_fpn_backbone",
        "MODEL.FPN.IN_FEATURES", ["s1", "s2", "s3", "s4"],
        "MODEL.FPN.OUT_CHANNELS", 32,
        "MODEL.FPN.NORM", "GN",
        "MODEL.REGNETS.NORM", "GN",
    )
    # fmt: on
    net = build_backbone(cfg, ShapeSpec(channels=3))
    assert isinstance(net, FPN) and isinstance(net.bottom_up, RegNet)
    expected = {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    assert {k: v.stride for k, v in net.output_shape().items()} == expected
    assert all(v.channels == 32 for v in net.output_shape().values())
    assert isinstance(net.bottom_up.stem.bn, torch.nn.GroupNorm)
    out = net(torch.rand(1, 3, 128, 64))
    for name, stride in expected.items():
        assert out[name].shape == (1, 32, 128 // stride, 64 // stride)


X200MF = ("MODEL.REGNETS.DEPTH", 13, "MODEL.REGNETS.W_A", 36.44, "MODEL.REGNETS.W_M", 2.49,
          "MODEL.REGNETS.GROUP_WIDTH", 8)  # fmt: skip
FPN_ON_RESNET_NAMES = ("MODEL.BACKBONE.NAME", "build_regnet_fpn_backbone",
                       "MODEL.FPN.IN_FEATURES", ["res2", "res3"])  # fmt: skip


@pytest.mark.parametrize(
    "opts, key",
    [
        (("MODEL.REGNETS.OUT_FEATURES", ["s2", "s5"]), "MODEL.REGNETS.OUT_FEATURES"),
        (("MODEL.REGNETS.W_0", 20), "W_0=20"),
        (("MODEL.REGNETS.W_M", 1.0), "W_M=1.0"),
        # RegNetX-200MF widths (24, 56, 152, 368) do not take GroupNorm's 32 groups
        ((*X200MF, "MODEL.REGNETS.NORM", "GN"), "NORM='GN'"),
        (FPN_ON_RESNET_NAMES, "MODEL.FPN.IN_FEATURES"),
    ],
)
def test_regnet_config_errors_name_the_key(opts, key):
    cfg = _cfg("MODEL.BACKBONE.NAME", "build_regnet_backbone", *opts)
    with pytest.raises(ValueError) as e:
        build_backbone(cfg, ShapeSpec(channels=3))
    assert key in str(e.value)


def test_light_config_builds_a_smaller_part_model():
    light = setup_cfg(Namespace(config_file=LIGHT_CONFIG, opts=[]), for_launch_only=True)
    main = setup_cfg(Namespace(config_file=MAIN_CONFIG, opts=[]), for_launch_only=True)
    assert light.MODEL.ROI_HEADS.NAME == main.MODEL.ROI_HEADS.NAME == "BodyPartROIHeads"
    assert light.INPUT.MIN_SIZE_TEST == main.INPUT.MIN_SIZE_TEST == 192
    assert (
        light.DATASETS.TRAIN == main.DATASETS.TRAIN
        and light.SOLVER.IMS_PER_BATCH == main.SOLVER.IMS_PER_BATCH
    )
    model_light, model_main = build_model(light), build_model(main)
    assert isinstance(model_light.backbone.bottom_up, RegNet)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    # RegNetX-400MF has about 5M parameters, ResNet-18 about 11M; the heads are the same
    assert count(model_light.backbone.bottom_up) < 0.5 * count(model_main.backbone.bottom_up)
    assert count(model_light.roi_heads) == count(model_main.roi_heads)


def test_light_model_train_step_with_backward(datasets_root, tmp_path):
    from bodyparts.data.datasets import register_synthetic_from_cfg

    opts = [*TINY_OPTS, "OUTPUT_DIR", str(tmp_path), "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "16"]
    cfg = setup_cfg(Namespace(config_file=LIGHT_CONFIG, opts=opts), for_launch_only=True)
    register_synthetic_from_cfg(cfg)
    batch = next(iter(Trainer.build_train_loader(cfg)))
    seed_all_rng(0)
    model = build_model(cfg).train()
    optimizer = Trainer.build_optimizer(cfg, model)
    stem = model.backbone.bottom_up.stem.conv.weight
    before = stem.detach().clone()
    with EventStorage():
        losses = model(batch)
    assert {"loss_part", "loss_keypoint", "loss_cls", "loss_box_reg", "loss_rpn_cls"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    optimizer.zero_grad()
    sum(losses.values()).backward()
    assert stem.grad is not None and stem.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(stem.detach(), before)


def test_light_model_exports_to_torchscript(tmp_path):
    """Traced TorchScript of the light model equals the eager model, also at another input size;
    scripting names Detectron2's RegNet as the part it cannot compile."""
    # fmt: off
    opts = ["INPUT.MIN_SIZE_TEST", "96", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
            "MODEL.RPN.POST_NMS_TOPK_TEST", "8"]
    # fmt: on
    cfg = setup_cfg(Namespace(config_file=LIGHT_CONFIG, opts=opts), for_launch_only=True)
    seed_all_rng(0)
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(0)
    images = [torch.rand(3, 96, 128, generator=g) * 255, torch.rand(3, 128, 96, generator=g) * 255]
    export_model(model, images[0], str(tmp_path), format="torchscript", method="tracing")
    module = torch.jit.load(str(tmp_path / "model.ts"))
    for image in images:
        with torch.no_grad():
            expected = model.inference([{"image": image}], do_postprocess=False)[0]
            boxes, scores, classes, part_probs, silhouettes, keypoints = module(image)
        assert len(expected) > 0
        assert torch.allclose(boxes, expected.pred_boxes.tensor, atol=1e-4)
        assert torch.allclose(scores, expected.scores, atol=1e-4)
        assert torch.allclose(part_probs, expected.pred_part_masks.probs, atol=1e-4)
        assert torch.allclose(keypoints, expected.pred_keypoints, atol=1e-4)
    with pytest.raises(ExportError) as e:
        export_model(
            model, images[0], str(tmp_path / "s"), format="torchscript", method="scripting"
        )
    assert "RegNet" in str(e.value) and "stages_and_names" in str(e.value)
