"""INT8 ONNX models for the CPU (ONNX Runtime static quantization), and the evaluation of any
exported file on a registered split with the model's evaluators.

Quantization (:func:`quantize_int8`): ONNX Runtime's ``quantize_static`` in QDQ format, weights
int8 per channel, activations uint8, ranges calibrated (min-max) on images of the training set
resized as at test time. The convolutions and matrix products are quantized; what ONNX Runtime
does not quantize (RoiAlign, NMS, TopK, resizes, element-wise ops, ...) stays float and is listed
by op type in ``export_info.json`` (``quantization``).
"""

import json
import logging
import os
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import DatasetCatalog
from detectron2.modeling.postprocessing import detector_postprocess
from torch import nn

from ..data.datasets.synthetic import register_synthetic_from_cfg
from .adapters import eager_outputs
from .api import INFO_FILE, ExportedModel, max_differences, prepare_image
from .outputs import decode_keypoints, outputs_to_instances

__all__ = ["QUANTIZED_OPS", "quantize_int8", "ExportedDetector", "calibration_images"]

logger = logging.getLogger(__name__)

# the op types given to quantize_static (its defaults also quantize element-wise ops and resizes,
# which cost more in Q/DQ pairs than they save on a CPU)
QUANTIZED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
QUANTIZED_FILE = "model_int8.onnx"


def calibration_images(cfg: CfgNode, count: int) -> List[str]:
    """The first ``count`` image files of ``DATASETS.TRAIN`` (every split in turn)."""
    register_synthetic_from_cfg(cfg)
    files: List[str] = []
    for name in cfg.DATASETS.TRAIN:
        for record in DatasetCatalog.get(name):
            files.append(record["file_name"])
            if len(files) >= count:
                return files
    if not files:
        raise ValueError("DATASETS.TRAIN holds no image to calibrate the INT8 ranges on")
    return files


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader``: one {"image": float32 (3, h, w)} per image."""

    def __init__(self, cfg: CfgNode, files: Sequence[str]):
        self._items = iter(files)
        self._cfg = cfg

    def get_next(self) -> Optional[Dict[str, np.ndarray]]:
        path = next(self._items, None)
        if path is None:
            return None
        return {"image": prepare_image(self._cfg, path)[0].numpy()}


def _op_kinds(model_path: str) -> Dict[str, Dict[str, int]]:
    """{"int8": {op type: count}, "float": {op type: count}} of a QDQ model: int8 are the nodes of
    :data:`QUANTIZED_OPS` whose inputs come from DequantizeLinear (ONNX Runtime runs them as
    integer kernels); every other node (Q/DQ pairs aside) computes in float."""
    import onnx

    graph = onnx.load(model_path).graph
    dequantized = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    kinds: Dict[str, Counter] = {"int8": Counter(), "float": Counter()}

    def walk(nodes: Iterable) -> None:
        for node in nodes:
            if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
                continue
            int8 = node.op_type in QUANTIZED_OPS and any(i in dequantized for i in node.input)
            kind = "int8" if int8 else "float"
            kinds[kind][node.op_type] += 1
            for attr in node.attribute:  # subgraphs (If / Loop bodies)
                if attr.g is not None and attr.g.node:
                    walk(attr.g.node)

    walk(graph.node)
    return {k: dict(sorted(v.items())) for k, v in kinds.items()}


def quantize_int8(
    directory: str,
    cfg: CfgNode,
    *,
    num_images: int = 32,
    model: Optional[nn.Module] = None,
    sample: Optional[torch.Tensor] = None,
) -> Dict[str, Any]:
    """Quantize the float ONNX model of an export folder to ``model_int8.onnx`` and make it the
    folder's model (``export_info.json``: ``file`` -> it, ``float_file`` -> the float one, and a
    ``quantization`` entry: method, calibration images, op types run in int8 and in float).

    Args:
        directory: a ``tools/export_model.py --format onnx`` output folder.
        cfg: the model's config (test resize, ``DATASETS.TRAIN`` for the calibration images).
        num_images: calibration images.
        model, sample: the eager model and the sample input of the export: with them the INT8
            file's largest differences from the eager model on the sample replace the float
            file's in ``sample_check`` (those move to ``sample_check_float``).
    Returns:
        the updated export info.
    """
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    with open(os.path.join(directory, INFO_FILE)) as f:
        info = json.load(f)
    if info.get("format") != "onnx":
        raise ValueError(f"{directory}: INT8 quantization needs an ONNX export (--format onnx)")
    float_file = info.get("float_file", info["file"])
    files = calibration_images(cfg, num_images)
    logger.info("INT8: calibrating on %d training images", len(files))
    target = os.path.join(directory, QUANTIZED_FILE)
    quantize_static(
        os.path.join(directory, float_file),
        target,
        _Reader(cfg, files),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(QUANTIZED_OPS),
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    info.update(
        file=QUANTIZED_FILE,
        float_file=float_file,
        quantization={
            "method": "onnxruntime quantize_static, QDQ, weights int8 per channel, "
            "activations uint8, min-max calibration",
            "calibration_images": len(files),
            "calibration_dataset": list(cfg.DATASETS.TRAIN),
            "ops": _op_kinds(target),
        },
    )
    if model is not None and sample is not None:
        names = [o["name"] for o in info["outputs"]]
        expected = dict(zip(names, eager_outputs(model, sample, names)))
        if "keypoint_heatmaps" in expected:
            expected["keypoints"] = decode_keypoints(
                expected["keypoint_heatmaps"], expected["boxes"]
            )
        actual = ExportedModel(directory, info=info)(sample)
        info["sample_check_float"] = info["sample_check"]
        info["sample_check"] = dict(
            info["sample_check"], max_abs_diff=max_differences(expected, actual)
        )
    with open(os.path.join(directory, INFO_FILE), "w") as f:
        json.dump(info, f, indent=2)
    return info


class ExportedDetector(nn.Module):
    """An exported part model as a Detectron2 model for ``inference_on_dataset``: each input's
    ``image`` (the test mapper's resized tensor) through the file, the outputs rebuilt as
    ``Instances`` and post-processed to the input's ``height`` x ``width`` as the eager model's
    (``detector_postprocess``)."""

    def __init__(self, directory: str, *, num_threads: Optional[int] = None):
        super().__init__()
        self.exported = ExportedModel(directory, num_threads=num_threads)

    def forward(self, batched_inputs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
        results = []
        for inp in batched_inputs:
            image = inp["image"].to(torch.float32)
            outputs = self.exported(image)
            instances = outputs_to_instances(outputs, tuple(image.shape[1:]))
            height = inp.get("height", image.shape[1])
            width = inp.get("width", image.shape[2])
            results.append({"instances": detector_postprocess(instances, height, width)})
        return results
