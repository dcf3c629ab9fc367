"""bodyparts-runtime (runtime/): an ONNX export run without PyTorch or Detectron2, against the eager
model's ``tools/demo.py --json`` on the same images, and installed into a virtual environment that
has neither torch nor detectron2."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import venv

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
from _serving import PARTS_CONFIG, REPO, SMALL_MODEL_OPTS
from conftest import run_tool_cmd

RUNTIME = os.path.join(REPO, "runtime")
sys.path.insert(0, RUNTIME)  # the package as a user's checkout has it (also pip-installable)

from bodyparts_runtime import ExportFolderError, Runtime  # noqa: E402
from bodyparts_runtime.__main__ import main as runtime_main  # noqa: E402
from bodyparts_runtime.postprocess import resize, resized_shape, rle_encode  # noqa: E402

EXPORT = os.path.join(REPO, "tools", "export_model.py")
DEMO = os.path.join(REPO, "tools", "demo.py")
# 64 x 64: the model's test size (no resize, the same input on both sides); 48 x 80: resized
SIZES = {"square": (64, 64), "wide": (48, 80)}


def _image(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth blobs on noise: an untrained model finds boxes of several sizes on it."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 3)
    for _ in range(3):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        cv2.ellipse(
            image, (x, y), (8, 16), 0, 0, 360, tuple(int(v) for v in rng.integers(0, 256, 3)), -1
        )
    return image


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The images, the ONNX export of the small untrained model and demo.py's JSON on them."""
    root = tmp_path_factory.mktemp("runtime")
    images = root / "images"
    images.mkdir()
    for seed, (name, (h, w)) in enumerate(SIZES.items()):
        assert cv2.imwrite(str(images / f"{name}.png"), _image(h, w, seed))
    env = dict(os.environ, DETECTRON2_DATASETS=str(root / "datasets"), OMP_NUM_THREADS="1")
    export = root / "export"
    cmd = run_tool_cmd(
        EXPORT, "--config-file", PARTS_CONFIG, "--format", "onnx", "--sample-image",
        str(images / "square.png"), "--output", str(export), *SMALL_MODEL_OPTS,
    )  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    demo = root / "demo"
    cmd = run_tool_cmd(
        DEMO, "--config-file", PARTS_CONFIG, "--input", str(images), "--output", str(demo),
        "--confidence-threshold", "0.0", "--json", *SMALL_MODEL_OPTS,
    )  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return {"root": root, "images": images, "export": str(export), "demo": demo}


def _label_map(person, labels, height, width):
    out = np.zeros((height, width), dtype=np.uint8)
    for name, rle in (person["parts"] or {}).items():
        out[mask_util.decode(rle).astype(bool)] = labels[name]
    return out


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of the pixels labelled in either map where the two agree."""
    either = (a > 0) | (b > 0)
    return float((a[either] == b[either]).mean()) if either.any() else 1.0


def _compare(ours, theirs):
    """Largest box and keypoint differences (pixels), smallest part / silhouette agreement."""
    assert len(ours["persons"]) == len(theirs["persons"])
    h, w = ours["height"], ours["width"]
    stats = {"box": 0.0, "keypoint": 0.0, "parts": 1.0, "silhouette": 1.0}
    for p, q in zip(ours["persons"], theirs["persons"]):
        stats["box"] = max(
            stats["box"], float(np.abs(np.subtract(p["box_xyxy"], q["box_xyxy"])).max())
        )
        kp, kq = np.asarray(p["keypoints"]), np.asarray(q["keypoints"])
        stats["keypoint"] = max(stats["keypoint"], float(np.abs(kp[:, :2] - kq[:, :2]).max()))
        maps = [_label_map(x, ours["part_labels"], h, w) for x in (p, q)]
        stats["parts"] = min(stats["parts"], _agreement(*maps))
        masks = [mask_util.decode(x["silhouette"]).astype(np.uint8) for x in (p, q)]
        stats["silhouette"] = min(stats["silhouette"], _agreement(*masks))
    return stats


def test_runtime_equals_the_eager_model_at_the_models_size(scene):
    """The 64 x 64 image is the model's input as it is: boxes within 1e-3 px, part maps and
    silhouettes >= 99.9 % of their pixels, keypoints within 0.5 px of demo.py --json."""
    model = Runtime(scene["export"])
    image = cv2.imread(str(scene["images"] / "square.png"))
    ours = model(image, 0.0, file_name=str(scene["images"] / "square.png"))
    theirs = json.loads((scene["demo"] / "square.json").read_text())
    assert ours["persons"], "the untrained model detects persons on this image"
    for key in ("height", "width", "part_taxonomy", "part_labels", "keypoint_names"):
        assert ours[key] == theirs[key], key
    stats = _compare(ours, theirs)
    print(f"\nruntime vs eager (64 x 64, {len(ours['persons'])} persons): {stats}")
    assert stats["box"] <= 1e-3 and stats["keypoint"] <= 0.5
    assert stats["parts"] >= 0.999 and stats["silhouette"] >= 0.999
    for p, q in zip(ours["persons"], theirs["persons"]):
        assert p["score"] == pytest.approx(q["score"], abs=1e-4)
        assert p["category"] == q["category"]
    drawing = model.draw(image, 0.0)
    assert drawing.shape == image.shape and (drawing != image).any()


def test_runtime_on_a_resized_image(scene):
    """48 x 80 is resized to 64 x 107 first (Pillow's bilinear filter in numpy, as Detectron2's
    ResizeTransform): the same figures as at the model's size."""
    image = cv2.imread(str(scene["images"] / "wide.png"))
    assert resized_shape(48, 80, 64, 128) == (64, 107)
    ours = Runtime(scene["export"])(image, 0.0)
    theirs = json.loads((scene["demo"] / "wide.json").read_text())
    assert (ours["height"], ours["width"]) == (48, 80)
    stats = _compare(ours, theirs)
    print(f"\nruntime vs eager (48 x 80 resized, {len(ours['persons'])} persons): {stats}")
    assert stats["box"] <= 1e-3 and stats["keypoint"] <= 0.5
    assert stats["parts"] >= 0.999 and stats["silhouette"] >= 0.999


def test_resize_is_pillows():
    """The test resize of photos of many sizes (shortest edge 800, longest at most 1333, up and
    down) equals Pillow's BILINEAR resize, which Detectron2's ResizeTransform uses."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for _ in range(12):
        height, width = (int(v) for v in rng.integers(60, 1400, 2))
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        h, w = resized_shape(height, width, 800, 1333)
        expected = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
        np.testing.assert_array_equal(resize(image, 800, 1333), expected)


def test_rle_is_cocos():
    rng = np.random.default_rng(0)
    for _ in range(20):
        height, width = int(rng.integers(1, 12)), int(rng.integers(1, 12))
        mask = np.zeros((height, width), dtype=bool)
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        crop = (
            rng.random(
                (int(rng.integers(0, height - y0 + 1)), int(rng.integers(0, width - x0 + 1)))
            )
            < 0.5
        )
        if rng.random() < 0.2:  # a crop of whole columns: runs cross from one column to the next
            y0, crop = 0, rng.random((height, crop.shape[1])) < 0.8
        mask[y0 : y0 + crop.shape[0], x0 : x0 + crop.shape[1]] = crop
        expected = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
        got = rle_encode(crop, y0, x0, height, width)
        assert got["counts"] == expected["counts"].decode("ascii") and got["size"] == [
            height,
            width,
        ]


def test_runtime_errors(tmp_path, scene):
    with pytest.raises(ExportFolderError, match="no export_info.json"):
        Runtime(str(tmp_path))
    info = json.load(open(os.path.join(scene["export"], "export_info.json")))
    (tmp_path / "export_info.json").write_text(json.dumps(dict(info, format="torchscript")))
    with pytest.raises(ExportFolderError, match="format 'torchscript'; this runtime runs ONNX"):
        Runtime(str(tmp_path))
    (tmp_path / "export_info.json").write_text("{not json")
    with pytest.raises(ExportFolderError, match="export_info.json: not readable as JSON"):
        Runtime(str(tmp_path))
    (tmp_path / "export_info.json").write_text(json.dumps(dict(info, file="gone.onnx")))
    with pytest.raises(ExportFolderError, match="gone.onnx: no such file"):
        Runtime(str(tmp_path))
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    (tmp_path / "export_info.json").write_text(json.dumps(dict(info, file="bad.onnx")))
    with pytest.raises(ExportFolderError, match="bad.onnx: ONNX Runtime cannot load it"):
        Runtime(str(tmp_path))
    model = Runtime(scene["export"])
    with pytest.raises(ExportFolderError, match="uint8 \\(H, W, 3\\) BGR image"):
        model(np.zeros((8, 8), np.uint8))


def _runtime_source(tmp_path) -> str:
    """A copy of runtime/ to install from (a build writes into its source folder)."""
    target = str(tmp_path / "runtime_src")
    shutil.copytree(RUNTIME, target, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    return target


def _tracking_requirements() -> list:
    """The pinned `trackers` / `supervision` (installed --no-deps, requirements/nodeps.txt) and
    the base.txt pins of what they import."""
    wanted = ("trackers", "supervision", "scipy", "matplotlib", "pyyaml", "defusedxml", "pillow")
    wanted += ("tqdm", "requests", "rich", "pydeprecate")
    pins = []
    for name in ("base.txt", "nodeps.txt"):
        with open(os.path.join(REPO, "requirements", name)) as f:
            for line in f:
                line = line.split("#")[0].strip()
                if "==" in line and line.split("==")[0].lower() in wanted:
                    pins.append(line)
    return pins


def _runtime_venv(source: str) -> str:
    """A virtual environment with the runtime's dependencies, the tracker's, and no torch /
    detectron2, cached under ~/.cache/bodyparts (keyed on runtime/pyproject.toml and the tracker
    pins); the package reinstalled each time."""
    tracking = _tracking_requirements()
    with open(os.path.join(RUNTIME, "pyproject.toml"), "rb") as f:
        key = hashlib.sha256(f.read() + "\n".join(tracking).encode()).hexdigest()[:12]
    root = os.path.join(os.path.expanduser("~"), ".cache", "bodyparts", f"runtime-venv-{key}")
    python = os.path.join(root, "bin", "python")
    if not os.path.isfile(os.path.join(root, ".complete")):
        venv.EnvBuilder(with_pip=True, clear=True).create(root)
        pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, source], check=True, timeout=900)  # its dependencies from PyPI
        nodeps = [p for p in tracking if p.split("==")[0] in ("trackers", "supervision")]
        subprocess.run([*pip, *[p for p in tracking if p not in nodeps]], check=True, timeout=900)
        subprocess.run([*pip, "--no-deps", *nodeps], check=True, timeout=300)
        open(os.path.join(root, ".complete"), "w").close()
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
    subprocess.run([*pip, "--force-reinstall", source], check=True, timeout=300)
    return python


@pytest.mark.timeout(1200)
def test_runtime_runs_without_torch_and_detectron2(scene, tmp_path):
    """pip-installed into a fresh virtual environment (numpy, OpenCV, ONNX Runtime only), the
    command line gives the records the runtime gives here."""
    python = _runtime_venv(_runtime_source(tmp_path))
    probe = subprocess.run(
        [python, "-c", "import torch"], capture_output=True, text=True, timeout=120
    )
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr
    probe = subprocess.run(
        [python, "-c", "import detectron2"], capture_output=True, text=True, timeout=120
    )
    assert probe.returncode != 0
    images = [str(scene["images"] / f"{name}.png") for name in SIZES]
    video = _shifting_video(scene, tmp_path / "walk.avi")
    out = tmp_path / "out"
    cmd = [python, "-m", "bodyparts_runtime", scene["export"], *images, video, "--output", str(out)]
    cmd += ["--threshold", "0.0", "--threads", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = Runtime(scene["export"], num_threads=1)
    for path in images:
        stem = os.path.splitext(os.path.basename(path))[0]
        theirs = json.loads((out / f"{stem}.json").read_text())
        ours = model(cv2.imread(path), 0.0, file_name=path)
        stats = _compare(ours, theirs)  # ONNX Runtime versions may round differently
        assert stats["box"] <= 1e-3 and stats["parts"] >= 0.999, stats
        assert (out / f"{stem}_vis.png").is_file()
    # the video, tracked there as here
    here = tmp_path / "here"
    assert runtime_main([scene["export"], video, "--output", str(here), "--threshold", "0.0"]) == 0
    there = [json.loads(line) for line in (out / "walk.jsonl").read_text().splitlines()]
    lines = [json.loads(line) for line in (here / "walk.jsonl").read_text().splitlines()]
    assert [[p["id"] for p in r["persons"]] for r in there] == [
        [p["id"] for p in r["persons"]] for r in lines
    ]
    assert any(p["id"] for r in there for p in r["persons"])


def _shifting_video(scene, path, frames: int = 6) -> str:
    """The square test image moved right by 1 px per frame (MJPG), as a camera panning."""
    image = cv2.imread(str(scene["images"] / "square.png"))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 64))
    for t in range(frames):
        shift = np.float32([[1, 0, t], [0, 1, 0]])
        writer.write(cv2.warpAffine(image, shift, (64, 64), borderMode=cv2.BORDER_REFLECT))
    writer.release()
    return str(path)


def test_runtime_tracks_a_video_as_the_demo_does(scene, tmp_path):
    """bodyparts-runtime and demo.py on the same video: per frame the same persons (boxes within
    1e-3 px) with the same ids; frame 0 has none yet; --no-track writes no ids."""
    video = _shifting_video(scene, tmp_path / "walk.avi")
    out = tmp_path / "runtime"
    assert runtime_main([scene["export"], video, "--output", str(out), "--threshold", "0.0"]) == 0
    assert sorted(os.listdir(out)) == ["walk.jsonl", "walk_vis.mp4"]
    ours = [json.loads(line) for line in (out / "walk.jsonl").read_text().splitlines()]
    env = dict(os.environ, DETECTRON2_DATASETS=str(scene["root"] / "datasets"), OMP_NUM_THREADS="1")
    cmd = run_tool_cmd(
        DEMO, "--config-file", PARTS_CONFIG, "--input", video, "--output", str(tmp_path / "demo"),
        "--confidence-threshold", "0.0", "--json", *SMALL_MODEL_OPTS,
    )  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    theirs = [json.loads(x) for x in (tmp_path / "demo" / "walk.jsonl").read_text().splitlines()]
    assert [r["frame_index"] for r in ours] == [r["frame_index"] for r in theirs] == list(range(6))
    for r, q in zip(ours, theirs):
        assert len(r["persons"]) == len(q["persons"]) > 0
        for p, o in zip(r["persons"], q["persons"]):
            assert np.abs(np.subtract(p["box_xyxy"], o["box_xyxy"])).max() <= 1e-3
        assert [p["id"] for p in r["persons"]] == [p["id"] for p in q["persons"]]
    assert all(p["id"] is None for p in ours[0]["persons"])
    later = [p["id"] for r in ours[1:] for p in r["persons"] if p["id"] is not None]
    assert later and all(isinstance(i, int) and i > 0 for i in later)
    print(f"\nruntime and demo.py: ids per frame {[[p['id'] for p in r['persons']] for r in ours]}")
    plain = tmp_path / "plain"
    assert runtime_main([scene["export"], video, "--output", str(plain), "--no-track"]) == 0
    lines = (plain / "walk.jsonl").read_text().splitlines()
    assert all("id" not in p for line in lines for p in json.loads(line)["persons"])
    assert runtime_main([scene["export"], str(tmp_path / "none.mp4"), "--output", str(plain)]) == 2
