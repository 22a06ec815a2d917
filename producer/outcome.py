"""The one place where the way a run ended becomes its exit code.

A deploy pipeline reads 1 as "a drifted host would ship", so the mapping is kept here, whole,
instead of as `sys.exit(n)` calls scattered over the commands: a command returns a Report (or
a code) or raises, and everything — a finished audit, a user's mistake, a lost broker, a bug
in lockstep — passes through `exit_code_for_report` or `exit_code_for_exception`.

Nothing here imports redis, kombu or pydantic up front: a local check must stay light, and an
exception of a module that was never imported cannot be the one being classified.
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING

import click

from producer.exit_codes import (
    EXIT_DRIFT,
    EXIT_INFRA,
    EXIT_INTERNAL,
    EXIT_OK,
    EXIT_UNVERIFIED,
    EXIT_USAGE,
)

if TYPE_CHECKING:
    from producer.report.model import Report
    from worker.models import HostReport

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
DEBUG_ENV = "LOCKSTEP_DEBUG"

# (module, class): bad input, exit 2. Looked up in sys.modules, never imported here.
_USAGE_ERRORS = (
    ("producer.locks.interface", "LockError"),
    ("producer.fleet", "TargetError"),
    ("producer.inventory", "InventoryError"),
    ("producer.outputs", "OutputError"),
    ("worker.config", "ConfigError"),
    ("worker.snapshot.interface", "SnapshotError"),
    ("worker.signing", "FleetKeyError"),
    ("worker.broker", "BrokerURLError"),
)
# The broker is unreachable or went away beyond retry: exit 4.
_INFRA_ERRORS = (
    ("worker.broker", "BrokerError"),
    ("redis.exceptions", "ConnectionError"),
    ("redis.exceptions", "TimeoutError"),
    ("kombu.exceptions", "OperationalError"),
)

_SECRET_RES = (
    re.compile(r"(?i)([a-z][a-z0-9+.\-]*:/*)[^\s/?#@]*(?:[/?#][^\s@]*)?@"),  # userinfo
    re.compile(r"(?i)((?:pass|pwd|secret|token)[a-z_]*=)[^\s&;#'\"]+"),  # password=...
)


class Failure(Exception):
    """A run that ends on purpose with a documented code and one line for the user."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


class OutputClosed(Exception):
    """Standard output went away (a closed pipe) before the report was written."""


def scrub(text: str) -> str:
    """Last line of defence: no credential-looking part of a URL reaches the terminal."""
    text = _SECRET_RES[0].sub(r"\1***@", text)
    return _SECRET_RES[1].sub(r"\1***", text)


def has_findings(hosts: Iterable[HostReport]) -> bool:
    return any(h.findings for h in hosts)


def exit_code_for_hosts(hosts: list[HostReport], infrastructure_error: str | None = None) -> int:
    """1 iff a finding exists; then a lost broker (4); then anything unverified (3); else 0.

    Drift beats everything because it is certain and actionable; it is also the only way to
    get 1, so a crash or a fault can never read as drift.
    """
    from worker.models import Status

    if has_findings(hosts):
        return EXIT_DRIFT
    if infrastructure_error:
        return EXIT_INFRA
    if not hosts or any(h.status is not Status.OK for h in hosts):
        return EXIT_UNVERIFIED
    return EXIT_OK


def exit_code_for_report(report: Report) -> int:
    return exit_code_for_hosts(report.hosts, report.infrastructure_error)


def _is(exc: BaseException, names: Iterable[tuple[str, str]]) -> bool:
    for module, name in names:
        mod = sys.modules.get(module)
        cls = getattr(mod, name, None) if mod is not None else None
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def debugging(flag: bool = False) -> bool:
    return flag or os.environ.get(DEBUG_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _say(message: str) -> None:
    line = " ".join(scrub(message).split())  # one line, whatever the exception's text held
    click.echo(f"lockstep: {line}", err=True)


def exit_code_for_exception(exc: BaseException, *, debug: bool = False) -> int:
    """Report `exc` on stderr in one line (traceback only when debugging) and pick its code."""
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None or isinstance(code, int):
            return int(code or 0)
        _say(f"error: {code}")
        return EXIT_USAGE
    if isinstance(exc, (KeyboardInterrupt, click.Abort)):
        _say("interrupted")
        return EXIT_INTERRUPTED
    if isinstance(exc, click.exceptions.Exit):
        return int(exc.exit_code)
    if isinstance(exc, click.ClickException):
        exc.show()  # click's own usage message; its base class would say 1, which means drift
        return EXIT_USAGE
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, Failure):
        _say(f"error: {exc}")
        return exc.code
    if isinstance(exc, OutputClosed) or (
        isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE
    ):
        _silence_stdout()
        _say("error: standard output was closed before the report was written")
        return EXIT_USAGE
    if _is(exc, _USAGE_ERRORS):
        _say(f"error: {exc}")
        return EXIT_USAGE
    if _is(exc, _INFRA_ERRORS):
        prefix = "" if _is(exc, _INFRA_ERRORS[:1]) else "broker lost: "
        _say(f"error: {prefix}{exc}")
        return EXIT_INFRA
    hint = "" if debug else " (run with --debug for the traceback)"
    _say(f"internal error: {type(exc).__name__}: {exc}{hint}")
    return EXIT_INTERNAL


def _silence_stdout() -> None:
    """After EPIPE, Python's final flush of stdout would fail again and print a traceback."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def exit_code_for_result(result: object) -> int:
    """What a command returned: a Report, an exit code, or nothing (success)."""
    if result is None:
        return EXIT_OK
    if isinstance(result, bool):
        return EXIT_INTERNAL
    if isinstance(result, int):
        return result
    from producer.report.model import Report

    if isinstance(result, Report):
        return exit_code_for_report(result)
    _say(f"internal error: a command returned {type(result).__name__}")
    return EXIT_INTERNAL
