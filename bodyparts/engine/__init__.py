from .launch import launch  # noqa: F401
from .trainer import EVALUATORS, MAPPERS, Trainer, build_coco_evaluator, build_mapper, setup_cfg  # noqa: F401
