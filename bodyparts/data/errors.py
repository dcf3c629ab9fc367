"""The data layer's errors and skip policy, below every other data module (contract, image
reading, the native loaders), so that none of them imports another to raise.

* :class:`DataContractError`: a record does not follow the data contract (docs/data_contract.md).
* :class:`DatasetFormatError`: a native annotation or image file is missing, truncated, malformed
  or inconsistent with its image (``path`` and ``problem``).
* ``on_error``: "raise" (default) or "skip" (``$BODYPARTS_ON_ERROR``): skip bad items, count them.
"""

import os

__all__ = ["DataContractError", "DatasetFormatError", "check_on_error", "default_on_error"]


class DataContractError(ValueError):
    """A record does not follow the bodyparts data contract."""


class DatasetFormatError(DataContractError):
    """A native annotation file is missing, truncated, malformed or inconsistent with its image."""

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def default_on_error() -> str:
    """The skip policy of registered splits: ``$BODYPARTS_ON_ERROR`` ("raise" by default, or
    "skip")."""
    value = os.environ.get("BODYPARTS_ON_ERROR", "raise")
    check_on_error(value)
    return value
