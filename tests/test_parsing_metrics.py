"""Pure parsing metrics against hand-computed values (the arithmetic is in the comments)."""

import math

import numpy as np
import pytest

from bodyparts.evaluation.parsing_metrics import (
    VOL_THRESHOLDS,
    PartCrop,
    ap_parsing,
    ap_region,
    ap_region_per_class,
    confusion_matrix,
    crop_label_areas,
    image_level_map,
    instance_iou_from_crops,
    instance_iou_matrix,
    instance_level_map,
    label_areas,
    nonzero_crop,
    parsing_true_positives,
    part_region_ious,
    paste_crops_with_owner,
    paste_order,
    paste_part_maps,
    paste_with_owner,
    pcp,
    semantic_metrics,
    voc_ap,
)

NAN = float("nan")


# --------------------------------------------------------------------------- semantic metrics


def test_confusion_and_metrics_two_classes():
    gt = np.array([[0, 0, 1], [1, 1, 255]])
    pred = np.array([[0, 1, 1], [0, 1, 0]])
    hist = confusion_matrix(gt, pred, 2)
    # pixels (gt, pred), 255 dropped: (0,0) (0,1) (1,1) (1,0) (1,1)
    np.testing.assert_array_equal(hist, [[1, 1], [1, 2]])
    m = semantic_metrics(hist)
    # rows (gt) 2, 3; cols (pred) 2, 3; total 5
    # IoU0 = 1 / (2 + 2 - 1) = 1/3; IoU1 = 2 / (3 + 3 - 2) = 1/2
    np.testing.assert_allclose(m["IoU"], [1 / 3, 1 / 2])
    assert m["mIoU"] == pytest.approx((1 / 3 + 1 / 2) / 2)  # 5/12
    assert m["pixel_acc"] == pytest.approx(3 / 5)
    assert m["mean_acc"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # 7/12
    assert m["fwIoU"] == pytest.approx(2 / 5 * 1 / 3 + 3 / 5 * 1 / 2)  # 13/30
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (row + col): 2/4, 4/6
    np.testing.assert_allclose(m["F1"], [1 / 2, 2 / 3])
    assert m["mean_F1"] == pytest.approx(7 / 12)


def test_confusion_and_metrics_three_classes():
    gt = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 2, 2, 2])
    hist = confusion_matrix(gt, pred, 3)
    np.testing.assert_array_equal(hist, [[1, 1, 0], [0, 1, 1], [0, 0, 2]])
    m = semantic_metrics(hist)
    # rows 2, 2, 2; cols 1, 2, 3
    # IoU = 1/(2+1-1), 1/(2+2-1), 2/(2+3-2) = 1/2, 1/3, 2/3
    np.testing.assert_allclose(m["IoU"], [1 / 2, 1 / 3, 2 / 3])
    assert m["mIoU"] == pytest.approx(1 / 2)  # (1/2 + 1/3 + 2/3) / 3
    assert m["pixel_acc"] == pytest.approx(4 / 6)
    assert m["mean_acc"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    assert m["fwIoU"] == pytest.approx(1 / 3 * (1 / 2 + 1 / 3 + 2 / 3))  # every row is 1/3
    # F1 = 2/(2+1), 2/(2+2), 4/(2+3)
    np.testing.assert_allclose(m["F1"], [2 / 3, 1 / 2, 4 / 5])
    assert m["mean_F1"] == pytest.approx((2 / 3 + 1 / 2 + 4 / 5) / 3)  # 59/90


def test_semantic_metrics_skip_absent_class():
    # class 2 is in neither map: IoU and F1 NaN, left out of every mean
    m = semantic_metrics(confusion_matrix(np.array([0, 0, 1]), np.array([0, 1, 1]), 3))
    # IoU0 = 1/(2+1-1), IoU1 = 1/(1+2-1)
    assert m["IoU"][:2] == pytest.approx([1 / 2, 1 / 2]) and math.isnan(m["IoU"][2])
    assert m["mIoU"] == pytest.approx(1 / 2)  # not (1/2 + 1/2 + 0) / 3
    assert m["mean_acc"] == pytest.approx((1 / 2 + 1) / 2)
    assert math.isnan(m["F1"][2]) and m["mean_F1"] == pytest.approx(2 / 3)  # F1 = 2/3, 2/3


def test_semantic_metrics_empty_hist():
    m = semantic_metrics(np.zeros((3, 3), dtype=np.int64))
    assert all(math.isnan(m[k]) for k in ("mIoU", "pixel_acc", "mean_acc", "fwIoU", "mean_F1"))


def test_confusion_rejects_prediction_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        confusion_matrix(np.array([0, 1]), np.array([0, 2]), 2)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(np.zeros((2, 2)), np.zeros((4,)), 2)


# --------------------------------------------------------------------------- per-instance IoU


def test_instance_iou_matrix_hand_computed():
    # 1 x 6 image, C = 3
    pred = np.array([[[0, 1, 1, 2, 0, 0]], [[0, 0, 0, 0, 1, 1]]], dtype=np.uint8)
    gt = np.array([[[0, 1, 2, 2, 0, 0]], [[0, 0, 0, 0, 1, 1]]], dtype=np.uint8)
    miou, iou = instance_iou_matrix(pred, gt, 3)
    assert miou.shape == (2, 2) and iou.shape == (2, 2, 3)
    # pred0 vs gt0: (0,0) x3, (1,1), (2,1), (2,2): rows 3, 1, 2; cols 3, 2, 1
    #   IoU = 3/3, 1/(1+2-1), 1/(2+1-1) -> mIoU 2/3
    np.testing.assert_allclose(iou[0, 0], [1, 1 / 2, 1 / 2])
    # pred0 vs gt1: (0,0), (0,1) x2, (0,2), (1,0) x2: rows 4, 2, 0; cols 3, 2, 1
    #   IoU0 = 1/(4+3-1) = 1/6, IoU1 = 0/4, IoU2 = 0/1 -> mIoU 1/18
    np.testing.assert_allclose(iou[0, 1], [1 / 6, 0, 0])
    # pred1 vs gt0: rows 3, 1, 2; cols 4, 2, 0; IoU0 = 1/(3+4-1) = 1/6 -> 1/18
    np.testing.assert_allclose(iou[1, 0], [1 / 6, 0, 0])
    # pred1 vs gt1: identical, class 2 absent from both: NaN, skipped (mIoU 1, not 2/3)
    assert iou[1, 1][:2] == pytest.approx([1, 1]) and math.isnan(iou[1, 1][2])
    np.testing.assert_allclose(miou, [[2 / 3, 1 / 18], [1 / 18, 1]])


def test_instance_iou_ignores_gt_pixels():
    # gt pixel 0 is ignored (255): the prediction there counts nowhere -> perfect match
    pred = np.array([[[1, 1, 2, 2, 0, 0]]], dtype=np.uint8)
    gt = np.array([[[255, 1, 2, 2, 0, 0]]], dtype=np.uint8)
    miou, iou = instance_iou_matrix(pred, gt, 3)
    np.testing.assert_allclose(iou[0, 0], [1, 1, 1])
    assert miou[0, 0] == pytest.approx(1.0)


def test_instance_iou_matrix_empty_sets():
    maps = np.zeros((2, 3, 4), dtype=np.uint8)
    miou, iou = instance_iou_matrix(maps[:0], maps, 5)
    assert miou.shape == (0, 2) and iou.shape == (0, 2, 5)
    miou, iou = instance_iou_matrix(maps, maps[:0], 5)
    assert miou.shape == (2, 0) and iou.shape == (2, 0, 5)


def _naive_instance_iou(pred, gt, num_classes):
    """Reference: one full-image confusion matrix per pair."""
    miou = np.zeros((len(pred), len(gt)))
    iou = np.zeros((len(pred), len(gt), num_classes))
    for p in range(len(pred)):
        for g in range(len(gt)):
            m = semantic_metrics(confusion_matrix(gt[g], pred[p], num_classes))
            miou[p, g], iou[p, g] = m["mIoU"], m["IoU"]
    return miou, iou


def _random_persons(rng, num, height, width, num_classes, with_ignore=False):
    maps = np.zeros((num, height, width), dtype=np.uint8)
    for k in range(num):
        y0, x0 = rng.integers(0, height - 4), rng.integers(0, width - 4)
        h, w = rng.integers(2, height // 2 + 2), rng.integers(2, width // 2 + 2)
        region = maps[k, y0 : y0 + h, x0 : x0 + w]
        region[...] = rng.integers(0, num_classes, size=region.shape)
        if with_ignore and k % 2:
            region[0, :] = 255
    return maps


def test_instance_iou_matrix_equals_naive_reference():
    rng = np.random.default_rng(0)
    for _ in range(25):
        height, width, c = rng.integers(8, 24), rng.integers(8, 24), int(rng.integers(2, 7))
        pred = _random_persons(rng, int(rng.integers(0, 5)), height, width, c)
        gt = _random_persons(rng, int(rng.integers(0, 5)), height, width, c, with_ignore=True)
        miou, iou = instance_iou_matrix(pred, gt, c)
        ref_miou, ref_iou = _naive_instance_iou(pred, gt, c)
        np.testing.assert_allclose(miou, ref_miou)
        np.testing.assert_allclose(iou, ref_iou)  # NaN at the same places


def test_iou_from_crops_and_crop_pasting_equal_the_full_maps():
    """Predictions given as crops (any rectangle holding their non-zero pixels, also one larger
    than needed, or None for an empty map) give exactly the full maps' IoUs, image-level labels and
    owners."""
    rng = np.random.default_rng(1)
    for _ in range(25):
        height, width, c = rng.integers(8, 24), rng.integers(8, 24), int(rng.integers(2, 7))
        pred = _random_persons(rng, int(rng.integers(0, 5)), height, width, c)
        gt = _random_persons(rng, int(rng.integers(0, 5)), height, width, c, with_ignore=True)
        crops = []
        for person in pred:
            crop = nonzero_crop(person)
            if crop is not None and rng.random() < 0.5:  # a larger rectangle: zeros around
                y0, x0 = max(crop.y0 - 1, 0), max(crop.x0 - 1, 0)
                crop = PartCrop(person[y0:, x0:], y0, x0)
            crops.append(crop)
        ref_miou, ref_iou = _naive_instance_iou(pred, gt, c)
        miou, iou = instance_iou_from_crops(crops, gt, c)
        np.testing.assert_array_equal(miou, ref_miou)
        np.testing.assert_array_equal(iou, ref_iou)
        order = rng.permutation(len(pred))
        labels, owner = paste_crops_with_owner(crops, order, (height, width))
        ref_labels, ref_owner = paste_with_owner(pred, order, (height, width))
        np.testing.assert_array_equal(labels, ref_labels)
        np.testing.assert_array_equal(owner, ref_owner)
    assert nonzero_crop(np.zeros((3, 4), np.uint8)) is None


@pytest.mark.parametrize("disjoint", [True, False])
def test_ground_truth_as_crops_equals_the_full_maps(disjoint):
    """Ground-truth persons given as crops (their non-zero rectangle, None for an empty map):
    exactly the full maps' IoUs, areas and part-region IoUs; one instance map (no two persons on
    one pixel, as CIHP's: one count per prediction) and overlapping persons (per pair)."""
    rng = np.random.default_rng(2)
    for _ in range(30):
        height, width, c = rng.integers(8, 24), rng.integers(8, 24), int(rng.integers(2, 7))
        pred = _random_persons(rng, int(rng.integers(0, 5)), height, width, c)
        gt = _random_persons(rng, int(rng.integers(0, 6)), height, width, c, with_ignore=True)
        if disjoint:
            for k in range(1, len(gt)):  # a later person in front of the earlier ones
                gt[:k][:, gt[k] > 0] = 0
        gt_crops = [nonzero_crop(g) for g in gt]
        crops = [nonzero_crop(p) for p in pred]
        size = (int(height), int(width))
        ref_miou, ref_iou = _naive_instance_iou(pred, gt, c)
        miou, iou = instance_iou_from_crops(crops, gt_crops, c, size)
        np.testing.assert_array_equal(miou, ref_miou)
        np.testing.assert_array_equal(iou, ref_iou)
        np.testing.assert_array_equal(crop_label_areas(gt_crops, c, size), label_areas(gt, c))
        labels, owner = paste_crops_with_owner(crops, None, size)
        ref = part_region_ious(labels, owner, gt, c)
        got = part_region_ious(labels, owner, gt_crops, c)
        for key in ("person", "cls", "area", "iou"):
            np.testing.assert_array_equal(got[key], ref[key])
    with pytest.raises(ValueError, match="need the image size"):
        instance_iou_from_crops([], [], 3)


def test_label_areas():
    maps = np.array([[[0, 1, 1, 255]], [[2, 2, 2, 0]]], dtype=np.uint8)
    np.testing.assert_array_equal(label_areas(maps, 3), [[1, 2, 0], [1, 0, 3]])


# --------------------------------------------------------------------------- VOC AP


def test_voc_ap_known_sequence():
    # ranked TP flags 1, 0, 1, 0 with 4 positives
    recall = np.array([1, 1, 2, 2]) / 4
    precision = np.array([1 / 1, 1 / 2, 2 / 3, 2 / 4])
    # envelope: 1, 2/3, 2/3, 1/2; recall steps 0 -> 1/4 at precision 1, 1/4 -> 1/2 at 2/3
    assert voc_ap(recall, precision) == pytest.approx(1 / 4 * 1 + 1 / 4 * 2 / 3)  # 5/12
    assert voc_ap(np.zeros(0), np.zeros(0)) == 0.0


# --------------------------------------------------------------------------- AP^p and PCP


def test_ap_parsing_strict_threshold():
    # one prediction with mIoU exactly 0.5 against the only ground truth
    ap = ap_parsing([0.9], [0.5], [0], num_gt=1, thresholds=[0.4, 0.5])
    assert ap[0.4] == pytest.approx(1.0)
    assert ap[0.5] == 0.0  # 0.5 > 0.5 is false: an FP


def test_ap_parsing_no_fallback():
    # A and B both have GT 0 as best; B also overlaps GT 1 (0.6) but only its best GT counts
    scores, best_iou, best_gt = [0.9, 0.8], [0.8, 0.7], [0, 0]
    ap = ap_parsing(scores, best_iou, best_gt, num_gt=2, thresholds=[0.5])
    # TP, FP: recall 1/2, 1/2; precision 1, 1/2 -> AP = 1/2 * 1 (a fallback would give 1.0)
    assert ap[0.5] == pytest.approx(0.5)
    order, tp = parsing_true_positives(scores, best_iou, best_gt, [0.5])
    np.testing.assert_array_equal(order, [0, 1])
    np.testing.assert_array_equal(tp, [[True, False]])


def test_ap_parsing_score_threshold_skips():
    # A (0.9) TP on GT 0, B (0.8) duplicate FP, C (0.05) TP on GT 1
    scores, best_iou, best_gt = [0.05, 0.9, 0.8], [0.9, 0.8, 0.7], [1, 0, 0]
    kept = ap_parsing(scores, best_iou, best_gt, 2, [0.5], score_threshold=0.0)
    # TP, FP, TP: recall 1/2, 1/2, 1; precision 1, 1/2, 2/3 -> 1/2 * 1 + 1/2 * 2/3 = 5/6
    assert kept[0.5] == pytest.approx(5 / 6)
    # C skipped entirely (not an FP, not a TP): TP, FP -> 1/2
    skipped = ap_parsing(scores, best_iou, best_gt, 2, [0.5], score_threshold=0.1)
    assert skipped[0.5] == pytest.approx(1 / 2)
    # a score equal to the threshold is kept
    at_threshold = ap_parsing(scores, best_iou, best_gt, 2, [0.5], score_threshold=0.05)
    assert at_threshold[0.5] == pytest.approx(5 / 6)


def test_ap_parsing_image_without_gt_and_empty():
    # D (0.95) lies in an image without ground truth (best_gt -1, mIoU NaN): an FP ranked first
    ap = ap_parsing([0.95, 0.9], [NAN, 0.8], [-1, 0], num_gt=1, thresholds=[0.5])
    # FP, TP: recall 0, 1; precision 0, 1/2 -> AP = 1 * 1/2
    assert ap[0.5] == pytest.approx(0.5)
    # ground truth but no prediction: 0; no ground truth at all: undefined (NaN)
    assert ap_parsing([], [], [], num_gt=2, thresholds=[0.5])[0.5] == 0.0
    assert math.isnan(ap_parsing([], [], [], num_gt=0, thresholds=[0.5])[0.5])
    assert math.isnan(ap_parsing([0.9], [NAN], [-1], num_gt=0, thresholds=[0.5])[0.5])


def test_ap_parsing_default_thresholds():
    ap = ap_parsing([0.9], [0.55], [0], num_gt=1)
    assert list(ap) == list(VOL_THRESHOLDS)
    # 0.55 > t for t = 0.1 .. 0.5 only
    assert [ap[t] for t in VOL_THRESHOLDS] == [1.0] * 5 + [0.0] * 4


def test_pcp_with_unmatched_gt():
    # C = 5. A: TP on GT 0; B: duplicate of GT 0 (FP); GT 1 never matched (counts 0)
    scores, best_iou, best_gt = [0.9, 0.8], [0.8, 0.7], [0, 0]
    part_ious = np.array([[1.0, 0.9, 0.5, 0.6, 0.0], [1.0, 1.0, 1.0, 1.0, NAN]])
    gt_present = np.array([[True, True, True, True, False], [True, True, True, True, False]])
    # A: present parts 1, 2, 3 (column 0 ignored); IoU > 0.5 for parts 1 (0.9) and 3 (0.6),
    #    not part 2 (0.5, strict) -> 2/3. PCP = (2/3 + 0) / 2 GT persons
    value = pcp(scores, best_iou, best_gt, part_ious, gt_present, num_gt=2, threshold=0.5)
    assert value == pytest.approx(1 / 3)
    # ranked first, B (parts 1, 2, 3 all IoU 1.0 > 0.5) is the TP: (3/3 + 0) / 2; A is then an FP
    value = pcp([0.7, 0.8], best_iou, best_gt, part_ious, gt_present, 2, 0.5)
    assert value == pytest.approx(1 / 2)
    # score threshold: B (0.8) skipped -> A is the TP (1/3); A (0.7) skipped -> B is (1/2); all: 0
    value = pcp(scores, best_iou, best_gt, part_ious, gt_present, 2, 0.5, score_threshold=0.85)
    assert value == pytest.approx(1 / 3)
    value = pcp([0.7, 0.8], best_iou, best_gt, part_ious, gt_present, 2, 0.5, score_threshold=0.75)
    assert value == pytest.approx(1 / 2)
    value = pcp(scores, best_iou, best_gt, part_ious, gt_present, 2, 0.5, score_threshold=0.95)
    assert value == 0.0
    assert math.isnan(pcp([], [], [], np.zeros((0, 5)), np.zeros((0, 5), bool), 0))


# --------------------------------------------------------------------------- AP^r


def test_ap_region_does_not_mark_gt():
    # C = 4. Class 1: 2 GT regions; regions P1 (0.9, IoU 0.7) and P2 (0.8, IoU 0.6) both overlap
    # the same GT region, P3 (0.7, IoU 0.2) none. Class 2: 1 GT region, no prediction.
    # Class 3: no GT region, one prediction (NaN class, skipped).
    classes = [1, 1, 1, 3]
    scores = [0.9, 0.8, 0.7, 0.5]
    ious = [0.7, 0.6, 0.2, 0.0]
    num_gt = [0, 2, 1, 0]
    per_class = ap_region_per_class(classes, scores, ious, num_gt, thresholds=[0.5, 0.65])
    # class 1 at 0.5: TP, TP, FP (both TPs: GT regions are not marked);
    #   recall 1/2, 1, 1; precision 1, 1, 2/3 -> 1/2 * 1 + 1/2 * 1 = 1 (marking would give 1/2)
    # class 1 at 0.65: TP, FP, FP -> recall 1/2 ... -> 1/2
    np.testing.assert_allclose(per_class[1], [1.0, 0.5])
    np.testing.assert_allclose(per_class[2], [0.0, 0.0])
    assert np.isnan(per_class[0]).all() and np.isnan(per_class[3]).all()
    ap = ap_region(classes, scores, ious, num_gt, thresholds=[0.5, 0.65])
    assert ap[0.5] == pytest.approx((1.0 + 0.0) / 2)
    assert ap[0.65] == pytest.approx((0.5 + 0.0) / 2)


def test_ap_region_quirk_recall_above_one():
    # the reference code's quirk in full: 2 predictions on the single GT region of class 1
    # recall 1, 2; precision 1, 1; VOC sum: (1 - 0) * 1 + (2 - 1) * 1 + (1 - 2) * 0 = 2
    per_class = ap_region_per_class([1, 1], [0.9, 0.8], [0.9, 0.8], [0, 1], thresholds=[0.5])
    assert per_class[1, 0] == pytest.approx(2.0)


def test_ap_region_score_threshold_and_empty():
    ap = ap_region([1, 1], [0.9, 0.3], [0.9, 0.0], [0, 1], thresholds=[0.5], score_threshold=0.5)
    assert ap[0.5] == pytest.approx(1.0)  # the 0.3 FP is skipped
    assert math.isnan(ap_region([], [], [], [0, 0, 0], thresholds=[0.5])[0.5])


# --------------------------------------------------------------------------- image-level map


def test_image_level_map_ascending_score():
    maps = np.array([[[1, 1, 1, 0]], [[0, 2, 2, 0]], [[0, 0, 3, 3]]], dtype=np.uint8)
    scores = [0.6, 0.9, 0.7]
    # pasted 0 (0.6), then 2 (0.7), then 1 (0.9); zeros never overwrite:
    # [1,1,1,0] -> [1,1,3,3] -> [1,2,2,3]
    np.testing.assert_array_equal(image_level_map(maps, scores, 0.5), [[1, 2, 2, 3]])
    # person 0 (0.6) dropped: [0,0,3,3] -> [0,2,2,3]
    np.testing.assert_array_equal(image_level_map(maps, scores, 0.65), [[0, 2, 2, 3]])
    # a score equal to the threshold is kept
    np.testing.assert_array_equal(image_level_map(maps, scores, 0.6), [[1, 2, 2, 3]])
    out = image_level_map(maps[:0], [], 0.5)
    assert out.shape == (1, 4) and out.dtype == np.uint8 and not out.any()


def test_paste_order_ties_and_threshold():
    # ascending score; the tie 0.7 / 0.7 keeps index order (index 3 pasted after 1, so it wins)
    np.testing.assert_array_equal(paste_order([0.9, 0.7, 0.2, 0.7], 0.5), [1, 3, 0])
    np.testing.assert_array_equal(paste_order([0.9, 0.7, 0.2, 0.7], 0.95), np.zeros(0))
    assert paste_order([], 0.0).dtype == np.int64


def test_paste_with_owner_and_ignore_label():
    maps = np.array([[[1, 255, 2, 0]], [[0, 3, 3, 0]]], dtype=np.uint8)
    labels, owner = paste_with_owner(maps)  # 0 then 1; 255 and 0 never pasted
    np.testing.assert_array_equal(labels, [[1, 3, 3, 0]])
    np.testing.assert_array_equal(owner, [[0, 1, 1, -1]])
    labels, owner = paste_with_owner(maps, [1, 0])  # 1 then 0: person 0's 2 overwrites a 3
    np.testing.assert_array_equal(labels, [[1, 3, 2, 0]])
    np.testing.assert_array_equal(owner, [[0, 1, 0, -1]])
    np.testing.assert_array_equal(paste_part_maps(maps, [1, 0]), labels)
    labels, owner = paste_with_owner(np.zeros((0, 2, 3), np.uint8))
    assert labels.shape == owner.shape == (2, 3)
    labels, owner = paste_with_owner(np.zeros((0, 0, 0), np.uint8), None, (2, 3))
    assert labels.shape == (2, 3) and (owner == -1).all()
    with pytest.raises(ValueError, match="must be"):
        paste_with_owner(np.zeros((2, 3), np.uint8))


def test_instance_level_map_is_image_level_map_with_owners():
    maps = np.array([[[1, 1, 1, 0]], [[0, 2, 2, 0]], [[0, 0, 3, 3]]], dtype=np.uint8)
    scores = [0.6, 0.9, 0.7]
    labels, owner = instance_level_map(maps, scores, 0.5)
    np.testing.assert_array_equal(labels, image_level_map(maps, scores, 0.5))
    np.testing.assert_array_equal(owner, [[0, 1, 1, 2]])
    labels, owner = instance_level_map(maps, scores, 0.65)
    np.testing.assert_array_equal(owner, [[-1, 1, 1, 2]])


def test_part_region_ious_hand_computed():
    # C = 4, a 2 x 4 image. Pasted map (labels / owners):
    #   [[1, 1, 2, 0],     [[0, 0, 0, -1],
    #    [3, 1, 2, 2]]      [2, 1, 1,  1]]
    # regions sorted by class then person: (1, p0) 2 px, (1, p1) 1 px, (2, p0) 1 px,
    # (2, p1) 2 px, (3, p2) 1 px.
    labels = np.array([[1, 1, 2, 0], [3, 1, 2, 2]])
    owner = np.array([[0, 0, 0, -1], [2, 1, 1, 1]])
    # GT g0: class 1 at (0,0),(0,1),(1,1) [3 px], class 2 at (0,2); g1: class 2 at (1,2),(1,3),
    # (0,3) [3 px], 255 at (1,0) (no region)
    gt = np.array([[[1, 1, 2, 0], [0, 1, 0, 0]], [[0, 0, 0, 2], [255, 0, 2, 2]]], dtype=np.uint8)
    r = part_region_ious(labels, owner, gt, 4)
    np.testing.assert_array_equal(r["cls"], [1, 1, 2, 2, 3])
    np.testing.assert_array_equal(r["person"], [0, 1, 0, 1, 2])
    np.testing.assert_array_equal(r["area"], [2, 1, 1, 2, 1])
    # (1, p0) vs g0 class 1: 2 / (2 + 3 - 2) = 2/3; (1, p1): 1 / 3; (2, p0) vs g0 class 2: 1/1 = 1;
    # (2, p1) vs g1 class 2: 2 / (2 + 3 - 2) = 2/3 (vs g0: 0); (3, p2): no GT of class 3 -> 0
    np.testing.assert_allclose(r["iou"], [2 / 3, 1 / 3, 1.0, 2 / 3, 0.0])
    none = part_region_ious(labels, owner, np.zeros((0, 2, 4), np.uint8), 4)
    np.testing.assert_array_equal(none["iou"], np.zeros(5))
    empty = part_region_ious(np.zeros((2, 4)), np.full((2, 4), -1), gt, 4)
    assert empty["cls"].size == 0 and empty["iou"].size == 0
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        part_region_ious(np.array([[5]]), np.array([[0]]), gt[:, :1, :1], 4)
