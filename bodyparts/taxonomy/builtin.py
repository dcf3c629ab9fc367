"""The built-in part and keypoint taxonomies and their mappings, declared as data.

:func:`register_builtin_taxonomies` registers them through the public functions of
:mod:`bodyparts.taxonomy.core` (the ones a user calls for their own taxonomies); importing
:mod:`bodyparts.taxonomy` calls it once. Nothing here is modified after it is declared.

Label meanings, flip pairs and mappings of the real datasets are documented in
``datasets/README.md``.
"""

from typing import Dict, List, Mapping, Sequence, Tuple

from .core import (
    KeypointTaxonomy,
    PartTaxonomy,
    palette_colors,
    register_keypoint_mapping,
    register_keypoint_taxonomy,
    register_part_mapping,
    register_part_taxonomy,
)

__all__ = [
    "FINE_LR",
    "LR6",
    "PPP6",
    "PASCAL_PART24",
    "LAP14",
    "ADE_PERSON15",
    "JHMDB10",
    "MHP59",
    "CIHP20",
    "LIP20",
    "BUILTIN_PART_TAXONOMIES",
    "BUILTIN_PART_MAPPINGS",
    "BUILTIN_PART_UNMAPPED",
    "COCO_PERSON_KEYPOINTS",
    "JHMDB_KEYPOINTS",
    "MHP_KEYPOINTS",
    "BUILTIN_KEYPOINT_TAXONOMIES",
    "BUILTIN_KEYPOINT_MAPPINGS",
    "register_builtin_taxonomies",
]

# The tables are laid out by hand (several names per line, rows that belong together): no black.
# The native sets' colours are palette_colors(n, seed=n), register_part_taxonomy's default.
# fmt: off

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
    colors=(
        (220, 20, 60), (0, 128, 255), (255, 215, 0), (0, 200, 100), (148, 0, 211), (0, 191, 255),
    ),
    flip_pairs=(("left_arm", "right_arm"), ("left_leg", "right_leg")),
    description="head, torso, left arm, right arm, left leg, right leg (hands/feet in arms/legs)",
)

# Pascal-Person-Part's 6 parts (no left/right; hands in lower arms, feet in lower legs).
PPP6 = PartTaxonomy(
    name="ppp6",
    part_names=("head", "torso", "upper_arms", "lower_arms", "upper_legs", "lower_legs"),
    colors=(
        (220, 20, 60), (0, 128, 255), (255, 215, 0), (255, 140, 0), (148, 0, 211), (218, 112, 214),
    ),
    flip_pairs=(),
    description="Pascal-Person-Part: head, torso, upper/lower arms, upper/lower legs",
)


# ---- Native part sets of the real datasets (datasets/<name>.md). Part names are the datasets'
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
    colors=palette_colors(24, 24),
    flip_pairs=(
        ("leye", "reye"), ("lear", "rear"), ("lebrow", "rebrow"), ("llarm", "rlarm"),
        ("luarm", "ruarm"), ("lhand", "rhand"), ("llleg", "rlleg"), ("luleg", "ruleg"),
        ("lfoot", "rfoot"),
    ),
    description=(
        "PASCAL-Part person: 24 parts in part2ind.m order (face parts, hair, neck, L/R limbs)"
    ),
)

# ChaLearn LAP 2014 Track 1 limbs; label k = limb id k (getLimbsName).
LAP14 = PartTaxonomy(
    name="lap14",
    part_names=(
        "head", "torso", "lhand", "rhand", "lforearm", "rforearm", "larm", "rarm",
        "lfoot", "rfoot", "lleg", "rleg", "lthigh", "rthigh",
    ),
    colors=palette_colors(14, 14),
    flip_pairs=(
        ("lhand", "rhand"), ("lforearm", "rforearm"), ("larm", "rarm"), ("lfoot", "rfoot"),
        ("lleg", "rleg"), ("lthigh", "rthigh"),
    ),
    description=(
        "ChaLearn LAP 2014 Track 1: 14 limbs "
        "(larm = upper arm, lleg = lower leg, lthigh = upper leg)"
    ),
)

# ADE20K level-1 person parts (class names with '_' for ' '); no upper/lower split of limbs.
ADE_PERSON15 = PartTaxonomy(
    name="ade_person15",
    part_names=(
        "head", "torso", "neck", "back", "buttocks", "left_shoulder", "right_shoulder",
        "left_arm", "right_arm", "left_hand", "right_hand", "left_leg", "right_leg",
        "left_foot", "right_foot",
    ),
    colors=palette_colors(15, 15),
    flip_pairs=(
        ("left_shoulder", "right_shoulder"), ("left_arm", "right_arm"), ("left_hand", "right_hand"),
        ("left_leg", "right_leg"), ("left_foot", "right_foot"),
    ),
    description=(
        "ADE20K person parts (level 1): head, torso, neck, back, buttocks, "
        "L/R shoulder, arm, hand, leg, foot"
    ),
)

# J-HMDB puppet parts; label k = value k of puppet_flow.mat's part_mask (meanings 1 src, see
# datasets/README.md).
JHMDB10 = PartTaxonomy(
    name="jhmdb10",
    part_names=(
        "torso", "head", "right_upper_arm", "left_upper_arm", "right_upper_leg", "left_upper_leg",
        "right_lower_arm", "left_lower_arm", "right_lower_leg", "left_lower_leg",
    ),
    colors=palette_colors(10, 10),
    flip_pairs=(
        ("left_upper_arm", "right_upper_arm"), ("left_lower_arm", "right_lower_arm"),
        ("left_upper_leg", "right_upper_leg"), ("left_lower_leg", "right_lower_leg"),
    ),
    description="J-HMDB puppet: torso, head, L/R upper and lower arms and legs (no hands or feet)",
)

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
    colors=palette_colors(58, 58),
    flip_pairs=(
        ("left_arm", "right_arm"), ("left_hand", "right_hand"), ("left_boot", "right_boot"),
        ("left_shoe", "right_shoe"), ("left_highheel", "right_highheel"),
        ("left_sandal", "right_sandal"), ("left_leg", "right_leg"), ("left_foot", "right_foot"),
    ),
    description=(
        "MHP-v2: face, hair, skin of arms/hands/legs/feet/torso, clothes, shoes, accessories"
    ),
)

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
    colors=palette_colors(19, 19),
    flip_pairs=_CIHP_LIP_FLIPS,
    description="CIHP: hat, hair, face, sunglasses, clothes, torso skin, L/R arm, leg (skin), shoe",
)
LIP20 = PartTaxonomy(
    name="lip20",
    part_names=tuple("jumpsuits" if n == "torso_skin" else n for n in _CIHP_LIP_NAMES),
    colors=palette_colors(19, 19),
    flip_pairs=_CIHP_LIP_FLIPS,
    description="LIP: the CIHP labels with jumpsuits (label 10) instead of torso skin",
)

BUILTIN_PART_TAXONOMIES: Tuple[PartTaxonomy, ...] = (
    FINE_LR, LR6, PPP6, PASCAL_PART24, LAP14, ADE_PERSON15, JHMDB10, MHP59, CIHP20, LIP20,
)


def _lr(side_parts: Dict[str, Sequence[str]]) -> Dict[str, List[str]]:
    """Expand ``{"arm": ["upper_arm", ...]}`` to both sides:
    ``{"left_arm": ["left_upper_arm", ...], "right_arm": [...]}``."""
    out = {}
    for coarse, fines in side_parts.items():
        for side in ("left", "right"):
            out[f"{side}_{coarse}"] = [f"{side}_{f}" for f in fines]
    return out


_PASCAL_HEAD = ("head", "leye", "reye", "lear", "rear", "lebrow", "rebrow", "nose", "mouth", "hair")

# CIHP -> lr6: hat, hair, sunglasses and face are the head; torso skin the torso; the naked arms and
# legs, and the shoes (lr6 legs include the feet), their sides. The clothes, gloves, socks and scarf
# map nowhere. CIHP has no upper/lower limb split: fine_lr and ppp6 cannot be expressed. LIP has no
# torso label at all (the torso is under clothes, jumpsuits or a dress), so it expresses none of the
# shared taxonomies: train LIP in lip20.
_CIHP_TO_LR6 = {
    "head": ["hat", "hair", "sunglasses", "face"],
    "torso": ["torso_skin"],
    "left_arm": ["left_arm"], "right_arm": ["right_arm"],
    "left_leg": ["left_leg", "left_shoe"], "right_leg": ["right_leg", "right_shoe"],
}
_CIHP_UNMAPPED_IN_LR6 = (
    "glove", "upper_clothes", "dress", "coat", "socks", "pants", "scarf", "skirt",
)

# MHP-v2 -> lr6: head gear, hair, face and glasses are the head; torso skin and the two garments
# that lie on the torso alone (bikini/bra, singlet) the torso; the naked arms with the hands, the
# naked legs with the feet and the sided footwear (lr6 legs include the feet) their sides. Every
# other label maps nowhere: tops with sleeves, coats, dresses, full-body clothes and trousers cover
# several lr6 parts; socks, stockings, gloves, protectors, watches and wristbands have no side;
# scarf, tie, belt and the carried objects (bags, ball, bats, bottle, umbrella, ...) are no body
# part. MHP-v2 has no upper/lower limb split: fine_lr and ppp6 cannot be expressed.
_MHP_TO_LR6 = {
    "head": ["cap_hat", "helmet", "headwear", "hair", "face", "sunglasses", "eyewear"],
    "torso": ["torso_skin", "bikini_bra", "singlet"],
    "left_arm": ["left_arm", "left_hand"], "right_arm": ["right_arm", "right_hand"],
    "left_leg": ["left_leg", "left_foot", "left_shoe", "left_boot", "left_highheel", "left_sandal"],
    "right_leg": [
        "right_leg", "right_foot", "right_shoe", "right_boot", "right_highheel", "right_sandal",
    ],
}
_MHP_UNMAPPED_IN_LR6 = (
    "protector", "jacket_windbreaker_hoodie", "t_shirt", "polo_shirt", "sweater", "pants",
    "shorts_swim_shorts", "skirt", "stockings", "socks", "coat", "dress", "robe", "jumpsuit",
    "other_full_body_clothes", "backpack", "ball", "bats", "belt", "bottle", "carrybag", "cases",
    "glove", "scarf", "umbrella", "wallet_purse", "watch", "wristband", "tie", "other_accessary",
    "other_upper_body_clothes", "other_lower_body_clothes",
)

# (source taxonomy, target taxonomy) -> {target part: [source parts]} (register_part_mapping).
# A target part not listed takes the source part of the same name, if any; a target part with no
# source makes the target inexpressible for that source. Source parts not listed map to
# background, except those of BUILTIN_PART_UNMAPPED.
BUILTIN_PART_MAPPINGS: Mapping[Tuple[str, str], Mapping[str, Sequence[str]]] = {
    ("fine_lr", "lr6"): {
        "head": ["head"],
        "torso": ["torso"],
        **_lr(
            {"arm": ["upper_arm", "lower_arm", "hand"], "leg": ["upper_leg", "lower_leg", "foot"]}
        ),
    },
    ("fine_lr", "ppp6"): {
        "head": ["head"],
        "torso": ["torso"],
        "upper_arms": ["left_upper_arm", "right_upper_arm"],
        "lower_arms": ["left_lower_arm", "right_lower_arm", "left_hand", "right_hand"],
        "upper_legs": ["left_upper_leg", "right_upper_leg"],
        "lower_legs": ["left_lower_leg", "right_lower_leg", "left_foot", "right_foot"],
    },
    # PASCAL-Part: the face parts and hair lie inside the head; the neck goes to the torso
    # (Pascal-Panoptic-Parts' official grouping, datasets/pascal_part.md).
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
    ("cihp20", "lr6"): _CIHP_TO_LR6,
    # the same table for LIP, declared so that the start-up error names the one lr6 part it lacks
    ("lip20", "lr6"): {**_CIHP_TO_LR6, "torso": []},
    ("mhp59", "lr6"): _MHP_TO_LR6,
}

# (source taxonomy, target taxonomy) -> source parts with no counterpart in the target: labels that
# cover several target parts (a dress holds torso and legs, pants both legs, upper clothes the
# torso and the arms) or whose side is unknown (gloves, socks). mapping_lut sends their pixels to
# UNMAPPED_LABEL (= contract.PART_IGNORE, 255: no loss, not scored), never to background, so a
# person's clothes are not taught as background. A part may not be both mapped and listed here.
BUILTIN_PART_UNMAPPED: Mapping[Tuple[str, str], Tuple[str, ...]] = {
    ("cihp20", "lr6"): _CIHP_UNMAPPED_IN_LR6,
    ("lip20", "lr6"): _CIHP_UNMAPPED_IN_LR6 + ("jumpsuits",),
    ("mhp59", "lr6"): _MHP_UNMAPPED_IN_LR6,
}


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
        ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"),
        ("left_elbow", "right_elbow"), ("left_knee", "right_knee"),
        ("left_wrist", "right_wrist"), ("left_ankle", "right_ankle"),
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

BUILTIN_KEYPOINT_TAXONOMIES: Tuple[KeypointTaxonomy, ...] = (
    COCO_PERSON_KEYPOINTS, JHMDB_KEYPOINTS, MHP_KEYPOINTS,
)

# (source keypoint taxonomy, target keypoint taxonomy) -> {target keypoint: source keypoint}
# (register_keypoint_mapping). Target keypoints not listed take the source keypoint of the same
# name, if any; the others are unlabelled (visibility 0, no loss). J-HMDB's "face" is not mapped to
# COCO's nose: the point is named face/head/nose by different sources and COCO's nose sigma is the
# smallest of all. MHP-v2's pelvis, thorax, upper_neck and head_top have no COCO counterpart.
BUILTIN_KEYPOINT_MAPPINGS: Mapping[Tuple[str, str], Mapping[str, str]] = {
    ("jhmdb15", "coco17"): {},
    ("mhp16", "coco17"): {},
}

# fmt: on


def register_builtin_taxonomies() -> None:
    """Register the tables above (a no-op when they are registered already)."""
    for taxonomy in BUILTIN_PART_TAXONOMIES:
        register_part_taxonomy(taxonomy)
    for (source, target), table in BUILTIN_PART_MAPPINGS.items():
        register_part_mapping(
            source, target, table, unmapped=BUILTIN_PART_UNMAPPED.get((source, target), ())
        )
    for keypoints in BUILTIN_KEYPOINT_TAXONOMIES:
        register_keypoint_taxonomy(keypoints)
    for (source, target), table in BUILTIN_KEYPOINT_MAPPINGS.items():
        register_keypoint_mapping(source, target, table)
