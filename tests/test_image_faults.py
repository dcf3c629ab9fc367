"""Image-level faults: every mapper and tools/check_dataset.py name the file and the problem, and
under ``BODYPARTS_ON_ERROR=skip`` a training data loader skips the bad image and goes on.

Each fault is a file written under ``tmp_path``: a JPEG truncated after its header, a 0-byte file, a
text file and a PNG behind a ``.jpg`` name, a CMYK JPEG, a 16-bit grey PNG, an image whose size
differs from its record, a missing file.
"""

import importlib.util
import json
import logging
import os

import numpy as np
import pytest
from _helpers import (
    FINE_PART_MAP,
    dataset_name,  # noqa: F401  (fixture)
    parts_from_map,
)
from conftest import REPO
from detectron2.data import DatasetCatalog, MetadataCatalog, build_detection_train_loader
from detectron2.data.detection_utils import SizeMismatchError
from detectron2.data.samplers import TrainingSampler
from PIL import Image

from bodyparts.data.contract import DataContractError, encode_mask
from bodyparts.data.datasets.generic import bodyparts_metadata
from bodyparts.data.mappers import BodyPartsDatasetMapper
from bodyparts.data.panoptic_mapper import BodyPartsPanopticMapper
from bodyparts.data.semantic_mapper import BodyPartsSemSegMapper
from bodyparts.taxonomy import FINE_LR, mapping_lut

H, W = 4, 6
BIG_H, BIG_W = 32, 48  # the truncated JPEG: big enough for a body worth truncating


def _person() -> dict:
    silhouette = FINE_PART_MAP > 0
    return {
        "bbox": [0.0, 0.0, 4.0, 4.0],
        "bbox_mode": 1,  # BoxMode.XYWH_ABS
        "category_id": 0,
        "iscrowd": 0,
        "segmentation": encode_mask(silhouette),
        "parts": parts_from_map(FINE_PART_MAP),
    }


def _record(path, height=H, width=W, image_id=0) -> dict:
    return {
        "file_name": str(path),
        "height": height,
        "width": width,
        "image_id": image_id,
        "part_taxonomy": "fine_lr",
        "annotations": [_person()] if (height, width) == (H, W) else [],
        "pan_seg_file_name": str(os.path.join(os.path.dirname(str(path)), "pan.png")),
        "segments_info": [],
    }


def _rgb(height=H, width=W) -> np.ndarray:
    values = np.arange(height * width * 3, dtype=np.int64).reshape(height, width, 3) * 7 % 251
    return values.astype(np.uint8)


def _write_pan_png(folder) -> None:
    """An all-unlabelled panoptic PNG (id 0) for the panoptic mapper's good records."""
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(os.path.join(str(folder), "pan.png"))


def _truncated_jpeg(path) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (BIG_H, BIG_W, 3), dtype=np.uint8)
    Image.fromarray(noise).save(str(path), format="JPEG", quality=90)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header intact, half of the body gone
    with Image.open(str(path)) as im:  # what the loaders read: the header is fine
        assert im.size == (BIG_W, BIG_H) and im.format == "JPEG"


def _bad_files(folder):
    """fault -> (record, words the message must contain)."""
    _truncated_jpeg(folder / "truncated.jpg")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("this is not an image\n")
    Image.fromarray(_rgb()).save(str(folder / "small.png"))
    return {
        "truncated": (_record(folder / "truncated.jpg", BIG_H, BIG_W), ["truncated"]),
        "empty": (_record(folder / "empty.jpg"), ["empty", "0 bytes"]),
        "text": (_record(folder / "text.jpg"), ["not an image"]),
        "size": (_record(folder / "small.png", H + 1, W), ["4 x 6", "5 x 6"]),
        "missing": (_record(folder / "missing.jpg"), ["not found"]),
    }


FAULTS = ["truncated", "empty", "text", "size", "missing"]


def _instance_mapper(is_train=True):
    return BodyPartsDatasetMapper(
        is_train,
        augmentations=[],
        image_format="BGR",
        use_instance_mask=True,
        instance_mask_format="bitmask",
        part_luts={"fine_lr": mapping_lut("fine_lr", "fine_lr")},
        part_flip_lut=FINE_LR.flip_lut(),
    )


def _semantic_mapper(is_train=True):
    return BodyPartsSemSegMapper(
        is_train,
        augmentations=[],
        image_format="BGR",
        part_taxonomy="fine_lr",
        part_luts={"fine_lr": mapping_lut("fine_lr", "fine_lr")},
    )


def _panoptic_mapper(is_train=True):
    return BodyPartsPanopticMapper(
        is_train,
        augmentations=[],
        image_format="BGR",
        use_instance_mask=True,
        instance_mask_format="bitmask",
        part_luts={"fine_lr": mapping_lut("fine_lr", "fine_lr")},
        part_flip_lut=FINE_LR.flip_lut(),
        part_thing_ids=[0],
    )


MAPPERS = {"instance": _instance_mapper, "semantic": _semantic_mapper, "panoptic": _panoptic_mapper}


# ------------------------------------------------------------ errors name the file and the fault


@pytest.mark.parametrize("mapper", sorted(MAPPERS))
@pytest.mark.parametrize("fault", FAULTS)
def test_mapper_error_names_file_and_fault(tmp_path, monkeypatch, mapper, fault):
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "raise")
    record, words = _bad_files(tmp_path)[fault]
    with pytest.raises(DataContractError) as e:
        MAPPERS[mapper]()(record)
    message = str(e.value)
    assert record["file_name"] in message
    for word in words:
        assert word in message, message


def test_truncated_jpeg_message(tmp_path):
    """The whole message of the fault of the issue: file, problem, Pillow's words."""
    record, _ = _bad_files(tmp_path)["truncated"]
    with pytest.raises(DataContractError) as e:
        _instance_mapper()(record)
    assert str(e.value).startswith(f"{record['file_name']}: truncated or corrupt JPEG data")
    assert "image file is truncated" in str(e.value)
    assert e.value.path == record["file_name"]


def test_size_mismatch_is_detectron2s_error(tmp_path):
    """Code that catches Detectron2's SizeMismatchError still catches it."""
    record, _ = _bad_files(tmp_path)["size"]
    with pytest.raises(
        SizeMismatchError,
        match=r"small.png: the image is 4 x 6 \(height x width\), " r"the record says 5 x 6",
    ):
        _instance_mapper()(record)


def test_size_mismatch_names_exif_rotation(tmp_path):
    """A photo whose EXIF orientation turns it (as Detectron2's read_image does) while its record
    gives the stored (header) size: the message says why the sizes differ."""
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(_rgb()).save(str(tmp_path / "phone.jpg"), exif=exif)
    with pytest.raises(SizeMismatchError) as e:
        _instance_mapper()(_record(tmp_path / "phone.jpg"))
    assert str(e.value) == (
        f"{tmp_path / 'phone.jpg'}: the image is 6 x 4 (height x width) after its EXIF "
        "orientation 6, the record says 4 x 6"
    )


# ------------------------------------------------------------ odd but valid images load as expected


@pytest.mark.parametrize("mapper", sorted(MAPPERS))
def test_png_behind_jpg_name_loads(tmp_path, mapper):
    """Pillow reads the content, not the name: a PNG named .jpg is the image it holds."""
    _write_pan_png(tmp_path)
    Image.fromarray(_rgb()).save(str(tmp_path / "png.jpg"), format="PNG")
    out = MAPPERS[mapper]()(_record(tmp_path / "png.jpg"))
    assert out["image"].numpy().transpose(1, 2, 0).tolist() == _rgb()[:, :, ::-1].tolist()  # BGR


@pytest.mark.parametrize("mapper", sorted(MAPPERS))
def test_cmyk_jpeg_is_converted_to_the_input_format(tmp_path, mapper):
    """A CMYK JPEG loads as a 3-channel image in INPUT.FORMAT (Pillow: R = 255 - C - K, ...)."""
    _write_pan_png(tmp_path)
    cmyk = np.zeros((H, W, 4), np.uint8)
    cmyk[:, :3] = (0, 255, 255, 0)  # red
    cmyk[:, 3:] = (255, 0, 255, 55)  # green at 200
    Image.frombytes("CMYK", (W, H), cmyk.tobytes()).save(str(tmp_path / "cmyk.jpg"), quality=100)
    assert Image.open(str(tmp_path / "cmyk.jpg")).mode == "CMYK"
    image = MAPPERS[mapper]()(_record(tmp_path / "cmyk.jpg"))["image"].numpy()
    assert image.shape == (3, H, W)
    bgr = image.transpose(1, 2, 0).astype(np.int64)
    assert np.abs(bgr[:, :3] - np.array([0, 0, 255])).max() <= 3
    assert np.abs(bgr[:, 3:] - np.array([0, 200, 0])).max() <= 3


@pytest.mark.parametrize("mapper", sorted(MAPPERS))
def test_16bit_grey_png_is_scaled_to_8_bits(tmp_path, mapper):
    """A 16-bit grey PNG (mode I;16) keeps its greys: value v becomes v >> 8 in each channel, as
    Pillow does for 16-bit colour PNGs (its own I;16 -> RGB conversion clips to 255 instead)."""
    _write_pan_png(tmp_path)
    grey = (np.arange(H * W, dtype=np.uint16).reshape(H, W) * 2731).astype(np.uint16)
    Image.fromarray(grey).save(str(tmp_path / "grey16.png"))
    assert Image.open(str(tmp_path / "grey16.png")).mode == "I;16"
    image = MAPPERS[mapper]()(_record(tmp_path / "grey16.png"))["image"].numpy()
    expected = (grey >> 8).astype(np.uint8)
    assert image.shape == (3, H, W)
    for channel in range(3):
        assert image[channel].tolist() == expected.tolist()


def test_32bit_image_is_a_clear_error(tmp_path):
    """Integer or float pixels of unknown range (mode I / F, e.g. a TIFF) are not guessed at."""
    Image.fromarray(np.full((H, W), 70000, np.int32)).save(str(tmp_path / "deep.tif"))
    with pytest.raises(DataContractError, match=r"deep.tif: .*mode I"):
        _instance_mapper()(_record(tmp_path / "deep.tif"))


# ------------------------------------------------------------ skip policy


def test_test_time_mapper_never_skips(tmp_path, monkeypatch):
    """Evaluation runs on the whole split: at test time a bad image is an error even under skip."""
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "skip")
    record, _ = _bad_files(tmp_path)["truncated"]
    with pytest.raises(DataContractError, match="truncated"):
        _instance_mapper(is_train=False)(record)


@pytest.mark.parametrize("mapper", sorted(MAPPERS))
@pytest.mark.parametrize("fault", FAULTS)
def test_skip_policy_data_loader_goes_on(tmp_path, monkeypatch, caplog, mapper, fault):
    """A data loader over 3 good images and 1 bad one yields only the good ones; the bad image is
    logged with its file and problem once and counted once (Detectron2's MapDataset retries another
    index when the mapper returns None)."""
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "skip")
    _write_pan_png(tmp_path)
    good = []
    for k in range(3):
        Image.fromarray(_rgb()).save(str(tmp_path / f"good{k}.png"))
        good.append(_record(tmp_path / f"good{k}.png", image_id=k))
    bad, words = _bad_files(tmp_path)[fault]
    records = good[:2] + [dict(bad, image_id=9)] + good[2:]
    the_mapper = MAPPERS[mapper]()
    loader = build_detection_train_loader(
        records,
        mapper=the_mapper,
        sampler=TrainingSampler(len(records), shuffle=False),
        total_batch_size=2,
        aspect_ratio_grouping=False,
        num_workers=0,
    )
    seen = []
    with caplog.at_level(logging.WARNING, logger="bodyparts"):
        for _, batch in zip(range(6), loader):
            seen += [d["file_name"] for d in batch]
    assert len(seen) == 12 and set(seen) == {r["file_name"] for r in good}
    assert the_mapper.num_skipped == 1
    warnings = [r.getMessage() for r in caplog.records if bad["file_name"] in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "skipping" in warnings[0] and all(w in warnings[0] for w in words), warnings[0]


# ------------------------------------------------------------ tools/check_dataset.py


def _tool():
    spec = importlib.util.spec_from_file_location(
        "bodyparts_check_dataset_tool_faults", os.path.join(REPO, "tools", "check_dataset.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("skip_bad", [False, True])
def test_check_dataset_reports_bad_images(
    tmp_path,
    monkeypatch,
    capsys,
    dataset_name,  # noqa: F811
    skip_bad,
):
    monkeypatch.setenv("BODYPARTS_ON_ERROR", "raise")
    Image.fromarray(_rgb()).save(str(tmp_path / "good.png"))
    bad = _bad_files(tmp_path)
    records = [_record(tmp_path / "good.png", image_id="good")]
    records += [dict(bad[f][0], image_id=f) for f in FAULTS]
    DatasetCatalog.register(dataset_name, lambda: records)
    MetadataCatalog.get(dataset_name).set(**bodyparts_metadata("fine_lr"))
    tool = _tool()
    out = tmp_path / "report"
    argv = [dataset_name, "--output", str(out), "--num-vis", "8"] + (
        ["--skip-bad"] if skip_bad else []
    )
    assert tool.main(tool.get_parser().parse_args(argv)) == 1
    summary = json.loads((out / dataset_name / "summary.json").read_text())
    problems = summary["problems"]
    assert len(problems) == len(FAULTS), problems
    for fault, problem in zip(FAULTS, problems):
        record, words = bad[fault]
        assert problem.startswith(f"{dataset_name}: image {fault!r}: {record['file_name']}: "), (
            problem
        )
        assert all(w in problem for w in words), problem
    # the good image is rendered, the bad ones are not (and do not stop the tool)
    assert [os.path.basename(p) for p in summary["samples"]] == ["good.png"]
    assert "PROBLEM" in capsys.readouterr().out


def test_map_dataset_retries_on_this_build():
    """Skipping needs MapDataset to map another index when the mapper returns None. v0.6 draws it
    with random.sample(a_set), a TypeError since Python 3.11 (bodyparts.compat fixes it); upstream
    main draws from a list and is left alone."""
    import inspect
    import sys

    from detectron2.data.common import MapDataset

    from bodyparts.compat import PREPARED

    samples_a_set = "sample(list(" not in inspect.getsource(MapDataset.__getitem__)
    assert PREPARED["map_dataset_retry_fix"] is (samples_a_set and sys.version_info >= (3, 11))
    dataset = MapDataset(list(range(5)), lambda x: None if x in (0, 3) else x)
    assert sorted({dataset[0] for _ in range(30)}) == [1, 2, 4]  # never a skipped item
    assert dataset[2] == 2
