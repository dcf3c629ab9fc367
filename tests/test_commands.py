"""Every tool and every documented shell command, run as a user runs them.

* Each ``tools/*.py`` is started as a process of its own (``sys.executable tools/X.py``, cwd the
  repository, a fresh copy of the environment): ``--help``, and one real run on tiny settings whose
  files are checked. The weights the runs load are trained once per session by
  ``tools/train_net.py`` itself (2 iterations on 64 px synthetic images, in a tmp dir). A tool
  without an entry in ``TOOL_RUNS`` fails ``test_tool_real_run``.
* Every ``bash`` / ``sh`` / ``shell`` block of README.md, docs/**/*.md and datasets/README.md is run
  with bash (``set -euo pipefail``) in a tmp dir laid out like the repository: ``tools/``,
  ``bodyparts/``, ``scripts/`` and ``Makefile`` are links to the repository; ``configs/`` links to
  it too, except ``configs/quick_schedules/``, whose configs are replaced by tiny ones of the same
  name (``_BASE_`` the real file + ``TINY``: 64 px synthetic images, 2 iterations, small
  evaluation) so that every documented training, evaluation and benchmark runs unchanged in
  seconds; ``.venv/bin/python`` is replaced by ``sys.executable``; the inputs the blocks name
  (``my_photos/``, ``photo.jpg``, ``img.jpg``) are written; ``datasets/`` is an empty folder (the
  synthetic data is generated there, as for a user). An HTML comment right before a block,
  ``<!-- test: NAME -->``, names its entry in ``BLOCKS`` (substitutions for tool flags, weights to
  provide, files it must write); ``<!-- test: skip REASON -->`` reports it as a skip with that
  reason. Test ids are ``FILE:LINE`` of the block's opening fence. Blocks run 2 at a time.
* The order of ``import detectron2.data`` and ``import bodyparts`` does not matter.
"""

import glob
import json
import math
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import pytest
import yaml
from conftest import REPO

from bodyparts.data.synthetic.render import render_scene

TOOLS_DIR = os.path.join(REPO, "tools")
TOOLS = sorted(os.path.splitext(f)[0] for f in os.listdir(TOOLS_DIR) if f.endswith(".py"))
QUICK = os.path.join(REPO, "configs", "quick_schedules")
SHARED_CONFIG = os.path.join(QUICK, "bodyparts_rcnn_R18_FPN_synthetic_cpu_shared.yaml")
SHARED_WEIGHTS = "output/bodyparts_rcnn_R18_FPN_synthetic_cpu_shared/model_final.pth"

# The tiny settings of every run: 64 px synthetic images (4 train, 2 val), 2 iterations of 2
# images, small ROI batches, every proposal kept (an untrained model then detects persons), TTA at
# the same size. Only data, schedule and test keys: a model trained with them loads in any config
# of the same architecture.
TINY = {
    "BODYPARTS.SYNTHETIC.NUM_TRAIN": "4",
    "BODYPARTS.SYNTHETIC.NUM_VAL": "2",
    "BODYPARTS.SYNTHETIC.IMAGE_SIZE": "64",
    "INPUT.MIN_SIZE_TRAIN": "(64,)",
    "INPUT.MAX_SIZE_TRAIN": "128",
    "INPUT.MIN_SIZE_TEST": "64",
    "INPUT.MAX_SIZE_TEST": "128",
    "TEST.AUG.MIN_SIZES": "(64,)",
    "TEST.AUG.MAX_SIZE": "128",
    "TEST.DETECTIONS_PER_IMAGE": "4",
    "DATALOADER.NUM_WORKERS": "0",
    "SOLVER.IMS_PER_BATCH": "2",
    "SOLVER.MAX_ITER": "2",
    "SOLVER.STEPS": "(1,)",
    "SOLVER.WARMUP_ITERS": "1",
    "SOLVER.CHECKPOINT_PERIOD": "1000",
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": "16",
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST": "0.0",
}
TINY_OPTS = [s for item in TINY.items() for s in item]
# The parts of TINY an inference-only tool takes (no training keys).
TEST_OPTS = [
    s for k, v in TINY.items() if not k.startswith(("SOLVER.", "DATALOADER.")) for s in (k, v)
]


def _env(**extra: str) -> Dict[str, str]:
    """A fresh copy of the environment; one thread (the machine may be busy and has 2 cores)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _tail(text: str, n: int = 4000) -> str:
    return text if len(text) <= n else "...\n" + text[-n:]


def _run(cmd: Sequence[str], *, cwd: str = REPO, env=None, timeout: float = 300):
    proc = subprocess.run(
        list(cmd), cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=timeout
    )
    return proc, proc.stdout + proc.stderr


def _tool(name: str, *args: str) -> List[str]:
    return [sys.executable, f"tools/{name}.py", *args]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_scenes(folder, names=("scene_a.jpg", "scene_b.png"), size: int = 64) -> List[str]:
    os.makedirs(str(folder), exist_ok=True)
    paths = []
    for seed, name in enumerate(names):
        scene = render_scene(seed + 3, size, size, min_persons=1, max_persons=2)
        path = os.path.join(str(folder), name)
        assert cv2.imwrite(path, scene.image[:, :, ::-1])
        paths.append(path)
    return paths


def _assert_loaded_all_weights(log: str) -> None:
    """Detectron2's checkpointer names missing or unused checkpoint keys; neither may appear."""
    assert "UNTRAINED" not in log
    assert "not found in the checkpoint" not in log, _tail(log)
    assert "not used by the model" not in log, _tail(log)


PERSON_KEYS = {"box_xyxy", "score", "category", "keypoints", "silhouette", "parts"}
RESULT_KEYS = {"height", "width", "part_taxonomy", "part_labels", "keypoint_names", "persons"}


# ------------------------------------------------------------------------------------------------
# the model every run loads: trained once per session by tools/train_net.py


@dataclass
class Trained:
    weights: str
    output_dir: str
    log: str
    datasets: str


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> Trained:
    """``make demo``'s config trained for 2 iterations on tiny settings, by the tool itself."""
    root = tmp_path_factory.mktemp("trained")
    out, datasets = str(root / "output"), str(root / "datasets")
    cmd = _tool("train_net", "--config-file", SHARED_CONFIG, *TINY_OPTS, "OUTPUT_DIR", out)
    proc, log = _run(cmd, env=_env(DETECTRON2_DATASETS=datasets), timeout=400)
    if proc.returncode != 0:
        pytest.fail(f"{shlex.join(cmd)} failed ({proc.returncode}):\n{_tail(log)}")
    return Trained(os.path.join(out, "model_final.pth"), out, log, datasets)


# ------------------------------------------------------------------------------------------------
# tools/*.py --help

# Tools that fail for a bug of their own: xfail(strict=True) until fixed (see the report of the
# issue). Keys: tool name; values: the reason.
KNOWN_TOOL_BUGS: Dict[str, str] = {}


def _tool_params(tools: Sequence[str]):
    return [
        pytest.param(t, marks=pytest.mark.xfail(strict=True, reason=KNOWN_TOOL_BUGS[t]))
        if t in KNOWN_TOOL_BUGS
        else t
        for t in tools
    ]


def test_tool_list_is_known():
    assert TOOLS, "no tools/*.py found"
    assert set(TOOLS) - set(TOOL_RUNS) == set(), "add a real-run case to TOOL_RUNS"


@pytest.fixture(scope="module")
def help_runs() -> Dict[str, Tuple[subprocess.CompletedProcess, str]]:
    """``tools/X.py --help`` of every tool, 3 processes at a time (most of each is the imports)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        runs = {t: pool.submit(_run, _tool(t, "--help"), timeout=200) for t in TOOLS}
        return {t: run.result() for t, run in runs.items()}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("tool", _tool_params(TOOLS))
def test_tool_help(tool, help_runs):
    proc, log = help_runs[tool]
    assert proc.returncode == 0, _tail(log)
    assert proc.stdout.startswith("usage:"), _tail(log)
    assert f"{tool}.py" in proc.stdout.splitlines()[0]
    assert "Traceback" not in log


# ------------------------------------------------------------------------------------------------
# tools/*.py: one real run each


def _run_train_net(tmp_path, trained: Trained) -> None:
    """The session fixture's run: checkpoints, pointer, metrics, evaluation of every task."""
    out = trained.output_dir
    assert os.path.getsize(trained.weights) > 1_000_000
    assert open(os.path.join(out, "last_checkpoint")).read().strip() == "model_final.pth"
    metrics = [json.loads(line) for line in open(os.path.join(out, "metrics.json"))]
    assert any(m.get("iteration") == 1 and "total_loss" in m for m in metrics)  # steps 0 and 1
    assert any("bbox/AP" in m for m in metrics) and any("parsing/mIoU" in m for m in metrics)
    assert glob.glob(os.path.join(out, "events.out.tfevents.*"))
    assert os.path.isfile(os.path.join(out, "log.txt"))
    inference = os.path.join(out, "inference", "bodyparts_synthetic_val")
    for name in ("coco_instances_results.json", "parsing_instances.json"):
        assert os.path.getsize(os.path.join(inference, name)) > 0, name
    for task in ("bbox", "segm", "keypoints", "parsing"):
        assert f"copypaste: Task: {task}" in trained.log, task
    assert "Traceback" not in trained.log


def _run_demo(tmp_path, trained: Trained) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    _write_scenes(inputs)
    cmd = _tool(
        "demo", "--config-file", SHARED_CONFIG, "--input", str(inputs), "--output", str(out),
        "--json", "--confidence-threshold", "0.0", *TEST_OPTS, "MODEL.WEIGHTS", trained.weights,
    )  # fmt: skip
    proc, log = _run(cmd, timeout=240)
    assert proc.returncode == 0, _tail(log)
    _assert_loaded_all_weights(log)
    assert sorted(os.listdir(out)) == sorted(
        f"scene_{s}{suffix}" for s in "ab" for suffix in (".png", ".json", "_parts.png")
    )
    for s in "ab":
        result = json.loads((out / f"scene_{s}.json").read_text())
        assert RESULT_KEYS <= set(result) and (result["height"], result["width"]) == (64, 64)
        assert result["persons"] and all(set(p) == PERSON_KEYS for p in result["persons"])
        assert cv2.imread(str(out / f"scene_{s}_parts.png"), cv2.IMREAD_UNCHANGED).shape == (64, 64)


def _http(url: str, data: Optional[bytes] = None, headers=None, timeout: float = 60):
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout) as answer:
        return answer.status, answer.headers.get("Content-Type", ""), answer.read()


def _wait_for_health(url: str, proc: subprocess.Popen, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with code {proc.returncode}")
        try:
            return json.loads(_http(url + "/health", timeout=5)[2])
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"no answer from {url}/health within {seconds} s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop a process this test started (its own process group), SIGTERM first."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=20)


def _run_serve(tmp_path, trained: Trained) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    cmd = _tool(
        "serve", "--config-file", SHARED_CONFIG, "--port", str(port), "--confidence-threshold",
        "0.0", *TEST_OPTS, "MODEL.WEIGHTS", trained.weights,
    )  # fmt: skip
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=_env(), stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        health = _wait_for_health(url, proc, 180)
        assert health["status"] == "ok", health
        info = json.loads(_http(url + "/info")[2])
        assert {"parts", "keypoint_names"} <= set(info)
        image = cv2.imencode(".jpg", cv2.imread(_write_scenes(tmp_path / "in")[0]))[1].tobytes()
        status, kind, body = _http(url + "/predict", image, {"Content-Type": "image/jpeg"})
        result = json.loads(body)
        assert status == 200 and kind.startswith("application/json")
        assert RESULT_KEYS <= set(result) and result["persons"]
        assert all(set(p) == PERSON_KEYS for p in result["persons"])
        status, kind, body = _http(url + "/render", image, {"Content-Type": "image/jpeg"})
        assert status == 200 and kind == "image/png" and body.startswith(b"\x89PNG")
        assert json.loads(_http(url + "/health")[2])["processed"] == 2
    finally:
        _stop(proc)
    _assert_loaded_all_weights(log_path.read_text())


def _run_benchmark_server(tmp_path, trained: Trained) -> None:
    report = tmp_path / "report.json"
    cmd = _tool(
        "benchmark_server", "--requests", "2", "--concurrency", "1", "2", "--size", "64",
        "--warmup", "0", "--json", str(report), "--config-file", SHARED_CONFIG, *TEST_OPTS,
        "MODEL.WEIGHTS", trained.weights,
    )  # fmt: skip
    proc, log = _run(cmd, timeout=300)
    assert proc.returncode == 0, _tail(log)
    levels = json.loads(report.read_text())["levels"]
    assert [level["concurrency"] for level in levels] == [1, 2]
    for level in levels:
        assert level["ok"] == 2 and level["outcomes"] == {"200": 2}, level
        assert level["unexpected_errors"] == 0 and set(level["latency_ms"]) >= {"p50", "p95"}


def _run_check_dataset(tmp_path, trained: Trained) -> None:
    """The PASCAL-Part fixture in its native layout under $DETECTRON2_DATASETS."""
    from fixtures.pascal_part import write_pascal_part_fixture

    root = tmp_path / "datasets"
    expected = write_pascal_part_fixture(
        str(root / "pascal_part"), image_dir="../VOCdevkit/VOC2010/JPEGImages"
    )
    main = root / "VOCdevkit" / "VOC2010" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "train.txt").write_text("\n".join(sorted(expected)) + "\n")
    out = tmp_path / "report"
    cmd = _tool(
        "check_dataset", "pascal_part_person_train", "--output", str(out), "--num-vis", "1",
        "--taxonomy", "lr6",
    )  # fmt: skip
    proc, log = _run(cmd, env=_env(DETECTRON2_DATASETS=str(root)), timeout=240)
    assert proc.returncode == 0, _tail(log)
    summary = json.loads((out / "pascal_part_person_train" / "summary.json").read_text())
    assert summary["images"] == 2 and summary["persons"]["total"] == 4
    assert summary["problems"] == []
    assert set(summary["part_share_lr6"]) == {
        "head", "torso", "left_arm", "right_arm", "left_leg", "right_leg"
    }  # fmt: skip
    assert len(os.listdir(out / "pascal_part_person_train" / "samples")) == 1


def _run_eval_part_panoptic(tmp_path, trained: Trained) -> None:
    """The files of PartPanopticEvaluator (run here on predictions copied from the ground truth of a
    tiny synthetic split): the package's numbers are 100."""
    from _helpers import remove_dataset
    from detectron2.data import DatasetCatalog
    from test_panoptic_evaluator import _outputs_from_gt
    from test_panoptic_evaluator import _run as run_evaluator
    from test_partpq import needs_package

    from bodyparts.data.datasets.synthetic import register_synthetic_people

    if needs_package.args[0]:
        pytest.skip(needs_package.kwargs["reason"])
    names = register_synthetic_people(
        str(tmp_path / "datasets"), num_train=1, num_val=2, image_size=64, prefix="cmd_pq"
    )
    try:
        run_evaluator(names[1], _outputs_from_gt(DatasetCatalog.get(names[1])),
                      output_dir=str(tmp_path))  # fmt: skip
    finally:
        for name in names:
            remove_dataset(name)
    proc, log = _run(_tool("eval_part_panoptic", str(tmp_path / "part_panoptic")), timeout=240)
    assert proc.returncode == 0, _tail(log)
    result = json.loads(proc.stdout)
    assert result["panoptic_seg"]["PQ"] == pytest.approx(100)
    assert result["part_panoptic"]["PartPQ"] == pytest.approx(100)


def _run_export_model(tmp_path, trained: Trained) -> None:
    sample = _write_scenes(tmp_path / "in", names=("sample.jpg",))[0]
    out = tmp_path / "export"
    cmd = _tool(
        "export_model", "--config-file", SHARED_CONFIG, "--format", "torchscript",
        "--export-method", "tracing", "--sample-image", sample, "--output", str(out),
        *TEST_OPTS, "MODEL.WEIGHTS", trained.weights,
    )  # fmt: skip
    proc, log = _run(cmd, timeout=400)
    assert proc.returncode == 0, _tail(log)
    _assert_loaded_all_weights(log)
    assert (out / "model.ts").is_file()
    info = json.loads((out / "export_info.json").read_text())
    assert info["format"] == "torchscript" and info["method"] == "tracing"
    assert [o["name"] for o in info["outputs"]][:4] == ["boxes", "scores", "classes", "part_probs"]
    assert "max |difference|" in proc.stdout


def _run_export_parsing_predictions(tmp_path, trained: Trained) -> None:
    out = tmp_path / "export"
    cmd = _tool(
        "export_parsing_predictions", "--config-file", SHARED_CONFIG, "--dataset",
        "bodyparts_synthetic_val", "--output", str(out), "--eval", "--no-progress", *TEST_OPTS,
        "MODEL.WEIGHTS", trained.weights,
    )  # fmt: skip
    proc, log = _run(cmd, env=_env(DETECTRON2_DATASETS=trained.datasets), timeout=300)
    assert proc.returncode == 0, _tail(log)
    _assert_loaded_all_weights(log)
    for folder in ("parsing_predict", "parsing_instance", "parsing_person", "instance_part"):
        assert os.listdir(out / folder), folder
    assert (out / "results.txt").is_file()
    metrics = json.loads((out / "metrics.json").read_text())["parsing"]
    assert {"mIoU", "APp50", "APp_vol", "PCP50", "APr50"} <= set(metrics)


def _run_benchmark(tmp_path, trained: Trained) -> None:
    report = tmp_path / "bench.json"
    cmd = _tool(
        "benchmark", "--config-file", SHARED_CONFIG, "--iters", "1", "--warmup", "0", "--images",
        "1", "--json", str(report), *TINY_OPTS, "MODEL.WEIGHTS", trained.weights,
    )  # fmt: skip
    proc, log = _run(cmd, env=_env(DETECTRON2_DATASETS=trained.datasets), timeout=300)
    assert proc.returncode == 0, _tail(log)
    result = json.loads(report.read_text())
    assert list(result["configs"]) == ["A"]
    run = result["configs"]["A"]
    assert run["device"] == "cpu" and run["image_size"]["test"] == [64, 64]
    for phase in ("train", "inference", "data_loader"):
        assert run[phase]["images_per_s"] > 0, phase


def _run_dry_run(tmp_path, trained: Trained) -> None:
    """Two real training steps (forward, backward, update at learning rate 0) of the quick config
    on generated 96 x 96 images, their peak memory reported per iteration."""
    out = tmp_path / "dry"
    cmd = _tool(
        "dry_run", "--config-file", SHARED_CONFIG, "--iters", "2", "--images", "2",
        "--image-size", "96", "--max-persons", "2", "--output", str(out),
        "INPUT.MIN_SIZE_TRAIN", "(64,)", "INPUT.MAX_SIZE_TRAIN", "96",
    )  # fmt: skip
    proc, log = _run(cmd, env=_env(DETECTRON2_DATASETS=str(tmp_path / "data")), timeout=300)
    assert proc.returncode == 0, _tail(log)
    report = json.loads((out / "dry_run.json").read_text())
    assert [r["iter"] for r in report["iterations"]] == [0, 1]
    assert report["ims_per_batch"] == 1 and report["image_size"] == 96  # IMS_PER_BATCH 4 / 8 -> 1
    assert all(r["peak_mb"] > 100 and r["seconds"] > 0 for r in report["iterations"])
    assert all(math.isfinite(r["total_loss"]) for r in report["iterations"])
    assert report["peak_mb"] == max(r["peak_mb"] for r in report["iterations"])
    assert "Traceback" not in log


TOOL_RUNS: Dict[str, Callable[..., None]] = {
    "benchmark": _run_benchmark,
    "benchmark_server": _run_benchmark_server,
    "check_dataset": _run_check_dataset,
    "demo": _run_demo,
    "dry_run": _run_dry_run,
    "eval_part_panoptic": _run_eval_part_panoptic,
    "export_model": _run_export_model,
    "export_parsing_predictions": _run_export_parsing_predictions,
    "serve": _run_serve,
    "train_net": _run_train_net,
}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("tool", _tool_params(TOOLS))
def test_tool_real_run(tool, tmp_path, trained):
    if tool not in TOOL_RUNS:
        pytest.fail(f"tools/{tool}.py has no real-run case: add one to TOOL_RUNS")
    TOOL_RUNS[tool](tmp_path, trained)


@pytest.mark.timeout(240)
def test_demo_refuses_weights_of_another_model(tmp_path, trained):
    """The user's report: the config with separate mask and keypoint heads and the weights of the
    shared-trunk model (``make demo``'s) ran randomly initialised heads without a word. Now a
    one-line error (exit code 2) that names the way out."""
    _write_scenes(tmp_path / "in", names=("scene.jpg",))
    config = os.path.join(QUICK, "bodyparts_rcnn_R18_FPN_synthetic_cpu.yaml")
    cmd = _tool(
        "demo", "--config-file", config, "--input", str(tmp_path / "in"), "--output",
        str(tmp_path / "out"), *TEST_OPTS, "MODEL.WEIGHTS", trained.weights,
    )  # fmt: skip
    proc, log = _run(cmd, timeout=230)
    assert proc.returncode == 2, _tail(log)
    assert "Traceback" not in log and "--allow-partial-weights" in log, _tail(log)


# ------------------------------------------------------------------------------------------------
# the import order


IMPORT_CHECK = """
import {first}; import {second}
from detectron2.data import DatasetCatalog, transforms as T
from detectron2.modeling import ROI_HEADS_REGISTRY, build_model
from detectron2.config import get_cfg
from bodyparts import add_bodyparts_config
import numpy as np
cfg = get_cfg(); add_bodyparts_config(cfg)
cfg.merge_from_file({config!r})
model = build_model(cfg)
image = np.zeros((8, 8, 3), np.uint8)
T.ExtentTransform((0, 0, 8, 8), (4, 4)).apply_image(image)  # Image.LINEAR, v0.6's default
print("OK", "BodyPartROIHeads" in ROI_HEADS_REGISTRY, "cihp_val" in DatasetCatalog.list())
"""


@pytest.mark.timeout(180)
def test_import_order_does_not_matter(tmp_path):
    """Detectron2 first, as a user's script may (the other order is every tool's)."""
    code = IMPORT_CHECK.format(first="detectron2.data", second="bodyparts", config=SHARED_CONFIG)
    proc, log = _run([sys.executable, "-c", code], cwd=str(tmp_path), timeout=170)
    assert proc.returncode == 0, _tail(log)
    assert proc.stdout.split()[-3:] == ["OK", "True", "True"], _tail(log)


# ------------------------------------------------------------------------------------------------
# the shell blocks of the documentation

DOC_FILES = ["README.md", *sorted(glob.glob("docs/**/*.md", root_dir=REPO, recursive=True)),
             "datasets/README.md"]  # fmt: skip
SHELL_LANGUAGES = {"bash", "sh", "shell"}
MARKER = re.compile(r"^\s*<!--\s*test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)")


@dataclass
class DocBlock:
    path: str  # relative to the repository
    line: int  # of the opening fence, 1-based
    language: str
    text: str
    marker: Optional[str]  # what follows "test:" in the comment right before the block

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"


def shell_blocks(path: str) -> List[DocBlock]:
    """The fenced shell blocks of a Markdown file, with the ``<!-- test: ... -->`` marker on the
    last non-blank line before each (if any)."""
    lines = open(os.path.join(REPO, path), encoding="utf-8").read().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, language = opening.group(2), opening.group(3).lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        if language in SHELL_LANGUAGES:
            before = [ln for ln in lines[:i] if ln.strip()]
            marker = MARKER.match(before[-1]) if before else None
            blocks.append(
                DocBlock(
                    path,
                    i + 1,
                    language,
                    "\n".join(lines[i + 1 : end]) + "\n",
                    marker.group(1) if marker else None,
                )  # fmt: skip
            )
        i = end + 1
    return blocks


@dataclass
class BlockCase:
    """How a block runs here: ``subs`` (old, new) replaced in its text (each old must occur),
    ``weights`` (paths the block loads but does not train: the session model is linked there),
    ``expect`` (globs, relative to the work dir, that must match a non-empty file afterwards),
    ``check`` (more assertions: ``check(workdir, output)``), ``server`` (a free port in $PORT)."""

    subs: List[Tuple[str, str]] = field(default_factory=list)
    weights: List[str] = field(default_factory=list)
    expect: List[str] = field(default_factory=list)
    check: Optional[Callable[[str, str], None]] = None
    server: bool = False
    timeout: int = 420


def _check_demo_json(workdir: str, folder: str) -> None:
    files = sorted(glob.glob(os.path.join(workdir, folder, "*.json")))
    assert [os.path.basename(f) for f in files] == ["scene_a.json", "scene_b.json"], files
    for f in files:
        assert {"height", "width", "part_labels"} <= set(json.load(open(f))), f


def _check_quick_start(workdir: str, output: str) -> None:
    assert "Outputs (checkpoints, metrics.json" in output
    assert "output/bodyparts_rcnn_R18_FPN_synthetic_cpu_shared" in output
    assert "copypaste: Task: parsing" in output
    assert f"{sys.executable} -m pytest tests" in output  # make -n test: the suite's command


def _check_tools(workdir: str, output: str) -> None:
    _check_demo_json(workdir, "demo_out")
    assert output.count("copypaste: Task: parsing") >= 3  # train, --resume, --eval-only


def _check_server(workdir: str, output: str) -> None:
    result = json.load(open(os.path.join(workdir, "predict.json")))
    assert {"height", "width", "persons", "part_labels"} <= set(result)
    assert open(os.path.join(workdir, "drawn.png"), "rb").read(4) == b"\x89PNG"


def _check_bench_server(workdir: str, output: str) -> None:
    report = json.load(open(os.path.join(workdir, "bench.json")))
    assert [level["concurrency"] for level in report["levels"]] == [1, 2]
    assert all(level["unexpected_errors"] == 0 for level in report["levels"])


def _check_export(workdir: str, output: str) -> None:
    for folder, fmt, method in (
        ("export_ts", "torchscript", "scripting"),
        ("export_onnx", "onnx", "tracing"),
    ):
        info = json.load(open(os.path.join(workdir, folder, "export_info.json")))
        assert (info["format"], info["method"]) == (fmt, method)


def _check_light(workdir: str, output: str) -> None:
    report = json.load(open(os.path.join(workdir, "light_vs_main.json")))
    assert set(report["configs"]) == {"A", "B"}


TRAIN_FLAGS = "--iters 1 --warmup 0 --images 1"  # tools/benchmark.py: one step, one image
BLOCKS: Dict[str, BlockCase] = {
    "quick-start": BlockCase(
        subs=[
            # the set-up step is done (this interpreter); `make demo` with it, on the tiny config
            ("make demo", 'make -o setup demo PY="$PYTHON"'),
            # the suite itself (this test is part of it): its command, not run again
            ("make test", 'make -n -o setup test PY="$PYTHON"'),
        ],
        expect=["output/bodyparts_rcnn_R18_FPN_synthetic_cpu_shared/model_final.pth"],
        check=_check_quick_start,
    ),
    "tools": BlockCase(
        subs=[("--vs $CFG", f"--vs $CFG {TRAIN_FLAGS}")],
        weights=[SHARED_WEIGHTS],
        expect=[
            "output/bodyparts_rcnn_R18_FPN_synthetic_cpu/model_final.pth",
            "output/bodyparts_rcnn_R18_FPN_synthetic_cpu/metrics.json",
            "demo_out/scene_a.png",
            "demo_out/scene_a_parts.png",
        ],
        check=_check_tools,
        timeout=600,
    ),
    "serve": BlockCase(
        subs=[
            ("tools/serve.py", "tools/serve.py --port $PORT"),
            (
                "model_final.pth\n# then open",
                'model_final.pth > serve.log 2>&1 &\nwait_for_server "$PORT"\n# then open',
            ),  # fmt: skip
            ("127.0.0.1:8000", "127.0.0.1:$PORT"),
            ("/predict", "/predict -o predict.json"),
        ],
        weights=[SHARED_WEIGHTS],
        expect=["predict.json", "drawn.png"],
        check=_check_server,
        server=True,
    ),
    "benchmark-server": BlockCase(
        subs=[
            (
                "--requests 200 --concurrency 1 8",
                "--requests 2 --concurrency 1 2 --size 64 --warmup 0",
            )
        ],
        weights=[SHARED_WEIGHTS],
        expect=["bench.json"],
        check=_check_bench_server,
    ),
    "semantic": BlockCase(
        expect=[
            "output/semantic_fpn_R18_synthetic_cpu/model_final.pth",
            "out/scene_a.json",
            "out/scene_a_parts.png",
        ],
        check=lambda workdir, output: _check_demo_json(workdir, "out"),
    ),
    "panoptic": BlockCase(
        expect=[
            "output/panoptic_bodyparts_R18_FPN_synthetic_cpu/model_final.pth",
            "out/scene_a_panoptic.png",
            "out/scene_a_part_panoptic.png",
        ],
        check=lambda workdir, output: _check_demo_json(workdir, "out"),
    ),
    "export": BlockCase(
        weights=[SHARED_WEIGHTS],
        expect=["export_ts/model.ts", "export_onnx/model.onnx"],
        check=_check_export,
    ),
    "light-vs-main": BlockCase(
        subs=[
            ("--vs $LIGHT", f"--vs $LIGHT {TRAIN_FLAGS}"),
            ("--threads 1,2 --input-sizes 192,320", "--threads 1 --input-sizes 64"),
            ("--images 50", "--images 1"),
        ],
        expect=[
            "light_vs_main.json",
            "output/bodyparts_rcnn_light_RegNetX400MF_FPN_synthetic_cpu_shared/model_final.pth",
        ],
        check=_check_light,
        timeout=600,
    ),
}

PRELUDE = """\
set -euo pipefail
curl() { command curl --fail --max-time 120 "$@"; }
wait_for_server() {  # port: until /health answers, at most 180 s, while a background job runs
    for _ in $(seq 360); do
        command curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/health" && return 0
        [ -n "$(jobs -rp)" ] || { cat serve.log; echo "the server exited"; return 1; }
        sleep 0.5
    done
    echo "no answer from the server on port $1"; return 1
}
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
set -x
"""


def _all_blocks() -> List[DocBlock]:
    return [block for path in DOC_FILES for block in shell_blocks(path)]


def _block_params():
    params = []
    for block in _all_blocks():
        marks = ()
        if block.marker and block.marker.startswith("skip"):
            reason = block.marker[len("skip") :].strip()
            marks = pytest.mark.skip(reason=f"{block.id}: {reason or 'no reason given'}")
        params.append(pytest.param(block, id=block.id, marks=marks))
    return params


def _tiny_config(source: str, target: str) -> None:
    """``target``: a config of the same name and OUTPUT_DIR as ``source`` with TINY on top."""
    nested: Dict = {"_BASE_": source}
    for key, value in TINY.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    path = source
    while True:  # OUTPUT_DIR of the config or of its nearest base (make demo reads it)
        data = yaml.safe_load(open(path))
        if "OUTPUT_DIR" in data:
            nested["OUTPUT_DIR"] = data["OUTPUT_DIR"]
            break
        path = os.path.join(os.path.dirname(path), data["_BASE_"])
    with open(target, "w") as f:
        yaml.safe_dump(nested, f, sort_keys=False)


def _block_workdir(root: str, trained: Optional[Trained], case: BlockCase) -> None:
    """A folder laid out like the repository (see the module docstring)."""
    for name in ("bodyparts", "tools", "scripts", "Makefile"):
        os.symlink(os.path.join(REPO, name), os.path.join(root, name))
    configs = os.path.join(root, "configs")
    os.mkdir(configs)
    for name in os.listdir(os.path.join(REPO, "configs")):
        if name != "quick_schedules":
            os.symlink(os.path.join(REPO, "configs", name), os.path.join(configs, name))
    os.mkdir(os.path.join(configs, "quick_schedules"))
    for source in glob.glob(os.path.join(QUICK, "*.yaml")):
        _tiny_config(source, os.path.join(configs, "quick_schedules", os.path.basename(source)))
    os.mkdir(os.path.join(root, "datasets"))
    _write_scenes(os.path.join(root, "my_photos"))
    for name in ("photo.jpg", "img.jpg"):
        shutil.copy(os.path.join(root, "my_photos", "scene_a.jpg"), os.path.join(root, name))
    for weights in case.weights:
        os.makedirs(os.path.join(root, os.path.dirname(weights)), exist_ok=True)
        os.symlink(trained.weights, os.path.join(root, weights))


def _script(block: DocBlock, case: BlockCase) -> str:
    text = block.text
    for old, new in case.subs:
        assert old in text, f"{block.id}: {old!r} is not in the block any more; update BLOCKS"
        text = text.replace(old, new)
    text = re.sub(r"(?<![\w/])\.venv/bin/python\b", lambda m: shlex.quote(sys.executable), text)
    return PRELUDE + text


def _case(block: DocBlock) -> BlockCase:
    if block.marker is None:
        return BlockCase()
    assert block.marker in BLOCKS, f"{block.id}: unknown marker 'test: {block.marker}'"
    return BLOCKS[block.marker]


@dataclass
class BlockRun:
    workdir: str
    returncode: Optional[int]  # None: killed after the case's timeout
    output: str
    seconds: float


def _run_block(block: DocBlock, workdir: str, trained: Optional[Trained]) -> BlockRun:
    """The block as a bash script in ``workdir``; everything it started is killed at the end."""
    case = _case(block)
    os.makedirs(workdir)
    _block_workdir(workdir, trained, case)
    with open(os.path.join(workdir, "block.sh"), "w") as f:
        f.write(_script(block, case))
    env = _env(PYTHON=sys.executable)
    env.pop("DETECTRON2_DATASETS", None)  # as a user: ./datasets
    if case.server:
        env["PORT"] = str(_free_port())
    start = time.monotonic()
    proc = subprocess.Popen(
        ["bash", "block.sh"], cwd=workdir, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=case.timeout)
        returncode = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, returncode = proc.communicate()[0], None
    finally:
        try:  # whatever the block left running in its process group (a server)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return BlockRun(workdir, returncode, output, time.monotonic() - start)


@pytest.fixture(scope="module")
def block_runs(request, tmp_path_factory):
    """The selected blocks run in the background, 2 at a time (each run is mostly one busy
    process, the machine has 2 cores), in the order of the tests; each test waits for its own."""
    selected = [
        item.callspec.params["block"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_doc_block"
        and not item.get_closest_marker("skip")
    ]
    needs_model = any(_case(b).weights for b in selected if b.marker in BLOCKS or not b.marker)
    trained = request.getfixturevalue("trained") if needs_model else None
    pool = ThreadPoolExecutor(max_workers=2)
    runs = {}
    for block in selected:
        workdir = str(tmp_path_factory.mktemp(f"block_{block.line}") / "work")
        runs[block.id] = pool.submit(_run_block, block, workdir, trained)
    yield runs
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("block", _block_params())
def test_doc_block(block: DocBlock, block_runs):
    case = _case(block)
    run = block_runs[block.id].result()
    print(f"ran {block.id} in {run.workdir} ({run.seconds:.0f} s)")
    output = run.output
    assert run.returncode is not None, f"{block.id} ran past {case.timeout} s:\n{_tail(output)}"
    assert run.returncode == 0, f"{block.id} failed ({run.returncode}):\n{_tail(output)}"
    assert "Traceback" not in output, _tail(output)
    _assert_loaded_all_weights(output)
    for pattern in case.expect:
        paths = glob.glob(os.path.join(run.workdir, pattern))
        written = [p for p in paths if os.path.getsize(p) > 0]
        assert written, f"{block.id}: no {pattern}\n{_tail(output)}"
    if case.check:
        case.check(run.workdir, output)


def test_doc_markers_are_known():
    """Every marker names an entry of BLOCKS (or skips), every entry is used by one block."""
    used = [b.marker for b in _all_blocks() if b.marker and not b.marker.startswith("skip")]
    assert set(used) <= set(BLOCKS), set(used) - set(BLOCKS)
    assert sorted(used) == sorted(BLOCKS), "each BLOCKS entry is used by exactly one block"
