"""Every config file loads (catches key typos) and a typo gets an error naming the file and key."""

import glob
import os
from argparse import Namespace

import pytest
from conftest import REPO
from detectron2.config import get_cfg

from bodyparts import add_bodyparts_config
from bodyparts.engine import setup_cfg
from bodyparts.taxonomy import KEYPOINT_TAXONOMIES, PART_TAXONOMIES

CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))


def test_configs_found():
    assert any(c.endswith("person_rcnn_R18_FPN_synthetic_cpu.yaml") for c in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(c, REPO) for c in CONFIGS])
def test_config_loads(path):
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_file(path)
    assert cfg.BODYPARTS.PART_TAXONOMY in PART_TAXONOMIES
    assert cfg.BODYPARTS.KEYPOINT_TAXONOMY in KEYPOINT_TAXONOMIES
    if cfg.MODEL.KEYPOINT_ON:
        assert (
            cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
            == KEYPOINT_TAXONOMIES[cfg.BODYPARTS.KEYPOINT_TAXONOMY].num_keypoints
        )


def test_config_typo_names_file_and_key(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(
        '_BASE_: "%s"\nMODEL:\n  ROI_HEADZ:\n    NUM_CLASSES: 1\n'
        % os.path.join(REPO, "configs", "Base-Person-RCNN-FPN.yaml")
    )
    with pytest.raises(KeyError) as e:
        setup_cfg(Namespace(config_file=str(bad), opts=[]), for_launch_only=True)
    assert "typo.yaml" in str(e.value) and "ROI_HEADZ" in str(e.value)


def test_opts_typo_names_key():
    path = os.path.join(REPO, "configs", "Base-Person-RCNN-FPN.yaml")
    with pytest.raises(KeyError) as e:
        setup_cfg(
            Namespace(config_file=path, opts=["BODYPARTS.SYNTHETIC.NUM_TRAINN", "3"]),
            for_launch_only=True,
        )
    assert "NUM_TRAINN" in str(e.value)


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(c, REPO) for c in CONFIGS])
def test_config_datasets_are_registered_and_express_the_taxonomy(path):
    """Every split a config names is registered, every training split can express the model's part
    taxonomy, and a model with keypoints keeps images of training splits without keypoints only
    with MIN_KEYPOINTS_PER_IMAGE 0 (Detectron2 drops images with fewer visible keypoints)."""
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from bodyparts.taxonomy import can_express

    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_file(path)
    registered = set(DatasetCatalog.list())
    for name in (*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST):
        assert name in registered, f"{path}: dataset {name} is not registered"
    for name in cfg.DATASETS.TRAIN:
        meta = MetadataCatalog.get(name)
        if cfg.MODEL.BODYPART_ON:
            assert can_express(meta.part_taxonomy, cfg.BODYPARTS.PART_TAXONOMY), (name, path)
        if cfg.MODEL.KEYPOINT_ON and meta.get("keypoint_taxonomy", None) is None:
            assert cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE == 0, (name, path)
        # one box class per thing class of the data (persons only, or e.g. the 20 VOC classes)
        if cfg.MODEL.META_ARCHITECTURE not in ("SemanticSegmentor", "BodyPartsSemanticSegmentor"):
            assert cfg.MODEL.ROI_HEADS.NUM_CLASSES == len(meta.thing_classes), (name, path)


MHP_V2_CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "mhp_v2", "*.yaml")))


@pytest.mark.parametrize("path", MHP_V2_CONFIGS, ids=[os.path.basename(c) for c in MHP_V2_CONFIGS])
def test_mhp_v2_config_builds_the_published_schedule(path):
    """configs/mhp_v2: Parsing R-CNN's MHP-v2 schedule
    (cfgs/MHP-v2/e2e_parsing_rcnn_R-50-FPN_{1x,3x}_ms.yaml) and a model predicting the 58 native
    labels + background at 128 x 128 per person."""
    import torch
    from detectron2.modeling import build_model

    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_file(path)
    assert cfg.MODEL.WEIGHTS == "catalog://ImageNetPretrained/FAIR/R-50-GN"  # ImageNet backbone
    cfg.MODEL.DEVICE, cfg.MODEL.WEIGHTS = "cpu", ""  # built untrained: nothing is downloaded
    three_x = path.endswith("_3x.yaml")
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.BASE_LR == 0.02
    assert cfg.SOLVER.WARMUP_ITERS == 500 and cfg.SOLVER.WARMUP_FACTOR == 0.01
    assert cfg.SOLVER.MAX_ITER == (72000 if three_x else 24000)
    assert tuple(cfg.SOLVER.STEPS) == ((54000, 64000) if three_x else (15000, 20000))
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (512, 640, 704, 768, 800, 864)
    assert (cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (
        1400,
        800,
        1333,
    )
    assert (
        cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE == 512
        and cfg.MODEL.ROI_BODYPART_HEAD.MAX_FG_PER_IMAGE == 16
    )
    assert cfg.BODYPARTS.PART_TAXONOMY == "mhp59"
    assert cfg.BODYPARTS.PARSING_EVAL.PASTE_SCORE_THRESH == 0.05
    assert cfg.BODYPARTS.PARSING_EVAL.AP_SCORE_THRESH == 0.001
    assert cfg.BODYPARTS.PARSING_EVAL.AP_PERSON_MAPS == "full"  # the published numbers' protocol
    model = build_model(cfg)
    branch = model.roi_heads.part_branch
    assert branch.num_classes == 59 and branch.in_features == ["p2"]
    with torch.no_grad():
        logits = branch.head(torch.zeros(1, 256, 32, 32))
    assert logits.shape == (1, 59, 128, 128)


# CIHP: Parsing R-CNN's 1x / 3x and RP R-CNN's 6x (MAX_ITER, STEPS, WARMUP_ITERS, WARMUP_FACTOR);
# None = the base file (1x warm-up, no schedule of its own).
CIHP_SCHEDULES = {
    "Base-BodyParts-RCNN-CIHP.yaml": None,
    "bodyparts_rcnn_R50_FPN_1x.yaml": (45000, (30000, 40000), 500, 0.1),
    "bodyparts_rcnn_R50_FPN_3x.yaml": (135000, (105000, 125000), 500, 0.01),
    "bodyparts_rcnn_R50_FPN_6x_rp_rcnn.yaml": (270000, (240000, 260000), 1000, 0.0001),
}
CIHP_LIP_CONFIGS = sorted(
    glob.glob(os.path.join(REPO, "configs", "cihp", "*.yaml"))
    + glob.glob(os.path.join(REPO, "configs", "lip", "*.yaml"))
)


@pytest.mark.parametrize(
    "path", CIHP_LIP_CONFIGS, ids=[os.path.relpath(c, REPO) for c in CIHP_LIP_CONFIGS]
)
def test_cihp_lip_config_builds_the_published_settings(path):
    """configs/cihp: the reference settings of Parsing R-CNN's CIHP configs (batch, LR, schedule,
    input sizes, ROI counts, part output 128 x 128 in the 20 native labels, evaluation thresholds);
    configs/lip: a semantic FPN predicting the 20 LIP labels. Each model builds (untrained)."""
    import torch
    from detectron2.modeling import build_model

    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_file(path)
    weights = cfg.MODEL.WEIGHTS
    cfg.MODEL.DEVICE, cfg.MODEL.WEIGHTS = "cpu", ""  # built untrained: nothing is downloaded
    assert cfg.SOLVER.IMS_PER_BATCH == 16 and cfg.SOLVER.BASE_LR == 0.02
    model = build_model(cfg)
    if os.path.basename(os.path.dirname(path)) == "lip":
        assert weights == "catalog://ImageNetPretrained/FAIR/R-50-GN"
        assert cfg.BODYPARTS.PART_TAXONOMY == "lip20" and cfg.DATASETS.TRAIN == ("lip_train",)
        assert model.sem_seg_head.predictor.out_channels == 20
        return
    schedule = CIHP_SCHEDULES[os.path.basename(path)]
    if schedule is not None:
        max_iter, steps, warmup_iters, warmup_factor = schedule
        assert cfg.SOLVER.MAX_ITER == max_iter and tuple(cfg.SOLVER.STEPS) == steps
        assert cfg.SOLVER.WARMUP_ITERS == warmup_iters and cfg.SOLVER.WARMUP_FACTOR == warmup_factor
    # the caffe-style MSRA R-50 with frozen BatchNorm, as Parsing R-CNN's resnet50_caffe.pth
    assert (
        weights == "catalog://ImageNetPretrained/MSRA/R-50" and cfg.MODEL.RESNETS.NORM == "FrozenBN"
    )
    assert cfg.MODEL.RESNETS.STRIDE_IN_1X1 and cfg.MODEL.BACKBONE.FREEZE_AT == 2
    assert (cfg.SOLVER.WEIGHT_DECAY, cfg.SOLVER.BIAS_LR_FACTOR, cfg.SOLVER.WEIGHT_DECAY_BIAS) == (
        0.0001,
        2.0,
        0.0,
    )
    assert tuple(cfg.INPUT.MIN_SIZE_TRAIN) == (512, 640, 704, 768, 800, 864)
    assert (cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (
        1400,
        800,
        1333,
    )
    assert (
        cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE == 512
        and cfg.MODEL.ROI_BODYPART_HEAD.MAX_FG_PER_IMAGE == 16
    )
    assert (cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN, cfg.MODEL.RPN.POST_NMS_TOPK_TEST) == (2000, 1000)
    assert cfg.BODYPARTS.PART_TAXONOMY == "cihp20" and cfg.DATASETS.TEST == ("cihp_val",)
    assert cfg.BODYPARTS.PARSING_EVAL.PASTE_SCORE_THRESH == 0.3
    assert cfg.BODYPARTS.PARSING_EVAL.AP_SCORE_THRESH == 0.001
    assert not cfg.MODEL.MASK_ON and cfg.MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS
    branch = model.roi_heads.part_branch
    assert branch.num_classes == 20 and branch.in_features == ["p2"]
    with torch.no_grad():
        logits = branch.head(torch.zeros(1, 256, 32, 32))
    assert logits.shape == (1, 20, 128, 128)
    gn = cfg.MODEL.FPN.NORM == "GN"
    assert gn == path.endswith("_rp_rcnn.yaml") == (cfg.MODEL.ROI_BODYPART_HEAD.NORM == "GN")
