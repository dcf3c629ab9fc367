from .part_branch import BodyPartBranch, BodyPartHeadsMixin, subsample_foreground  # noqa: F401
from .part_head import (  # noqa: F401
    ROI_BODYPART_HEAD_REGISTRY,
    PartDilatedContextHead,
    PartRCNNConvDeconvHead,
    build_part_head,
    check_shared_trunk,
)
from .roi_heads import BodyPartROIHeads  # noqa: F401
