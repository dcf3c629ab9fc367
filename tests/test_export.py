"""Export parity: each supported (model, format, method) is exported from a seeded, untrained small
model, loaded back with ``torch.jit.load`` / ``onnxruntime.InferenceSession``, and compared with the
eager model on the sample image and on a second image of another size (tracing must generalise).
What cannot be exported fails with an error naming the part. The measured largest differences are
printed (``pytest -s``).

Tolerances (absolute): TorchScript (same PyTorch kernels) 1e-4 on every output; ONNX Runtime
(its own kernels): boxes and keypoint x/y 1e-3 px, scores, probabilities and keypoint scores
1e-5, keypoint logits and semantic logits 1e-3; class ids exactly.
"""

import importlib.util
import json
import os
import subprocess

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, run_tool_cmd
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, heatmaps_to_keypoints
from detectron2.utils.env import seed_all_rng

from bodyparts.engine import setup_cfg
from bodyparts.export import (
    ExportError,
    build_model_for_export,
    export_model,
    load_exported,
    outputs_to_instances,
)
from bodyparts.modeling import PartPredictions, part_label_maps_in_image

QUICK = os.path.join(REPO, "configs", "quick_schedules")
CONFIGS = {
    "shared": os.path.join(QUICK, "bodyparts_rcnn_R18_FPN_synthetic_cpu_shared.yaml"),
    "separate": os.path.join(QUICK, "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"),
    "semantic": os.path.join(QUICK, "semantic_fpn_R18_synthetic_cpu.yaml"),
    "panoptic": os.path.join(QUICK, "panoptic_bodyparts_R18_FPN_synthetic_cpu.yaml"),
}
# small inputs; every box scores above 0, so there are detections to compare; up to 16 proposals,
# after NMS a number of detections that differs from image to image (here 14 and 13)
# fmt: off
OPTS = [
    "INPUT.MIN_SIZE_TEST", "96",
    "INPUT.MAX_SIZE_TEST", "160",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
    "MODEL.RPN.POST_NMS_TOPK_TEST", "16",
    "TEST.DETECTIONS_PER_IMAGE", "100",
    "TEST.AUG.ENABLED", "False",
]
# fmt: on
FIELDS = {  # exported output name -> Instances field of the eager model
    "boxes": "pred_boxes",
    "scores": "scores",
    "classes": "pred_classes",
    "part_probs": "pred_part_masks",
    "silhouettes": "pred_masks",
    "keypoints": "pred_keypoints",
    "keypoint_heatmaps": "pred_keypoint_heatmaps",
}
TS_TOL = 1e-4
ORT_TOL = {
    "boxes": 1e-3,
    "scores": 1e-5,
    "classes": 0.0,
    "part_probs": 1e-5,
    "silhouettes": 1e-5,
    "keypoint_heatmaps": 1e-3,
    "keypoints_xy": 1e-3,
    "keypoints_score": 1e-5,
    "sem_seg": 1e-3,
}
PART_CASES = [
    ("shared", "torchscript", "tracing"),
    ("shared", "torchscript", "scripting"),
    ("shared", "onnx", "tracing"),
    ("separate", "torchscript", "tracing"),
    ("separate", "torchscript", "scripting"),
    ("separate", "onnx", "tracing"),
]


def _cfg(name, extra=()):
    from types import SimpleNamespace

    return setup_cfg(
        SimpleNamespace(config_file=CONFIGS[name], opts=OPTS + list(extra)), for_launch_only=True
    )


@pytest.fixture(scope="module")
def models():
    """Seeded untrained models, built once per module (the exports leave them unchanged)."""
    built = {}

    def get(name):
        if name not in built:
            seed_all_rng(0)
            built[name] = build_model_for_export(_cfg(name))
        return built[name]

    return get


@pytest.fixture(scope="module")
def images():
    """The sample image (96 x 128, the trace's) and a second one of another size (112 x 96)."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(3, 96, 128, generator=g) * 255, torch.rand(3, 112, 96, generator=g) * 255


def _eager(model, image):
    with torch.no_grad():
        inst = model.inference([{"image": image}], do_postprocess=False)[0]
    out = {}
    for name, field in FIELDS.items():
        if inst.has(field):
            value = inst.get(field)
            if isinstance(value, Boxes):
                value = value.tensor
            elif isinstance(value, PartPredictions):  # a row per person: the dense tensor
                assert value.index.tolist() == list(range(len(value)))
                value = value.probs
            out[name] = value
    return out


def _load(directory):
    """The exported file loaded with the plain runtimes: a function image -> {name: tensor}."""
    with open(os.path.join(directory, "export_info.json")) as f:
        info = json.load(f)
    names = [o["name"] for o in info["outputs"]]
    path = os.path.join(directory, info["file"])
    if info["format"] == "torchscript":
        module = torch.jit.load(path)

        def run(image):
            with torch.no_grad():
                return module(image)

    else:
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])

        def run(image):
            return [torch.from_numpy(o) for o in session.run(None, {"image": image.numpy()})]

    def named(image):
        outputs = run(image)
        assert len(outputs) == len(names)
        return dict(zip(names, outputs))

    return named


def _max_diffs(expected, actual, names):
    diffs = {}
    for name in names:
        a, b = actual[name], expected[name]
        assert tuple(a.shape) == tuple(b.shape), (name, tuple(a.shape), tuple(b.shape))
        assert a.dtype == b.dtype, (name, a.dtype, b.dtype)
        diff = (a.double() - b.double()).abs()
        if name == "keypoints":
            diffs["keypoints_xy"] = float(diff[..., :2].max()) if diff.numel() else 0.0
            diffs["keypoints_score"] = float(diff[..., 2].max()) if diff.numel() else 0.0
        else:
            diffs[name] = float(diff.max()) if diff.numel() else 0.0
    return diffs


def _report(case, index, detections, diffs):
    text = " ".join(f"{k} {v:.2g}" for k, v in diffs.items())
    print(f"\nexport parity {'/'.join(case)} image {index} ({detections} detections): {text}")


@pytest.mark.parametrize("case", PART_CASES, ids=["-".join(c) for c in PART_CASES])
def test_part_model_export_matches_eager(case, models, images, tmp_path):
    name, fmt, method = case
    model = models(name)
    export_model(model, images[0], str(tmp_path), format=fmt, method=method)
    assert os.path.isfile(tmp_path / ("model.ts" if fmt == "torchscript" else "model.onnx"))
    counts, run = [], _load(str(tmp_path))
    for index, image in enumerate(images):
        expected = _eager(model, image)
        actual = run(image)
        wanted = {"boxes", "scores", "classes", "part_probs", "silhouettes"}
        wanted.add("keypoints" if fmt == "torchscript" else "keypoint_heatmaps")
        assert set(actual) == wanted
        if fmt == "onnx":  # keypoints decoded from the exported logits, as Detectron2 does
            boxes, heatmaps = actual["boxes"], actual["keypoint_heatmaps"]
            actual["keypoints"] = heatmaps_to_keypoints(heatmaps, boxes)[:, :, [0, 1, 3]]
        diffs = _max_diffs(expected, actual, sorted(set(actual)))
        counts.append(int(expected["boxes"].shape[0]))
        _report(case, index, counts[-1], diffs)
        assert counts[-1] > 0
        # part probabilities: C = 15 fine_lr labels summing to 1; shared-trunk silhouettes are
        # 1 - P(background)
        assert actual["part_probs"].shape[1] == 15
        assert torch.allclose(actual["part_probs"].sum(dim=1), torch.ones(1), atol=1e-5)
        if name == "shared":
            assert torch.allclose(actual["silhouettes"], 1 - actual["part_probs"][:, :1], atol=1e-6)
        for key, value in diffs.items():
            tol = TS_TOL if fmt == "torchscript" else ORT_TOL[key]
            assert value <= tol, (case, index, key, value)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_semantic_segmenter_export_matches_eager(fmt, models, images, tmp_path):
    model = models("semantic")
    export_model(model, images[0], str(tmp_path), format=fmt, method="tracing")
    run = _load(str(tmp_path))
    for index, image in enumerate(images):
        with torch.no_grad():
            expected = model([{"image": image}])[0]["sem_seg"]
        actual = run(image)
        assert set(actual) == {"sem_seg"}
        assert actual["sem_seg"].shape == (15, *image.shape[1:])  # logits at the input size
        diff = float((actual["sem_seg"] - expected).abs().max())
        _report(("semantic", fmt, "tracing"), index, "-", {"sem_seg": diff})
        assert diff <= (TS_TOL if fmt == "torchscript" else ORT_TOL["sem_seg"])


def test_exported_outputs_give_the_eager_postprocessed_instances(models, images, tmp_path):
    """The file's outputs through outputs_to_instances + Detectron2's detector_postprocess equal the
    eager model's full output at another output size (boxes, keypoints, silhouettes, part maps)."""
    model = models("shared")
    info = export_model(model, images[0], str(tmp_path), format="onnx", method="tracing")
    assert info["sample_check"]["max_abs_diff"]["boxes"] <= ORT_TOL["boxes"]
    exported = load_exported(str(tmp_path), num_threads=1)
    image = images[1]
    height, width = 150, 130  # the "original" image the model input was resized from
    with torch.no_grad():
        expected = model([{"image": image, "height": height, "width": width}])[0]["instances"]
    outputs = exported(image)
    assert "keypoints" in outputs  # decoded from the ONNX heatmaps by ExportedModel
    got = detector_postprocess(outputs_to_instances(outputs, image.shape[1:]), height, width)
    assert got.image_size == expected.image_size == (height, width)
    assert torch.allclose(got.pred_boxes.tensor, expected.pred_boxes.tensor, atol=1e-3)
    assert torch.allclose(got.pred_keypoints[..., :2], expected.pred_keypoints[..., :2], atol=1e-3)
    assert torch.equal(got.pred_classes, expected.pred_classes)
    masks_differ = (got.pred_masks != expected.pred_masks).float().mean()
    assert masks_differ < 1e-3  # pasted bit masks: a pixel may flip where a probability is ~0.5
    assert torch.allclose(got.pred_part_masks.probs, expected.pred_part_masks.probs, atol=1e-5)
    labels_got, labels_expected = part_label_maps_in_image(got), part_label_maps_in_image(expected)
    assert (labels_got != labels_expected).float().mean() < 1e-3


def test_panoptic_model_cannot_be_exported(tmp_path):
    seed_all_rng(0)
    model = build_model_for_export(_cfg("panoptic"))
    image = torch.rand(3, 96, 96) * 255
    for fmt, method in [
        ("torchscript", "tracing"),
        ("onnx", "tracing"),
        ("torchscript", "scripting"),
    ]:
        with pytest.raises(ExportError) as e:
            export_model(model, image, str(tmp_path), format=fmt, method=method)
        assert "BodyPartsPanopticFPN" in str(e.value) and "panoptic merge" in str(e.value)
        assert "segments_info" in str(e.value)
    assert not os.listdir(tmp_path)  # nothing written


def test_unsupported_methods_name_the_part(models, images, tmp_path):
    with pytest.raises(ExportError) as e:
        export_model(
            models("semantic"), images[0], str(tmp_path), format="torchscript", method="scripting"
        )
    assert (
        "sem_seg_head" in str(e.value)
        and "SemSegFPNHead" in str(e.value)
        and "tracing" in str(e.value)
    )
    with pytest.raises(ExportError) as e:
        export_model(models("shared"), images[0], str(tmp_path), format="onnx", method="scripting")
    assert "ONNX" in str(e.value) and "tracing" in str(e.value)
    with pytest.raises(ExportError) as e:
        export_model(models("shared"), images[0], str(tmp_path), format="tflite", method="tracing")
    assert "tflite" in str(e.value)
    assert not os.listdir(tmp_path)


def _load_tool():
    path = os.path.join(REPO, "tools", "export_model.py")
    spec = importlib.util.spec_from_file_location("bodyparts_export_tool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_export_tool_writes_model_and_info(tmp_path):
    """The command line: a 150 x 200 PNG resized to the test size, TorchScript by tracing."""
    sample = tmp_path / "sample.png"
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(sample), (rng.random((150, 200, 3)) * 255).astype(np.uint8))
    out = tmp_path / "export"
    tool = os.path.join(REPO, "tools", "export_model.py")
    # fmt: off
    cmd = run_tool_cmd(
        tool, "--config-file", CONFIGS["shared"], "--format", "torchscript",
        "--export-method", "tracing", "--sample-image", str(sample), "--output", str(out), *OPTS,
    )
    # fmt: on
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in (
        "model.ts",
        "export_info.json",
        "model_ts_code.txt",
        "model_ts_IR.txt",
        "model.txt",
    ):
        assert (out / name).is_file(), name
    info = json.loads((out / "export_info.json").read_text())
    assert info["format"] == "torchscript" and info["method"] == "tracing"
    assert info["input_format"] == "BGR" and info["min_size_test"] == 96
    assert info["sample_check"]["input_size"] == [96, 128]  # 150 x 200 -> shortest edge 96
    assert [o["name"] for o in info["outputs"]] == [
        "boxes",
        "scores",
        "classes",
        "part_probs",
        "silhouettes",
        "keypoints",
    ]
    assert len(info["part_labels"]) == 15 and info["part_labels"][0] == "background"
    assert len(info["keypoint_names"]) == 17
    assert all(v <= TS_TOL for v in info["sample_check"]["max_abs_diff"].values())
    assert "max |difference|" in proc.stdout and "part_probs" in proc.stdout
    module = torch.jit.load(str(out / "model.ts"))
    with torch.no_grad():
        boxes = module(torch.rand(3, 96, 120) * 255)[0]
    assert boxes.dim() == 2 and boxes.shape[1] == 4


def test_export_tool_errors(tmp_path, capsys):
    tool = _load_tool()
    with pytest.raises(SystemExit) as e:
        tool.parse_args(
            [
                "--config-file",
                CONFIGS["shared"],
                "--output",
                str(tmp_path),
                "--sample-image",
                "no.png",
            ]
        )
    assert e.value.code == 2 and "no.png" in capsys.readouterr().err
    args = tool.parse_args(
        [
            "--config-file",
            CONFIGS["panoptic"],
            "--output",
            str(tmp_path / "p"),
            "--sample-image",
            os.path.join(REPO, "docs", "images", "demo_synthetic.png"),
            *OPTS,
        ]
    )
    assert tool.main(args) == 1
    err = capsys.readouterr().err
    assert "panoptic merge" in err and "BodyPartsPanopticFPN" in err
    args = tool.parse_args(
        ["--config-file", CONFIGS["shared"], "--output", str(tmp_path), "MODEL.ROI_HEADZ", "1"]
    )
    assert tool.main(args) == 2
    assert "ROI_HEADZ" in capsys.readouterr().err
