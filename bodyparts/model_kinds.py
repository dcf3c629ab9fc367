"""Model kinds: what bodyparts does with each kind of meta-architecture, in one registry.

A *model kind* says, for one family of meta-architectures, which dataset mapper reads bodyparts
records for it, which evaluators score it, which test-time augmentation wraps it and which export
adapter exports it. The registry is keyed on the meta-architecture **class** and looked up along
the class's MRO, so a subclass (``BodyPartsRCNN`` of ``GeneralizedRCNN``, a user's own
``MyRCNN(BodyPartsRCNN)``) gets its parent's kind without registering anything; nothing compares
``MODEL.META_ARCHITECTURE`` strings.

Built-in kinds (registered below):

=========== ============================ ========================== ================= ==========
kind        meta-architectures           mapper (bodyparts records) evaluators        TTA
=========== ============================ ========================== ================= ==========
instances   GeneralizedRCNN (+ subclass) BodyPartsDatasetMapper     COCO (+ parsing)  part flip
semantic    SemanticSegmentor            BodyPartsSemSegMapper      parsing           scales+flip
panoptic    PanopticFPN                  BodyPartsPanopticMapper    COCO, parsing, PQ none
=========== ============================ ========================== ================= ==========

A new kind of model::

    from bodyparts.model_kinds import ModelKind, register_model_kind
    register_model_kind(MyMetaArch, ModelKind(name="mine", mapper=MyMapper,
                                              evaluators=my_evaluators))
"""

import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Union

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator
from detectron2.modeling import META_ARCH_REGISTRY, GeneralizedRCNN, PanopticFPN, SemanticSegmentor
from torch import nn

from .compat import coco_evaluator_kwargs
from .data.mappers import BodyPartsDatasetMapper
from .data.panoptic_mapper import BodyPartsPanopticMapper
from .data.semantic_mapper import BodyPartsSemSegMapper
from .evaluation import build_parsing_evaluator
from .evaluation.panoptic_evaluation import build_part_panoptic_evaluator
from .modeling.test_time_augmentation import PartFlipTTA, SemSegTTA
from .taxonomy import get_part_taxonomy

__all__ = [
    "ModelKind",
    "register_model_kind",
    "model_kind_of",
    "build_coco_evaluator",
    "PANOPTIC_EXPORT_REFUSAL",
]

logger = logging.getLogger(__name__)

EvaluatorsBuilder = Callable[[CfgNode, str, str], List[DatasetEvaluator]]


@dataclass(frozen=True)
class ModelKind:
    """What bodyparts does with one kind of model.

    Attributes:
        name: short name ("instances", "semantic", "panoptic", or a user's).
        mapper: class of the dataset mapper of bodyparts records, called ``mapper(cfg, is_train)``.
        evaluators: ``evaluators(cfg, dataset_name, output_dir) -> [DatasetEvaluator]``, for
            datasets whose metadata ``evaluator_type`` is "bodyparts".
        tta: ``tta(cfg, model) -> nn.Module`` test-time augmentation wrapper, or None (none).
        tta_needs_part_branch: the TTA only exists with ``MODEL.BODYPART_ON``.
        export: name of the export adapter in :mod:`bodyparts.export.adapters` ("instances",
            "semantic"), or None when the kind cannot be exported (``export_refusal`` says why).
        export_refusal: the reason, for the error message.
    """

    name: str
    mapper: Callable
    evaluators: EvaluatorsBuilder
    tta: Optional[Callable[[CfgNode, nn.Module], nn.Module]] = None
    tta_needs_part_branch: bool = False
    export: Optional[str] = None
    export_refusal: str = "no export adapter for this kind of model"


_MODEL_KINDS: Dict[type, ModelKind] = {}


def register_model_kind(meta_architecture: type, kind: ModelKind) -> None:
    """Register ``kind`` for ``meta_architecture`` and its subclasses (a later registration of a
    subclass takes precedence for it). Re-registering the same class replaces its kind."""
    if not isinstance(meta_architecture, type) or not issubclass(meta_architecture, nn.Module):
        raise TypeError(f"register_model_kind: {meta_architecture!r} is not an nn.Module class")
    _MODEL_KINDS[meta_architecture] = kind


def _meta_architecture_class(model: Union[CfgNode, nn.Module, type]) -> type:
    if isinstance(model, CfgNode):
        return META_ARCH_REGISTRY.get(model.MODEL.META_ARCHITECTURE)
    if isinstance(model, nn.Module):
        return type(model.module if hasattr(model, "module") else model)  # DDP-wrapped
    return model


def model_kind_of(model: Union[CfgNode, nn.Module, type]) -> ModelKind:
    """The kind of a config's ``MODEL.META_ARCHITECTURE``, of a model (DDP-wrapped or not) or of
    a meta-architecture class: the registration of the nearest class in its MRO.

    Raises:
        KeyError naming the class when no class of its MRO is registered.
    """
    cls = _meta_architecture_class(model)
    for base in cls.__mro__:
        if base in _MODEL_KINDS:
            return _MODEL_KINDS[base]
    known = ", ".join(sorted(c.__name__ for c in _MODEL_KINDS))
    raise KeyError(
        f"{cls.__name__} is not a kind of model bodyparts knows ({known} and their subclasses); "
        "register it with bodyparts.model_kinds.register_model_kind"
    )


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


def _instance_evaluators(
    cfg: CfgNode, dataset_name: str, output_dir: str
) -> List[DatasetEvaluator]:
    """COCO AP (boxes, silhouettes, keypoints) and, with the part branch, the parsing metrics."""
    evaluators = [build_coco_evaluator(cfg, dataset_name, output_dir)]
    if cfg.MODEL.BODYPART_ON:
        evaluators.append(build_parsing_evaluator(cfg, dataset_name, output_dir))
    return evaluators


def _semantic_evaluators(
    cfg: CfgNode, dataset_name: str, output_dir: str
) -> List[DatasetEvaluator]:
    return [build_parsing_evaluator(cfg, dataset_name, output_dir)]


def _panoptic_evaluators(
    cfg: CfgNode, dataset_name: str, output_dir: str
) -> List[DatasetEvaluator]:
    return _instance_evaluators(cfg, dataset_name, output_dir) + [
        build_part_panoptic_evaluator(cfg, dataset_name, output_dir)
    ]


def _part_flip_tta(cfg: CfgNode, model: nn.Module) -> nn.Module:
    inner = model.module if hasattr(model, "module") else model
    return PartFlipTTA(inner, get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY).flip_lut())


PANOPTIC_EXPORT_REFUSAL = (
    "the panoptic merge cannot be exported. Detectron2's combine_semantic_and_instance_outputs "
    "and bodyparts' part_panoptic_map loop over a data-dependent number of segments, read values "
    "with .item() and return segments_info as Python dicts: tracing records one fixed path with "
    "tensor outputs only, and TorchScript cannot compile the dicts of mixed types. Export the "
    "per-person part model (BodyPartsRCNN) or the semantic part segmenter instead."
)

register_model_kind(
    GeneralizedRCNN,
    ModelKind(
        name="instances",
        mapper=BodyPartsDatasetMapper,
        evaluators=_instance_evaluators,
        tta=_part_flip_tta,
        tta_needs_part_branch=True,
        export="instances",
    ),
)
register_model_kind(
    SemanticSegmentor,
    ModelKind(
        name="semantic",
        mapper=BodyPartsSemSegMapper,
        evaluators=_semantic_evaluators,
        tta=SemSegTTA,
        export="semantic",
    ),
)
register_model_kind(
    PanopticFPN,
    ModelKind(
        name="panoptic",
        mapper=BodyPartsPanopticMapper,
        evaluators=_panoptic_evaluators,
        export=None,
        export_refusal=PANOPTIC_EXPORT_REFUSAL,
    ),
)
