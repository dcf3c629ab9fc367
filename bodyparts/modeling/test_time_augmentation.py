"""Horizontal-flip test-time augmentation of the part outputs.

Detections come from the original image. The same persons (boxes mirrored) are then run through
the ROI heads on the mirrored image, and the part probabilities of both views are averaged after
un-flipping the mirrored view: columns reversed and left/right channels swapped with the taxonomy's
flip permutation (the same permutation the mapper uses for ground truth). Silhouettes from the mask
head are averaged the same way (columns only). Keypoints are those of the original view.
"""
from typing import Dict, List

import numpy as np
import torch
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances
from torch import nn

__all__ = ["unflip_part_probs", "PartFlipTTA"]


def unflip_part_probs(probs: torch.Tensor, flip_lut: np.ndarray) -> torch.Tensor:
    """Part probabilities predicted on a mirrored image -> the original image's frame.

    Args:
        probs: (R, C, M, M) in ROI space of the mirrored boxes.
        flip_lut: (C,) label -> label after a horizontal flip (an involution).
    Returns:
        (R, C, M, M): columns reversed, channel ``j`` = input channel ``flip_lut[j]``.
    """
    index = torch.as_tensor(np.asarray(flip_lut), dtype=torch.long, device=probs.device)
    return probs.flip(-1)[:, index]


def _mirror_boxes(instances: Instances) -> Instances:
    width = instances.image_size[1]
    boxes = instances.pred_boxes.tensor.clone()
    boxes[:, [0, 2]] = width - instances.pred_boxes.tensor[:, [2, 0]]
    out = Instances(instances.image_size)
    out.pred_boxes = Boxes(boxes)
    out.pred_classes = instances.pred_classes
    out.scores = instances.scores
    return out


class PartFlipTTA(nn.Module):
    """Wrap a BodyPartsRCNN / GeneralizedRCNN with the part branch for flip TTA at inference.

    ``PartFlipTTA(model, flip_lut)(batched_inputs)`` returns what the model returns (one dict with
    ``"instances"`` per image, post-processed to each input's ``height``/``width``).
    """

    def __init__(self, model: nn.Module, flip_lut: np.ndarray):
        super().__init__()
        self.model = model
        self.flip_lut = np.asarray(flip_lut)

    @torch.no_grad()
    def forward(self, batched_inputs: List[Dict]) -> List[Dict]:
        self.model.eval()
        results = self.model.inference(batched_inputs, do_postprocess=False)
        mirrored_inputs = [{**x, "image": x["image"].flip(-1)} for x in batched_inputs]
        mirrored = self.model.inference(
            mirrored_inputs, detected_instances=[_mirror_boxes(r) for r in results], do_postprocess=False
        )
        outputs = []
        for inp, res, mir in zip(batched_inputs, results, mirrored):
            if res.has("pred_part_masks"):
                res.pred_part_masks = 0.5 * (res.pred_part_masks + unflip_part_probs(mir.pred_part_masks, self.flip_lut))
            if res.has("pred_masks") and mir.has("pred_masks"):
                res.pred_masks = 0.5 * (res.pred_masks + mir.pred_masks.flip(-1))
            height = inp.get("height", res.image_size[0])
            width = inp.get("width", res.image_size[1])
            outputs.append({"instances": detector_postprocess(res, height, width)})
        return outputs
