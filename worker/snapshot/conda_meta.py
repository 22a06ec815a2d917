"""The default snapshot source: read `PREFIX/conda-meta/*.json` directly, read-only.

We do not call `conda list` by default because it is slow (a subprocess and conda's
import time) and because it can *delete* a record whose dist-info went missing
(conda/conda#14423) — a verifier must never change the host it verifies. The rules below
mirror conda's PrefixData so that our listing equals `conda list` on the same prefix.

Speed matters because a check runs before every deploy: records are decoded with msgspec
into just the fields we compare (the `files` and `paths_data` lists that dominate real
records are skipped by the parser), and a long-lived worker keeps what it decoded keyed by
each file's inode, size, mtime and ctime, so a repeated audit re-reads only what changed.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec

from worker.channels import PYPI, canonical_channel, mask_url, split_package_url
from worker.models import Package, Snapshot
from worker.snapshot import pip_dists
from worker.snapshot.interface import SnapshotError

_DEP_NAME = re.compile(r"^\s*([^\s=<>!~\[]+)")
_ANCHOR_HINTS = (b".dist-info/RECORD", b".egg-info")
_ANCHOR_ENDINGS = (".egg-info/PKG-INFO", ".dist-info/RECORD", ".egg-info")
_MAX_CACHED_PREFIXES = 16
_READ_SIZE = 1 << 16  # below malloc's mmap threshold: a larger buffer costs a mmap per read


class _Record(msgspec.Struct):
    name: str
    version: str
    build: str
    build_number: int = 0
    channel: str | None = None
    subdir: str | None = None
    url: str | None = None
    md5: str | None = None
    sha256: str | None = None
    depends: list[str] = []
    python_site_packages_path: str | None = None


class _Files(msgspec.Struct):
    files: list[str] = []


_RECORD = msgspec.json.Decoder(_Record)
_FILES = msgspec.json.Decoder(_Files)

StatKey = tuple[int, int, int, int]


@dataclass(frozen=True)
class _Entry:
    """What one conda-meta file contributed; `package` is None for an ignored file."""

    key: StatKey | None
    package: Package | None
    depends: tuple[str, ...] = ()
    anchors: tuple[str, ...] = ()  # files that could be a distribution anchor
    site_packages: str | None = None
    warning: str | None = None


def is_environment(prefix: Path) -> bool:
    """conda's own test: an environment is a directory with `conda-meta/history`."""
    return (prefix / "conda-meta" / "history").is_file()


class CondaMetaSource:
    """Reads conda-meta records and site-packages; opens every file read-only.

    With `cache=True` (the fleet worker) decoded records are reused while a file's stat
    is unchanged; the one-shot CLI does not pay for the extra stat calls.
    """

    name = "conda-meta"

    def __init__(self, *, cache: bool = False) -> None:
        self.cache = cache
        self._cache: dict[str, dict[str, _Entry]] = {}
        self._views: dict[str, _CondaView] = {}
        self._last: dict[str, tuple[_CondaView, tuple[object, ...], list[Package]]] = {}

    def snapshot(self, prefix: Path) -> Snapshot:
        prefix = Path(prefix)
        if not prefix.is_dir():
            raise SnapshotError(f"{prefix}: no such directory")
        if not is_environment(prefix):
            raise SnapshotError(f"{prefix}: not a conda environment (no conda-meta/history file)")
        entries, reused = self._entries(prefix)
        view = self._views.get(str(prefix)) if reused else None
        if view is None:
            view = _conda_view(entries)
            if self.cache:
                self._views[str(prefix)] = view
        warnings = list(view.warnings)
        packages = dict(view.packages)
        pip_packages = _pip_packages(prefix, view, packages, warnings)
        state = (tuple(pip_packages), tuple(warnings))
        last = self._last.get(str(prefix))
        if last is not None and last[0] is view and last[1] == state:
            # Nothing changed: hand out the very same list, so that callers can tell
            # (by identity) that a verdict computed from it still holds.
            ordered = last[2]
        else:
            ordered = list(view.ordered)  # already sorted: patch it, don't sort 5,000 again
            for pkg in packages.values():
                if pkg.clobbered:
                    ordered[bisect.bisect_left(ordered, _order(pkg), key=_order)] = pkg
            for pip_pkg in pip_packages:
                bisect.insort(ordered, pip_pkg, key=_order)
            if self.cache:
                self._last[str(prefix)] = (view, state, ordered)
        return Snapshot.model_construct(
            prefix=str(prefix),
            source=self.name,
            platform=view.platform,
            packages=ordered,
            warnings=warnings,
        )

    def _entries(self, prefix: Path) -> tuple[dict[str, _Entry], bool]:
        """Every record file's entry, and whether all of them came unchanged from the cache."""
        meta_dir = f"{prefix}/conda-meta"
        old = self._cache.get(meta_dir, {}) if self.cache else {}
        fresh: dict[str, _Entry] = {}
        reused = 0
        try:
            names = sorted(
                e.name
                for e in os.scandir(meta_dir)
                if e.name.endswith(".json") and not e.name.startswith("._")
            )
            # Opening relative to the directory's descriptor skips resolving the whole
            # path per record: a third of the cost of a cold 5,000-record snapshot.
            dir_fd = os.open(meta_dir, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise SnapshotError(f"{meta_dir}: cannot list directory: {exc.strerror}") from exc
        try:
            for fname in names:
                key: StatKey | None = None
                if self.cache:
                    try:
                        st = os.stat(fname, dir_fd=dir_fd)
                    except OSError as exc:
                        raise SnapshotError(
                            f"{meta_dir}/{fname}: cannot read: {exc.strerror}"
                        ) from exc
                    key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
                    cached = old.get(fname)
                    if cached is not None and cached.key == key:
                        fresh[fname] = cached
                        reused += 1
                        continue
                fresh[fname] = _read_entry(meta_dir, dir_fd, fname, key)
        finally:
            os.close(dir_fd)
        if self.cache:
            self._cache.pop(meta_dir, None)
            self._cache[meta_dir] = fresh
            while len(self._cache) > _MAX_CACHED_PREFIXES:
                self._cache.pop(next(iter(self._cache)))
            for memo in (self._views, self._last):
                while len(memo) > _MAX_CACHED_PREFIXES:
                    memo.pop(next(iter(memo)))
        return fresh, bool(old) and reused == len(fresh) == len(old)


def _read_file(dir_fd: int, fname: str) -> bytes:
    """Read a whole file opened read-only (O_RDONLY: nothing here can write)."""
    fd = os.open(fname, os.O_RDONLY, dir_fd=dir_fd)
    try:
        chunk = os.read(fd, _READ_SIZE)
        if len(chunk) < _READ_SIZE:
            return chunk
        chunks = [chunk]
        while chunk:
            chunk = os.read(fd, _READ_SIZE)
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _read_entry(meta_dir: str, dir_fd: int, fname: str, key: StatKey | None) -> _Entry:
    path = f"{meta_dir}/{fname}"
    try:
        raw = _read_file(dir_fd, fname)
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        rec = _RECORD.decode(raw)
    except msgspec.DecodeError as exc:
        raise SnapshotError(_describe_corruption(path, raw, exc)) from exc
    if fname[:-5] != f"{rec.name}-{rec.version}-{rec.build}":
        return _Entry(
            key=key,
            package=None,
            warning=f"{path}: ignored: file name is not {rec.name}-{rec.version}-{rec.build}.json"
            " (conda ignores it too)",
        )
    anchors: tuple[str, ...] = ()
    if _ANCHOR_HINTS[0] in raw or _ANCHOR_HINTS[1] in raw:
        files = _FILES.decode(raw).files
        anchors = tuple(f for f in files if f.endswith(_ANCHOR_ENDINGS))
    deps = tuple(m.group(1) for m in map(_DEP_NAME.match, rec.depends) if m)
    return _Entry(
        key=key,
        package=_package(rec),
        depends=deps,
        anchors=anchors,
        site_packages=rec.python_site_packages_path,
    )


def _describe_corruption(path: str, raw: bytes, exc: msgspec.DecodeError) -> str:
    """msgspec gives no line numbers; on this rare path the stdlib parser finds the line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return f"{path}: corrupt record: not UTF-8 text"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        return f"{path}:{err.lineno}: corrupt record: {err.msg}"
    if not isinstance(data, dict):
        return f"{path}:1: corrupt record: not a JSON object"
    for field in ("name", "version", "build"):
        if field not in data:
            return f"{path}: corrupt record: no {field!r} field"
    return f"{path}: corrupt record: {exc}"


def _package(rec: _Record) -> Package:
    if rec.url:
        channel, subdir, _ = split_package_url(rec.url)
    else:
        channel, subdir = canonical_channel(rec.channel or ""), ""
    return Package(
        name=rec.name,
        version=rec.version,
        build=rec.build,
        build_number=rec.build_number,
        manager="conda",
        channel=channel,
        subdir=rec.subdir or subdir,
        md5=rec.md5 or None,
        sha256=rec.sha256 or None,
        url=mask_url(rec.url) if rec.url else None,
        clobbered=False,
    )


def _order(pkg: Package) -> tuple[str, str]:
    return (pkg.name, pkg.manager)


@dataclass(frozen=True)
class _CondaView:
    """What the conda records say, derived once per set of unchanged record files."""

    packages: dict[str, Package]
    ordered: tuple[Package, ...]  # conda packages in snapshot order
    warnings: tuple[str, ...]
    platform: str | None
    site_packages: str | None  # prefix-relative, when the prefix has a python record
    owned: dict[str, str]  # conda-owned distribution anchor -> record name


def _conda_view(entries: dict[str, _Entry]) -> _CondaView:
    records: dict[str, _Entry] = {}
    for entry in entries.values():
        if entry.package is not None:
            records[entry.package.name] = entry
    packages = {name: e.package for name, e in records.items() if e.package is not None}
    sp_dir: str | None = None
    owned: dict[str, str] = {}
    python = records.get("python")
    if python is not None and python.package is not None:
        sp_dir = pip_dists.site_packages_dir(python.package.version, python.site_packages)
        owned = pip_dists.conda_anchor_files(
            sp_dir, {name: records[name].anchors for name in _python_dependents(records)}
        )
    return _CondaView(
        packages=packages,
        ordered=tuple(sorted(packages.values(), key=_order)),
        warnings=tuple(e.warning for e in entries.values() if e.warning),
        platform=_platform_of(packages.values()),
        site_packages=sp_dir,
        owned=owned,
    )


def _pip_packages(
    prefix: Path, view: _CondaView, packages: dict[str, Package], warnings: list[str]
) -> list[Package]:
    """Scan site-packages afresh every time: pip changes it without touching conda-meta."""
    sp_dir = view.site_packages
    if sp_dir is None or not (prefix / sp_dir).is_dir():
        return []
    owned = view.owned
    present = pip_dists.site_packages_anchor_files(prefix, sp_dir)
    for anchor in sorted(set(owned) - present):
        name = owned[anchor]
        packages[name] = replace(packages[name], clobbered=True)
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


def _python_dependents(records: Mapping[str, _Entry]) -> set[str]:
    """Names of records that depend on python, directly or not (conda's PrefixGraph)."""
    dependents: dict[str, set[str]] = {}
    for name, entry in records.items():
        for dep in entry.depends:
            dependents.setdefault(dep, set()).add(name)
    seen: set[str] = set()
    todo = ["python"]
    while todo:
        for child in dependents.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def _platform_of(packages: Iterable[Package]) -> str | None:
    """The prefix's subdir: the most common non-noarch subdir among its records."""
    counts: dict[str, int] = {}
    for pkg in packages:
        if pkg.subdir and pkg.subdir not in ("noarch", PYPI):
            counts[pkg.subdir] = counts.get(pkg.subdir, 0) + 1
    return max(counts, key=lambda s: counts[s]) if counts else None
