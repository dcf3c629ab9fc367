"""Part and keypoint taxonomies as data tables.

A *part taxonomy* is an ordered list of part names; label 0 is always background, part ``k`` of the
list has label ``k + 1``. Left/right symmetry is given by flip pairs of part names. Mapping a finer
taxonomy to a coarser one is declared in :data:`PART_MAPPINGS` as ``{coarse_part: [fine parts]}``;
:func:`mapping_lut` turns a declaration into a label look-up table and raises
:class:`TaxonomyError` at start-up when the target cannot be expressed.

Conventions: "left"/"right" are the person's own left and right (a person facing the camera has
their left arm on the image's right side), as in COCO keypoints.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = [
    "PartTaxonomy",
    "KeypointTaxonomy",
    "TaxonomyError",
    "PART_TAXONOMIES",
    "PART_MAPPINGS",
    "PART_UNMAPPED",
    "UNMAPPED_LABEL",
    "KEYPOINT_TAXONOMIES",
    "get_part_taxonomy",
    "get_keypoint_taxonomy",
    "mapping_lut",
    "can_express",
    "KEYPOINT_MAPPINGS",
    "keypoint_index_map",
]


class TaxonomyError(ValueError):
    """A taxonomy is unknown, malformed, or cannot be expressed by a dataset."""


@dataclass(frozen=True)
class PartTaxonomy:
    """An ordered set of body parts. Label 0 is background; ``part_names[k]`` has label ``k + 1``."""

    name: str
    part_names: Tuple[str, ...]
    colors: Tuple[Tuple[int, int, int], ...]  # RGB per part, same order as part_names
    flip_pairs: Tuple[Tuple[str, str], ...] = ()  # (left part, right part)
    description: str = ""

    def __post_init__(self):
        names = self.part_names
        if len(set(names)) != len(names):
            raise TaxonomyError(f"taxonomy {self.name!r}: duplicate part names in {names}")
        if len(self.colors) != len(names):
            raise TaxonomyError(
                f"taxonomy {self.name!r}: {len(self.colors)} colors for {len(names)} parts"
            )
        seen = set()
        for a, b in self.flip_pairs:
            for p in (a, b):
                if p not in names:
                    raise TaxonomyError(f"taxonomy {self.name!r}: flip pair names unknown part {p!r}")
                if p in seen:
                    raise TaxonomyError(f"taxonomy {self.name!r}: part {p!r} in two flip pairs")
                seen.add(p)

    @property
    def num_parts(self) -> int:
        """Number of parts, background excluded."""
        return len(self.part_names)

    @property
    def num_classes(self) -> int:
        """Number of labels including background (0)."""
        return len(self.part_names) + 1

    @property
    def label_names(self) -> List[str]:
        """Names of all labels, index = label: ``["background", *part_names]``."""
        return ["background", *self.part_names]

    def label_of(self, part_name: str) -> int:
        try:
            return self.part_names.index(part_name) + 1
        except ValueError:
            raise TaxonomyError(
                f"taxonomy {self.name!r} has no part {part_name!r}; parts: {list(self.part_names)}"
            ) from None

    def flip_lut(self) -> np.ndarray:
        """uint8 array (num_classes,): label -> label after a horizontal flip (left <-> right)."""
        lut = np.arange(self.num_classes, dtype=np.uint8)
        for a, b in self.flip_pairs:
            la, lb = self.label_of(a), self.label_of(b)
            lut[la], lut[lb] = lb, la
        return lut

    def palette(self) -> np.ndarray:
        """uint8 array (num_classes, 3) RGB, background black."""
        return np.array([(0, 0, 0), *self.colors], dtype=np.uint8)


@dataclass(frozen=True)
class KeypointTaxonomy:
    """Keypoint names, left/right flip map, skeleton and COCO OKS sigmas."""

    name: str
    names: Tuple[str, ...]
    flip_map: Tuple[Tuple[str, str], ...]
    skeleton: Tuple[Tuple[str, str], ...]  # pairs of names joined by a line in visualizations
    oks_sigmas: Tuple[float, ...] = field(default=())

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def connection_rules(self) -> List[Tuple[str, str, Tuple[int, int, int]]]:
        """Detectron2's ``keypoint_connection_rules`` metadata (name, name, RGB)."""
        return [(a, b, (102, 204, 255)) for a, b in self.skeleton]


_SKIN, _TORSO = (255, 178, 102), (0, 128, 255)

# Fine left/right set: the synthetic dataset's native taxonomy.
FINE_LR = PartTaxonomy(
    name="fine_lr",
    part_names=(
        "head",
        "torso",
        "left_upper_arm",
        "right_upper_arm",
        "left_lower_arm",
        "right_lower_arm",
        "left_hand",
        "right_hand",
        "left_upper_leg",
        "right_upper_leg",
        "left_lower_leg",
        "right_lower_leg",
        "left_foot",
        "right_foot",
    ),
    colors=(
        (220, 20, 60), (0, 128, 255), (255, 215, 0), (0, 200, 100), (255, 140, 0),
        (60, 179, 113), (255, 99, 71), (32, 178, 170), (148, 0, 211), (0, 191, 255),
        (218, 112, 214), (30, 144, 255), (199, 21, 133), (65, 105, 225),
    ),
    flip_pairs=(
        ("left_upper_arm", "right_upper_arm"),
        ("left_lower_arm", "right_lower_arm"),
        ("left_hand", "right_hand"),
        ("left_upper_leg", "right_upper_leg"),
        ("left_lower_leg", "right_lower_leg"),
        ("left_foot", "right_foot"),
    ),
    description="head, torso, left/right upper arm, lower arm, hand, upper leg, lower leg, foot",
)

# The 6-part left/right set that PASCAL-Part, LAP, ADE20K and J-HMDB can all express.
LR6 = PartTaxonomy(
    name="lr6",
    part_names=("head", "torso", "left_arm", "right_arm", "left_leg", "right_leg"),
    colors=((220, 20, 60), (0, 128, 255), (255, 215, 0), (0, 200, 100), (148, 0, 211), (0, 191, 255)),
    flip_pairs=(("left_arm", "right_arm"), ("left_leg", "right_leg")),
    description="head, torso, left arm, right arm, left leg, right leg (hands/feet in arms/legs)",
)

# Pascal-Person-Part's 6 parts (no left/right; hands in lower arms, feet in lower legs).
PPP6 = PartTaxonomy(
    name="ppp6",
    part_names=("head", "torso", "upper_arms", "lower_arms", "upper_legs", "lower_legs"),
    colors=((220, 20, 60), (0, 128, 255), (255, 215, 0), (255, 140, 0), (148, 0, 211), (218, 112, 214)),
    flip_pairs=(),
    description="Pascal-Person-Part: head, torso, upper/lower arms, upper/lower legs",
)


def _palette(n: int, seed: int) -> Tuple[Tuple[int, int, int], ...]:
    """``n`` distinct, reproducible RGB colours for a native taxonomy (visualisation only)."""
    rng = np.random.RandomState(seed)
    return tuple(tuple(int(c) for c in rng.randint(40, 256, size=3)) for _ in range(n))


# ---- Native part sets of the real datasets (../shared/DATASETS.md). Part names are the datasets'
# own where they are short ids; parts that mean the same thing as a fine_lr part take its name, so
# the implicit same-name mapping applies.

# PASCAL-Part person parts; label k = index k of the official part2ind.m (pimap{15}).
PASCAL_PART24 = PartTaxonomy(
    name="pascal_part24",
    part_names=(
        "head", "leye", "reye", "lear", "rear", "lebrow", "rebrow", "nose", "mouth", "hair",
        "torso", "neck", "llarm", "luarm", "lhand", "rlarm", "ruarm", "rhand",
        "llleg", "luleg", "lfoot", "rlleg", "ruleg", "rfoot",
    ),
    colors=_palette(24, 24),
    flip_pairs=(
        ("leye", "reye"), ("lear", "rear"), ("lebrow", "rebrow"), ("llarm", "rlarm"),
        ("luarm", "ruarm"), ("lhand", "rhand"), ("llleg", "rlleg"), ("luleg", "ruleg"),
        ("lfoot", "rfoot"),
    ),
    description="PASCAL-Part person: 24 parts in part2ind.m order (face parts, hair, neck, L/R limbs)",
)

# ChaLearn LAP 2014 Track 1 limbs; label k = limb id k (getLimbsName).
LAP14 = PartTaxonomy(
    name="lap14",
    part_names=(
        "head", "torso", "lhand", "rhand", "lforearm", "rforearm", "larm", "rarm",
        "lfoot", "rfoot", "lleg", "rleg", "lthigh", "rthigh",
    ),
    colors=_palette(14, 14),
    flip_pairs=(
        ("lhand", "rhand"), ("lforearm", "rforearm"), ("larm", "rarm"), ("lfoot", "rfoot"),
        ("lleg", "rleg"), ("lthigh", "rthigh"),
    ),
    description="ChaLearn LAP 2014 Track 1: 14 limbs (larm = upper arm, lleg = lower leg, lthigh = upper leg)",
)

# ADE20K level-1 person parts (class names with '_' for ' '); no upper/lower split of limbs.
ADE_PERSON15 = PartTaxonomy(
    name="ade_person15",
    part_names=(
        "head", "torso", "neck", "back", "buttocks", "left_shoulder", "right_shoulder",
        "left_arm", "right_arm", "left_hand", "right_hand", "left_leg", "right_leg",
        "left_foot", "right_foot",
    ),
    colors=_palette(15, 15),
    flip_pairs=(
        ("left_shoulder", "right_shoulder"), ("left_arm", "right_arm"), ("left_hand", "right_hand"),
        ("left_leg", "right_leg"), ("left_foot", "right_foot"),
    ),
    description="ADE20K person parts (level 1): head, torso, neck, back, buttocks, L/R shoulder, arm, hand, leg, foot",
)

# J-HMDB puppet parts; label k = value k of puppet_flow.mat's part_mask (meanings 1 src, see datasets/README.md).
JHMDB10 = PartTaxonomy(
    name="jhmdb10",
    part_names=(
        "torso", "head", "right_upper_arm", "left_upper_arm", "right_upper_leg", "left_upper_leg",
        "right_lower_arm", "left_lower_arm", "right_lower_leg", "left_lower_leg",
    ),
    colors=_palette(10, 10),
    flip_pairs=(
        ("left_upper_arm", "right_upper_arm"), ("left_lower_arm", "right_lower_arm"),
        ("left_upper_leg", "right_upper_leg"), ("left_lower_leg", "right_lower_leg"),
    ),
    description="J-HMDB puppet: torso, head, L/R upper and lower arms and legs (no hands or feet)",
)

PART_TAXONOMIES: Dict[str, PartTaxonomy] = {
    t.name: t for t in (FINE_LR, LR6, PPP6, PASCAL_PART24, LAP14, ADE_PERSON15, JHMDB10)
}

# MHP-v2 (LV-MHP-v2): 58 body parts, clothes and accessories; label k = value k in channel 0 of a
# parsing_annos PNG, in the order of the official README (checked against M2FP's
# register_mhpv2_parsing.py and a third loader; datasets/README.md). Names are the official ones
# in snake case ("/" and "-" -> "_"). The 8 flip pairs are the official (5,6) (7,8) (22,23) (24,25)
# (26,27) (28,29) (30,31) (32,33) (Parsing R-CNN's and M2FP's FLIP_MAP). Arms, hands, legs, feet
# and torso skin are the naked skin only (sleeves are in the tops, trousers in pants); the mapping
# into lr6 is declared below PART_UNMAPPED.
MHP59 = PartTaxonomy(
    name="mhp59",
    part_names=(
        "cap_hat", "helmet", "face", "hair", "left_arm", "right_arm", "left_hand", "right_hand",
        "protector", "bikini_bra", "jacket_windbreaker_hoodie", "t_shirt", "polo_shirt", "sweater",
        "singlet", "torso_skin", "pants", "shorts_swim_shorts", "skirt", "stockings", "socks",
        "left_boot", "right_boot", "left_shoe", "right_shoe", "left_highheel", "right_highheel",
        "left_sandal", "right_sandal", "left_leg", "right_leg", "left_foot", "right_foot", "coat",
        "dress", "robe", "jumpsuit", "other_full_body_clothes", "headwear", "backpack", "ball",
        "bats", "belt", "bottle", "carrybag", "cases", "sunglasses", "eyewear", "glove", "scarf",
        "umbrella", "wallet_purse", "watch", "wristband", "tie", "other_accessary",
        "other_upper_body_clothes", "other_lower_body_clothes",
    ),
    colors=_palette(58, 58),
    flip_pairs=(
        ("left_arm", "right_arm"), ("left_hand", "right_hand"), ("left_boot", "right_boot"),
        ("left_shoe", "right_shoe"), ("left_highheel", "right_highheel"),
        ("left_sandal", "right_sandal"), ("left_leg", "right_leg"), ("left_foot", "right_foot"),
    ),
    description="MHP-v2: face, hair, skin of arms/hands/legs/feet/torso, clothes, shoes, accessories",
)
PART_TAXONOMIES[MHP59.name] = MHP59

# CIHP (instance-level human parsing) and LIP (single person): 19 labels each, label k = value k of
# the Category_ids / *_segmentations PNGs, in the order of the official label lists (checked against
# M2FP's register_cihp_parsing.py / register_lip_semseg.py and Parsing R-CNN's FLIP_MAP;
# datasets/README.md). The two sets differ only in label 10: CIHP torso skin, LIP jumpsuits. Names
# are the official ones in snake case; arms and legs are the naked skin only (sleeves are in
# upper_clothes, trousers in pants), shoes are sided.
_CIHP_LIP_NAMES = (
    "hat", "hair", "glove", "sunglasses", "upper_clothes", "dress", "coat", "socks", "pants",
    "torso_skin", "scarf", "skirt", "face", "left_arm", "right_arm", "left_leg", "right_leg",
    "left_shoe", "right_shoe",
)
_CIHP_LIP_FLIPS = (
    ("left_arm", "right_arm"), ("left_leg", "right_leg"), ("left_shoe", "right_shoe"),
)
CIHP20 = PartTaxonomy(
    name="cihp20",
    part_names=_CIHP_LIP_NAMES,
    colors=_palette(19, 19),
    flip_pairs=_CIHP_LIP_FLIPS,
    description="CIHP: hat, hair, face, sunglasses, clothes, torso skin, L/R arm, leg (skin), shoe",
)
LIP20 = PartTaxonomy(
    name="lip20",
    part_names=tuple("jumpsuits" if n == "torso_skin" else n for n in _CIHP_LIP_NAMES),
    colors=_palette(19, 19),
    flip_pairs=_CIHP_LIP_FLIPS,
    description="LIP: the CIHP labels with jumpsuits (label 10) instead of torso skin",
)
PART_TAXONOMIES.update({CIHP20.name: CIHP20, LIP20.name: LIP20})


def _lr(side_parts: Dict[str, Sequence[str]]) -> Dict[str, List[str]]:
    """Expand ``{"arm": ["upper_arm", ...]}`` to both sides: ``{"left_arm": ["left_upper_arm"...]}``."""
    out = {}
    for coarse, fines in side_parts.items():
        for side in ("left", "right"):
            out[f"{side}_{coarse}"] = [f"{side}_{f}" for f in fines]
    return out


# (source taxonomy, target taxonomy) -> {target part: [source parts]}. A target part not listed
# takes the source part of the same name, if any; a target part with no source makes the target
# inexpressible for that source. Source parts not listed map to background.
PART_MAPPINGS: Dict[Tuple[str, str], Dict[str, List[str]]] = {
    ("fine_lr", "lr6"): {
        "head": ["head"],
        "torso": ["torso"],
        **_lr({"arm": ["upper_arm", "lower_arm", "hand"], "leg": ["upper_leg", "lower_leg", "foot"]}),
    },
    ("fine_lr", "ppp6"): {
        "head": ["head"],
        "torso": ["torso"],
        "upper_arms": ["left_upper_arm", "right_upper_arm"],
        "lower_arms": ["left_lower_arm", "right_lower_arm", "left_hand", "right_hand"],
        "upper_legs": ["left_upper_leg", "right_upper_leg"],
        "lower_legs": ["left_lower_leg", "right_lower_leg", "left_foot", "right_foot"],
    },
}


_PASCAL_HEAD = ["head", "leye", "reye", "lear", "rear", "lebrow", "rebrow", "nose", "mouth", "hair"]
PART_MAPPINGS.update(
    {
        # PASCAL-Part: the face parts and hair lie inside the head; the neck goes to the torso
        # (Pascal-Panoptic-Parts' official grouping, ../shared/DATASETS.md 1.6).
        ("pascal_part24", "fine_lr"): {
            "head": _PASCAL_HEAD,
            "torso": ["torso", "neck"],
            "left_upper_arm": ["luarm"], "right_upper_arm": ["ruarm"],
            "left_lower_arm": ["llarm"], "right_lower_arm": ["rlarm"],
            "left_hand": ["lhand"], "right_hand": ["rhand"],
            "left_upper_leg": ["luleg"], "right_upper_leg": ["ruleg"],
            "left_lower_leg": ["llleg"], "right_lower_leg": ["rlleg"],
            "left_foot": ["lfoot"], "right_foot": ["rfoot"],
        },
        ("pascal_part24", "lr6"): {
            "head": _PASCAL_HEAD,
            "torso": ["torso", "neck"],
            "left_arm": ["luarm", "llarm", "lhand"], "right_arm": ["ruarm", "rlarm", "rhand"],
            "left_leg": ["luleg", "llleg", "lfoot"], "right_leg": ["ruleg", "rlleg", "rfoot"],
        },
        ("pascal_part24", "ppp6"): {
            "head": _PASCAL_HEAD,
            "torso": ["torso", "neck"],
            "upper_arms": ["luarm", "ruarm"],
            "lower_arms": ["llarm", "rlarm", "lhand", "rhand"],
            "upper_legs": ["luleg", "ruleg"],
            "lower_legs": ["llleg", "rlleg", "lfoot", "rfoot"],
        },
        ("lap14", "fine_lr"): {
            "head": ["head"], "torso": ["torso"],
            "left_upper_arm": ["larm"], "right_upper_arm": ["rarm"],
            "left_lower_arm": ["lforearm"], "right_lower_arm": ["rforearm"],
            "left_hand": ["lhand"], "right_hand": ["rhand"],
            "left_upper_leg": ["lthigh"], "right_upper_leg": ["rthigh"],
            "left_lower_leg": ["lleg"], "right_lower_leg": ["rleg"],
            "left_foot": ["lfoot"], "right_foot": ["rfoot"],
        },
        ("lap14", "lr6"): {
            "head": ["head"], "torso": ["torso"],
            "left_arm": ["larm", "lforearm", "lhand"], "right_arm": ["rarm", "rforearm", "rhand"],
            "left_leg": ["lthigh", "lleg", "lfoot"], "right_leg": ["rthigh", "rleg", "rfoot"],
        },
        ("lap14", "ppp6"): {
            "head": ["head"], "torso": ["torso"],
            "upper_arms": ["larm", "rarm"],
            "lower_arms": ["lforearm", "rforearm", "lhand", "rhand"],
            "upper_legs": ["lthigh", "rthigh"],
            "lower_legs": ["lleg", "rleg", "lfoot", "rfoot"],
        },
        # ADE20K has no upper/lower split, so it cannot express fine_lr or ppp6 (start-up error).
        ("ade_person15", "lr6"): {
            "head": ["head"],
            "torso": ["torso", "neck", "back", "buttocks", "left_shoulder", "right_shoulder"],
            "left_arm": ["left_arm", "left_hand"], "right_arm": ["right_arm", "right_hand"],
            "left_leg": ["left_leg", "left_foot"], "right_leg": ["right_leg", "right_foot"],
        },
        # J-HMDB has no hands or feet, so it cannot express fine_lr (start-up error).
        ("jhmdb10", "lr6"): {
            "head": ["head"], "torso": ["torso"],
            **_lr({"arm": ["upper_arm", "lower_arm"], "leg": ["upper_leg", "lower_leg"]}),
        },
        ("jhmdb10", "ppp6"): {
            "head": ["head"], "torso": ["torso"],
            "upper_arms": ["left_upper_arm", "right_upper_arm"],
            "lower_arms": ["left_lower_arm", "right_lower_arm"],
            "upper_legs": ["left_upper_leg", "right_upper_leg"],
            "lower_legs": ["left_lower_leg", "right_lower_leg"],
        },
    }
)

# (source taxonomy, target taxonomy) -> source parts with no counterpart in the target: labels that
# cover several target parts (a dress holds torso and legs, pants both legs, upper clothes the
# torso and the arms) or whose side is unknown (gloves, socks). mapping_lut sends their pixels to
# UNMAPPED_LABEL (= contract.PART_IGNORE, 255: no loss, not scored), never to background, so a
# person's clothes are not taught as background. A part may not be both mapped and listed here.
PART_UNMAPPED: Dict[Tuple[str, str], Tuple[str, ...]] = {}
UNMAPPED_LABEL = 255

# CIHP -> lr6: hat, hair, sunglasses and face are the head; torso skin the torso; the naked arms and
# legs, and the shoes (lr6 legs include the feet), their sides. The clothes, gloves, socks and scarf
# map nowhere. CIHP has no upper/lower limb split: fine_lr and ppp6 cannot be expressed. LIP has no
# torso label at all (the torso is under clothes, jumpsuits or a dress), so it expresses none of the
# shared taxonomies: train LIP in lip20.
PART_MAPPINGS[("cihp20", "lr6")] = {
    "head": ["hat", "hair", "sunglasses", "face"],
    "torso": ["torso_skin"],
    "left_arm": ["left_arm"], "right_arm": ["right_arm"],
    "left_leg": ["left_leg", "left_shoe"], "right_leg": ["right_leg", "right_shoe"],
}
PART_UNMAPPED[("cihp20", "lr6")] = (
    "glove", "upper_clothes", "dress", "coat", "socks", "pants", "scarf", "skirt",
)
# The same table for LIP, declared so that the start-up error names the one lr6 part it lacks.
PART_MAPPINGS[("lip20", "lr6")] = {**PART_MAPPINGS[("cihp20", "lr6")], "torso": []}
PART_UNMAPPED[("lip20", "lr6")] = PART_UNMAPPED[("cihp20", "lr6")] + ("jumpsuits",)

# MHP-v2 -> lr6: head gear, hair, face and glasses are the head; torso skin and the two garments
# that lie on the torso alone (bikini/bra, singlet) the torso; the naked arms with the hands, the
# naked legs with the feet and the sided footwear (lr6 legs include the feet) their sides. Every
# other label maps nowhere: tops with sleeves, coats, dresses, full-body clothes and trousers cover
# several lr6 parts; socks, stockings, gloves, protectors, watches and wristbands have no side;
# scarf, tie, belt and the carried objects (bags, ball, bats, bottle, umbrella, ...) are no body
# part. MHP-v2 has no upper/lower limb split: fine_lr and ppp6 cannot be expressed.
PART_MAPPINGS[("mhp59", "lr6")] = {
    "head": ["cap_hat", "helmet", "headwear", "hair", "face", "sunglasses", "eyewear"],
    "torso": ["torso_skin", "bikini_bra", "singlet"],
    "left_arm": ["left_arm", "left_hand"], "right_arm": ["right_arm", "right_hand"],
    "left_leg": ["left_leg", "left_foot", "left_shoe", "left_boot", "left_highheel", "left_sandal"],
    "right_leg": [
        "right_leg", "right_foot", "right_shoe", "right_boot", "right_highheel", "right_sandal",
    ],
}
PART_UNMAPPED[("mhp59", "lr6")] = (
    "protector", "jacket_windbreaker_hoodie", "t_shirt", "polo_shirt", "sweater", "pants",
    "shorts_swim_shorts", "skirt", "stockings", "socks", "coat", "dress", "robe", "jumpsuit",
    "other_full_body_clothes", "backpack", "ball", "bats", "belt", "bottle", "carrybag", "cases",
    "glove", "scarf", "umbrella", "wallet_purse", "watch", "wristband", "tie", "other_accessary",
    "other_upper_body_clothes", "other_lower_body_clothes",
)


COCO_PERSON_KEYPOINTS = KeypointTaxonomy(
    name="coco17",
    names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    flip_map=(
        ("left_eye", "right_eye"), ("left_ear", "right_ear"), ("left_shoulder", "right_shoulder"),
        ("left_elbow", "right_elbow"), ("left_wrist", "right_wrist"), ("left_hip", "right_hip"),
        ("left_knee", "right_knee"), ("left_ankle", "right_ankle"),
    ),
    skeleton=(
        ("left_ankle", "left_knee"), ("left_knee", "left_hip"), ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"), ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
        ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"), ("left_eye", "right_eye"),
        ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
        ("right_eye", "right_ear"), ("left_ear", "left_shoulder"), ("right_ear", "right_shoulder"),
    ),
    # pycocotools' person keypoint sigmas
    oks_sigmas=(
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
        0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    ),
)

# J-HMDB puppet joints in pos_img order. Index 2 is named face/head/nose by different sources.
# OKS sigmas: COCO's for the joints COCO has; neck like the shoulders, belly like the hips, face
# like COCO's nose (a project choice: J-HMDB defines no OKS sigmas).
JHMDB_KEYPOINTS = KeypointTaxonomy(
    name="jhmdb15",
    names=(
        "neck", "belly", "face", "right_shoulder", "left_shoulder", "right_hip", "left_hip",
        "right_elbow", "left_elbow", "right_knee", "left_knee", "right_wrist", "left_wrist",
        "right_ankle", "left_ankle",
    ),
    flip_map=(
        ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"), ("left_elbow", "right_elbow"),
        ("left_knee", "right_knee"), ("left_wrist", "right_wrist"), ("left_ankle", "right_ankle"),
    ),
    skeleton=(
        ("face", "neck"), ("neck", "belly"), ("neck", "left_shoulder"), ("neck", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
        ("belly", "left_hip"), ("belly", "right_hip"), ("left_hip", "left_knee"),
        ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ),
    oks_sigmas=(
        0.079, 0.107, 0.026, 0.079, 0.079, 0.107, 0.107, 0.072, 0.072, 0.087, 0.087,
        0.062, 0.062, 0.089, 0.089,
    ),
)

KEYPOINT_TAXONOMIES: Dict[str, KeypointTaxonomy] = {
    t.name: t for t in (COCO_PERSON_KEYPOINTS, JHMDB_KEYPOINTS)
}

# (source keypoint taxonomy, target keypoint taxonomy) -> {target keypoint: source keypoint}.
# Target keypoints not listed take the source keypoint of the same name, if any; the others are
# unlabelled (visibility 0, no loss). J-HMDB's "face" is not mapped to COCO's nose: the point is
# named face/head/nose by different sources and COCO's nose sigma is the smallest of all.
KEYPOINT_MAPPINGS: Dict[Tuple[str, str], Dict[str, str]] = {
    ("jhmdb15", "coco17"): {},
}

# MHP-v2 pose_annos keypoints in file row order (rows 0..15 of each person_<k> array: the official
# annotation tool's order, MPII's; mmpose's MHP dataset and two loaders agree). OKS sigmas: COCO's
# for the 12 joints COCO has; pelvis like the hips, thorax, upper neck and head top like the
# shoulders (a project choice: MHP-v2 defines none). They map to COCO by name: 12 of 17.
MHP_KEYPOINTS = KeypointTaxonomy(
    name="mhp16",
    names=(
        "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "pelvis",
        "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow", "right_shoulder",
        "left_shoulder", "left_elbow", "left_wrist",
    ),
    flip_map=(
        ("left_ankle", "right_ankle"), ("left_knee", "right_knee"), ("left_hip", "right_hip"),
        ("left_wrist", "right_wrist"), ("left_elbow", "right_elbow"),
        ("left_shoulder", "right_shoulder"),
    ),
    skeleton=(
        ("right_ankle", "right_knee"), ("right_knee", "right_hip"), ("right_hip", "pelvis"),
        ("pelvis", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"),
        ("pelvis", "thorax"), ("thorax", "upper_neck"), ("upper_neck", "head_top"),
        ("upper_neck", "right_shoulder"), ("right_shoulder", "right_elbow"),
        ("right_elbow", "right_wrist"), ("upper_neck", "left_shoulder"),
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ),
    oks_sigmas=(
        0.089, 0.087, 0.107, 0.107, 0.087, 0.089, 0.107, 0.079, 0.079, 0.079, 0.062, 0.072,
        0.079, 0.079, 0.072, 0.062,
    ),
)
KEYPOINT_TAXONOMIES[MHP_KEYPOINTS.name] = MHP_KEYPOINTS
KEYPOINT_MAPPINGS[("mhp16", "coco17")] = {}  # by name; pelvis, thorax, upper_neck, head_top unmapped


def get_part_taxonomy(name: str) -> PartTaxonomy:
    if name not in PART_TAXONOMIES:
        raise TaxonomyError(f"unknown part taxonomy {name!r}; known: {sorted(PART_TAXONOMIES)}")
    return PART_TAXONOMIES[name]


def get_keypoint_taxonomy(name: str) -> KeypointTaxonomy:
    if name not in KEYPOINT_TAXONOMIES:
        raise TaxonomyError(f"unknown keypoint taxonomy {name!r}; known: {sorted(KEYPOINT_TAXONOMIES)}")
    return KEYPOINT_TAXONOMIES[name]


def _sources(source: str, target: str) -> Dict[str, List[str]]:
    """``{target part: [source parts]}``: the declared table, plus parts of the same name."""
    src, dst = get_part_taxonomy(source), get_part_taxonomy(target)
    table = dict(PART_MAPPINGS.get((source, target), {}))
    for part in dst.part_names:
        if not table.get(part) and part in src.part_names:
            table[part] = [part]
    return table


def _missing_parts(source: str, target: str) -> List[str]:
    table = _sources(source, target)
    return [p for p in get_part_taxonomy(target).part_names if not table.get(p)]


def can_express(source: str, target: str) -> bool:
    """Whether labels in taxonomy ``source`` can be mapped to every part of ``target``."""
    return not _missing_parts(source, target)


def mapping_lut(source: str, target: str, dataset: str = "") -> np.ndarray:
    """Label look-up table from ``source`` labels to ``target`` labels.

    Returns:
        uint8 array (num_classes of source,), ``lut[source_label] = target_label``; background and
        source parts that the mapping does not list map to 0, the parts of :data:`PART_UNMAPPED`
        to :data:`UNMAPPED_LABEL` (255, ignored). An ignore label 255 is kept as 255 by callers
        (index the LUT only with values < len(lut)).

    Raises:
        TaxonomyError: naming the dataset, both taxonomies and the target parts with no source.
    """
    src, dst = get_part_taxonomy(source), get_part_taxonomy(target)
    missing = _missing_parts(source, target)
    if missing:
        who = f"dataset {dataset!r} " if dataset else ""
        raise TaxonomyError(
            f"{who}with part taxonomy {source!r} cannot express taxonomy {target!r}: "
            f"no source parts for {missing}"
        )
    if source == target:
        return np.arange(src.num_classes, dtype=np.uint8)
    lut = np.zeros(src.num_classes, dtype=np.uint8)
    sources = _sources(source, target)
    for dst_part, src_parts in sources.items():
        for sp in src_parts:
            lut[src.label_of(sp)] = dst.label_of(dst_part)
    unmapped = PART_UNMAPPED.get((source, target), ())
    both = sorted(set(unmapped) & {p for parts in sources.values() for p in parts})
    if both:
        raise TaxonomyError(f"mapping {source}->{target}: parts {both} are both mapped and unmapped")
    for sp in unmapped:
        lut[src.label_of(sp)] = UNMAPPED_LABEL
    return lut


def keypoint_index_map(source: str, target: str) -> np.ndarray:
    """Where each ``target`` keypoint comes from in ``source``.

    Returns:
        int64 array (K_target,): index into the source keypoints, or -1 when the source has no
        such keypoint (it is then unlabelled: visibility 0, no loss).
    """
    src, dst = get_keypoint_taxonomy(source), get_keypoint_taxonomy(target)
    table = dict(KEYPOINT_MAPPINGS.get((source, target), {}))
    out = np.full(dst.num_keypoints, -1, dtype=np.int64)
    for k, name in enumerate(dst.names):
        src_name = table.get(name, name if name in src.names else None)
        if src_name is not None:
            if src_name not in src.names:
                raise TaxonomyError(f"keypoint mapping {source}->{target}: {source} has no keypoint {src_name!r}")
            out[k] = src.names.index(src_name)
    return out
