"""Class-balancing weights of the part losses (per-person branch and image-level segmenter), from
the config (METRICS.md section 8)."""
import logging
from typing import Optional

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog

from ...taxonomy import get_part_taxonomy, mapping_lut
from ..losses import class_balance_weights, part_pixel_counts

logger = logging.getLogger(__name__)


def class_weights_from_cfg(
    cfg, node: str = "ROI_BODYPART_HEAD", background: str = "box"
) -> Optional[torch.Tensor]:
    """Class weights of a part loss from the config node ``MODEL.<node>``: its ``CLASS_WEIGHTS``
    if given, else weights computed once from the pixel counts of ``DATASETS.TRAIN`` with its
    ``CLASS_BALANCE`` ("none" -> None).

    Args:
        cfg: the config (``BODYPARTS.PART_TAXONOMY``, ``DATASETS.TRAIN``, ``MODEL.<node>``).
        node: ``"ROI_BODYPART_HEAD"`` (per-person part branch) or ``"BODYPART_SEM_SEG"``
            (image-level segmenter).
        background: how background pixels are counted (:func:`part_pixel_counts`): ``"box"`` for
            the per-person branch, ``"image"`` for the image-level segmenter.
    Returns:
        float32 (C,) or None.
    """
    key = f"MODEL.{node}"
    cfg_node = cfg.MODEL[node]
    taxonomy = get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY)
    if len(cfg_node.CLASS_WEIGHTS):
        if len(cfg_node.CLASS_WEIGHTS) != taxonomy.num_classes:
            raise ValueError(
                f"{key}.CLASS_WEIGHTS has {len(cfg_node.CLASS_WEIGHTS)} values; taxonomy "
                f"{taxonomy.name!r} has {taxonomy.num_classes} labels "
                f"(background + {taxonomy.num_parts} parts)"
            )
        return torch.tensor(list(cfg_node.CLASS_WEIGHTS), dtype=torch.float32)
    if cfg_node.CLASS_BALANCE == "none":
        return None
    counts = np.zeros(taxonomy.num_classes)
    for name in cfg.DATASETS.TRAIN:
        source = MetadataCatalog.get(name).get("part_taxonomy", None)
        if source is None:
            continue
        lut = {source: mapping_lut(source, taxonomy.name, dataset=name)}
        counts += part_pixel_counts(DatasetCatalog.get(name), lut, taxonomy.num_classes, background)
    try:
        weights = class_balance_weights(counts, cfg_node.CLASS_BALANCE)
    except ValueError as e:
        raise ValueError(f"{key}.CLASS_BALANCE: {e}") from None
    logger.info(
        "%s class weights (%s): %s",
        key,
        cfg_node.CLASS_BALANCE,
        dict(zip(taxonomy.label_names, weights.round(3).tolist())),
    )
    return torch.from_numpy(weights)
