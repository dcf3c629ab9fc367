from . import datasets  # noqa: F401  (registers the built-in datasets)
from .contract import (  # noqa: F401
    DataContractError,
    decode_rle,
    encode_mask,
    image_part_map,
    part_label_map,
    validate_record,
)
from .datasets.generic import (  # noqa: F401
    bodyparts_metadata,
    register_bodyparts_dataset,
    register_bodyparts_json,
)
from .mappers import BodyPartsDatasetMapper  # noqa: F401
from .panoptic_mapper import BodyPartsPanopticMapper  # noqa: F401
from .semantic_mapper import BodyPartsSemSegMapper  # noqa: F401
