"""Compatibility layer between bodyparts and the installed Detectron2 (v0.6 or upstream main).

* :mod:`.c_ops`: the stand-in for ``detectron2._C`` (compiled ops) when Detectron2 has none.
* :mod:`.runtime`: :func:`prepare_detectron2`, the run-time fixes applied once by
  ``import bodyparts``.
* :mod:`.api`: helpers for the API differences between v0.6 and upstream main (including
  :func:`import_detectron2_export`, ``detectron2.export`` without Caffe2).
"""

from .api import (  # noqa: F401,E402
    coco_evaluator_kwargs,
    create_local_process_group,
    ddp_without_device_ids_on_cpu,
    import_detectron2_export,
)
from .c_ops import MissingCompiledOpError  # noqa: F401,E402
from .runtime import PREPARED, has_compiled_ops, prepare_detectron2  # noqa: F401  (import first)
