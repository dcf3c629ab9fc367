from .part_maps import PartMaps  # noqa: F401
