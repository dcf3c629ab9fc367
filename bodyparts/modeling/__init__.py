"""Models: the part ROI heads, the part-aware panoptic FPN and the semantic part segmenter
(registered in Detectron2's registries on import)."""

from .backbone import build_regnet_backbone, build_regnet_fpn_backbone  # noqa: F401
from .inference import part_inference, part_label_maps_in_image, paste_part_masks  # noqa: F401
from .losses import class_balance_weights, part_loss, part_targets  # noqa: F401
from .meta_arch import BodyPartsRCNN  # noqa: F401
from .panoptic import BodyPartsPanopticFPN, part_panoptic_map  # noqa: F401
from .part_outputs import PartPredictions, as_part_predictions  # noqa: F401
from .roi_heads import (  # noqa: F401
    ROI_BODYPART_HEAD_REGISTRY,
    BodyPartBranch,
    BodyPartHeadsMixin,
    BodyPartROIHeads,
    PartDilatedContextHead,
    PartRCNNConvDeconvHead,
)
from .semantic_seg import BodyPartSemSegFPNHead, BodyPartsSemanticSegmentor  # noqa: F401
from .test_time_augmentation import PartFlipTTA, SemSegTTA  # noqa: F401
