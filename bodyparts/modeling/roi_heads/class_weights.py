"""Class-balancing weights of the part loss, from the config (METRICS.md section 8)."""
import logging
from typing import Optional

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from ...taxonomy import get_part_taxonomy, mapping_lut
from ..losses import class_balance_weights, part_pixel_counts

logger = logging.getLogger(__name__)


def class_weights_from_cfg(cfg) -> Optional[torch.Tensor]:
    """``MODEL.ROI_BODYPART_HEAD.CLASS_WEIGHTS`` if given, else weights computed once from the pixel
    counts of ``DATASETS.TRAIN`` with ``CLASS_BALANCE`` ("none" -> None)."""
    node = cfg.MODEL.ROI_BODYPART_HEAD
    taxonomy = get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY)
    if len(node.CLASS_WEIGHTS):
        if len(node.CLASS_WEIGHTS) != taxonomy.num_classes:
            raise ValueError(
                f"MODEL.ROI_BODYPART_HEAD.CLASS_WEIGHTS has {len(node.CLASS_WEIGHTS)} values; taxonomy "
                f"{taxonomy.name!r} has {taxonomy.num_classes} labels (background + {taxonomy.num_parts} parts)"
            )
        return torch.tensor(list(node.CLASS_WEIGHTS), dtype=torch.float32)
    if node.CLASS_BALANCE == "none":
        return None
    counts = np.zeros(taxonomy.num_classes)
    for name in cfg.DATASETS.TRAIN:
        source = MetadataCatalog.get(name).get("part_taxonomy", None)
        if source is None:
            continue
        counts += part_pixel_counts(
            DatasetCatalog.get(name), {source: mapping_lut(source, taxonomy.name, dataset=name)}, taxonomy.num_classes
        )
    weights = class_balance_weights(counts, node.CLASS_BALANCE)
    logger.info("Part loss class weights (%s): %s", node.CLASS_BALANCE, dict(zip(taxonomy.label_names, weights.round(3).tolist())))
    return torch.from_numpy(weights)
