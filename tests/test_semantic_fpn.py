"""The semantic-FPN part segmenter: image-level ground truth, mapper, class-weighted loss, start-up
checks, multi-scale + flip TTA, the configs, and overfitting a tiny synthetic set."""

import glob
import logging
import math
import os
from argparse import Namespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _helpers import (
    dataset_name,  # noqa: F401  (fixture)
    one_person_record,
    parts_from_map,
    remove_dataset,
    write_image,
    write_label_png,
)
from conftest import REPO, TINY_OPTS
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.meta_arch.semantic_seg import SemSegFPNHead, build_sem_seg_head
from detectron2.modeling.test_time_augmentation import DatasetMapperTTA
from detectron2.structures import BoxMode
from detectron2.utils.events import EventStorage
from torch import nn

import bodyparts.modeling.semantic_seg  # noqa: F401  (registers the head and the meta-architecture)
from bodyparts import add_bodyparts_config
from bodyparts.data.contract import encode_mask, image_part_map
from bodyparts.data.datasets.synthetic import register_synthetic_people
from bodyparts.data.semantic_mapper import BodyPartsSemSegMapper
from bodyparts.data.statistics import part_pixel_counts
from bodyparts.evaluation import BodyPartParsingEvaluator
from bodyparts.modeling.roi_heads.class_weights import class_weights_from_cfg
from bodyparts.modeling.semantic_seg import BodyPartSemSegFPNHead, check_sem_seg_config
from bodyparts.modeling.test_time_augmentation import SemSegTTA
from bodyparts.taxonomy import FINE_LR, TaxonomyError, get_part_taxonomy, mapping_lut

QUICK = os.path.join(REPO, "configs", "quick_schedules", "semantic_fpn_R18_synthetic_cpu.yaml")
PLAIN = os.path.join(
    REPO, "configs", "quick_schedules", "semantic_fpn_plain_R18_synthetic_cpu.yaml"
)
H, W = 4, 6

# Person A (fine_lr): 1 head, 2 torso, 3 left / 4 right upper arm, 9 left / 10 right upper leg;
# its silhouette also covers (2, 0) and (2, 2), which no part covers.
PARTS_A = np.array(
    [[1, 1, 0, 0, 0, 0], [3, 2, 4, 0, 0, 0], [0, 2, 0, 0, 0, 0], [9, 0, 10, 0, 0, 0]],
    dtype=np.uint8,
)
SIL_A = PARTS_A > 0
SIL_A[2, 0] = SIL_A[2, 2] = True
# Person B: no part annotation, box rows 0-1, columns 4-5 (no segmentation).
# Person C: parts_complete False, head at (3, 4), silhouette (3, 4) and (3, 5).
SIL_C = np.zeros((H, W), dtype=bool)
SIL_C[3, 4:] = True
PARTS_C = np.zeros((H, W), dtype=np.uint8)
PARTS_C[3, 4] = 1

IGN = 255
# training ground truth: uncovered silhouette pixels of A ignored
GT_TRAIN = np.array(
    [[1, 1, 0, 0, IGN, IGN], [3, 2, 4, 0, IGN, IGN], [IGN, 2, IGN, 0, 0, 0], [9, 0, 10, 0, 1, IGN]],
    dtype=np.uint8,
)
# test / evaluation ground truth: they are background
GT_TEST = GT_TRAIN.copy()
GT_TEST[2] = [0, 2, 0, 0, 0, 0]
# GT_TRAIN mirrored, then left <-> right (3 <-> 4, 9 <-> 10)
GT_TRAIN_FLIPPED = np.array(
    [[IGN, IGN, 0, 0, 1, 1], [IGN, IGN, 0, 3, 2, 4], [0, 0, 0, IGN, 2, IGN], [IGN, 1, 0, 9, 0, 10]],
    dtype=np.uint8,
)
# GT_TRAIN in lr6 (3 left_arm, 4 right_arm, 5 left_leg, 6 right_leg)
GT_TRAIN_LR6 = np.array(
    [[1, 1, 0, 0, IGN, IGN], [3, 2, 4, 0, IGN, IGN], [IGN, 2, IGN, 0, 0, 0], [5, 0, 6, 0, 1, IGN]],
    dtype=np.uint8,
)


def _annotations():
    box = {"bbox_mode": BoxMode.XYWH_ABS, "category_id": 0, "iscrowd": 0}
    a = {
        **box,
        "bbox": [0.0, 0.0, 3.0, 4.0],
        "segmentation": encode_mask(SIL_A),
        "parts": parts_from_map(PARTS_A),
    }
    b = {**box, "bbox": [4.0, 0.0, 2.0, 2.0]}
    c = {
        **box,
        "bbox": [4.0, 3.0, 2.0, 1.0],
        "segmentation": encode_mask(SIL_C),
        "parts": parts_from_map(PARTS_C),
        "parts_complete": False,
    }
    return [a, b, c]


def _record(tmp_path, **extra):
    image = write_image(tmp_path / "img.png", H, W)
    rec = {
        "file_name": str(tmp_path / "img.png"),
        "height": H,
        "width": W,
        "image_id": "a",
        "part_taxonomy": "fine_lr",
        "annotations": _annotations(),
        **extra,
    }
    return rec, image


def _mapper(is_train, augmentations=(), target="fine_lr", **kwargs):
    return BodyPartsSemSegMapper(
        is_train,
        augmentations=list(augmentations),
        image_format="BGR",
        part_taxonomy=target,
        **kwargs,
    )


def _cfg(path=QUICK, *opts):
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    return cfg


# ------------------------------------------------------------------ image-level ground truth


def test_image_part_map_rules(tmp_path):
    identity = mapping_lut("fine_lr", "fine_lr")
    assert (
        image_part_map(_annotations(), H, W, identity, ignore_unlabelled=True) == GT_TRAIN
    ).all()
    assert (image_part_map(_annotations(), H, W, identity) == GT_TEST).all()
    # the record's own image-level map wins over the annotations; 255 stays ignored
    png = str(tmp_path / "sem.png")
    labels = np.full((H, W), 2, dtype=np.uint8)
    labels[0, 0], labels[0, 1] = 255, 9
    write_label_png(png, labels)
    out = image_part_map(_annotations(), H, W, mapping_lut("fine_lr", "lr6"), sem_seg_file=png)
    assert out[0, 0] == 255 and out[0, 1] == 5 and (out.ravel()[2:] == 2).all()
    bad = str(tmp_path / "small.png")
    write_label_png(bad, np.zeros((H, W - 1)))
    with pytest.raises(ValueError, match=r"small\.png: part map of size \(4, 5\).*\(4, 6\)"):
        image_part_map([], H, W, identity, sem_seg_file=bad)


# ------------------------------------------------------------------ mapper


def test_mapper_exact_labels_and_image(tmp_path):
    rec, image = _record(tmp_path)
    out = _mapper(True)(rec)
    assert (
        out["sem_seg"].dtype == torch.long and out["sem_seg"].numpy().tolist() == GT_TRAIN.tolist()
    )
    assert (out["image"].numpy() == image.transpose(2, 0, 1)).all()
    assert (
        "annotations" not in out
        and out["image_id"] == "a"
        and (out["height"], out["width"]) == (H, W)
    )
    # test time: only the resize; the evaluator's ground truth (uncovered silhouette: background)
    test = _mapper(False, [T.ResizeShortestEdge(8, 100)])(rec)
    assert test["image"].shape == (3, 8, 12)
    assert test["sem_seg"].numpy().tolist() == np.repeat(np.repeat(GT_TEST, 2, 0), 2, 1).tolist()


def test_mapper_flip_swaps_left_right(tmp_path):
    rec, image = _record(tmp_path)
    out = _mapper(True, [T.RandomFlip(prob=1.0)])(rec)
    assert out["sem_seg"].numpy().tolist() == GT_TRAIN_FLIPPED.tolist()
    assert (out["image"].numpy() == image[:, ::-1].transpose(2, 0, 1)).all()
    assert GT_TRAIN[1, 0] == FINE_LR.label_of("left_upper_arm")
    assert out["sem_seg"][1, W - 1] == FINE_LR.label_of("right_upper_arm")
    twice = _mapper(True, [T.RandomFlip(prob=1.0), T.RandomFlip(prob=1.0)])(rec)
    assert twice["sem_seg"].numpy().tolist() == GT_TRAIN.tolist()


def test_mapper_taxonomy_mapping_and_errors(tmp_path, dataset_name):  # noqa: F811
    rec, _ = _record(tmp_path)
    assert _mapper(True, target="lr6")(rec)["sem_seg"].numpy().tolist() == GT_TRAIN_LR6.tolist()
    flipped = _mapper(True, [T.RandomFlip(prob=1.0)], target="lr6")(rec)["sem_seg"][1].tolist()
    # the right arm, mirrored to column 3, becomes left_arm
    assert flipped == [IGN, IGN, 0, 3, 2, 4]
    with pytest.raises(
        TaxonomyError,
        match="img.png: with part taxonomy 'jhmdb10' cannot express taxonomy 'fine_lr'",
    ):
        _mapper(True)({**rec, "part_taxonomy": "jhmdb10"})
    with pytest.raises(KeyError, match="img.png.*needs 'annotations' or 'sem_seg_file_name'"):
        _mapper(True)({k: v for k, v in rec.items() if k != "annotations"})
    assert "sem_seg" not in _mapper(False)({k: v for k, v in rec.items() if k != "annotations"})
    # the record's sem_seg PNG wins; a PNG of the wrong size is named in the error
    png = str(tmp_path / "sem.png")
    write_label_png(png, np.full((H, W), 10))
    assert (_mapper(True, target="lr6")({**rec, "sem_seg_file_name": png})["sem_seg"] == 6).all()
    write_label_png(png, np.zeros((H + 1, W)))
    with pytest.raises(ValueError, match="sem.png: part map of size"):
        _mapper(True)({**rec, "sem_seg_file_name": png})
    # from the config: LUTs of DATASETS.TRAIN checked at start-up
    DatasetCatalog.register(dataset_name, lambda: [rec])
    MetadataCatalog.get(dataset_name).set(part_taxonomy="fine_lr")
    cfg = _cfg(
        QUICK,
        "DATASETS.TRAIN",
        f"('{dataset_name}',)",
        "INPUT.MIN_SIZE_TRAIN",
        "(4,)",
        "INPUT.RANDOM_FLIP",
        "none",
        "BODYPARTS.PART_TAXONOMY",
        "lr6",
    )
    mapper = BodyPartsSemSegMapper(cfg, True)
    assert mapper(rec)["sem_seg"].numpy().tolist() == GT_TRAIN_LR6.tolist()
    MetadataCatalog.remove(dataset_name)
    MetadataCatalog.get(dataset_name).set(part_taxonomy="jhmdb10")
    cfg.BODYPARTS.PART_TAXONOMY = "fine_lr"
    with pytest.raises(TaxonomyError, match=dataset_name):
        BodyPartsSemSegMapper(cfg, True)


# ------------------------------------------------------------------ loss and class weights


def _head(**kwargs):
    return BodyPartSemSegFPNHead(
        {"p2": ShapeSpec(channels=4, stride=4)},
        num_classes=3,
        conv_dims=4,
        common_stride=4,
        norm="",
        **kwargs,
    )


def test_weighted_loss_hand_computed():
    logits = torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1)  # upsampled x4: constant over 4 x 4
    targets = torch.tensor([0] * 8 + [1] * 4 + [2] * 2 + [255] * 2).view(1, 4, 4)
    nll = [math.log(math.exp(1) + math.exp(2) + math.exp(0.5)) - v for v in (1.0, 2.0, 0.5)]
    head = _head(class_weights=torch.tensor([0.5, 1.0, 2.0]), loss_weight=2.0)
    expected = 2.0 * (8 * 0.5 * nll[0] + 4 * 1.0 * nll[1] + 2 * 2.0 * nll[2]) / 14
    assert head.losses(logits, targets)["loss_sem_seg"].item() == pytest.approx(expected, rel=1e-5)
    # without weights: Detectron2's mean cross-entropy
    plain = SemSegFPNHead(
        {"p2": ShapeSpec(channels=4, stride=4)},
        num_classes=3,
        conv_dims=4,
        common_stride=4,
        norm="",
        ignore_value=255,
        loss_weight=2.0,
    )
    ours = _head(loss_weight=2.0).losses(logits, targets)["loss_sem_seg"]
    assert ours.item() == pytest.approx(
        plain.losses(logits, targets)["loss_sem_seg"].item(), rel=1e-6
    )
    assert ours.item() == pytest.approx(2.0 * (8 * nll[0] + 4 * nll[1] + 2 * nll[2]) / 14, rel=1e-5)
    # nothing labelled: zero, still connected to the graph (DDP)
    empty = head.losses(logits.requires_grad_(), torch.full((1, 4, 4), 255))["loss_sem_seg"]
    assert empty.item() == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match="class_weights of shape"):
        _head(class_weights=torch.ones(4))


# inverse frequency of one_person_record's image-level counts [16, 2, 6]: 1 / f = 24/16, 24/2,
# 24/6 = 1.5, 12, 4, normalised to mean 1 over the present labels; absent labels: 0
ONE_PERSON_INVERSE = np.zeros(15)
ONE_PERSON_INVERSE[:3] = np.array([1.5, 12.0, 4.0]) * 3 / 17.5


def test_class_weights_from_training_pixels(dataset_name):  # noqa: F811
    rec = one_person_record("x.png")
    lut = {"fine_lr": mapping_lut("fine_lr", "fine_lr")}
    assert part_pixel_counts([rec], lut, 15, "image")[:3].tolist() == [16, 2, 6]
    assert part_pixel_counts([rec], lut, 15, "box")[:3].tolist() == [4, 2, 6]
    DatasetCatalog.register(dataset_name, lambda: [rec])
    MetadataCatalog.get(dataset_name).set(part_taxonomy="fine_lr")
    cfg = _cfg(
        QUICK,
        "DATASETS.TRAIN",
        f"('{dataset_name}',)",
        "MODEL.BODYPART_SEM_SEG.CLASS_BALANCE",
        "inverse",
    )
    w = class_weights_from_cfg(cfg, "BODYPART_SEM_SEG", background="image")
    np.testing.assert_allclose(w.numpy(), ONE_PERSON_INVERSE, rtol=1e-6)
    # the head is built without them: a NaN placeholder, in the checkpoint, that training fills
    shapes = {f"p{k}": ShapeSpec(channels=128, stride=2**k) for k in (2, 3, 4, 5)}
    head = build_sem_seg_head(cfg, shapes)
    assert isinstance(head, BodyPartSemSegFPNHead)
    assert head.class_weights.shape == (15,) and torch.isnan(head.class_weights).all()
    assert "class_weights" in head.state_dict()
    cfg.MODEL.BODYPART_SEM_SEG.CLASS_WEIGHTS = [1.0, 2.0]
    with pytest.raises(
        ValueError, match=r"MODEL\.BODYPART_SEM_SEG\.CLASS_WEIGHTS has 2 values.*15 labels"
    ):
        class_weights_from_cfg(cfg, "BODYPART_SEM_SEG", background="image")
    with pytest.raises(ValueError, match=r"MODEL\.BODYPART_SEM_SEG\.CLASS_WEIGHTS has 2 values"):
        build_sem_seg_head(cfg, shapes)
    cfg.MODEL.BODYPART_SEM_SEG.CLASS_WEIGHTS = [float(i) for i in range(15)]
    assert build_sem_seg_head(cfg, shapes).class_weights.tolist() == list(range(15))
    cfg.MODEL.BODYPART_SEM_SEG.CLASS_WEIGHTS = []
    cfg.MODEL.BODYPART_SEM_SEG.CLASS_BALANCE = "sqrt"
    with pytest.raises(ValueError, match=r"MODEL\.BODYPART_SEM_SEG\.CLASS_BALANCE.*'sqrt'"):
        build_sem_seg_head(cfg, shapes)


def test_model_with_class_balance_builds_without_the_training_set():
    """The demo and --eval-only build the model with no training set on disk."""
    cfg = _cfg(
        QUICK,
        "DATASETS.TRAIN",
        "('bodyparts_test_never_registered',)",
        "MODEL.BODYPART_SEM_SEG.CLASS_BALANCE",
        "inverse",
    )
    assert "bodyparts_test_never_registered" not in DatasetCatalog.list()
    model = build_model(cfg)
    assert torch.isnan(model.state_dict()["sem_seg_head.class_weights"]).all()
    model.eval()
    with torch.no_grad():
        out = model([{"image": torch.zeros(3, 32, 32, dtype=torch.uint8), "height": 8, "width": 8}])
    assert out[0]["sem_seg"].shape == (15, 8, 8)  # inference needs no class weights
    model.train()
    image, labels = torch.zeros(3, 32, 32, dtype=torch.uint8), torch.zeros(32, 32, dtype=torch.long)
    batch = [{"image": image, "sem_seg": labels}]
    with pytest.raises(RuntimeError, match=r"BODYPART_SEM_SEG.*CLASS_BALANCE are not computed"):
        with EventStorage():
            model(batch)


class _Messages(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_class_weights_computed_in_training_and_restored_from_checkpoint(
    datasets_root,
    tmp_path,
    dataset_name,  # noqa: F811
):
    from detectron2.checkpoint import DetectionCheckpointer

    from bodyparts.data.datasets.generic import bodyparts_metadata
    from bodyparts.engine import Trainer
    from bodyparts.engine.trainer import ClassWeightsHook

    write_image(tmp_path / "x.png", H, W)
    rec = one_person_record(str(tmp_path / "x.png"))
    DatasetCatalog.register(dataset_name, lambda: [rec])
    MetadataCatalog.get(dataset_name).set(**bodyparts_metadata("fine_lr", None))
    out_dir = tmp_path / "out"
    opts = [
        *("DATASETS.TRAIN", f"('{dataset_name}',)", "DATASETS.TEST", "()"),
        *("SOLVER.MAX_ITER", "1", "SOLVER.IMS_PER_BATCH", "1"),
        *(
            "INPUT.MIN_SIZE_TRAIN",
            "(32,)",
            "INPUT.RANDOM_FLIP",
            "none",
            "TEST.AUG.ENABLED",
            "False",
        ),
        *("MODEL.BODYPART_SEM_SEG.CLASS_BALANCE", "inverse"),
    ]
    cfg = _train_cfg(out_dir, QUICK, *opts)
    trainer = Trainer(cfg)
    assert isinstance(trainer._hooks[0], ClassWeightsHook)
    assert torch.isnan(trainer.model.sem_seg_head.class_weights).all()  # not computed when built
    trainer.resume_or_load(resume=False)
    trainer.train()
    np.testing.assert_allclose(
        trainer.model.sem_seg_head.class_weights.numpy(), ONE_PERSON_INVERSE, rtol=1e-6
    )
    final = str(out_dir / "model_final.pth")
    saved = torch.load(final, map_location="cpu", weights_only=False)["model"]
    np.testing.assert_allclose(saved["sem_seg_head.class_weights"], ONE_PERSON_INVERSE, rtol=1e-6)
    batch = [BodyPartsSemSegMapper(cfg, True)(rec)]

    # as --eval-only and the demo do, with no training set: build, load the checkpoint
    remove_dataset(dataset_name)
    loaded = Trainer.build_model(cfg)
    DetectionCheckpointer(loaded).load(final)
    np.testing.assert_allclose(
        loaded.sem_seg_head.class_weights.numpy(), ONE_PERSON_INVERSE, rtol=1e-6
    )
    with EventStorage():
        trained_loss = trainer.model(batch)["loss_sem_seg"].item()
        loaded_loss = loaded(batch)["loss_sem_seg"].item()
        loaded.sem_seg_head.class_weights = None
        unweighted = loaded(batch)["loss_sem_seg"].item()
    assert loaded_loss == pytest.approx(trained_loss, rel=1e-6)
    assert abs(unweighted - trained_loss) > 1e-3 * trained_loss  # the weights matter

    # a checkpoint written before the weights were persistent: a warning naming the key, no crash
    old = str(tmp_path / "old.pth")
    torch.save({"model": {k: v for k, v in saved.items() if "class_weights" not in k}}, old)
    legacy = Trainer.build_model(cfg)
    checkpointer = DetectionCheckpointer(legacy)
    log = _Messages()
    checkpointer.logger.addHandler(log)
    try:
        checkpointer.load(old)
    finally:
        checkpointer.logger.removeHandler(log)
    warnings = [m for m in log.messages if "not found in the checkpoint" in m]
    assert len(warnings) == 1 and "sem_seg_head.class_weights" in warnings[0], log.messages
    assert torch.isnan(legacy.sem_seg_head.class_weights).all()
    legacy.eval()
    with torch.no_grad():
        out = legacy([{"image": batch[0]["image"], "height": H, "width": W}])
    assert out[0]["sem_seg"].shape == (15, H, W)

    # resuming keeps the checkpoint's weights (7: no training set gives them); a new training from
    # the same file as MODEL.WEIGHTS computes them again
    DatasetCatalog.register(dataset_name, lambda: [rec])
    MetadataCatalog.get(dataset_name).set(**bodyparts_metadata("fine_lr", None))
    ckpt = torch.load(final, map_location="cpu", weights_only=False)
    ckpt["model"]["sem_seg_head.class_weights"] = torch.full((15,), 7.0)
    torch.save(ckpt, final)
    resumed = Trainer(cfg)
    resumed.resume_or_load(resume=True)
    assert resumed.start_iter == 1
    resumed._hooks[0].before_train()
    assert resumed.model.sem_seg_head.class_weights.tolist() == [7.0] * 15
    fresh_cfg = _train_cfg(tmp_path / "fresh", QUICK, *opts, "MODEL.WEIGHTS", final)
    fresh = Trainer(fresh_cfg)
    fresh.resume_or_load(resume=False)
    assert fresh.start_iter == 0 and fresh.model.sem_seg_head.class_weights.tolist() == [7.0] * 15
    fresh._hooks[0].before_train()
    np.testing.assert_allclose(
        fresh.model.sem_seg_head.class_weights.numpy(), ONE_PERSON_INVERSE, rtol=1e-6
    )


# ------------------------------------------------------------------ start-up checks and configs


def test_num_classes_start_up_error():
    cfg = _cfg(QUICK, "MODEL.SEM_SEG_HEAD.NUM_CLASSES", "7")
    with pytest.raises(
        ValueError,
        match=r"MODEL\.SEM_SEG_HEAD\.NUM_CLASSES=7 but BODYPARTS\.PART_TAXONOMY='fine_lr' has 15",
    ):
        build_model(cfg)
    cfg.MODEL.META_ARCHITECTURE = "SemanticSegmentor"  # Detectron2's meta-arch with our head
    with pytest.raises(ValueError, match=r"MODEL\.SEM_SEG_HEAD\.NUM_CLASSES=7"):
        build_model(cfg)
    with pytest.raises(ValueError, match=r"MODEL\.SEM_SEG_HEAD\.IGNORE_VALUE=0"):
        check_sem_seg_config(_cfg(QUICK, "MODEL.SEM_SEG_HEAD.IGNORE_VALUE", "0"))


SEMANTIC_CONFIGS = sorted(
    glob.glob(os.path.join(REPO, "configs", "**", "*semantic_fpn*.yaml"), recursive=True)
    + [os.path.join(REPO, "configs", "Base-BodyParts-SemanticFPN.yaml")]
)


@pytest.mark.parametrize(
    "path", SEMANTIC_CONFIGS, ids=[os.path.relpath(p, REPO) for p in SEMANTIC_CONFIGS]
)
def test_semantic_configs_match_their_taxonomy(path):
    cfg = _cfg(path)
    assert check_sem_seg_config(cfg).num_classes == cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES
    if "pascal_person_part" in path:
        assert (cfg.BODYPARTS.PART_TAXONOMY, cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES) == ("ppp6", 7)
        assert cfg.DATASETS.TEST == ("pascal_person_part_val",) and cfg.TEST.AUG.FLIP
        assert cfg.MODEL.WEIGHTS.startswith("catalog://ImageNetPretrained/FAIR/R-")


# ------------------------------------------------------------------ test-time augmentation


def _tta_cfg(min_sizes=(H,), flip=True):
    return _cfg(
        QUICK,
        "TEST.AUG.MIN_SIZES",
        str(tuple(min_sizes)),
        "TEST.AUG.MAX_SIZE",
        "100",
        "TEST.AUG.FLIP",
        str(flip),
    )


class _SideAwareModel(nn.Module):
    """Logits from each pixel's colour; on the right half of the image channel c holds the logit of
    flip_lut[c]. Such a model is flip-equivariant up to the left/right channel swap."""

    def __init__(self, flip_lut):
        super().__init__()
        self.weight = torch.randn(len(flip_lut), 3, generator=torch.Generator().manual_seed(0))
        self.lut = torch.as_tensor(flip_lut, dtype=torch.long)

    def forward(self, inputs):
        outs = []
        for x in inputs:
            logits = torch.einsum("ck,khw->chw", self.weight, x["image"].float() / 255)
            half = logits.shape[-1] // 2
            outs.append(
                {"sem_seg": torch.cat([logits[..., :half], logits[self.lut][..., half:]], dim=-1)}
            )
        return outs


class _ConstantModel(nn.Module):
    """Logits ``values`` (C,) everywhere, channel 0 plus (input height / 4 - 1); records the input
    sizes."""

    def __init__(self, values):
        super().__init__()
        self.values, self.sizes = torch.tensor(values), []

    def forward(self, inputs):
        outs = []
        for x in inputs:
            self.sizes.append(tuple(x["image"].shape[1:]))
            v = self.values.clone()
            v[0] += x["image"].shape[1] / 4 - 1
            outs.append({"sem_seg": v.view(-1, 1, 1).expand(-1, x["height"], x["width"]).clone()})
        return outs


def test_tta_flip_equivariant_model_gives_identical_maps(tmp_path):
    image = torch.as_tensor(write_image(tmp_path / "i.png", H, W).transpose(2, 0, 1).copy())
    model = _SideAwareModel(FINE_LR.flip_lut())
    inp = {"image": image, "height": H, "width": W}
    plain = model([inp])[0]["sem_seg"].softmax(0)
    tta = SemSegTTA(_tta_cfg(), model)([inp])[0]["sem_seg"]
    assert tta.shape == (15, H, W)
    torch.testing.assert_close(tta, plain, rtol=0, atol=1e-6)
    assert (tta.argmax(0) == plain.argmax(0)).all()
    assert (
        plain.argmax(0) != plain.argmax(0).flip(-1)
    ).any()  # the maps are not trivially symmetric


def test_tta_swaps_sides_of_an_asymmetric_prediction():
    values = [0.0] * 15
    values[FINE_LR.label_of("left_upper_arm")] = 2.0  # "left upper arm" everywhere, in every view
    inp = {"image": torch.zeros(3, H, W, dtype=torch.uint8), "height": H, "width": W}
    out = SemSegTTA(_tta_cfg(), _ConstantModel(values))([inp])[0]["sem_seg"]
    z = math.exp(2) + 14
    left, right = FINE_LR.label_of("left_upper_arm"), FINE_LR.label_of("right_upper_arm")
    # the mirrored view's left arm is the original's right arm: both get half of each view's mass
    assert out[left].unique().tolist() == pytest.approx([(math.exp(2) + 1) / z / 2])
    assert out[right].unique().tolist() == pytest.approx([(math.exp(2) + 1) / z / 2])
    assert out[1].unique().tolist() == pytest.approx([1 / z])
    no_flip = SemSegTTA(_tta_cfg(flip=False), _ConstantModel(values))([inp])[0]["sem_seg"]
    assert no_flip[left, 0, 0].item() == pytest.approx(math.exp(2) / z)


def test_tta_multi_scale_averages_at_the_original_size():
    model = _ConstantModel([0.0] * 15)
    inp = {"image": torch.zeros(3, H, W, dtype=torch.uint8), "height": H, "width": W}
    out = SemSegTTA(_tta_cfg(min_sizes=(H, 2 * H), flip=False), model)([inp])[0]["sem_seg"]
    assert model.sizes == [(H, W), (2 * H, 2 * W)] and out.shape == (15, H, W)
    # channel 0 logit 0 at scale 1 and 1 at scale 2 (others 0)
    expected = (1 / 15 + math.e / (math.e + 14)) / 2
    assert out[0].unique().tolist() == pytest.approx([expected])
    assert out.sum(0).allclose(torch.ones(H, W))
    assert isinstance(SemSegTTA(_tta_cfg(), model).tta_mapper, DatasetMapperTTA)


# ------------------------------------------------------------------ training


def _train_cfg(out_dir, path=QUICK, *opts):
    from bodyparts.engine import setup_cfg

    args = Namespace(
        config_file=path,
        opts=[*TINY_OPTS, "OUTPUT_DIR", str(out_dir), *opts],
        eval_only=False,
        resume=False,
        num_gpus=1,
    )
    return setup_cfg(args)


@pytest.mark.parametrize("path", [QUICK, PLAIN], ids=["bodyparts", "plain_detectron2"])
def test_quick_configs_train_and_evaluate(datasets_root, tmp_path, path):
    """Both quick configs train through the bodyparts Trainer (semantic mapper) and are evaluated
    with the parsing metrics."""
    import json

    from bodyparts.engine import Trainer

    cfg = _train_cfg(
        tmp_path,
        path,
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.CHECKPOINT_PERIOD",
        "100",
        "MODEL.BODYPART_SEM_SEG.CLASS_BALANCE",
        "exponential",
    )
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    with open(os.path.join(tmp_path, "metrics.json")) as f:
        rows = [json.loads(line) for line in f]
    # total_loss (= loss_sem_seg, the only loss) logged after the last iteration (index 1)
    assert [r["iteration"] for r in rows if "total_loss" in r] == [1]
    evals = [r for r in rows if "parsing/mIoU" in r]
    assert len(evals) == 1
    assert "parsing/IoU-left_hand" in evals[0] and "parsing/F1-left_hand" in evals[0]
    weights = getattr(trainer.model.sem_seg_head, "class_weights", None)
    assert (weights is not None) == (path == QUICK)  # the plain head has no class weights
    # the evaluation the Trainer runs (test loader, mapper, evaluator by metadata), without and
    # with flip TTA, on a model whose answer is known: the ground truth itself scores mIoU 100
    oracle = _GroundTruthModel(cfg, cfg.DATASETS.TEST[0])
    assert Trainer.test(cfg, oracle)["parsing"]["mIoU"] == pytest.approx(100.0)
    tta_cfg = cfg.clone()
    tta_cfg.defrost()
    tta_cfg.TEST.AUG.MIN_SIZES, tta_cfg.TEST.AUG.FLIP = (96,), True  # the images' own size
    name = cfg.DATASETS.TEST[0]
    evaluator = Trainer.build_evaluator(tta_cfg, name, str(tmp_path / "inference_TTA"))
    res = Trainer.test(tta_cfg, SemSegTTA(tta_cfg, oracle), [evaluator])
    assert res["parsing"]["mIoU"] == pytest.approx(100.0) and "IoU-right_foot" in res["parsing"]
    assert oracle.flipped_views == len(DatasetCatalog.get(name))  # TTA ran the mirrored views
    # the trained model through TTA with its one plain view: softmax of its logits, same argmax,
    # so the mIoU logged after training
    tta_cfg.TEST.AUG.FLIP = False
    evaluator = Trainer.build_evaluator(tta_cfg, name, str(tmp_path / "inference_TTA_plain"))
    res = Trainer.test(tta_cfg, SemSegTTA(tta_cfg, trainer.model), [evaluator])
    assert res["parsing"]["mIoU"] == pytest.approx(evals[0]["parsing/mIoU"], abs=1e-9)


class _GroundTruthModel(nn.Module):
    """A semantic segmenter that knows the test images of ``dataset_name``: for an input image
    equal to one of them, or to its mirror image, it returns logits 10 x one-hot of that view's
    ground truth (mirrored maps with left/right labels swapped), at the input's height x width."""

    def __init__(self, cfg, dataset_name):  # noqa: F811  (a parameter, not the fixture)
        super().__init__()
        taxonomy = get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY)
        self.num_classes = taxonomy.num_classes
        flip = torch.as_tensor(list(taxonomy.flip_lut()) + [0] * (256 - taxonomy.num_classes))
        flip[IGN] = IGN
        mapper = BodyPartsSemSegMapper(cfg, False)
        self.views, self.flipped_views = [], 0
        for rec in DatasetCatalog.get(dataset_name):
            image = mapper(rec)["image"]
            lut = mapping_lut(rec["part_taxonomy"], taxonomy.name)
            gt = image_part_map(rec["annotations"], rec["height"], rec["width"], lut)
            gt = torch.from_numpy(gt).long()
            assert image.shape[1:] == gt.shape  # no resize at test time
            self.views += [(image, gt, False), (image.flip(-1), flip[gt.flip(-1)], True)]

    def forward(self, inputs):
        outs = []
        for x in inputs:
            gt, flipped = next((g, f) for im, g, f in self.views if torch.equal(im, x["image"]))
            self.flipped_views += flipped
            one_hot = F.one_hot(torch.where(gt == IGN, 0, gt), self.num_classes)  # any on ignored
            logits = 10 * one_hot.permute(2, 0, 1).float()
            assert (x["height"], x["width"]) == tuple(gt.shape)
            outs.append({"sem_seg": logits})
        return outs


def test_overfits_tiny_synthetic_set(datasets_root):
    """Two 128 px images with one large person each (seed 3), fine_lr: mIoU > 90 on them, measured
    by the parsing evaluator (Adam with a one-cycle schedule, about 40 s on one core)."""
    torch.manual_seed(0)
    prefix = "bodyparts_semtest"
    register_synthetic_people(
        datasets_root, num_train=2, num_val=1, image_size=128, seed=3, max_persons=1, prefix=prefix
    )
    try:
        cfg = _cfg(
            QUICK,
            "DATASETS.TRAIN",
            f"('{prefix}_train',)",
            "DATASETS.TEST",
            f"('{prefix}_train',)",
            "INPUT.MIN_SIZE_TRAIN",
            "(128,)",
            "INPUT.MIN_SIZE_TEST",
            "128",
            "INPUT.RANDOM_FLIP",
            "none",
            "MODEL.FPN.OUT_CHANNELS",
            "64",
            "MODEL.SEM_SEG_HEAD.CONVS_DIM",
            "64",
            "MODEL.BACKBONE.FREEZE_AT",
            "1",
        )  # a random fixed stem: faster, fits as well
        records = DatasetCatalog.get(f"{prefix}_train")
        batch = [BodyPartsSemSegMapper(cfg, True)(r) for r in records]
        model = build_model(cfg)
        steps = 120  # measured: mIoU 93 after 110 steps
        opt = torch.optim.Adam(model.parameters(), lr=0.005, foreach=True)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=0.005, total_steps=steps, pct_start=0.15
        )
        with EventStorage():
            for _ in range(steps):
                loss = sum(model(batch).values())
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
        model.eval()
        evaluator = BodyPartParsingEvaluator(f"{prefix}_train", "fine_lr", distributed=False)
        test_mapper = BodyPartsSemSegMapper(cfg, False)
        with torch.no_grad():
            for r in records:
                x = test_mapper(r)
                evaluator.process([x], model([x]))
        res = evaluator.evaluate()["parsing"]
        assert res["mIoU"] > 90, res
    finally:
        for split in ("train", "val"):
            remove_dataset(f"{prefix}_{split}")
