"""The Detectron2 compatibility layer: _C stand-in, op replacements, Pillow alias, API helpers."""

import types

import detectron2
import PIL
import pytest
import torch
import torchvision
from detectron2.layers import ROIAlign, batched_nms, nms_rotated
from detectron2.structures import Boxes, pairwise_iou
from detectron2.utils import comm
from PIL import Image

import bodyparts
from bodyparts.compat import (
    PREPARED,
    MissingCompiledOpError,
    coco_evaluator_kwargs,
    create_local_process_group,
    ddp_without_device_ids_on_cpu,
    has_compiled_ops,
    runtime,
)

# ---------------------------------------------------------- (1) detectron2._C: stand-in or compiled
#
# The suite runs on both Detectron2 builds (README, CI): the v0.6 pure-Python build, where bodyparts
# installs its stand-in for detectron2._C, and upstream main built with its compiled ops, where the
# real extension is used untouched. Each test below asserts the behaviour of the build it runs on.

COMPILED = has_compiled_ops()
BUILD = (
    "compiled detectron2._C"
    if COMPILED
    else "pure-Python build (bodyparts stand-in for detectron2._C)"
)


def test_build_is_detected_from_the_extension_itself():
    """has_compiled_ops() is True exactly when detectron2._C is a real extension module."""
    c_file = getattr(detectron2._C, "__file__", "") or ""
    assert COMPILED == c_file.endswith((".so", ".pyd")), (BUILD, c_file)
    assert PREPARED["c_standin"] is (not COMPILED)
    assert getattr(detectron2._C, "BODYPARTS_STANDIN", False) is (not COMPILED)
    assert bodyparts.compat.prepare_detectron2() is PREPARED  # idempotent


ROTATED_A = torch.tensor(
    [[5.0, 5.0, 4.0, 2.0, 0.0], [5.0, 5.0, 4.0, 2.0, 90.0], [20.0, 20.0, 2.0, 2.0, 0.0]]
)


@pytest.mark.parametrize(
    "name, args",
    [
        ("box_iou_rotated", (torch.zeros(1, 5), torch.zeros(1, 5))),
        ("deform_conv_forward", ()),
        ("COCOevalAccumulate", ({}, {})),
        ("roi_align_rotated_forward", ()),
        ("InstanceAnnotation", ()),
    ],
)
def test_c_ops_missing_or_compiled(name, args):
    """Pure build: each missing op raises an error naming the op, the build and an alternative.
    Compiled build: the extension provides the op, as a member of detectron2._C or (rotated-box ops
    in upstream main) as a registered operator torch.ops.detectron2.<name>."""
    if COMPILED:
        op = getattr(detectron2._C, name, None)
        if op is None:
            op = getattr(torch.ops.detectron2, name)
        assert callable(op) and getattr(op, "__module__", "") != "bodyparts.compat.c_ops", (
            name,
            op,
        )
        return
    op = getattr(detectron2._C, name)
    with pytest.raises(MissingCompiledOpError) as e:
        op(*args)
    msg = str(e.value)
    assert f"detectron2._C.{name} is not available" in msg and "compiled" in msg
    assert "Alternative:" in msg
    assert issubclass(MissingCompiledOpError, RuntimeError)


def test_rotated_iou_and_nms():
    """Pure build: both rotated ops raise the named error. Compiled build: hand-computed values.

    Boxes (cx, cy, w, h, angle in degrees): a 4x2 box, the same box turned 90 degrees (overlap
    2x2 = 4, union 8 + 8 - 4 = 12), and a far-away 2x2 box."""
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    scores = torch.tensor([0.9, 0.8, 0.7])
    if not COMPILED:
        with pytest.raises(MissingCompiledOpError, match="nms_rotated.*compiled"):
            nms_rotated(ROTATED_A, scores, 0.5)
        with pytest.raises(Exception, match="nms_rotated"):
            torch.ops.detectron2.nms_rotated(ROTATED_A, scores, 0.5)
        with pytest.raises(MissingCompiledOpError, match="box_iou_rotated"):
            pairwise_iou_rotated(ROTATED_A, ROTATED_A)
        return
    iou = pairwise_iou_rotated(ROTATED_A, ROTATED_A)
    expected = torch.tensor([[1.0, 4 / 12, 0.0], [4 / 12, 1.0, 0.0], [0.0, 0.0, 1.0]])
    torch.testing.assert_close(iou, expected, atol=1e-5, rtol=0)
    # IoU 1/3 <= 0.5: all kept; <= 0.3: the turned box is suppressed by the first one
    assert nms_rotated(ROTATED_A, scores, 0.5).tolist() == [0, 1, 2]
    assert nms_rotated(ROTATED_A, scores, 0.3).tolist() == [0, 2]


def test_deform_conv_on_cpu_equals_torchvision():
    """Detectron2's DeformConv on CPU equals torchvision's deform_conv2d on both builds (v0.6 calls
    torchvision on CPU itself; main calls its compiled CPU kernel), and zero offsets give a plain
    convolution. The compiled entry point itself: see test_c_ops_missing_or_compiled."""
    from detectron2.layers import DeformConv

    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 2, 6, 7, generator=g)
    conv = DeformConv(2, 3, kernel_size=3, padding=1, bias=False)
    offset = torch.rand(1, 18, 6, 7, generator=g) - 0.5
    ours = conv(x, offset)
    ref = torchvision.ops.deform_conv2d(x, offset, conv.weight, padding=(1, 1))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    plain = torch.nn.functional.conv2d(x, conv.weight, padding=1)
    torch.testing.assert_close(conv(x, torch.zeros_like(offset)), plain, atol=1e-5, rtol=1e-5)


def test_collect_env_info_works():
    from detectron2.utils.collect_env import collect_env_info

    info = collect_env_info()
    assert isinstance(info, str) and "detectron2" in info and "PyTorch" in info
    if not COMPILED:
        assert "bodyparts stand-in" in info  # the stand-in's compiler answer


# ------------------------------------------------------------ compiled-op replacements


def test_roi_align_aligned_hand_computed():
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)  # x[0, 0, i, j] = 4 i + j
    # box exactly over pixels (1..2, 1..2): with aligned=True, 2x2 bins sample the pixel centres
    rois = torch.tensor([[0.0, 1.0, 1.0, 3.0, 3.0]])
    out = ROIAlign((2, 2), 1.0, 1, aligned=True)(x, rois)
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0].tolist() == [[5.0, 6.0], [9.0, 10.0]]
    # one bin: a single bilinear sample in the middle of four pixels = their mean
    one_bin = ROIAlign((1, 1), 1.0, 1, aligned=True)(x, rois)
    assert one_bin.item() == pytest.approx((5 + 6 + 9 + 10) / 4)


def test_roi_align_bilinear_off_grid():
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 1] = 8.0
    # box (1.25, 1.25)-(2.25, 2.25), one sample at (1.75, 1.75) -> pixel coords (1.25, 1.25):
    # weight of pixel (1, 1) = 0.75 * 0.75
    rois = torch.tensor([[0.0, 1.25, 1.25, 2.25, 2.25]])
    out = ROIAlign((1, 1), 1.0, 1, aligned=True)(x, rois)
    assert out.item() == pytest.approx(8.0 * 0.75 * 0.75)
    # aligned=False would not subtract the half pixel: sample at (1.75, 1.75) -> weight 0.25 * 0.25
    legacy = ROIAlign((1, 1), 1.0, 1, aligned=False)(x, rois)
    assert legacy.item() == pytest.approx(8.0 * 0.25 * 0.25)


def test_roi_align_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 12, 10, generator=g)
    xy0 = torch.rand(6, 2, generator=g) * 12
    wh = torch.rand(6, 2, generator=g) * 8 + 0.5
    rois = torch.cat([torch.tensor([0, 1, 0, 1, 1, 0.0]).view(6, 1), xy0, xy0 + wh], dim=1)
    for aligned in (True, False):
        ours = ROIAlign((3, 4), 0.5, 2, aligned=aligned)(x, rois)
        ref = torchvision.ops.roi_align(x, rois, (3, 4), 0.5, 2, aligned)
        assert ours.shape == (6, 3, 3, 4)
        torch.testing.assert_close(ours, ref)


def test_batched_nms_matches_torchvision():
    g = torch.Generator().manual_seed(1)
    xy0 = torch.rand(50, 2, generator=g) * 40
    boxes = torch.cat([xy0, xy0 + torch.rand(50, 2, generator=g) * 20 + 1], dim=1)
    scores = torch.rand(50, generator=g)
    idxs = torch.randint(0, 3, (50,), generator=g)
    keep = batched_nms(boxes, scores, idxs, 0.5)
    assert torch.equal(keep, torchvision.ops.batched_nms(boxes, scores, idxs, 0.5))
    assert 0 < len(keep) < 50


def test_batched_nms_hand_example():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    # box 1 overlaps box 0 with IoU 90/110 > 0.5 in the same class; box 2 is the same box in class 1
    keep = batched_nms(boxes, scores, torch.tensor([0, 0, 1, 0]), 0.5)
    assert keep.tolist() == [0, 2, 3]


def test_pairwise_iou_hand_computed():
    a = Boxes(torch.tensor([[0.0, 0, 2, 2], [0, 0, 10, 10]]))
    b = Boxes(torch.tensor([[1.0, 1, 3, 3], [5, 0, 15, 10], [20, 20, 21, 21]]))
    iou = pairwise_iou(a, b)
    # [0,0,2,2] vs [1,1,3,3]: 1 / (4 + 4 - 1); [1,1,3,3] inside [0,0,10,10]: 4 / 100;
    # [0,0,10,10] vs [5,0,15,10]: 50 / (100 + 100 - 50); disjoint boxes: 0
    expected = torch.tensor([[1 / 7, 0.0, 0.0], [4 / 100, 1 / 3, 0.0]])
    torch.testing.assert_close(iou, expected)


# ------------------------------------------------------------ (2) Pillow


def test_pillow_linear_alias():
    """The alias is set exactly when Pillow lacks Image.LINEAR and Detectron2's transform.py uses it
    (v0.6); upstream main uses Image.BILINEAR and gets no alias."""
    pillow_major = int(PIL.__version__.split(".")[0])
    uses_linear = runtime._transform_uses_image_linear()
    assert PREPARED["pillow_linear_alias"] is (pillow_major >= 10 and uses_linear)
    if PREPARED["pillow_linear_alias"]:
        assert Image.LINEAR == Image.BILINEAR
    elif pillow_major >= 10:
        assert not hasattr(Image, "LINEAR")  # nothing was added to Pillow
    import inspect

    from detectron2.data.transforms import ExtentTransform

    default = inspect.signature(ExtentTransform.__init__).parameters["interp"].default
    assert default == Image.BILINEAR  # LINEAR (aliased) in v0.6, BILINEAR in main: the same filter


def test_detectron2_resize_with_default_interp():
    import numpy as np
    from detectron2.data import transforms as T

    img = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    out = T.ResizeTransform(4, 6, 8, 12).apply_image(img)
    assert out.shape == (8, 12, 3) and out.dtype == np.uint8


# ------------------------------------------------------------ (3) local process group


def test_local_group_upstream_api(monkeypatch):
    calls = []
    monkeypatch.setattr(comm, "create_local_process_group", calls.append, raising=False)
    monkeypatch.setattr(torch.distributed, "new_group", lambda *a, **k: pytest.fail("new_group"))
    create_local_process_group(8)
    assert calls == [8]


def test_local_group_v06_path(monkeypatch):
    monkeypatch.delattr(comm, "create_local_process_group", raising=False)
    groups = []

    def new_group(ranks):
        groups.append(list(ranks))
        return f"group{len(groups) - 1}"

    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: 4)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, **k: 3)
    monkeypatch.setattr(torch.distributed, "new_group", new_group)
    monkeypatch.setattr(comm, "_LOCAL_PROCESS_GROUP", None)
    create_local_process_group(2)
    assert groups == [[0, 1], [2, 3]]  # every process creates every machine's group
    assert comm._LOCAL_PROCESS_GROUP == "group1"  # rank 3 is on machine 1


def test_local_group_v06_rank_on_first_machine(monkeypatch):
    monkeypatch.delattr(comm, "create_local_process_group", raising=False)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda *a, **k: 6)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda *a, **k: 2)
    monkeypatch.setattr(torch.distributed, "new_group", lambda ranks: tuple(ranks))
    monkeypatch.setattr(comm, "_LOCAL_PROCESS_GROUP", None)
    create_local_process_group(3)
    assert comm._LOCAL_PROCESS_GROUP == (0, 1, 2)


# ------------------------------------------------------------ (4) DDP on CPU


@pytest.fixture
def ddp_recorder(monkeypatch):
    from detectron2.engine import defaults

    calls = []

    def fake_ddp(model, **kwargs):
        calls.append((model, kwargs))
        return types.SimpleNamespace(module=model)

    monkeypatch.setattr(defaults, "DistributedDataParallel", fake_ddp)
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    monkeypatch.setattr(comm, "get_local_rank", lambda: 1)
    return defaults, calls


def test_ddp_without_device_ids_on_cpu(ddp_recorder):
    defaults, calls = ddp_recorder
    original = defaults.create_ddp_model
    model = torch.nn.Linear(2, 2)
    with ddp_without_device_ids_on_cpu("cpu"):
        assert defaults.create_ddp_model is not original
        wrapped = defaults.create_ddp_model(model, broadcast_buffers=False)
    assert wrapped.module is model
    assert calls == [(model, {"broadcast_buffers": False, "device_ids": None})]
    assert defaults.create_ddp_model is original

    defaults.create_ddp_model(model, broadcast_buffers=False)  # Detectron2's own behaviour again
    assert calls[1][1] == {"broadcast_buffers": False, "device_ids": [1]}


def test_ddp_context_restores_after_error(ddp_recorder):
    defaults, _ = ddp_recorder
    original = defaults.create_ddp_model
    with pytest.raises(KeyError):
        with ddp_without_device_ids_on_cpu("cpu"):
            raise KeyError("boom")
    assert defaults.create_ddp_model is original


def test_ddp_context_leaves_cuda_alone(ddp_recorder):
    defaults, calls = ddp_recorder
    original = defaults.create_ddp_model
    with ddp_without_device_ids_on_cpu("cuda"):
        assert defaults.create_ddp_model is original
        defaults.create_ddp_model(torch.nn.Linear(1, 1))
    assert calls[0][1] == {"device_ids": [1]}


def test_ddp_single_process_returns_model(ddp_recorder, monkeypatch):
    defaults, calls = ddp_recorder
    monkeypatch.setattr(comm, "get_world_size", lambda: 1)
    model = torch.nn.Linear(1, 1)
    with ddp_without_device_ids_on_cpu("cpu"):
        assert defaults.create_ddp_model(model) is model
    assert calls == []


# ------------------------------------------------------------ (5) COCO evaluator


def test_coco_evaluator_kwargs():
    """The C++ COCOeval only with a compiled _C; pycocotools otherwise."""
    assert coco_evaluator_kwargs() == {"use_fast_impl": COMPILED}


def test_coco_evaluator_fast_impl_matches_pycocotools(tmp_path):
    """On the build it runs on, COCOEvaluator with bodyparts' options gives the AP computed by hand:
    one image, two ground-truth boxes, one exact detection (score 0.9) and one at IoU 0.5
    (score 0.8): AP50 = 100 (both match at IoU >= 0.5) and AP75 = 100 * 51 / 101 (only the first
    matches: precision 1 at the 51 of COCO's 101 recall points 0, 0.01, ..., 0.5, none above). With
    a compiled _C, the C++ implementation also equals pycocotools exactly."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.evaluation import COCOEvaluator
    from detectron2.structures import Instances

    name = "test_compat_coco_fast_impl"
    gt = [[0.0, 0.0, 20.0, 20.0], [40.0, 40.0, 60.0, 60.0]]
    record = {
        "file_name": "x.jpg",
        "image_id": 1,
        "height": 80,
        "width": 80,
        "annotations": [{"bbox": b, "bbox_mode": 0, "category_id": 0, "iscrowd": 0} for b in gt],
    }
    DatasetCatalog.register(name, lambda: [record])
    MetadataCatalog.get(name).set(thing_classes=["person"])
    try:
        # second detection: 20 x 10 box inside the 20 x 20 ground truth -> IoU 200 / 400 = 0.5
        pred = Instances((80, 80))
        pred.pred_boxes = Boxes(torch.tensor([[0.0, 0.0, 20.0, 20.0], [40.0, 40.0, 60.0, 50.0]]))
        pred.scores = torch.tensor([0.9, 0.8])
        pred.pred_classes = torch.tensor([0, 0])
        results = {}
        for fast in sorted({False, COMPILED}):
            ev = COCOEvaluator(
                name,
                tasks=("bbox",),
                distributed=False,
                output_dir=str(tmp_path / str(fast)),
                use_fast_impl=fast,
            )
            ev.reset()
            ev.process([{"image_id": 1, "height": 80, "width": 80}], [{"instances": pred}])
            results[fast] = ev.evaluate()["bbox"]
        for res in results.values():
            assert res["AP50"] == pytest.approx(100.0)
            assert res["AP75"] == pytest.approx(100.0 * 51 / 101, abs=1e-6)
        if COMPILED:
            assert results[True] == pytest.approx(results[False], abs=1e-9, nan_ok=True)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
