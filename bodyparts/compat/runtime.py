"""Run-time preparation of Detectron2 v0.6 for today's libraries, applied once and only where
needed.

:func:`prepare_detectron2` is called by ``import bodyparts`` before any ``detectron2`` sub-package
is imported. It does exactly three things, each only when the condition holds:

1. No compiled ``detectron2._C``: install the stand-in of :mod:`bodyparts.compat.c_ops` as
   ``detectron2._C`` (v0.6 imports ``_C`` at module level in ``layers``, ``evaluation`` and
   ``utils/collect_env``), and define ``torch.ops.detectron2.nms_rotated`` as a clear error.
2. Pillow >= 10 (no ``Image.LINEAR``) and an installed Detectron2 whose
   ``data/transforms/transform.py`` still uses ``Image.LINEAR`` as a default argument (v0.6;
   upstream main uses ``BILINEAR``): define ``Image.LINEAR = Image.BILINEAR``, the value it had in
   Pillow < 10.
3. ``MapDataset`` cannot retry (v0.6 on Python >= 3.11: when a mapper returns None to skip a record,
   v0.6 draws another index with ``random.sample(a_set)``, a TypeError since Python 3.11; upstream
   main draws from ``list(a_set)``): each new ``MapDataset`` gets a ``random.Random`` with the same
   state whose ``sample`` also takes a set, in iteration order as main's ``list(...)``. Detected by
   running a two-item ``MapDataset`` whose mapper skips the first item.

Everything else that v0.6 trips over (numpy >= 1.24 aliases in ``SemSegEvaluator``, the training
loader's class histogram, ``pascal_voc``) is avoided by not calling those code paths; see README.md.
Import ``bodyparts`` before ``detectron2.data`` / ``detectron2.modeling`` when using v0.6.
"""

import functools
import importlib.util
import logging
import os
import random
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
    path = os.path.join(
        list(spec.submodule_search_locations)[0], "data", "transforms", "transform.py"
    )
    try:
        with open(path, encoding="utf-8") as f:
            return "Image.LINEAR" in f.read()
    except OSError:
        return False


class _SetSamplingRandom(random.Random):
    """``random.Random`` whose ``sample`` also takes a set or frozenset, drawn from in iteration
    order (what upstream main's ``MapDataset`` does with ``sample(list(candidates))``)."""

    def sample(self, population, k, **kwargs):
        if isinstance(population, (set, frozenset)):
            population = list(population)
        return super().sample(population, k, **kwargs)


def _map_dataset_retries() -> bool:
    """Whether Detectron2's ``MapDataset`` maps another index when its mapper returns None."""
    from detectron2.data.common import MapDataset

    probe = MapDataset([0, 1], lambda x: x if x else None)
    try:
        return probe[0] == 1
    except TypeError:
        return False


def _fix_map_dataset_retry() -> None:
    from detectron2.data import common

    original_init = common.MapDataset.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        rng = _SetSamplingRandom()
        rng.setstate(self._rng.getstate())  # the same draws as Detectron2's own generator
        self._rng = rng

    common.MapDataset.__init__ = __init__


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
    map_dataset_fix = not _map_dataset_retries()  # imports detectron2.data: after 1. and 2.
    if map_dataset_fix:
        _fix_map_dataset_retry()
    PREPARED.update(
        {
            "c_standin": standin,
            "pillow_linear_alias": pillow_alias,
            "map_dataset_retry_fix": map_dataset_fix,
        }
    )
    return PREPARED
