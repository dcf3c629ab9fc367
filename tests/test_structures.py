"""PartMaps: indexing, device moves, concatenation, validation, and life inside Instances."""

import numpy as np
import pytest
import torch
from detectron2.structures import Boxes, Instances

from bodyparts.structures import PartMaps


def _maps(n=4, h=2, w=3):
    """Person i's map is filled with label i (person 0 all background); distinguishable by value."""
    return PartMaps(torch.arange(n, dtype=torch.uint8).view(n, 1, 1).expand(n, h, w).contiguous())


def _labels(pm):
    """The label of each person's (constant) map."""
    return pm.tensor[:, 0, 0].tolist()


def test_basic_properties():
    pm = _maps()
    assert len(pm) == 4 and pm.image_size == (2, 3) and pm.device == torch.device("cpu")
    assert repr(pm) == "PartMaps(num_instances=4, image_size=(2, 3))"


def test_accepts_numpy_and_lists():
    pm = PartMaps(np.array([[[1, 2]], [[3, 255]]], dtype=np.uint8))
    assert pm.tensor.dtype == torch.uint8 and pm.tensor.shape == (2, 1, 2)
    assert pm.tensor.flatten().tolist() == [1, 2, 3, 255]
    with pytest.raises(ValueError, match="uint8"):
        PartMaps([[[1, 2]]])  # a Python list becomes int64


@pytest.mark.parametrize("i, label", [(0, 0), (2, 2), (3, 3), (-1, 3), (-4, 0)])
def test_index_int_keeps_dim(i, label):
    out = _maps()[i]
    assert isinstance(out, PartMaps) and out.tensor.shape == (1, 2, 3)
    assert _labels(out) == [label]


@pytest.mark.parametrize("i", [4, -5])
def test_index_int_out_of_range(i):
    with pytest.raises(IndexError):
        _maps()[i]


def test_index_slice():
    assert _labels(_maps()[1:3]) == [1, 2]
    assert _labels(_maps()[::2]) == [0, 2]
    assert len(_maps()[4:]) == 0


def test_index_bool_tensor():
    out = _maps()[torch.tensor([True, False, False, True])]
    assert _labels(out) == [0, 3] and out.image_size == (2, 3)


def test_index_index_tensor():
    assert _labels(_maps()[torch.tensor([3, 1, 1])]) == [3, 1, 1]
    assert len(_maps()[torch.zeros(0, dtype=torch.long)]) == 0


def test_indexing_never_copies_the_maps():
    pm = _maps()
    for item in (slice(1, 2), torch.tensor([0, 0, 1, 1, 1]), 1):
        sub = pm[item]
        assert sub.base.data_ptr() == pm.base.data_ptr()
    many = pm[torch.zeros(500, dtype=torch.long)]  # 500 proposals matched to person 0
    assert len(many) == 500 and many.base.shape[0] == pm.base.shape[0]


def test_crop_and_resize_nearest_hand_computed():
    base = torch.arange(16, dtype=torch.uint8).reshape(1, 4, 4)  # label = 4 * row + col
    pm = PartMaps(base)[torch.tensor([0, 0])]
    boxes = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 2.0, 3.0, 6.0]])
    out = pm.crop_and_resize(boxes, 2)
    # box 0, 2x2 grid: sample points x, y in {1.0, 3.0} -> pixels (1, 1), (1, 3), (3, 1), (3, 3)
    assert out[0].tolist() == [[5, 7], [13, 15]]
    # box 1: x in {1.5, 2.5} -> cols 1, 2; y in {3.0, 5.0} -> row 3, row 5 is outside -> 255
    assert out[1].tolist() == [[13, 14], [255, 255]]
    assert out.dtype == torch.long


def test_to_device():
    pm = _maps()
    moved = pm.to("cpu")
    assert isinstance(moved, PartMaps) and moved.device == torch.device("cpu")
    assert torch.equal(moved.tensor, pm.tensor)
    assert moved.to(torch.device("cpu")).tensor.dtype == torch.uint8


def test_has_parts():
    t = torch.zeros(3, 2, 2, dtype=torch.uint8)
    t[0] = 255  # no part annotation
    t[1, 0, 0] = 255  # partly unlabelled, otherwise background
    t[2] = 4
    assert PartMaps(t).has_parts().tolist() == [False, True, True]


def test_has_parts_empty():
    out = PartMaps(torch.zeros(0, 5, 5, dtype=torch.uint8)).has_parts()
    assert out.dtype == torch.bool and out.shape == (0,)


def test_cat():
    out = PartMaps.cat([_maps(2), _maps(3)[2:], PartMaps(torch.zeros(0, 2, 3, dtype=torch.uint8))])
    assert isinstance(out, PartMaps) and _labels(out) == [0, 1, 2]


def test_cat_size_mismatch():
    with pytest.raises(RuntimeError):
        PartMaps.cat([_maps(1, 2, 3), _maps(1, 3, 3)])


@pytest.mark.parametrize("shape", [(2, 3), (1, 1, 2, 3), ()])
def test_wrong_dim(shape):
    with pytest.raises(ValueError, match=r"expects an \(N, H, W\) tensor, got shape"):
        PartMaps(torch.zeros(shape, dtype=torch.uint8))


@pytest.mark.parametrize("dtype", [torch.int64, torch.float32, torch.bool])
def test_wrong_dtype(dtype):
    with pytest.raises(ValueError, match="expects uint8 labels, got torch."):
        PartMaps(torch.zeros(1, 2, 3, dtype=dtype))


# ------------------------------------------------------------ inside Instances


def _instances():
    inst = Instances((2, 3))
    inst.gt_boxes = Boxes(torch.tensor([[0.0, 0, 1, 1], [1, 0, 2, 1], [0, 1, 3, 2], [2, 0, 3, 2]]))
    inst.gt_classes = torch.tensor([10, 11, 12, 13])
    inst.gt_part_maps = _maps()
    return inst


def _aligned(inst):
    """Each person keeps its own part map: class 10 + i goes with label i."""
    return [c - 10 for c in inst.gt_classes.tolist()] == _labels(inst.gt_part_maps)


@pytest.mark.parametrize(
    "item",
    [1, -1, slice(1, 3), torch.tensor([True, False, True, False]), torch.tensor([3, 0])],
    ids=["int", "negative-int", "slice", "bool", "index"],
)
def test_instances_indexing_keeps_part_maps_aligned(item):
    sub = _instances()[item]
    assert isinstance(sub.gt_part_maps, PartMaps)
    assert len(sub.gt_part_maps) == len(sub) == len(sub.gt_boxes)
    assert _aligned(sub)


def test_instances_nonempty_filter_keeps_alignment():
    inst = _instances()
    inst.gt_boxes.tensor[1] = torch.tensor([1.0, 0, 1, 1])  # empty box
    kept = inst[inst.gt_boxes.nonempty()]
    assert kept.gt_classes.tolist() == [10, 12, 13] and _aligned(kept)


def test_instances_cat_and_to():
    a, b = _instances()[:1], _instances()[2:]
    both = Instances.cat([a, b]).to("cpu")
    assert isinstance(both.gt_part_maps, PartMaps)
    assert both.gt_classes.tolist() == [10, 12, 13] and _aligned(both)


def test_instances_rejects_misaligned_part_maps():
    inst = _instances()
    with pytest.raises(AssertionError):
        inst.gt_part_maps = _maps(3)
