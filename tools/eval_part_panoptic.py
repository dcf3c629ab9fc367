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

import argparse
import json
from typing import Any, Dict, Optional, Sequence

import bodyparts  # noqa: F401  (prepares Detectron2: import first)
from bodyparts.evaluation.panoptic_parts_check import evaluate_with_panoptic_parts


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("directory", help="the evaluator's <output_dir>/part_panoptic folder")
    parser.add_argument("--processes", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--official",
        action="store_true",
        help="PartPQ through the package's evaluate_PartPQ_multicore",
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Print (and return) the package's PQ / PartPQ of the evaluator's files."""
    args = get_parser().parse_args(argv)
    results = evaluate_with_panoptic_parts(args.directory, args.processes, args.official)
    print(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
