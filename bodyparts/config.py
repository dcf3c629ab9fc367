"""bodyparts config nodes. Every key lives under ``cfg.BODYPARTS``; Detectron2's keys keep their
meaning.

Usage::

    from detectron2.config import get_cfg
    from bodyparts import add_bodyparts_config
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_file("configs/quick_schedules/synthetic_person_rcnn_R18_FPN_cpu.yaml")
"""

from typing import Any, Sequence

from detectron2.config import CfgNode as CN

from .taxonomy import KEYPOINT_TAXONOMIES, PART_TAXONOMIES

__all__ = [
    "add_bodyparts_config",
    "check_bodyparts_config",
    "ConfigValueError",
    "CLASS_BALANCE_MODES",
    "AP_PERSON_MAPS",
]

# Choices of MODEL.ROI_BODYPART_HEAD.CLASS_BALANCE and MODEL.BODYPART_SEM_SEG.CLASS_BALANCE.
CLASS_BALANCE_MODES = ("none", "inverse", "exponential")
# BODYPARTS.PARSING_EVAL.AP_PERSON_MAPS: Parsing R-CNN's protocol, MHP-v2's official submission's
AP_PERSON_MAPS = ("full", "pasted")


def add_taxonomy_config(cfg: CN) -> None:
    _C = cfg
    _C.BODYPARTS = CN()
    # Part taxonomy the model predicts (taxonomy.PART_TAXONOMIES: fine_lr, lr6, ppp6 or a native
    # set). Every training/test dataset must be able to express it (checked at start-up).
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


def add_part_head_config(cfg: CN) -> None:
    _C = cfg
    # Enable the per-person part branch (BodyPartROIHeads or any ROI heads with BodyPartHeadsMixin).
    _C.MODEL.BODYPART_ON = False
    _C.MODEL.ROI_BODYPART_HEAD = CN()
    # Part head in ROI_BODYPART_HEAD_REGISTRY: PartRCNNConvDeconvHead or PartDilatedContextHead.
    _C.MODEL.ROI_BODYPART_HEAD.NAME = "PartRCNNConvDeconvHead"
    # Feature maps pooled for the part head (Parsing R-CNN: P2 only).
    _C.MODEL.ROI_BODYPART_HEAD.IN_FEATURES = ["p2"]
    # Side P of the pooled ROI features.
    _C.MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION = 32
    # Sampling points per pooling bin (0 = adaptive, as Detectron2).
    _C.MODEL.ROI_BODYPART_HEAD.POOLER_SAMPLING_RATIO = 2
    # Pooler type (Detectron2's ROIPooler: ROIAlignV2, ROIAlign, ROIPool).
    _C.MODEL.ROI_BODYPART_HEAD.POOLER_TYPE = "ROIAlignV2"
    # Output channels of the head's 3x3 convs (their number = number of convs).
    _C.MODEL.ROI_BODYPART_HEAD.CONV_DIMS = [512, 512, 512, 512]
    # Dilation of each conv, for PartDilatedContextHead (same length as CONV_DIMS).
    _C.MODEL.ROI_BODYPART_HEAD.DILATIONS = [1, 2, 4, 8]
    # Normalization of the convs: "" (none), "GN", "BN", "SyncBN".
    _C.MODEL.ROI_BODYPART_HEAD.NORM = ""
    # Bilinear upsampling of the logits after the stride-2 deconv: output side M = P * 2 * UP_SCALE.
    _C.MODEL.ROI_BODYPART_HEAD.UP_SCALE = 2
    # Weight of the part loss (Parsing R-CNN: 2).
    _C.MODEL.ROI_BODYPART_HEAD.LOSS_WEIGHT = 2.0
    # At most this many foreground ROIs per image train the part branch (0 = all).
    _C.MODEL.ROI_BODYPART_HEAD.MAX_FG_PER_IMAGE = 16
    # At inference, the part head runs on chunks of this many detections (0 = automatic: its
    # largest activation stays within 128 MB), so memory does not grow with persons x activations.
    _C.MODEL.ROI_BODYPART_HEAD.INFERENCE_CHUNK_SIZE = 0
    # Class balancing of the part loss: "none", "inverse" (1 / frequency), "exponential".
    # Weights are computed once, when training starts, from the training set's pixel counts
    # (docs/metrics.md section 8) and saved in the checkpoint.
    _C.MODEL.ROI_BODYPART_HEAD.CLASS_BALANCE = "none"
    # Explicit class weights (background first, one per label); overrides CLASS_BALANCE.
    _C.MODEL.ROI_BODYPART_HEAD.CLASS_WEIGHTS = []
    # Keypoints from the part head's conv features (shared trunk, one pooling) instead of
    # Detectron2's keypoint head; needs MODEL.KEYPOINT_ON False. Its loss uses Detectron2's
    # ROI_KEYPOINT_HEAD.LOSS_WEIGHT and NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS, per image.
    _C.MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS = False
    # Silhouette (pred_masks) = 1 - P(background) of the part branch instead of the mask head.
    _C.MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS = False
    # Post-processing (META_ARCHITECTURE BodyPartsRCNN): also paste each person's part map into the
    # output image as pred_part_labels (R, H, W) uint8.
    _C.MODEL.ROI_BODYPART_HEAD.PASTE_IN_IMAGE = False


def add_semantic_config(cfg: CN) -> None:
    """Keys of the image-level part segmenter (META_ARCHITECTURE BodyPartsSemanticSegmentor,
    SEM_SEG_HEAD.NAME BodyPartSemSegFPNHead). Test-time augmentation uses Detectron2's TEST.AUG."""
    _C = cfg
    _C.MODEL.BODYPART_SEM_SEG = CN()
    # Class balancing of the pixel loss: "none", "inverse" (1 / frequency), "exponential";
    # computed once, when training starts, from DATASETS.TRAIN's pixel counts (docs/metrics.md
    # section 8), applied "outer", saved in the checkpoint.
    _C.MODEL.BODYPART_SEM_SEG.CLASS_BALANCE = "none"
    # Explicit class weights (background first, one per label); overrides CLASS_BALANCE.
    _C.MODEL.BODYPART_SEM_SEG.CLASS_WEIGHTS = []


def add_panoptic_config(cfg: CN) -> None:
    """Keys of the part-aware panoptic model (META_ARCHITECTURE BodyPartsPanopticFPN). The merge
    itself uses Detectron2's MODEL.PANOPTIC_FPN.COMBINE keys."""
    _C = cfg
    _C.MODEL.BODYPART_PANOPTIC = CN()
    # Contiguous thing class ids whose instances carry part maps (persons: 0); the part branch
    # trains on and predicts for these classes' ROIs only.
    _C.MODEL.BODYPART_PANOPTIC.PART_THING_IDS = [0]
    _C.BODYPARTS.PANOPTIC_EVAL = CN()
    # Write the panoptic-parts files (ground-truth .tif, prediction PNGs, specs) of every evaluated
    # image to <evaluation output folder>/part_panoptic, for tools/eval_part_panoptic.py.
    _C.BODYPARTS.PANOPTIC_EVAL.WRITE_FILES = False


def add_parsing_eval_config(cfg: CN) -> None:
    """Settings of the human-parsing evaluation (BodyPartParsingEvaluator and
    tools/export_parsing_predictions.py). The person class comes from the dataset metadata
    (thing_classes.index("person"))."""
    _C = cfg
    _C.BODYPARTS.PARSING_EVAL = CN()
    # Persons with score >= it are pasted (ascending score) into the image-level map scored by mIoU
    # (Parsing R-CNN PRCNN.SEMSEG_SCORE_THRESH: 0.3 on CIHP, 0.05 on MHP-v2).
    _C.BODYPARTS.PARSING_EVAL.PASTE_SCORE_THRESH = 0.5
    # Persons (and their part regions) with score < it are skipped by AP^p, PCP and AP^r
    # (Parsing R-CNN PRCNN.SCORE_THRESH: 0.001).
    _C.BODYPARTS.PARSING_EVAL.AP_SCORE_THRESH = 0.0
    # The person maps AP^p and PCP score (docs/metrics.md section 3): "full" = every person with
    # score >= AP_SCORE_THRESH with its own full map (Parsing R-CNN's parsing_eval.py, whose
    # protocol the published CIHP / MHP-v2 AP^p numbers use); "pasted" = the persons of the
    # image-level map (score >= PASTE_SCORE_THRESH, pasted in ascending score order), each with its
    # visible pixels only (MHP-v2's official eval_submission.py on global_seg / global_tag).
    _C.BODYPARTS.PARSING_EVAL.AP_PERSON_MAPS = "full"


def add_regnet_config(cfg: CN) -> None:
    """Keys of the RegNet backbones (MODEL.BACKBONE.NAME build_regnet_backbone or
    build_regnet_fpn_backbone: Detectron2's RegNet, bodyparts/modeling/backbone).
    Defaults: RegNetX-400MF."""
    _C = cfg
    _C.MODEL.REGNETS = CN()
    # Number of blocks of the whole network (RegNet parameter d).
    _C.MODEL.REGNETS.DEPTH = 22
    # Width of the first block, a multiple of 8 (w_0).
    _C.MODEL.REGNETS.W_0 = 24
    # Width increase per block before quantization (w_a).
    _C.MODEL.REGNETS.W_A = 24.48
    # Width quantization factor between stages, > 1 (w_m).
    _C.MODEL.REGNETS.W_M = 2.54
    # Channels per group of the 3x3 group convs (g).
    _C.MODEL.REGNETS.GROUP_WIDTH = 16
    # Bottleneck channels / block channels (b; 1.0 for RegNetX and RegNetY).
    _C.MODEL.REGNETS.BOTTLENECK_RATIO = 1.0
    # Squeeze-excitation channels / block input channels (0.0 = none: RegNetX; 0.25: RegNetY).
    _C.MODEL.REGNETS.SE_RATIO = 0.0
    # Output channels of the stride-2 3x3 stem.
    _C.MODEL.REGNETS.STEM_WIDTH = 32
    # Normalization of every conv: "BN", "SyncBN", "GN" (32 groups: widths must be multiples of
    # 32), "FrozenBN" (fine-tuning only: random weights diverge with it).
    _C.MODEL.REGNETS.NORM = "BN"
    # Stages returned (s1..s4 at strides 4, 8, 16, 32).
    _C.MODEL.REGNETS.OUT_FEATURES = ["s1", "s2", "s3", "s4"]


def add_bodyparts_config(cfg: CN) -> None:
    """Add all bodyparts config nodes to a Detectron2 config (call once, before merge_from_file)."""
    add_taxonomy_config(cfg)
    add_synthetic_config(cfg)
    add_part_head_config(cfg)
    add_semantic_config(cfg)
    add_panoptic_config(cfg)
    add_regnet_config(cfg)
    add_parsing_eval_config(cfg)


class ConfigValueError(ValueError):
    """A bodyparts config key holds a value it cannot take (the message names the key, the value
    and what it may be)."""


def _choice(source: str, key: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ConfigValueError(
            f"{source}: {key} {value!r} is not valid; choose one of: {', '.join(map(str, choices))}"
        )


def _at_least(source: str, key: str, value: Any, low: float) -> None:
    if not value >= low:
        raise ConfigValueError(f"{source}: {key} {value!r} is not valid; it must be >= {low}")


def _probability(source: str, key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ConfigValueError(f"{source}: {key} {value!r} is not valid; it must be in [0, 1]")


def check_bodyparts_config(cfg: CN, source: str = "config") -> None:
    """Check the values of the bodyparts keys that have a fixed set of choices or a range, so that
    a typo is one error naming the key, the value and the valid choices when the config is loaded
    (not a traceback when the model or the data loader is built).

    Raises:
        ConfigValueError: ``"<source>: <KEY> <value> is not valid; choose one of: ..."``.
    """
    _choice(source, "BODYPARTS.PART_TAXONOMY", cfg.BODYPARTS.PART_TAXONOMY, sorted(PART_TAXONOMIES))
    _choice(
        source,
        "BODYPARTS.KEYPOINT_TAXONOMY",
        cfg.BODYPARTS.KEYPOINT_TAXONOMY,
        sorted(KEYPOINT_TAXONOMIES),
    )
    head = cfg.MODEL.ROI_BODYPART_HEAD
    for node in ("ROI_BODYPART_HEAD", "BODYPART_SEM_SEG"):
        key = f"MODEL.{node}"
        _choice(source, f"{key}.CLASS_BALANCE", cfg.MODEL[node].CLASS_BALANCE, CLASS_BALANCE_MODES)
        weights = list(cfg.MODEL[node].CLASS_WEIGHTS)
        if any(not w >= 0 for w in weights):
            raise ConfigValueError(
                f"{source}: {key}.CLASS_WEIGHTS {weights} is not valid; weights must be >= 0"
            )
    _choice(source, "MODEL.ROI_BODYPART_HEAD.NORM", head.NORM, ("", "GN", "BN", "SyncBN"))
    _choice(
        source,
        "MODEL.ROI_BODYPART_HEAD.POOLER_TYPE",
        head.POOLER_TYPE,
        ("ROIAlignV2", "ROIAlign", "ROIPool"),
    )
    _at_least(source, "MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION", head.POOLER_RESOLUTION, 1)
    _at_least(source, "MODEL.ROI_BODYPART_HEAD.UP_SCALE", head.UP_SCALE, 1)
    _at_least(source, "MODEL.ROI_BODYPART_HEAD.MAX_FG_PER_IMAGE", head.MAX_FG_PER_IMAGE, 0)
    _at_least(source, "MODEL.ROI_BODYPART_HEAD.INFERENCE_CHUNK_SIZE", head.INFERENCE_CHUNK_SIZE, 0)
    if head.NAME == "PartDilatedContextHead" and len(head.DILATIONS) != len(head.CONV_DIMS):
        raise ConfigValueError(
            f"{source}: MODEL.ROI_BODYPART_HEAD.DILATIONS {list(head.DILATIONS)} is not valid; "
            "PartDilatedContextHead needs one dilation per conv "
            f"(CONV_DIMS has {len(head.CONV_DIMS)})"
        )
    _choice(
        source, "MODEL.REGNETS.NORM", cfg.MODEL.REGNETS.NORM, ("BN", "SyncBN", "GN", "FrozenBN")
    )
    for feature in cfg.MODEL.REGNETS.OUT_FEATURES:
        _choice(source, "MODEL.REGNETS.OUT_FEATURES", feature, ("s1", "s2", "s3", "s4"))
    synthetic = cfg.BODYPARTS.SYNTHETIC
    _at_least(source, "BODYPARTS.SYNTHETIC.NUM_TRAIN", synthetic.NUM_TRAIN, 0)
    _at_least(source, "BODYPARTS.SYNTHETIC.NUM_VAL", synthetic.NUM_VAL, 0)
    _at_least(source, "BODYPARTS.SYNTHETIC.IMAGE_SIZE", synthetic.IMAGE_SIZE, 32)
    _at_least(source, "BODYPARTS.SYNTHETIC.MAX_PERSONS", synthetic.MAX_PERSONS, 1)
    for name in ("PASTE_SCORE_THRESH", "AP_SCORE_THRESH"):
        _probability(source, f"BODYPARTS.PARSING_EVAL.{name}", cfg.BODYPARTS.PARSING_EVAL[name])
    _choice(
        source,
        "BODYPARTS.PARSING_EVAL.AP_PERSON_MAPS",
        cfg.BODYPARTS.PARSING_EVAL.AP_PERSON_MAPS,
        AP_PERSON_MAPS,
    )
    for thing_id in cfg.MODEL.BODYPART_PANOPTIC.PART_THING_IDS:
        _at_least(source, "MODEL.BODYPART_PANOPTIC.PART_THING_IDS", thing_id, 0)
