"""Tests of the synthetic scene renderer (bodyparts.data.synthetic.render)."""

import math

import numpy as np
import pytest

from bodyparts.data.synthetic.render import (
    KEYPOINT_ADJACENT_PARTS,
    STUFF_CLASSES,
    RenderedPerson,
    RenderedScene,
    render_background,
    render_scene,
)
from bodyparts.taxonomy import COCO_PERSON_KEYPOINTS, FINE_LR

KP_NAMES = COCO_PERSON_KEYPOINTS.names
LEFT_LABELS = [FINE_LR.label_of(p) for p in FINE_LR.part_names if p.startswith("left_")]
RIGHT_LABELS = [FINE_LR.label_of(p) for p in FINE_LR.part_names if p.startswith("right_")]
HEAD = FINE_LR.label_of("head")


def _expected_adjacency():
    """Independent statement of the spec: keypoint name -> allowed part labels for v = 2."""
    L = FINE_LR.label_of
    table = {}
    for name in KP_NAMES:
        if name == "nose" or name.endswith("_eye") or name.endswith("_ear"):
            table[name] = {L("head")}
            continue
        side, joint = name.split("_", 1)
        table[name] = {
            "shoulder": {L("torso"), L(f"{side}_upper_arm")},
            "elbow": {L(f"{side}_upper_arm"), L(f"{side}_lower_arm")},
            "wrist": {L(f"{side}_lower_arm"), L(f"{side}_hand")},
            "hip": {L("torso"), L(f"{side}_upper_leg")},
            "knee": {L(f"{side}_upper_leg"), L(f"{side}_lower_leg")},
            "ankle": {L(f"{side}_lower_leg"), L(f"{side}_foot")},
        }[joint]
    return table


ADJ = _expected_adjacency()

SEEDS = list(range(50))


@pytest.fixture(scope="module")
def scenes():
    return {s: render_scene(s) for s in SEEDS}


def _bbox(mask):
    ys, xs = np.nonzero(mask)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_adjacency_table_matches_spec():
    assert len(KEYPOINT_ADJACENT_PARTS) == 17
    for k, name in enumerate(KP_NAMES):
        assert set(KEYPOINT_ADJACENT_PARTS[k]) == ADJ[name], name


def test_determinism():
    a, b = render_scene(1234), render_scene(1234)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.stuff_map, b.stuff_map)
    assert len(a.persons) == len(b.persons)
    for p, q in zip(a.persons, b.persons):
        assert np.array_equal(p.part_map, q.part_map)
        assert np.array_equal(p.keypoints, q.keypoints)
        assert p.depth == q.depth
    c = render_scene(1235)
    assert not np.array_equal(a.image, c.image)
    # other sizes are deterministic too
    assert np.array_equal(render_scene(5, 64, 96).image, render_scene(5, 64, 96).image)


def _check_scene(sc: RenderedScene, H: int, W: int, max_persons: int = 5):
    assert isinstance(sc, RenderedScene)
    assert sc.image.shape == (H, W, 3) and sc.image.dtype == np.uint8
    assert sc.stuff_map.shape == (H, W) and sc.stuff_map.dtype == np.uint8
    assert sc.stuff_map.max() < len(STUFF_CLASSES)
    assert 1 <= len(sc.persons) <= max_persons
    taken = np.zeros((H, W), bool)
    for k, p in enumerate(sc.persons):
        assert isinstance(p, RenderedPerson)
        assert p.depth == k
        assert p.part_map.shape == (H, W) and p.part_map.dtype == np.uint8
        assert p.part_map.max() <= 14
        m = p.part_map > 0
        assert m.sum() >= 60, "tiny persons must be removed"
        assert not (taken & m).any(), "part maps must be disjoint"
        taken |= m
        kp = p.keypoints
        assert kp.shape == (17, 3) and kp.dtype == np.float32
        v = kp[:, 2]
        assert set(np.unique(v)) <= {0.0, 1.0, 2.0}
        assert np.all(kp[v == 0, :2] == 0), "v=0 keypoints must be at (0, 0)"
        x0, y0, x1, y1 = _bbox(m)
        for j in np.flatnonzero(v > 0):
            x, y = float(kp[j, 0]), float(kp[j, 1])
            assert 0 <= x < W and 0 <= y < H, (KP_NAMES[j], x, y)
            label = int(p.part_map[math.floor(y), math.floor(x)])
            if v[j] == 2:
                assert label in ADJ[KP_NAMES[j]], (KP_NAMES[j], label)
                assert x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1
            else:
                assert label not in ADJ[KP_NAMES[j]], "v=1 only where not visible"
    # the front-most person is occluded by nobody: its part map is its whole in-image shape,
    # so all its in-image keypoints (visible or self-occluded) lie within its part map's box
    front = sc.persons[-1]
    x0, y0, x1, y1 = _bbox(front.part_map > 0)
    for x, y, v in front.keypoints:
        if v > 0:
            assert x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1


def test_ground_truth_invariants(scenes):
    counts = []
    for sc in scenes.values():
        _check_scene(sc, 256, 256)
        counts.append(len(sc.persons))
    assert min(counts) >= 1 and max(counts) <= 5
    assert len(set(counts)) >= 3, "person counts should vary"


@pytest.mark.parametrize("size", [(32, 32), (48, 160), (160, 48), (100, 75)])
def test_small_and_non_square_sizes(size):
    H, W = size
    for seed in range(12):
        _check_scene(render_scene(seed, H, W), H, W)


def test_person_count_arguments():
    for seed in range(8):
        assert len(render_scene(seed, 128, 128, 1, 1).persons) == 1
        sc = render_scene(seed, 256, 256, 3, 3)
        assert 1 <= len(sc.persons) <= 3
    many = [len(render_scene(s, 256, 256, 4, 5).persons) for s in range(10)]
    assert sum(n >= 4 for n in many) >= 7, many


def test_fallback_centered_person(monkeypatch):
    from bodyparts.data.synthetic import render as R

    monkeypatch.setattr(R, "_MAX_LAYOUT_TRIES", 0)  # no random layout: one centred figure
    for H, W in [(32, 32), (64, 200), (256, 256)]:
        sc = R.render_scene(3, H, W)
        _check_scene(sc, H, W)
        assert len(sc.persons) == 1
        m = sc.persons[0].part_map > 0
        assert not (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
        assert np.all(sc.persons[0].keypoints[:, 2] == 2)


def test_image_agrees_with_labels(scenes):
    for seed in SEEDS[:20]:
        sc = scenes[seed]
        bg, stuff = render_background(seed, 256, 256)
        assert np.array_equal(stuff, sc.stuff_map)
        person = np.zeros(stuff.shape, bool)
        for p in sc.persons:
            person |= p.part_map > 0
        # every pixel outside the persons is the background rendering, unchanged ...
        assert np.array_equal(sc.image[~person], bg[~person])
        # ... and the persons are actually painted where their labels are
        differs = np.any(sc.image != bg, axis=2)
        assert differs[person].mean() > 0.95
        for p in sc.persons:
            m = p.part_map > 0
            assert differs[m].mean() > 0.9


def test_stuff_regions_and_textures(scenes):
    present = set()
    for seed, sc in scenes.items():
        present |= set(np.unique(sc.stuff_map).tolist())
        bg, _ = render_background(seed, 256, 256)
        for c in np.unique(sc.stuff_map):
            px = bg[sc.stuff_map == c].astype(np.float32)
            if len(px) > 500:
                assert px.std(axis=0).max() > 1.0, "stuff regions are textured, not flat"
    assert present == {0, 1, 2}


def test_face_cue_eyes_contrast_with_face(scenes):
    checked = 0
    for sc in scenes.values():
        lum = sc.image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        for p in sc.persons:
            head = p.part_map == HEAD
            if head.sum() < 400:
                continue
            face_lum = np.median(lum[head])
            for name in ("left_eye", "right_eye"):
                x, y, v = p.keypoints[KP_NAMES.index(name)]
                if v == 2:
                    assert abs(lum[int(y), int(x)] - face_lum) > 40
                    checked += 1
    assert checked >= 10


def test_frontal_convention(scenes):
    lw, rw = KP_NAMES.index("left_wrist"), KP_NAMES.index("right_wrist")
    ok = total = 0
    for sc in scenes.values():
        for p in sc.persons:
            kp = p.keypoints
            if kp[lw, 2] > 0 and kp[rw, 2] > 0 and kp[lw, 0] < kp[rw, 0]:
                continue  # arms crossed
            left = np.isin(p.part_map, LEFT_LABELS)
            right = np.isin(p.part_map, RIGHT_LABELS)
            if left.sum() < 30 or right.sum() < 30:
                continue
            total += 1
            ok += np.nonzero(left)[1].mean() > np.nonzero(right)[1].mean()
    assert total >= 50
    assert ok / total > 0.8, (ok, total)


def test_truncation_and_overlap(scenes):
    touching = occluded_kp = v0 = persons = 0
    for sc in scenes.values():
        for p in sc.persons:
            persons += 1
            m = p.part_map > 0
            touching += bool(m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())
            occluded_kp += int((p.keypoints[:, 2] == 1).sum())
            v0 += int((p.keypoints[:, 2] == 0).sum())
    assert touching >= 1 and occluded_kp >= 1 and v0 >= 1
    assert 0.05 < touching / persons < 0.7, (touching, persons)


def test_sizes_and_tilt_vary(scenes):
    heights = []
    for sc in scenes.values():
        for p in sc.persons:
            m = p.part_map > 0
            if m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any():
                continue
            ys = np.nonzero(m)[0]
            heights.append((ys.max() - ys.min() + 1) / 256)
    assert min(heights) < 0.4 and max(heights) > 0.75


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(height=31), "height"),
        (dict(width=16), "width"),
        (dict(height=64.0), "height"),
        (dict(min_persons=0), "min_persons"),
        (dict(min_persons=3, max_persons=2), "max_persons"),
        (dict(seed=-1), "seed"),
        (dict(seed=1.5), "seed"),
    ],
)
def test_bad_arguments(kwargs, name):
    args = dict(seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        render_scene(**args)


def test_render_background_bad_arguments():
    with pytest.raises(ValueError, match="width"):
        render_background(0, 64, 8)
