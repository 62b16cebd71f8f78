"""`python -m c4c <command>`: one small module per command, each exposing `add_parser(sub)` that
registers its arguments and sets `func(args) -> int`. User errors (C4CError) print one line, exit 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import C4CError

# Command modules, in the order `--help` lists them. A module that is missing is skipped so a
# partial install still serves the commands it has.
_COMMANDS = ["caption", "decode", "features", "extract", "idf", "import_", "train", "evaluate", "bench", "synth"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m c4c", description="CLIP4Caption: caption videos with an ensemble of decoders.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        try:
            mod = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith(__name__):
                continue
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except C4CError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
