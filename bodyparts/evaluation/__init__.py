"""Evaluators (Detectron2 ``DatasetEvaluator`` subclasses) and the pure metrics they use."""
from .parsing_evaluation import (  # noqa: F401
    BodyPartParsingEvaluator,
    build_parsing_evaluator,
    ground_truth_maps,
)
from .panoptic_evaluation import (  # noqa: F401
    PartPanopticEvaluator,
    build_part_panoptic_evaluator,
    evaluate_with_panoptic_parts,
)
from .parsing_metrics import (  # noqa: F401
    VOL_THRESHOLDS,
    ap_parsing,
    ap_region,
    ap_region_per_class,
    confusion_matrix,
    image_level_map,
    instance_iou_matrix,
    label_areas,
    parsing_true_positives,
    pcp,
    semantic_metrics,
    voc_ap,
)
from .partpq import PanopticStats, SceneClasses, panoptic_quality, segment_stats  # noqa: F401
