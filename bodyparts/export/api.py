"""Export a model to TorchScript or ONNX, load the file back, compare it with the eager model.

The exported model takes one image, float32 (3, H, W) in ``INPUT.FORMAT`` channel order, pixel
values 0-255, already resized as Detectron2's ``DefaultPredictor`` does (shortest edge to
``INPUT.MIN_SIZE_TEST``, longest at most ``INPUT.MAX_SIZE_TEST``; :func:`prepare_image`), and
returns a tuple of tensors named in ``export_info.json`` (:mod:`bodyparts.export.outputs`), in the
input's pixel coordinates. Scaling to the original image and pasting the ROI maps stay outside
the file, as in Detectron2's exports (:func:`bodyparts.export.outputs_to_instances`).

Files written to the output directory: ``model.ts`` (TorchScript, plus Detectron2's IR dumps
``model_ts_code.txt``, ``model_ts_IR.txt``, ``model_ts_IR_inlined.txt``, ``model.txt``) or
``model.onnx`` (ONNX, opset 17, TorchScript-based ``torch.onnx`` exporter), and
``export_info.json`` (format, method, input, output names and shapes, label names, versions,
the parity check on the sample image). Each file is written to a temporary name first, then
moved into place.
"""

import json
import logging
import os
import tempfile
import warnings
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import detectron2
import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data.detection_utils import read_image
from detectron2.modeling import build_model
from torch import Tensor, nn

from .. import __version__
from ..checkpoint import load_weights
from ..compat import import_detectron2_export
from ..taxonomy import get_keypoint_taxonomy, get_part_taxonomy
from ..utils.predictor import model_input, seeded_if_untrained, test_resize
from .adapters import (
    ExportError,
    check_exportable,
    eager_instances,
    eager_outputs,
    scripting_module,
    tracing_adapter,
    tracing_patches,
)
from .outputs import (
    INSTANCE_OUTPUTS,
    OUTPUT_DESCRIPTIONS,
    SEMANTIC_OUTPUTS,
    decode_keypoints,
    instance_output_names,
)

__all__ = [
    "ONNX_OPSET",
    "export_model",
    "export_metadata",
    "prepare_image",
    "build_model_for_export",
    "ExportedModel",
    "load_exported",
    "max_differences",
]

logger = logging.getLogger(__name__)

# ONNX opset: 16 is the first whose RoiAlign has half_pixel coordinates (Detectron2's ROIAlignV2).
ONNX_OPSET = 17
FILE_NAMES = {"torchscript": "model.ts", "onnx": "model.onnx"}
INFO_FILE = "export_info.json"


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
    """``write(tmp_path)``, then move the file to ``path`` (an old file stays until it is done)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", suffix=os.path.basename(path), dir=folder)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; keep the usual permissions
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def export_metadata(cfg: CfgNode) -> Dict[str, Any]:
    """What a user of the file needs from the config: input format and test resize, label names."""
    meta: Dict[str, Any] = {
        "meta_architecture": cfg.MODEL.META_ARCHITECTURE,
        "input_format": cfg.INPUT.FORMAT,
        "min_size_test": cfg.INPUT.MIN_SIZE_TEST,
        "max_size_test": cfg.INPUT.MAX_SIZE_TEST,
        "part_taxonomy": cfg.BODYPARTS.PART_TAXONOMY,
        "part_labels": get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY).label_names,
    }
    node = cfg.MODEL.ROI_BODYPART_HEAD
    if cfg.MODEL.KEYPOINT_ON or (cfg.MODEL.BODYPART_ON and node.KEYPOINTS_FROM_PARTS):
        meta["keypoint_taxonomy"] = cfg.BODYPARTS.KEYPOINT_TAXONOMY
        meta["keypoint_names"] = list(get_keypoint_taxonomy(cfg.BODYPARTS.KEYPOINT_TAXONOMY).names)
    return meta


def prepare_image(cfg: CfgNode, image: Union[str, np.ndarray]) -> Tuple[Tensor, Tuple[int, int]]:
    """The model input for an image file (read in ``INPUT.FORMAT``) or a BGR uint8 (H, W, 3)
    array, resized as ``DefaultPredictor`` does. Returns (float32 (3, h, w), original (H, W))."""
    if isinstance(image, str):
        if not os.path.isfile(image):
            raise FileNotFoundError(f"sample image {image!r} does not exist")
        try:
            array = read_image(image, format=cfg.INPUT.FORMAT)
        except Exception as e:
            raise ValueError(f"sample image {image!r} cannot be read as an image: {e}") from None
    else:
        array = np.asarray(image)
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"expected a BGR image of shape (H, W, 3), got {array.shape}")
        if cfg.INPUT.FORMAT == "RGB":
            array = array[:, :, ::-1]
    inputs = model_input(array, test_resize(cfg))
    tensor, height, width = inputs["image"], inputs["height"], inputs["width"]
    return tensor, (height, width)


def build_model_for_export(cfg: CfgNode, *, allow_partial_weights: bool = False) -> nn.Module:
    """``build_model(cfg)`` in eval mode with ``MODEL.WEIGHTS`` loaded (a warning without) by
    :func:`bodyparts.checkpoint.load_weights` (WeightsFileError, PartialWeightsError)."""
    with seeded_if_untrained(cfg):  # MODEL.WEIGHTS "": the same random weights each time
        model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        load_weights(model, cfg.MODEL.WEIGHTS, allow_partial=allow_partial_weights)
    else:
        logger.warning("MODEL.WEIGHTS is empty: exporting an untrained model (random weights)")
    return model


def max_differences(expected: Dict[str, Tensor], actual: Dict[str, Tensor]) -> Dict[str, float]:
    """Largest absolute difference per output name (inf where the shapes differ); keypoints also
    as ``keypoints_xy`` (pixels) and ``keypoints_score``."""
    out = {}
    for name, value in expected.items():
        other = torch.as_tensor(actual[name]).to(value.device)
        if tuple(other.shape) != tuple(value.shape):
            out[name] = float("inf")
            continue
        if value.numel() == 0:
            out[name] = 0.0
            continue
        diff = (other.double() - value.double()).abs()
        out[name] = float(diff.max())
        if name == "keypoints":
            out["keypoints_xy"] = float(diff[..., :2].max())
            out["keypoints_score"] = float(diff[..., 2].max())
    return out


def _output_names(model: nn.Module, kind: str, image: Tensor, format: str) -> List[str]:
    if kind == "semantic":
        return list(SEMANTIC_OUTPUTS)
    return instance_output_names(
        eager_instances(model, image), keypoints_as_heatmaps=format == "onnx"
    )


def _ignore_tracing_warnings() -> None:
    """Inside ``warnings.catch_warnings()``: hide the tracer and deprecation warnings that every
    Detectron2 trace prints (shape-to-int casts in asserts, ``torch.jit`` deprecation notices);
    the parity check on the sample image is what tells whether the trace is right."""
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
    warnings.filterwarnings("ignore", message=r".*deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=r".*deprecated", category=DeprecationWarning)
    # the ONNX exporter's note on advanced indexing with negative indices: the indices of these
    # graphs come from nonzero() and are never negative
    warnings.filterwarnings(
        "ignore", message=r"Exporting aten::index operator of advanced indexing"
    )
    # chosen on purpose: the torch.export-based exporter fails on Detectron2's ImageList padding
    warnings.filterwarnings(
        "ignore", message=r"You are using the legacy TorchScript-based ONNX export"
    )


def export_model(
    model: nn.Module,
    image: Tensor,
    output_dir: str,
    *,
    format: str = "torchscript",
    method: str = "tracing",
    metadata: Optional[Dict[str, Any]] = None,
    opset: int = ONNX_OPSET,
) -> Dict[str, Any]:
    """Export ``model`` (eval mode) to ``output_dir``, check the file against the eager model on
    ``image`` and return what is written to ``export_info.json``.

    Args:
        model: a part model (GeneralizedRCNN / BodyPartsRCNN) or a semantic segmenter.
        image: float32 (3, H, W) sample input (see the module docstring); tracing records the
            graph on it, and the parity check runs on it.
        format: "torchscript" or "onnx".
        method: "tracing" or "scripting" (TorchScript only).
        metadata: extra entries for ``export_info.json`` (:func:`export_metadata`).
    Raises:
        ExportError: the model, or a part of it, cannot be exported so (the message says which
            part and why).
    """
    kind = check_exportable(model, format, method)
    model.eval()
    image = image.to(model.device)
    names = _output_names(model, kind, image, format)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, FILE_NAMES[format])
    try:
        with warnings.catch_warnings():
            _ignore_tracing_warnings()
            _write_model(model, kind, image, names, path, format, method, opset)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(
            f"{format} export by {method} of {type(model).__name__} failed: {e}"
        ) from e
    finally:
        model.eval()  # torch.onnx.export restores the adapter's (training) mode on the model
    info: Dict[str, Any] = {
        "format": format,
        "method": method,
        "file": FILE_NAMES[format],
        "kind": kind,
        "model_class": type(model).__name__,
        "device": str(model.device),
        "input": {
            "name": "image",
            "shape": "(3, H, W)",
            "dtype": "float32",
            "description": "one image, pixel values 0-255, after the test resize",
        },
        "outputs": [{"name": n, "description": OUTPUT_DESCRIPTIONS[n]} for n in names],
        **(
            {"onnx_opset": opset, "onnx_exporter": "torch.onnx.export(dynamo=False)"}
            if format == "onnx"
            else {}
        ),
        "versions": _versions(format),
        **(metadata or {}),
    }
    exported = ExportedModel(output_dir, info=info)
    expected = dict(zip(names, eager_outputs(model, image, names)))
    if "keypoint_heatmaps" in expected:
        expected["keypoints"] = decode_keypoints(expected["keypoint_heatmaps"], expected["boxes"])
    actual = exported(image)
    info["sample_check"] = {
        "input_size": list(image.shape[1:]),
        "detections": int(expected["boxes"].shape[0]) if "boxes" in expected else None,
        "max_abs_diff": max_differences(expected, actual),
    }
    _write_atomically(os.path.join(output_dir, INFO_FILE), lambda tmp: _dump_json(info, tmp))
    return info


def _write_model(
    model: nn.Module,
    kind: str,
    image: Tensor,
    names: List[str],
    path: str,
    format: str,
    method: str,
    opset: int,
) -> None:
    if format == "onnx":
        adapter = tracing_adapter(model, image, names)
        if kind == "semantic":
            axes = {"sem_seg": {1: "height", 2: "width"}}
        else:
            axes = {n: {0: "detections"} for n in names}

        def write_onnx(tmp: str) -> None:
            with tracing_patches(keypoints_as_heatmaps=True):
                torch.onnx.export(
                    adapter,
                    (image,),
                    tmp,
                    dynamo=False,
                    opset_version=opset,
                    input_names=["image"],
                    output_names=names,
                    dynamic_axes={"image": {1: "height", 2: "width"}, **axes},
                )

        _write_atomically(path, write_onnx)
        return
    if method == "tracing":
        adapter = tracing_adapter(model, image, names)
        with tracing_patches():
            module = torch.jit.trace(adapter, (image,), check_trace=False)
    else:
        module = scripting_module(model, [INSTANCE_OUTPUTS[n] for n in names])
    _write_atomically(path, lambda tmp: torch.jit.save(module, tmp))
    import_detectron2_export().dump_torchscript_IR(module, os.path.dirname(path))


def _dump_json(obj: Any, path: str) -> None:
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)


def _versions(format: str) -> Dict[str, str]:
    out = {
        "torch": torch.__version__,
        "detectron2": detectron2.__version__,
        "bodyparts": __version__,
    }
    if format == "onnx":
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    return out


class ExportedModel:
    """An exported model loaded from its directory: ``model(image)`` -> {output name: tensor}.

    TorchScript files run with ``torch.jit.load``, ONNX files with ONNX Runtime (CPU). For ONNX
    part models, ``keypoints`` are decoded from the ``keypoint_heatmaps`` output
    (:func:`bodyparts.export.outputs.decode_keypoints`).
    """

    def __init__(
        self, directory: str, *, num_threads: Optional[int] = None, info: Optional[Dict] = None
    ):
        """
        Args:
            directory: an output directory of :func:`export_model`.
            num_threads: ONNX Runtime intra-op threads (default: its own); TorchScript uses
                ``torch.get_num_threads()``.
            info: the export info (default: read from ``export_info.json``).
        """
        if info is None:
            info_path = os.path.join(directory, INFO_FILE)
            if not os.path.isfile(info_path):
                raise FileNotFoundError(
                    f"{directory!r} has no {INFO_FILE}: not an export directory"
                )
            with open(info_path) as f:
                info = json.load(f)
        self.info = info
        self.output_names = [o["name"] for o in info["outputs"]]
        path = os.path.join(directory, info["file"])
        self.device = torch.device(info.get("device", "cpu"))  # a traced graph keeps its device
        if info["format"] == "torchscript":
            self._module = torch.jit.load(path, map_location=self.device)
            self._session = None
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            if num_threads:
                options.intra_op_num_threads = num_threads
                options.inter_op_num_threads = 1
            self._session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            self._module = None

    def run(self, image: Tensor) -> Tuple[Tensor, ...]:
        """The raw output tuple, in the order of ``output_names``."""
        if self._session is not None:
            outputs = self._session.run(None, {"image": image.detach().cpu().numpy()})
            return tuple(torch.from_numpy(o) for o in outputs)
        with torch.no_grad():
            return tuple(self._module(image.to(self.device)))

    def __call__(self, image: Tensor) -> Dict[str, Tensor]:
        """{output name: tensor} for one float32 (3, H, W) image (see the module docstring)."""
        named = dict(zip(self.output_names, self.run(image)))
        if "keypoint_heatmaps" in named and "keypoints" not in named:
            named["keypoints"] = decode_keypoints(named["keypoint_heatmaps"], named["boxes"])
        return named


def load_exported(directory: str, *, num_threads: Optional[int] = None) -> ExportedModel:
    """:class:`ExportedModel` of an export directory."""
    return ExportedModel(directory, num_threads=num_threads)
