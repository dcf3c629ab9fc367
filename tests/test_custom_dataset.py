"""A user's own label set and dataset, end to end, with no file of the package touched
(docs/custom_datasets.md): a 4-part taxonomy with a left/right flip pair and a dataset of tiny
generated images are registered in this file; a model is trained on them for a few steps,
evaluated (numbers in range, and exact on known answers), and run by tools/demo.py in-process."""

import importlib.util
import json
import os
from argparse import Namespace

import cv2
import numpy as np
import pytest
import torch
from _helpers import catalogs_restored
from conftest import REPO
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.structures import Boxes, BoxMode, Instances

from bodyparts.data import BodyPartsDatasetMapper, register_bodyparts_dataset
from bodyparts.data.contract import DataContractError, decode_rle, part_label_map, person_annotation
from bodyparts.engine import Trainer, setup_cfg
from bodyparts.taxonomy import (
    PART_TAXONOMIES,
    TaxonomyError,
    get_part_taxonomy,
    register_part_taxonomy,
    unregister_part_taxonomy,
)

TAXONOMY = "test_arms4"
PARTS = ("head", "body", "left_arm", "right_arm")
HEAD, BODY, LEFT_ARM, RIGHT_ARM = 1, 2, 3, 4
TRAIN, VAL = "test_arms4_train", "test_arms4_val"
SIZE = 64  # images are SIZE x SIZE

PARTS_CONFIG = os.path.join(
    REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"
)
# 4 steps of 2 images of 64 px, small part head, no keypoints (the dataset has none); every
# detection kept so that the barely trained model's outputs exist.
OPTS = [
    "BODYPARTS.PART_TAXONOMY",
    TAXONOMY,
    "DATASETS.TRAIN",
    f"('{TRAIN}',)",
    "DATASETS.TEST",
    f"('{VAL}',)",
    "MODEL.KEYPOINT_ON",
    "False",
    "MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION",
    "8",
    "MODEL.ROI_BODYPART_HEAD.CONV_DIMS",
    "[32, 32]",
    "MODEL.ROI_BODYPART_HEAD.UP_SCALE",
    "1",
    "INPUT.MIN_SIZE_TRAIN",
    f"({SIZE},)",
    "INPUT.MAX_SIZE_TRAIN",
    "128",
    "INPUT.MIN_SIZE_TEST",
    f"{SIZE}",
    "INPUT.MAX_SIZE_TEST",
    "128",
    "DATALOADER.NUM_WORKERS",
    "0",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.MAX_ITER",
    "4",
    "SOLVER.WARMUP_ITERS",
    "2",
    "SOLVER.CHECKPOINT_PERIOD",
    "100",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST",
    "0.0",
    "TEST.DETECTIONS_PER_IMAGE",
    "4",
]


# ------------------------------------------------------------------------------------------------
# the user's code: a taxonomy, a records function, two registered splits


def register_arms4() -> None:
    """A user's part taxonomy: the person's left arm is on the image's right (COCO convention)."""
    register_part_taxonomy(
        TAXONOMY,
        PARTS,
        colors=[(220, 20, 60), (0, 128, 255), (255, 215, 0), (0, 200, 100)],
        flip_pairs=[("left_arm", "right_arm")],
        description="head, body, left arm, right arm",
    )


def draw_person(labels: np.ndarray, x0: int, y0: int) -> None:
    """Paint a 20 x 40 person facing the camera into ``labels`` (H, W), top-left at (x0, y0)."""
    labels[y0 : y0 + 10, x0 + 6 : x0 + 14] = HEAD
    labels[y0 + 10 : y0 + 40, x0 + 5 : x0 + 15] = BODY
    labels[y0 + 11 : y0 + 30, x0 : x0 + 5] = RIGHT_ARM  # image left
    labels[y0 + 11 : y0 + 30, x0 + 15 : x0 + 20] = LEFT_ARM  # image right


def write_dataset(root: str, split: str, num_images: int, seed: int) -> list:
    """Images with 1 or 2 persons on noise (both arms the same colour, so the side comes from the
    position) and their contract records."""
    rng = np.random.RandomState(seed)
    colors = {
        HEAD: (90, 160, 230),
        BODY: (200, 80, 40),
        LEFT_ARM: (90, 160, 230),
        RIGHT_ARM: (90, 160, 230),
    }
    records = []
    for k in range(num_images):
        image = rng.randint(0, 60, size=(SIZE, SIZE, 3)).astype(np.uint8)
        starts = [(int(rng.randint(0, 8)), int(rng.randint(0, 20)))]
        if k % 2:
            starts.append((int(rng.randint(32, 44)), int(rng.randint(0, 20))))
        annotations = []
        for x0, y0 in starts:
            labels = np.zeros((SIZE, SIZE), np.uint8)
            draw_person(labels, x0, y0)
            for label, bgr in colors.items():
                image[labels == label] = bgr
            annotations.append(person_annotation(labels > 0, labels))
        path = os.path.join(root, f"{split}_{k}.png")
        cv2.imwrite(path, image)
        records.append(
            {
                "file_name": path,
                "height": SIZE,
                "width": SIZE,
                "image_id": f"{split}_{k}",
                "annotations": annotations,
            }
        )
    return records


@pytest.fixture(scope="module")
def custom(tmp_path_factory, datasets_root):
    """Registers the taxonomy and both splits, trains for 4 steps (Detectron2's trainer evaluates
    after the last one); everything registered is removed after the module."""
    root = str(tmp_path_factory.mktemp("arms4"))
    out = os.path.join(root, "output")
    with catalogs_restored():
        register_arms4()
        try:
            train = write_dataset(root, "train", 6, seed=0)
            val = write_dataset(root, "val", 2, seed=1)
            register_bodyparts_dataset(
                TRAIN, lambda: [dict(r) for r in train], part_taxonomy=TAXONOMY
            )
            register_bodyparts_dataset(VAL, lambda: [dict(r) for r in val], part_taxonomy=TAXONOMY)
            args = Namespace(
                config_file=PARTS_CONFIG,
                opts=[*OPTS, "OUTPUT_DIR", out],
                eval_only=False,
                resume=False,
                num_gpus=1,
            )
            cfg = setup_cfg(args)
            trainer = Trainer(cfg)
            trainer.resume_or_load(resume=False)
            trainer.train()
            with open(os.path.join(out, "metrics.json")) as f:
                metrics = [json.loads(line) for line in f]
            yield Namespace(cfg=cfg, root=root, out=out, metrics=metrics, val=val)
        finally:
            unregister_part_taxonomy(TAXONOMY)
    assert TAXONOMY not in PART_TAXONOMIES


# ------------------------------------------------------------------------------------------------
# registration


def test_registered_dataset_has_the_taxonomy_tables(custom):
    meta = MetadataCatalog.get(TRAIN)
    assert meta.part_taxonomy == TAXONOMY and meta.part_names == list(PARTS)
    assert meta.part_flip_pairs == [("left_arm", "right_arm")]
    assert meta.evaluator_type == "bodyparts" and meta.data_format == "bodyparts"
    assert meta.get("keypoint_taxonomy", None) is None
    records = DatasetCatalog.get(TRAIN)
    assert len(records) == 6 and {r["part_taxonomy"] for r in records} == {TAXONOMY}
    assert [len(r["annotations"]) for r in records] == [1, 2, 1, 2, 1, 2]
    assert get_part_taxonomy(TAXONOMY).flip_lut().tolist() == [0, 1, 2, 4, 3]


def test_register_dataset_errors_name_the_problem(custom, tmp_path):
    with catalogs_restored():
        with pytest.raises(TaxonomyError, match="unknown part taxonomy 'arms5'"):
            register_bodyparts_dataset("x_train", list, part_taxonomy="arms5")
        with pytest.raises(ValueError, match=f"dataset {TRAIN!r} is registered already"):
            register_bodyparts_dataset(TRAIN, list, part_taxonomy=TAXONOMY)
        bad = [dict(custom.val[0], part_taxonomy="lr6")]
        register_bodyparts_dataset("x_other_taxonomy", lambda: bad, part_taxonomy=TAXONOMY)
        with pytest.raises(
            DataContractError, match="'lr6' differs from the dataset's 'test_arms4'"
        ):
            DatasetCatalog.get("x_other_taxonomy")
        five = dict(custom.val[0], annotations=[dict(custom.val[0]["annotations"][0])])
        five["annotations"][0]["parts"] = {
            **five["annotations"][0]["parts"],
            5: five["annotations"][0]["segmentation"],
        }
        register_bodyparts_dataset("x_label_5", lambda: [five], part_taxonomy=TAXONOMY)
        with pytest.raises(DataContractError, match="x_label_5"):
            DatasetCatalog.get("x_label_5")


def test_flip_swaps_the_taxonomy_left_and_right_parts(custom):
    """The training mapper of this config, with a flip that always happens: the part maps are
    mirrored and left_arm <-> right_arm (the taxonomy's flip pair); head and body stay."""
    kwargs = BodyPartsDatasetMapper.from_config(custom.cfg, is_train=True)
    mapper = BodyPartsDatasetMapper(**{**kwargs, "augmentations": [T.RandomFlip(prob=1.0)]})
    record = DatasetCatalog.get(TRAIN)[0]
    maps = mapper(dict(record))["instances"].gt_part_maps.tensor.numpy()
    assert maps.shape == (1, SIZE, SIZE)
    original = part_label_map(record["annotations"][0], SIZE, SIZE)
    swap = np.array([0, HEAD, BODY, RIGHT_ARM, LEFT_ARM] + [0] * 251, np.uint8)
    np.testing.assert_array_equal(maps[0], swap[original[:, ::-1]])
    assert (maps[0] == LEFT_ARM).any() and (maps[0] == RIGHT_ARM).any()


# ------------------------------------------------------------------------------------------------
# train and evaluate


def test_training_ran_and_evaluated_in_the_custom_taxonomy(custom):
    rows = custom.metrics
    losses = [m for m in rows if "loss_part" in m]
    assert losses and max(m["iteration"] for m in losses) == 3
    assert all(np.isfinite(m["loss_part"]) for m in losses)
    evals = [m for m in rows if "parsing/mIoU" in m]
    assert len(evals) == 1
    row = evals[0]
    for key in (
        "parsing/mIoU",
        "parsing/pixel_acc",
        "parsing/APp50",
        "parsing/PCP50",
        "bbox/AP",
        "segm/AP",
    ):
        assert np.isfinite(row[key]) and 0.0 <= row[key] <= 100.0, (key, row[key])
    # one IoU per label of the taxonomy, by name
    assert {k for k in row if k.startswith("parsing/IoU-")} == {
        f"parsing/IoU-{n}" for n in ("background", *PARTS)
    }
    assert os.path.isfile(os.path.join(custom.out, "model_final.pth"))


def _ground_truth_as_predictions(record: dict, swap_arms: bool = False) -> Instances:
    """The record's persons as detections of score 1 with their part maps (optionally with the
    arms' sides swapped)."""
    anns = record["annotations"]
    boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in anns]
    maps = np.stack([part_label_map(a, SIZE, SIZE) for a in anns])
    if swap_arms:
        maps = np.array([0, HEAD, BODY, RIGHT_ARM, LEFT_ARM], np.uint8)[maps]
    return Instances(
        (SIZE, SIZE),
        pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
        scores=torch.linspace(0.9, 1.0, len(anns)),
        pred_classes=torch.zeros(len(anns), dtype=torch.long),
        pred_masks=torch.stack(
            [torch.from_numpy(decode_rle(a["segmentation"])) for a in anns]
        ).bool(),
        pred_part_labels=torch.from_numpy(maps),
    )


@pytest.mark.parametrize("swap_arms", [False, True], ids=["ground_truth", "arms_swapped"])
def test_evaluator_gives_exact_numbers_on_known_answers(custom, tmp_path, swap_arms):
    """The evaluators the Trainer builds for this dataset: the ground truth scores 100; with the
    arms' sides swapped, the arms' IoU is exactly 0 and head and body keep 100."""
    evaluator = Trainer.build_evaluator(custom.cfg, VAL, str(tmp_path))
    evaluator.reset()
    for rec in DatasetCatalog.get(VAL):
        evaluator.process(
            [{"image_id": rec["image_id"], "file_name": rec["file_name"]}],
            [{"instances": _ground_truth_as_predictions(rec, swap_arms)}],
        )
    results = evaluator.evaluate()
    parsing = results["parsing"]
    assert parsing["IoU-head"] == pytest.approx(100.0) and parsing["IoU-body"] == pytest.approx(
        100.0
    )
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    if swap_arms:
        assert parsing["IoU-left_arm"] == 0.0 and parsing["IoU-right_arm"] == 0.0
    else:
        for key in ("mIoU", "pixel_acc", "APp50", "PCP50", "IoU-left_arm", "IoU-right_arm"):
            assert parsing[key] == pytest.approx(100.0), (key, parsing)


# ------------------------------------------------------------------------------------------------
# the demo, in this process (a subprocess would not see the taxonomy registered here)


def test_demo_runs_the_trained_model_in_the_custom_taxonomy(custom, tmp_path):
    spec = importlib.util.spec_from_file_location(
        "bodyparts_demo_tool", os.path.join(REPO, "tools", "demo.py")
    )
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    image = custom.val[1]["file_name"]
    out = tmp_path / "demo"
    args = demo.get_parser().parse_intermixed_args(
        [
            "--config-file",
            os.path.join(custom.out, "config.yaml"),
            "--input",
            image,
            "--output",
            str(out),
            "--json",
            "--confidence-threshold",
            "0.0",
            "MODEL.WEIGHTS",
            os.path.join(custom.out, "model_final.pth"),
        ]
    )
    assert demo.main(args) == 0
    stem = os.path.splitext(os.path.basename(image))[0]
    result = json.loads((out / f"{stem}.json").read_text())
    assert result["part_taxonomy"] == TAXONOMY
    assert result["part_labels"] == {name: k + 1 for k, name in enumerate(PARTS)}
    assert (result["height"], result["width"]) == (SIZE, SIZE)
    persons = result["persons"]
    assert 1 <= len(persons) <= 4  # TEST.DETECTIONS_PER_IMAGE
    assert result["keypoint_names"] == []  # MODEL.KEYPOINT_ON False: no keypoint taxonomy
    for person in persons:
        assert set(person["parts"]) <= set(PARTS) and person["keypoints"] is None
        assert all(rle["size"] == [SIZE, SIZE] for rle in person["parts"].values())
    parts = cv2.imread(str(out / f"{stem}_parts.png"), cv2.IMREAD_UNCHANGED)
    assert parts.shape == (SIZE, SIZE) and parts.dtype == np.uint8 and parts.max() <= len(PARTS)
    vis = cv2.imread(str(out / f"{stem}.png"))
    assert vis.shape[0] == SIZE and vis.shape[1] >= SIZE
