"""The data contract: validate_record names source, image, annotation and problem; RLE helpers."""

import copy
import re

import numpy as np
import pytest
from _helpers import FINE_PART_MAP, keypoints, parts_from_map
from detectron2.structures import BoxMode

from bodyparts.data.contract import (
    PART_IGNORE,
    DataContractError,
    decode_rle,
    encode_mask,
    part_label_crop,
    part_label_map,
    rle_counts,
    validate_record,
)
from bodyparts.taxonomy import COCO_PERSON_KEYPOINTS, FINE_LR

SOURCE = "/data/people/train.json"
H, W = 4, 6
KP_NAMES = list(COCO_PERSON_KEYPOINTS.names)


def _valid_record():
    silhouette = FINE_PART_MAP > 0
    return {
        "file_name": "/data/people/img_007.png",
        "height": H,
        "width": W,
        "image_id": 7,
        "part_taxonomy": "fine_lr",
        "annotations": [
            {
                "id": 41,
                "bbox": [0.0, 0.0, 4.0, 4.0],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "iscrowd": 0,
                "segmentation": encode_mask(silhouette),
                "keypoints": keypoints({"nose": (2.5, 0.5, 2), "left_wrist": (3.5, 1.5, 1)}),
                "parts": parts_from_map(FINE_PART_MAP),
                "parts_complete": True,
            },
            {
                "id": 42,
                "bbox": [4.0, 0.0, 6.0, 4.0],
                "bbox_mode": BoxMode.XYXY_ABS,
                "category_id": 0,
                "segmentation": [[4.0, 0.0, 6.0, 0.0, 6.0, 4.0, 4.0, 4.0]],
                "keypoints": None,
                "parts": None,
            },
        ],
    }


def _validate(record):
    validate_record(
        record, source=SOURCE, num_classes=1, num_parts=FINE_LR.num_parts, keypoint_names=KP_NAMES
    )


def _expect_error(record, *fragments, annotation=None):
    with pytest.raises(DataContractError) as e:
        _validate(record)
    msg = str(e.value)
    assert msg.startswith(f"{SOURCE}: image {record.get('image_id', '?')!r}"), msg
    if annotation is not None:
        ann_id = record["annotations"][annotation].get("id")
        assert f"annotation #{annotation} (id {ann_id})" in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def _ann_error(record, *fragments, index=0):
    """As _expect_error, for a problem in annotation ``index``."""
    return _expect_error(record, *fragments, annotation=index)


def test_valid_record_passes():
    _validate(_valid_record())


def test_valid_record_without_optional_fields_passes():
    rec = _valid_record()
    for ann in rec["annotations"]:
        for key in ("segmentation", "keypoints", "parts", "parts_complete", "iscrowd"):
            ann.pop(key, None)
    validate_record(rec)  # no source, no class/part/keypoint counts
    rec["annotations"] = []
    _validate(rec)


# ------------------------------------------------------------ record-level fields


@pytest.mark.parametrize("key", ["file_name", "height", "width", "image_id"])
def test_missing_record_field(key):
    rec = _valid_record()
    del rec[key]
    msg = _expect_error(rec, f"missing field {key!r}")
    assert "annotation" not in msg


def test_missing_file_name_still_names_image():
    rec = _valid_record()
    del rec["file_name"]
    assert "image 7 (?)" in _expect_error(rec, "missing field 'file_name'")


def test_zero_height_is_an_empty_image():
    rec = _valid_record()
    rec["height"] = 0
    _expect_error(rec, "'height'/'width' must be positive integers", "0 x 6", "empty image")


def test_float_width_rejected():
    rec = _valid_record()
    rec["width"] = 6.0
    _expect_error(rec, "'height'/'width' must be positive integers")


def test_annotations_not_a_list():
    rec = _valid_record()
    rec["annotations"] = {"bbox": [0, 0, 1, 1]}
    _expect_error(rec, "field 'annotations' must be a list")


# ------------------------------------------------------------ per-annotation fields


def _bad(mutate, index=0):
    rec = _valid_record()
    mutate(rec["annotations"][index])
    return rec


@pytest.mark.parametrize("key", ["bbox", "bbox_mode", "category_id"])
def test_missing_annotation_field(key):
    _ann_error(_bad(lambda a: a.pop(key)), f"missing field {key!r}")


def test_bbox_wrong_length():
    rec = _bad(lambda a: a.update(bbox=[0.0, 0.0, 4.0]))
    _ann_error(rec, "field 'bbox' must be 4 finite numbers", "[0.0, 0.0, 4.0]")


def test_bbox_not_finite():
    _ann_error(_bad(lambda a: a.update(bbox=[0.0, 0.0, float("nan"), 4.0])), "4 finite numbers")


def test_bbox_zero_width():
    rec = _bad(lambda a: a.update(bbox=[1.0, 1.0, 0.0, 2.0]))
    _ann_error(rec, "field 'bbox' [1.0, 1.0, 0.0, 2.0] has zero or negative width/height")


def test_xyxy_bbox_negative_height():
    # second annotation, XYXY: y1 < y0
    rec = _bad(lambda a: a.update(bbox=[4.0, 3.0, 6.0, 1.0]), index=1)
    _ann_error(rec, "zero or negative width/height", index=1)


def test_bbox_outside_the_image():
    rec = _bad(lambda a: a.update(bbox=[3.0, 0.0, 5.0, 4.0]))  # x1 = 8 > 6 + 1
    _ann_error(rec, "field 'bbox' [3.0, 0.0, 5.0, 4.0] lies outside the 6x4 image")


def test_bbox_one_pixel_tolerance():
    _validate(_bad(lambda a: a.update(bbox=[-1.0, -1.0, 7.0, 5.0])))  # x1 = 6 + 1 still fine


def test_bad_bbox_mode_value():
    _ann_error(_bad(lambda a: a.update(bbox_mode=9)), "field 'bbox_mode': 9 is not a BoxMode")


def test_relative_bbox_mode_rejected():
    rec = _bad(lambda a: a.update(bbox_mode=BoxMode.XYWH_REL))
    _ann_error(rec, "must be XYWH_ABS or XYXY_ABS, got XYWH_REL")


@pytest.mark.parametrize("cat", [1, -1, "person"])
def test_category_id_out_of_range(cat):
    rec = _bad(lambda a: a.update(category_id=cat))
    _ann_error(rec, f"field 'category_id': {cat!r} is not a class index below 1")


def test_polygon_with_odd_coordinates():
    rec = _bad(lambda a: a.update(segmentation=[[4.0, 0.0, 6.0, 0.0, 6.0, 4.0, 4.0]]), index=1)
    msg = "field 'segmentation': a polygon needs an even number >= 6 of coordinates"
    _ann_error(rec, msg, index=1)


def test_empty_polygon_list():
    _ann_error(_bad(lambda a: a.update(segmentation=[]), index=1), "empty polygon list", index=1)


def test_rle_mask_of_the_wrong_size():
    rec = _bad(lambda a: a.update(segmentation=encode_mask(np.ones((W, H), np.uint8))))
    _ann_error(rec, "field 'segmentation': mask size [6, 4] differs from the image size [4, 6]")


def test_segmentation_neither_polygon_nor_rle():
    _ann_error(_bad(lambda a: a.update(segmentation={"counts": "abc"})), "must be an RLE dict")


def test_keypoints_wrong_count():
    rec = _bad(lambda a: a.update(keypoints=a["keypoints"][:-3]))
    _ann_error(rec, "field 'keypoints' has 16 keypoints, the dataset has 17")


def test_keypoints_not_a_multiple_of_three():
    rec = _bad(lambda a: a.update(keypoints=a["keypoints"][:-1]))
    _ann_error(rec, "field 'keypoints' must be a flat list")


def test_keypoint_visibility_three():
    def mutate(a):
        a["keypoints"][3 * 5 + 2] = 3  # left_shoulder

    msg = _ann_error(_bad(mutate), "keypoint left_shoulder: expected numbers x, y and visibility")
    assert "in {0, 1, 2}, got [0.0, 0.0, 3]" in msg


def test_visible_keypoint_outside_the_image_named():
    def mutate(a):
        a["keypoints"][3 * 9 : 3 * 9 + 3] = [6.5, 1.5, 2]  # left_wrist right of the 6 px wide image

    msg = _ann_error(_bad(mutate), "keypoint left_wrist at (6.5, 1.5) with visibility 2")
    assert "lies outside the 6x4 image" in msg


def test_unlabelled_keypoint_outside_the_image_is_fine():
    def mutate(a):
        a["keypoints"][3 * 9 : 3 * 9 + 3] = [60.0, -3.0, 0]

    _validate(_bad(mutate))


def test_keypoint_on_the_image_border_is_inside():
    def mutate(a):
        # continuous coordinates: x = W and y = H are the far edges of the image
        a["keypoints"][3 * 9 : 3 * 9 + 3] = [6.0, 4.0, 2]

    _validate(_bad(mutate))


def test_parts_unknown_label():
    def mutate(a):
        a["parts"][15] = encode_mask(np.zeros((H, W), np.uint8))

    _ann_error(_bad(mutate), "field 'parts': unknown part label 15 (taxonomy has labels 1..14)")


def test_parts_label_zero_is_not_a_part():
    def mutate(a):
        a["parts"][0] = encode_mask(np.zeros((H, W), np.uint8))

    _ann_error(_bad(mutate), "unknown part label 0")


def test_parts_non_integer_key():
    def mutate(a):
        a["parts"]["arm"] = a["parts"].pop(3)

    _ann_error(_bad(mutate), "key 'arm' is not an integer part label")


def test_parts_wrong_size():
    def mutate(a):
        a["parts"][1] = encode_mask(np.ones((H + 1, W), np.uint8))

    msg = "field 'parts[1]': mask size [5, 6] differs from the image size [4, 6]"
    _ann_error(_bad(mutate), msg)


def test_parts_overlap():
    def mutate(a):
        head = FINE_PART_MAP == 1
        head[0, 0] = True  # pixel (0, 0) is also left_upper_arm
        a["parts"][1] = encode_mask(head)

    _ann_error(_bad(mutate), "field 'parts': part masks overlap")


def test_parts_not_a_dict():
    _ann_error(_bad(lambda a: a.update(parts=[1, 2])), "field 'parts' must be a dict")


@pytest.mark.parametrize("value", [1, "yes", None])
def test_parts_complete_not_bool(value):
    rec = _bad(lambda a: a.update(parts_complete=value))
    _ann_error(rec, "'parts_complete' must be true or false")


def test_annotation_without_id_named_by_index():
    rec = _bad(lambda a: (a.pop("id"), a.update(category_id=5)), index=1)
    with pytest.raises(DataContractError) as e:
        _validate(rec)
    assert "annotation #1: field 'category_id'" in str(e.value)


def test_without_source_message_starts_with_image():
    rec = _valid_record()
    rec["height"] = -2
    with pytest.raises(DataContractError, match=r"^image 7 \(/data/people/img_007\.png\): "):
        validate_record(rec)


def test_validate_does_not_modify_record():
    rec = _valid_record()
    before = copy.deepcopy(rec)
    _validate(rec)
    assert rec == before


# ------------------------------------------------------------ RLE helpers


def test_encode_decode_round_trip():
    mask = np.zeros((5, 7), np.uint8)
    mask[1:4, 2:6] = 1
    mask[4, 0] = 1
    rle = encode_mask(mask)
    assert rle["size"] == [5, 7] and isinstance(rle["counts"], str)
    out = decode_rle(rle)
    assert out.dtype == np.uint8 and out.shape == (5, 7)
    assert (out == mask).all()


def test_encode_accepts_bool_masks():
    mask = np.eye(4, dtype=bool)
    assert (decode_rle(encode_mask(mask)) == np.eye(4, dtype=np.uint8)).all()


def test_decode_uncompressed_rle():
    # column-major runs over a 3x2 image: 2 zeros, 3 ones, 1 zero
    # -> column 0 = [0, 0, 1], column 1 = [1, 1, 0]
    out = decode_rle({"size": [3, 2], "counts": [2, 3, 1]})
    assert out.tolist() == [[0, 1], [0, 1], [1, 0]]


def test_part_label_map_composes_labels():
    ann = {"parts": parts_from_map(FINE_PART_MAP)}
    out = part_label_map(ann, H, W)
    assert out.dtype == np.uint8 and out.shape == (H, W)
    assert (out == FINE_PART_MAP).all()


def test_part_label_map_string_keys():
    ann = {"parts": {"2": encode_mask(np.eye(3, dtype=np.uint8))}}
    assert part_label_map(ann, 3, 3).tolist() == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]


@pytest.mark.parametrize("ann", [{"parts": None}, {}])
def test_part_label_map_without_parts_is_ignore(ann):
    out = part_label_map(ann, 2, 3)
    assert out.dtype == np.uint8 and out.shape == (2, 3)
    assert (out == PART_IGNORE).all() and PART_IGNORE == 255


def test_part_label_map_empty_parts_is_all_background():
    assert (part_label_map({"parts": {}}, 2, 2) == 0).all()


def test_rle_counts_of_a_hand_written_string():
    # 3 x 3 mask, column-major runs: 2 zeros, 3 ones, 2 zeros, 2 ones. COCO's string writes each
    # count in 5-bit digits (+ 48; 0x20: more digits follow; 0x10 in the last: negative), from
    # the fourth on as the difference to the count two before: "2", "3", "2", then 2 - 3 = -1 as
    # 0x1F -> chr(48 + 31) = "O"
    rle = {"size": [3, 3], "counts": "232O"}
    assert rle_counts([rle])[0].tolist() == [2, 3, 2, 2]
    assert decode_rle(rle).tolist() == [[0, 1, 0], [0, 1, 1], [1, 0, 1]]  # pycocotools agrees
    # 40 = 8 + 1 * 32: digits 8 | 0x20 (continued) = chr(48 + 40) "X", then 1 = "1"
    assert rle_counts([{"size": [41, 1], "counts": "X11"}])[0].tolist() == [40, 1]


def test_rle_counts_equal_pycocotools_on_random_masks():
    """Every way a contract RLE can come (compressed str or bytes, uncompressed list, several in
    one call, empty strings of 0-pixel masks): the runs equal pycocotools' decoding."""
    rng = np.random.default_rng(0)
    rles, masks = [], []
    for k in range(60):
        h, w = int(rng.integers(1, 70)), int(rng.integers(1, 90))
        mask = (rng.random((h, w)) < rng.random()).astype(np.uint8)
        if k % 5 == 0:  # long runs: many-digit numbers, negative differences
            mask[:] = 0
            mask[h // 3 :, w // 4 :] = 1
        rle = encode_mask(mask)
        if k % 3 == 1:
            rle["counts"] = rle["counts"].encode("ascii")
        elif k % 3 == 2:
            counts = rle_counts([rle])[0]
            rle = {"size": [h, w], "counts": [int(v) for v in counts]}
        rles.append(rle)
        masks.append(mask)
    rles.append({"size": [0, 5], "counts": ""})
    masks.append(np.zeros((0, 5), np.uint8))
    for rle, mask, counts in zip(rles, masks, rle_counts(rles)):
        h, w = mask.shape
        flat = np.repeat(np.arange(counts.size) % 2, counts).astype(np.uint8)
        assert flat.size == h * w
        np.testing.assert_array_equal(flat.reshape(w, h).T, mask)
        np.testing.assert_array_equal(decode_rle(rle), mask)


@pytest.mark.parametrize(
    "counts, message",
    [("2 3", "outside COCO's compressed RLE alphabet"), ("2X", "ends inside a number")],
)
def test_rle_counts_malformed_string(counts, message):
    with pytest.raises(ValueError, match=message):
        rle_counts([{"size": [3, 2], "counts": counts}])


def test_part_label_crop_equals_the_decoded_masks():
    """The rectangle written from the runs equals composing pycocotools' full-image masks; parts
    spanning several columns and touching the image borders included."""
    rng = np.random.default_rng(3)
    for k in range(40):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        labels = np.zeros((h, w), np.uint8)
        y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
        region = labels[
            y0 : y0 + int(rng.integers(1, h + 1)), x0 : x0 + int(rng.integers(1, w + 1))
        ]
        region[...] = rng.integers(0 if k % 2 else 1, 6, size=region.shape)
        ann = {"parts": parts_from_map(labels)}
        crop = part_label_crop(ann, h, w)
        np.testing.assert_array_equal(part_label_map(ann, h, w), labels)
        if not labels.any():
            assert crop is None
            continue
        out, cy, cx = crop
        rows, cols = np.flatnonzero(labels.any(axis=1)), np.flatnonzero(labels.any(axis=0))
        assert (cy, cx) == (rows[0], cols[0])
        np.testing.assert_array_equal(out, labels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1])


def test_part_label_crop_overlapping_parts_later_wins():
    # parts overlap only in files that break the contract (validate_record refuses them): the
    # later part wins, as when the masks are written one after the other
    first, second = np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.uint8)
    first[0:2, 0:2], second[1:3, 1:3] = 1, 1
    ann = {"parts": {4: encode_mask(first), 2: encode_mask(second)}}
    assert part_label_map(ann, 3, 3).tolist() == [[4, 4, 0], [4, 2, 2], [0, 2, 2]]


def test_part_label_crop_errors_name_the_part():
    mask = encode_mask(np.ones((2, 3), np.uint8))
    with pytest.raises(ValueError, match=r"part 5: RLE of size \[2, 3\], the image is \[3, 2\]"):
        part_label_crop({"parts": {5: mask}}, 3, 2)
    short = {"size": [2, 3], "counts": [1, 2]}  # 3 of 6 pixels
    with pytest.raises(ValueError, match="part 5: RLE run lengths cover 3 pixels"):
        part_label_crop({"parts": {5: short}}, 2, 3)


def test_rle_size_not_a_list_is_named():
    from bodyparts.data.contract import DataContractError, validate_record

    rec = {
        "file_name": "x.jpg",
        "height": 4,
        "width": 4,
        "image_id": 9,
        "annotations": [
            {
                "bbox": [0, 0, 2, 2],
                "bbox_mode": 1,
                "category_id": 0,
                "segmentation": {"size": 4, "counts": "abc"},
            }
        ],
    }
    with pytest.raises(
        DataContractError, match=r"image 9.*annotation #0.*'size' must be \[height, width\]"
    ):
        validate_record(rec, source="f.json")


def test_person_annotation_from_silhouette_and_labels():
    from bodyparts.data.contract import mask_box, person_annotation

    sil = np.zeros((4, 6), bool)
    sil[1:3, 2:5] = True
    labels = np.zeros((4, 6), np.uint8)
    labels[1, 2:5] = 3
    labels[2, 4] = 1
    assert mask_box(sil) == [2.0, 1.0, 3.0, 2.0]
    ann = person_annotation(sil, labels)
    assert ann["bbox"] == [2.0, 1.0, 3.0, 2.0] and ann["bbox_mode"] == BoxMode.XYWH_ABS
    assert ann["area"] == 6.0 and (decode_rle(ann["segmentation"]) == sil).all()
    assert sorted(ann["parts"]) == [1, 3]
    assert int(decode_rle(ann["parts"][3]).sum()) == 3 and decode_rle(ann["parts"][1])[2, 4] == 1
    assert person_annotation(sil)["parts"] is None
    assert person_annotation(sil, np.zeros((4, 6), np.uint8))["parts"] == {}


# ------------------------------------------------------------------ label map files


def _write_png(path, labels: np.ndarray) -> str:
    from PIL import Image

    Image.fromarray(labels).save(str(path))
    return str(path)


def _broken_label_png(path, case: str) -> str:
    """A label PNG with one fault; the labels of the sound files are 0..19 over 32 x 32 pixels."""
    labels = (np.arange(32 * 32).reshape(32, 32) * 7 % 20).astype(np.uint8)
    if case == "truncated":  # intact header (size 32 x 32), pixel data cut in the middle
        _write_png(path, labels)
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif case == "empty":
        open(path, "wb").close()
    elif case == "text":
        open(path, "w").write("not a PNG at all\n")
    elif case == "16 bit":
        _write_png(path, labels.astype(np.uint16))  # mode I;16
    elif case == "RGB":
        _write_png(path, np.stack([labels] * 3, axis=-1))
    elif case != "missing":
        raise ValueError(case)
    return str(path)


LABEL_PNG_FAULTS = {
    "truncated": (
        r"part map is truncated or corrupt PNG data \(Pillow: .*\); the header says 32 x 32 "
        r"\(width x height\)"
    ),
    "empty": r"part map is an empty file \(0 bytes\)",
    "text": r"part map is not an image Pillow can identify \(the file starts with b'not a PNG",
    "missing": r"part map not found",
    "16 bit": r"part map has PIL mode I;16 .*expected an 8-bit single-channel label map",
    "RGB": r"part map has PIL mode RGB .*expected an 8-bit single-channel label map",
}


@pytest.mark.parametrize("case", sorted(LABEL_PNG_FAULTS))
def test_image_part_map_names_the_faulty_label_png(tmp_path, case):
    """The record's ``sem_seg_file_name`` is decoded in full; every fault names the file (a
    16-bit map is not cut to 8 bits silently, an RGB map is not taken as labels)."""
    from bodyparts.data.contract import image_part_map

    png = _broken_label_png(tmp_path / "sem.png", case)
    identity = np.arange(20, dtype=np.uint8)
    with pytest.raises(DataContractError, match=re.escape(png) + ": " + LABEL_PNG_FAULTS[case]):
        image_part_map([], 32, 32, identity, sem_seg_file=png)


def test_image_part_map_reads_grey_and_palette_label_pngs(tmp_path):
    from PIL import Image

    from bodyparts.data.contract import image_part_map

    labels = np.array([[0, 1, 2], [255, 2, 1]], dtype=np.uint8)
    grey = _write_png(tmp_path / "grey.png", labels)
    palette = Image.fromarray(labels, mode="L").convert("P")  # indices = the grey values
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, 0)])
    palette.save(str(tmp_path / "palette.png"))
    lut = np.array([0, 2, 1], dtype=np.uint8)  # swaps labels 1 and 2; 255 stays ignored
    expected = np.array([[0, 2, 1], [255, 1, 2]], dtype=np.uint8)
    for path in (grey, str(tmp_path / "palette.png")):
        assert (image_part_map([], 2, 3, lut, sem_seg_file=path) == expected).all()


@pytest.mark.parametrize("case", ["truncated", "empty", "text"])
def test_read_label_png_names_the_faulty_file(tmp_path, case):
    from bodyparts.data.datasets.native import DatasetFormatError, read_label_png

    png = _broken_label_png(tmp_path / "cat.png", case)
    with pytest.raises(DatasetFormatError, match=re.escape(png) + ": Category_ids map is "):
        read_label_png(png, "Category_ids map", (32, 32))
