"""tools/export_model.py --quantize int8 and --eval: ONNX Runtime static INT8 of a part model, and
an exported file evaluated with the eager model's evaluators (the same numbers as the eager model
for the float file)."""

import json
import os
import subprocess

import pytest
import torch
from _serving import PARTS_CONFIG, REPO, SMALL_MODEL_OPTS
from conftest import run_tool_cmd
from detectron2.evaluation import inference_on_dataset

from bodyparts.engine import Trainer
from bodyparts.export import build_model_for_export, load_exported
from bodyparts.export.quantize import ExportedDetector
from bodyparts.utils.predictions import load_inference_cfg

TOOL = os.path.join(REPO, "tools", "export_model.py")
# the small untrained model on 3 synthetic validation images of 64 px, 2 calibration images
OPTS = [
    *SMALL_MODEL_OPTS,
    "BODYPARTS.SYNTHETIC.NUM_TRAIN",
    "2",
    "BODYPARTS.SYNTHETIC.NUM_VAL",
    "3",
    "BODYPARTS.SYNTHETIC.IMAGE_SIZE",
    "64",
    "DATALOADER.NUM_WORKERS",
    "0",
]


def _export(tmp_path, name, *flags):
    out = tmp_path / name
    cmd = run_tool_cmd(
        TOOL, "--config-file", PARTS_CONFIG, "--format", "onnx", "--output", str(out), *flags,
        *OPTS,
    )  # fmt: skip
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "data"), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return out, json.loads((out / "export_info.json").read_text()), proc.stdout


def test_float_export_evaluates_as_the_eager_model(tmp_path, monkeypatch):
    """--eval runs the file through the test loader and the eager model's evaluators: for the
    float ONNX file, the numbers of the eager model on the same split."""
    out, info, stdout = _export(tmp_path, "float", "--eval")
    ours = info["evaluation"]["bodyparts_synthetic_val"]
    assert {"bbox", "segm", "keypoints", "parsing"} <= set(ours)
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "data"))
    cfg = load_inference_cfg(PARTS_CONFIG, OPTS)
    model = build_model_for_export(cfg)
    evaluator = Trainer.build_evaluator(cfg, "bodyparts_synthetic_val", str(tmp_path / "eager"))
    eager = inference_on_dataset(
        model, Trainer.build_test_loader(cfg, "bodyparts_synthetic_val"), evaluator
    )
    for task in ("bbox", "segm", "keypoints"):
        assert ours[task]["AP"] == pytest.approx(eager[task]["AP"], abs=1e-6), task
    for key in ("mIoU", "pixel_acc", "APp50"):
        assert ours["parsing"][key] == pytest.approx(eager["parsing"][key], abs=1e-6), key
    assert '"bodyparts_synthetic_val"' in stdout


def test_int8_export(tmp_path):
    """--quantize int8: the convolutions, deconvolutions and matrix products run in int8, the rest
    (RoiAlign, NMS, ...) stays float and is named; the folder's model becomes the INT8 file, which
    runs and returns the float file's outputs, 4x smaller."""
    out, info, stdout = _export(tmp_path, "int8", "--quantize", "int8", "--calibration-images", "2")
    assert info["file"] == "model_int8.onnx" and info["float_file"] == "model.onnx"
    quant = info["quantization"]
    assert quant["calibration_images"] == 2
    assert quant["calibration_dataset"] == ["bodyparts_synthetic_train"]
    assert {"Conv", "ConvTranspose", "Gemm"} <= set(quant["ops"]["int8"])
    assert {"RoiAlign", "NonMaxSuppression"} <= set(quant["ops"]["float"])
    assert "Conv" not in quant["ops"]["float"]
    assert "sample_check_float" in info and "boxes" in info["sample_check"]["max_abs_diff"]
    size_int8 = os.path.getsize(out / "model_int8.onnx")
    assert size_int8 < 0.4 * os.path.getsize(out / "model.onnx")
    model = load_exported(str(out))
    outputs = model(torch.rand(3, 64, 80) * 255)
    assert [o["name"] for o in info["outputs"]] == list(outputs)[: len(info["outputs"])]
    assert outputs["part_probs"].shape[1:] == (15, 16, 16)
    assert "INT8 model written" in stdout and "float: " in stdout


def test_quantize_needs_onnx(tmp_path):
    cmd = run_tool_cmd(
        TOOL, "--config-file", PARTS_CONFIG, "--format", "torchscript", "--output",
        str(tmp_path), "--quantize", "int8", *OPTS,
    )  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--quantize int8 needs --format onnx" in proc.stderr


def test_exported_detector_postprocesses_to_the_input_size(tmp_path):
    out, _, _ = _export(tmp_path, "plain")
    detector = ExportedDetector(str(out))
    result = detector([{"image": torch.rand(3, 64, 80) * 255, "height": 32, "width": 40}])[0]
    assert result["instances"].image_size == (32, 40)
    if len(result["instances"]):
        assert float(result["instances"].pred_boxes.tensor[:, 2].max()) <= 40
