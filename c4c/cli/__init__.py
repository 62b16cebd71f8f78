"""`python -m c4c <command>`: one small module per command, each exposing `add_parser(sub)` that
registers its arguments and sets `func(args) -> int`. User errors (C4CError) print one line, exit 2."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

from ..errors import C4CError

# Commands are the modules of this package (a trailing "_" avoids a keyword: import_ -> "import");
# `--help` lists them in this order first, then any others alphabetically.
_ORDER = ["caption", "decode", "features", "extract", "idf", "import_", "train", "evaluate", "build_zoo", "synth", "bench"]


def _command_modules() -> list[str]:
    found = {m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")}
    return [n for n in _ORDER if n in found] + sorted(found - set(_ORDER))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (when `command` names a module) one with just that command: importing
    every command module costs seconds (torch, transformers) that `python -m c4c idf` should not pay."""
    prog = "c4c" if Path(sys.argv[0]).name == "c4c" else "python -m c4c"  # the console script, or -m
    parser = argparse.ArgumentParser(prog=prog, description="CLIP4Caption: caption videos with an ensemble of decoders.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = _command_modules()
    module = command.replace("-", "_") if command else None
    if module in names or (module and module + "_" in names):
        names = [module if module in names else module + "_"]
    for name in names:
        importlib.import_module(f".{name}", __name__).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    first = argv[0] if argv and not argv[0].startswith("-") else None
    args = build_parser(first).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except C4CError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
