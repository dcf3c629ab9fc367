"""Every config file loads (catches key typos) and a typo gets an error naming the file and key."""
import glob
import os
from argparse import Namespace

import pytest
from detectron2.config import get_cfg

from bodyparts import add_bodyparts_config
from bodyparts.engine import setup_cfg
from bodyparts.taxonomy import PART_TAXONOMIES, KEYPOINT_TAXONOMIES

from conftest import REPO

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
        assert cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS == KEYPOINT_TAXONOMIES[cfg.BODYPARTS.KEYPOINT_TAXONOMY].num_keypoints



def test_config_typo_names_file_and_key(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text('_BASE_: "%s"\nMODEL:\n  ROI_HEADZ:\n    NUM_CLASSES: 1\n' % os.path.join(REPO, "configs", "Base-Person-RCNN-FPN.yaml"))
    with pytest.raises(KeyError) as e:
        setup_cfg(Namespace(config_file=str(bad), opts=[]), for_launch_only=True)
    assert "typo.yaml" in str(e.value) and "ROI_HEADZ" in str(e.value)


def test_opts_typo_names_key():
    path = os.path.join(REPO, "configs", "Base-Person-RCNN-FPN.yaml")
    with pytest.raises(KeyError) as e:
        setup_cfg(Namespace(config_file=path, opts=["BODYPARTS.SYNTHETIC.NUM_TRAINN", "3"]), for_launch_only=True)
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
