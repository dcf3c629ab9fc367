"""BodyPartBranch built from explicit arguments or a tiny config: the part-trunk keypoint loss (per
image, with Detectron2's keypoint-head semantics), the part-head contract, the foreground selection,
and the restriction to the detector classes that have parts (training slots, inference memory)."""

import math

import pytest
import torch
import torch.nn.functional as F
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.poolers import ROIPooler
from detectron2.modeling.roi_heads.keypoint_head import keypoint_rcnn_loss
from detectron2.structures import Boxes, Instances, Keypoints
from detectron2.utils.events import EventStorage
from torch import nn

from bodyparts import add_bodyparts_config
from bodyparts.modeling import (
    ROI_BODYPART_HEAD_REGISTRY,
    BodyPartBranch,
    BodyPartHeadsMixin,
    PartPredictions,
    PartRCNNConvDeconvHead,
    as_part_predictions,
    part_label_maps_in_image,
    paste_part_masks,
)
from bodyparts.structures import PartMaps

C = 5  # part labels of the explicit branches
K = 2  # keypoints
P = 4  # pooler resolution; part / keypoint output side M = 2 P (up_scale 1)
M = 2 * P
SIDE = 32  # image side in pixels; features at stride 4


class RecordingPooler(nn.Module):
    """Detectron2's ROIPooler that records the boxes it is given (one list of (R_i, 4) per call)."""

    def __init__(self):
        super().__init__()
        self.pooler = ROIPooler(
            output_size=P, scales=(1.0 / 4,), sampling_ratio=2, pooler_type="ROIAlignV2"
        )
        self.calls = []

    def forward(self, features, boxes):
        self.calls.append([b.tensor.clone() for b in boxes])
        return self.pooler(features, boxes)


def _branch(**kwargs) -> BodyPartBranch:
    torch.manual_seed(0)
    head = PartRCNNConvDeconvHead(ShapeSpec(channels=4), num_classes=C, conv_dims=[8], up_scale=1)
    kwargs.setdefault("max_fg_per_image", 0)
    return BodyPartBranch(
        in_features=["p2"], pooler=RecordingPooler(), head=head, num_classes=C, **kwargs
    )


def _proposals(boxes, gt_classes, keypoints=None) -> Instances:
    """Sampled proposals of one 32 x 32 image (part label 2 inside [8, 24)^2 for every person)."""
    n = len(boxes)
    maps = torch.zeros(1, SIDE, SIDE, dtype=torch.uint8)
    maps[0, 8:24, 8:24] = 2
    inst = Instances(
        (SIDE, SIDE),
        proposal_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)),
        gt_classes=torch.tensor(gt_classes, dtype=torch.long),
        gt_part_maps=PartMaps(maps)[torch.zeros(n, dtype=torch.long)],
    )
    if keypoints is not None:
        inst.gt_keypoints = Keypoints(torch.tensor(keypoints, dtype=torch.float32).reshape(n, K, 3))
    return inst


def _features(n=2):
    torch.manual_seed(1)
    return {"p2": torch.randn(n, 4, SIDE // 4, SIDE // 4)}


# Image A: three proposals of persons with keypoints: 2 + 2 visible keypoints inside the first two
# boxes, none visible on the third (4 keypoint targets). Image B: a dataset without keypoints.
A_BOXES = [[0.0, 0.0, 32.0, 32.0], [4.0, 4.0, 28.0, 28.0], [0.0, 0.0, 16.0, 16.0]]
A_KPS = [[[10, 10, 2], [20, 20, 1]], [[12, 14, 2], [16, 16, 2]], [[5, 5, 0], [6, 6, 0]]]
B_BOXES = [[2.0, 2.0, 30.0, 30.0], [0.0, 0.0, 20.0, 20.0]]


def _image_a():
    return _proposals(A_BOXES, [0, 0, 0], A_KPS)


def _image_b():
    return _proposals(B_BOXES, [0, 0])


def _zero_keypoint_logits(branch):
    """Keypoint logits 0 everywhere: each visible keypoint's softmax cross-entropy over the M x M
    heatmap is log(M^2) exactly."""
    nn.init.zeros_(branch.keypoint_predictor.weight)
    nn.init.zeros_(branch.keypoint_predictor.bias)


def test_keypoint_loss_per_image_visible_normalizer():
    branch = _branch(num_keypoints=K, keypoint_loss_weight=3.0).train()
    _zero_keypoint_logits(branch)
    with EventStorage():
        loss = branch(_features(), [_image_a(), _image_b()], num_classes=1)["loss_keypoint"]
        # 4 targets, each log(64), normalised by the 4 visible keypoints, times the loss weight
        assert loss.item() == pytest.approx(3.0 * math.log(M * M), rel=1e-6)
        # Detectron2's own loss on the image with keypoints gives the same number
        reference = keypoint_rcnn_loss(torch.zeros(3, K, M, M), [_image_a()], normalizer=None)
        assert loss.item() == pytest.approx(3.0 * reference.item(), rel=1e-6)


def test_keypoint_loss_fixed_normalizer_counts_images_with_keypoints():
    branch = _branch(
        num_keypoints=K, keypoint_loss_weight=0.5, keypoint_loss_normalizer=10.0
    ).train()
    _zero_keypoint_logits(branch)
    with EventStorage():
        loss = branch(_features(), [_image_b(), _image_a()], num_classes=1)["loss_keypoint"]
        # Detectron2: divided by num_images * loss_normalizer; one image has keypoints
        assert loss.item() == pytest.approx(0.5 * 4 * math.log(M * M) / 10.0, rel=1e-6)
        reference = keypoint_rcnn_loss(torch.zeros(3, K, M, M), [_image_a()], normalizer=10.0)
        assert loss.item() == pytest.approx(0.5 * reference.item(), rel=1e-6)


def test_keypoint_loss_ignores_images_without_keypoints():
    """With trained (non-zero) logits: the batch (A, B) gives exactly A's loss alone."""
    branch = _branch(num_keypoints=K).train()
    features = _features()
    with EventStorage():
        mixed = branch(features, [_image_a(), _image_b()], num_classes=1)["loss_keypoint"]
        alone = branch({"p2": features["p2"][:1]}, [_image_a()], num_classes=1)["loss_keypoint"]
        assert mixed.item() > 0
        assert mixed.item() == pytest.approx(alone.item(), rel=1e-6)
        # no image with keypoints: zero, connected to the keypoint predictor (DDP-safe)
        zero = branch(features, [_image_b(), _image_b()], num_classes=1)["loss_keypoint"]
        assert zero.item() == 0 and zero.requires_grad
        zero.backward()
        assert branch.keypoint_predictor.weight.grad is not None
        assert torch.count_nonzero(branch.keypoint_predictor.weight.grad) == 0


def _cfg(*opts):
    cfg = get_cfg()
    add_bodyparts_config(cfg)
    cfg.merge_from_list(
        [
            "MODEL.BODYPART_ON",
            "True",
            "MODEL.ROI_BODYPART_HEAD.POOLER_RESOLUTION",
            str(P),
            "MODEL.ROI_BODYPART_HEAD.CONV_DIMS",
            "[8]",
            "MODEL.ROI_BODYPART_HEAD.UP_SCALE",
            "1",
            *opts,
        ]
    )
    return cfg


SHAPES = {"p2": ShapeSpec(channels=4, stride=4)}


def test_keypoint_loss_keys_from_config():
    """ROI_KEYPOINT_HEAD.LOSS_WEIGHT and NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS mean what they mean in
    Detectron2 (normaliser POSITIVE_FRACTION * BATCH_SIZE_PER_IMAGE * NUM_KEYPOINTS per image)."""
    kp = [
        "MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS",
        "True",
        "MODEL.ROI_KEYPOINT_HEAD.LOSS_WEIGHT",
        "3.0",
    ]
    branch = BodyPartBranch(_cfg(*kp), SHAPES)
    assert branch.keypoint_loss_weight == 3.0 and branch.keypoint_loss_normalizer == "visible"
    fixed = _cfg(*kp, "MODEL.ROI_KEYPOINT_HEAD.NORMALIZE_LOSS_BY_VISIBLE_KEYPOINTS", "False")
    assert BodyPartBranch(fixed, SHAPES).keypoint_loss_normalizer == pytest.approx(17 * 512 * 0.25)


# ------------------------------------------------------------------------- the part-head contract


@ROI_BODYPART_HEAD_REGISTRY.register()
class PlainPartHeadForTest(nn.Module):
    """A part head exactly as the registry documents it and nothing more: built with
    ``(cfg, input_shape)``, ``forward`` (R, D, P, P) -> (R, C, 2P, 2P) logits."""

    def __init__(self, cfg, input_shape):
        super().__init__()
        from bodyparts.taxonomy import get_part_taxonomy

        self.predictor = nn.Conv2d(
            input_shape.channels, get_part_taxonomy(cfg.BODYPARTS.PART_TAXONOMY).num_classes, 1
        )
        nn.init.zeros_(self.predictor.weight)
        nn.init.zeros_(self.predictor.bias)

    def forward(self, x):
        return F.interpolate(self.predictor(x), scale_factor=2.0, mode="nearest")


def test_plain_registered_head_trains_and_predicts():
    cfg = _cfg(
        "MODEL.ROI_BODYPART_HEAD.NAME",
        "PlainPartHeadForTest",
        "MODEL.ROI_BODYPART_HEAD.SILHOUETTE_FROM_PARTS",
        "True",
    )
    branch = BodyPartBranch(cfg, SHAPES).train()
    assert isinstance(branch.head, PlainPartHeadForTest)
    with EventStorage():
        loss = branch(_features(), [_image_a(), _image_b()], num_classes=1)["loss_part"]
    # zero logits: uniform over the 15 fine_lr labels, times LOSS_WEIGHT (2)
    assert loss.item() == pytest.approx(2.0 * math.log(15), rel=1e-6)
    branch.eval()
    det = Instances(
        (SIDE, SIDE),
        pred_boxes=Boxes(torch.tensor(A_BOXES)),
        pred_classes=torch.zeros(3, dtype=torch.long),
    )
    with torch.no_grad():
        (out,) = branch(_features(1), [det])
    assert out.pred_part_masks.index.tolist() == [0, 1, 2] and len(out.pred_part_masks) == 3
    assert out.pred_part_masks.probs.shape == (3, 15, M, M)
    assert torch.allclose(out.pred_part_masks.probs, torch.full((3, 15, M, M), 1 / 15))
    assert torch.allclose(out.pred_masks, torch.full((3, 1, M, M), 14 / 15))


def test_keypoints_from_parts_needs_the_trunk_extension():
    cfg = _cfg(
        "MODEL.ROI_BODYPART_HEAD.NAME",
        "PlainPartHeadForTest",
        "MODEL.ROI_BODYPART_HEAD.KEYPOINTS_FROM_PARTS",
        "True",
    )
    with pytest.raises(
        TypeError, match=r"PlainPartHeadForTest.*KEYPOINTS_FROM_PARTS.*trunk, predict, out_channels"
    ):
        BodyPartBranch(cfg, SHAPES)


# -------------------------------------------------------------------------- foreground selection


def _pooled_boxes(branch, instances, num_classes=None):
    branch.pooler.calls.clear()
    with EventStorage():
        branch(_features(len(instances)), instances, num_classes=num_classes)
    return [b.tolist() for b in branch.pooler.calls[-1]]


BOXES4 = [
    [0.0, 0.0, 8.0, 8.0],
    [8.0, 0.0, 16.0, 8.0],
    [16.0, 0.0, 24.0, 8.0],
    [24.0, 0.0, 32.0, 8.0],
]


def test_foreground_follows_detectron2_select_foreground_proposals():
    """Foreground = 0 <= gt_classes < num_classes: -1 (ignored) and num_classes (background) are
    left out; without num_classes the detector is person-only (background label 1)."""
    branch = _branch().train()
    assert _pooled_boxes(branch, [_proposals(BOXES4, [0, 1, 2, -1])], num_classes=2) == [BOXES4[:2]]
    assert _pooled_boxes(branch, [_proposals(BOXES4, [1, 0, -1, 0])]) == [[BOXES4[1], BOXES4[3]]]
    with pytest.raises(ValueError, match=r"gt_classes up to 2.*num_classes"):
        _pooled_boxes(branch, [_proposals(BOXES4, [0, 1, 2, -1])])


# ------------------------------------------------------------------ classes with parts (panoptic)

BOXES6 = [
    [0.0, 0.0, 8.0, 8.0],
    [8.0, 0.0, 16.0, 8.0],
    [16.0, 0.0, 24.0, 8.0],
    [24.0, 0.0, 32.0, 8.0],
    [0.0, 8.0, 8.0, 16.0],
    [8.0, 8.0, 16.0, 16.0],
]


def test_training_slots_go_to_part_classes_only():
    """One person (class 0) among four cars (class 1) and a background proposal (2): with one part
    slot per image, the person always gets it."""
    branch = _branch(max_fg_per_image=1, part_class_ids=[0]).train()
    props = _proposals(BOXES6, [1, 1, 1, 0, 1, 2])
    for seed in range(5):
        torch.manual_seed(seed)
        assert _pooled_boxes(branch, [props], num_classes=2) == [[BOXES6[3]]]
    everything = _branch(max_fg_per_image=0).train()
    assert _pooled_boxes(everything, [props], num_classes=2) == [BOXES6[:5]]


def _detections():
    inst = Instances((SIDE, SIDE))
    inst.pred_boxes = Boxes(torch.tensor(BOXES4))
    inst.pred_classes = torch.tensor([1, 0, 1, 0])
    inst.scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    return inst


def test_inference_computes_part_maps_of_part_classes_only():
    branch = _branch(part_class_ids=[0]).eval()
    with torch.no_grad():
        (out,) = branch(_features(1), [_detections()])
    # the head ran on the two persons only; the other detections have no part maps
    assert [b.tolist() for b in branch.pooler.calls[-1]] == [[BOXES4[1], BOXES4[3]]]
    masks = out.pred_part_masks
    assert isinstance(masks, PartPredictions) and len(masks) == 4
    assert masks.index.tolist() == [1, 3] and masks.has_parts().tolist() == [
        False,
        True,
        False,
        True,
    ]
    assert masks.probs.shape == (2, C, M, M)  # memory: part-class detections only
    # the same probabilities as the branch gives for those two boxes alone
    persons = Instances(
        (SIDE, SIDE),
        pred_boxes=Boxes(torch.tensor([BOXES4[1], BOXES4[3]])),
        pred_classes=torch.zeros(2, dtype=torch.long),
    )
    with torch.no_grad():
        (alone,) = _branch().eval()(_features(1), [persons])
    assert torch.allclose(masks.probs, alone.pred_part_masks.probs)
    # image space: zeros for the cars, each person's pasted map for the persons
    pasted = part_label_maps_in_image(out)
    assert pasted.shape == (4, SIDE, SIDE) and (pasted[[0, 2]] == 0).all()
    assert torch.equal(
        pasted[[1, 3]],
        paste_part_masks(alone.pred_part_masks, persons.pred_boxes.tensor, (SIDE, SIDE)),
    )


def test_part_predictions_follow_instances_indexing():
    branch = _branch(part_class_ids=[0]).eval()
    with torch.no_grad():
        (out,) = branch(_features(1), [_detections()])
    dense = out.pred_part_masks.probs
    high = out[out.scores > 0.75]  # detections 0 (car), 1 (person)
    assert high.pred_part_masks.index.tolist() == [1] and torch.equal(
        high.pred_part_masks.probs, dense[:1]
    )
    assert len(out[0].pred_part_masks) == 1 and out[0].pred_part_masks.probs.shape[0] == 0
    assert torch.equal(out[3].pred_part_masks.probs, dense[1:])
    reordered = out[torch.tensor([3, 0, 1])].pred_part_masks
    assert reordered.index.tolist() == [0, 2] and torch.equal(reordered.probs, dense[[1, 0]])
    both = Instances.cat([out, out[2:]])
    assert len(both) == 6 and both.pred_part_masks.index.tolist() == [1, 3, 5]
    assert torch.equal(both.pred_part_masks.probs, dense[[0, 1, 1]])
    assert out.to("cpu").pred_part_masks.probs.device.type == "cpu"


def test_part_predictions_checks_dense_and_conversion():
    probs = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).reshape(2, 3, 2, 2)
    pred = PartPredictions(probs, torch.tensor([1, 3]), 4)
    assert pred.has_parts().tolist() == [False, True, False, True]
    dense = pred.dense()
    assert dense.shape == (4, 3, 2, 2) and (dense[[0, 2]] == 0).all()
    assert torch.equal(dense[[1, 3]], probs)
    everyone = PartPredictions.from_dense(probs)
    assert everyone.index.tolist() == [0, 1] and everyone.dense() is probs
    assert as_part_predictions(probs).index.tolist() == [0, 1]
    assert as_part_predictions(pred) is pred
    with pytest.raises(TypeError, match="pred_part_masks.*got Tensor of shape \\(2, 3\\)"):
        as_part_predictions(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="outside 0..3"):
        PartPredictions(probs, torch.tensor([1, 4]), 4)
    with pytest.raises(ValueError, match="not strictly ascending"):
        PartPredictions(probs, torch.tensor([3, 1]), 4)
    with pytest.raises(ValueError, match="expected \\(S, C, M, M\\)"):
        PartPredictions(probs[0], torch.tensor([1]), 4)
    with pytest.raises(IndexError, match="index 4 out of range for 4"):
        pred[4]


def test_part_predictions_compile_with_torchscript():
    """The export's scripting path runs the branch's own storing code: TorchScript compiles the
    class, and a scripted function gives what the eager one does."""

    def rows_with_parts(probs: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        return PartPredictions.from_selection(probs, selected).dense()

    scripted = torch.jit.script(rows_with_parts)
    probs, selected = torch.rand(2, 3, 4, 4), torch.tensor([False, True, True])
    assert torch.equal(scripted(probs, selected), rows_with_parts(probs, selected))
    assert torch.equal(scripted(probs, selected)[1:], probs)


def test_part_heads_mixin_needs_standard_roi_heads():
    from detectron2.modeling.roi_heads import ROIHeads

    with pytest.raises(TypeError, match="Host.*StandardROIHeads"):

        class Host(BodyPartHeadsMixin, ROIHeads):
            pass


def test_part_classes_exclude_outputs_other_classes_need():
    with pytest.raises(ValueError, match="SILHOUETTE_FROM_PARTS"):
        _branch(part_class_ids=[0], silhouette_from_parts=True)
    with pytest.raises(ValueError, match="KEYPOINTS_FROM_PARTS"):
        _branch(part_class_ids=[0], num_keypoints=K)


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_chunked_inference_equals_unchunked(chunk):
    """The head run on chunks of ROIs (INFERENCE_CHUNK_SIZE) gives exactly the outputs of one pass:
    part probabilities, keypoints from the trunk and silhouettes, for 5 detections over 2 images
    (chunks that straddle the images). PyTorch's native CPU convolution (batch-independent; oneDNN
    may round differently by batch size) so that the comparison is exact."""
    boxes = [BOXES4, BOXES4[:1]]
    detections = []
    for image_boxes in boxes:
        inst = Instances((SIDE, SIDE))
        inst.pred_boxes = Boxes(torch.tensor(image_boxes))
        inst.pred_classes = torch.zeros(len(image_boxes), dtype=torch.long)
        detections.append(inst)

    def run(size):
        branch = _branch(
            inference_chunk_size=size, num_keypoints=K, silhouette_from_parts=True
        ).eval()
        with torch.no_grad(), torch.backends.mkldnn.flags(enabled=False):
            return branch(_features(2), [d[:] for d in detections]), branch

    whole, whole_branch = run(5)  # one pass
    parts, branch = run(chunk)
    assert branch.inference_chunk(5, P) == chunk
    for a, b in zip(whole, parts):
        assert torch.equal(a.pred_part_masks.probs, b.pred_part_masks.probs)
        assert torch.equal(a.pred_masks, b.pred_masks)
        assert torch.equal(a.pred_keypoints, b.pred_keypoints)
        assert torch.equal(a.pred_keypoint_heatmaps, b.pred_keypoint_heatmaps)
    assert [len(d) for d in parts] == [4, 1]


def test_automatic_chunk_bounds_the_head_activation():
    """Automatic chunk: INFERENCE_CHUNK_ROIS (4) ROIs, fewer when their deconv output
    (D' x 2P x 2P float32) would pass INFERENCE_CHUNK_BYTES (32 MB): the R-50 CIHP head (512
    channels, P = 32: 8 MB a ROI) and the R-18 main job's (128 channels, P = 14) run 4 at a time,
    a 1024-channel head at P = 32 runs 2, a wider one 1."""
    from bodyparts.modeling.roi_heads import part_branch as module

    assert module.INFERENCE_CHUNK_ROIS == 4 and module.INFERENCE_CHUNK_BYTES == 32 * 2**20
    branch = _branch()
    for channels, resolution, chunk in [(512, 32, 4), (128, 14, 4), (1024, 32, 2), (4096, 32, 1)]:
        branch.trunk_channels = channels
        assert branch.inference_chunk(100, resolution) == chunk
    branch.trunk_channels = 1024
    assert branch.inference_chunk(100, 32, element_size=2) == 4  # float16: half the bytes
    with pytest.raises(ValueError, match="inference_chunk_size must be >= 0"):
        _branch(inference_chunk_size=-1)


def _grid_sampled_labels(probs, box, height, width):
    """Reference for paste_in_box: grid_sample at every pixel of the box, then the arg-max."""
    x0, y0, x1, y1 = box.tolist()
    ix0, iy0 = max(int(x0), 0), max(int(y0), 0)
    ix1, iy1 = min(math.ceil(x1), width), min(math.ceil(y1), height)
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    xs = (torch.arange(ix0, ix1, dtype=probs.dtype) + 0.5 - x0) / max(x1 - x0, 1e-6) * 2 - 1
    ys = (torch.arange(iy0, iy1, dtype=probs.dtype) + 0.5 - y0) / max(y1 - y0, 1e-6) * 2 - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    sampled = F.grid_sample(
        probs[None], torch.stack([gx, gy], -1)[None], padding_mode="border", align_corners=False
    )[0]
    labels = sampled.max(dim=0).indices.to(torch.uint8)
    inside = (ys.abs() <= 1)[:, None] & (xs.abs() <= 1)[None, :]
    return labels.masked_fill_(~inside, 0), iy0, ix0


def test_paste_resamples_only_near_label_changes_with_the_same_labels():
    """On the CPU, paste_in_box resamples only the pixels near a label change; every label equals
    grid_sample + arg-max at every pixel: smooth and noisy maps, ties (rounded logits), near-ties
    at and around the safety margin, logits instead of probabilities, NaN, boxes whose pixel
    centres fall exactly on ROI pixels, boxes partly outside the image."""
    from bodyparts.modeling.inference import paste_in_box

    gen = torch.Generator().manual_seed(0)
    checked = 0
    for case in range(240):
        c = int(torch.randint(2, 22, (), generator=gen))
        m = int(torch.randint(2, 48, (), generator=gen))
        low = max(1, m // int(torch.randint(1, 10, (), generator=gen)))
        scale = float(torch.rand((), generator=gen)) * 6
        logits = F.interpolate(
            torch.randn(1, c, low, low, generator=gen) * scale, size=(m, m), mode="bilinear"
        )[0]
        kind = case % 6
        probs = (logits.round() if kind == 1 else logits).softmax(dim=0)
        if kind == 2:  # label 1 within 1e-3 .. 1e-7 of label 0
            gap = 10.0 ** -float(torch.randint(3, 8, (), generator=gen))
            probs[1] = probs[0] + (torch.rand(m, m, generator=gen) - 0.5) * gap
        elif kind == 3:
            probs = logits * 1000
        elif kind == 4:
            probs[0, : m // 2, : m // 3] = float("nan")
        if case % 2:  # pixel centres on whole ROI pixels
            k = int(torch.randint(1, 4, (), generator=gen))
            x0, y0 = (int(v) for v in torch.randint(-10, 60, (2,), generator=gen))
            box = torch.tensor([x0, y0, x0 + m * k, y0 + m * k], dtype=torch.float32)
            box += 0.5 * (case % 4 == 1)
        else:
            x0, y0 = (float(v) for v in torch.rand(2, generator=gen) * 120 - 20)
            w, h = (float(v) for v in torch.rand(2, generator=gen) * 110 + 0.3)
            box = torch.tensor([x0, y0, x0 + w, y0 + h])
        ref = _grid_sampled_labels(probs, box, 96, 100)
        if ref is None:
            assert paste_in_box(probs, box, 96, 100) is None
            continue
        labels, y0, x0 = paste_in_box(probs, box, 96, 100)
        assert (y0, x0) == ref[1:]
        assert torch.equal(labels, ref[0]), f"case {case}"
        checked += 1
    assert checked > 200
