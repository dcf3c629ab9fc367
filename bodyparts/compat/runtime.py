"""Run-time preparation of Detectron2 v0.6 for today's libraries, applied once and only where needed.

:func:`prepare_detectron2` is called by ``import bodyparts`` before any ``detectron2`` sub-package is
imported. It does exactly two things, each only when the condition holds:

1. No compiled ``detectron2._C``: install the stand-in of :mod:`bodyparts.compat.c_ops` as
   ``detectron2._C`` (v0.6 imports ``_C`` at module level in ``layers``, ``evaluation`` and
   ``utils/collect_env``), and define ``torch.ops.detectron2.nms_rotated`` as a clear error.
2. Pillow >= 10 (no ``Image.LINEAR``) and an installed Detectron2 whose
   ``data/transforms/transform.py`` still uses ``Image.LINEAR`` as a default argument (v0.6;
   upstream main uses ``BILINEAR``): define ``Image.LINEAR = Image.BILINEAR``, the value it had in
   Pillow < 10.

Everything else that v0.6 trips over (numpy >= 1.24 aliases in ``SemSegEvaluator``, the training
loader's class histogram, ``pascal_voc``) is avoided by not calling those code paths; see README.md.
Import ``bodyparts`` before ``detectron2.data`` / ``detectron2.modeling`` when using v0.6.
"""
import importlib.util
import logging
import os
import sys
from typing import Dict

from . import c_ops

__all__ = ["prepare_detectron2", "has_compiled_ops", "PREPARED"]

logger = logging.getLogger(__name__)

# What prepare_detectron2 did, for collect_env-style reports and tests (filled once).
PREPARED: Dict[str, bool] = {}
_TORCH_LIBRARIES: list = []


def _compiled_c_available() -> bool:
    mod = sys.modules.get(c_ops.STANDIN_MODULE_NAME)
    if mod is not None:
        return not getattr(mod, "BODYPARTS_STANDIN", False)
    try:
        return importlib.util.find_spec(c_ops.STANDIN_MODULE_NAME) is not None
    except (ImportError, ValueError):
        return False


def has_compiled_ops() -> bool:
    """True when Detectron2 has its real compiled extension ``detectron2._C``."""
    return _compiled_c_available()


def _install_c_standin() -> None:
    import detectron2

    mod = c_ops.make_standin_module()
    sys.modules[c_ops.STANDIN_MODULE_NAME] = mod
    detectron2._C = mod
    c_ops.register_nms_rotated_error(_TORCH_LIBRARIES)


def _transform_uses_image_linear() -> bool:
    spec = importlib.util.find_spec("detectron2")
    if spec is None or not spec.submodule_search_locations:
        return False
    path = os.path.join(list(spec.submodule_search_locations)[0], "data", "transforms", "transform.py")
    try:
        with open(path, encoding="utf-8") as f:
            return "Image.LINEAR" in f.read()
    except OSError:
        return False


def prepare_detectron2() -> Dict[str, bool]:
    """Apply the fixes described in the module docstring (idempotent). Returns what was applied."""
    if PREPARED:
        return PREPARED
    if importlib.util.find_spec("detectron2") is None:
        raise ImportError(
            "bodyparts needs Detectron2, which is not installed. Run `make setup` "
            "(scripts/setup_env.sh) or see README.md, 'Install'."
        )
    standin = not _compiled_c_available()
    if standin:
        _install_c_standin()
    from PIL import Image

    pillow_alias = not hasattr(Image, "LINEAR") and _transform_uses_image_linear()
    if pillow_alias:
        Image.LINEAR = Image.BILINEAR
    PREPARED.update({"c_standin": standin, "pillow_linear_alias": pillow_alias})
    return PREPARED
