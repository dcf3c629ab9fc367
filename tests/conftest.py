"""Shared pytest fixtures. Tests never need real data or network; generated data goes to tmp
dirs."""

import os
import sys

import pytest

import bodyparts  # noqa: F401  (prepares Detectron2 before any test imports detectron2.data/modeling)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK_CONFIG = os.path.join(
    REPO, "configs", "quick_schedules", "person_rcnn_R18_FPN_synthetic_cpu.yaml"
)

# Small, fast settings for the quick config: 96 px synthetic images, a handful of them.
TINY_OPTS = [
    "BODYPARTS.SYNTHETIC.IMAGE_SIZE",
    "96",
    "BODYPARTS.SYNTHETIC.NUM_TRAIN",
    "8",
    "BODYPARTS.SYNTHETIC.NUM_VAL",
    "4",
    "INPUT.MIN_SIZE_TRAIN",
    "(96,)",
    "INPUT.MIN_SIZE_TEST",
    "96",
    "DATALOADER.NUM_WORKERS",
    "0",
    "SOLVER.IMS_PER_BATCH",
    "2",
    "SOLVER.WARMUP_ITERS",
    "5",
]


@pytest.fixture(scope="session")
def datasets_root(tmp_path_factory):
    """A session-wide DETECTRON2_DATASETS directory (synthetic data is generated once per
    session)."""
    root = str(tmp_path_factory.mktemp("datasets"))
    old = os.environ.get("DETECTRON2_DATASETS")
    os.environ["DETECTRON2_DATASETS"] = root
    yield root
    if old is None:
        os.environ.pop("DETECTRON2_DATASETS", None)
    else:
        os.environ["DETECTRON2_DATASETS"] = old


@pytest.fixture
def restore_catalogs():
    """For tests that (re)register datasets, e.g. ``register_all(root)``: DatasetCatalog and
    MetadataCatalog are put back as they were before the test when it ends, passed or failed."""
    from _helpers import catalogs_restored

    with catalogs_restored():
        yield


def run_tool_cmd(*args):
    """Command line running a tool of the repo with the test interpreter."""
    return [sys.executable, *args]


@pytest.fixture(autouse=True, scope="session")
def _record_cache_dir(tmp_path_factory):
    """Native loaders' record caches go to a session tmp dir, never to the user's ~/.cache."""
    old = os.environ.get("BODYPARTS_CACHE_DIR")
    os.environ["BODYPARTS_CACHE_DIR"] = str(tmp_path_factory.mktemp("record_cache"))
    yield
    if old is None:
        os.environ.pop("BODYPARTS_CACHE_DIR", None)
    else:
        os.environ["BODYPARTS_CACHE_DIR"] = old
