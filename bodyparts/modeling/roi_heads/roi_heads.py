"""BodyPartROIHeads: Detectron2's StandardROIHeads plus the per-person part branch."""

from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads

from .part_branch import BodyPartHeadsMixin

__all__ = ["BodyPartROIHeads"]


@ROI_HEADS_REGISTRY.register()
class BodyPartROIHeads(BodyPartHeadsMixin, StandardROIHeads):
    """Boxes, silhouettes (``MODEL.MASK_ON``), keypoints (``MODEL.KEYPOINT_ON``) as in Detectron2,
    plus part label maps (``MODEL.BODYPART_ON``), each switchable on its own.

    Outputs per detected person (inference): ``pred_boxes``, ``scores``, ``pred_classes``,
    ``pred_masks`` (from the mask head, or 1 - P(background) of the part branch with
    ``ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS``), ``pred_keypoints``, ``pred_part_masks``
    (R, C, M, M) part probabilities in ROI space, and with ``ROI_BODYPART_HEAD.PASTE_IN_IMAGE``
    ``pred_part_labels`` (R, H, W) uint8 in image space.
    """
