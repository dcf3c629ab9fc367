"""Start-up hook that makes the import order irrelevant with the pure-Python Detectron2 v0.6 build.

Detectron2 v0.6 cannot be imported on today's libraries without the run-time fixes of
``bodyparts.compat`` (its ``_C`` extension, Pillow's ``Image.LINEAR``): ``import detectron2.data``
before ``import bodyparts`` used to fail with ``module 'PIL.Image' has no attribute 'LINEAR'``.

``scripts/setup_env.sh`` installs a one-line ``bodyparts-startup.pth`` into the environment's
site-packages **only when the installed Detectron2 is the pure-Python build** (never for upstream
main, which needs no fixes). Python runs that line at start-up; it calls :func:`install`, which
adds a finder to ``sys.meta_path`` and nothing else (no import of torch or Detectron2). When a
program first imports ``detectron2``, the finder lets Detectron2's ``__init__`` run, then imports
``bodyparts`` (whose first statement applies the fixes, :func:`bodyparts.compat.prepare_detectron2`)
and removes itself. Whatever the program imports next (``detectron2.data``, ``detectron2.modeling``)
then works, in any order.
"""

import importlib.util
import sys
from importlib.abc import MetaPathFinder

__all__ = ["install"]


class _PrepareDetectron2OnImport(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "detectron2":
            return None
        sys.meta_path.remove(self)  # once: the real finders answer from now on
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or "bodyparts" in sys.modules:
            return spec  # not installed, or bodyparts is the one importing it (it prepares itself)
        exec_module = spec.loader.exec_module

        def exec_then_prepare(module):
            exec_module(module)
            import bodyparts  # noqa: F401  (prepares Detectron2 before anything else uses it)

        spec.loader.exec_module = exec_then_prepare
        return spec


def install() -> None:
    """Add the finder once (idempotent); a no-op when Detectron2 is already imported."""
    if "detectron2" in sys.modules:
        return
    if not any(isinstance(f, _PrepareDetectron2OnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PrepareDetectron2OnImport())
