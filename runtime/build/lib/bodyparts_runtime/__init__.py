"""bodyparts-runtime: an exported bodyparts part model (ONNX) run with numpy, OpenCV and ONNX
Runtime only, into the JSON record of ``tools/demo.py --json`` (:class:`Runtime`)."""

from .model import ExportFolderError, Runtime

__all__ = ["Runtime", "ExportFolderError"]
__version__ = "0.1.0"
