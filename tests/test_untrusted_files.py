"""Untrusted files and mismatched weights (issue 16): no code runs from a weights, cache or index
file; a weights file that is not a checkpoint, or that leaves parts of the model uninitialised, is
one error naming it; bad config values and output folders are one line with exit code 2.

The malicious files' payload creates a marker file: each test checks that the marker does not
exist afterwards (nothing was executed), not only that an error was raised.
"""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from _serving import PARTS_CONFIG, SMALL_MODEL_OPTS
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from torch import nn

from bodyparts.checkpoint import (
    BodyPartsCheckpointer,
    PartialWeightsError,
    WeightsFileError,
    load_weights,
    restricted_load,
)
from bodyparts.config import ConfigValueError, add_bodyparts_config, check_bodyparts_config
from bodyparts.data.datasets import native
from bodyparts.utils.predictions import load_inference_cfg
from bodyparts.utils.predictor import Predictor

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_CONFIG = os.path.join(
    REPO, "configs", "quick_schedules", "bodyparts_rcnn_R18_FPN_synthetic_cpu_shared.yaml"
)


class _Payload:
    """Unpickling it calls ``os.system("touch MARKER")`` (what a crafted weights file does)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _small_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def _numpy_state(model: nn.Module):
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("protocol", [2, 4])
def test_model_zoo_pkl_layout_loads(tmp_path, protocol):
    """Detectron2's model-zoo layout ({"model": {name: ndarray}, "__author__",
    "matching_heuristics"}) pickled by Python 2-compatible (2) and current (4) protocols loads,
    values exact."""
    source = _small_net()
    path = str(tmp_path / "zoo.pkl")
    with open(path, "wb") as f:
        pickle.dump(
            {
                "model": _numpy_state(source),
                "__author__": "Detectron2 Model Zoo",
                "matching_heuristics": True,
            },
            f,
            protocol=protocol,
        )
    target = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    extra = load_weights(target, path)
    assert extra["__author__"] == "Detectron2 Model Zoo"
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_caffe2_blobs_layout_drops_momentum(tmp_path):
    """The Caffe2/Detectron1 layout {"blobs": {...}}: the ``_momentum`` blobs are not weights."""
    path = str(tmp_path / "c2.pkl")
    blobs = {
        "conv1_w": np.ones((2, 3, 1, 1), np.float32),
        "conv1_w_momentum": np.zeros((2, 3, 1, 1), np.float32),
    }
    with open(path, "wb") as f:
        pickle.dump({"blobs": blobs}, f, protocol=2)
    checkpoint = BodyPartsCheckpointer(nn.Conv2d(3, 2, 1))._load_file(path)
    assert checkpoint["__author__"] == "Caffe2" and checkpoint["matching_heuristics"] is True
    assert sorted(checkpoint["model"]) == ["conv1_w"]


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_malicious_weights_refused_nothing_executed(tmp_path, suffix):
    marker = tmp_path / "PAYLOAD_RAN"
    path = str(tmp_path / f"evil{suffix}")
    content = {"model": {"0.weight": _Payload(str(marker))}, "__author__": "x"}
    if suffix == ".pkl":
        with open(path, "wb") as f:
            pickle.dump(content, f)
    else:
        torch.save(content, path)
    with pytest.raises(WeightsFileError, match=r"evil\%s: refused type posix\.system" % suffix):
        load_weights(_small_net(), path)
    assert not marker.exists()


def test_restricted_load_refuses_before_building(tmp_path):
    """The refused global is never imported: a module that does not exist is refused by name
    (importing it would raise ModuleNotFoundError instead)."""
    data = b"cnot_a_module_x\nf\n."  # protocol 0: GLOBAL not_a_module_x.f, STOP
    with open(tmp_path / "x.pkl", "wb") as f:
        f.write(data)
    with (
        open(tmp_path / "x.pkl", "rb") as f,
        pytest.raises(WeightsFileError, match="refused type not_a_module_x.f"),
    ):
        restricted_load(f, path=str(tmp_path / "x.pkl"))


@pytest.mark.parametrize("name", ["notes.pth", "notes.pkl", "empty.pth"])
def test_not_a_checkpoint_is_named(tmp_path, name):
    path = tmp_path / name
    path.write_text("" if name.startswith("empty") else "these are my notes\n")
    with pytest.raises(WeightsFileError, match=rf"{name}: not a"):
        load_weights(_small_net(), str(path))


def test_a_pickled_list_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "list.pkl"
    with open(path, "wb") as f:
        pickle.dump([1, 2, 3], f)
    with pytest.raises(WeightsFileError, match="not a checkpoint: a pickled list"):
        load_weights(_small_net(), str(path))


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsFileError, match="nothere.pth: no such file"):
        load_weights(_small_net(), str(tmp_path / "nothere.pth"))


def _shared_checkpoint(tmp_path) -> str:
    """The weights of the shared-trunk model (`make demo`'s config): no mask or keypoint head."""
    cfg = load_inference_cfg(SHARED_CONFIG, SMALL_MODEL_OPTS)
    model = build_model(cfg)
    path = str(tmp_path / "shared_model.pth")
    torch.save({"model": model.state_dict(), "iteration": 3}, path)
    return path


def test_mismatched_config_and_weights_stop_with_the_missing_modules(tmp_path):
    """The README pair that used to run silently: separate-heads config + shared-trunk weights."""
    weights = _shared_checkpoint(tmp_path)
    cfg = load_inference_cfg(PARTS_CONFIG, SMALL_MODEL_OPTS[2:] + ["MODEL.WEIGHTS", weights])
    with pytest.raises(PartialWeightsError) as info:
        Predictor(cfg)
    modules = info.value.modules
    assert "roi_heads.mask_head" in modules and "roi_heads.keypoint_head" in modules
    assert "different model kinds" in str(info.value) and "--allow-partial-weights" in str(
        info.value
    )
    predictor = Predictor(cfg, allow_partial_weights=True)  # on purpose: runs
    outputs = predictor(np.zeros((64, 64, 3), np.uint8))
    assert "instances" in outputs


def test_matching_weights_load_completely(tmp_path):
    weights = _shared_checkpoint(tmp_path)
    cfg = load_inference_cfg(SHARED_CONFIG, SMALL_MODEL_OPTS[2:] + ["MODEL.WEIGHTS", weights])
    predictor = Predictor(cfg)
    saved = torch.load(weights, weights_only=True)["model"]
    for key, value in predictor.model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def _write_cache_file(path: str, payload) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(payload, f)


def _one_item_load(tmp_path, calls):
    source = tmp_path / "item.txt"
    if not source.exists():
        source.write_text("x")
    items = [native.LoadItem("a", (str(source),))]

    def convert(item):
        calls.append(item.key)
        return [{"file_name": "a.jpg", "height": 2, "width": 2, "image_id": 0, "annotations": []}]

    return native.load_items_cached("unit", "key", "v1", items, convert)


@pytest.mark.parametrize("kind", ["malicious", "truncated", "malformed"])
def test_record_cache_is_rebuilt_not_trusted(tmp_path, monkeypatch, kind):
    monkeypatch.setenv("BODYPARTS_CACHE_DIR", str(tmp_path / "cache"))
    calls = []
    first = _one_item_load(tmp_path, calls)
    assert calls == ["a"]
    path = native._cache_file("unit", "key")
    marker = tmp_path / "PAYLOAD_RAN"
    if kind == "malicious":
        _write_cache_file(
            path, {"format": native._CACHE_FORMAT, "version": "v1", "items": _Payload(str(marker))}
        )
    elif kind == "truncated":
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
    else:  # right header, wrong layout: a record that is not a dict
        cached = native._read_cache(path, "v1")
        fingerprint = cached["a"][0]
        _write_cache_file(
            path,
            {
                "format": native._CACHE_FORMAT,
                "version": "v1",
                "items": {"a": (fingerprint, "ok", ["x"])},
            },
        )
    again = _one_item_load(tmp_path, calls)
    assert calls == ["a", "a"]  # converted again from the source
    assert again == first
    assert not marker.exists()
    _one_item_load(tmp_path, calls)
    assert calls == ["a", "a"]  # and the rebuilt cache is used


def test_ade20k_index_pkl_with_code_is_refused(tmp_path):
    from bodyparts.data.datasets import ade20k

    marker = tmp_path / "PAYLOAD_RAN"
    path = str(tmp_path / "index_ade20k.pkl")
    _write_cache_file(path, {"filename": _Payload(str(marker)), "folder": []})
    with pytest.raises(
        native.DatasetFormatError, match="index_ade20k.pkl: refused type posix.system"
    ):
        ade20k._read_pkl_index(path)
    assert not marker.exists()


def _cfg(**overrides):
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    for key, value in overrides.items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("BODYPARTS.PART_TAXONOMY", "finelr", "choose one of: ade_person15, cihp20, fine_lr"),
        ("BODYPARTS.KEYPOINT_TAXONOMY", "coco18", "choose one of: coco17"),
        (
            "MODEL.ROI_BODYPART_HEAD.CLASS_BALANCE",
            "inv",
            "choose one of: none, inverse, exponential",
        ),
        (
            "MODEL.BODYPART_SEM_SEG.CLASS_BALANCE",
            "freq",
            "choose one of: none, inverse, exponential",
        ),
        ("MODEL.ROI_BODYPART_HEAD.NORM", "LN", "choose one of: , GN, BN, SyncBN"),
        (
            "MODEL.ROI_BODYPART_HEAD.POOLER_TYPE",
            "ROIAlignV3",
            "choose one of: ROIAlignV2, ROIAlign, ROIPool",
        ),
        ("MODEL.REGNETS.NORM", "LN", "choose one of: BN, SyncBN, GN, FrozenBN"),
        ("MODEL.ROI_BODYPART_HEAD.UP_SCALE", 0, "it must be >= 1"),
        ("BODYPARTS.SYNTHETIC.MAX_PERSONS", 0, "it must be >= 1"),
        ("BODYPARTS.PARSING_EVAL.PASTE_SCORE_THRESH", 1.5, r"it must be in \[0, 1\]"),
        ("MODEL.ROI_BODYPART_HEAD.CLASS_WEIGHTS", [1.0, -2.0], "weights must be >= 0"),
    ],
)
def test_bad_config_value_names_key_value_and_choices(key, value, expected):
    with pytest.raises(ConfigValueError) as info:
        check_bodyparts_config(_cfg(**{key: value}), "my.yaml")
    message = str(info.value)
    assert message.startswith(f"my.yaml: {key} {value!r} is not valid")
    assert pytest.importorskip("re").search(expected, message), message


def test_default_config_passes_the_checks():
    check_bodyparts_config(_cfg(), "defaults")


def _tool(*args, timeout=300):
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def _one_error_line(result, *fragments):
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.timeout(600)
def test_tools_refuse_a_malicious_pkl_with_one_line(tmp_path):
    """demo.py and export_model.py (serve.py shares demo's loader) with a crafted .pkl as weights:
    exit code 2, one line naming the file and the refused type, the payload never ran."""
    marker = tmp_path / "PAYLOAD_RAN"
    evil = str(tmp_path / "model_final.pkl")
    with open(evil, "wb") as f:
        pickle.dump({"model": _Payload(str(marker)), "__author__": "x"}, f)
    image_dir = tmp_path / "images"
    image_dir.mkdir()
    import cv2

    cv2.imwrite(str(image_dir / "a.png"), np.zeros((32, 32, 3), np.uint8))
    opts = SMALL_MODEL_OPTS[2:] + ["MODEL.WEIGHTS", evil]
    demo = _tool(
        "tools/demo.py",
        "--config-file",
        SHARED_CONFIG,
        "--input",
        str(image_dir),
        "--output",
        str(tmp_path / "out"),
        *opts,
    )
    _one_error_line(demo, "demo.py: error:", "model_final.pkl: refused type posix.system")
    export = _tool(
        "tools/export_model.py",
        "--config-file",
        SHARED_CONFIG,
        "--output",
        str(tmp_path / "exp"),
        "--sample-image",
        str(image_dir / "a.png"),
        *opts,
    )
    _one_error_line(export, "export_model.py: error:", "model_final.pkl: refused type posix.system")
    assert not marker.exists()


@pytest.mark.timeout(600)
def test_tools_one_line_errors(tmp_path):
    """A bad bodyparts value, an output folder that cannot be created, a missing weights file,
    weights of another model kind: one line, exit code 2, in train_net.py, demo.py, export_model.py
    and export_parsing_predictions.py."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cfg = "configs/quick_schedules/bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"
    r = _tool("tools/train_net.py", "--config-file", cfg, "BODYPARTS.PART_TAXONOMY", "finelr")
    _one_error_line(
        r, "train_net.py: error:", "BODYPARTS.PART_TAXONOMY 'finelr' is not valid", "fine_lr"
    )
    r = _tool(
        "tools/train_net.py", "--config-file", cfg, "MODEL.ROI_BODYPART_HEAD.CLASS_BALANCE", "inv"
    )
    _one_error_line(r, "CLASS_BALANCE 'inv' is not valid", "inverse")
    r = _tool("tools/train_net.py", "--config-file", cfg, "OUTPUT_DIR", str(blocker / "out"))
    _one_error_line(r, "OUTPUT_DIR", "cannot create the folder")
    r = _tool(
        "tools/train_net.py",
        "--config-file",
        cfg,
        "--eval-only",
        "MODEL.WEIGHTS",
        str(tmp_path / "no.pth"),
    )
    _one_error_line(r, "MODEL.WEIGHTS file", "no.pth does not exist")
    r = _tool(
        "tools/export_model.py",
        "--config-file",
        cfg,
        "--output",
        str(tmp_path / "e"),
        "MODEL.WEIGHTS",
        str(tmp_path / "no.pth"),
    )
    _one_error_line(r, "export_model.py: error:", "no.pth does not exist")
    r = _tool(
        "tools/export_model.py",
        "--config-file",
        cfg,
        "--output",
        str(blocker / "e"),
        "MODEL.WEIGHTS",
        "",
    )
    _one_error_line(r, "--output", "cannot create the folder")
    r = _tool(
        "tools/demo.py",
        "--config-file",
        cfg,
        "--input",
        "docs/images",
        "--output",
        str(blocker / "d"),
        "MODEL.WEIGHTS",
        "",
    )
    _one_error_line(r, "demo.py: error:", "cannot create the folder")
    r = _tool(
        "tools/export_parsing_predictions.py",
        "--config-file",
        cfg,
        "--dataset",
        "bodyparts_synthetic_val",
        "--output",
        str(blocker / "x"),
        "MODEL.WEIGHTS",
        "",
    )
    _one_error_line(r, "export_parsing_predictions.py: error:", "cannot create the folder")
    weights = _shared_checkpoint(tmp_path)
    r = _tool(
        "tools/train_net.py",
        "--config-file",
        cfg,
        "--eval-only",
        *SMALL_MODEL_OPTS[2:],
        "MODEL.WEIGHTS",
        weights,
        "OUTPUT_DIR",
        str(tmp_path / "eval"),
    )
    _one_error_line(r, "train_net.py: error:", "roi_heads.mask_head", "different model kinds")


def test_unknown_part_head_name_lists_the_registered_heads():
    from detectron2.layers import ShapeSpec

    from bodyparts.modeling.roi_heads.part_head import build_part_head

    cfg = _cfg(**{"MODEL.ROI_BODYPART_HEAD.NAME": "PartRCNNHead"})
    with pytest.raises(
        ConfigValueError,
        match="NAME 'PartRCNNHead' is not valid; choose one of: "
        "PartDilatedContextHead, PartRCNNConvDeconvHead",
    ):
        build_part_head(cfg, ShapeSpec(channels=8))
