"""BodyPartsPanopticFPN: Detectron2's Panoptic FPN with the part ROI head, and the part-aware merge.

Things (persons and any other thing class) come from the instance branch, stuff from the semantic
branch, merged by Detectron2's ``combine_semantic_and_instance_outputs``; then
:func:`part_panoptic_map` writes the part labels of each person inside that person's panoptic
segment, in the 3-channel panoptic-parts prediction format.

Shapes: H x W = output image size in pixels, R = detections of one image, C = part labels
including background (0).
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import torch
from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.meta_arch.panoptic_fpn import PanopticFPN
from detectron2.structures import Instances

from .inference import paste_part_masks
from .part_outputs import as_part_predictions

__all__ = ["BodyPartsPanopticFPN", "part_panoptic_map", "panoptic_metadata_from_cfg", "NO_LABEL"]

NO_LABEL = 255  # part-aware panoptic format: "no segment" (all channels) / "no part" (channel 2)


def part_panoptic_map(
    panoptic_seg: torch.Tensor,
    segments_info: Sequence[Mapping[str, Any]],
    part_label_maps: Optional[Union[torch.Tensor, Mapping[int, torch.Tensor]]],
    thing_scene_ids: Sequence[int],
    stuff_scene_ids: Sequence[int],
    part_thing_ids: Sequence[int] = (0,),
) -> torch.Tensor:
    """The part-aware panoptic map of one image (panoptic-parts prediction format).

    Args:
        panoptic_seg: integer (H, W) segment ids, 0 = no segment (Detectron2's panoptic output).
        segments_info: one dict per segment: ``id``, ``isthing``, ``category_id`` (contiguous thing
            id, or stuff id into ``stuff_classes`` whose entry 0 is "things"), and for things
            ``instance_id`` (index of the detection in ``part_label_maps``).
        part_label_maps: per detection uint8 (H, W) part labels (0 = background, 1..C-1), indexed
            by ``instance_id``: an (R, H, W) tensor or a dict {instance_id: (H, W)}; None (or a
            missing entry) = no part prediction for it.
        thing_scene_ids: scene id of each thing class (0..254).
        stuff_scene_ids: scene id of each stuff class (entry 0, "things", is not a class: -1).
        part_thing_ids: thing classes whose segments carry part labels.
    Returns:
        uint8 (H, W, 3) on CPU: channel 0 the segment's scene id; channel 1 the instance id
        (things: 1, 2, ... per scene id in segment id order; stuff: 0); channel 2 the part label of
        the detection's part map at the pixel (things in ``part_thing_ids`` with a part map), else
        255. Pixels outside every segment are 255 in all channels.
    Raises:
        ValueError: an unknown category or segment kind, a scene id outside 0..254, more than 254
            instances of one scene class.
    """
    seg = panoptic_seg.cpu()
    out = torch.full((*seg.shape, 3), NO_LABEL, dtype=torch.uint8)
    parts_of = frozenset(int(c) for c in part_thing_ids)
    counts: Dict[int, int] = {}
    for info in sorted(segments_info, key=lambda s: int(s["id"])):
        cat, isthing = int(info["category_id"]), bool(info["isthing"])
        table, kind = (thing_scene_ids, "thing") if isthing else (stuff_scene_ids, "stuff")
        if not 0 <= cat < len(table):
            raise ValueError(
                f"segment {info['id']}: {kind} category_id {cat} outside 0..{len(table) - 1}"
            )
        scene = int(table[cat])
        if not 0 <= scene < NO_LABEL:
            raise ValueError(
                f"segment {info['id']}: {kind} category {cat} has scene id {scene}, expected 0..254"
            )
        mask = seg == int(info["id"])
        out[..., 0][mask] = scene
        if not isthing:
            out[..., 1][mask] = 0
            continue
        counts[scene] = counts.get(scene, 0) + 1
        if counts[scene] >= NO_LABEL:
            raise ValueError(
                f"more than {NO_LABEL - 1} instances of scene class {scene} in one image"
            )
        out[..., 1][mask] = counts[scene]
        inst = int(info["instance_id"])
        has_map = part_label_maps is not None and (
            inst in part_label_maps
            if isinstance(part_label_maps, Mapping)
            else inst < len(part_label_maps)
        )
        if cat in parts_of and has_map:
            out[..., 2][mask] = part_label_maps[inst].cpu().to(torch.uint8)[mask]
    return out


def _check_same(names: List[str], key: str, values: List[Any]) -> None:
    if any(v != values[0] for v in values):
        raise ValueError(
            f"datasets {names} disagree on metadata {key!r} ({values}); "
            "a panoptic model has one set of classes"
        )


def panoptic_metadata_from_cfg(cfg) -> Dict[str, Any]:
    """Thing/stuff classes and scene ids of the config's datasets, checked against the model keys.

    Reads the metadata of ``DATASETS.TRAIN`` and ``DATASETS.TEST`` (they must agree).

    Returns:
        ``{"thing_classes", "stuff_classes", "thing_scene_ids", "stuff_scene_ids"}`` (lists).
    Raises:
        ValueError: no dataset, a metadata key missing or inconsistent,
            ``MODEL.SEM_SEG_HEAD.NUM_CLASSES`` != len(stuff_classes),
            ``MODEL.ROI_HEADS.NUM_CLASSES`` != len(thing_classes), or
            ``MODEL.BODYPART_PANOPTIC.PART_THING_IDS`` outside the things.
    """
    names = list(dict.fromkeys([*cfg.DATASETS.TRAIN, *cfg.DATASETS.TEST]))
    if not names:
        raise ValueError(
            "BodyPartsPanopticFPN: DATASETS.TRAIN and DATASETS.TEST are empty; the model takes its "
            "thing/stuff classes and scene ids from their metadata"
        )
    keys = ("thing_classes", "stuff_classes", "thing_scene_ids", "stuff_scene_ids")
    found: Dict[str, List[Any]] = {k: [] for k in keys}
    for name in names:
        meta = MetadataCatalog.get(name)
        for key in keys:
            value = meta.get(key, None)
            if value is None:
                raise ValueError(
                    f"dataset {name!r}: metadata has no {key!r} "
                    "(is it registered, with panoptic metadata?); "
                    "BodyPartsPanopticFPN needs thing_classes, stuff_classes, thing_scene_ids, "
                    "stuff_scene_ids"
                )
            found[key].append(list(value))
    for key in keys:
        _check_same(names, key, found[key])
    ret = {k: v[0] for k, v in found.items()}
    for kind in ("thing", "stuff"):
        if len(ret[f"{kind}_scene_ids"]) != len(ret[f"{kind}_classes"]):
            raise ValueError(
                f"dataset {names[0]!r}: {kind}_scene_ids has "
                f"{len(ret[f'{kind}_scene_ids'])} entries, "
                f"{kind}_classes {len(ret[f'{kind}_classes'])}"
            )
    checks = (
        ("MODEL.SEM_SEG_HEAD.NUM_CLASSES", cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, "stuff_classes"),
        ("MODEL.ROI_HEADS.NUM_CLASSES", cfg.MODEL.ROI_HEADS.NUM_CLASSES, "thing_classes"),
    )
    for key, value, meta_key in checks:
        if value != len(ret[meta_key]):
            raise ValueError(
                f"{key}={value} but dataset {names[0]!r} has "
                f"{len(ret[meta_key])} {meta_key} {ret[meta_key]}"
                + (" (including 'things')" if meta_key == "stuff_classes" else "")
            )
    bad = [
        c
        for c in cfg.MODEL.BODYPART_PANOPTIC.PART_THING_IDS
        if not 0 <= c < len(ret["thing_classes"])
    ]
    if bad:
        raise ValueError(
            f"MODEL.BODYPART_PANOPTIC.PART_THING_IDS {bad} are not thing class ids "
            f"0..{len(ret['thing_classes']) - 1}"
        )
    return ret


@META_ARCH_REGISTRY.register()
class BodyPartsPanopticFPN(PanopticFPN):
    """Detectron2's PanopticFPN whose ROI heads come from the config (``BodyPartROIHeads``: boxes,
    silhouettes, keypoints, part maps) and whose output also has the part-aware panoptic map.

    Output per image (inference with post-processing): Detectron2's ``instances``, ``sem_seg``
    (num stuff classes incl. "things", H, W) scores, ``panoptic_seg`` (int32 (H, W) segment ids,
    segments_info; thing segments also get their ``area``), plus ``part_panoptic``: uint8
    (H, W, 3) on CPU, see :func:`part_panoptic_map`. With ``ROI_BODYPART_HEAD.PASTE_IN_IMAGE`` the
    instances also get ``pred_part_labels`` (R, H, W) uint8.

    When ``MODEL.BODYPART_PANOPTIC.PART_THING_IDS`` leaves some thing classes without parts, the
    part branch trains on (``MAX_FG_PER_IMAGE`` slots) and predicts for the detections of the
    classes with parts only: their ``pred_part_masks`` (:class:`PartPredictions`) holds rows for
    those S detections only (memory for S, not all R), and ``pred_part_labels`` is 0 for the others.
    """

    @configurable
    def __init__(
        self,
        *,
        thing_scene_ids: Sequence[int],
        stuff_scene_ids: Sequence[int],
        part_thing_ids: Sequence[int] = (0,),
        paste_part_labels: bool = False,
        **kwargs,
    ):
        """
        Args:
            thing_scene_ids, stuff_scene_ids, part_thing_ids: see :func:`part_panoptic_map`.
            paste_part_labels: add ``pred_part_labels`` to the output instances.
            Other arguments: as Detectron2's :class:`PanopticFPN`.
        """
        super().__init__(**kwargs)
        self.thing_scene_ids = [int(s) for s in thing_scene_ids]
        self.stuff_scene_ids = [int(s) for s in stuff_scene_ids]
        self.part_thing_ids = [int(c) for c in part_thing_ids]
        self.paste_part_labels = paste_part_labels
        branch = getattr(self.roi_heads, "part_branch", None)
        if branch is not None:  # the classes with parts, as the ROI heads cannot know them
            num_classes = self.roi_heads.num_classes
            every_class = set(range(num_classes)) <= set(self.part_thing_ids)
            branch.set_part_classes(None if every_class else self.part_thing_ids)

    @classmethod
    def from_config(cls, cfg):
        meta = panoptic_metadata_from_cfg(cfg)  # checks before building anything
        if cfg.MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT != 1.0 and not cfg.MODEL.MASK_ON:
            raise ValueError(
                "MODEL.PANOPTIC_FPN.INSTANCE_LOSS_WEIGHT != 1 scales Detectron2's mask head, "
                "which is off (MODEL.MASK_ON False); set the loss weights of the ROI heads instead"
            )
        ret = super().from_config(cfg)
        ret.update(
            thing_scene_ids=meta["thing_scene_ids"],
            stuff_scene_ids=meta["stuff_scene_ids"],
            part_thing_ids=list(cfg.MODEL.BODYPART_PANOPTIC.PART_THING_IDS),
            paste_part_labels=cfg.MODEL.ROI_BODYPART_HEAD.PASTE_IN_IMAGE,
        )
        return ret

    def inference(self, batched_inputs: List[Dict[str, Any]], do_postprocess: bool = True):
        results = super().inference(batched_inputs, do_postprocess)
        if not do_postprocess:
            return results
        for result in results:
            panoptic_seg, segments_info = result["panoptic_seg"]
            for info in segments_info:
                if info["isthing"]:
                    info["area"] = int((panoptic_seg == info["id"]).sum())
            part_maps = self._part_label_maps(result["instances"], segments_info)
            result["part_panoptic"] = part_panoptic_map(
                panoptic_seg,
                segments_info,
                part_maps,
                self.thing_scene_ids,
                self.stuff_scene_ids,
                self.part_thing_ids,
            )
        return results

    def _part_label_maps(self, instances: Instances, segments_info) -> Dict[int, torch.Tensor]:
        """{instance_id: uint8 (H, W) part labels} of the detections that became segments of a
        class with parts and have part probabilities (with ``paste_part_labels``: of every
        detection with part probabilities, also stored as ``pred_part_labels``, zero elsewhere).

        ``pred_part_masks`` (:class:`PartPredictions`) has rows for the detections of the classes
        with parts only."""
        if not instances.has("pred_part_masks"):
            return {}
        masks = as_part_predictions(instances.pred_part_masks)
        boxes, size = instances.pred_boxes.tensor, instances.image_size
        rows = {int(i): k for k, i in enumerate(masks.index.tolist())}  # detection -> its row
        probs = masks.probs
        if self.paste_part_labels:
            instances.pred_part_labels = paste_part_masks(masks, boxes, size)
            return {i: instances.pred_part_labels[i] for i in rows}
        parts_of = set(self.part_thing_ids)
        ids = [
            s["instance_id"] for s in segments_info if s["isthing"] and s["category_id"] in parts_of
        ]
        return {
            i: paste_part_masks(probs[rows[i] : rows[i] + 1], boxes[i : i + 1], size)[0]
            for i in ids
            if i in rows
        }
