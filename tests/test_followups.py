"""Unmapped part labels in the class-balance pixel counts; where the shared helpers live.

A CIHP person mapped to lr6 (``mapping_lut("cihp20", "lr6")``): hair (2) -> head (1), left_arm
(14) -> left_arm (3), upper_clothes (5) -> 255 (``PART_UNMAPPED``: no loss, not scored). Its
unmapped pixels are neither a part nor background in the counts, as in the loss targets.
"""

import numpy as np
import pytest
from _helpers import (
    dataset_name,  # noqa: F401  (fixture)
    parts_from_map,
)
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from bodyparts.config import add_bodyparts_config
from bodyparts.data.statistics import part_pixel_counts
from bodyparts.modeling.losses import class_balance_weights
from bodyparts.modeling.roi_heads.class_weights import class_weights_from_cfg
from bodyparts.taxonomy import UNMAPPED_LABEL, get_part_taxonomy, mapping_lut

CIHP = get_part_taxonomy("cihp20")
HAIR, UPPER_CLOTHES, LEFT_ARM = (CIHP.label_of(p) for p in ("hair", "upper_clothes", "left_arm"))


def _cihp_record() -> dict:
    """4 x 6 image, one person in a 3 x 4 box (12 px) at the top left: hair 2 px, upper clothes
    4 px, left arm 3 px (9 part pixels). lr6 pixel counts: box background 12 - 9 = 3, image
    background 24 - 9 = 15, head 2, left_arm 3; the 4 upper-clothes pixels nowhere."""
    parts = np.zeros((4, 6), dtype=np.uint8)
    parts[0, :2] = HAIR
    parts[1, :3] = UPPER_CLOTHES
    parts[2, 0] = UPPER_CLOTHES
    parts[2, 1:3] = LEFT_ARM
    parts[3, 0] = LEFT_ARM
    ann = {
        "bbox": [0.0, 0.0, 3.0, 4.0],
        "bbox_mode": BoxMode.XYWH_ABS,
        "category_id": 0,
        "parts": parts_from_map(parts),
    }
    return {
        "file_name": "x.png",
        "height": 4,
        "width": 6,
        "image_id": 0,
        "part_taxonomy": "cihp20",
        "annotations": [ann],
    }


def test_part_pixel_counts_leave_unmapped_labels_out():
    lut = mapping_lut("cihp20", "lr6")
    assert lut[UPPER_CLOTHES] == UNMAPPED_LABEL == 255  # the case that indexed counts[255]
    luts = {"cihp20": lut}
    rec = _cihp_record()
    assert part_pixel_counts([rec], luts, 7, "box").tolist() == [3, 2, 0, 3, 0, 0, 0]
    assert part_pixel_counts([rec], luts, 7, "image").tolist() == [15, 2, 0, 3, 0, 0, 0]


def test_class_balance_on_a_dataset_with_unmapped_labels(dataset_name):  # noqa: F811
    """CLASS_BALANCE inverse of an lr6 model trained on CIHP: box counts [3, 2, 0, 3, 0, 0, 0],
    f = 3/8, 2/8, 3/8, 1 / f = 8/3, 4, 8/3 (mean 28/9), normalised: 6/7, 9/7, 6/7; absent 0."""
    DatasetCatalog.register(dataset_name, lambda: [_cihp_record()])
    MetadataCatalog.get(dataset_name).set(part_taxonomy="cihp20")
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_list(
        [
            "BODYPARTS.PART_TAXONOMY",
            "lr6",
            "DATASETS.TRAIN",
            f"('{dataset_name}',)",
            "MODEL.ROI_BODYPART_HEAD.CLASS_BALANCE",
            "inverse",
        ]
    )
    expected = np.array([6, 9, 0, 6, 0, 0, 0]) / 7
    np.testing.assert_allclose(class_weights_from_cfg(cfg).numpy(), expected, rtol=1e-6)
    exponential = class_balance_weights([3, 2, 0, 3, 0, 0, 0], "exponential")
    cfg.MODEL.ROI_BODYPART_HEAD.CLASS_BALANCE = "exponential"
    np.testing.assert_allclose(class_weights_from_cfg(cfg).numpy(), exponential, rtol=1e-6)


def test_read_id_list_lives_in_native_and_is_re_exported(tmp_path):
    from bodyparts.data.datasets import mhp_v2, native, pascal_part

    assert native.read_id_list.__module__ == native.__name__
    assert "read_id_list" in native.__all__ and "read_id_list" in pascal_part.__all__
    assert pascal_part.read_id_list is native.read_id_list is mhp_v2.read_id_list
    ids = tmp_path / "val.txt"
    ids.write_text("a/img_2.jpg b/img_2.png\n\nimg_1\n")
    assert native.read_id_list(str(ids)) == ["img_2", "img_1"]
    with pytest.raises(native.DatasetFormatError, match=r"missing\.txt: split list file not found"):
        native.read_id_list(str(tmp_path / "missing.txt"))


def test_class_weights_hook_is_exported_by_the_engine():
    import bodyparts.engine
    from bodyparts.engine import ClassWeightsHook
    from bodyparts.engine.trainer import ClassWeightsHook as defined

    assert ClassWeightsHook is defined
    assert "ClassWeightsHook" in bodyparts.engine.__all__
