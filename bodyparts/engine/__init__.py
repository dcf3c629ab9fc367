from .launch import launch  # noqa: F401
from .trainer import (  # noqa: F401
    EVALUATORS,
    MAPPERS,
    ClassWeightsHook,
    Trainer,
    build_coco_evaluator,
    build_mapper,
    get_rng_states,
    set_rng_states,
    setup_cfg,
)

__all__ = [
    "launch",
    "Trainer",
    "ClassWeightsHook",
    "setup_cfg",
    "build_mapper",
    "build_coco_evaluator",
    "MAPPERS",
    "EVALUATORS",
    "get_rng_states",
    "set_rng_states",
]
