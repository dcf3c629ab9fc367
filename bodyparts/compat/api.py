"""Differences between Detectron2 v0.6 and upstream main that bodyparts relies on, in one place.

Both report ``detectron2.__version__ == "0.6"``, so every helper detects the feature, not the
version.

====================================  ==========================  ===============================
feature                               v0.6                        upstream main
====================================  ==========================  ===============================
local process group                   ``comm._LOCAL_PROCESS_GROUP``  ``comm.create_local_process_group``
``create_ddp_model`` on a CPU model   passes ``device_ids`` -> ValueError in DDP (both)
``COCOEvaluator`` fast C++ COCOeval   needs ``_C``                needs ``_C``
``import detectron2.export``           imports Caffe2 (gone from    Caffe2 optional; exports
                                      PyTorch): ImportError       ``TracingAdapter`` & co.
====================================  ==========================  ===============================
"""  # noqa: E501  (a row of the table above is 104 characters wide)

import contextlib
import importlib
import importlib.util
import logging
import sys
from types import ModuleType
from typing import Iterator

import torch
import torch.distributed as dist

from .runtime import has_compiled_ops

__all__ = [
    "create_local_process_group",
    "ddp_without_device_ids_on_cpu",
    "coco_evaluator_kwargs",
    "import_detectron2_export",
]

logger = logging.getLogger(__name__)


def create_local_process_group(num_workers_per_machine: int) -> None:
    """Create the per-machine process group that ``detectron2.utils.comm`` uses for local ranks.

    Must be called by every process after ``torch.distributed.init_process_group``.
    """
    from detectron2.utils import comm

    if hasattr(comm, "create_local_process_group"):  # upstream main
        comm.create_local_process_group(num_workers_per_machine)
        return
    # v0.6: every process creates every machine's group (new_group is collective), keeps its own.
    world_size = dist.get_world_size()
    num_machines = world_size // num_workers_per_machine
    machine_rank = dist.get_rank() // num_workers_per_machine
    for i in range(num_machines):
        ranks = list(range(i * num_workers_per_machine, (i + 1) * num_workers_per_machine))
        pg = dist.new_group(ranks)
        if i == machine_rank:
            comm._LOCAL_PROCESS_GROUP = pg


@contextlib.contextmanager
def ddp_without_device_ids_on_cpu(device: str) -> Iterator[None]:
    """Within the block, ``DefaultTrainer`` wraps CPU models in DDP without ``device_ids``.

    Detectron2's ``create_ddp_model`` (v0.6 and main) always passes ``device_ids=[local_rank]``,
    which PyTorch rejects for CPU modules. ``DefaultTrainer.__init__`` looks the function up in
    ``detectron2.engine.defaults``; for a CPU device this context replaces it there for the duration
    of the block only, with a version that passes ``device_ids=None``. CUDA models are untouched.
    """
    from detectron2.engine import defaults

    if torch.device(device).type != "cpu":
        yield
        return
    original = defaults.create_ddp_model

    def create_cpu_ddp_model(model, *, fp16_compression=False, **kwargs):
        kwargs["device_ids"] = None  # DDP's CPU mode; Detectron2 would pass [local_rank]
        return original(model, fp16_compression=fp16_compression, **kwargs)

    defaults.create_ddp_model = create_cpu_ddp_model
    try:
        yield
    finally:
        defaults.create_ddp_model = original


def coco_evaluator_kwargs() -> dict:
    """Keyword arguments for ``COCOEvaluator``: the C++ COCOeval only with a compiled ``_C``."""
    return {"use_fast_impl": has_compiled_ops()}


def import_detectron2_export() -> ModuleType:
    """``detectron2.export`` with at least ``TracingAdapter``, ``scripting_with_instances`` and
    ``dump_torchscript_IR`` (and its submodules ``flatten``, ``torchscript``,
    ``torchscript_patch``).

    Upstream main imports its Caffe2 exporter only when Caffe2 exists. v0.6's ``__init__`` imports
    it unconditionally, and PyTorch 2 has no Caffe2, so ``import detectron2.export`` fails there
    with ``No module named 'caffe2'``. Only in that case, the package is set up without running
    its ``__init__`` and given the Caffe2-free members that main's ``__init__`` exports; the
    Detectron2 files are used unchanged. Any other import error is raised as is.
    """
    try:
        return importlib.import_module("detectron2.export")
    except ModuleNotFoundError as e:
        if not (e.name or "").startswith("caffe2"):
            raise
    import detectron2

    spec = importlib.util.find_spec("detectron2.export")
    package = importlib.util.module_from_spec(spec)
    sys.modules["detectron2.export"] = package
    detectron2.export = package
    try:
        from detectron2.export.flatten import TracingAdapter
        from detectron2.export.torchscript import dump_torchscript_IR, scripting_with_instances
    except Exception:
        del sys.modules["detectron2.export"]
        del detectron2.export
        raise
    package.TracingAdapter = TracingAdapter
    package.scripting_with_instances = scripting_with_instances
    package.dump_torchscript_IR = dump_torchscript_IR
    logger.debug("detectron2.export loaded without its Caffe2 exporter (v0.6 on PyTorch 2)")
    return package
