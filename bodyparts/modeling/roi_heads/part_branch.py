"""The part branch as a component any ROI heads can use, and the mixin that wires it in.

Add part masks to an existing Detectron2 ROI-heads class in a few lines::

    from detectron2.modeling.roi_heads import CascadeROIHeads, ROI_HEADS_REGISTRY
    from bodyparts.modeling import BodyPartHeadsMixin

    @ROI_HEADS_REGISTRY.register()
    class CascadeBodyPartROIHeads(BodyPartHeadsMixin, CascadeROIHeads):
        pass

and set ``MODEL.ROI_HEADS.NAME: CascadeBodyPartROIHeads`` and ``MODEL.BODYPART_ON: True``. The host
(``StandardROIHeads`` or a subclass) keeps its own box, mask and keypoint logic; the mixin adds the
branch's loss in training and its outputs in ``forward_with_given_boxes``. Without the mixin, build
a :class:`BodyPartBranch` and call its ``losses`` / ``inference`` yourself.
"""

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ConvTranspose2d, ShapeSpec
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads.keypoint_head import (
    BaseKeypointRCNNHead,
    keypoint_rcnn_inference,
    keypoint_rcnn_loss,
)
from detectron2.modeling.roi_heads.roi_heads import StandardROIHeads, select_foreground_proposals
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from ...taxonomy import get_part_taxonomy
from ..inference import store_part_predictions
from ..losses import part_loss, part_targets
from .class_weights import checked_class_weights, initial_class_weights
from .part_head import build_part_head, check_shared_trunk

__all__ = ["BodyPartBranch", "BodyPartHeadsMixin", "subsample_foreground", "select_part_foreground"]


def subsample_foreground(instances: List[Instances], max_per_image: int) -> List[Instances]:
    """Keep at most ``max_per_image`` proposals per image, chosen at random (all if fewer)."""
    out = []
    for inst in instances:
        if max_per_image > 0 and len(inst) > max_per_image:
            keep = torch.randperm(len(inst), device=inst.proposal_boxes.device)[:max_per_image]
            inst = inst[keep]
        out.append(inst)
    return out


def select_part_foreground(
    proposals: List[Instances],
    num_classes: Optional[int],
    part_class_ids: Optional[Sequence[int]] = None,
) -> List[Instances]:
    """The proposals that train the part branch: foreground as Detectron2's
    ``select_foreground_proposals`` (``gt_classes`` neither -1 nor the background label
    ``num_classes``, i.e. ``0 <= gt_classes < num_classes``), then only classes in
    ``part_class_ids`` (None: every class).

    Args:
        proposals: per image, sampled proposals with ``gt_classes`` (Detectron2's
            ``label_and_sample_proposals``: 0..num_classes-1 objects, num_classes background).
        num_classes: the detector's number of object classes K; None: a person-only detector
            (K = 1, background label 1).
        part_class_ids: detector classes that have parts.
    Raises:
        ValueError: ``num_classes`` None but some ``gt_classes`` > 1 (a multi-class detector must
            say which label is background).
    """
    if num_classes is None:
        top = max((int(p.gt_classes.max()) for p in proposals if len(p)), default=0)
        if top > 1:
            raise ValueError(
                f"BodyPartBranch: gt_classes up to {top} but num_classes not given (default 1, a "
                "person-only detector): pass num_classes, the detector's number of object classes"
            )
        num_classes = 1
    fg, _ = select_foreground_proposals(proposals, num_classes)
    if part_class_ids is None:
        return fg
    ids = torch.as_tensor(list(part_class_ids), dtype=torch.long)
    return [p[torch.isin(p.gt_classes, ids.to(p.gt_classes.device))] for p in fg]


# Automatic inference chunk of the part head: at most INFERENCE_CHUNK_ROIS ROIs, and fewer when
# their largest activation (the deconv output) would pass INFERENCE_CHUNK_BYTES (R-50 CIHP head:
# 512 x 64 x 64 floats = 8 MB per ROI, 4 ROIs; the R-18 main job's head: 0.4 MB, 4 ROIs). The
# peak grows faster than this activation (the convolutions' working buffers grow with the batch):
# R-50 at 100 detections, 16 ROIs per chunk 672 MB, 8 ROIs 464 MB, 4 ROIs 401 MB (RSS; Detectron2's
# Mask + Keypoint R-CNN 392), 1 ROI no less memory but 2.3x the time; the R-18 main job, 20
# detections an image: one chunk 82 MB of heap in use, chunks of 4 74 MB (Detectron2 75) and
# faster (0.14 against 0.17 s an image).
INFERENCE_CHUNK_BYTES = 32 * 1024 * 1024
INFERENCE_CHUNK_ROIS = 4


def _head_width(head: nn.Module) -> int:
    """The widest conv of a part head without ``out_channels`` (a user's head), for the chunk."""
    widths = [m.out_channels for m in head.modules() if isinstance(m, nn.Conv2d)]
    return max(widths, default=1)


def _pooler_resolution(pooler: nn.Module) -> int:
    """The side of the pooler's output (Detectron2's ``ROIPooler.output_size``, found on the
    module or the first of its submodules that has one), for the inference chunk."""
    for module in pooler.modules():
        size = getattr(module, "output_size", None)
        if size is not None:
            return int(size[0] if isinstance(size, (tuple, list)) else size)
    raise ValueError(
        f"the part branch's pooler ({type(pooler).__name__}) has no output_size: give it "
        "Detectron2's ROIPooler, or a module holding one"
    )


def _box_slice(boxes: List[Boxes], start: int, count: int) -> List[Boxes]:
    """Rows ``start .. start + count`` of the concatenation of per-image ``boxes``, as per-image
    ``Boxes`` (empty for the images outside the range): what ``ROIPooler`` takes, its output the
    same rows of pooling all the boxes."""
    out: List[Boxes] = []
    offset = 0
    for b in boxes:
        n = len(b)
        lo = min(max(start - offset, 0), n)
        hi = min(max(start + count - offset, 0), n)
        out.append(Boxes(b.tensor[lo:hi]))
        offset += n
    return out


class BodyPartBranch(nn.Module):
    """Pooler + part head + loss/inference of the per-person part label maps.

    Training (``losses(features, proposals, num_classes)``, or ``forward`` in training mode, on
    sampled proposals with
    ``gt_classes``, ``proposal_boxes`` and ``gt_part_maps``): selects the foreground proposals of
    the classes with parts (:func:`select_part_foreground`), keeps at most ``max_fg_per_image`` of
    them per image, returns ``{"loss_part": loss_weight * part_loss}`` (and ``loss_keypoint``
    with keypoints from the part trunk).

    Inference (``inference(features, instances)``, or ``forward`` in eval mode, on detections with
    ``pred_boxes``): adds ``pred_part_masks``, a :class:`~bodyparts.modeling.PartPredictions` of
    (R, C, M, M) probabilities in ROI space; with ``silhouette_from_parts`` also ``pred_masks`` =
    1 - P(background) (R, 1, M, M). With ``part_class_ids``, only detections of those classes
    (``pred_classes``) are run through the head and ``pred_part_masks`` holds their S rows only.
    Pasting into image space happens in post-processing (``BodyPartsRCNN``,
    ``part_label_maps_in_image``), once the boxes are in the output image's coordinates.

    The head is used through the part-head contract (``part_head.py``): ``head(x)`` only, and
    ``head.trunk`` / ``head.predict`` / ``head.out_channels`` when keypoints come from the trunk.
    """

    # class_weights.py: this module's class_weights buffer is MODEL.ROI_BODYPART_HEAD's, its
    # background pixels counted inside the person boxes
    class_weights_node = "ROI_BODYPART_HEAD"
    class_weights_background = "box"

    @configurable
    def __init__(
        self,
        *,
        in_features: List[str],
        pooler: ROIPooler,
        head: nn.Module,
        num_classes: int,
        loss_weight: float = 1.0,
        max_fg_per_image: int = 16,
        class_weights: Optional[torch.Tensor] = None,
        silhouette_from_parts: bool = False,
        num_keypoints: int = 0,
        keypoint_loss_weight: float = 1.0,
        keypoint_loss_normalizer: Union[str, float] = "visible",
        part_class_ids: Optional[Sequence[int]] = None,
        inference_chunk_size: int = 0,
    ):
        """
        Args:
            head: a part head (the contract in ``part_head.py``); with ``num_keypoints`` > 0 it
                needs the shared-trunk extension (``trunk``, ``predict``, ``out_channels``).
            num_classes: C, part labels including background.
            class_weights: optional (C,) part-loss weights, kept in the checkpoint (a persistent
                buffer); NaN = not computed yet (``class_weights.py``: the Trainer fills them).
            num_keypoints: > 0 to predict keypoints from the part head's conv features (shared
                trunk, one pooling) instead of Detectron2's keypoint head: a stride-2 deconv to
                K heatmaps, upsampled to the part output size, trained with Detectron2's
                ``keypoint_rcnn_loss`` on the images whose proposals have ``gt_keypoints``.
            keypoint_loss_weight, keypoint_loss_normalizer: as Detectron2's keypoint head
                (``BaseKeypointRCNNHead``): the loss is multiplied by the weight and divided by
                the number of visible keypoints ("visible") or by ``normalizer * number of images
                with keypoints`` (a float).
            part_class_ids: detector classes that have parts (None: all). Training uses only
                their proposals; inference runs the head on their detections only.
            inference_chunk_size: ROIs the head runs at once at inference (0: automatic,
                :meth:`inference_chunk`); the outputs do not depend on it.
        """
        super().__init__()
        self.in_features = in_features
        self.pooler = pooler
        self.pooler_resolution = _pooler_resolution(pooler)
        self.head = head
        self.num_classes = num_classes
        self.loss_weight = loss_weight
        self.max_fg_per_image = max_fg_per_image
        if class_weights is not None:
            class_weights = torch.as_tensor(class_weights, dtype=torch.float32)
            if class_weights.shape != (num_classes,):
                raise ValueError(
                    f"class_weights has shape {tuple(class_weights.shape)}, "
                    f"expected ({num_classes},)"
                )
        # persistent: a checkpoint carries the weights (class_weights.py)
        self.register_buffer("class_weights", class_weights)
        self.silhouette_from_parts = silhouette_from_parts
        self.num_keypoints = num_keypoints
        self.part_class_ids: Optional[List[int]] = None
        self.set_part_classes(part_class_ids)
        if keypoint_loss_normalizer != "visible" and not isinstance(
            keypoint_loss_normalizer, float
        ):
            raise ValueError(
                "keypoint_loss_normalizer must be 'visible' or a float, "
                f"got {keypoint_loss_normalizer!r}"
            )
        if inference_chunk_size < 0:
            raise ValueError(f"inference_chunk_size must be >= 0, got {inference_chunk_size}")
        self.inference_chunk_size = int(inference_chunk_size)
        self.inference_chunk_bytes = INFERENCE_CHUNK_BYTES
        self.inference_chunk_rois = INFERENCE_CHUNK_ROIS
        self.trunk_channels = int(getattr(head, "out_channels", 0) or 0) or _head_width(head)
        self.keypoint_loss_weight = keypoint_loss_weight
        self.keypoint_loss_normalizer = keypoint_loss_normalizer
        self.keypoint_predictor = None
        if num_keypoints > 0:
            check_shared_trunk(head, "MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS")
            dim = head.out_channels
            self.keypoint_predictor = ConvTranspose2d(dim, num_keypoints, 4, stride=2, padding=1)
            nn.init.kaiming_normal_(
                self.keypoint_predictor.weight, mode="fan_out", nonlinearity="relu"
            )
            nn.init.constant_(self.keypoint_predictor.bias, 0)

    def set_part_classes(self, part_class_ids: Optional[Sequence[int]]) -> None:
        """Run the branch on the detections of ``part_class_ids`` only (None: every class). The
        meta-architecture that knows which classes have parts passes them
        (``BodyPartsPanopticFPN``); a part branch that also gives every detection its silhouette
        or keypoints cannot skip classes (ValueError)."""
        ids = None if part_class_ids is None else sorted({int(c) for c in part_class_ids})
        if ids is not None and (self.silhouette_from_parts or self.num_keypoints > 0):
            raise ValueError(
                "only some detector classes have parts (MODEL.BODYPART_PANOPTIC.PART_THING_IDS "
                f"{ids}), but the part branch would give every detection its "
                "MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS / KEYPOINTS_FROM_PARTS output: use "
                "Detectron2's mask / keypoint heads (MODEL.MASK_ON, MODEL.KEYPOINT_ON) instead"
            )
        self.part_class_ids = ids

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        node = cfg.MODEL.ROI_BODYPART_HEAD
        in_features = list(node.IN_FEATURES)
        missing = [f for f in in_features if f not in input_shape]
        if missing:
            raise KeyError(
                f"MODEL.ROI_BODYPART_HEAD.IN_FEATURES {missing} not among the backbone's "
                f"{sorted(input_shape)}"
            )
        channels = {input_shape[f].channels for f in in_features}
        if len(channels) != 1:
            raise ValueError(
                f"MODEL.ROI_BODYPART_HEAD.IN_FEATURES have different channel counts {channels}"
            )
        pooler = ROIPooler(
            output_size=node.POOLER_RESOLUTION,
            scales=tuple(1.0 / input_shape[f].stride for f in in_features),
            sampling_ratio=node.POOLER_SAMPLING_RATIO,
            pooler_type=node.POOLER_TYPE,
        )
        shape = ShapeSpec(
            channels=channels.pop(), height=node.POOLER_RESOLUTION, width=node.POOLER_RESOLUTION
        )
        if node.SILHOUETTE_FROM_PARTS and cfg.MODEL.MASK_ON:
            raise ValueError(
                "MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS and MODEL.MASK_ON both set: "
                "choose one source of pred_masks"
            )
        if node.KEYPOINTS_FROM_PARTS and cfg.MODEL.KEYPOINT_ON:
            raise ValueError(
                "MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS and MODEL.KEYPOINT_ON both set: "
                "choose one keypoint head"
            )
        keypoint_keys = BaseKeypointRCNNHead.from_config(cfg, None)
        return {
            "in_features": in_features,
            "pooler": pooler,
            "head": build_part_head(cfg, shape),
            "num_classes": get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY).num_classes,
            "loss_weight": node.LOSS_WEIGHT,
            "max_fg_per_image": node.MAX_FG_PER_IMAGE,
            "class_weights": initial_class_weights(cfg),  # reads no dataset
            "silhouette_from_parts": node.SILHOUETTE_FROM_PARTS,
            "num_keypoints": cfg.MODEL.ROI_KEYPOINT_HEAD.NUM_KEYPOINTS
            if node.KEYPOINTS_FROM_PARTS
            else 0,
            # Detectron2's own reading of ROI_KEYPOINT_HEAD.LOSS_WEIGHT and
            # NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS
            "keypoint_loss_weight": keypoint_keys["loss_weight"],
            "keypoint_loss_normalizer": keypoint_keys["loss_normalizer"],
            "inference_chunk_size": node.INFERENCE_CHUNK_SIZE,
        }

    def forward(
        self,
        features: Dict[str, torch.Tensor],
        instances: List[Instances],
        num_classes: Optional[int] = None,
    ) -> Union[Dict[str, torch.Tensor], List[Instances]]:
        """Training: :meth:`losses`; inference: :meth:`inference` (see the class docstring)."""
        if self.training:
            return self.losses(features, instances, num_classes)
        return self.inference(features, instances)

    @torch.jit.unused
    def losses(
        self,
        features: Dict[str, torch.Tensor],
        instances: List[Instances],
        num_classes: Optional[int] = None,
    ) -> Dict[str, torch.Tensor]:
        """The part loss (and keypoint loss) on sampled proposals (see the class docstring).

        Args:
            num_classes: the detector's number of object classes K, the background label of
                ``gt_classes``; foreground = ``0 <= gt_classes < K`` as Detectron2's
                ``select_foreground_proposals(proposals, K)``. None: K = 1 (person-only
                detector); an error if some ``gt_classes`` exceed 1.
        """
        feats = [features[f] for f in self.in_features]
        fg = select_part_foreground(instances, num_classes, self.part_class_ids)
        fg = subsample_foreground(fg, self.max_fg_per_image)
        logits, trunk = self._logits(self.pooler(feats, [x.proposal_boxes for x in fg]))
        targets = part_targets(fg, logits.shape[-1])
        losses = {"loss_part": self.loss_weight * part_loss(logits, targets, self._loss_weights())}
        if self.keypoint_predictor is not None:
            losses["loss_keypoint"] = self._keypoint_loss(
                self._keypoint_heatmaps(trunk, logits.shape[-1]), fg
            )
        return losses

    def inference(
        self, features: Dict[str, torch.Tensor], instances: List[Instances]
    ) -> List[Instances]:
        """Adds the part outputs to detections with ``pred_boxes`` (and ``pred_classes``):
        ``pred_part_masks`` (:class:`~bodyparts.modeling.PartPredictions`), and with keypoints from
        the trunk / silhouettes from the parts ``pred_keypoints``, ``pred_keypoint_heatmaps`` /
        ``pred_masks``. The same code runs eagerly, traced and scripted (export)."""
        feats = [features[f] for f in self.in_features]
        part_class_ids = self.part_class_ids
        selected: Optional[List[torch.Tensor]] = None
        boxes = [x.pred_boxes for x in instances]
        if part_class_ids is not None:
            ids = torch.tensor(part_class_ids, dtype=torch.long)
            chosen = [torch.isin(x.pred_classes, ids.to(x.pred_classes.device)) for x in instances]
            boxes = [b[sel] for b, sel in zip(boxes, chosen)]
            selected = chosen
        probs, heatmaps = self._chunked_inference(feats, boxes)
        store_part_predictions(probs, instances, selected, self.silhouette_from_parts)
        if heatmaps is not None:
            keypoint_rcnn_inference(heatmaps, instances)
        return instances

    def inference_chunk(self, num_rois: int, resolution: int, element_size: int = 4) -> int:
        """How many ROIs the head runs at once at inference: ``inference_chunk_size`` when > 0,
        else (automatic) ``INFERENCE_CHUNK_ROIS`` (``inference_chunk_rois``), or fewer when their
        largest activation (the deconv output: D' x 2P x 2P values of ``element_size`` bytes per
        ROI, P the pooler's ``resolution``) would pass ``INFERENCE_CHUNK_BYTES`` (at least 1)."""
        if self.inference_chunk_size > 0:
            return self.inference_chunk_size
        side = 2 * resolution
        per_roi = self.trunk_channels * side * side * element_size
        fits = self.inference_chunk_bytes // max(per_roi, 1)
        return max(1, min(self.inference_chunk_rois, fits))

    def _chunked_inference(
        self, feats: List[torch.Tensor], boxes: List[Boxes]
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Features and per-image boxes -> (float (R, C, M, M) part probabilities, (R, K, M, M)
        keypoint logits or None), in the order of the boxes. The ROIs are pooled and run through
        the head a chunk at a time (:meth:`inference_chunk`), so that neither the pooled features
        nor the head's activations grow with R; the softmax is taken per chunk (row-wise) and
        ROIAlign is per box, so the result equals one pass."""
        num_rois = 0
        for b in boxes:
            num_rois += len(b)
        chunk = self.inference_chunk(num_rois, self.pooler_resolution, feats[0].element_size())
        if torch.jit.is_tracing() or chunk >= num_rois:
            # one pass, no slicing: a traced graph must not keep the sample's number of ROIs
            return self._probs_and_heatmaps(feats, boxes)
        # each chunk written into the outputs: no list of chunks and no torch.cat copy of them
        probs = torch.empty(0)
        heatmaps: Optional[torch.Tensor] = None
        for start in range(0, num_rois, chunk):
            piece_probs, piece_heatmaps = self._probs_and_heatmaps(
                feats, _box_slice(boxes, start, chunk)
            )
            stop = start + piece_probs.shape[0]
            if start == 0:
                probs = piece_probs.new_empty([num_rois] + list(piece_probs.shape[1:]))
            probs[start:stop] = piece_probs
            if piece_heatmaps is not None:
                if heatmaps is None:
                    heatmaps = piece_heatmaps.new_empty([num_rois] + list(piece_heatmaps.shape[1:]))
                heatmaps[start:stop] = piece_heatmaps
        return probs, heatmaps

    def _probs_and_heatmaps(
        self, feats: List[torch.Tensor], boxes: List[Boxes]
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Features and per-image boxes (R in all) -> (R, C, M, M) part probabilities and
        (R, K, M, M) keypoint logits (None without keypoints from the trunk). Nothing is held
        longer than needed: the pooled features go once the trunk exists (``_logits``), the
        logits once their softmax exists, before the keypoint layers run."""
        logits, trunk = self._logits(self.pooler(feats, boxes))
        side = logits.shape[-1]
        logits = logits.softmax(dim=1)
        if trunk is None:
            return logits, None
        return logits, self._keypoint_heatmaps(trunk, side)

    @torch.jit.unused
    def _loss_weights(self) -> Optional[torch.Tensor]:
        """The class weights of the part loss; an error if CLASS_BALANCE's are not computed."""
        return checked_class_weights(self.class_weights, "BodyPartBranch (MODEL.ROI_BODYPART_HEAD)")

    def _logits(self, x: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(R, D, P, P) pooled features -> ((R, C, M, M) part logits, (R, D', P', P') trunk
        features, or None when no keypoints come from the trunk)."""
        keypoint_predictor = self.keypoint_predictor
        if keypoint_predictor is None:
            return self.head(x), None
        x = self.head.trunk(x)  # the pooled features go: only the trunk is kept
        return self.head.predict(x), x

    def _keypoint_heatmaps(self, trunk: torch.Tensor, size: int) -> torch.Tensor:
        """(R, D, P, P) trunk features -> (R, K, size, size) keypoint logits."""
        keypoint_predictor = self.keypoint_predictor
        assert keypoint_predictor is not None
        x = keypoint_predictor(trunk)
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)

    @torch.jit.unused
    def _keypoint_loss(self, heatmaps: torch.Tensor, instances: List[Instances]) -> torch.Tensor:
        """Detectron2's keypoint-head loss, per image: only images whose proposals carry
        ``gt_keypoints`` give targets (and count as images for a fixed normaliser); a person of
        such an image without keypoints has visibility 0 and gives none. An image without any
        ground-truth instance has no ``gt_*`` field on its proposals (Detectron2's
        ``label_and_sample_proposals``), so it does not count either (Detectron2's keypoint head,
        which sees only keypoint datasets, counts it in its fixed normaliser).

        Args:
            heatmaps: (R, K, S, S) logits of the foreground proposals of all images, in order.
            instances: per image, those proposals (R_i of them).
        Returns:
            ``keypoint_loss_weight * keypoint_rcnn_loss`` over the images with keypoints, the
            normaliser being the visible keypoints or ``keypoint_loss_normalizer * their number``;
            ``heatmaps.sum() * 0`` (connected, DDP-safe) when none of their proposals is left.
        """
        rows = heatmaps.split([len(i) for i in instances])
        keep = [k for k, inst in enumerate(instances) if inst.has("gt_keypoints")]
        if sum(len(instances[k]) for k in keep) == 0:
            return heatmaps.sum() * 0
        normalizer = None
        if self.keypoint_loss_normalizer != "visible":
            normalizer = len(keep) * self.keypoint_loss_normalizer
        logits = torch.cat([rows[k] for k in keep])
        loss = keypoint_rcnn_loss(logits, [instances[k] for k in keep], normalizer=normalizer)
        return loss * self.keypoint_loss_weight


class BodyPartHeadsMixin:
    """Adds the part branch to a Detectron2 ROI-heads class derived from ``StandardROIHeads``
    (see the module docstring).

    Training: the host's ``forward`` runs first (box, mask, keypoint losses on the sampled
    proposals), then the part branch's loss on the same proposals. Inference: the host's
    ``_forward_box`` gives the detections, then its ``_forward_mask`` and ``_forward_keypoint`` and
    the part branch add their outputs (``forward_with_given_boxes``). The inference path calls no
    ``super()``, so TorchScript compiles the heads as they are (export). With
    ``MODEL.BODYPART_ON: False`` the branch is absent and the host's outputs are unchanged.
    """

    # TorchScript constants (Detectron2's export declares them on StandardROIHeads): the heads
    # that are off are compiled away
    mask_on: torch.jit.Final[bool]
    keypoint_on: torch.jit.Final[bool]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if issubclass(cls, nn.Module) and not issubclass(cls, StandardROIHeads):
            raise TypeError(
                f"{cls.__name__}: BodyPartHeadsMixin extends ROI heads derived from Detectron2's "
                "StandardROIHeads (it runs their _forward_box, _forward_mask and "
                "_forward_keypoint); call a BodyPartBranch from your own heads instead"
            )
        # TorchScript reads the annotations of one class only (the first in the MRO that has
        # some), and Detectron2's export adds "training" to each model class's own: give the
        # subclass all of its bases' so that the constants above hold for it too
        merged = {}
        for base in reversed(cls.__mro__):
            merged.update(base.__dict__.get("__annotations__", {}))
        cls.__annotations__ = merged

    @configurable
    def __init__(self, *, part_branch: Optional[BodyPartBranch] = None, **kwargs):
        super().__init__(**kwargs)
        self.part_on = part_branch is not None
        self.part_branch = part_branch

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.update(cls._init_part_head(cfg, input_shape))
        return ret

    @classmethod
    def _init_part_head(cls, cfg, input_shape) -> dict:
        return {"part_branch": BodyPartBranch(cfg, input_shape) if cfg.MODEL.BODYPART_ON else None}

    def forward(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ) -> Tuple[List[Instances], Dict[str, torch.Tensor]]:
        if self.training:
            return self._forward_training(images, features, proposals, targets)
        pred_instances = self._forward_box(features, proposals)
        pred_instances = self.forward_with_given_boxes(features, pred_instances)
        return pred_instances, {}

    @torch.jit.unused
    def _forward_training(
        self,
        images: ImageList,
        features: Dict[str, torch.Tensor],
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
    ) -> Tuple[List[Instances], Dict[str, torch.Tensor]]:
        proposals, losses = super().forward(images, features, proposals, targets)
        if self.part_branch is not None:
            losses.update(self.part_branch.losses(features, proposals, self.num_classes))
        return proposals, losses

    def forward_with_given_boxes(
        self, features: Dict[str, torch.Tensor], instances: List[Instances]
    ) -> List[Instances]:
        """The host's mask and keypoint outputs, then the part outputs, for given detections."""
        instances = self._forward_mask(features, instances)
        instances = self._forward_keypoint(features, instances)
        part_branch = self.part_branch
        if part_branch is not None:
            instances = part_branch.inference(features, instances)
        return instances
