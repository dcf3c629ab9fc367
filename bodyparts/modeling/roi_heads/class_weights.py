"""Class-balancing weights of the part losses (per-person branch and image-level segmenter).

The weights are part of the model: each weighted head keeps them in a persistent ``class_weights``
buffer (C,), so a checkpoint carries them and loading it restores them. Where they come from:

- ``MODEL.<node>.CLASS_WEIGHTS`` given: those values, set when the model is built.
- ``MODEL.<node>.CLASS_BALANCE`` "inverse" / "exponential": computed from the pixel counts of
  DATASETS.TRAIN (docs/metrics.md section 8) once, when training starts (:func:`init_class_weights`,
  run by the Trainer's ``ClassWeightsHook``); until then the buffer holds NaN ("not computed").
- ``CLASS_BALANCE`` "none": no buffer, unweighted loss.

Building a model never reads a dataset: the demo and ``--eval-only`` need only the checkpoint.
Training that resumes (``--resume``) keeps the weights of its checkpoint; a new training (also one
that starts from another model's ``MODEL.WEIGHTS``) sets them from its own config and training set.

A checkpoint written before the weights were persistent has no ``class_weights`` entry: loading it
logs Detectron2's "not found in the checkpoint" warning for that key and leaves the buffer as built
(NaN for a computed balance). Inference is unaffected; a loss then raises an error naming the key
until training computes the weights (also when it resumes from such a checkpoint).
"""

import logging
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from torch import nn

from ...config import CLASS_BALANCE_MODES
from ...data.statistics import part_pixel_counts
from ...taxonomy import get_part_taxonomy, mapping_lut
from ..losses import class_balance_weights

__all__ = [
    "BALANCE_MODES",
    "class_weights_from_cfg",
    "initial_class_weights",
    "class_weights_are_set",
    "checked_class_weights",
    "init_class_weights",
]

logger = logging.getLogger(__name__)

BALANCE_MODES = CLASS_BALANCE_MODES


def _explicit_weights(cfg, node: str) -> Optional[torch.Tensor]:
    """``MODEL.<node>.CLASS_WEIGHTS`` as float32 (C,), None if empty; checks their number."""
    cfg_node = cfg.MODEL[node]
    if not len(cfg_node.CLASS_WEIGHTS):
        return None
    taxonomy = get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY)
    if len(cfg_node.CLASS_WEIGHTS) != taxonomy.num_classes:
        raise ValueError(
            f"MODEL.{node}.CLASS_WEIGHTS has {len(cfg_node.CLASS_WEIGHTS)} values; taxonomy "
            f"{taxonomy.name!r} has {taxonomy.num_classes} labels "
            f"(background + {taxonomy.num_parts} parts)"
        )
    return torch.tensor(list(cfg_node.CLASS_WEIGHTS), dtype=torch.float32)


def _check_balance_mode(cfg, node: str) -> str:
    mode = cfg.MODEL[node].CLASS_BALANCE
    if mode not in BALANCE_MODES:
        raise ValueError(
            f"MODEL.{node}.CLASS_BALANCE: unknown class balance mode {mode!r}; expected one of "
            f"{BALANCE_MODES}"
        )
    return mode


def initial_class_weights(cfg, node: str = "ROI_BODYPART_HEAD") -> Optional[torch.Tensor]:
    """The class weights a head is built with, from the config alone (no dataset is read).

    Args:
        cfg: the config (``BODYPARTS.PART_TAXONOMY``, ``MODEL.<node>``).
        node: ``"ROI_BODYPART_HEAD"`` (per-person part branch) or ``"BODYPART_SEM_SEG"``
            (image-level segmenter).
    Returns:
        float32 (C,): ``CLASS_WEIGHTS`` if given; all NaN ("not computed yet") for
        ``CLASS_BALANCE`` "inverse" / "exponential", filled by :func:`init_class_weights` or by a
        checkpoint; None for "none".
    Raises:
        ValueError: naming the key, for a wrong number of ``CLASS_WEIGHTS`` or an unknown
            ``CLASS_BALANCE``.
    """
    explicit = _explicit_weights(cfg, node)
    if explicit is not None:
        return explicit
    if _check_balance_mode(cfg, node) == "none":
        return None
    num_classes = get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY).num_classes
    return torch.full((num_classes,), float("nan"))


def class_weights_from_cfg(
    cfg, node: str = "ROI_BODYPART_HEAD", background: str = "box"
) -> Optional[torch.Tensor]:
    """Class weights of a part loss from the config node ``MODEL.<node>``: its ``CLASS_WEIGHTS``
    if given, else weights computed from the pixel counts of ``DATASETS.TRAIN`` with its
    ``CLASS_BALANCE`` ("none" -> None). Reads the training set: called once, when training
    starts (:func:`init_class_weights`), never when a model is built.

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
    explicit = _explicit_weights(cfg, node)
    if explicit is not None:
        return explicit
    mode = _check_balance_mode(cfg, node)
    if mode == "none":
        return None
    taxonomy = get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY)
    counts = np.zeros(taxonomy.num_classes)
    for name in cfg.DATASETS.TRAIN:
        if name not in DatasetCatalog.list():
            raise KeyError(
                f"{key}.CLASS_BALANCE {mode!r} counts the pixels of DATASETS.TRAIN, but dataset "
                f"{name!r} is not registered"
            )
        source = MetadataCatalog.get(name).get("part_taxonomy", None)
        if source is None:
            continue
        lut = {source: mapping_lut(source, taxonomy.name, dataset=name)}
        counts += part_pixel_counts(DatasetCatalog.get(name), lut, taxonomy.num_classes, background)
    try:
        weights = class_balance_weights(counts, mode)
    except ValueError as e:
        raise ValueError(
            f"{key}.CLASS_BALANCE: {e} (DATASETS.TRAIN {tuple(cfg.DATASETS.TRAIN)})"
        ) from None
    logger.info(
        "%s class weights (%s, from DATASETS.TRAIN): %s",
        key,
        mode,
        dict(zip(taxonomy.label_names, weights.round(3).tolist())),
    )
    return torch.from_numpy(weights)


def class_weights_are_set(weights: Optional[torch.Tensor]) -> bool:
    """True for a weights buffer holding values (not None, no NaN placeholder)."""
    return weights is not None and bool(torch.isfinite(weights).all())


def checked_class_weights(weights: Optional[torch.Tensor], owner: str) -> Optional[torch.Tensor]:
    """``weights`` for a loss; None stays None (unweighted).

    Raises:
        RuntimeError: naming ``owner``, when the buffer still holds the NaN placeholder of a
            computed balance (neither training computed it nor a checkpoint restored it).
    """
    if weights is not None and not class_weights_are_set(weights):
        raise RuntimeError(
            f"{owner}: class weights of CLASS_BALANCE are not computed: the Trainer computes them "
            "from DATASETS.TRAIN when training starts "
            "(bodyparts.modeling.roi_heads.class_weights.init_class_weights), or load a checkpoint "
            "that carries them (class_weights buffer)"
        )
    return weights


def _weighted_heads(model: nn.Module) -> Iterator[Tuple[str, nn.Module, str, str]]:
    """(module name, module, config node, background counting) of every class-weighted head:
    the modules whose class declares ``class_weights_node`` (its ``MODEL.<node>``) and
    ``class_weights_background`` ("box" or "image", :func:`class_weights_from_cfg`) and holds a
    ``class_weights`` buffer (``BodyPartBranch``, ``BodyPartSemSegFPNHead``, a user's head)."""
    for name, module in model.named_modules():
        node = getattr(type(module), "class_weights_node", None)
        if node is not None:
            yield name, module, node, type(module).class_weights_background


def init_class_weights(model: nn.Module, cfg, keep_loaded: bool = False) -> Dict[str, torch.Tensor]:
    """Set the ``class_weights`` buffer of every weighted head of ``model`` from the config:
    ``CLASS_WEIGHTS``, or computed from ``DATASETS.TRAIN`` (:func:`class_weights_from_cfg`).

    Args:
        model: the model (a DDP wrapper is looked through).
        cfg: its config.
        keep_loaded: True when training resumes from a checkpoint: buffers that the checkpoint
            filled are kept (the dataset is not read again); those it did not fill (a checkpoint
            written before the weights were persistent) are computed.
    Returns:
        {module name: the weights now in its buffer} for the heads with weights.
    """
    out = {}
    for name, module, node, background in _weighted_heads(model):
        buffer = module.class_weights
        if buffer is None:  # CLASS_BALANCE "none", no CLASS_WEIGHTS
            continue
        if keep_loaded and class_weights_are_set(buffer):
            logger.info("MODEL.%s class weights from the checkpoint: %s", node, buffer.tolist())
        else:
            weights = class_weights_from_cfg(cfg, node, background)
            if weights is None or weights.shape != buffer.shape:
                raise ValueError(
                    f"{name or type(module).__name__}: built with class weights of shape "
                    f"{tuple(buffer.shape)}, MODEL.{node} gives "
                    f"{None if weights is None else tuple(weights.shape)}"
                )
            with torch.no_grad():
                buffer.copy_(weights.to(buffer))
        out[name] = buffer.detach().clone()
    return out
