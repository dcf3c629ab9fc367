"""What the web page needs to run an exported model in the browser (onnxruntime-web): the export
folder's two files, checked at start-up, and ONNX Runtime Web's own files.

The export folder is a ``tools/export_model.py --format onnx`` output of a per-person part model
(R-CNN kind): ``export_info.json`` and the model file it names (``model.onnx``). Only these two
files are served, never the rest of the folder. ONNX Runtime Web comes from npm
(``bodyparts/serving/web/package.json``, installed by ``scripts/setup_browser.sh``); the page loads
``ort.min.js`` (WebAssembly and WebGPU), which loads its WebAssembly module
(``ort-wasm-simd-threaded.jsep.mjs`` and ``.wasm``) from the same folder.
"""

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Optional

__all__ = ["BrowserModel", "BrowserModelError", "ORT_DIST_DIR", "ORT_FILES", "ort_files"]

WEB_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
ORT_DIST_DIR = os.path.join(WEB_DIR, "node_modules", "onnxruntime-web", "dist")
# the ONNX Runtime Web files the page uses, with their media types
ORT_FILES = {
    "ort.min.js": "text/javascript",
    "ort-wasm-simd-threaded.jsep.mjs": "text/javascript",
    "ort-wasm-simd-threaded.jsep.wasm": "application/wasm",
}
INFO_FILE = "export_info.json"


class BrowserModelError(ValueError):
    """An export folder the page cannot run, or ONNX Runtime Web missing (the message says why)."""


def ort_files(directory: str = ORT_DIST_DIR) -> Optional[Dict[str, str]]:
    """{file name: path} of :data:`ORT_FILES` in ``directory``; None when any is missing."""
    paths = {name: os.path.join(directory, name) for name in ORT_FILES}
    return paths if all(os.path.isfile(p) for p in paths.values()) else None


@dataclass(frozen=True)
class BrowserModel:
    """An export folder checked for the page: ``model_path`` (the file ``export_info.json`` names)
    and ``info`` (its contents)."""

    directory: str
    model_path: str
    info: Dict[str, Any]

    @classmethod
    def load(cls, directory: str) -> "BrowserModel":
        """Check ``directory`` as the Python runtime (runtime/bodyparts_runtime) does; raises
        :class:`BrowserModelError` saying what is wrong."""
        if not os.path.isdir(directory):
            raise BrowserModelError(f"{directory}: no such folder (an export folder is expected)")
        info_path = os.path.join(directory, INFO_FILE)
        if not os.path.isfile(info_path):
            raise BrowserModelError(f"{directory}: no {INFO_FILE}; not a bodyparts export folder")
        try:
            with open(info_path) as f:
                info = json.load(f)
        except (OSError, ValueError) as e:
            raise BrowserModelError(f"{info_path}: not readable as JSON ({e})") from None
        if not isinstance(info, dict):
            raise BrowserModelError(f"{info_path}: not an export description (a JSON object)")
        missing = [
            k for k in ("file", "outputs", "min_size_test", "max_size_test") if k not in info
        ]
        if missing:
            raise BrowserModelError(f"{info_path}: no {', '.join(missing)}; not a bodyparts export")
        if info.get("format") != "onnx":
            raise BrowserModelError(
                f"{info_path}: format {info.get('format')!r}; the page runs ONNX exports "
                "(tools/export_model.py --format onnx)"
            )
        if info.get("kind") != "instances":
            raise BrowserModelError(
                f"{info_path}: a {info.get('kind')!r} model; the page runs the per-person part "
                "models (R-CNN kind)"
            )
        name = info["file"]
        if not isinstance(name, str) or os.path.basename(name) != name or name in ("", ".", ".."):
            raise BrowserModelError(f"{info_path}: file {name!r} is not a file name in the folder")
        model_path = os.path.join(directory, name)
        if not os.path.isfile(model_path):
            raise BrowserModelError(f"{model_path}: no such file (named by {info_path})")
        return cls(os.path.abspath(directory), os.path.abspath(model_path), info)
