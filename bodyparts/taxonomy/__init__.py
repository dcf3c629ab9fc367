"""Part and keypoint taxonomies: names, colours, left/right flip pairs, skeletons, mappings.

The mechanism (types, registry, look-ups, mapping tables) is in :mod:`bodyparts.taxonomy.core`;
the built-in tables are in :mod:`bodyparts.taxonomy.builtin` and are registered here, on import,
through the same public functions a user calls to add their own (``docs/custom_datasets.md``)::

    from bodyparts.taxonomy import register_part_taxonomy

    register_part_taxonomy(
        "arms4", ["head", "body", "left_arm", "right_arm"], flip_pairs=[("left_arm", "right_arm")]
    )
"""

from .builtin import (  # noqa: F401
    ADE_PERSON15,
    CIHP20,
    COCO_PERSON_KEYPOINTS,
    FINE_LR,
    JHMDB10,
    JHMDB_KEYPOINTS,
    LAP14,
    LIP20,
    LR6,
    MHP59,
    MHP_KEYPOINTS,
    PASCAL_PART24,
    PPP6,
    register_builtin_taxonomies,
)
from .core import (  # noqa: F401
    KEYPOINT_MAPPINGS,
    KEYPOINT_TAXONOMIES,
    MAX_PARTS,
    PART_MAPPINGS,
    PART_TAXONOMIES,
    PART_UNMAPPED,
    UNMAPPED_LABEL,
    KeypointTaxonomy,
    PartTaxonomy,
    TaxonomyError,
    can_express,
    get_keypoint_taxonomy,
    get_part_taxonomy,
    keypoint_index_map,
    keypoint_taxonomy_names,
    mapping_lut,
    palette_colors,
    part_taxonomy_names,
    register_keypoint_mapping,
    register_keypoint_taxonomy,
    register_part_mapping,
    register_part_taxonomy,
    uint8_lut,
    unregister_keypoint_taxonomy,
    unregister_part_taxonomy,
)

__all__ = [
    # types and errors
    "PartTaxonomy",
    "KeypointTaxonomy",
    "TaxonomyError",
    # look-ups and mapping tables
    "get_part_taxonomy",
    "get_keypoint_taxonomy",
    "part_taxonomy_names",
    "keypoint_taxonomy_names",
    "mapping_lut",
    "uint8_lut",
    "can_express",
    "keypoint_index_map",
    "UNMAPPED_LABEL",
    "MAX_PARTS",
    # registration (extension points)
    "register_part_taxonomy",
    "register_part_mapping",
    "register_keypoint_taxonomy",
    "register_keypoint_mapping",
    "unregister_part_taxonomy",
    "unregister_keypoint_taxonomy",
    "palette_colors",
    # read-only views of the registry
    "PART_TAXONOMIES",
    "PART_MAPPINGS",
    "PART_UNMAPPED",
    "KEYPOINT_TAXONOMIES",
    "KEYPOINT_MAPPINGS",
    # the built-in tables
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
    "COCO_PERSON_KEYPOINTS",
    "JHMDB_KEYPOINTS",
    "MHP_KEYPOINTS",
]

register_builtin_taxonomies()
