"""Named tensor outputs of an exported model, and their way back to Detectron2 ``Instances``.

An exported model takes one image and returns a fixed tuple of tensors; ``export_info.json`` names
them in order. Shapes: R = detections of the image, C = part labels including background (0),
M = side of the part branch's ROI output, Ms = side of the silhouette output, K = keypoints,
Mk = side of the keypoint heatmaps, H x W = the model input's size in pixels (the image after the
test resize, before any padding). Coordinates are pixels of the model input.
"""

from typing import Dict, List, Sequence, Tuple

import torch
from detectron2.structures import Boxes, Instances, heatmaps_to_keypoints

from ..modeling.part_outputs import PartPredictions

__all__ = [
    "INSTANCE_OUTPUTS",
    "SEMANTIC_OUTPUTS",
    "OUTPUT_DESCRIPTIONS",
    "instance_output_names",
    "instances_to_outputs",
    "outputs_to_instances",
    "decode_keypoints",
]

# output name -> Instances field, in the order in which an exported part model returns them
INSTANCE_OUTPUTS: Dict[str, str] = {
    "boxes": "pred_boxes",
    "scores": "scores",
    "classes": "pred_classes",
    "part_probs": "pred_part_masks",
    "silhouettes": "pred_masks",
    "keypoints": "pred_keypoints",
    "keypoint_heatmaps": "pred_keypoint_heatmaps",
}
SEMANTIC_OUTPUTS: Tuple[str, ...] = ("sem_seg",)

OUTPUT_DESCRIPTIONS: Dict[str, str] = {
    "boxes": "float32 (R, 4) XYXY boxes, input-image pixels",
    "scores": "float32 (R,) detection scores",
    "classes": "int64 (R,) contiguous class ids",
    "part_probs": "float32 (R, C, M, M) part probabilities in ROI space (C = background + parts)",
    "silhouettes": "float32 (R, 1, Ms, Ms) silhouette probabilities in ROI space",
    "keypoints": "float32 (R, K, 3) keypoints (x, y, score), input-image pixels",
    "keypoint_heatmaps": "float32 (R, K, Mk, Mk) keypoint logits in ROI space",
    "sem_seg": "float32 (C, H, W) per-pixel part logits at the input size",
}


def instance_output_names(
    instances: Instances, *, keypoints_as_heatmaps: bool = False
) -> List[str]:
    """The outputs an exported part model returns, from the fields of one eager inference result.

    Args:
        instances: the eager model's ``inference(..., do_postprocess=False)`` result of one image.
        keypoints_as_heatmaps: return ``keypoint_heatmaps`` instead of ``keypoints`` (ONNX: the
            heatmap decoding of Detectron2 is a per-ROI loop with data-dependent resize sizes,
            which the ONNX exporter cannot express; :func:`decode_keypoints` runs it afterwards).
    """
    skip = "keypoints" if keypoints_as_heatmaps else "keypoint_heatmaps"
    return [n for n, f in INSTANCE_OUTPUTS.items() if n != skip and instances.has(f)]


def instances_to_outputs(instances: Instances, names: Sequence[str]) -> Tuple[torch.Tensor, ...]:
    """The tensors of ``names`` (see :data:`INSTANCE_OUTPUTS`) from ``instances``, in that order
    (``part_probs``: the dense (R, C, M, M) probabilities of the :class:`PartPredictions`)."""
    out = []
    for name in names:
        value = instances.get(INSTANCE_OUTPUTS[name])
        if isinstance(value, Boxes):
            value = value.tensor
        elif isinstance(value, PartPredictions):
            value = value.dense()
        out.append(value)
    return tuple(out)


def decode_keypoints(heatmaps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Keypoints from keypoint logits, as Detectron2's ``keypoint_rcnn_inference`` decodes them.

    Args:
        heatmaps: float (R, K, Mk, Mk) keypoint logits in ROI space.
        boxes: float (R, 4) XYXY boxes of the ROIs, input-image pixels.
    Returns:
        float (R, K, 3): (x, y, score) per keypoint, input-image pixels.
    """
    if heatmaps.shape[0] == 0:
        return heatmaps.new_zeros((0, heatmaps.shape[1], 3))
    return heatmaps_to_keypoints(heatmaps, boxes)[:, :, [0, 1, 3]]


def outputs_to_instances(
    outputs: Dict[str, torch.Tensor], image_size: Tuple[int, int]
) -> Instances:
    """``Instances`` in the layout of ``GeneralizedRCNN.inference(..., do_postprocess=False)``
    from the named outputs of an exported part model (keypoints decoded from heatmaps when only
    those are there). Detectron2's ``detector_postprocess(instances, height, width)`` then scales
    them to the original image and pastes the silhouettes, and
    :func:`bodyparts.modeling.part_label_maps_in_image` pastes the part maps.

    Args:
        outputs: name -> tensor (see :data:`OUTPUT_DESCRIPTIONS`); needs ``boxes``.
        image_size: (H, W) of the model input.
    """
    fields = {}
    for name, field in INSTANCE_OUTPUTS.items():
        if name in outputs:
            value = torch.as_tensor(outputs[name])
            if name == "boxes":
                value = Boxes(value)
            elif name == "part_probs":
                value = PartPredictions.from_dense(value)
            fields[field] = value
    if "pred_keypoints" not in fields and "pred_keypoint_heatmaps" in fields:
        fields["pred_keypoints"] = decode_keypoints(
            fields["pred_keypoint_heatmaps"], fields["pred_boxes"].tensor
        )
    return Instances((int(image_size[0]), int(image_size[1])), **fields)
