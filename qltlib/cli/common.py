"""Shared pieces of the ``qlt`` sub-commands: argparse with one-line errors, option types, JSON.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path


class HelpFormatter(argparse.HelpFormatter):
    """Help text that ends with the option's default, unless the text already states one.

    Flags (default ``False``), required options and options whose default is decided later
    (``None``) get no suffix; their help says what happens instead. A description or epilog
    that holds line breaks is printed as written (the tables of output keys,
    :func:`qltlib.cli.outputs.epilog`); one without is wrapped to the terminal as usual.
    """

    def _fill_text(self, text, width, indent):
        if "\n" in text:
            return "\n".join(indent + line for line in text.splitlines())
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action):
        text = action.help or ""
        if ("default" in text or not action.option_strings
                or action.default in (None, False, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the whole usage block by default) and
    defaults in every help text."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        # the top-level parser points to the list of sub-commands (a bare `qlt` lands here)
        hint = "; see qlt --help" if " " not in self.prog else ""
        self.exit(2, f"{self.prog}: error: {message}{hint}\n")


def number_type(name, positive=False):
    """argparse type: a finite float (``positive``: and > 0); the error names the option."""
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {text!r}") from None
        if not math.isfinite(value) or (positive and not value > 0):
            kind = "finite positive number" if positive else "finite number"
            raise argparse.ArgumentTypeError(f"{name} must be a {kind}, got {text!r}")
        return value
    return parse


def integer_type(name, minimum):
    """argparse type: an integer >= ``minimum``; the error names the option."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{name} must be an integer >= {minimum}, got {text!r}")
        return value
    return parse


def checked_json(obj) -> str:
    """``obj`` as JSON, refusing NaN and infinities (``json.dump`` would print ``NaN``, which is
    not JSON) with a one-line ``ValueError``."""
    try:
        return json.dumps(obj, allow_nan=False)
    except ValueError:
        raise ValueError("result contains NaN or infinity; nothing printed") from None


#: an estimate at or above this many seconds is announced on stderr before the work starts
ANNOUNCE_SECONDS = 5.0


def stderr_note(command: str, text: str) -> None:
    """Print ``qlt COMMAND: TEXT`` on stderr at once (a progress or estimate line).

    Parameters
    ----------
    command : str
        Sub-command name.
    text : str
        One line.
    """
    sys.stderr.write(f"qlt {command}: {text}\n")
    sys.stderr.flush()


def announce_estimate(command: str, estimate, what: str) -> bool:
    """Say on stderr what a long computation will cost, before it starts.

    Parameters
    ----------
    command : str
        Sub-command name.
    estimate : qltlib.theory.transport.ResourceEstimate
        Its memory and time.
    what : str
        What is estimated, e.g. ``"the steady state at lmax = 300"``.

    Returns
    -------
    bool
        Whether it was announced: ``estimate.seconds >= ANNOUNCE_SECONDS``. Callers print
        their progress lines only then, so that short runs stay silent.
    """
    if estimate.seconds < ANNOUNCE_SECONDS:
        return False
    stderr_note(command, f"{estimate.describe()} (estimate) for {what}")
    return True


def one_line_error(command: str, message: str) -> int:
    first_line = " ".join(message.split())   # a message from a library may span lines
    sys.stderr.write(f"qlt {command}: error: {first_line}\n")
    return 2


def reporter(command: str):
    """``report`` callable of a long command: one line ``qlt COMMAND: ...`` on stderr, flushed."""
    return lambda line: stderr_note(command, line)


def finished_parts(directory, prefixes=("matrix_",)) -> int:
    """Finished realisations in a run directory: the distinct indices of its files
    ``PREFIX_NNNNN.npz``, counted without importing the particle modules (an interrupt may have
    hit that very import)."""
    if not directory:
        return 0
    return len({p.name.split("_", 1)[1] for prefix in prefixes
                for p in Path(directory).glob(prefix + "[0-9][0-9][0-9][0-9][0-9].npz")})


def part_store_command(command: str, args, body) -> int:
    """Run ``body(args, where)`` of a long command that keeps its realisations in a part store.

    ``body`` sets ``where["store"]`` as soon as it knows the store. Ctrl-C at any moment, from the
    imports on, ends with one line on stderr and exit status 130; a worker that dies ends with
    one line and exit status 1; both say how many finished realisations the store keeps (the
    same command resumes).
    """
    where = {"store": getattr(args, "store", None)}

    def kept():
        store = where["store"]
        return (f"{finished_parts(store)} finished realisations kept in {store}" if store
                else "nothing finished yet")

    try:
        return body(args, where)
    except KeyboardInterrupt:
        print(f"qlt {command}: interrupted; {kept()} (rerun the same command to resume)",
              file=sys.stderr)
        return 130
    except Exception as exc:
        from ..particles.runner import WorkerError

        if not isinstance(exc, WorkerError):
            raise
        # not the input's fault: exit 1, still one line
        print(f"qlt {command}: error: {exc} ({kept()})", file=sys.stderr)
        return 1
