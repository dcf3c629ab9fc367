"""BodyPartsRCNN: Detectron2's GeneralizedRCNN with the part outputs' image-space post-processing."""
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN

from .inference import part_label_maps_in_image

__all__ = ["BodyPartsRCNN"]


@META_ARCH_REGISTRY.register()
class BodyPartsRCNN(GeneralizedRCNN):
    """GeneralizedRCNN whose post-processing can also paste each person's part map into the
    output image (``MODEL.ROI_BODYPART_HEAD.PASTE_IN_IMAGE``): ``pred_part_labels`` uint8 (R, H, W)
    at the requested output size, after Detectron2 has rescaled the boxes to it."""

    @configurable
    def __init__(self, *, paste_part_labels: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.paste_part_labels = paste_part_labels

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        ret["paste_part_labels"] = cfg.MODEL.ROI_BODYPART_HEAD.PASTE_IN_IMAGE
        return ret

    def inference(self, batched_inputs, detected_instances=None, do_postprocess: bool = True):
        results = super().inference(batched_inputs, detected_instances, do_postprocess)
        if do_postprocess and self.paste_part_labels:
            for result in results:
                inst = result["instances"]
                if inst.has("pred_part_masks"):
                    inst.pred_part_labels = part_label_maps_in_image(inst)
        return results
