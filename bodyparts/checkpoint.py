"""Loading weights and caches without running code from the file, and without silent half-loads.

Detectron2 reads ``.pkl`` weights (its model zoo's format, which users download from the internet)
with a plain ``pickle.load``: a crafted file runs any code it names while it is read.
:class:`BodyPartsCheckpointer` is Detectron2's ``DetectionCheckpointer`` with the two readers
replaced:

* ``.pkl``: :func:`restricted_load`, an unpickler that builds only what the model zoo's files hold
  (dicts, lists, tuples, strings, numbers, numpy arrays and scalars). Any other global the file
  names is refused before it is imported or called: :class:`WeightsFileError` names the file and
  the refused ``module.name``.
* everything else (``.pth``): ``torch.load(..., weights_only=True)``, PyTorch's own restricted
  unpickler (tensors, containers, primitives).

A file that is neither (a text file, a truncated download) is a :class:`WeightsFileError` naming
the file, never an ``IndexError`` from deep inside pickle.

:func:`load_weights` is what the inference paths call (demo, server, export, evaluation): after
loading it checks that the checkpoint initialised every parameter and buffer of the model, and
raises :class:`PartialWeightsError` naming the modules left at their random initial values (the
usual cause: a config and a checkpoint of different model kinds). ``allow_partial=True`` (the
tools' ``--allow-partial-weights``) accepts it on purpose. Training keeps Detectron2's behaviour
(a log line): starting from ImageNet weights leaves the heads uninitialised by design.
"""

import logging
import os
import pickle
import re
from typing import IO, Any, Dict, FrozenSet, Iterable, List, Optional, Sequence

import torch
from detectron2.checkpoint import DetectionCheckpointer
from fvcore.common.checkpoint import Checkpointer
from torch import nn

__all__ = [
    "WeightsFileError",
    "PartialWeightsError",
    "RefusedGlobalError",
    "restricted_load",
    "BodyPartsCheckpointer",
    "load_weights",
    "uninitialized_keys",
    "SAFE_PICKLE_GLOBALS",
]

logger = logging.getLogger(__name__)

# What Detectron2's model-zoo .pkl files (and Caffe2/Detectron1 ones) are built from, as pickled
# by Python 2 and 3 with numpy 1.x (numpy.core) and numpy 2.x (numpy._core).
SAFE_PICKLE_GLOBALS: FrozenSet[str] = frozenset(
    f"{core}.{name}"
    for core in ("numpy.core", "numpy._core")
    for name in ("multiarray._reconstruct", "multiarray.scalar", "numeric._frombuffer")
) | frozenset(
    {
        "numpy.ndarray",
        "numpy.dtype",
        "_codecs.encode",  # bytes pickled by Python 3 with protocol 2 (Python 2 readable)
        "collections.OrderedDict",
        "builtins.set",
        "builtins.frozenset",
        "builtins.slice",
        "builtins.complex",
    }
)


class WeightsFileError(ValueError):
    """A weights or cache file that cannot be used: missing, not a checkpoint, or unsafe."""

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class RefusedGlobalError(pickle.UnpicklingError):
    """A pickle names a global outside the allow-list (raised before it is imported)."""

    def __init__(self, name: str):
        self.name = name
        super().__init__(f"refused type {name}")


class PartialWeightsError(ValueError):
    """The weights leave parameters or buffers of the model at their random initial values."""

    def __init__(self, path: str, modules: Sequence[str], num_keys: int):
        self.path = path
        self.modules = list(modules)
        self.num_keys = num_keys
        super().__init__(
            f"MODEL.WEIGHTS {path} leaves {num_keys} parameter/buffer tensor(s) of the model "
            f"uninitialised, in {', '.join(self.modules)}: the config and the checkpoint are "
            "probably of different model kinds (pass the config the checkpoint was trained with, "
            "or --allow-partial-weights to run with those modules random)"
        )


def _numpy_dtype_class(module: str, name: str) -> bool:
    # numpy >= 2 pickles some dtypes by their class in numpy.dtypes (e.g. StringDType)
    return module == "numpy.dtypes" and name.endswith("DType")


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], allowed: FrozenSet[str], **kwargs):
        super().__init__(file, **kwargs)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        qualified = f"{module}.{name}"
        if qualified in self._allowed or _numpy_dtype_class(module, name):
            return super().find_class(module, name)
        raise RefusedGlobalError(qualified)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed")


def restricted_load(
    file: IO[bytes], *, path: str, extra_globals: Iterable[str] = (), encoding: str = "latin1"
) -> Any:
    """Unpickle ``file`` admitting only :data:`SAFE_PICKLE_GLOBALS` plus ``extra_globals``
    (``"module.name"`` strings, e.g. an enum a cache holds).

    Raises:
        WeightsFileError naming ``path``: a refused global (``refused type os.system``), or a file
        that is not a pickle / is truncated.
    """
    allowed = SAFE_PICKLE_GLOBALS | frozenset(extra_globals)
    try:
        return _RestrictedUnpickler(file, allowed, encoding=encoding).load()
    except RefusedGlobalError as e:
        raise WeightsFileError(
            path,
            f"refused type {e.name}: the file is not plain data "
            "(dicts, lists, numbers, numpy arrays)",
        ) from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        AttributeError,
        UnicodeDecodeError,
        MemoryError,
    ) as e:
        raise WeightsFileError(path, f"not a readable pickle ({type(e).__name__}: {e})") from None


def _zoo_pickle_to_checkpoint(data: Any, path: str) -> Dict[str, Any]:
    """A model-zoo ``.pkl`` payload as a checkpoint dict (the layouts Detectron2 reads)."""
    if not isinstance(data, dict):
        raise WeightsFileError(
            path, f"not a checkpoint: a pickled {type(data).__name__}, not a dict"
        )
    if "model" in data and "__author__" in data:  # Detectron2 model-zoo layout
        logger.info("Reading a file from '%s'", data["__author__"])
        return data
    blobs = data.get("blobs", data)  # Caffe2 / Detectron1 detection models keep them under "blobs"
    if not isinstance(blobs, dict):
        raise WeightsFileError(path, "not a checkpoint: 'blobs' is not a dict")
    model = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
    return {"model": model, "__author__": "Caffe2", "matching_heuristics": True}


def _refused_global(message: str) -> Optional[str]:
    """The ``module.name`` that ``torch.load(weights_only=True)`` refused, from its message."""
    match = re.search(r"(?:Unsupported global:|unsupported) GLOBAL ([\w.]+)", message)
    return match.group(1) if match else None


class _TorchWeightsOnly(Checkpointer):
    """fvcore's reader of ``.pth`` files, restricted: ``torch.load(weights_only=True)``.

    Placed after ``DetectionCheckpointer`` in :class:`BodyPartsCheckpointer`'s MRO, so that
    Detectron2's own ``super()._load_file(...)`` call (v0.6 and main) lands here."""

    def _load_file(self, f: str) -> Dict[str, Any]:
        try:
            with open(f, "rb") as file:
                loaded = torch.load(file, map_location=torch.device("cpu"), weights_only=True)
        except Exception as e:  # anything torch.load raises: the file is not usable
            refused = _refused_global(str(e))
            if refused:
                raise WeightsFileError(
                    f, f"refused type {refused}: the file holds more than tensors and plain data"
                ) from None
            raise WeightsFileError(
                f, f"not a PyTorch checkpoint (torch.load: {type(e).__name__})"
            ) from None
        if not isinstance(loaded, dict):
            raise WeightsFileError(
                f, f"not a checkpoint: holds a {type(loaded).__name__}, not a dict"
            )
        return loaded


class BodyPartsCheckpointer(DetectionCheckpointer, _TorchWeightsOnly):
    """``DetectionCheckpointer`` that runs no code from the files it reads (module docstring).

    Same constructor and API (``load``, ``resume_or_load``, ``save``). After each ``load``,
    ``incompatible`` holds the missing / unexpected / wrong-shape keys of the last load (None when
    no model weights were read)."""

    incompatible: Optional[Any] = None
    _current_path: Optional[str] = None  # the file being loaded, for error messages

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if filename.endswith(".pkl"):
            with open(filename, "rb") as f:
                data = restricted_load(f, path=filename)
            return _zoo_pickle_to_checkpoint(data, filename)
        return super()._load_file(filename)

    def _load_model(self, checkpoint: Dict[str, Any]) -> Any:
        if not isinstance(checkpoint.get("model"), dict):
            raise WeightsFileError(
                self._current_path or "checkpoint", "not a checkpoint: no 'model' state dict"
            )
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible

    def load(self, path: str, checkpointables: Optional[List[str]] = None) -> Dict[str, Any]:
        self.incompatible = None
        self._current_path = path
        if path and "://" not in path and not os.path.isfile(path):
            raise WeightsFileError(path, "no such file")
        try:
            return super().load(path, checkpointables)
        finally:
            self._current_path = None


def uninitialized_keys(model: nn.Module, incompatible: Any) -> List[str]:
    """State-dict keys of ``model`` that the last load left at their initial values: missing
    and wrong-shape keys, less Detectron2's ``pixel_mean`` / ``pixel_std`` (set from the config)
    and the part losses' ``class_weights`` (training-only)."""
    if incompatible is None:
        return sorted(model.state_dict().keys())
    keys = set(incompatible.missing_keys) | {
        k for k, *_ in getattr(incompatible, "incorrect_shapes", ())
    }
    ignore = ("pixel_mean", "pixel_std", "class_weights", "num_batches_tracked")
    return sorted(k for k in keys if k.rsplit(".", 1)[-1] not in ignore)


def _module_names(keys: Sequence[str], depth: int = 2) -> List[str]:
    out: List[str] = []
    for key in keys:
        parts = key.split(".")[:-1] or [key]
        name = ".".join(parts[:depth])
        if name not in out:
            out.append(name)
    return out


def load_weights(model: nn.Module, weights: str, *, allow_partial: bool = False) -> Dict[str, Any]:
    """Load ``weights`` into ``model`` for inference (``model`` may be DDP-wrapped).

    Raises:
        WeightsFileError: no such file, not a checkpoint, or unsafe content.
        PartialWeightsError: the checkpoint leaves parameters uninitialised (unless
            ``allow_partial``, then a warning naming them).
    """
    if not weights:  # an untrained model, asked for (the tools warn)
        return {}
    checkpointer = BodyPartsCheckpointer(model)
    extra = checkpointer.load(weights, checkpointables=[])
    missing = uninitialized_keys(checkpointer.model, checkpointer.incompatible)
    if missing:
        error = PartialWeightsError(weights, _module_names(missing), len(missing))
        if not allow_partial:
            raise error
        logger.warning("--allow-partial-weights: %s", error)
    return extra
