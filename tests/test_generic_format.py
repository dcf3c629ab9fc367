"""The generic on-disk format: save/load round trip, malformed files, registration."""

import json
import logging
import os

import numpy as np
import pytest
from _helpers import (
    FINE_PART_MAP,
    dataset_name,  # noqa: F401  (fixture)
    keypoints,
    parts_from_map,
    write_image,
    write_label_png,
)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from bodyparts.data.contract import DataContractError, decode_rle, encode_mask, part_label_map
from bodyparts.data.datasets.generic import (
    FORMAT_VERSION,
    load_bodyparts_json,
    register_bodyparts_json,
    save_bodyparts_json,
)
from bodyparts.taxonomy import COCO_PERSON_KEYPOINTS

KP = list(COCO_PERSON_KEYPOINTS.names)
LOGGER = "bodyparts.data.datasets.generic"
H1, W1 = 4, 6  # image 1: two persons
H2, W2 = 5, 5  # image 2: no persons


def _records(root):
    """Two images under ``root``; image 1 has a person with parts and one without, image 2 none."""
    write_image(os.path.join(root, "img", "a.png"), H1, W1)
    write_image(os.path.join(root, "img", "b.png"), H2, W2)
    sem = np.where(FINE_PART_MAP > 0, FINE_PART_MAP, 255).astype(np.uint8)
    write_label_png(os.path.join(root, "sem", "a.png"), sem)
    write_image(os.path.join(root, "pan", "a.png"), H1, W1)
    second = np.zeros((H1, W1), np.uint8)
    second[1:3, 4:6] = 1
    return [
        {
            "file_name": os.path.join(root, "img", "a.png"),
            "height": H1,
            "width": W1,
            "image_id": 1,
            "part_taxonomy": "fine_lr",
            "sem_seg_file_name": os.path.join(root, "sem", "a.png"),
            "pan_seg_file_name": os.path.join(root, "pan", "a.png"),
            "segments_info": [
                {"id": 7, "category_id": 0, "iscrowd": 0, "isthing": True},
                {"id": 9, "category_id": 0, "iscrowd": 0, "isthing": True},
            ],
            "annotations": [
                {
                    "bbox": [0.0, 0.0, 4.0, 4.0],
                    "bbox_mode": BoxMode.XYWH_ABS,
                    "category_id": 0,
                    "iscrowd": 0,
                    "segmentation": encode_mask(FINE_PART_MAP > 0),
                    "keypoints": keypoints({"nose": (2.5, 0.5, 2), "left_wrist": (3.75, 1.25, 1)}),
                    "parts": parts_from_map(FINE_PART_MAP),
                    "parts_complete": False,
                },
                {
                    "bbox": [4.0, 1.0, 6.0, 3.0],  # XYXY: saved as XYWH [4, 1, 2, 2]
                    "bbox_mode": BoxMode.XYXY_ABS,
                    "category_id": 0,
                    "iscrowd": 0,
                    "segmentation": encode_mask(second),
                    "keypoints": keypoints(),
                    "parts": None,
                },
            ],
        },
        {
            "file_name": os.path.join(root, "img", "b.png"),
            "height": H2,
            "width": W2,
            "image_id": 2,
            "part_taxonomy": "fine_lr",
            "annotations": [],
        },
    ]


@pytest.fixture
def saved(tmp_path):
    """(json_file, image_root, records written) for the two-image set."""
    root = str(tmp_path / "data")
    records = _records(root)
    json_file = str(tmp_path / "people.json")
    save_bodyparts_json(records, json_file, root, part_taxonomy="fine_lr")
    return json_file, root, records


def _rewrite(json_file, edit):
    """Load the JSON payload, let ``edit`` change it in place, write it back."""
    with open(json_file) as f:
        payload = json.load(f)
    edit(payload)
    with open(json_file, "w") as f:
        json.dump(payload, f)


def _load_error(json_file, root, **kwargs):
    with pytest.raises(DataContractError) as e:
        load_bodyparts_json(json_file, root, **kwargs)
    msg = str(e.value)
    assert msg.startswith(json_file + ": "), msg
    return msg


# ------------------------------------------------------------ the file itself


def test_file_layout(saved):
    json_file, root, _ = saved
    with open(json_file) as f:
        payload = json.load(f)
    assert payload["info"] == {
        "bodyparts_format": FORMAT_VERSION,
        "part_taxonomy": "fine_lr",
        "keypoint_taxonomy": "coco17",
    }
    (cat,) = payload["categories"]
    assert cat["id"] == 1 and cat["name"] == "person" and cat["keypoints"] == KP
    assert cat["skeleton"][0] == [16, 14]  # 1-based: left_ankle - left_knee
    assert [img["file_name"] for img in payload["images"]] == ["img/a.png", "img/b.png"]
    assert payload["images"][0]["sem_seg_file_name"] == "sem/a.png"
    a0, a1 = payload["annotations"]
    assert (a0["id"], a1["id"]) == (1, 2) and a0["image_id"] == a1["image_id"] == 1
    assert a0["bbox"] == [0.0, 0.0, 4.0, 4.0] and a0["area"] == 16.0
    assert a1["bbox"] == [4.0, 1.0, 2.0, 2.0] and a1["area"] == 4.0
    # COCO pixel indices: continuous coordinate - 0.5
    assert a0["keypoints"][0:3] == [2.0, 0.0, 2]
    assert a0["keypoints"][27:30] == [3.25, 0.75, 1]
    assert a0["num_keypoints"] == 2 and a1["num_keypoints"] == 0
    assert sorted(a0["parts"]) == ["1", "11", "13", "2", "3", "5", "7", "9"]
    assert "parts" not in a1 and a0["parts_complete"] is False
    assert not os.path.exists(json_file + ".tmp")


# ------------------------------------------------------------ round trip


def test_round_trip(saved):
    json_file, root, written = saved
    records = load_bodyparts_json(json_file, root)
    assert [r["image_id"] for r in records] == [1, 2]
    r1, r2 = records
    assert r1["file_name"] == written[0]["file_name"] and (r1["height"], r1["width"]) == (H1, W1)
    assert r1["part_taxonomy"] == "fine_lr"
    assert r1["sem_seg_file_name"] == os.path.join(root, "sem", "a.png")
    assert r1["pan_seg_file_name"] == os.path.join(root, "pan", "a.png")
    assert r1["segments_info"] == written[0]["segments_info"]
    assert not {"sem_seg_file_name", "pan_seg_file_name", "segments_info"} & set(r2)
    assert r2["annotations"] == []

    p, q = r1["annotations"]
    assert (p["id"], q["id"]) == (1, 2)
    assert p["bbox"] == [0.0, 0.0, 4.0, 4.0] and p["bbox_mode"] == BoxMode.XYWH_ABS
    assert q["bbox"] == [4.0, 1.0, 2.0, 2.0] and q["bbox_mode"] == BoxMode.XYWH_ABS
    assert p["category_id"] == q["category_id"] == 0 and p["iscrowd"] == 0

    assert (decode_rle(p["segmentation"]) == (FINE_PART_MAP > 0)).all()
    expected_q = np.zeros((H1, W1), np.uint8)
    expected_q[1:3, 4:6] = 1
    assert (decode_rle(q["segmentation"]) == expected_q).all()

    # parts: integer keys again, same label map
    assert sorted(p["parts"]) == [1, 2, 3, 5, 7, 9, 11, 13]
    assert (part_label_map(p, H1, W1) == FINE_PART_MAP).all()
    assert p["parts_complete"] is False
    assert "parts" not in q and (part_label_map(q, H1, W1) == 255).all()

    # keypoints: continuous coordinates restored exactly for labelled points
    kps = np.array(p["keypoints"]).reshape(17, 3)
    assert kps[0].tolist() == [2.5, 0.5, 2]
    assert kps[9].tolist() == [3.75, 1.25, 1]
    assert (kps[[i for i in range(17) if i not in (0, 9)], 2] == 0).all()
    assert (np.array(q["keypoints"]).reshape(17, 3)[:, 2] == 0).all()


def test_saving_loaded_records_gives_the_same_file(saved, tmp_path):
    json_file, root, _ = saved
    again = str(tmp_path / "again.json")
    save_bodyparts_json(load_bodyparts_json(json_file, root), again, root, part_taxonomy="fine_lr")
    with open(json_file) as f, open(again) as g:
        assert json.load(f) == json.load(g)


def test_without_keypoint_taxonomy(tmp_path):
    root = str(tmp_path / "data")
    records = _records(root)
    for ann in records[0]["annotations"]:
        ann.pop("keypoints")
    json_file = str(tmp_path / "nokp.json")
    save_bodyparts_json(records, json_file, root, part_taxonomy="fine_lr", keypoint_taxonomy=None)
    loaded = load_bodyparts_json(json_file, root)
    assert all("keypoints" not in a for a in loaded[0]["annotations"])


# ------------------------------------------------------------ malformed files


def test_truncated_json(saved):
    json_file, root, _ = saved
    with open(json_file) as f:
        text = f.read()
    with open(json_file, "w") as f:
        f.write(text[:200])
    msg = _load_error(json_file, root)
    assert "not valid JSON (line 1, column " in msg and "truncated file?" in msg


def test_truncated_json_line_number(tmp_path):
    json_file = str(tmp_path / "multi.json")
    with open(json_file, "w") as f:
        f.write('{\n  "images": [\n    {"id": 1,\n')
    assert "(line 4, column 1:" in _load_error(json_file, str(tmp_path))


def test_missing_json_file(tmp_path):
    json_file = str(tmp_path / "nope.json")
    assert "annotation file not found" in _load_error(json_file, str(tmp_path))


def test_not_an_object(tmp_path):
    json_file = str(tmp_path / "list.json")
    with open(json_file, "w") as f:
        json.dump([1, 2], f)
    assert "top level must be a JSON object" in _load_error(json_file, str(tmp_path))


def test_missing_images(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p.pop("images"))
    assert "missing or non-list top-level field 'images'" in _load_error(json_file, root)


def test_no_person_category(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["categories"][0].update(name="human"))
    assert "exactly one category named 'person'" in _load_error(json_file, root)


def test_annotation_with_unknown_image_id(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["annotations"][1].update(image_id=99))
    assert "annotations refer to image ids not in 'images': ['99']" in _load_error(json_file, root)


def test_annotation_without_image_id(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["annotations"][0].pop("image_id"))
    assert "has no image_id" in _load_error(json_file, root)


def test_unknown_category_id(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["annotations"][1].update(category_id=3))
    msg = _load_error(json_file, root)
    assert "image 1" in msg and "annotation id 2" in msg and "unknown category_id 3" in msg


def test_duplicate_image_ids(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["images"][1].update(id=1))
    assert "duplicate image ids in 'images'" in _load_error(json_file, root)


def test_missing_part_taxonomy(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["info"].pop("part_taxonomy"))
    assert "info.part_taxonomy is missing" in _load_error(json_file, root)


def test_unknown_part_taxonomy(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["info"].update(part_taxonomy="no_such_parts"))
    assert "info.part_taxonomy: unknown part taxonomy 'no_such_parts'" in _load_error(
        json_file, root
    )


def test_missing_image_file(saved):
    json_file, root, _ = saved
    os.remove(os.path.join(root, "img", "b.png"))
    msg = _load_error(json_file, root)
    assert f"image 2: image file {os.path.join(root, 'img', 'b.png')} not found" in msg
    assert len(load_bodyparts_json(json_file, root, check_files=False)) == 2


def test_image_missing_height(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["images"][1].pop("height"))
    assert "image 2: missing field 'height'" in _load_error(json_file, root)


def test_contract_violation_names_file_image_annotation(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["annotations"][0].update(bbox=[0, 0, 0, 4]))
    msg = _load_error(json_file, root)
    assert "image 1 (" in msg and "annotation #0 (id 1)" in msg
    assert "zero or negative width/height" in msg


def test_keypoint_count_checked_against_category(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["annotations"][0]["keypoints"].__delitem__(slice(-3, None)))
    assert "has 16 keypoints, the dataset has 17" in _load_error(json_file, root)


def test_part_label_beyond_taxonomy(saved):
    json_file, root, _ = saved
    extra = {"15": encode_mask(np.zeros((H1, W1)))}
    _rewrite(json_file, lambda p: p["annotations"][0]["parts"].update(extra))
    assert "unknown part label 15 (taxonomy has labels 1..14)" in _load_error(json_file, root)


def test_bad_on_error_value(saved):
    json_file, root, _ = saved
    with pytest.raises(ValueError, match="on_error must be 'raise' or 'skip'"):
        load_bodyparts_json(json_file, root, on_error="ignore")


def test_skip_keeps_good_images_and_logs_count(saved, caplog):
    json_file, root, _ = saved

    # image 1 gets a visible keypoint outside the image, image 2 stays good
    def edit(payload):
        payload["annotations"][0]["keypoints"][27:30] = [20, 1, 2]

    _rewrite(json_file, edit)
    with pytest.raises(DataContractError, match="keypoint left_wrist"):
        load_bodyparts_json(json_file, root)
    caplog.set_level(logging.WARNING, logger=LOGGER)
    records = load_bodyparts_json(json_file, root, on_error="skip")
    assert [r["image_id"] for r in records] == [2]
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert any(m.startswith("skipping: ") and "keypoint left_wrist" in m for m in messages)
    assert f"{json_file}: skipped 1 of 2 images with problems" in messages


def test_skip_missing_image_file(saved, caplog):
    json_file, root, _ = saved
    os.remove(os.path.join(root, "img", "a.png"))
    caplog.set_level(logging.WARNING, logger=LOGGER)
    assert [r["image_id"] for r in load_bodyparts_json(json_file, root, on_error="skip")] == [2]
    assert any("skipped 1 of 2 images" in r.getMessage() for r in caplog.records)


def test_skip_does_not_hide_file_level_errors(saved):
    json_file, root, _ = saved
    _rewrite(json_file, lambda p: p["info"].pop("part_taxonomy"))
    with pytest.raises(DataContractError, match="info.part_taxonomy is missing"):
        load_bodyparts_json(json_file, root, on_error="skip")


# ------------------------------------------------------------ registration


def test_register_is_lazy_and_sets_metadata(tmp_path, dataset_name):  # noqa: F811
    root = str(tmp_path / "data")
    json_file = str(tmp_path / "later.json")
    register_bodyparts_json(dataset_name, json_file, root, part_taxonomy="fine_lr", extra_key="x")
    assert dataset_name in DatasetCatalog.list()  # nothing read yet: the file does not exist

    meta = MetadataCatalog.get(dataset_name)
    assert meta.thing_classes == ["person"]
    assert meta.part_taxonomy == "fine_lr"
    assert meta.json_file == json_file and meta.image_root == root
    assert meta.thing_dataset_id_to_contiguous_id == {1: 0}
    assert meta.evaluator_type == "bodyparts" and meta.data_format == "bodyparts"
    assert meta.keypoint_names == KP
    assert ("left_wrist", "right_wrist") in meta.keypoint_flip_map
    assert len(meta.keypoint_flip_map) == 8
    assert meta.part_flip_pairs[0] == ("left_upper_arm", "right_upper_arm")
    assert len(meta.keypoint_oks_sigmas) == 17 and meta.extra_key == "x"

    save_bodyparts_json(_records(root), json_file, root, part_taxonomy="fine_lr")
    records = DatasetCatalog.get(dataset_name)
    assert [r["image_id"] for r in records] == [1, 2]
    assert len(records[0]["annotations"]) == 2


def test_registered_taxonomy_must_match_file(saved, dataset_name):  # noqa: F811
    json_file, root, _ = saved
    register_bodyparts_json(dataset_name, json_file, root, part_taxonomy="lr6")
    expected = f"part taxonomy 'fine_lr' differs from {dataset_name}'s 'lr6'"
    with pytest.raises(DataContractError, match=expected):
        DatasetCatalog.get(dataset_name)


def test_registered_person_id_must_match_file(saved, dataset_name):  # noqa: F811
    json_file, root, _ = saved
    register_bodyparts_json(
        dataset_name, json_file, root, part_taxonomy="fine_lr", person_category_id=5
    )
    with pytest.raises(DataContractError, match="person category id 1 differs"):
        DatasetCatalog.get(dataset_name)


def test_image_entry_not_an_object(tmp_path):
    import json as _json

    from bodyparts.data.contract import DataContractError
    from bodyparts.data.datasets.generic import load_bodyparts_json

    path = tmp_path / "bad.json"
    path.write_text(
        _json.dumps(
            {
                "info": {"part_taxonomy": "fine_lr"},
                "images": ["oops"],
                "annotations": [],
                "categories": [{"id": 1, "name": "person"}],
            }
        )
    )
    with pytest.raises(DataContractError, match=r"bad.json: images\[0\] must be an object"):
        load_bodyparts_json(str(path), str(tmp_path))
