"""`--format X [--output FILE]`, repeatable: one run feeds a terminal and a CI system.

click gathers a repeated option into one list and forgets how it interleaved with another,
so the pairing of each `--output` with the `--format` before it is read from the raw
arguments before click parses them.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from producer.report.model import Report

FORMATS = ("table", "json", "junit", "markdown")
_BY_SUFFIX = {".xml": "junit", ".json": "json", ".md": "markdown", ".txt": "table"}
_FORMAT_FLAGS = ("--format", "-f")
_OUTPUT_FLAGS = ("--output", "-o")


@dataclass(frozen=True)
class Destination:
    format: str
    path: Path | None  # None: standard output


def _flag_value(args: Sequence[str], i: int, flags: tuple[str, ...]) -> tuple[str | None, int]:
    arg = args[i]
    for flag in flags:
        if arg == flag and i + 1 < len(args):
            return args[i + 1], 2
        if flag.startswith("--") and arg.startswith(flag + "="):
            return arg[len(flag) + 1 :], 1
        if not flag.startswith("--") and arg.startswith(flag) and len(arg) > len(flag):
            return arg[len(flag) :], 1
    return None, 1


def pair_destinations(args: Sequence[str]) -> list[Destination]:
    """Pair each --output with the closest --format before it; a lone --output guesses."""
    pairs: list[list[str | None]] = []
    i = 0
    while i < len(args):
        if args[i] == "--":
            break
        fmt, step = _flag_value(args, i, _FORMAT_FLAGS)
        if fmt is not None:
            pairs.append([fmt, None])
            i += step
            continue
        out, step = _flag_value(args, i, _OUTPUT_FLAGS)
        if out is not None:
            if pairs and pairs[-1][1] is None:
                pairs[-1][1] = out
            else:
                pairs.append([_BY_SUFFIX.get(Path(out).suffix.lower(), "table"), out])
        i += step
    result = [Destination(str(f), Path(o) if o else None) for f, o in pairs]
    return result or [Destination("table", None)]


class PairedOutputCommand(click.Command):
    """A click command that remembers how --format and --output were interleaved."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["lockstep.destinations"] = pair_destinations(args)
        return super().parse_args(ctx, args)


def destinations(ctx: click.Context) -> list[Destination]:
    found: list[Destination] = ctx.meta.get("lockstep.destinations") or [Destination("table", None)]
    return found


def _renderer(fmt: str, *, color: bool, width: int) -> Callable[[Report], str]:
    """Import only the renderer asked for: rich alone costs more than a whole check."""
    if fmt == "table":
        from producer.report import table

        return lambda r: table.render(r, color=color, width=width)
    if fmt == "json":
        from producer.report import json as json_report

        return json_report.render
    if fmt == "junit":
        from producer.report import junit

        return junit.render
    from producer.report import markdown

    return markdown.render


class OutputError(Exception):
    """A report file could not be written; the message names the file and the reason."""


def check_destinations(dests: Sequence[Destination]) -> None:
    """Refuse what cannot be written before any work is done.

    Two renderings on standard output would be concatenated into something no reader can
    parse (JSON followed by a table), and an --output in a missing directory would fail
    only after a whole audit.
    """
    on_stdout = [dest.format for dest in dests if dest.path is None]
    if len(on_stdout) > 1:
        raise OutputError(
            f"{len(on_stdout)} formats asked for on standard output ({', '.join(on_stdout)}): "
            "give all but one of them an --output FILE"
        )
    for dest in dests:
        if dest.path is not None and not dest.path.parent.is_dir():
            raise OutputError(f"{dest.path}: directory {dest.path.parent} does not exist")


def emit(report: Report, dests: Sequence[Destination]) -> None:
    """Write every requested rendering; files are written whole or not at all.

    Standard output comes first, so a file that cannot be written loses nothing.
    """
    tty = sys.stdout.isatty()
    width = shutil.get_terminal_size().columns if tty else 120
    failures = []
    for dest in sorted(dests, key=lambda d: d.path is not None):
        text = _renderer(dest.format, color=tty and dest.path is None, width=width)(report)
        if dest.path is None:
            click.echo(text, nl=False)
            continue
        tmp = dest.path.with_name(dest.path.name + ".tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(dest.path)
        except OSError as exc:
            failures.append(f"{dest.path}: cannot write: {exc.strerror or exc}")
    if failures:
        raise OutputError("; ".join(failures))
