"""Horizontal-flip test-time augmentation of the part outputs.

Detections come from the original image. The same persons (boxes mirrored) are then run through
the ROI heads on the mirrored image, and the part probabilities of both views are averaged after
un-flipping the mirrored view: columns reversed and left/right channels swapped with the taxonomy's
flip permutation (the same permutation the mapper uses for ground truth). Silhouettes from the mask
head are averaged the same way (columns only). Keypoints are those of the original view.

:class:`SemSegTTA` does multi-scale + flip TTA of the image-level part segmenter: every
augmented view (Detectron2's ``DatasetMapperTTA``: ``TEST.AUG.MIN_SIZES``, ``MAX_SIZE``, ``FLIP``)
is predicted at the original size, mirrored views are un-flipped the same way, and the softmax
probabilities of all views are averaged.
"""

from typing import Dict, List, Optional

import numpy as np
import torch
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.modeling.test_time_augmentation import DatasetMapperTTA
from detectron2.structures import Boxes, Instances
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data.mappers import count_hflips
from ..taxonomy import get_part_taxonomy
from .part_outputs import PartPredictions, as_part_predictions

__all__ = ["unflip_part_probs", "PartFlipTTA", "SemSegTTA"]


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


def _average_with_mirrored(
    probs: PartPredictions, mirrored: PartPredictions, flip_lut: np.ndarray
) -> PartPredictions:
    """Mean of the original view's part probabilities and the un-flipped mirrored view's (the same
    detections, so both have the same rows)."""
    probs, mirrored = as_part_predictions(probs), as_part_predictions(mirrored)
    mean = 0.5 * (probs.probs + unflip_part_probs(mirrored.probs, flip_lut))
    return PartPredictions(mean, probs.index, len(probs))


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
    ``"instances"`` per image, post-processed to each input's ``height``/``width``, with the same
    fields: ``BodyPartsRCNN.postprocess_parts`` runs on the averaged outputs, so
    ``ROI_BODYPART_HEAD.PASTE_IN_IMAGE`` gives ``pred_part_labels`` of the averaged probabilities).
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
            mirrored_inputs,
            detected_instances=[_mirror_boxes(r) for r in results],
            do_postprocess=False,
        )
        outputs = []
        for inp, res, mir in zip(batched_inputs, results, mirrored):
            if res.has("pred_part_masks"):
                res.pred_part_masks = _average_with_mirrored(
                    res.pred_part_masks, mir.pred_part_masks, self.flip_lut
                )
            if res.has("pred_masks") and mir.has("pred_masks"):
                res.pred_masks = 0.5 * (res.pred_masks + mir.pred_masks.flip(-1))
            height = inp.get("height", res.image_size[0])
            width = inp.get("width", res.image_size[1])
            out = detector_postprocess(res, height, width)
            postprocess_parts = getattr(self.model, "postprocess_parts", None)
            if postprocess_parts is not None:  # BodyPartsRCNN: the same image-space part outputs
                out = postprocess_parts(out)
            outputs.append({"instances": out})
        return outputs


class SemSegTTA(nn.Module):
    """Multi-scale + flip TTA of a semantic part segmenter (``BodyPartsSemanticSegmentor``
    or any model returning ``{"sem_seg": (C, height, width) logits}``).

    ``SemSegTTA(cfg, model)(batched_inputs)`` returns one ``{"sem_seg": (C, height, width)}`` per
    input: the mean of the softmax probabilities of all views, each at the input's original size
    (``height``/``width``, default the image size), mirrored views un-flipped with the left/right
    channel swap of ``BODYPARTS.PART_TAXONOMY``. Use it like Detectron2's
    ``GeneralizedRCNNWithTTA``: ``Trainer.test(cfg, SemSegTTA(cfg, model), evaluators)``.
    """

    def __init__(
        self,
        cfg,
        model: nn.Module,
        tta_mapper: Optional[DatasetMapperTTA] = None,
        batch_size: int = 3,
    ):
        """
        Args:
            cfg: config with ``TEST.AUG`` (views) and ``BODYPARTS.PART_TAXONOMY`` (flip swap).
            model: the segmenter (unwrapped from DDP if wrapped).
            tta_mapper: input dict -> list of augmented dicts with ``transforms``
                (default ``DatasetMapperTTA(cfg)``).
            batch_size: views run through the model at once.
        """
        super().__init__()
        if isinstance(model, DistributedDataParallel):
            model = model.module
        self.model = model
        self.flip_lut = get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY).flip_lut()
        self.tta_mapper = tta_mapper if tta_mapper is not None else DatasetMapperTTA(cfg)
        self.batch_size = batch_size

    @torch.no_grad()
    def forward(self, batched_inputs: List[Dict]) -> List[Dict[str, torch.Tensor]]:
        self.model.eval()
        return [{"sem_seg": self._probs(x)} for x in batched_inputs]

    def _probs(self, inp: Dict) -> torch.Tensor:
        """(C, height, width) mean probabilities of the views of one input."""
        height = inp.get("height", inp["image"].shape[1])
        width = inp.get("width", inp["image"].shape[2])
        views = self.tta_mapper({"image": inp["image"], "height": height, "width": width})
        total = None
        for start in range(0, len(views), self.batch_size):
            chunk = views[start : start + self.batch_size]
            inputs = [{"image": v["image"], "height": height, "width": width} for v in chunk]
            outputs = self.model(inputs)
            for view, out in zip(chunk, outputs):
                probs = out["sem_seg"].float().softmax(dim=0)
                if count_hflips(view["transforms"]) % 2 == 1:
                    probs = unflip_part_probs(probs[None], self.flip_lut)[0]
                total = probs if total is None else total + probs
        return total / len(views)
