"""Part and keypoint taxonomies: labels, flip tables, palettes, validation and mapping tables."""
import numpy as np
import pytest
from pycocotools.cocoeval import Params

from bodyparts.taxonomy import (
    COCO_PERSON_KEYPOINTS,
    FINE_LR,
    LR6,
    PART_MAPPINGS,
    PART_TAXONOMIES,
    PPP6,
    PartTaxonomy,
    TaxonomyError,
    can_express,
    get_keypoint_taxonomy,
    get_part_taxonomy,
    mapping_lut,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


# ---------------------------------------------------------------- PartTaxonomy


def test_labels_start_at_one_background_is_zero():
    assert FINE_LR.label_of("head") == 1
    assert FINE_LR.label_of("left_upper_arm") == 3
    assert FINE_LR.label_of("right_foot") == 14
    assert FINE_LR.num_parts == 14 and FINE_LR.num_classes == 15
    assert FINE_LR.label_names[0] == "background"
    assert FINE_LR.label_names[3] == "left_upper_arm"
    assert LR6.label_of("right_leg") == 6 and PPP6.label_of("lower_arms") == 4


def test_label_of_unknown_part_names_it():
    with pytest.raises(TaxonomyError, match=r"'lr6' has no part 'left_hand'"):
        LR6.label_of("left_hand")


def test_flip_lut_fine_lr():
    # background, head and torso stay; each left part swaps with the right part after it
    expected = [0, 1, 2, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13]
    lut = FINE_LR.flip_lut()
    assert lut.dtype == np.uint8 and lut.shape == (15,)
    assert lut.tolist() == expected
    assert (lut[lut] == np.arange(15)).all()  # an involution


def test_flip_lut_lr6_and_ppp6():
    assert LR6.flip_lut().tolist() == [0, 1, 2, 4, 3, 6, 5]
    assert PPP6.flip_lut().tolist() == list(range(7))  # no sides: identity


def test_palette():
    pal = FINE_LR.palette()
    assert pal.shape == (15, 3) and pal.dtype == np.uint8
    assert pal[0].tolist() == [0, 0, 0]
    assert pal[FINE_LR.label_of("left_upper_arm")].tolist() == [255, 215, 0]
    assert pal[1:].tolist() == [list(c) for c in FINE_LR.colors]


def test_small_custom_taxonomy():
    t = PartTaxonomy(
        "t3", ("body", "left_x", "right_x"), (RED, GREEN, BLUE), (("left_x", "right_x"),)
    )
    assert t.flip_lut().tolist() == [0, 1, 3, 2]
    assert t.palette().tolist() == [[0, 0, 0], list(RED), list(GREEN), list(BLUE)]


def test_duplicate_part_names_rejected():
    with pytest.raises(TaxonomyError, match="'dup': duplicate part names"):
        PartTaxonomy("dup", ("a", "b", "a"), (RED, GREEN, BLUE))


def test_flip_pair_with_unknown_part_rejected():
    with pytest.raises(TaxonomyError, match="flip pair names unknown part 'c'"):
        PartTaxonomy("bad", ("a", "b"), (RED, GREEN), (("a", "c"),))


def test_part_in_two_flip_pairs_rejected():
    with pytest.raises(TaxonomyError, match="part 'a' in two flip pairs"):
        PartTaxonomy("bad", ("a", "b", "c"), (RED, GREEN, BLUE), (("a", "b"), ("c", "a")))


def test_color_count_must_match_parts():
    with pytest.raises(TaxonomyError, match="'bad': 2 colors for 3 parts"):
        PartTaxonomy("bad", ("a", "b", "c"), (RED, GREEN))


def test_get_part_taxonomy():
    assert get_part_taxonomy("fine_lr") is FINE_LR
    assert sorted(PART_TAXONOMIES) == [
        "ade_person15", "cihp20", "fine_lr", "jhmdb10", "lap14", "lip20", "lr6", "mhp59",
        "pascal_part24", "ppp6",
    ]
    with pytest.raises(TaxonomyError, match=r"unknown part taxonomy 'atr18'.*'fine_lr'"):
        get_part_taxonomy("atr18")


# ---------------------------------------------------------------- mappings


def test_mapping_fine_lr_to_lr6_by_hand():
    # lr6: 1 head, 2 torso, 3 left_arm, 4 right_arm, 5 left_leg, 6 right_leg
    expected = [0, 1, 2, 3, 4, 3, 4, 3, 4, 5, 6, 5, 6, 5, 6]
    lut = mapping_lut("fine_lr", "lr6")
    assert lut.dtype == np.uint8 and lut.tolist() == expected
    assert lut[FINE_LR.label_of("left_hand")] == LR6.label_of("left_arm")
    assert lut[FINE_LR.label_of("right_foot")] == LR6.label_of("right_leg")


def test_mapping_fine_lr_to_ppp6_by_hand():
    # ppp6: 1 head, 2 torso, 3 upper_arms, 4 lower_arms, 5 upper_legs, 6 lower_legs
    expected = [0, 1, 2, 3, 3, 4, 4, 4, 4, 5, 5, 6, 6, 6, 6]
    lut = mapping_lut("fine_lr", "ppp6")
    assert lut.tolist() == expected
    lower_arms = PPP6.label_of("lower_arms")
    assert lut[FINE_LR.label_of("left_hand")] == lower_arms
    assert lut[FINE_LR.label_of("right_hand")] == lower_arms


@pytest.mark.parametrize("name", ["fine_lr", "lr6", "ppp6"])
def test_identity_mapping(name):
    n = get_part_taxonomy(name).num_classes
    assert mapping_lut(name, name).tolist() == list(range(n))
    assert can_express(name, name)


def test_unknown_mapping_names_dataset_and_missing_parts():
    with pytest.raises(TaxonomyError) as e:
        mapping_lut("lr6", "ppp6", dataset="my_lap_train")
    msg = str(e.value)
    assert "'my_lap_train'" in msg and "'lr6'" in msg and "'ppp6'" in msg
    for part in ("upper_arms", "lower_arms", "upper_legs", "lower_legs"):
        assert part in msg


def test_unknown_mapping_without_dataset():
    expected = r"^with part taxonomy 'ppp6' cannot express taxonomy 'lr6'"
    with pytest.raises(TaxonomyError, match=expected):
        mapping_lut("ppp6", "lr6")


def test_can_express():
    assert can_express("fine_lr", "lr6") and can_express("fine_lr", "ppp6")
    assert not can_express("lr6", "ppp6")
    assert not can_express("ppp6", "lr6")
    assert not can_express("lr6", "fine_lr")


@pytest.mark.parametrize("pair", sorted(PART_MAPPINGS))
def test_mapping_tables_well_formed(pair):
    src, dst = (get_part_taxonomy(n) for n in pair)
    table = PART_MAPPINGS[pair]
    assert sorted(table) == sorted(dst.part_names)  # every target part has an entry
    sources = [p for parts in table.values() for p in parts]
    assert len(sources) == len(set(sources))  # a source part maps to one target part
    assert set(sources) <= set(src.part_names)


# a table declared for an inexpressible pair (lip20 -> lr6: it names the missing parts) has no LUT
@pytest.mark.parametrize("pair", [p for p in sorted(PART_MAPPINGS) if can_express(*p)])
def test_mapping_commutes_with_flip(pair):
    """Mapping then flipping equals flipping then mapping (left parts map to left parts); unmapped
    parts (255) stay unmapped."""
    src, dst = (get_part_taxonomy(n) for n in pair)
    lut = mapping_lut(*pair)
    dst_flip = np.arange(256)
    dst_flip[: dst.num_classes] = dst.flip_lut()
    assert (lut[src.flip_lut()] == dst_flip[lut]).all()


# ---------------------------------------------------------------- keypoints


def test_keypoint_taxonomy():
    kp = get_keypoint_taxonomy("coco17")
    assert kp is COCO_PERSON_KEYPOINTS
    assert kp.num_keypoints == 17 and len(set(kp.names)) == 17
    assert kp.names[0] == "nose" and kp.names[9] == "left_wrist" and kp.names[10] == "right_wrist"


def test_keypoint_flip_map_symmetric_and_valid():
    kp = COCO_PERSON_KEYPOINTS
    flat = [n for pair in kp.flip_map for n in pair]
    assert len(flat) == len(set(flat)) == 16  # everything but the nose, each once
    for left, right in kp.flip_map:
        assert left.startswith("left_") and right == "right_" + left[len("left_"):]
        assert left in kp.names and right in kp.names
    assert "nose" not in flat


def test_keypoint_skeleton_names_valid():
    names = set(COCO_PERSON_KEYPOINTS.names)
    assert all(a in names and b in names for a, b in COCO_PERSON_KEYPOINTS.skeleton)
    rules = COCO_PERSON_KEYPOINTS.connection_rules()
    assert len(rules) == len(COCO_PERSON_KEYPOINTS.skeleton)
    assert rules[0] == ("left_ankle", "left_knee", (102, 204, 255))


def test_keypoint_sigmas_are_pycocotools():
    sigmas = COCO_PERSON_KEYPOINTS.oks_sigmas
    assert len(sigmas) == 17
    np.testing.assert_allclose(sigmas, Params(iouType="keypoints").kpt_oks_sigmas)


def test_unknown_keypoint_taxonomy():
    with pytest.raises(TaxonomyError, match="unknown keypoint taxonomy 'mpii16'"):
        get_keypoint_taxonomy("mpii16")


def test_same_name_parts_map_implicitly_and_missing_parts_are_exact():
    from bodyparts.taxonomy import TaxonomyError, can_express, mapping_lut

    # lr6 has head and torso, so only the arm/leg segments of ppp6 are missing
    with pytest.raises(TaxonomyError) as e:
        mapping_lut("lr6", "ppp6", dataset="some_set")
    msg = str(e.value)
    assert "some_set" in msg
    for part in ("upper_arms", "lower_arms", "upper_legs", "lower_legs"):
        assert part in msg
    assert "'head'" not in msg and "'torso'" not in msg
    assert not can_express("lr6", "ppp6")


@pytest.mark.parametrize(
    "source,expressible",
    [
        ("pascal_part24", {"fine_lr", "lr6", "ppp6"}),
        ("lap14", {"fine_lr", "lr6", "ppp6"}),
        ("ade_person15", {"lr6"}),
        ("jhmdb10", {"lr6", "ppp6"}),
        ("cihp20", {"lr6"}),  # no upper/lower limbs; clothes ignored
        ("lip20", set()),  # no torso label
        ("mhp59", {"lr6"}),  # no upper/lower limbs; clothes ignored
    ],
)
def test_native_taxonomies_express_the_shared_ones(source, expressible):
    from bodyparts.taxonomy import can_express

    assert {t for t in ("fine_lr", "lr6", "ppp6") if can_express(source, t)} == expressible


def test_native_mappings_on_known_labels():
    from bodyparts.taxonomy import mapping_lut

    pascal = get_part_taxonomy("pascal_part24")
    # part2ind order: 1 head ... 10 hair, 11 torso, 12 neck, 13 llarm, 14 luarm, 15 lhand
    assert pascal.part_names[:1] == ("head",) and pascal.label_of("neck") == 12 and pascal.label_of("rfoot") == 24
    lut = mapping_lut("pascal_part24", "ppp6")
    ppp = get_part_taxonomy("ppp6")
    assert lut[pascal.label_of("neck")] == ppp.label_of("torso")  # Pascal-Panoptic-Parts grouping
    assert lut[pascal.label_of("lhand")] == ppp.label_of("lower_arms")
    assert lut[pascal.label_of("rfoot")] == ppp.label_of("lower_legs")
    assert lut[pascal.label_of("hair")] == ppp.label_of("head")
    lr6 = get_part_taxonomy("lr6")
    ade = get_part_taxonomy("ade_person15")
    lut = mapping_lut("ade_person15", "lr6")
    assert lut[ade.label_of("right_shoulder")] == lr6.label_of("torso")
    assert lut[ade.label_of("left_hand")] == lr6.label_of("left_arm")
    assert lut[ade.label_of("right_foot")] == lr6.label_of("right_leg")
    lap = get_part_taxonomy("lap14")
    fine = get_part_taxonomy("fine_lr")
    lut = mapping_lut("lap14", "fine_lr")
    assert lut[lap.label_of("larm")] == fine.label_of("left_upper_arm")  # LAP "arm" = upper arm
    assert lut[lap.label_of("rleg")] == fine.label_of("right_lower_leg")  # LAP "leg" = lower leg
    assert lut[lap.label_of("lthigh")] == fine.label_of("left_upper_leg")


def test_unmapped_parts_become_the_ignore_label(monkeypatch):
    """PART_UNMAPPED: parts with no counterpart in the target map to 255 (the contract's ignore
    label), not to background; a part both mapped and unmapped is refused."""
    from bodyparts import taxonomy
    from bodyparts.data.contract import PART_IGNORE

    assert taxonomy.UNMAPPED_LABEL == PART_IGNORE == 255
    for (source, target), parts in taxonomy.PART_UNMAPPED.items():
        src = get_part_taxonomy(source)
        assert set(parts) <= set(src.part_names), (source, target)
        mapped = {p for ps in PART_MAPPINGS.get((source, target), {}).values() for p in ps}
        assert not set(parts) & mapped, (source, target)
        # every source part is either mapped or declared unmapped: nothing falls to background
        assert set(parts) | mapped == set(src.part_names), (source, target)
    lut = mapping_lut("cihp20", "lr6")
    cihp = get_part_taxonomy("cihp20")
    assert lut[cihp.label_of("pants")] == 255 and lut[cihp.label_of("dress")] == 255
    assert lut[cihp.label_of("face")] == LR6.label_of("head")
    assert lut[cihp.label_of("left_shoe")] == LR6.label_of("left_leg")
    monkeypatch.setitem(taxonomy.PART_UNMAPPED, ("cihp20", "lr6"), ("face",))
    with pytest.raises(TaxonomyError, match=r"cihp20->lr6: parts \['face'\] are both mapped and unmapped"):
        mapping_lut("cihp20", "lr6")


def test_native_flip_tables_swap_sides():
    for name in ("pascal_part24", "lap14", "ade_person15", "jhmdb10", "cihp20", "lip20", "mhp59"):
        tax = get_part_taxonomy(name)
        lut = tax.flip_lut()
        assert (lut[lut] == range(tax.num_classes)).all()  # an involution
        for a, b in tax.flip_pairs:
            assert lut[tax.label_of(a)] == tax.label_of(b)
    assert get_part_taxonomy("pascal_part24").flip_lut()[2] == 3  # leye <-> reye


def test_jhmdb_keypoints_map_to_coco_by_name():
    from bodyparts.taxonomy import keypoint_index_map

    jh = get_keypoint_taxonomy("jhmdb15")
    coco = get_keypoint_taxonomy("coco17")
    index = keypoint_index_map("jhmdb15", "coco17")
    assert (index >= 0).sum() == 12  # shoulders, elbows, wrists, hips, knees, ankles
    for k, name in enumerate(coco.names):
        assert index[k] == (jh.names.index(name) if name in jh.names else -1)
    assert (keypoint_index_map("coco17", "coco17") == range(17)).all()
    assert len(jh.oks_sigmas) == jh.num_keypoints == 15
