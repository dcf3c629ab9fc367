from . import datasets  # noqa: F401  (registers the built-in datasets)
from .contract import DataContractError, decode_rle, encode_mask, image_part_map, part_label_map, validate_record  # noqa: F401
from .mappers import BodyPartsDatasetMapper  # noqa: F401
from .panoptic_mapper import BodyPartsPanopticMapper  # noqa: F401
from .semantic_mapper import BodyPartsSemSegMapper  # noqa: F401
