"""Training on several datasets at once in a shared taxonomy (DATASETS.TRAIN with several names).

PASCAL-Part fixture persons (pascal_part24 parts, no keypoints) and synthetic people (fine_lr parts,
COCO keypoints) train one model in the lr6 taxonomy: part labels of both are mapped to lr6, the
PASCAL persons get unlabelled keypoints (no keypoint loss), and a taxonomy one dataset cannot
express is an error at start-up that names the dataset and the missing parts.
"""

import math
import os
from argparse import Namespace

import pytest
import torch
from _helpers import remove_dataset
from conftest import REPO, TINY_OPTS
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from fixtures.pascal_part import image_a, write_image

from bodyparts.data.datasets.generic import bodyparts_metadata
from bodyparts.data.datasets.native import register_native_split
from bodyparts.data.datasets.pascal_part import load_pascal_part
from bodyparts.engine import Trainer, build_mapper, setup_cfg
from bodyparts.taxonomy import LR6, TaxonomyError

PARTS_CONFIG = os.path.join(
    REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"
)
PASCAL = "test_joint_pascal_fixture"


@pytest.fixture(scope="module")
def pascal_split(tmp_path_factory):
    """Image A of the PASCAL-Part fixture at 96 x 128, registered as a split."""
    root = str(tmp_path_factory.mktemp("joint_pascal"))
    write_image(root, image_a(scale=2))
    anno, images = os.path.join(root, "Annotations_Part"), os.path.join(root, "JPEGImages")
    register_native_split(
        PASCAL,
        lambda on_error="raise": load_pascal_part(anno, images, on_error=on_error),
        bodyparts_metadata("pascal_part24", None),
    )
    yield PASCAL
    remove_dataset(PASCAL)


def _cfg(tmp_path, *opts):
    args = Namespace(
        config_file=PARTS_CONFIG,
        opts=[
            *TINY_OPTS,
            "OUTPUT_DIR",
            str(tmp_path),
            "DATASETS.TRAIN",
            f"('bodyparts_synthetic_train', '{PASCAL}')",
            "BODYPARTS.PART_TAXONOMY",
            "lr6",
            "MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE",
            "0",
            "MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION",
            "8",
            "MODEL.ROI_BODYPART_HEAD.CONV_DIMS",
            "[32, 32]",
            "MODEL.ROI_BODYPART_HEAD.UP_SCALE",
            "1",
            "INPUT.MIN_SIZE_TRAIN",
            "(96,)",
            "SOLVER.IMS_PER_BATCH",
            "4",
            "INPUT.RANDOM_FLIP",
            "none",
            *opts,
        ],
    )
    cfg = setup_cfg(args, for_launch_only=True)
    from bodyparts.data.datasets import register_synthetic_from_cfg

    register_synthetic_from_cfg(cfg)
    return cfg


def test_joint_batches_map_parts_and_keypoints(datasets_root, tmp_path, pascal_split):
    # The PASCAL image is the only landscape image (128 x 96) among square synthetic ones. With
    # Detectron2's aspect-ratio grouping it waits in its own bucket until 4 landscape images have
    # been drawn, i.e. it shows up as a batch of 4 copies of itself after 4 epochs or later,
    # depending on the sampler's order: batch 8 in v0.6, later in main, whose ToIterableDataset
    # shards the sampler by chunks of the batch size. Without grouping, batches follow the
    # TrainingSampler's order: every 9 draws (one epoch) contain it once, so 8 batches of 4 images
    # (32 draws, 3 whole epochs) contain it at least 3 times on every build.
    cfg = _cfg(tmp_path, "DATALOADER.ASPECT_RATIO_GROUPING", "False")
    mapper_cls = Trainer.build_train_loader  # the Trainer picks BodyPartsDatasetMapper by metadata
    seen = {"pascal": 0, "synthetic": 0}
    loader = iter(mapper_cls(cfg))
    for _ in range(8):
        for item in next(loader):
            inst = item["instances"]
            labels = inst.gt_part_maps.tensor
            assert int(labels[labels != 255].max()) <= LR6.num_parts  # lr6 labels only
            kps = inst.gt_keypoints.tensor
            assert kps.shape[1:] == (17, 3)
            if "JPEGImages" in item["file_name"]:
                seen["pascal"] += 1
                assert (kps == 0).all()  # no keypoints in PASCAL-Part: unlabelled, no loss
                assert len(inst) == 3  # persons a, b, c; the empty person d is not a person
                # person a: head (hair, eyes) -> 1, neck + torso -> 2, left arm parts -> 3
                present = set(labels[0].unique().tolist()) - {0, 255}
                assert present == {1, 2, 3}
            else:
                seen["synthetic"] += 1
                assert (kps[..., 2] > 0).any()
        if seen["pascal"] and seen["synthetic"]:
            break
    assert seen["pascal"] and seen["synthetic"], seen


def test_joint_batch_losses_hand_computed(datasets_root, tmp_path, pascal_split):
    """With their layers zeroed, the part, mask and keypoint heads output logits 0, whose losses
    are known by hand: part cross-entropy ln 7 per labelled pixel (lr6: background + 6 parts) times
    ROI_BODYPART_HEAD.LOSS_WEIGHT, silhouette BCE ln 2 per pixel, keypoint cross-entropy
    ln(56 * 56) per visible keypoint (56 x 56 heatmaps). A PASCAL image alone trains parts and
    silhouettes but no keypoints (loss 0, no gradient); joined by a synthetic image, the keypoint
    loss is that of the synthetic persons' visible keypoints."""
    cfg = _cfg(tmp_path)
    torch.manual_seed(0)
    model = build_model(cfg)
    heads = model.roi_heads
    with torch.no_grad():
        for head in (heads.part_branch, heads.mask_head, heads.keypoint_head):
            for p in head.parameters():
                p.zero_()
    mapper = build_mapper(cfg, list(cfg.DATASETS.TRAIN), True)
    pascal = mapper(DatasetCatalog.get(PASCAL)[0])
    synthetic = mapper(DatasetCatalog.get("bodyparts_synthetic_train")[0])
    assert (synthetic["instances"].gt_keypoints.tensor[..., 2] > 0).any()
    part, mask = cfg.MODEL.ROI_BODYPART_HEAD.LOSS_WEIGHT * math.log(7), math.log(2)
    with EventStorage():
        alone = model([pascal])
        assert alone["loss_part"].item() == pytest.approx(part, rel=1e-5)
        assert alone["loss_mask"].item() == pytest.approx(mask, rel=1e-5)
        assert alone["loss_keypoint"].item() == 0.0
        model.zero_grad()
        (alone["loss_part"] + alone["loss_keypoint"]).backward()
        part_grads = [p.grad for p in heads.part_branch.parameters() if p.grad is not None]
        keypoint_grads = [p.grad for p in heads.keypoint_head.parameters() if p.grad is not None]
        assert any(g.any() for g in part_grads) and not any(g.any() for g in keypoint_grads)
        joint = model([pascal, synthetic])
    assert joint["loss_part"].item() == pytest.approx(part, rel=1e-5)
    assert joint["loss_mask"].item() == pytest.approx(mask, rel=1e-5)
    assert joint["loss_keypoint"].item() == pytest.approx(math.log(56 * 56), rel=1e-5)


def test_inexpressible_taxonomy_is_a_start_up_error(
    datasets_root, tmp_path, pascal_split, restore_catalogs
):
    """J-HMDB-like data cannot give fine_lr (no hands/feet): the mapper refuses at start-up."""
    from bodyparts.data.datasets.jhmdb import register_all_jhmdb
    from bodyparts.data.mappers import part_luts_for_datasets

    register_all_jhmdb(str(tmp_path))  # lazy: nothing is read
    with pytest.raises(
        TaxonomyError,
        match=r"dataset 'jhmdb_split1_train'.*'jhmdb10' cannot express.*'fine_lr'.*left_hand",
    ):
        part_luts_for_datasets([PASCAL, "jhmdb_split1_train"], "fine_lr")
    assert set(part_luts_for_datasets([PASCAL, "jhmdb_split1_train"], "lr6")) == {
        "pascal_part24",
        "jhmdb10",
    }


def test_joint_config_on_native_fixtures_of_all_four_datasets(tmp_path, restore_catalogs):
    """configs/joint: PASCAL-Part, ChaLearn LAP, ADE20K 2021 and J-HMDB fixtures in their native
    trees under one datasets root load through the registered splits and map into lr6 part maps and
    J-HMDB keypoints; only J-HMDB persons have labelled keypoints."""
    from detectron2.config import get_cfg
    from detectron2.data import get_detection_dataset_dicts
    from fixtures.ade20k import write_ade20k_2021
    from fixtures.chalearn_lap import write_split_tree
    from fixtures.jhmdb import write_jhmdb_fixture
    from fixtures.pascal_part import write_pascal_part_fixture

    from bodyparts import add_bodyparts_config
    from bodyparts.data.datasets.builtin import register_all
    from bodyparts.data.mappers import BodyPartsDatasetMapper

    root = tmp_path / "datasets"
    ids = write_pascal_part_fixture(
        str(root / "pascal_part"), image_dir="../VOCdevkit/VOC2010/JPEGImages"
    )
    main = root / "VOCdevkit" / "VOC2010" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("\n".join(sorted(ids)) + "\n")
    write_split_tree(str(root))
    write_ade20k_2021(str(root / "ADE20K_2021_17_01"))
    write_jhmdb_fixture(str(root / "jhmdb"))
    register_all(str(root))  # restore_catalogs undoes it
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_file(
        os.path.join(REPO, "configs", "joint", "bodyparts_rcnn_R50_FPN_3x_lr6.yaml")
    )
    cfg.merge_from_list(
        [
            "INPUT.MIN_SIZE_TRAIN",
            "(128,)",
            "INPUT.MAX_SIZE_TRAIN",
            "256",
            "INPUT.RANDOM_FLIP",
            "none",
        ]
    )
    dicts = get_detection_dataset_dicts(
        cfg.DATASETS.TRAIN,
        filter_empty=True,
        min_keypoints=cfg.MODEL.ROI_KEYPOINT_HEAD.MIN_KEYPOINTS_PER_IMAGE,
    )
    taxonomies = {d["part_taxonomy"] for d in dicts}
    assert taxonomies == {"pascal_part24", "lap14", "ade_person15", "jhmdb10"}
    mapper = BodyPartsDatasetMapper(cfg, is_train=True)
    for source in sorted(taxonomies):
        record = next(d for d in dicts if d["part_taxonomy"] == source)
        inst = mapper(record)["instances"]
        labels = inst.gt_part_maps.tensor
        assert len(inst) >= 1 and int(labels[labels != 255].max()) <= LR6.num_parts, source
        kps = inst.gt_keypoints.tensor
        assert kps.shape[1:] == (15, 3)
        assert bool((kps[..., 2] > 0).any()) == (source == "jhmdb10"), source
