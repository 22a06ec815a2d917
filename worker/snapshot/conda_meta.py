"""The default snapshot source: read `PREFIX/conda-meta/*.json` directly, read-only.

We do not call `conda list` by default because it is slow (a subprocess and conda's
import time) and because it can *delete* a record whose dist-info went missing
(conda/conda#14423) — a verifier must never change the host it verifies. The rules below
mirror conda's PrefixData so that our listing equals `conda list` on the same prefix.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.channels import PYPI, canonical_channel, split_package_url
from worker.models import Package, Snapshot
from worker.snapshot import pip_dists
from worker.snapshot.interface import SnapshotError

_DEP_NAME = re.compile(r"^\s*([^\s=<>!~\[]+)")


def is_environment(prefix: Path) -> bool:
    """conda's own test: an environment is a directory with `conda-meta/history`."""
    return (prefix / "conda-meta" / "history").is_file()


class CondaMetaSource:
    """Reads conda-meta records and site-packages; opens every file read-only."""

    name = "conda-meta"

    def snapshot(self, prefix: Path) -> Snapshot:
        prefix = Path(prefix)
        if not prefix.is_dir():
            raise SnapshotError(f"{prefix}: no such directory")
        if not is_environment(prefix):
            raise SnapshotError(f"{prefix}: not a conda environment (no conda-meta/history file)")
        warnings: list[str] = []
        records = self._read_records(prefix / "conda-meta", warnings)
        packages = {name: _conda_package(rec) for name, rec in records.items()}
        pip_packages = self._pip_packages(prefix, records, packages, warnings)
        ordered = sorted([*packages.values(), *pip_packages], key=lambda p: (p.name, p.manager))
        return Snapshot(
            prefix=str(prefix),
            source=self.name,
            platform=_platform_of(packages.values()),
            packages=ordered,
            warnings=warnings,
        )

    @staticmethod
    def _read_records(meta_dir: Path, warnings: list[str]) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        try:
            entries = sorted(e.name for e in os.scandir(meta_dir))
        except OSError as exc:
            raise SnapshotError(f"{meta_dir}: cannot list directory: {exc.strerror}") from exc
        for fname in entries:
            if not fname.endswith(".json") or fname.startswith("._"):
                continue
            path = meta_dir / fname
            try:
                raw = path.read_bytes()
            except OSError as exc:
                raise SnapshotError(f"{path}: cannot read: {exc.strerror}") from exc
            try:
                rec = json.loads(raw)
            except UnicodeDecodeError as exc:
                raise SnapshotError(f"{path}: corrupt record: not UTF-8 text") from exc
            except json.JSONDecodeError as exc:
                raise SnapshotError(f"{path}:{exc.lineno}: corrupt record: {exc.msg}") from exc
            if not isinstance(rec, dict):
                raise SnapshotError(f"{path}:1: corrupt record: not a JSON object")
            try:
                name, version, build = str(rec["name"]), str(rec["version"]), str(rec["build"])
            except KeyError as exc:
                raise SnapshotError(f"{path}: corrupt record: no {exc.args[0]!r} field") from exc
            if fname[:-5] != f"{name}-{version}-{build}":
                warnings.append(
                    f"{path}: ignored: file name is not {name}-{version}-{build}.json"
                    " (conda ignores it too)"
                )
                continue
            records[name] = rec
        return records

    @staticmethod
    def _pip_packages(
        prefix: Path,
        records: Mapping[str, dict[str, Any]],
        packages: dict[str, Package],
        warnings: list[str],
    ) -> list[Package]:
        python = records.get("python")
        if python is None:
            return []
        sp_dir = pip_dists.site_packages_dir(
            str(python["version"]), python.get("python_site_packages_path")
        )
        if not (prefix / sp_dir).is_dir():
            return []
        python_records = _python_dependents(records)
        owned = pip_dists.conda_anchor_files(
            sp_dir, {name: records[name].get("files") or () for name in python_records}
        )
        present = pip_dists.site_packages_anchor_files(prefix, sp_dir)
        for anchor in set(owned) - present:
            name = owned[anchor]
            packages[name] = packages[name].model_copy(update={"clobbered": True})
            warnings.append(
                f"{prefix / anchor}: missing; conda would drop the {name} record"
                " (and `conda list` would delete it, conda/conda#14423)"
            )
        found: list[Package] = []
        for anchor in sorted(present - set(owned)):
            dist = pip_dists.read_dist(prefix, anchor)
            if isinstance(dist, str):
                warnings.append(f"{prefix}/{dist}")
                continue
            found.append(
                Package(
                    name=dist.name,
                    version=dist.version,
                    build="pypi_0",
                    build_number=0,
                    manager="pypi",
                    channel=PYPI,
                    subdir=PYPI,
                )
            )
        return found


def _conda_package(rec: Mapping[str, Any]) -> Package:
    url = rec.get("url") or None
    if url:
        channel, subdir, _ = split_package_url(str(url))
    else:
        channel, subdir = canonical_channel(str(rec.get("channel") or "")), ""
    subdir = str(rec.get("subdir") or subdir)
    return Package(
        name=str(rec["name"]),
        version=str(rec["version"]),
        build=str(rec["build"]),
        build_number=int(rec.get("build_number") or 0),
        manager="conda",
        channel=channel,
        subdir=subdir,
        md5=rec.get("md5") or None,
        sha256=rec.get("sha256") or None,
        url=url,
    )


def _python_dependents(records: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """Names of records that depend on python, directly or not (conda's PrefixGraph)."""
    dependents: dict[str, set[str]] = {}
    for name, rec in records.items():
        for dep in rec.get("depends") or ():
            m = _DEP_NAME.match(str(dep))
            if m:
                dependents.setdefault(m.group(1), set()).add(name)
    seen: set[str] = set()
    todo = ["python"]
    while todo:
        for child in dependents.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _platform_of(packages: Any) -> str | None:
    """The prefix's subdir: the most common non-noarch subdir among its records."""
    counts: dict[str, int] = {}
    for pkg in packages:
        if pkg.subdir and pkg.subdir not in ("noarch", PYPI):
            counts[pkg.subdir] = counts.get(pkg.subdir, 0) + 1
    return max(counts, key=lambda s: counts[s]) if counts else None
