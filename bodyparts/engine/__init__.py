from .launch import launch  # noqa: F401
from .trainer import EVALUATORS, MAPPERS, Trainer, build_coco_evaluator, setup_cfg  # noqa: F401
