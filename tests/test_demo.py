"""Visualizer layers (exact pixels, score-ordered pasting) and tools/demo.py on tiny images."""

import importlib.util
import json
import os
import subprocess
from argparse import Namespace

import cv2
import numpy as np
import pytest
import torch
from _helpers import FINE_PART_MAP, keypoints, parts_from_map
from _serving import PARTS_CONFIG, SMALL_MODEL_OPTS
from conftest import REPO, run_tool_cmd
from detectron2.structures import Boxes, BoxMode, Instances

from bodyparts.data.contract import decode_rle
from bodyparts.data.synthetic.render import render_scene
from bodyparts.taxonomy import FINE_LR, get_keypoint_taxonomy
from bodyparts.utils import (
    draw_ground_truth,
    draw_predictions,
    image_level_part_map,
    metadata_for,
    part_overlay,
    paste_part_maps,
)

DEMO = os.path.join(REPO, "tools", "demo.py")
# Tiny part head and 64 px inputs; every proposal kept so that an untrained model detects persons
# (the server tests' small model).
DEMO_OPTS = SMALL_MODEL_OPTS


def _load_demo():
    spec = importlib.util.spec_from_file_location("bodyparts_demo_tool", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------
# pure layers


def test_part_overlay_exact_pixels():
    image = np.full((2, 3, 3), 100, dtype=np.uint8)
    image[1, 2] = (10, 20, 30)
    labels = np.array([[0, 1, 2], [255, 2, 1]], dtype=np.uint8)
    palette = np.array([(0, 0, 0), (200, 0, 50), (0, 255, 100)], dtype=np.uint8)
    out = part_overlay(image, labels, palette, alpha=0.5)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 3)
    assert out[0, 0].tolist() == [100, 100, 100]  # background keeps the image
    assert out[1, 0].tolist() == [100, 100, 100]  # ignore (255) keeps the image
    assert out[0, 1].tolist() == [150, 50, 75]
    assert out[0, 2].tolist() == [50, 178, 100]  # (100 + 255) / 2 = 177.5 rounds half up
    assert out[1, 1].tolist() == [50, 178, 100]
    assert out[1, 2].tolist() == [105, 10, 40]
    np.testing.assert_array_equal(part_overlay(image, labels, palette, alpha=0.0), image)
    full = part_overlay(image, labels, palette, alpha=1.0)
    assert full[0, 1].tolist() == [200, 0, 50] and full[1, 0].tolist() == [100, 100, 100]
    assert image[0, 1].tolist() == [100, 100, 100]  # input untouched
    with pytest.raises(ValueError, match=r"labels \[7\]"):
        part_overlay(image, np.full((2, 3), 7, np.uint8), palette)
    with pytest.raises(ValueError, match="does not match"):
        part_overlay(image, labels[:, :2], palette)


def _person_maps():
    """Three overlapping 1 x 4 persons: their part labels, 0 elsewhere."""
    return np.array(
        [
            [[1, 1, 1, 0]],  # score 0.9
            [[2, 2, 0, 2]],  # score 0.3
            [[0, 3, 3, 3]],  # score 0.6
            [[4, 4, 4, 4]],  # score 0.1: below the threshold
        ],
        dtype=np.uint8,
    )


def test_image_level_part_map_pastes_in_ascending_score_order():
    inst = Instances(
        (1, 4),
        scores=torch.tensor([0.9, 0.3, 0.6, 0.1]),
        pred_part_labels=torch.from_numpy(_person_maps()),
    )
    # order 0.3 -> 0.6 -> 0.9: [2,2,0,2] then [.,3,3,3] then [1,1,1,.]; background never erases
    assert image_level_part_map(inst, 0.2).tolist() == [[1, 1, 1, 3]]
    assert image_level_part_map(inst, 0.0).tolist() == [[1, 1, 1, 3]]  # 0.1 is pasted first
    assert image_level_part_map(inst, 0.6).tolist() == [[1, 1, 1, 3]]  # >= threshold is kept
    assert image_level_part_map(inst, 0.7).tolist() == [[1, 1, 1, 0]]
    assert image_level_part_map(inst, 0.95).tolist() == [[0, 0, 0, 0]]
    assert image_level_part_map(inst[[3]], 0.0).tolist() == [[4, 4, 4, 4]]
    no_labels = torch.zeros(0, 2, 3, dtype=torch.uint8)
    empty = Instances((2, 3), scores=torch.zeros(0), pred_part_labels=no_labels)
    assert image_level_part_map(empty, 0.5).shape == (2, 3)
    # ties: the later index overwrites; 255 (ignore) never overwrites
    assert paste_part_maps(np.array([[[1, 255]], [[2, 0]]], np.uint8)).tolist() == [[2, 0]]


def test_image_level_part_map_from_roi_probabilities():
    # pixel-aligned 2 x 2 boxes with one-hot probabilities paste exactly
    labels = torch.tensor([[[1, 2], [0, 2]], [[3, 3], [3, 0]]])
    probs = torch.zeros(2, 4, 2, 2).scatter_(1, labels[:, None], 1.0)
    inst = Instances(
        (3, 4),
        scores=torch.tensor([0.8, 0.5]),
        pred_part_masks=probs,
        pred_boxes=Boxes(torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])),
    )
    assert image_level_part_map(inst, 0.0).tolist() == [[1, 2, 0, 0], [0, 2, 3, 0], [0, 3, 0, 0]]


def test_draw_predictions_and_ground_truth_shapes(tmp_path):
    h, w = FINE_PART_MAP.shape
    image = np.full((h * 8, w * 8, 3), 90, dtype=np.uint8)
    big_map = np.kron(FINE_PART_MAP, np.ones((8, 8), np.uint8))
    inst = Instances(
        image.shape[:2],
        scores=torch.tensor([0.9, 0.2]),
        pred_classes=torch.tensor([0, 0]),
        pred_boxes=Boxes(torch.tensor([[0.0, 0.0, 32.0, 32.0], [8.0, 8.0, 40.0, 30.0]])),
        pred_masks=torch.from_numpy(np.stack([big_map > 0, big_map > 0])),
        pred_keypoints=torch.rand(2, 17, 3) * 30,
        pred_part_labels=torch.from_numpy(np.stack([big_map, big_map])),
    )
    meta = metadata_for("fine_lr")
    vis = draw_predictions(image, inst, meta, score_threshold=0.5)
    assert vis.shape == image.shape and vis.dtype == np.uint8
    coco17 = get_keypoint_taxonomy("coco17")
    with_legend = draw_predictions(image, inst, FINE_LR, 0.5, keypoint_taxonomy=coco17, legend=True)
    assert with_legend.shape[0] == image.shape[0] and with_legend.shape[1] > image.shape[1]
    no_one = draw_predictions(image, inst, meta, score_threshold=0.95)
    np.testing.assert_array_equal(no_one, image)  # nothing above the threshold: the image unchanged

    cv2.imwrite(str(tmp_path / "img.png"), image)
    record = {
        "file_name": str(tmp_path / "img.png"),
        "height": h * 8,
        "width": w * 8,
        "image_id": 0,
        "part_taxonomy": "fine_lr",
        "annotations": [
            {
                "bbox": [0, 0, 32, 32],
                "bbox_mode": BoxMode.XYWH_ABS,
                "category_id": 0,
                "iscrowd": 0,
                "segmentation": parts_from_map((big_map > 0).astype(np.uint8))[1],
                "keypoints": keypoints({"nose": (20.0, 4.0, 2), "left_eye": (22.0, 3.0, 1)}),
                "parts": parts_from_map(big_map),
            },
            {"bbox": [30, 2, 10, 20], "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0},  # no parts
        ],
    }
    gt = draw_ground_truth(record, meta)
    assert gt.shape == image.shape and gt.dtype == np.uint8
    # without metadata: the record's taxonomy
    assert draw_ground_truth(record, legend=True).shape[1] > image.shape[1]
    with pytest.raises(ValueError, match="part taxonomy"):
        draw_ground_truth(record, metadata_for("lr6"))


# ---------------------------------------------------------------------------------------------
# tools/demo.py


def test_demo_input_checks_are_clear_errors(tmp_path):
    demo = _load_demo()
    images = tmp_path / "images"
    images.mkdir()
    (images / "notes.txt").write_text("not an image")
    with pytest.raises(demo.DemoError, match="holds no images"):
        demo.collect_inputs([str(images)])
    with pytest.raises(demo.DemoError, match="does not exist"):
        demo.collect_inputs([str(tmp_path / "missing")])
    with pytest.raises(demo.DemoError, match="no files match"):
        demo.collect_inputs([str(images / "*.jpg")])
    (images / "a.jpg").write_bytes(b"x")
    files, folders = demo.collect_inputs([str(images), str(images / "*.jpg")])
    assert files == [str(images / "a.jpg")] and folders == [str(images)]
    with pytest.raises(demo.DemoError, match="input folder"):
        demo.check_output_dir(str(images) + "/", files, folders)
    with pytest.raises(demo.DemoError, match="input folder"):  # the folder of an input file
        demo.check_output_dir(str(images), files, [])
    demo.check_output_dir(str(images / "vis"), files, folders)
    names = demo.output_names(["a/x.jpg", "b/x.png", "c/x_parts.jpg", "y.bmp"])
    assert names == ["x", "x_1", "x_parts_1", "y"]  # no output overwrites another
    args = Namespace(input=["a.jpg", "MODEL.WEIGHTS", "w.pth"], opts=["MODEL.DEVICE", "cpu"])
    demo.split_trailing_opts(args)
    assert args.input == ["a.jpg"]
    assert args.opts == ["MODEL.WEIGHTS", "w.pth", "MODEL.DEVICE", "cpu"]
    with pytest.raises(demo.DemoError, match="MODEL.WEIGHTS file .*missing.pth does not exist"):
        missing = ["MODEL.WEIGHTS", str(tmp_path / "missing.pth")]
        demo.setup(Namespace(config_file=PARTS_CONFIG, opts=missing))


def _write_inputs(folder):
    """Two 64 x 64 synthetic scenes and a corrupt bad.jpg."""
    folder.mkdir()
    for name, seed in (("scene_a.jpg", 3), ("scene_b.png", 11)):
        scene = render_scene(seed, 64, 64, min_persons=1, max_persons=2)
        assert cv2.imwrite(str(folder / name), scene.image[:, :, ::-1])
    (folder / "bad.jpg").write_bytes(np.random.default_rng(0).bytes(512))


def test_demo_end_to_end_on_folder_with_corrupt_file(tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    _write_inputs(inputs)
    cmd = run_tool_cmd(
        DEMO,
        "--config-file",
        PARTS_CONFIG,
        "--input",
        str(inputs),
        "--output",
        str(out),
        "--confidence-threshold",
        "0.0",
        "--json",
        *DEMO_OPTS,
    )
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path / "datasets"), OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 1, log[-3000:]
    assert "Traceback" not in log
    assert "UNTRAINED" in log  # MODEL.WEIGHTS "" runs with a warning
    assert f"SKIPPED {inputs / 'bad.jpg'}" in log
    assert "1 image(s) failed" in log and "2 of 3 inputs written" in log
    assert sorted(os.listdir(out)) == sorted(
        f"scene_{s}{suffix}" for s in "ab" for suffix in (".png", ".json", "_parts.png")
    )

    part_names = list(FINE_LR.part_names)
    for stem in ("scene_a", "scene_b"):
        vis = cv2.imread(str(out / f"{stem}.png"))
        assert vis.shape[0] == 64 and vis.shape[1] >= 64  # the image, plus the legend on the right
        parts = cv2.imread(str(out / f"{stem}_parts.png"), cv2.IMREAD_UNCHANGED)
        assert parts.shape == (64, 64) and parts.dtype == np.uint8
        assert parts.max() < FINE_LR.num_classes

        result = json.loads((out / f"{stem}.json").read_text())
        assert (result["height"], result["width"]) == (64, 64)
        assert result["part_taxonomy"] == "fine_lr"
        assert result["part_labels"] == {name: k + 1 for k, name in enumerate(part_names)}
        assert len(result["keypoint_names"]) == 17
        persons = result["persons"]
        assert persons, "SCORE_THRESH_TEST 0 and --confidence-threshold 0 keep detections"
        maps = []
        for person in persons:
            assert set(person) == {
                "box_xyxy",
                "score",
                "category",
                "keypoints",
                "silhouette",
                "parts",
            }
            assert len(person["box_xyxy"]) == 4 and 0.0 <= person["score"] <= 1.0
            assert [len(kp) for kp in person["keypoints"]] == [3] * 17
            assert person["silhouette"]["size"] == [64, 64]
            assert set(person["parts"]) <= set(part_names)
            label_map = np.zeros((64, 64), np.uint8)
            for name, rle in person["parts"].items():
                assert rle["size"] == [64, 64]
                label_map[decode_rle(rle).astype(bool)] = result["part_labels"][name]
            maps.append(label_map)
        # the part map PNG is the JSON's persons pasted in ascending score order
        order = np.argsort([p["score"] for p in persons], kind="stable")
        np.testing.assert_array_equal(parts, paste_part_maps(np.stack(maps), order))


def test_demo_on_video_with_stride(tmp_path, monkeypatch):
    """A 5-frame video with --video-stride 2: frames 0, 2, 4 predicted; the rendered video, the
    JSON lines and the part maps hold exactly those frames; a corrupt video is reported by name."""
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    writer = cv2.VideoWriter(
        str(inputs / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48)
    )
    for seed in range(5):
        scene = render_scene(seed, 48, 64, min_persons=1, max_persons=1)
        writer.write(np.ascontiguousarray(scene.image[:, :, ::-1]))
    writer.release()
    (inputs / "broken.mp4").write_bytes(b"\x00" * 300)
    demo = _load_demo()
    args = demo.get_parser().parse_args(
        [
            "--config-file",
            PARTS_CONFIG,
            "--input",
            str(inputs),
            "--output",
            str(out),
            "--confidence-threshold",
            "0.0",
            "--json",
            "--video-stride",
            "2",
            *DEMO_OPTS,
        ]
    )
    assert demo.main(args) == 1  # broken.mp4 failed, clip.avi written
    assert sorted(os.listdir(out)) == ["clip.jsonl", "clip.mp4", "clip_parts"]
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3)  # no legend in videos
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)  # 10 fps / stride 2
    lines = [json.loads(line) for line in (out / "clip.jsonl").read_text().splitlines()]
    assert [r["frame_index"] for r in lines] == [0, 2, 4]
    assert all((r["height"], r["width"]) == (48, 64) and r["persons"] for r in lines)
    assert sorted(os.listdir(out / "clip_parts")) == [f"frame_{i:06d}.png" for i in (0, 2, 4)]
    with pytest.raises(demo.DemoError, match="--video-stride must be >= 1"):
        demo.main(
            demo.get_parser().parse_args(
                [
                    "--config-file",
                    PARTS_CONFIG,
                    "--input",
                    str(inputs / "clip.avi"),
                    "--output",
                    str(tmp_path / "o2"),
                    "--video-stride",
                    "0",
                    *DEMO_OPTS,
                ]
            )
        )


def _run_demo_in_process(tmp_path, config, opts):
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    scene = render_scene(5, 64, 64, min_persons=1, max_persons=2)
    assert cv2.imwrite(str(inputs / "scene.jpg"), scene.image[:, :, ::-1])
    demo = _load_demo()
    args = demo.get_parser().parse_intermixed_args(
        [
            "--config-file",
            config,
            "--input",
            str(inputs),
            "--output",
            str(out),
            "--json",
            "--confidence-threshold",
            "0.0",
            *opts,
        ]
    )
    assert demo.main(args) == 0
    return out, json.loads((out / "scene.json").read_text())


def test_demo_semantic_segmenter_outputs(tmp_path, monkeypatch):
    """The image-level segmenter: rendered map, part map PNG and pixel counts that agree."""
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    config = os.path.join(REPO, "configs", "quick_schedules", "semantic_fpn_R18_synthetic_cpu.yaml")
    out, result = _run_demo_in_process(
        tmp_path,
        config,
        ["MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "128"],
    )
    assert sorted(os.listdir(out)) == ["scene.json", "scene.png", "scene_parts.png"]
    parts = cv2.imread(str(out / "scene_parts.png"), cv2.IMREAD_UNCHANGED)
    assert parts.shape == (64, 64) and parts.max() < FINE_LR.num_classes
    counts = np.bincount(parts.reshape(-1), minlength=FINE_LR.num_classes)
    expected = {
        name: int(counts[k + 1]) for k, name in enumerate(FINE_LR.part_names) if counts[k + 1]
    }
    assert result["part_pixels"] == expected and (result["height"], result["width"]) == (64, 64)
    assert cv2.imread(str(out / "scene.png")).shape[0] == 64


def test_demo_part_panoptic_outputs(tmp_path, monkeypatch):
    """The part-aware panoptic model: the segment-id PNG holds exactly the JSON's segments, and the
    3-channel PNG gives each segment's scene id (255 on unassigned pixels)."""
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    config = os.path.join(
        REPO, "configs", "quick_schedules", "panoptic_bodyparts_R18_FPN_synthetic_cpu.yaml"
    )
    opts = DEMO_OPTS + [
        "MODEL.PANOPTIC_FPN.COMBINE.STUFF_AREA_LIMIT",
        "16",
        "MODEL.PANOPTIC_FPN.COMBINE.INSTANCES_CONFIDENCE_THRESH",
        "0.0",
    ]
    out, result = _run_demo_in_process(tmp_path, config, opts)
    assert sorted(os.listdir(out)) == sorted(
        ["scene.json"] + [f"scene{s}.png" for s in ("", "_parts", "_panoptic", "_part_panoptic")]
    )
    rgb = cv2.imread(str(out / "scene_panoptic.png"))[:, :, ::-1].astype(np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    segments = {s["id"]: s for s in result["segments_info"]}
    assert segments and set(np.unique(ids)) - {0} == set(segments)
    pp = cv2.imread(str(out / "scene_part_panoptic.png"))[:, :, ::-1]
    assert pp.shape == (64, 64, 3)
    thing_ids, stuff_ids = [1], [-1, 2, 3, 4]  # the synthetic metadata
    for sid, seg in segments.items():
        scene_id = (thing_ids if seg["isthing"] else stuff_ids)[seg["category_id"]]
        assert np.all(pp[ids == sid, 0] == scene_id)
        if not seg["isthing"]:
            assert np.all(pp[ids == sid, 1:] == [0, 255])  # stuff: no instance, no part
    assert np.all(pp[ids == 0] == 255)


# ---------------------------------------------------------------------------------------------
# tools/demo.py --webcam (a stand-in capture: no camera needed)


class FakeCapture:
    """A camera stand-in: ``frames`` (BGR) at 10 fps, then a failed read; ``interrupt_at``: Ctrl-C
    during that read."""

    def __init__(self, frames, interrupt_at=None, opened=True):
        self.frames, self.interrupt_at, self.opened = list(frames), interrupt_at, opened
        self.reads, self.released = 0, False

    def isOpened(self):
        return self.opened

    def read(self):
        index = self.reads
        self.reads += 1
        if index == self.interrupt_at:
            raise KeyboardInterrupt
        return (True, self.frames[index]) if index < len(self.frames) else (False, None)

    def get(self, prop):
        return 10.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self):
        self.released = True


def _camera_frames(n):
    return [np.ascontiguousarray(render_scene(s, 48, 64, 1, 2).image[:, :, ::-1]) for s in range(n)]


def _read_video(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    return frames, capture.get(cv2.CAP_PROP_FPS)


def _webcam_args(demo, *extra):
    return demo.get_parser().parse_intermixed_args(
        [
            "--config-file",
            PARTS_CONFIG,
            "--webcam",
            "--confidence-threshold",
            "0.0",
            *extra,
            *DEMO_OPTS,
        ]
    )


def test_demo_webcam_writes_the_frames_of_the_capture(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    demo = _load_demo()
    opened = []
    capture = FakeCapture(_camera_frames(3))
    args = _webcam_args(demo, "--camera-index", "3", "--output", str(tmp_path / "out"), "--json")
    assert demo.main(args, video_capture=lambda index: opened.append(index) or capture) == 0
    assert opened == [3] and capture.released
    out = tmp_path / "out"
    assert sorted(os.listdir(out)) == ["webcam.jsonl", "webcam.mp4", "webcam_parts"]  # no .tmp left
    frames, fps = _read_video(out / "webcam.mp4")
    assert len(frames) == 3 and frames[0].shape == (48, 64, 3) and fps == pytest.approx(10.0)
    lines = [json.loads(line) for line in (out / "webcam.jsonl").read_text().splitlines()]
    assert [r["frame_index"] for r in lines] == [0, 1, 2]
    assert all(
        r["file_name"] is None and r["persons"] and (r["height"], r["width"]) == (48, 64)
        for r in lines
    )
    assert sorted(os.listdir(out / "webcam_parts")) == [f"frame_{i:06d}.png" for i in range(3)]

    # --max-frames stops early; Ctrl-C keeps the frames written before it
    capture = FakeCapture(_camera_frames(4))
    args = _webcam_args(demo, "--output", str(tmp_path / "max"), "--max-frames", "2")
    assert demo.main(args, video_capture=lambda index: capture) == 0
    assert len(_read_video(tmp_path / "max" / "webcam.mp4")[0]) == 2 and capture.reads == 2
    capture = FakeCapture(_camera_frames(4), interrupt_at=2)
    args = _webcam_args(demo, "--output", str(tmp_path / "ctrl_c"))
    assert demo.main(args, video_capture=lambda index: capture) == 0
    assert len(_read_video(tmp_path / "ctrl_c" / "webcam.mp4")[0]) == 2 and capture.released
    assert os.listdir(tmp_path / "ctrl_c") == ["webcam.mp4"]


def test_demo_webcam_without_camera_or_window_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path / "datasets"))
    demo = _load_demo()
    closed = FakeCapture([], opened=False)
    args = _webcam_args(demo, "--camera-index", "5", "--output", str(tmp_path / "out"))
    with pytest.raises(demo.DemoError, match="camera 5 cannot be opened"):
        demo.main(args, video_capture=lambda index: closed)
    assert closed.released and not (tmp_path / "out").exists()
    # OpenCV's own capture on a camera number this machine does not have
    index = next(i for i in range(10, 100) if not os.path.exists(f"/dev/video{i}"))
    with pytest.raises(demo.DemoError, match=f"camera {index} cannot be opened"):
        demo.open_camera(index)
    with pytest.raises(demo.DemoError, match="either --input PATH ... or --webcam"):
        demo.main(
            demo.get_parser().parse_args(
                ["--config-file", PARTS_CONFIG, "--webcam", "--input", "a.jpg"]
            )
        )
    # an OpenCV without window support (opencv-python-headless, as pinned) and no --output

    def no_window(*args):
        raise cv2.error("The function is not implemented")

    monkeypatch.setattr(demo.cv2, "namedWindow", no_window)
    capture = FakeCapture(_camera_frames(1))
    with pytest.raises(demo.DemoError, match="no window support .* pass --output DIR"):
        demo.main(_webcam_args(demo), video_capture=lambda index: capture)
    assert capture.released
