"""What every command-line tool shares: one-line errors with exit code 2, output folders, the
weights flag.

A tool's ``__main__`` is ``sys.exit(run_tool(main, args, "tool.py"))``: the errors a user can fix
(a bad config value, a missing or unsafe weights file, weights of another model kind, an output
folder that cannot be created, an unknown taxonomy) are printed as ``tool.py: error: <message>``
and exit with code 2; anything else keeps its traceback (a bug to report).
"""

import argparse
import os
import sys
from typing import Callable, Tuple, Type

from ..checkpoint import PartialWeightsError, WeightsFileError
from ..config import ConfigValueError
from ..taxonomy import TaxonomyError

__all__ = ["ToolError", "USER_ERRORS", "run_tool", "make_output_dir", "add_weights_flag"]


class ToolError(Exception):
    """A usage error of a tool: reported as one line, exit code 2."""


# Errors that name what the user gave and what is wrong with it: one line, exit code 2.
USER_ERRORS: Tuple[Type[BaseException], ...] = (
    ToolError,
    ConfigValueError,
    WeightsFileError,
    PartialWeightsError,
    TaxonomyError,
)


def run_tool(
    main: Callable[..., int], *args, prog: str, errors: Tuple[Type[BaseException], ...] = ()
) -> int:
    """``main(*args)``'s exit code; a :data:`USER_ERRORS` (or ``errors``) exception is printed as
    ``prog: error: message`` on stderr and gives 2."""
    try:
        return main(*args)
    except USER_ERRORS + tuple(errors) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2


def make_output_dir(path: str, option: str = "--output") -> str:
    """Create the folder ``path`` (and its parents); ToolError naming ``option``, the path and the
    reason when it cannot be created (a file in the way, no permission, a read-only disk)."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise ToolError(f"{option} {path}: cannot create the folder ({reason})") from None
    if not os.access(path, os.W_OK):
        raise ToolError(f"{option} {path}: the folder is not writable")
    return path


def add_weights_flag(parser: argparse.ArgumentParser) -> None:
    """``--allow-partial-weights``: run even when MODEL.WEIGHTS leaves modules of the model
    uninitialised (:class:`bodyparts.checkpoint.PartialWeightsError`)."""
    parser.add_argument(
        "--allow-partial-weights",
        action="store_true",
        help="run even if MODEL.WEIGHTS leaves parts of the model at random initial values "
        "(by default that is an error naming them: config and checkpoint of different model kinds)",
    )
