"""Part and keypoint taxonomies: labels, flip tables, palettes, validation, mapping tables and the
public registration functions."""

import contextlib

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


@contextlib.contextmanager
def _registered(*taxonomies):
    """Register part / keypoint taxonomies for the block; they (and their mappings) are removed
    after it, passed or failed, so that no other test sees them."""
    from bodyparts import taxonomy

    names = []
    try:
        for t in taxonomies:
            if isinstance(t, PartTaxonomy):
                taxonomy.register_part_taxonomy(t)
                names.append((taxonomy.unregister_part_taxonomy, t.name))
            else:
                taxonomy.register_keypoint_taxonomy(t)
                names.append((taxonomy.unregister_keypoint_taxonomy, t.name))
        yield
    finally:
        for remove, name in reversed(names):
            remove(name)


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
        "ade_person15",
        "cihp20",
        "fine_lr",
        "jhmdb10",
        "lap14",
        "lip20",
        "lr6",
        "mhp59",
        "pascal_part24",
        "ppp6",
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
        assert left.startswith("left_") and right == "right_" + left[len("left_") :]
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
    assert (
        pascal.part_names[:1] == ("head",)
        and pascal.label_of("neck") == 12
        and pascal.label_of("rfoot") == 24
    )
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


def test_unmapped_parts_become_the_ignore_label():
    """PART_UNMAPPED: parts with no counterpart in the target map to 255 (the contract's ignore
    label), not to background; a part both mapped and unmapped is refused (at registration)."""
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
    with pytest.raises(TypeError):  # read-only views: tables change only through register_*
        taxonomy.PART_UNMAPPED[("cihp20", "lr6")] = ("face",)
    with _registered(PartTaxonomy("cihp_copy", cihp.part_names, cihp.colors, cihp.flip_pairs)):
        table = dict(PART_MAPPINGS[("cihp20", "lr6")])
        with pytest.raises(
            TaxonomyError, match=r"cihp_copy->lr6: parts \['face'\] are both mapped and unmapped"
        ):
            taxonomy.register_part_mapping("cihp_copy", "lr6", table, unmapped=["face"])
        assert ("cihp_copy", "lr6") not in PART_MAPPINGS


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


# ---------------------------------------------------------------- registration (extension points)

from bodyparts.taxonomy import (  # noqa: E402
    KEYPOINT_MAPPINGS,
    KEYPOINT_TAXONOMIES,
    PART_UNMAPPED,
    KeypointTaxonomy,
    keypoint_index_map,
    palette_colors,
    part_taxonomy_names,
    register_keypoint_mapping,
    register_keypoint_taxonomy,
    register_part_mapping,
    register_part_taxonomy,
    unregister_keypoint_taxonomy,
    unregister_part_taxonomy,
)

ARMS4 = dict(
    part_names=["head", "body", "left_arm", "right_arm"],
    flip_pairs=[("left_arm", "right_arm")],
)
ARMS4_TO_LR6 = {
    "head": ["head"],
    "torso": ["body"],
    "left_arm": ["left_arm"],
    "right_arm": ["right_arm"],
}


@pytest.fixture
def arms4():
    """A user's taxonomy, registered for one test and removed after it."""
    tax = register_part_taxonomy("arms4", **ARMS4, description="head, body, arms")
    yield tax
    if "arms4" in PART_TAXONOMIES:
        unregister_part_taxonomy("arms4")


def test_register_part_taxonomy_by_fields(arms4):
    assert get_part_taxonomy("arms4") is arms4
    assert "arms4" in PART_TAXONOMIES and "arms4" in part_taxonomy_names()  # live views
    assert arms4.part_names == ("head", "body", "left_arm", "right_arm")  # lists stored as tuples
    assert arms4.colors == palette_colors(4, 4)  # default colours, reproducible
    assert arms4.flip_lut().tolist() == [0, 1, 2, 4, 3]
    unregister_part_taxonomy("arms4")
    assert "arms4" not in PART_TAXONOMIES
    with pytest.raises(
        TaxonomyError, match="unknown part taxonomy 'arms4'.*register_part_taxonomy"
    ):
        get_part_taxonomy("arms4")


def test_reregistering_the_same_content_is_a_no_op(arms4):
    again = register_part_taxonomy("arms4", **ARMS4, description="head, body, arms")
    assert again is arms4
    as_object = PartTaxonomy(
        "arms4",
        tuple(ARMS4["part_names"]),
        arms4.colors,
        (("left_arm", "right_arm"),),
        "head, body, arms",
    )
    assert register_part_taxonomy(as_object) is arms4
    assert register_part_taxonomy(FINE_LR) is FINE_LR  # the built-ins too
    assert part_taxonomy_names().count("arms4") == 1


def test_reregistering_a_different_content_names_the_taxonomy(arms4):
    with pytest.raises(
        TaxonomyError, match="part taxonomy 'arms4' is already registered with a different"
    ):
        register_part_taxonomy("arms4", ["head", "body", "left_arm", "right_arm", "tail"])
    with pytest.raises(TaxonomyError, match="part taxonomy 'lr6' is already registered"):
        register_part_taxonomy("lr6", ["head", "torso"])
    assert get_part_taxonomy("arms4") is arms4 and get_part_taxonomy("lr6") is LR6


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(flip_pairs=[("left_arm", "left_leg")]), "flip pair names unknown part 'left_leg'"),
        (dict(flip_pairs=[("left_arm", "left_arm")]), "pairs part 'left_arm' with itself"),
        (
            dict(flip_pairs=[("left_arm", "right_arm"), ("head", "left_arm")]),
            "part 'left_arm' in two flip pairs",
        ),
        (dict(flip_pairs=[("left_arm", "right_arm", "head")]), "must be a pair of names"),
        (dict(colors=[RED, GREEN, BLUE]), "3 colors for 4 parts"),
        (
            dict(colors=[RED, GREEN, BLUE, (0, 0, 256)]),
            r"colour \(0, 0, 256\) is not an RGB triple",
        ),
    ],
)
def test_malformed_taxonomies_are_refused_with_the_reason(fields, message):
    with pytest.raises(TaxonomyError, match=message):
        register_part_taxonomy("bad4", ["head", "body", "left_arm", "right_arm"], **fields)
    assert "bad4" not in PART_TAXONOMIES


def test_malformed_part_names_are_refused():
    with pytest.raises(TaxonomyError, match="duplicate part names"):
        register_part_taxonomy("bad", ["a", "b", "a"])
    with pytest.raises(TaxonomyError, match="'background' is label 0"):
        register_part_taxonomy("bad", ["background", "body"])
    with pytest.raises(TaxonomyError, match="must be a sequence of names, got the string 'head'"):
        register_part_taxonomy("bad", "head")
    with pytest.raises(TaxonomyError, match="255 parts; give 1 to 254"):
        register_part_taxonomy("bad", [f"p{k}" for k in range(255)])
    with pytest.raises(TypeError, match="part_names is required"):
        register_part_taxonomy("bad")
    with pytest.raises(TypeError, match="not both"):
        register_part_taxonomy(LR6, ["head"])
    assert "bad" not in PART_TAXONOMIES


def test_register_with_mappings_gives_exact_luts(arms4):
    unregister_part_taxonomy("arms4")
    register_part_taxonomy(
        "arms4", **ARMS4, description="head, body, arms", mappings={"lr6": ARMS4_TO_LR6}
    )
    assert not can_express("arms4", "lr6")  # declared, but arms4 has no legs
    with pytest.raises(
        TaxonomyError,
        match=r"'arms4' cannot express taxonomy 'lr6': "
        r"no source parts for \['left_leg', 'right_leg'\]",
    ):
        mapping_lut("arms4", "lr6")
    assert dict(PART_MAPPINGS[("arms4", "lr6")]) == {k: tuple(v) for k, v in ARMS4_TO_LR6.items()}
    # a mapping *into* the new taxonomy: fine_lr data (the synthetic set) can train an arms4 model
    table = {
        "body": [
            "torso",
            "left_upper_leg",
            "right_upper_leg",
            "left_lower_leg",
            "right_lower_leg",
            "left_foot",
            "right_foot",
        ],
        "left_arm": ["left_upper_arm", "left_lower_arm", "left_hand"],
        "right_arm": ["right_upper_arm", "right_lower_arm", "right_hand"],
    }
    register_part_mapping("fine_lr", "arms4", table)  # head: by name
    assert can_express("fine_lr", "arms4")
    # fine_lr: head, torso, L/R upper arm, lower arm, hand, upper leg, lower leg, foot
    assert mapping_lut("fine_lr", "arms4").tolist() == [0, 1, 2, 3, 4, 3, 4, 3, 4, 2, 2, 2, 2, 2, 2]
    register_part_mapping("fine_lr", "arms4", table)  # again: a no-op
    with pytest.raises(TaxonomyError, match="part mapping 'fine_lr->arms4' is already registered"):
        register_part_mapping("fine_lr", "arms4", {**table, "body": ["torso"]})
    unregister_part_taxonomy("arms4")  # its mappings go with it
    assert not [pair for pair in PART_MAPPINGS if "arms4" in pair]


def test_register_with_unmapped_parts():
    try:
        register_part_taxonomy(
            "coat5",
            ["head", "coat", "body", "left_arm", "right_arm", "left_leg", "right_leg"],
            flip_pairs=[("left_arm", "right_arm"), ("left_leg", "right_leg")],
            mappings={"lr6": {"torso": ["body"]}},
            unmapped={"lr6": ["coat"]},
        )
        assert PART_UNMAPPED[("coat5", "lr6")] == ("coat",)
        assert mapping_lut("coat5", "lr6").tolist() == [0, 1, 255, 2, 3, 4, 5, 6]
    finally:
        unregister_part_taxonomy("coat5")
    assert ("coat5", "lr6") not in PART_UNMAPPED


@pytest.mark.parametrize(
    "target,table,unmapped,message",
    [
        ("lr6", {"left_hand": ["left_arm"]}, (), "'lr6' has no part 'left_hand'"),
        ("lr6", {"torso": ["belly"]}, (), "'arms4' has no part 'belly'"),
        (
            "lr6",
            {"torso": ["body"], "head": ["head", "body"]},
            (),
            "source part 'body' is mapped to both 'torso' and 'head'",
        ),
        ("lr6", {"torso": "body"}, (), "must be a sequence of names, got the string 'body'"),
        (
            "ppp6",
            {"torso": ["body"], "upper_arms": ["left_arm"], "lower_arms": ["right_arm"]},
            (),
            "arms4->ppp6: does not commute with a horizontal flip: 'left_arm' -> 'upper_arms' "
            "but its mirror 'right_arm' -> 'lower_arms'",
        ),
        (
            "ppp6",
            {"torso": ["body"], "upper_arms": ["right_arm"]},
            ["left_arm"],
            "does not commute with a horizontal flip: 'left_arm' -> unmapped",
        ),
        ("lr6", {"torso": ["body"]}, ["tail"], "'arms4' has no part 'tail'"),
        (
            "lr6",
            {"torso": ["body"]},
            ["head"],
            r"parts \['head'\] are both mapped and unmapped",
        ),  # by name
        (
            "lr6",
            {"torso": ["body"], "head": ["left_arm"]},
            (),
            "mapped explicitly .* and also, by name",
        ),
        (
            "lr6",
            {"torso": ["body"], "left_arm": ["left_arm", "right_arm"], "right_arm": []},
            (),
            r"source parts \['right_arm'\] are mapped explicitly",
        ),
    ],
)
def test_bad_mappings_are_refused_and_nothing_is_registered(
    arms4, target, table, unmapped, message
):
    with pytest.raises(TaxonomyError, match=message):
        register_part_mapping("arms4", target, table, unmapped=unmapped)
    assert ("arms4", target) not in PART_MAPPINGS


def test_failed_registration_registers_nothing():
    with pytest.raises(TaxonomyError, match="unknown part taxonomy 'lr7'"):
        register_part_taxonomy("arms4", **ARMS4, mappings={"lr6": ARMS4_TO_LR6, "lr7": {}})
    with pytest.raises(TaxonomyError, match="arms4->lr6: .* no part 'lefty'"):
        register_part_taxonomy("arms4", **ARMS4, mappings={"lr6": {"torso": ["lefty"]}})
    assert "arms4" not in PART_TAXONOMIES and ("arms4", "lr6") not in PART_MAPPINGS
    with pytest.raises(TaxonomyError, match="maps to itself by identity"):
        register_part_mapping("lr6", "lr6", {})
    with pytest.raises(KeyError, match="'arms4' is not registered"):
        unregister_part_taxonomy("arms4")


def test_builtin_mappings_pass_the_registration_checks():
    """Every built-in table is registered through register_part_mapping: re-registering each is
    a no-op (the same content), so the checks a user's table gets hold for them too."""
    for (source, target), table in list(PART_MAPPINGS.items()):
        register_part_mapping(
            source, target, table, unmapped=PART_UNMAPPED.get((source, target), ())
        )


MINI_KP = dict(
    names=["nose", "left_hand", "right_hand"],
    flip_map=[("left_hand", "right_hand")],
    skeleton=[("nose", "left_hand"), ("nose", "right_hand")],
    oks_sigmas=[0.026, 0.062, 0.062],
)


def test_register_keypoint_taxonomy_and_mapping():
    try:
        kp = register_keypoint_taxonomy(
            "mini3",
            **MINI_KP,
            mappings={"coco17": {"left_wrist": "left_hand", "right_wrist": "right_hand"}},
        )
        assert get_keypoint_taxonomy("mini3") is kp and "mini3" in KEYPOINT_TAXONOMIES
        assert register_keypoint_taxonomy("mini3", **MINI_KP) is kp  # the same: a no-op
        assert kp.flip_indices().tolist() == [0, 2, 1]
        assert kp.connection_rules()[0] == ("nose", "left_hand", (102, 204, 255))
        coco = COCO_PERSON_KEYPOINTS
        index = keypoint_index_map("mini3", "coco17")
        assert index[coco.names.index("nose")] == 0  # by name
        assert index[coco.names.index("right_wrist")] == 2
        assert (index >= 0).sum() == 3
        register_keypoint_mapping(
            "coco17", "mini3", {"left_hand": "left_wrist", "right_hand": "right_wrist"}
        )
        assert keypoint_index_map("coco17", "mini3").tolist() == [0, 9, 10]
        with pytest.raises(
            TaxonomyError, match="keypoint mapping 'coco17->mini3' is already registered"
        ):
            register_keypoint_mapping(
                "coco17", "mini3", {"left_hand": "left_elbow", "right_hand": "right_elbow"}
            )
        with pytest.raises(TaxonomyError, match="keypoint taxonomy 'mini3' is already registered"):
            register_keypoint_taxonomy("mini3", **{**MINI_KP, "oks_sigmas": [0.1, 0.1, 0.1]})
    finally:
        unregister_keypoint_taxonomy("mini3")
    assert "mini3" not in KEYPOINT_TAXONOMIES
    assert not [pair for pair in KEYPOINT_MAPPINGS if "mini3" in pair]


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(oks_sigmas=None), "give oks_sigmas, one per keypoint"),
        (dict(oks_sigmas=[0.1, 0.1]), "one positive number per keypoint"),
        (dict(oks_sigmas=[0.1, 0.0, 0.1]), "one positive number per keypoint"),
        (
            dict(flip_map=[("left_hand", "left_foot")]),
            "flip pair names unknown keypoint 'left_foot'",
        ),
        (dict(skeleton=[("nose", "tail")]), "skeleton edge .* unknown keypoint 'tail'"),
        (dict(names=["nose", "nose", "left_hand", "right_hand"]), "unique"),
    ],
)
def test_malformed_keypoint_taxonomies_are_refused(fields, message):
    with pytest.raises(TaxonomyError, match=message):
        register_keypoint_taxonomy("bad_kp", **{**MINI_KP, **fields})
    assert "bad_kp" not in KEYPOINT_TAXONOMIES


def test_keypoint_mapping_must_commute_with_flip():
    with _registered(KeypointTaxonomy("mini3", **MINI_KP)):
        with pytest.raises(TaxonomyError, match="mini3->coco17: does not commute"):
            register_keypoint_mapping("mini3", "coco17", {"left_wrist": "left_hand"})  # right: none
        with pytest.raises(TaxonomyError, match="'coco17' has no keypoint 'left_paw'"):
            register_keypoint_mapping("mini3", "coco17", {"left_paw": "left_hand"})
        assert ("mini3", "coco17") not in KEYPOINT_MAPPINGS
