"""Export of bodyparts models to TorchScript (tracing or scripting) and ONNX (tracing), in
Detectron2's conventions (``TracingAdapter``, ``scripting_with_instances``), with the per-person
part outputs as plain tensors. See ``tools/export_model.py`` and README.md, "Export"."""

from .adapters import FORMATS, METHODS, ExportError, check_exportable, model_kind  # noqa: F401
from .api import (  # noqa: F401
    ONNX_OPSET,
    ExportedModel,
    build_model_for_export,
    export_metadata,
    export_model,
    load_exported,
    max_differences,
    prepare_image,
)
from .outputs import (  # noqa: F401
    INSTANCE_OUTPUTS,
    OUTPUT_DESCRIPTIONS,
    decode_keypoints,
    outputs_to_instances,
)
