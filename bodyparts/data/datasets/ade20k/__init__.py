"""ADE20K person and person-part loaders for the native 2016 and 2021 releases.

Format facts: datasets/ade20k.md. Records follow :mod:`bodyparts.data.contract`, with
``part_taxonomy = "ade_person15"`` (the 15 level-1 person parts of :mod:`bodyparts.taxonomy`).

* :mod:`.common`: what both releases share -- the class tables, the person-part records
  (silhouette, parts, ``parts_complete``), the image listing (index file, cached, or a directory
  walk).
* :mod:`.release_2016`: ``ADE20K_2016_07_26`` -- ``index_ade20k.mat``, ``_seg.png``,
  ``_parts_N.png`` and ``_atr.txt`` (:func:`load_ade20k_2016`, :func:`parse_atr`).
* :mod:`.release_2021`: ``ADE20K_2021_17_01`` -- ``index_ade20k.pkl``, per-image JSON and
  instance masks (:func:`load_ade20k_2021`).
* :mod:`.registration`: :func:`register_all_ade20k` (both releases' splits).

The public names (``__all__``) and the private ones that tests use (imported ``x as x``) are
re-exported here, so ``from bodyparts.data.datasets import ade20k`` and ``ade20k.<name>`` work as
with the former single module ``ade20k.py``. The implementation looks names up in the submodule
that defines them: to monkeypatch one, patch it there (e.g. ``ade20k.common._listing_cached``).
"""

from .common import (
    IGNORED_PERSON_PART_CLASSES,
    PART_CLASSES,
    PART_TAXONOMY,
    PERSON_CLASS,
    RELEASE_DIRS,
    ade20k_metadata,
    decode_ade_classes,
)
from .common import _Entry as _Entry
from .common import _listing_cached as _listing_cached
from .common import _read_listing_cache as _read_listing_cache
from .registration import register_all_ade20k
from .release_2016 import AtrRow, load_ade20k_2016, parse_atr
from .release_2016 import _read_mat_index as _read_mat_index
from .release_2021 import _read_pkl_index as _read_pkl_index
from .release_2021 import _resolve_overlaps as _resolve_overlaps
from .release_2021 import load_ade20k_2021

__all__ = [
    "PART_TAXONOMY",
    "PERSON_CLASS",
    "PART_CLASSES",
    "IGNORED_PERSON_PART_CLASSES",
    "RELEASE_DIRS",
    "AtrRow",
    "ade20k_metadata",
    "decode_ade_classes",
    "parse_atr",
    "load_ade20k_2016",
    "load_ade20k_2021",
    "register_all_ade20k",
]
