"""Snapshot through conda's own CLI: `conda|mamba|micromamba list --json -p PREFIX`.

Slower than reading conda-meta (a subprocess and conda's start-up, 0.4 s typically and
20 s seen) and conda itself may delete records while listing (conda/conda#14423), so this
source is opt-in, for users who want conda's answer verbatim.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from worker.channels import PYPI, canonical_channel, mask_url, split_package_url
from worker.models import Package, Snapshot
from worker.snapshot.interface import SnapshotError

DEFAULT_TIMEOUT = 60.0
KNOWN_TOOLS = ("conda", "mamba", "micromamba")


class CondaCliSource:
    """Runs a conda-compatible executable with an argument list, never through a shell."""

    def __init__(self, executable: str = "conda", timeout: float = DEFAULT_TIMEOUT) -> None:
        self.executable = executable
        self.timeout = timeout
        self.name = executable if executable in KNOWN_TOOLS else Path(executable).name

    def _resolve(self) -> str:
        found = shutil.which(self.executable)
        if found is None:
            raise SnapshotError(
                f"{self.executable}: executable not found (install it, put it on PATH,"
                " or pass its full path to --source)"
            )
        return found

    def snapshot(self, prefix: Path) -> Snapshot:
        argv = [self._resolve(), "list", "--json", "-p", str(prefix)]
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                timeout=self.timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise SnapshotError(
                f"{self.name} list --json -p {prefix}: no answer within {self.timeout:g} s"
            ) from exc
        except OSError as exc:
            raise SnapshotError(f"{self.name}: cannot run: {exc.strerror}") from exc
        stdout = proc.stdout.decode("utf-8", errors="replace")
        if proc.returncode != 0:
            raise SnapshotError(f"{self.name} list failed: {_error_message(stdout, proc.stderr)}")
        return Snapshot(
            prefix=str(prefix),
            source=self.name,
            packages=parse_list_json(stdout, origin=f"{self.name} list --json"),
        )


def _error_message(stdout: str, stderr: bytes) -> str:
    """conda prints `{"exception_name": ..., "message": ...}` on failure: surface the message."""
    try:
        obj = json.loads(stdout)
    except json.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and obj.get("message"):
        name = obj.get("exception_name")
        return f"{name}: {obj['message']}" if name else str(obj["message"])
    tail = stderr.decode("utf-8", errors="replace").strip().splitlines()
    return tail[-1] if tail else "no output"


def parse_list_json(text: str, *, origin: str) -> list[Package]:
    """Parse `conda list --json` output: a bare array, or micromamba's `{"packages": [...]}`."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SnapshotError(f"{origin}:{exc.lineno}: not JSON: {exc.msg}") from exc
    if isinstance(data, dict) and isinstance(data.get("packages"), list):
        data = data["packages"]
    if not isinstance(data, list):
        raise SnapshotError(f"{origin}: expected a JSON array of packages")
    packages = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise SnapshotError(f"{origin}: entry {index} is not an object")
        try:
            packages.append(package_from_list_entry(entry))
        except (KeyError, TypeError, ValueError) as exc:
            raise SnapshotError(f"{origin}: entry {index}: missing or bad field {exc}") from exc
    return packages


def package_from_list_entry(entry: dict[str, Any]) -> Package:
    """One `conda list --json` entry; shared with the golden-host lock loader."""
    name = str(entry["name"])
    subdir = str(entry.get("platform") or entry.get("subdir") or "")
    if entry.get("channel") == PYPI or subdir == PYPI:
        return Package(
            name=name,
            version=str(entry["version"]),
            build=str(entry.get("build_string") or "pypi_0"),
            manager="pypi",
            channel=PYPI,
            subdir=PYPI,
        )
    url = entry.get("url") or None
    if url:
        channel, url_subdir, _ = split_package_url(str(url))
        subdir = subdir or url_subdir
    else:
        channel = canonical_channel(str(entry.get("base_url") or entry.get("channel") or ""))
    return Package(
        name=name,
        version=str(entry["version"]),
        build=str(entry.get("build_string") or entry.get("build") or ""),
        build_number=int(entry.get("build_number") or 0),
        manager="conda",
        channel=channel,
        subdir=subdir,
        md5=entry.get("md5") or None,
        sha256=entry.get("sha256") or None,
        url=mask_url(str(url)) if url else None,
    )
