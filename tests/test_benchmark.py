"""tools/benchmark.py: JSON and table of an A --vs B run, and clear errors. No timing asserted."""

import importlib.util
import json
import math
import os
import subprocess
import sys
import time
import types

import pytest
from conftest import QUICK_CONFIG, REPO, run_tool_cmd

BENCHMARK = os.path.join(REPO, "tools", "benchmark.py")
MASK_RCNN_CONFIG = os.path.join(
    os.path.dirname(QUICK_CONFIG), "mask_rcnn_R18_FPN_synthetic_cpu.yaml"
)
# 4 train / 2 val synthetic images of 64 px; few ROIs and detections keep a step short on CPU.
BENCH_OPTS = [
    "BODYPARTS.SYNTHETIC.NUM_TRAIN",
    "4",
    "BODYPARTS.SYNTHETIC.NUM_VAL",
    "2",
    "BODYPARTS.SYNTHETIC.IMAGE_SIZE",
    "64",
    "INPUT.MIN_SIZE_TRAIN",
    "(64,)",
    "INPUT.MIN_SIZE_TEST",
    "64",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE",
    "16",
    "TEST.DETECTIONS_PER_IMAGE",
    "5",
]
FIGURES = {
    "train": {
        "s_per_iter_mean",
        "s_per_iter_median",
        "images_per_s",
        "peak_memory_mb",
        "peak_rss_mb",
    },
    "inference": {
        "s_per_image_mean",
        "s_per_image_median",
        "images_per_s",
        "peak_memory_mb",
        "peak_rss_mb",
    },
    "data_loader": {"images_per_s"},
}


def _load_tool():
    spec = importlib.util.spec_from_file_location("bodyparts_benchmark_tool", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_vs_writes_json_and_ratio_table(tmp_path):
    out = tmp_path / "bench.json"
    cmd = run_tool_cmd(
        BENCHMARK,
        "--config-file",
        QUICK_CONFIG,
        "--vs",
        MASK_RCNN_CONFIG,
        "--iters",
        "2",
        "--warmup",
        "1",
        "--images",
        "2",
        "--json",
        str(out),
        *BENCH_OPTS,
    )
    # One thread: the test machine may be busy, and oversubscribed threads make CPU steps crawl.
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "datasets"), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    result = json.loads(out.read_text())
    assert set(result["configs"]) == {"A", "B"}
    assert result["configs"]["A"]["config_file"] == QUICK_CONFIG
    assert result["configs"]["B"]["config_file"] == MASK_RCNN_CONFIG
    for run in result["configs"].values():
        assert run["device"] == "cpu"
        assert run["image_size"] == {"train": [64, 64], "test": [64, 64]}
        for phase, keys in FIGURES.items():
            assert set(run[phase]) == keys
            for key, value in run[phase].items():
                assert isinstance(value, float) and math.isfinite(value), (phase, key, value)
                assert value > 0, (phase, key, value)
    a, b = result["configs"]["A"], result["configs"]["B"]
    assert set(result["ratios"]) == set(FIGURES)
    for phase, keys in FIGURES.items():
        assert set(result["ratios"][phase]) == keys
        for key in keys:
            ratio = b[phase][key] / a[phase][key]
            assert result["ratios"][phase][key] == pytest.approx(ratio, rel=1e-9)
    env_info = result["environment"]
    assert {"device", "torch", "detectron2", "threads"} <= set(env_info)
    assert env_info["threads"] == 1
    assert result["settings"]["opts"] == BENCH_OPTS

    header = next(line for line in proc.stdout.splitlines() if "B/A" in line)
    assert os.path.basename(QUICK_CONFIG) in header
    assert os.path.basename(MASK_RCNN_CONFIG) in header
    assert "B slower / bigger" in header
    table_rows = {line.split("  ")[0] for line in proc.stdout.splitlines()}
    for label in (
        "train s/iter (mean)",
        "inference s/image (mean)",
        "train peak memory (MB)",
        "inference peak memory (MB)",
        "data loader images/s",
    ):
        assert label in table_rows
    assert "detectron2: " in proc.stdout and "threads: 1" in proc.stdout


def test_missing_config_file_is_a_usage_error(capsys):
    tool = _load_tool()
    with pytest.raises(SystemExit) as e:
        tool.parse_args(["--config-file", QUICK_CONFIG, "--vs", "no/such/config.yaml"])
    assert e.value.code == 2
    assert "no/such/config.yaml" in capsys.readouterr().err


def test_config_key_typo_exits_with_message(tmp_path):
    tool = _load_tool()
    bad = tmp_path / "typo.yaml"
    bad.write_text('_BASE_: "%s"\nMODEL:\n  KEYPOINT_ONN: False\n' % QUICK_CONFIG)
    with pytest.raises(SystemExit) as e:
        tool.load_cfgs(tool.parse_args(["--config-file", QUICK_CONFIG, "--vs", str(bad)]))
    assert "typo.yaml" in str(e.value.code) and "KEYPOINT_ONN" in str(e.value.code)
    with pytest.raises(SystemExit) as e:
        tool.load_cfgs(tool.parse_args(["--config-file", QUICK_CONFIG, "SOLVER.IMS_PER_BATX", "2"]))
    assert "IMS_PER_BATX" in str(e.value.code)


# fmt: off
RUNTIME_ARGS = [
    "--phases", "runtimes",
    "--export-formats", "eager,torchscript,onnx",
    "--threads", "1",
    "--input-sizes", "64,80",
    "--images", "2",
    "--warmup", "1",
]
# fmt: on


def test_runtimes_phase_times_each_runtime_and_size(datasets_root, tmp_path, capsys):
    """--phases runtimes alone: eager, TorchScript and ONNX Runtime at 1 thread and two test sizes;
    the model is exported once (at 64 px) and the file runs at both sizes."""
    import torch

    tool = _load_tool()
    threads_before = torch.get_num_threads()
    out = tmp_path / "runtimes.json"
    args = tool.parse_args(
        ["--config-file", QUICK_CONFIG, *RUNTIME_ARGS, "--json", str(out), *BENCH_OPTS]
    )
    assert args.phases == ["runtimes"]
    tool.main(args)
    assert torch.get_num_threads() == threads_before  # restored
    result = json.loads(out.read_text())
    run = result["configs"]["A"]
    assert set(run) == {"config_file", "device", "image_size", "runtimes"}  # no other phase ran
    assert run["image_size"] == {"test": [64, 64]}
    entries = run["runtimes"]
    assert [(e["runtime"], e["threads"], e["input_size"]) for e in entries] == [
        (fmt, 1, size) for fmt in ("eager", "torchscript", "onnx") for size in (64, 80)
    ]
    for e in entries:
        assert e["image_size"] == [e["input_size"]] * 2  # 64 px square images resized to the size
        for key in ("s_per_image_mean", "s_per_image_median", "images_per_s"):
            assert isinstance(e[key], float) and math.isfinite(e[key]) and e[key] > 0
        assert e["images_per_s"] == pytest.approx(1 / e["s_per_image_mean"])
    assert result["ratios"] is None
    printed = capsys.readouterr().out
    assert "CPU inference by runtime" in printed
    assert "train s/iter (mean)" not in printed  # the default phases did not run
    for row in ("eager        1          64x64", "onnx         1          80x80"):
        assert row in printed


def test_runtimes_phase_reports_a_model_that_cannot_be_exported(datasets_root, tmp_path, capsys):
    tool = _load_tool()
    panoptic = os.path.join(
        os.path.dirname(QUICK_CONFIG), "panoptic_bodyparts_R18_FPN_synthetic_cpu.yaml"
    )
    args = tool.parse_args(
        [
            "--config-file",
            panoptic,
            "--phases",
            "runtimes",
            "--export-formats",
            "onnx",
            "--images",
            "1",
            "--warmup",
            "0",
            *BENCH_OPTS,
        ]
    )
    result = tool.main(args)
    entries = result["configs"]["A"]["runtimes"]
    assert (
        len(entries) == 1
        and entries[0]["runtime"] == "onnx"
        and "panoptic merge" in entries[0]["error"]
    )
    assert "not exported: A onnx: BodyPartsPanopticFPN" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--export-formats", "eager,tflite"], "tflite"),
        (["--phases", "runtimes"], "--export-formats"),
        (["--phases", "train,warmup"], "warmup"),
        (["--export-formats", "eager", "--threads", "0"], "--threads"),
        (["--export-formats", "eager", "--input-sizes", "192,big"], "--input-sizes"),
    ],
)
def test_runtime_options_are_checked(argv, message, capsys):
    tool = _load_tool()
    with pytest.raises(SystemExit) as e:
        tool.parse_args(["--config-file", QUICK_CONFIG, *argv])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_default_phases_are_unchanged():
    tool = _load_tool()
    args = tool.parse_args(["--config-file", QUICK_CONFIG])
    assert args.phases == ["train", "inference", "data_loader"] and args.export_formats == []
    args = tool.parse_args(["--config-file", QUICK_CONFIG, "--export-formats", "eager,onnx"])
    assert args.phases == ["train", "inference", "data_loader", "runtimes"]


def _densepose_config(tmp_path):
    """A DensePose-style config whose DensePose keys are in its _BASE_ file."""
    (tmp_path / "Base-DensePose.yaml").write_text(
        f'_BASE_: "{QUICK_CONFIG}"\nMODEL:\n  DENSEPOSE_ON: True\n'
        '  ROI_DENSEPOSE_HEAD:\n    NAME: "DensePoseV1ConvXHead"\n'
    )
    config = tmp_path / "densepose_rcnn.yaml"
    config.write_text(
        '_BASE_: "Base-DensePose.yaml"\nMODEL:\n  ROI_DENSEPOSE_HEAD:\n    UV_CONFIDENCE: "iid"\n'
    )
    return str(config)


def test_densepose_config_needs_the_installed_project(tmp_path, monkeypatch):
    """A config with DensePose keys (here in its _BASE_) gets DensePose's config function; without
    the project the tool says which file needs it and how to install it, before measuring."""
    tool = _load_tool()
    assert tool.project_configs(QUICK_CONFIG) == []
    config = _densepose_config(tmp_path)
    monkeypatch.setitem(sys.modules, "densepose", None)  # not importable
    with pytest.raises(
        ImportError, match=r"densepose_rcnn.yaml is a DensePose config.*pip install"
    ):
        tool.project_configs(config)
    with pytest.raises(SystemExit, match="is a DensePose config"):
        tool.load_cfgs(tool.parse_args(["--config-file", QUICK_CONFIG, "--vs", config]))


def test_densepose_keys_are_added_when_the_project_is_installed(tmp_path, monkeypatch):
    """With a ``densepose`` package importable (a stand-in with the two keys of its
    ``add_densepose_config`` that the file uses), config B is built with them."""
    from detectron2.config import CfgNode as CN

    def add_densepose_config(cfg):
        cfg.MODEL.DENSEPOSE_ON = False
        cfg.MODEL.ROI_DENSEPOSE_HEAD = CN({"NAME": "", "UV_CONFIDENCE": "none"})

    tool = _load_tool()
    module = types.ModuleType("densepose")
    module.add_densepose_config = add_densepose_config
    monkeypatch.setitem(sys.modules, "densepose", module)
    config = _densepose_config(tmp_path)
    cfgs = tool.load_cfgs(tool.parse_args(["--config-file", QUICK_CONFIG, "--vs", config]))
    head = cfgs["B"].MODEL.ROI_DENSEPOSE_HEAD
    assert cfgs["B"].MODEL.DENSEPOSE_ON and head.NAME == "DensePoseV1ConvXHead"
    assert head.UV_CONFIDENCE == "iid" and "ROI_DENSEPOSE_HEAD" not in cfgs["A"].MODEL


def test_peak_memory_counts_the_heap_in_use():
    """The CPU peak is the growth of the C heap's bytes in use: a 64 MB tensor held during the
    phase and freed before its end counts 64 MB."""
    import torch

    tool = _load_tool()
    if tool._HEAP_IN_USE is None:
        pytest.skip("needs glibc's mallinfo2 (glibc >= 2.33)")
    with tool.PeakMemory("cpu", interval_s=0.001) as mem:
        held = torch.ones(16 * 2**20)  # 64 MB
        time.sleep(0.05)
        del held
    assert 63 <= mem.mb <= 70
    assert mem.rss_mb >= 0


PARTS_CONFIG = os.path.join(
    os.path.dirname(QUICK_CONFIG), "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml"
)


def test_fixed_boxes_lie_in_the_image_and_are_distinct():
    tool = _load_tool()
    boxes = tool.fixed_boxes(100, 480, 640)
    assert boxes.shape == (100, 4)
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 640 + 1e-3).all()
    assert (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= 480 + 1e-3).all()
    assert len({tuple(b) for b in boxes.tolist()}) == 100


def test_detections_phase_runs_n_given_boxes_through_the_roi_heads(datasets_root, tmp_path, capsys):
    """--detections 1,4 with the part model against Detectron2's Mask R-CNN: every N yields N
    detections (and N part maps for the part model) whatever the untrained detector scores, the
    table has a row per N and the memory per detection."""
    tool = _load_tool()
    out = tmp_path / "detections.json"
    argv = ["--config-file", MASK_RCNN_CONFIG, "--vs", PARTS_CONFIG, "--phases", "detections"]
    argv += ["--detections", "1,4", "--warmup", "0", "--json", str(out), *BENCH_OPTS]
    args = tool.parse_args(argv)
    assert args.phases == ["detections"] and args.detections == [1, 4]
    tool.main(args)
    result = json.loads(out.read_text())
    for key, parts in (("A", False), ("B", True)):
        figures = result["configs"][key]["detections"]
        for num in (1, 4):
            assert figures[str(num)]["detections"] == num
            assert figures[str(num)]["part_maps"] == (num if parts else 0)
            assert figures[str(num)]["peak_memory_mb"] >= 0
        assert "mb_per_detection" in figures
    table = capsys.readouterr().out
    assert "Inference with N given person boxes" in table and "MB per detection" in table


def test_detections_phase_needs_counts(capsys):
    tool = _load_tool()
    with pytest.raises(SystemExit):
        tool.parse_args(["--config-file", QUICK_CONFIG, "--phases", "detections"])
    assert "needs --detections" in capsys.readouterr().err
