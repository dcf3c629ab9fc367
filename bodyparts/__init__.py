"""bodyparts: multi-person body-part parsing on Detectron2.

Importing the package first prepares Detectron2 (see :mod:`bodyparts.compat`), then registers the
built-in datasets. Import it before ``detectron2.data`` / ``detectron2.modeling`` when Detectron2 is
the pure-Python v0.6 build.
"""

from .compat import prepare_detectron2 as _prepare_detectron2

_prepare_detectron2()

# The order of these imports matters: keep it (isort off).
# isort: off
from . import compat  # noqa: E402,F401
from .config import add_bodyparts_config  # noqa: E402,F401
from .taxonomy import get_keypoint_taxonomy, get_part_taxonomy  # noqa: E402,F401
from . import data  # noqa: E402,F401  (registers the built-in datasets)
from . import modeling  # noqa: E402,F401  (registers BodyPartROIHeads and the part heads)
# isort: on

__version__ = "0.1.0"
