"""Utilities: visualization of part predictions and ground truth (imports matplotlib, so it is not
imported by ``import bodyparts``)."""

from .visualizer import (  # noqa: F401
    add_part_legend,
    draw_ground_truth,
    draw_part_map,
    draw_part_panoptic,
    draw_predictions,
    image_level_part_map,
    metadata_for,
    part_legend,
    part_overlay,
    paste_part_maps,
    person_part_maps,
)
