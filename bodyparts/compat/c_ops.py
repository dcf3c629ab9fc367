"""What ``detectron2._C`` provides, for a Detectron2 installed without its compiled extension.

This is the one place where bodyparts stands in for Detectron2's compiled ops. It is used only when
``detectron2._C`` cannot be imported (the pure-Python build that ``scripts/setup_env.sh`` makes from
the ``pb1-detectron2==0.6`` sdist, or upstream main built without its extension). A Detectron2 with
compiled ops is never touched.

What the stand-in module answers:

=========================================  ==================================================
``_C`` member                              stand-in
=========================================  ==================================================
get_compiler_version / get_cuda_version /  plain answers for ``collect_env`` (no extension:
has_cuda                                   "none", "not compiled", ``False``)
deform_conv_*, modulated_deform_conv_*     error naming the op (use torchvision.ops.DeformConv2d
                                           or a compiled Detectron2)
box_iou_rotated, roi_align_rotated_*,      error naming the op (rotated boxes are not used by
``torch.ops.detectron2.nms_rotated``       bodyparts)
InstanceAnnotation, ImageEvaluation,       error naming the op; COCO evaluation in bodyparts
COCOevalEvaluateImages, COCOevalAccumulate passes ``use_fast_impl=False`` (pycocotools, same AP)
=========================================  ==================================================

ROIAlign, NMS and the other ops the standard Faster/Mask/Keypoint/Panoptic R-CNN use come from
torchvision in Detectron2 itself and need nothing here.
"""

import sys
import types
from typing import Callable

__all__ = ["MissingCompiledOpError", "STANDIN_MODULE_NAME", "make_standin_module", "BUILD_HINT"]

STANDIN_MODULE_NAME = "detectron2._C"

BUILD_HINT = (
    "this Detectron2 was installed without its compiled extension (detectron2._C). "
    "To use this op, build Detectron2 from source with its C++/CUDA ops: "
    "`pip install --no-build-isolation 'git+https://github.com/facebookresearch/detectron2.git'` "
    "(needs a C++ compiler; CUDA for GPU kernels), then re-run scripts/setup_env.sh with "
    "BODYPARTS_PYTHON pointing at that interpreter. See README.md, 'Detectron2 with compiled ops'."
)

# name -> what to use instead (shown in the error)
_MISSING_OPS = {
    "deform_conv_forward": "torchvision.ops.DeformConv2d / deform_conv2d (differentiable on CPU)",
    "deform_conv_backward_input": "torchvision.ops.deform_conv2d",
    "deform_conv_backward_filter": "torchvision.ops.deform_conv2d",
    "modulated_deform_conv_forward": "torchvision.ops.deform_conv2d(..., mask=...)",
    "modulated_deform_conv_backward": "torchvision.ops.deform_conv2d(..., mask=...)",
    "box_iou_rotated": "axis-aligned boxes (rotated boxes are not used by bodyparts)",
    "nms_rotated": "axis-aligned boxes (rotated boxes are not used by bodyparts)",
    "roi_align_rotated_forward": "axis-aligned ROIAlign (rotated boxes are not used by bodyparts)",
    "roi_align_rotated_backward": "axis-aligned ROIAlign (rotated boxes are not used by bodyparts)",
    "InstanceAnnotation": "COCOEvaluator(..., use_fast_impl=False), i.e. pycocotools",
    "ImageEvaluation": "COCOEvaluator(..., use_fast_impl=False), i.e. pycocotools",
    "COCOevalEvaluateImages": "COCOEvaluator(..., use_fast_impl=False), i.e. pycocotools",
    "COCOevalAccumulate": "COCOEvaluator(..., use_fast_impl=False), i.e. pycocotools",
}


class MissingCompiledOpError(RuntimeError):
    """A compiled Detectron2 op was called but Detectron2 has no compiled extension."""


def _missing_op(name: str, alternative: str) -> Callable:
    def op(*args, **kwargs):
        raise MissingCompiledOpError(
            f"detectron2._C.{name} is not available: {BUILD_HINT} Alternative: {alternative}."
        )

    op.__name__ = name
    op.__qualname__ = name
    return op


def make_standin_module() -> types.ModuleType:
    """Build the stand-in ``detectron2._C`` module (not yet installed in ``sys.modules``)."""
    mod = types.ModuleType(
        STANDIN_MODULE_NAME,
        "bodyparts stand-in for detectron2._C (no compiled extension); "
        "see bodyparts/compat/c_ops.py",
    )
    mod.__file__ = __file__  # a .py file: scripts/setup_env.sh tells it from a compiled extension
    mod.BODYPARTS_STANDIN = True
    mod.get_compiler_version = lambda: "none (detectron2._C not compiled; bodyparts stand-in)"
    mod.get_cuda_version = lambda: "not compiled"
    mod.has_cuda = lambda: False
    for name, alternative in _MISSING_OPS.items():
        setattr(mod, name, _missing_op(name, alternative))
    return mod


def register_nms_rotated_error(library_holder: list) -> None:
    """Define ``torch.ops.detectron2.nms_rotated`` so that calling it raises the clear error.

    Detectron2 calls this op through ``torch.ops`` rather than ``_C``; without a definition PyTorch
    would only say that the operator does not exist. ``library_holder`` keeps the
    ``torch.library.Library`` object alive (the definition lives as long as it does).
    """
    import torch

    try:
        torch.ops.detectron2.nms_rotated  # noqa: B018  (defined by a compiled Detectron2)
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("detectron2", "FRAGMENT")
    lib.define("nms_rotated(Tensor boxes, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl(
        "nms_rotated",
        _missing_op("nms_rotated", _MISSING_OPS["nms_rotated"]),
        "CompositeExplicitAutograd",
    )
    library_holder.append(lib)


def installed_standin():
    """The stand-in module if it is the one installed as ``detectron2._C``, else None."""
    mod = sys.modules.get(STANDIN_MODULE_NAME)
    return mod if getattr(mod, "BODYPARTS_STANDIN", False) else None
