"""The bodyparts Trainer: Detectron2's DefaultTrainer with mappers and evaluators chosen by metadata."""
import logging
import os
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Union

from detectron2.config import CfgNode, get_cfg
from detectron2.data import MetadataCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer, HookBase, default_setup
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, DatasetEvaluators

from ..compat import coco_evaluator_kwargs, ddp_without_device_ids_on_cpu
from ..config import add_bodyparts_config
from ..data.datasets.synthetic import register_synthetic_from_cfg
from ..data.mappers import BodyPartsDatasetMapper

__all__ = [
    "Trainer",
    "ClassWeightsHook",
    "setup_cfg",
    "build_mapper",
    "check_keypoint_config",
    "MAPPERS",
    "EVALUATORS",
    "build_coco_evaluator",
]

logger = logging.getLogger(__name__)

# metadata "data_format" -> mapper class (records of that format). Datasets without the key use
# Detectron2's own DatasetMapper.
MAPPERS: Dict[str, Callable] = {"bodyparts": BodyPartsDatasetMapper}


def build_coco_evaluator(cfg: CfgNode, dataset_name: str, output_dir: str) -> DatasetEvaluator:
    """COCO bbox / segm (silhouettes) / keypoints AP with pycocotools, tasks from the config."""
    parts = cfg.MODEL.BODYPART_ON
    tasks = ["bbox"]
    if cfg.MODEL.MASK_ON or (parts and cfg.MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS):
        tasks.append("segm")
    meta = MetadataCatalog.get(dataset_name)
    if cfg.MODEL.KEYPOINT_ON or (parts and cfg.MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS):
        dataset_kps = meta.get("keypoint_taxonomy", None)
        if dataset_kps == cfg.BODYPARTS.KEYPOINT_TAXONOMY:
            tasks.append("keypoints")
        else:  # no ground truth in the model's keypoints: keypoint AP is undefined there
            logger.info(
                f"{dataset_name}: keypoint taxonomy {dataset_kps!r} is not the model's "
                f"{cfg.BODYPARTS.KEYPOINT_TAXONOMY!r}; keypoint AP is not evaluated"
            )
    sigmas = meta.get("keypoint_oks_sigmas", ())
    return COCOEvaluator(
        dataset_name,
        tasks=tuple(tasks),
        distributed=True,
        output_dir=output_dir,
        kpt_oks_sigmas=tuple(cfg.TEST.KEYPOINT_OKS_SIGMAS) or tuple(sigmas),
        **coco_evaluator_kwargs(),
    )


# Meta-architectures that get image-level part maps / panoptic stuff maps from bodyparts records
# (Detectron2's own SemanticSegmentor / PanopticFPN included, so that the plain models train on the
# same data).
SEMANTIC_ARCHS = ("BodyPartsSemanticSegmentor", "SemanticSegmentor")
PANOPTIC_ARCHS = ("BodyPartsPanopticFPN", "PanopticFPN")


def build_bodyparts_evaluators(cfg: CfgNode, dataset_name: str, output_dir: str) -> List[DatasetEvaluator]:
    """By model kind: the image-level parsing metrics (semantic part segmenter); COCO AP (boxes,
    silhouettes, keypoints) and, with the part branch, the parsing metrics (instance models); plus
    PQ / PartPQ for the part-aware panoptic model."""
    from ..evaluation import build_parsing_evaluator

    if cfg.MODEL.META_ARCHITECTURE in SEMANTIC_ARCHS:
        return [build_parsing_evaluator(cfg, dataset_name, output_dir)]
    evaluators = [build_coco_evaluator(cfg, dataset_name, output_dir)]
    if cfg.MODEL.BODYPART_ON:
        evaluators.append(build_parsing_evaluator(cfg, dataset_name, output_dir))
    if cfg.MODEL.META_ARCHITECTURE in PANOPTIC_ARCHS:
        from ..evaluation.panoptic_evaluation import build_part_panoptic_evaluator

        evaluators.append(build_part_panoptic_evaluator(cfg, dataset_name, output_dir))
    return evaluators


# metadata "evaluator_type" -> builder(cfg, dataset_name, output_dir) returning evaluator(s)
EVALUATORS: Dict[str, Callable[[CfgNode, str, str], Union[DatasetEvaluator, List[DatasetEvaluator]]]] = {
    "bodyparts": build_bodyparts_evaluators,
    "coco": build_coco_evaluator,
}


def _data_format(dataset_names: List[str]) -> str:
    formats = {MetadataCatalog.get(n).get("data_format", "detectron2") for n in dataset_names}
    if len(formats) > 1:
        raise ValueError(f"datasets {dataset_names} mix record formats {sorted(formats)}; train them separately")
    return formats.pop()


def _arch_mapper(meta_architecture: str) -> Optional[Callable]:
    """The mapper of bodyparts records for models that need other targets than the instance models
    (image-level part maps; panoptic stuff maps), by META_ARCHITECTURE; None for the others."""
    if meta_architecture in SEMANTIC_ARCHS:
        from ..data.semantic_mapper import BodyPartsSemSegMapper

        return BodyPartsSemSegMapper
    if meta_architecture in PANOPTIC_ARCHS:
        from ..data.panoptic_mapper import BodyPartsPanopticMapper

        return BodyPartsPanopticMapper
    return None


def build_mapper(cfg: CfgNode, dataset_names: List[str], is_train: bool):
    """The mapper for ``dataset_names`` (by their metadata ``data_format`` and, for bodyparts records,
    the model kind), or None for Detectron2's own DatasetMapper."""
    data_format = _data_format(dataset_names)
    cls = MAPPERS.get(data_format)
    if data_format == "bodyparts":
        cls = _arch_mapper(cfg.MODEL.META_ARCHITECTURE) or cls
    return cls(cfg, is_train) if cls is not None else None


class ClassWeightsHook(HookBase):
    """Before the first iteration, sets the class weights of the part losses (``CLASS_BALANCE``
    from ``DATASETS.TRAIN``'s pixel counts, or ``CLASS_WEIGHTS``) in the model's persistent
    buffers, so that they are saved with every checkpoint. When training resumes from a checkpoint
    that carries them, they are kept and the training set is not read for them."""

    def __init__(self, cfg: CfgNode):
        self._cfg = cfg

    def before_train(self) -> None:
        from ..modeling.roi_heads.class_weights import init_class_weights

        model = self.trainer.model
        model = model.module if hasattr(model, "module") else model  # DDP
        # start_iter > 0 only after DefaultTrainer.resume_or_load resumed from a checkpoint
        init_class_weights(model, self._cfg, keep_loaded=self.trainer.start_iter > 0)


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` that also trains on CPU with several processes (gloo DDP), and picks the
    dataset mapper and evaluators from each dataset's metadata (``data_format``, ``evaluator_type``).
    Writes metrics.json, tensorboard events and checkpoints to ``cfg.OUTPUT_DIR`` like Detectron2.
    The class weights of the part losses are computed when training starts
    (:class:`ClassWeightsHook`), never when the model is built."""

    def __init__(self, cfg: CfgNode):
        with ddp_without_device_ids_on_cpu(cfg.MODEL.DEVICE):
            super().__init__(cfg)

    def build_hooks(self) -> List[HookBase]:
        """:class:`ClassWeightsHook`, then Detectron2's default hooks (first, so that the weights
        are set before any other hook or iteration runs)."""
        return [ClassWeightsHook(self.cfg), *super().build_hooks()]

    @classmethod
    def build_train_loader(cls, cfg: CfgNode):
        return build_detection_train_loader(cfg, mapper=build_mapper(cfg, list(cfg.DATASETS.TRAIN), True))

    @classmethod
    def build_test_loader(cls, cfg: CfgNode, dataset_name: str):
        return build_detection_test_loader(cfg, dataset_name, mapper=build_mapper(cfg, [dataset_name], False))

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str = None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        evaluator_type = MetadataCatalog.get(dataset_name).get("evaluator_type", None)
        if evaluator_type not in EVALUATORS:
            raise KeyError(
                f"dataset {dataset_name!r} has evaluator_type {evaluator_type!r}; "
                f"bodyparts knows {sorted(EVALUATORS)}"
            )
        evaluators = EVALUATORS[evaluator_type](cfg, dataset_name, output_folder)
        return evaluators if isinstance(evaluators, DatasetEvaluator) else DatasetEvaluators(evaluators)

    @classmethod
    def test_with_TTA(cls, cfg: CfgNode, model):
        """Evaluate with test-time augmentation (``TEST.AUG``): multi-scale + flip for the semantic
        part segmenter (``SemSegTTA``), flip of the part outputs for the instance part model
        (``PartFlipTTA``). Results keys get a ``_TTA`` suffix; outputs go to ``inference_TTA/``."""
        from ..modeling.test_time_augmentation import PartFlipTTA, SemSegTTA
        from ..taxonomy import get_part_taxonomy

        if cfg.MODEL.META_ARCHITECTURE in SEMANTIC_ARCHS:
            wrapped = SemSegTTA(cfg, model)
        else:
            inner = model.module if hasattr(model, "module") else model
            wrapped = PartFlipTTA(inner, get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY).flip_lut())
        evaluators = [
            cls.build_evaluator(cfg, name, os.path.join(cfg.OUTPUT_DIR, "inference_TTA", name))
            for name in cfg.DATASETS.TEST
        ]
        results = cls.test(cfg, wrapped, evaluators)
        return OrderedDict((k + "_TTA", v) for k, v in results.items())


def check_tta_config(cfg: CfgNode, source: str = "config") -> None:
    """``TEST.AUG.ENABLED`` needs a model with test-time augmentation: the semantic part segmenter,
    or an instance model with the part branch (flip only). Raises ValueError naming the key."""
    if not cfg.TEST.AUG.ENABLED:
        return
    arch = cfg.MODEL.META_ARCHITECTURE
    if arch in SEMANTIC_ARCHS or (arch in ("BodyPartsRCNN", "GeneralizedRCNN") and cfg.MODEL.BODYPART_ON):
        return
    raise ValueError(
        f"{source}: TEST.AUG.ENABLED True, but MODEL.META_ARCHITECTURE {arch!r} has no test-time "
        "augmentation in bodyparts (semantic part segmenter: multi-scale + flip; BodyPartsRCNN with "
        "MODEL.BODYPART_ON: flip of the part outputs)"
    )


def check_keypoint_config(cfg: CfgNode, source: str = "config") -> None:
    """With keypoints on, ``MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS`` must equal the number of keypoints
    of ``BODYPARTS.KEYPOINT_TAXONOMY`` (raises ValueError naming both keys)."""
    from ..taxonomy import get_keypoint_taxonomy

    node = cfg.MODEL.ROI_BODYPART_HEAD
    if not (cfg.MODEL.KEYPOINT_ON or (cfg.MODEL.BODYPART_ON and node.KEYPOINTS_FROM_PARTS)):
        return
    kps = get_keypoint_taxonomy(cfg.BODYPARTS.KEYPOINT_TAXONOMY)
    if cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS != kps.num_keypoints:
        raise ValueError(
            f"{source}: MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS={cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS} "
            f"but BODYPARTS.KEYPOINT_TAXONOMY={kps.name!r} has {kps.num_keypoints} keypoints"
        )


def setup_cfg(args, *, for_launch_only: bool = False) -> CfgNode:
    """Build the config from ``--config-file`` and trailing opts; register the synthetic splits.

    Raises:
        KeyError / ValueError naming the config file and the bad key.
    """
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    try:
        cfg.merge_from_file(args.config_file)
    except KeyError as e:
        raise KeyError(f"{args.config_file}: {e.args[0] if e.args else e} (typo in a config key?)") from None
    try:
        cfg.merge_from_list(args.opts)
    except (KeyError, AssertionError) as e:  # yacs asserts on unknown keys in merge_from_list
        raise KeyError(f"command-line opts {args.opts}: {e.args[0] if e.args else e}") from None
    except ValueError as e:
        raise ValueError(f"command-line opts {args.opts}: {e}") from None
    check_keypoint_config(cfg, args.config_file)
    check_tta_config(cfg, args.config_file)
    cfg.freeze()
    if not for_launch_only:
        default_setup(cfg, args)
        register_synthetic_from_cfg(cfg)
    return cfg
