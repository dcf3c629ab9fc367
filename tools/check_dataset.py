#!/usr/bin/env python
"""Load a registered dataset split, report counts and problems, and render annotated samples.

    python tools/check_dataset.py NAME [NAME ...] [--output DIR] [--num-vis 8] [--skip-bad]
                                  [--taxonomy lr6] [--timing]

For each split NAME (see ``datasets/README.md`` for the registered names; the datasets root is
``$DETECTRON2_DATASETS``, default ``./datasets``) it prints and writes to ``DIR/NAME/summary.json``:

* images, persons, persons with full / partial / no part labels, persons with keypoints and the
  visible keypoint count, part pixel share per part label (native taxonomy, and in ``--taxonomy``
  when given: this also checks at start-up that the dataset can express it). Native shares
  (``part_share``) are percentages of all part pixels. Shares in ``--taxonomy``
  (``part_share_<taxonomy>``) are percentages of the part pixels that it labels with a part, so
  they sum to 100; the part pixels it ignores (source labels with no counterpart,
  ``taxonomy.PART_UNMAPPED``, e.g. CIHP's clothes in lr6: label 255, no loss, not scored) and
  those it maps to background are reported as their own shares of all part pixels
  (``ignored_share_<taxonomy>``, ``background_share_<taxonomy>``);
* problems: every record that breaks the data contract (file, image, annotation, field), and every
  image that cannot be used: missing, empty, not an image, truncated or corrupt (each image is
  decoded in full, as the mappers do, with :func:`bodyparts.data.image_io.read_record_image`), of
  a pixel mode without an 8-bit image, or of another size than its record says (listed, not
  rendered, in both modes); with ``--skip-bad`` the loader skips broken source files
  (``BODYPARTS_ON_ERROR=skip``) and their count is reported instead of stopping at the first;
* with ``--timing``: the load time and records/s of a cold load (record cache cleared for this
  split) and of a warm load (from the cache);
* ``DIR/NAME/samples/*.png``: ``--num-vis`` records drawn with their part labels (taxonomy colours),
  silhouettes, boxes and keypoint skeletons, and a legend, so that a person can see the labels
  are right (e.g. left and right are not swapped).

Exit code: 0 = no problems, 1 = problems found, 2 = usage error (unknown split, bad taxonomy).
"""

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections import Counter
from typing import Any, Dict, Iterable, List

warnings.filterwarnings("ignore", r"`torch.jit.script` is deprecated", FutureWarning)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402
from tqdm import tqdm  # noqa: E402

import bodyparts  # noqa: F401,E402  (prepares Detectron2 and registers the datasets: import first)
from bodyparts.data.contract import DataContractError, part_label_map, validate_record  # noqa: E402
from bodyparts.data.image_io import ImageFileError, read_record_image  # noqa: E402
from bodyparts.taxonomy import (  # noqa: E402
    UNMAPPED_LABEL,
    TaxonomyError,
    get_part_taxonomy,
    mapping_lut,
)
from bodyparts.utils.cli import make_output_dir, run_tool  # noqa: E402
from bodyparts.utils.visualizer import draw_ground_truth, metadata_for  # noqa: E402


class CheckError(Exception):
    """A usage error: one line, exit code 2."""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("names", nargs="+", metavar="NAME", help="registered dataset split(s)")
    add("--output", default="output/check_dataset", metavar="DIR", help="report and samples folder")
    add("--num-vis", type=int, default=8, metavar="N", help="samples to render (persons first)")
    add("--skip-bad", action="store_true", help="skip broken source files instead of stopping")
    add("--taxonomy", default=None, help="also report part shares in this taxonomy (e.g. lr6)")
    add("--timing", action="store_true", help="measure a cold and a warm load (records/s)")
    return parser


def _load(name: str) -> List[Dict[str, Any]]:
    # DatasetCatalog.get calls the registered loader each time (no memoisation), as timing needs.
    return DatasetCatalog.get(name)


def timed_loads(name: str) -> Dict[str, float]:
    """Cold (empty record cache) and warm load times of a split, in s and records/s."""
    old = os.environ.get("BODYPARTS_CACHE_DIR")
    with tempfile.TemporaryDirectory(prefix="bodyparts_cache_") as tmp:
        os.environ["BODYPARTS_CACHE_DIR"] = tmp
        try:
            out = {}
            for kind in ("cold", "warm"):
                start = time.perf_counter()
                n = len(_load(name))
                sec = time.perf_counter() - start
                out[f"{kind}_s"] = round(sec, 3)
                out[f"{kind}_records_per_s"] = round(n / sec, 1) if sec > 0 else float("inf")
        finally:
            if old is None:
                os.environ.pop("BODYPARTS_CACHE_DIR", None)
            else:
                os.environ["BODYPARTS_CACHE_DIR"] = old
    return out


def summarize(name: str, records: List[Dict[str, Any]], taxonomy: str = None) -> Dict[str, Any]:
    """Counts, part shares and contract problems of a split's records."""
    meta = MetadataCatalog.get(name)
    native = meta.get("part_taxonomy", None)
    keypoint_names = meta.get("keypoint_names", None)
    persons = Counter()
    native_pixels, mapped_pixels = Counter(), Counter()
    problems: List[str] = []
    unreadable = set()
    lut = mapping_lut(native, taxonomy, dataset=name) if (native and taxonomy) else None
    for rec in tqdm(records, desc=f"{name}: checking", unit="img", disable=len(records) < 50):
        source = rec.get("part_taxonomy", native)
        num_parts = get_part_taxonomy(source).num_parts if source else None
        try:
            validate_record(
                rec,
                source=name,
                num_classes=len(meta.get("thing_classes", ["person"])),
                num_parts=num_parts,
                keypoint_names=keypoint_names,
            )
        except DataContractError as e:
            problems.append(str(e))
        try:
            read_record_image(rec, "RGB")
        except ImageFileError as e:  # "<file>: <problem>"
            problems.append(f"{name}: image {rec.get('image_id')!r}: {e}")
            unreadable.add(rec["file_name"])
        for ann in rec.get("annotations", []):
            persons["total"] += 1
            if ann.get("parts") is None:
                persons["no_parts"] += 1
            else:
                persons[
                    "partial_parts" if not ann.get("parts_complete", True) else "full_parts"
                ] += 1
                labels, counts = np.unique(
                    part_label_map(ann, rec["height"], rec["width"]), return_counts=True
                )
                for lab, cnt in zip(labels.tolist(), counts.tolist()):
                    if lab:
                        native_pixels[lab] += cnt
                        if lut is not None and lab < len(lut):
                            mapped_pixels[int(lut[lab])] += cnt
            kps = ann.get("keypoints")
            if kps is not None:
                persons["with_keypoints"] += 1
                persons["visible_keypoints"] += sum(1 for v in kps[2::3] if v > 0)
    summary: Dict[str, Any] = {
        "name": name,
        "part_taxonomy": native,
        "keypoint_taxonomy": meta.get("keypoint_taxonomy", None),
        "images": len(records),
        "images_with_persons": sum(1 for r in records if r.get("annotations")),
        "persons": dict(persons),
        "problems": problems,
        "unreadable_images": sorted(unreadable),
    }
    if native:
        summary["part_share"] = _shares(native, native_pixels)
    if lut is not None:
        summary[f"part_share_{taxonomy}"] = _shares(taxonomy, mapped_pixels)
        all_part_pixels = sum(mapped_pixels.values()) or 1
        for key, label in (("ignored", UNMAPPED_LABEL), ("background", 0)):
            share = 100.0 * mapped_pixels.get(label, 0) / all_part_pixels
            summary[f"{key}_share_{taxonomy}"] = round(share, 2)
    return summary


def _shares(taxonomy: str, pixels: Counter) -> Dict[str, float]:
    """Percent of the part pixels (labels 1 .. C-1 of ``taxonomy``; background 0 and ignored 255
    pixels left out) per part label."""
    names = get_part_taxonomy(taxonomy).label_names
    parts = range(1, len(names))
    total = sum(pixels.get(k, 0) for k in parts) or 1
    return {names[k]: round(100.0 * pixels.get(k, 0) / total, 2) for k in parts}


def render_samples(
    name: str, records: List[Dict[str, Any]], out_dir: str, num: int, skip: Iterable[str] = ()
) -> List[str]:
    """Draw up to ``num`` records (those with persons first) into ``out_dir``; returns the paths.
    Records whose ``file_name`` is in ``skip`` (unreadable images) are not drawn."""
    meta = MetadataCatalog.get(name)
    skip = set(skip)
    readable = [r for r in records if r["file_name"] not in skip]
    chosen = sorted(readable, key=lambda r: -len(r.get("annotations", [])))[:num]
    make_output_dir(out_dir)
    paths = []
    for rec in chosen:
        drawing_meta = metadata_for(
            rec.get("part_taxonomy") or meta.part_taxonomy,
            rec.get("keypoint_taxonomy") or meta.get("keypoint_taxonomy", None),
        )
        vis = draw_ground_truth(rec, drawing_meta, legend=True)
        path = os.path.join(out_dir, f"{str(rec['image_id']).replace(os.sep, '_')}.png")
        cv2.imwrite(path, vis[:, :, ::-1])
        paths.append(path)
    return paths


def check(name: str, args) -> Dict[str, Any]:
    if name not in DatasetCatalog.list():
        known = sorted(n for n in DatasetCatalog.list() if "coco" not in n and "lvis" not in n)
        raise CheckError(f"unknown dataset {name!r}; registered bodyparts splits include {known}")
    timing = timed_loads(name) if args.timing else None
    start = time.perf_counter()
    records = _load(name)
    load_s = time.perf_counter() - start
    try:
        summary = summarize(name, records, args.taxonomy)
    except TaxonomyError as e:
        raise CheckError(str(e)) from None
    summary["load_s"] = round(load_s, 3)
    if timing:
        summary["timing"] = timing
    out_dir = os.path.join(args.output, name)
    samples_dir = os.path.join(out_dir, "samples")
    summary["samples"] = render_samples(
        name, records, samples_dir, args.num_vis, skip=summary["unreadable_images"]
    )
    make_output_dir(out_dir)
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def print_summary(s: Dict[str, Any]) -> None:
    p = s["persons"]
    print(f"== {s['name']}  ({s['part_taxonomy']} parts, keypoints: {s['keypoint_taxonomy']})")
    print(
        f"   images {s['images']} ({s['images_with_persons']} with persons), "
        f"persons {p.get('total', 0)}: "
        f"{p.get('full_parts', 0)} with all parts, {p.get('partial_parts', 0)} partial, "
        f"{p.get('no_parts', 0)} without parts, {p.get('with_keypoints', 0)} with keypoints "
        f"({p.get('visible_keypoints', 0)} visible)"
    )
    print(f"   loaded in {s['load_s']:.2f} s")
    if s["unreadable_images"]:
        print(f"   {len(s['unreadable_images'])} unreadable image(s) (listed as problems)")
    if "timing" in s:
        t = s["timing"]
        print(
            f"   cold load {t['cold_s']:.2f} s ({t['cold_records_per_s']} records/s), "
            f"warm {t['warm_s']:.2f} s ({t['warm_records_per_s']} records/s)"
        )
    for key in [k for k in s if k.startswith("part_share")]:
        shares = ", ".join(f"{k} {v}%" for k, v in s[key].items())
        print(f"   {key}: {shares}")
        taxonomy = key[len("part_share_") :]
        if taxonomy and f"ignored_share_{taxonomy}" in s:
            ignored, background = s[f"ignored_share_{taxonomy}"], s[f"background_share_{taxonomy}"]
            mapped = f", {background}% mapped to background" if background else ""
            rest = round(100.0 - ignored - background, 2)
            print(
                f"   {taxonomy}: {ignored}% of the part pixels ignored (unmapped labels: no "
                f"loss, not scored){mapped}; {key} is over the other {rest}%"
            )
    print(
        f"   {len(s['samples'])} samples in "
        f"{os.path.dirname(s['samples'][0]) if s['samples'] else '-'}"
    )
    for problem in s["problems"][:20]:
        print(f"   PROBLEM {problem}")
    if len(s["problems"]) > 20:
        print(f"   ... {len(s['problems']) - 20} more in summary.json")


def main(args) -> int:
    if args.skip_bad:
        os.environ["BODYPARTS_ON_ERROR"] = "skip"
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.taxonomy:
        try:
            get_part_taxonomy(args.taxonomy)
        except TaxonomyError as e:
            raise CheckError(str(e)) from None
    bad = 0
    for name in args.names:
        summary = check(name, args)
        print_summary(summary)
        bad += len(summary["problems"])
    return 1 if bad else 0


if __name__ == "__main__":
    arguments = get_parser().parse_args()
    try:
        sys.exit(run_tool(main, arguments, prog="check_dataset.py", errors=(CheckError,)))
    except DataContractError as e:
        print(
            f"error: {e}\n(rerun with --skip-bad to skip broken files and count them)",
            file=sys.stderr,
        )
        sys.exit(1)
