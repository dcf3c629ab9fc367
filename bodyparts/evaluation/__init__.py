"""Evaluators (Detectron2 ``DatasetEvaluator`` subclasses) and the pure metrics they use."""

from .panoptic_evaluation import (  # noqa: F401
    PartPanopticEvaluator,
    build_part_panoptic_evaluator,
    evaluate_with_panoptic_parts,
)
from .parsing_evaluation import (  # noqa: F401
    BodyPartParsingEvaluator,
    build_parsing_evaluator,
    ground_truth_maps,
)
from .parsing_export import (  # noqa: F401
    EXPORT_FORMATS,
    ParsingPredictionWriter,
    export_parsing_predictions,
)
from .parsing_metrics import (  # noqa: F401
    VOL_THRESHOLDS,
    ap_parsing,
    ap_region,
    ap_region_per_class,
    confusion_matrix,
    image_level_map,
    instance_iou_matrix,
    instance_level_map,
    label_areas,
    parsing_true_positives,
    part_region_ious,
    paste_order,
    paste_part_maps,
    paste_with_owner,
    pcp,
    semantic_metrics,
    voc_ap,
)
from .partpq import PanopticStats, SceneClasses, panoptic_quality, segment_stats  # noqa: F401
from .person_outputs import person_class_id, person_part_maps, person_predictions  # noqa: F401
