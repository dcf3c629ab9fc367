"""bodyparts config nodes. Every key lives under ``cfg.BODYPARTS``; Detectron2's keys keep their meaning.

Usage::

    from detectron2.config import get_cfg
    from bodyparts import add_bodyparts_config
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_file("configs/quick_schedules/synthetic_person_rcnn_R18_FPN_cpu.yaml")
"""
from detectron2.config import CfgNode as CN

__all__ = ["add_bodyparts_config"]


def add_taxonomy_config(cfg: CN) -> None:
    _C = cfg
    _C.BODYPARTS = CN()
    # Part taxonomy the model predicts (bodyparts.taxonomy.PART_TAXONOMIES: fine_lr, lr6, ppp6).
    # Every training/test dataset must be able to express it (checked at start-up).
    _C.BODYPARTS.PART_TAXONOMY = "fine_lr"
    # Keypoint taxonomy (bodyparts.taxonomy.KEYPOINT_TAXONOMIES); sets names, flip map, OKS sigmas.
    _C.BODYPARTS.KEYPOINT_TAXONOMY = "coco17"


def add_synthetic_config(cfg: CN) -> None:
    _C = cfg
    _C.BODYPARTS.SYNTHETIC = CN()
    # Number of images in bodyparts_synthetic_train.
    _C.BODYPARTS.SYNTHETIC.NUM_TRAIN = 400
    # Number of images in bodyparts_synthetic_val (scenes never overlap the train split).
    _C.BODYPARTS.SYNTHETIC.NUM_VAL = 50
    # Side of the square synthetic images, in pixels.
    _C.BODYPARTS.SYNTHETIC.IMAGE_SIZE = 256
    # Base seed of the generator; the same seed gives byte-identical datasets.
    _C.BODYPARTS.SYNTHETIC.SEED = 0
    # Largest number of persons per image (at least 1).
    _C.BODYPARTS.SYNTHETIC.MAX_PERSONS = 5


def add_bodyparts_config(cfg: CN) -> None:
    """Add all bodyparts config nodes to a Detectron2 config (call once, before merge_from_file)."""
    add_taxonomy_config(cfg)
    add_synthetic_config(cfg)
