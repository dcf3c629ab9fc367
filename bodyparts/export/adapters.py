"""What can be exported with which method, and the adapters that give tracing and scripting a
model with one image tensor in and a tuple of tensors out.

Tracing goes through Detectron2's ``TracingAdapter``; scripting through
``scripting_with_instances``. Both run the model's own ROI heads and part branch (the part
branch's inference is one code path, eager, traced and scripted); for scripting,
``BodyPartsRCNN``'s modules are held by a Detectron2 ``GeneralizedRCNN``, as its ``inference``
adds only the post-processing (through ``super()``, which TorchScript cannot compile) that an
export leaves out.
"""

import contextlib
from typing import Callable, Iterator, List, Optional, Sequence, Tuple
from unittest import mock

import torch
from detectron2.modeling import GeneralizedRCNN
from detectron2.modeling.backbone.regnet import AnyNet
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead
from detectron2.structures import Boxes, Instances
from torch import Tensor, nn

from ..compat import import_detectron2_export
from ..model_kinds import model_kind_of
from .outputs import instances_to_outputs

__all__ = [
    "FORMATS",
    "METHODS",
    "ExportError",
    "model_kind",
    "check_exportable",
    "tracing_adapter",
    "scripting_module",
    "tracing_patches",
    "eager_outputs",
    "eager_instances",
]

FORMATS = ("torchscript", "onnx")
METHODS = ("tracing", "scripting")

# Instances fields that the inference path of the part models sets (scripting needs them all).
SCRIPTING_FIELDS = {
    "proposal_boxes": Boxes,
    "objectness_logits": Tensor,
    "pred_boxes": Boxes,
    "scores": Tensor,
    "pred_classes": Tensor,
    "pred_masks": Tensor,
    "pred_keypoints": Tensor,
    "pred_keypoint_heatmaps": Tensor,
    "pred_part_masks": Tensor,
}
# bodyparts modules whose len(Instances) must stay symbolic while tracing (Detectron2's
# patch_builtin_len already covers its own ROI heads)
_LEN_PATCHED_MODULES = ["bodyparts.modeling.inference"]


class ExportError(RuntimeError):
    """A model (or a part of it) that the requested format / method cannot export; the message
    names the part and the reason."""


def model_kind(model: nn.Module) -> str:
    """The export adapter of ``model``'s kind (:mod:`bodyparts.model_kinds`): ``"instances"``
    (R-CNN: boxes, parts, silhouettes, keypoints per person) or ``"semantic"`` (image-level part
    map). Raises ExportError for kinds that cannot be exported (the panoptic model: why) and for
    unknown models."""
    try:
        kind = model_kind_of(model)
    except KeyError as e:
        raise ExportError(f"{e.args[0]}; no export adapter") from None
    if kind.export is None:
        raise ExportError(f"{type(model).__name__}: {kind.export_refusal}")
    return kind.export


def check_exportable(model: nn.Module, format: str, method: str) -> str:
    """Raise ExportError (naming the part and why) unless ``model`` can be exported to ``format``
    with ``method``; returns :func:`model_kind`."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {FORMATS}")
    if method not in METHODS:
        raise ExportError(f"unknown export method {method!r}; choose one of {METHODS}")
    kind = model_kind(model)
    if method == "tracing":
        return kind
    if format == "onnx":
        raise ExportError(
            "ONNX export uses --export-method tracing: the ONNX exporter cannot take the "
            "TorchScript classes that scripting makes of Detectron2's Instances (Detectron2's "
            "tools/deploy/export_model.py: scripting supports the torchscript format only)"
        )
    for name, module in model.named_modules():
        if isinstance(module, SemSegFPNHead):
            raise ExportError(
                f"scripting: {name} ({type(module).__name__}, Detectron2's semantic FPN head) "
                "cannot "
                "be scripted: it keeps its scale heads in a Python list and gives Conv2d the "
                "function F.relu as activation, neither of which TorchScript compiles. Use "
                "--export-method tracing: the semantic FPN has no data-dependent control flow, so "
                "the traced graph holds for every input size."
            )
        if isinstance(module, AnyNet):
            raise ExportError(
                f"scripting: {name or 'the backbone'} ({type(module).__name__}, Detectron2's "
                "RegNet) "
                "cannot be scripted: it iterates over its stages through a Python list of "
                "(module, name) pairs (stages_and_names), which TorchScript does not compile. Use "
                "--export-method tracing."
            )
    return kind


@contextlib.contextmanager
def tracing_patches(*, keypoints_as_heatmaps: bool = False) -> Iterator[None]:
    """The patches in force while a part model is traced (nothing is changed outside the block).

    * Detectron2's ``patch_builtin_len``, extended to bodyparts' inference module, so that the
      per-image split of the part probabilities follows the number of detections of each input.
    * With ``keypoints_as_heatmaps`` (ONNX): Detectron2's ``heatmaps_to_keypoints`` is replaced in
      its keypoint head by zeros of the same shape; the graph then returns the heatmaps, and
      :func:`bodyparts.export.outputs.decode_keypoints` decodes them after the run. (Its per-ROI
      loop resizes to data-dependent sizes: the ONNX exporter rejects it.)
    """
    import_detectron2_export()  # v0.6: makes detectron2.export importable without Caffe2
    from detectron2.export.torchscript_patch import patch_builtin_len

    with contextlib.ExitStack() as stack:
        stack.enter_context(patch_builtin_len(_LEN_PATCHED_MODULES))
        if keypoints_as_heatmaps:

            def no_decoding(maps: Tensor, rois: Tensor) -> Tensor:
                return maps.new_zeros((maps.shape[0], maps.shape[1], 4))

            stack.enter_context(
                mock.patch(
                    "detectron2.modeling.roi_heads.keypoint_head.heatmaps_to_keypoints", no_decoding
                )
            )
        yield


def _inference_func(kind: str, names: Sequence[str]) -> Callable:
    if kind == "semantic":

        def semantic(model: nn.Module, image: Tensor) -> Tuple[Tensor, ...]:
            return (model([{"image": image}])[0]["sem_seg"],)

        return semantic

    def instances(model: nn.Module, image: Tensor) -> Tuple[Tensor, ...]:
        result = model.inference([{"image": image}], do_postprocess=False)[0]
        return instances_to_outputs(result, names)

    return instances


def tracing_adapter(model: nn.Module, image: Tensor, names: Sequence[str]) -> nn.Module:
    """Detectron2's ``TracingAdapter`` of ``model``: ``adapter(image)`` -> the tensors of
    ``names`` (see :mod:`bodyparts.export.outputs`), image float (3, H, W)."""
    kind = model_kind(model)
    TracingAdapter = import_detectron2_export().TracingAdapter
    return TracingAdapter(model, image, _inference_func(kind, names)).eval()


class _ScriptableInstancesModel(nn.Module):
    """``forward(image (3, H, W)) -> [tensors of fields]``: one image through
    ``model.inference(..., do_postprocess=False)``, the Instances fields returned as a list."""

    def __init__(self, model: nn.Module, fields: List[str]):
        super().__init__()
        self.model = model
        self.fields = list(fields)

    def forward(self, image: Tensor) -> List[Tensor]:
        instances = self.model.inference([{"image": image}], do_postprocess=False)
        fields = instances[0].get_fields()
        return [fields[name] for name in self.fields]


def _scriptable_rcnn(model: GeneralizedRCNN) -> GeneralizedRCNN:
    """Detectron2's GeneralizedRCNN on ``model``'s own modules: ``BodyPartsRCNN`` adds only the
    image-space post-processing (``super().inference``, which TorchScript cannot compile), and an
    export leaves post-processing out. The ROI heads are scripted as they are."""
    return (
        GeneralizedRCNN(
            backbone=model.backbone,
            proposal_generator=model.proposal_generator,
            roi_heads=model.roi_heads,
            pixel_mean=model.pixel_mean.flatten().tolist(),
            pixel_std=model.pixel_std.flatten().tolist(),
            input_format=model.input_format,
        )
        .to(model.device)
        .eval()
    )


def scripting_module(model: nn.Module, fields: Sequence[str]) -> torch.jit.ScriptModule:
    """TorchScript of a part model (the semantic segmenter cannot be scripted: see
    :func:`check_exportable`): ``module(image (3, H, W)) -> [tensors of the Instances fields]``."""
    if model_kind(model) != "instances":
        raise ExportError(f"scripting: {type(model).__name__} is not a part model")
    scripting_with_instances = import_detectron2_export().scripting_with_instances
    adapter = _ScriptableInstancesModel(_scriptable_rcnn(model), list(fields)).eval()
    try:
        return scripting_with_instances(adapter, SCRIPTING_FIELDS)
    except Exception as e:  # TorchScript's messages carry the source excerpt: keep its first lines
        lines = [line for line in str(e).splitlines() if line.strip()][:12]
        raise ExportError(
            f"scripting {type(model).__name__} failed; TorchScript says:\n" + "\n".join(lines)
        ) from e


def eager_outputs(model: nn.Module, image: Tensor, names: Sequence[str]) -> Tuple[Tensor, ...]:
    """What the exported model must return for ``image``: the eager model's tensors of ``names``."""
    with torch.no_grad():
        return _inference_func(model_kind(model), names)(model, image)


def eager_instances(model: nn.Module, image: Tensor) -> Optional[Instances]:
    """The eager ``inference(..., do_postprocess=False)`` result of a part model (None for the
    semantic segmenter)."""
    if model_kind(model) != "instances":
        return None
    with torch.no_grad():
        return model.inference([{"image": image}], do_postprocess=False)[0]
