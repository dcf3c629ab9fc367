"""Registration of the ADE20K person splits of both releases (a module of its own: it imports
both readers, which import :mod:`.common`)."""

import functools
import os
from typing import List, Optional

from ..native import register_native_split
from ..synthetic import datasets_root
from .common import _SPLIT_DIRS, RELEASE_DIRS, ade20k_metadata
from .release_2016 import load_ade20k_2016
from .release_2021 import load_ade20k_2021

__all__ = ["register_all_ade20k"]


def register_all_ade20k(root: Optional[str] = None) -> List[str]:
    """Register ``ade20k_{2016,2021}_person_{train,val}`` (lazy: nothing is read until used).

    Args:
        root: datasets root holding ``ADE20K_2016_07_26/`` and ``ADE20K_2021_17_01/``; default
            ``$DETECTRON2_DATASETS`` (``./datasets``).
    Returns:
        the registered names.
    """
    root = root if root is not None else datasets_root()
    loaders = {"2016": load_ade20k_2016, "2021": load_ade20k_2021}
    names = []
    for release, load in loaders.items():
        release_root = os.path.join(root, RELEASE_DIRS[release])
        for split in _SPLIT_DIRS:
            name = f"ade20k_{release}_person_{split}"
            register_native_split(
                name,
                functools.partial(load, release_root, split),
                ade20k_metadata(release_root, release, split),
            )
            names.append(name)
    return names
