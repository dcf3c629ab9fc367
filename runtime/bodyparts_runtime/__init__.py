"""bodyparts-runtime: an exported bodyparts part model (ONNX) run with numpy, OpenCV and ONNX
Runtime only, into the JSON record of ``tools/demo.py --json`` (:class:`Runtime`); person ids
across frames (:mod:`bodyparts_runtime.tracking`)."""

__all__ = ["Runtime", "ExportFolderError", "PersonTracker", "id_color"]
__version__ = "0.1.0"


def __getattr__(name):
    # imported on first use: ``bodyparts_runtime.tracking`` (which bodyparts' drawing imports)
    # does not load ONNX Runtime and OpenCV
    if name in ("Runtime", "ExportFolderError"):
        from . import model

        return getattr(model, name)
    if name in ("PersonTracker", "id_color"):
        from . import tracking

        return getattr(tracking, name)
    raise AttributeError(f"module 'bodyparts_runtime' has no attribute {name!r}")
