"""PQ / PartPQ statistics (bodyparts.evaluation.partpq): hand-computed cases, then the same and
randomized / structured cases against the panoptic-parts package (the reference implementation).

Classes of the hand cases: person (scene id 1, thing, with parts), car (5, thing, no parts),
sky (2, stuff). Maps are (H, W) integer arrays: ground truth sem / inst / part (inst 0 of a thing =
crowd, sem 0 = void, part 0 = not defined), prediction sem / inst / part (sem 255 = no segment,
part 255 = void).
"""

import importlib.util
import math

import numpy as np
import pytest

from bodyparts.evaluation.partpq import PanopticStats, SceneClasses, panoptic_quality, segment_stats

CLASSES = SceneClasses(
    ("person", "car", "sky"), (1, 5, 2), (True, True, False), (True, False, False)
)
PERSON, CAR, SKY = 0, 1, 2

needs_package = pytest.mark.skipif(
    importlib.util.find_spec("sklearn") is None
    or importlib.util.find_spec("panoptic_parts") is None,
    reason="scikit-learn (imported by panoptic-parts' PartPQ evaluation) or panoptic-parts is not "
    "installed; "
    "pip install -r requirements/test.txt",
)


def _a(rows):
    return np.array(rows, dtype=np.int64)


def hand_case_1():
    """4 x 6 image: persons A (inst 1) and B (inst 2), sky, 2 void pixels (bottom left)."""
    gt_sem = _a([[2, 2, 2, 2, 2, 2], [1, 1, 2, 2, 1, 1], [1, 1, 2, 2, 1, 1], [0, 0, 2, 2, 1, 1]])
    gt_inst = _a([[0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 2, 2], [1, 1, 0, 0, 2, 2], [0, 0, 0, 0, 2, 2]])
    gt_part = _a([[0, 0, 0, 0, 0, 0], [1, 2, 0, 0, 1, 1], [2, 2, 0, 0, 0, 2], [0, 0, 0, 0, 2, 2]])
    # p1 = A + the 2 void pixels; p2 = B + pixel (3, 3) of sky; sky = the other 11 pixels
    pr_sem = _a([[2, 2, 2, 2, 2, 2], [1, 1, 2, 2, 1, 1], [1, 1, 2, 2, 1, 1], [1, 1, 2, 1, 1, 1]])
    pr_inst = _a([[0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 2, 2], [1, 1, 0, 0, 2, 2], [1, 1, 0, 2, 2, 2]])
    pr_part = _a(
        [[255] * 6, [1, 1, 255, 255, 1, 2], [2, 2, 255, 255, 2, 2], [2, 2, 255, 2, 2, 255]]
    )
    return gt_sem, gt_inst, gt_part, pr_sem, pr_inst, pr_part


def hand_case_crowd_void():
    """1 x 16: person crowd (cols 0-3), car a (4-7), void (8-11), car b (12-15)."""
    gt_sem = _a([[1] * 4 + [5] * 4 + [0] * 4 + [5] * 4])
    gt_inst = _a([[0] * 4 + [1] * 4 + [0] * 4 + [2] * 4])
    pr_sem = _a([[1, 1, 1, 1, 1, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 255]])
    pr_inst = _a([[1, 1, 1, 2, 2, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 0]])
    zeros = np.zeros_like(gt_sem)
    return gt_sem, gt_inst, zeros, pr_sem, pr_inst, zeros + 255


def hand_case_no_part_labels():
    """1 x 8: person 1 (cols 0-3) without any part label, person 2 (cols 4-7) with parts."""
    gt_sem = _a([[1] * 8])
    gt_inst = _a([[1] * 4 + [2] * 4])
    gt_part = _a([[0, 0, 0, 0, 1, 1, 2, 2]])
    return gt_sem, gt_inst, gt_part, gt_sem.copy(), gt_inst.copy(), _a([[3, 3, 3, 3, 1, 1, 2, 2]])


HAND_CASES = [hand_case_1, hand_case_crowd_void, hand_case_no_part_labels]


def test_hand_case_pq_and_partpq():
    gt_sem, gt_inst, gt_part, pr_sem, pr_inst, pr_part = hand_case_1()
    pq = segment_stats(gt_sem, gt_inst, None, pr_sem, pr_inst, None, CLASSES.without_parts())
    # A (4 px) vs p1 (6 px, 2 on void): inter 4, union 4 + 6 - 2 (void) - 4 = 4 -> IoU 1
    # B (6 px) vs p2 (7 px): inter 6, union 6 + 7 - 6 = 7 -> IoU 6/7
    # sky (12 px) vs pred sky (11 px, all inside): IoU 11/12
    np.testing.assert_array_equal(pq.tp, [2, 0, 1])
    np.testing.assert_array_equal(pq.fp, [0, 0, 0])
    np.testing.assert_array_equal(pq.fn, [0, 0, 0])
    np.testing.assert_allclose(pq.iou, [1 + 6 / 7, 0, 11 / 12], rtol=0, atol=1e-12)
    res = panoptic_quality(pq, CLASSES.without_parts())
    assert res["per_class"]["PQ"][PERSON] == pytest.approx(13 / 14)  # (1 + 6/7) / (2 + 0 + 0)
    assert math.isnan(res["per_class"]["PQ"][CAR])  # no car anywhere: not counted
    assert res["PQ"] == pytest.approx((13 / 14 + 11 / 12) / 2) and res["n"] == 2
    assert res["PQ_th"] == pytest.approx(13 / 14) and res["PQ_st"] == pytest.approx(11 / 12)

    part = segment_stats(gt_sem, gt_inst, gt_part, pr_sem, pr_inst, pr_part, CLASSES)
    # (A, p1): evaluated = 24 px - 2 void = 22; pairs (gt, pred): (1,1) x1, (2,1) x1, (2,2) x2,
    #   (0,0) x 18. IoU_0 = 18/18, IoU_1 = 1/(1+2-1) = 1/2, IoU_2 = 2/(3+2-2) = 2/3 -> mIoU 13/18
    # (B, p2): evaluated = 24 - 2 void - 1 undefined part of B = 21; (1,1), (1,2), (2,2) x2,
    #   (2,255), (0,2) [p2's sky pixel], (0,0) x 15. IoU_0 = 15/(16+15-15) = 15/16,
    #   IoU_1 = 1/(2+1-1) = 1/2, IoU_2 = 2/(3+4-2) = 2/5, 255 dropped -> mIoU 49/80
    np.testing.assert_array_equal(part.tp, [2, 0, 1])
    np.testing.assert_allclose(part.iou, [13 / 18 + 49 / 80, 0, 11 / 12], rtol=0, atol=1e-12)
    res = panoptic_quality(part, CLASSES)
    assert res["per_class"]["PQ"][PERSON] == pytest.approx((13 / 18 + 49 / 80) / 2)
    assert res["per_class"]["SQ"][PERSON] == pytest.approx((13 / 18 + 49 / 80) / 2)
    assert res["PQ_parts"] == pytest.approx((13 / 18 + 49 / 80) / 2) and res["n_parts"] == 1
    # sky has no parts: its PartPQ is its PQ
    assert res["PQ_noparts"] == res["per_class"]["PQ"][SKY] == pytest.approx(11 / 12)
    assert res["PQ"] == pytest.approx(((13 / 18 + 49 / 80) / 2 + 11 / 12) / 2)


def test_void_and_crowd():
    gt_sem, gt_inst, _, pr_sem, pr_inst, _ = hand_case_crowd_void()
    s = segment_stats(gt_sem, gt_inst, None, pr_sem, pr_inst, None, CLASSES.without_parts())
    # person: pred 1 (cols 0-2) lies in crowd (3/3 > 0.5): not FP; pred 2 (cols 3-4) half crowd
    #   (1/2 <= 0.5): FP; the crowd region is no ground-truth segment: no FN.
    # car: pred 1 (cols 5-9, 2 px void) vs car a: inter 3, union 4 + 5 - 2 - 3 = 4 -> TP 3/4;
    #   pred 2 (cols 10-12, 2/3 void): unmatched (IoU with b: 1/(4+3-2-1) = 1/4) but not FP;
    #   pred 3 (cols 13-14) vs b: IoU 2/4 = 0.5, not > 0.5 -> FP; car b -> FN.
    np.testing.assert_array_equal(s.tp, [0, 1, 0])
    np.testing.assert_array_equal(s.fp, [1, 1, 0])
    np.testing.assert_array_equal(s.fn, [0, 1, 0])
    np.testing.assert_allclose(s.iou, [0, 0.75, 0])
    res = panoptic_quality(s, CLASSES.without_parts())
    pc = res["per_class"]
    # person: 0 / (0 + 0.5) = 0, SQ 0 without TP; car: 0.75 / (1 + 0.5 + 0.5) = 0.375
    assert (pc["PQ"][PERSON], pc["SQ"][PERSON], pc["RQ"][PERSON]) == (0.0, 0.0, 0.0)
    assert (pc["PQ"][CAR], pc["SQ"][CAR], pc["RQ"][CAR]) == pytest.approx((0.375, 0.75, 0.5))
    assert res["PQ"] == pytest.approx(0.1875) and res["n"] == 2
    assert math.isnan(res["PQ_st"]) and res["n_st"] == 0


def test_segments_without_part_labels_are_crowd_in_partpq():
    maps = hand_case_no_part_labels()
    pq = segment_stats(*maps[:2], None, *maps[3:5], None, CLASSES.without_parts())
    np.testing.assert_array_equal([pq.tp[0], pq.fp[0], pq.fn[0]], [2, 0, 0])  # two exact persons
    part = segment_stats(*maps, CLASSES)
    # person 1 has no part label -> crowd: its exact prediction lies in crowd (no FP), no FN.
    # Person 2: evaluated = 8 - 4 crowd = 4 px, (1,1) x2, (2,2) x2, no label 0 -> mIoU 1
    np.testing.assert_array_equal([part.tp[0], part.fp[0], part.fn[0]], [1, 0, 0])
    assert part.iou[0] == 1.0


def test_partpq_equals_pq_for_classes_without_parts():
    gt_sem, gt_inst, gt_part, pr_sem, pr_inst, pr_part = hand_case_1()
    gt_sem = np.where(gt_sem == 1, 5, gt_sem)  # the persons become cars (no parts)
    pr_sem = np.where(pr_sem == 1, 5, pr_sem)
    pq = segment_stats(gt_sem, gt_inst, gt_part, pr_sem, pr_inst, pr_part, CLASSES.without_parts())
    part = segment_stats(gt_sem, gt_inst, gt_part, pr_sem, pr_inst, pr_part, CLASSES)
    for field in ("tp", "fp", "fn", "iou"):
        np.testing.assert_array_equal(getattr(pq, field), getattr(part, field))
    assert part.iou[CAR] == pytest.approx(1 + 6 / 7)  # mask IoUs, as for PQ


def test_statistics_are_summed_over_images_before_the_ratio():
    perfect = segment_stats(
        _a([[1, 1]]), _a([[1, 1]]), None, _a([[1, 1]]), _a([[1, 1]]), None, CLASSES.without_parts()
    )
    missed = segment_stats(
        _a([[1, 1]]),
        _a([[1, 1]]),
        None,
        _a([[255, 255]]),
        _a([[0, 0]]),
        None,
        CLASSES.without_parts(),
    )
    total = perfect + missed
    np.testing.assert_array_equal([total.tp[0], total.fn[0]], [1, 1])
    # 1 / (1 + 0.5): not the mean of the per-image PQs (1 and 0)
    assert panoptic_quality(total, CLASSES)["per_class"]["PQ"][PERSON] == pytest.approx(2 / 3)
    empty = PanopticStats.zeros(3)
    res = panoptic_quality(empty, CLASSES)
    assert res["n"] == 0 and all(
        math.isnan(res[k]) for k in ("PQ", "SQ", "RQ", "PQ_parts", "PQ_noparts")
    )


def test_pred_scene_ids_outside_the_classes_are_no_prediction():
    gt = _a([[1, 1, 1, 1]])
    # scene id 7 is no evaluated class: like 255, no segment; the person matches on 3 of 4 pixels
    s = segment_stats(
        gt, gt, None, _a([[1, 1, 1, 7]]), _a([[1, 1, 1, 1]]), None, CLASSES.without_parts()
    )
    assert (s.tp[0], s.fp[0], s.fn[0], s.iou[0]) == (1, 0, 0, 0.75)


def test_bad_input_is_rejected():
    m = _a([[1, 1]])
    with pytest.raises(ValueError, match="one size"):
        segment_stats(m, m, None, _a([[1, 1, 1]]), m, None, CLASSES.without_parts())
    with pytest.raises(ValueError, match="gt_part has label 255"):
        segment_stats(m, m, m * 255, m, m, m, CLASSES)
    with pytest.raises(ValueError, match="pred_inst has negative"):
        segment_stats(m, m, None, m, -m, None, CLASSES.without_parts())
    with pytest.raises(ValueError, match="need gt_part and pred_part"):
        segment_stats(m, m, None, m, m, None, CLASSES)
    with pytest.raises(ValueError, match="integer map"):
        segment_stats(m, m, None, m.astype(float), m, None, CLASSES.without_parts())
    with pytest.raises(ValueError, match="unique and in 1..254"):
        SceneClasses(("a", "b"), (1, 1), (True, False), (False, False))
    with pytest.raises(ValueError, match="one of each per class"):
        SceneClasses(("a",), (1, 2), (True,), (False,))


# ----------------------------------------------------------------------------- against the package


def _random_case(rng, h=24, w=32):
    """Random ground truth (sky / wall(car-less stuff) halves, void speckle, person and car boxes,
    crowd boxes, persons without parts) and a perturbed prediction (shift, part noise, void parts,
    class noise, a spurious box)."""
    sem = np.where(np.arange(h)[:, None] < h // 2, 2, 3) * np.ones((1, w), dtype=np.int64)
    inst, part = np.zeros((h, w), np.int64), np.zeros((h, w), np.int64)
    sem[rng.random((h, w)) < 0.05] = 0
    count = {1: 0, 5: 0}
    for _ in range(rng.integers(1, 7)):
        c, y0, x0 = int(rng.choice([1, 5])), rng.integers(0, h - 4), rng.integers(0, w - 4)
        box = (slice(y0, y0 + rng.integers(3, 12)), slice(x0, x0 + rng.integers(3, 12)))
        sem[box] = c
        if rng.random() < 0.15:
            inst[box] = 0  # crowd
        else:
            count[c] += 1
            inst[box] = count[c]
        part[box] = (
            rng.integers(0, 5, size=part[box].shape) if c == 1 and rng.random() > 0.15 else 0
        )
    ps, pi, pp = sem.copy(), inst.copy(), part.copy()
    ps[ps == 0] = 255
    if rng.random() < 0.5:
        k = int(rng.integers(1, 3))
        ps, pi, pp = (np.roll(a, k, 1) for a in (ps, pi, pp))
    noise = rng.random((h, w)) < 0.1
    pp[noise] = rng.integers(0, 5, size=noise.sum())
    pp[rng.random((h, w)) < 0.03] = 255
    noise = rng.random((h, w)) < 0.05
    ps[noise], pi[noise] = (
        rng.choice([1, 2, 3, 5, 255], size=noise.sum()),
        rng.integers(0, 4, size=noise.sum()),
    )
    y0, x0 = rng.integers(0, h - 4), rng.integers(0, w - 4)
    ps[y0 : y0 + 4, x0 : x0 + 4], pi[y0 : y0 + 4, x0 : x0 + 4] = rng.choice([1, 5]), 9
    pp[ps != 1] = np.where(rng.random((ps != 1).sum()) < 0.5, 255, 0)
    pi[(ps == 2) | (ps == 3)] = 0
    return sem, inst, part, ps, pi, pp


def _structured_case(rng, h=120, w=160):
    """Larger scene: sky / wall / ground bands, up to 8 overlapping persons with 6 part bands (head
    ... legs), some without parts or crowd, cars; the prediction moves, grows or drops them and
    relabels parts near their borders."""
    sem = np.select(
        [np.arange(h)[:, None] < h // 3, np.arange(h)[:, None] < 2 * h // 3], [2, 3], 4
    ) * np.ones((1, w), int)
    inst, part = np.zeros((h, w), np.int64), np.zeros((h, w), np.int64)
    ps, pi, pp = np.full((h, w), 255), np.zeros((h, w), np.int64), np.full((h, w), 255)
    for c in (2, 3, 4):
        ps[sem == c] = c
    count = {1: 0, 5: 0}
    for _ in range(rng.integers(2, 9)):
        c = int(rng.choice([1, 1, 5]))
        bh, bw = rng.integers(10, 50), rng.integers(6, 30)
        y0, x0 = rng.integers(0, h - 10), rng.integers(0, w - 6)
        box = (slice(y0, y0 + bh), slice(x0, x0 + bw))
        crowd = rng.random() < 0.1
        count[c] += 0 if crowd else 1
        sem[box], inst[box] = c, 0 if crowd else count[c]
        rows = np.arange(sem[box].shape[0])[:, None] * np.ones((1, sem[box].shape[1]), int)
        bands = 1 + rows * 6 // max(sem[box].shape[0], 1)
        part[box] = bands if c == 1 and rng.random() > 0.1 else 0
        if rng.random() < 0.15:
            continue  # missed by the prediction
        dy, dx, grow = rng.integers(-3, 4), rng.integers(-3, 4), rng.integers(0, 4)
        pbox = (
            slice(max(y0 + dy, 0), y0 + dy + bh + grow),
            slice(max(x0 + dx, 0), x0 + dx + bw + grow),
        )
        ps[pbox], pi[pbox] = c, 1 + rng.integers(0, 200)
        if c == 1:
            prow = np.arange(ps[pbox].shape[0])[:, None] * np.ones((1, ps[pbox].shape[1]), int)
            labels = 1 + prow * 6 // max(ps[pbox].shape[0], 1)
            flip = rng.random(labels.shape) < 0.08
            labels[flip] = rng.integers(0, 7, size=flip.sum())
            pp[pbox] = labels
        else:
            pp[pbox] = 255
    sem[rng.random((h, w)) < 0.01] = 0
    return sem, inst, part, ps, pi, pp


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """The package's PartPQ spec and PQ spec (no class with parts) of CLASSES, and its per-image
    statistics function."""
    from bodyparts.evaluation.panoptic_parts_check import (
        load_eval_spec,
        panoptic_parts_stats,
        write_panoptic_parts_specs,
    )

    classes = SceneClasses(
        ("person", "car", "sky", "wall", "ground"),
        (1, 5, 2, 3, 4),
        (True, True, False, False, False),
        (True, False, False, False, False),
    )
    paths = write_panoptic_parts_specs(
        str(tmp_path_factory.mktemp("specs")), classes, [f"p{k}" for k in range(1, 7)]
    )
    return (
        classes,
        load_eval_spec(paths["eval_spec"]),
        load_eval_spec(paths["eval_spec_pq"]),
        panoptic_parts_stats,
    )


def _compare(package, maps):
    """Ours vs the package on one image, PartPQ and PQ; returns our PartPQ statistics."""
    from bodyparts.evaluation.panoptic_parts_check import encode_uids

    classes, spec, spec_pq, package_stats = package
    uids = encode_uids(*maps[:3], classes)
    out = []
    for cls, sp in ((classes, spec), (classes.without_parts(), spec_pq)):
        ours = segment_stats(*maps, cls)
        ref = package_stats(sp, uids, *maps[3:], cls)
        for field in ("tp", "fp", "fn"):
            np.testing.assert_array_equal(getattr(ours, field), getattr(ref, field), err_msg=field)
        np.testing.assert_allclose(ours.iou, ref.iou, rtol=0, atol=1e-9)
        out.append(ours)
    return out[0]


@needs_package
@pytest.mark.parametrize("case", HAND_CASES)
def test_hand_cases_match_the_package(package, case):
    _compare(package, case())


@needs_package
def test_random_cases_match_the_package(package):
    rng = np.random.default_rng(0)
    total = PanopticStats.zeros(5)
    for _ in range(300):
        total = total + _compare(package, _random_case(rng))
    # the cases exercise every branch: matched persons (part mIoU), FPs, FNs, cars, stuff
    assert (
        total.tp[0] > 50
        and total.fp[0] > 50
        and total.fn[0] > 20
        and total.tp[1] > 50
        and total.tp[2] > 50
    )


@needs_package
def test_structured_cases_and_averages_match_the_package(package):
    ref_module = pytest.importorskip("panoptic_parts.utils.evaluation_PartPQ")
    classes, spec, _, _ = package
    rng = np.random.default_rng(1)
    total = PanopticStats.zeros(5)
    for _ in range(25):
        total = total + _compare(package, _structured_case(rng))
    assert total.tp[0] > 20 and total.fp.sum() > 0 and total.fn.sum() > 0
    # averaging: the package's PQStat.pq_average on the same summed statistics
    stat = ref_module.PQStat()
    for cat_id, cat in enumerate(spec.cat_definition["cat_def"]):
        k = classes.scene_ids.index(cat["sem_cls"][0])
        stat[cat_id].iou, stat[cat_id].tp, stat[cat_id].fp, stat[cat_id].fn = (
            total.iou[k],
            total.tp[k],
            total.fp[k],
            total.fn[k],
        )
    (all_, parts, noparts), per_class = stat.pq_average(spec.cat_definition)
    ours = panoptic_quality(total, classes)
    for m in ("PQ", "SQ", "RQ"):
        assert ours[m] == pytest.approx(all_[f"Part{m}"], abs=1e-12)
        assert ours[f"{m}_parts"] == pytest.approx(parts[f"Part{m}_parts"], abs=1e-12)
        assert ours[f"{m}_noparts"] == pytest.approx(noparts[f"Part{m}_noparts"], abs=1e-12)
    assert (ours["n"], ours["n_parts"], ours["n_noparts"]) == (
        all_["n"],
        parts["n_p"],
        noparts["n_np"],
    )
    for cat_id, cat in enumerate(spec.cat_definition["cat_def"]):
        assert ours["per_class"]["PQ"][classes.scene_ids.index(cat["sem_cls"][0])] == pytest.approx(
            per_class[cat_id]["PartPQ"], abs=1e-12
        )
