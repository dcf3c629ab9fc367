#!/usr/bin/env python
"""Recompute PQ and PartPQ of a PartPanopticEvaluator output folder with the panoptic-parts package.

    python tools/eval_part_panoptic.py OUTPUT_DIR/inference/<dataset>/part_panoptic
        [--processes N] [--official]

The folder holds what the evaluator wrote with an ``output_dir`` (ground-truth .tif, 3-channel
prediction PNGs, images.json, dataset and eval spec yaml files). Prints the package's numbers in
the evaluator's result format (percent) and its seconds per image; ``--official`` computes PartPQ
with the package's ``evaluate_PartPQ_multicore`` (at least 5 images per process). Needs the
packages ``panoptic-parts`` and ``scikit-learn`` (requirements/test.txt).
"""

import bodyparts  # noqa: F401  (prepares Detectron2: import first)
from bodyparts.evaluation.panoptic_parts_check import main

if __name__ == "__main__":
    main()
