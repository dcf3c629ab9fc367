from . import builtin  # noqa: F401  (registers the built-in datasets)
from .generic import (  # noqa: F401
    bodyparts_metadata,
    load_bodyparts_json,
    register_bodyparts_json,
    save_bodyparts_json,
)
from .pascal_panoptic_parts import (  # noqa: F401
    load_pascal_panoptic_parts,
    load_ppp_classes,
    ppp_metadata,
    register_all_pascal_panoptic_parts,
)
from .synthetic import (  # noqa: F401
    datasets_root,
    register_synthetic_from_cfg,
    register_synthetic_people,
)
