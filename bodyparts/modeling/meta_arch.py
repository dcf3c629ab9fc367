"""BodyPartsRCNN: Detectron2's GeneralizedRCNN with the part outputs' image-space
post-processing."""

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN
from detectron2.structures import Instances

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
        if do_postprocess:
            for result in results:
                self.postprocess_parts(result["instances"])
        return results

    def postprocess_parts(self, instances: Instances) -> Instances:
        """The part outputs' image-space post-processing of one image's detections, already
        rescaled to the output size (Detectron2's ``detector_postprocess``): with
        ``paste_part_labels``, adds ``pred_part_labels`` uint8 (R, H, W). Test-time augmentation
        (``PartFlipTTA``) calls it too, so that both return the same fields."""
        if self.paste_part_labels and instances.has("pred_part_masks"):
            instances.pred_part_labels = part_label_maps_in_image(instances)
        return instances
