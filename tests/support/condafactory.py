"""Genuine conda packages, channels and prefixes for tests, benchmarks and examples.

Hand-written conda-meta JSON tends to agree with the reader that was written alongside it,
so both can be wrong together. Everything here goes through the real tools instead:
archives are packed by conda-package-handling, channels are indexed by `rattler.index`,
and prefixes are solved and linked by py-rattler exactly as on a host. Drift is then
produced the way it happens in the field — by installing something else over a prefix,
by pip writing into site-packages, by a half-written file — so a reader that handles
these prefixes handles real ones.

The one exception is `synthetic_prefix`, which writes records without archives because
linking thousands of packages would make benchmarks measure rattler, not lockstep.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast

import rattler
from conda_package_handling import api as cph_api
from rattler.index import index_fs

ArchiveFormat = Literal[".conda", ".tar.bz2"]
NoArch = Literal["python", "generic"]

PYTHON_VERSION = "3.11"
SITE_PACKAGES = f"lib/python{PYTHON_VERSION}/site-packages"
# Fixed build time and file mtimes: rebuilding a channel yields byte-identical archives, so
# the same spec built into two channels differs only in where it lives (pure CHANNEL drift).
BUILD_TIMESTAMP_MS = 1714000000000
_MTIME = BUILD_TIMESTAMP_MS // 1000
_ARCH = {"linux-64": ("linux", "x86_64"), "linux-aarch64": ("linux", "aarch64")}

_T = TypeVar("_T")


@dataclass(frozen=True)
class PackageSpec:
    """What to put into one conda archive.

    `files` are payload paths relative to the prefix (for `noarch: python`, relative to
    the archive root, i.e. `site-packages/...`); None gives one small file under `share/`.
    `fmt` overrides the channel-wide archive format, because real channels mix both.
    """

    name: str
    version: str
    build: str | None = None
    build_number: int = 0
    subdir: str = "linux-64"
    depends: list[str] = field(default_factory=list)
    files: dict[str, bytes] | None = None
    noarch: NoArch | None = None
    python_site_packages: bool = False
    license: str = "BSD-3-Clause"
    fmt: ArchiveFormat | None = None

    def __post_init__(self) -> None:
        if self.noarch is not None and self.subdir != "noarch":
            raise ValueError(f"{self.name}: noarch packages must use subdir 'noarch'")
        if self.noarch is None and self.subdir == "noarch":
            raise ValueError(f"{self.name}: subdir 'noarch' needs noarch='python'|'generic'")

    @property
    def build_string(self) -> str:
        if self.build is not None:
            return self.build
        digest = hashlib.sha256(f"{self.name}-{self.version}".encode()).hexdigest()[:7]
        return f"h{digest}_{self.build_number}"

    @property
    def dist_name(self) -> str:
        return f"{self.name}-{self.version}-{self.build_string}"

    def payload(self) -> dict[str, bytes]:
        """Every file of the archive outside `info/`, keyed by its archive path."""
        files = dict(self.files) if self.files is not None else self._default_files()
        if self.python_site_packages:
            root = "site-packages" if self.noarch == "python" else SITE_PACKAGES
            for rel, data in conda_dist_info(self.name, self.version).items():
                files[f"{root}/{rel}"] = data
        return files

    def _default_files(self) -> dict[str, bytes]:
        if self.python_site_packages:
            return {}
        return {f"share/{self.name}/README": f"{self.dist_name}\n".encode()}


@dataclass(frozen=True)
class Channel:
    """A local channel directory and the `file://` URL conda and rattler know it by."""

    path: Path
    specs: tuple[PackageSpec, ...] = ()

    @property
    def url(self) -> str:
        return self.path.resolve().as_uri()

    @property
    def name(self) -> str:
        """conda's display name of a `file://` channel is its last path segment."""
        return self.path.name


class PrefixFactory(Protocol):
    """The `make_prefix` fixture: install specs into a fresh prefix and return its path."""

    def __call__(
        self,
        specs: Sequence[str] | None = None,
        name: str = "env",
        channel: Channel | None = None,
    ) -> Path: ...


# --------------------------------------------------------------------------- building


def build_package(spec: PackageSpec, out_dir: Path, fmt: ArchiveFormat = ".conda") -> Path:
    """Pack `spec` into `<out_dir>/<subdir>/<name>-<version>-<build><fmt>` and return it."""
    fmt = spec.fmt or fmt
    target_dir = Path(out_dir) / spec.subdir
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{spec.dist_name}{fmt}"
    payload = spec.payload()
    with tempfile.TemporaryDirectory(prefix=f"cf-{spec.name}-") as tmp:
        src = Path(tmp)
        for rel, data in payload.items():
            _write(src / rel, data)
        for rel, data in _info_files(spec, payload).items():
            _write(src / rel, data)
        members = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
        for path in src.rglob("*"):
            os.utime(path, (_MTIME, _MTIME))
        if target.exists():
            target.unlink()
        cph_api.create(str(src), members, str(target))
    if fmt == ".conda":
        _pin_zip_times(target)
    return target


def _pin_zip_times(archive: Path) -> None:
    """Give the outer zip of a `.conda` a fixed date, as reproducible builds do.

    conda-package-handling stamps each zip member with the current time, so the same
    package built a second later gets another sha256. Members, order and the stored
    (uncompressed) layout are kept exactly; only the timestamps change.
    """
    date_time = time.gmtime(_MTIME)[:6]
    with zipfile.ZipFile(archive) as original:
        members = [(info, original.read(info)) for info in original.infolist()]
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as pinned:
        for info, data in members:
            fixed = zipfile.ZipInfo(info.filename, date_time=date_time)
            fixed.compress_type = info.compress_type
            fixed.external_attr = info.external_attr
            with pinned.open(fixed, "w", force_zip64=True) as out:
                out.write(data)


def _info_files(spec: PackageSpec, payload: dict[str, bytes]) -> dict[str, bytes]:
    index: dict[str, Any] = {
        "name": spec.name,
        "version": spec.version,
        "build": spec.build_string,
        "build_number": spec.build_number,
        "depends": list(spec.depends),
        "license": spec.license,
        "subdir": spec.subdir,
        "timestamp": BUILD_TIMESTAMP_MS,
    }
    if spec.noarch is not None:
        index["noarch"] = spec.noarch
    else:
        platform, arch = _ARCH.get(spec.subdir, (spec.subdir.split("-")[0], None))
        index["platform"] = platform
        index["arch"] = arch
    paths = [
        {
            "_path": rel,
            "path_type": "hardlink",
            "sha256": hashlib.sha256(data).hexdigest(),
            "size_in_bytes": len(data),
        }
        for rel, data in sorted(payload.items())
    ]
    info = {
        "info/index.json": _json(index),
        "info/paths.json": _json({"paths": paths, "paths_version": 1}),
        "info/files": "".join(f"{rel}\n" for rel in sorted(payload)).encode(),
    }
    if spec.noarch == "python":
        # conda-build writes this for noarch: python; installers read it to relocate
        # `site-packages/` into the target python's lib directory.
        link = {"noarch": {"type": "python"}, "package_metadata_version": 1}
        info["info/link.json"] = _json(link)
    return info


def conda_dist_info(name: str, version: str) -> dict[str, bytes]:
    """The dist-info a conda python package ships (paths relative to site-packages).

    conda-forge builds record hex sha256 digests in RECORD, unlike pip's urlsafe base64;
    readers telling conda-owned from pip-owned dist-info meet both spellings.
    """
    module = _import_name(name)
    dist = f"{_dist_name(name)}-{version}.dist-info"
    files = {
        f"{module}/__init__.py": f"__version__ = '{version}'\n".encode(),
        f"{dist}/INSTALLER": b"conda\n",
        f"{dist}/METADATA": (
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            f"Summary: {name} built by lockstep's test factory\n"
        ).encode(),
        f"{dist}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: condafactory\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    rows = [
        (rel, f"sha256={hashlib.sha256(data).hexdigest()}", str(len(data)))
        for rel, data in sorted(files.items())
    ]
    files[f"{dist}/RECORD"] = _record_csv([*rows, (f"{dist}/RECORD", "", "")])
    return files


def build_channel(
    specs: Iterable[PackageSpec], root: Path, fmt: ArchiveFormat = ".conda"
) -> Channel:
    """Build every spec into `root` and index it, giving a channel rattler can solve from."""
    root = Path(root)
    specs = tuple(specs)
    root.mkdir(parents=True, exist_ok=True)
    # conda channels always have noarch; rattler indexes only subdirs that exist.
    (root / "noarch").mkdir(exist_ok=True)
    for spec in specs:
        build_package(spec, root, fmt)
    index_channel(root)
    return Channel(path=root, specs=specs)


def index_channel(root: Path) -> None:
    """(Re)write repodata.json for every subdir of `root`, plain JSON only."""
    _run(index_fs(Path(root), write_zst=False, write_shards=False, force=True))


# --------------------------------------------------------------------------- installing


def install_prefix(
    channel: Channel | Sequence[Channel],
    specs: Sequence[str],
    prefix: Path,
    platform: str = "linux-64",
    *,
    virtual_packages: Sequence[str] = (),
    cache_dir: Path | None = None,
) -> list[rattler.RepoDataRecord]:
    """Solve `specs` against local channels and link the result into `prefix`, offline.

    Without `cache_dir` the package cache is a temporary directory removed afterwards: rattler
    hardlinks files out of its cache, and a shared cache would let a test that edits an
    installed file in place corrupt every other prefix. Virtual packages are given as
    `"__linux=6.5"`-style strings; none are needed by `standard_specs()`.
    """
    channels = [channel] if isinstance(channel, Channel) else list(channel)
    records = _run(_solve(channels, specs, platform, virtual_packages))
    _link(records, Path(prefix), platform, specs, cache_dir, installed=None)
    return records


def replace_packages(
    channel: Channel, specs: Sequence[str], prefix: Path, platform: str = "linux-64"
) -> None:
    """Install `specs` over an existing prefix, touching only the packages they name.

    This is what `conda install --no-deps` or a forced install from another channel leaves
    behind: the named packages change (version, build, channel), everything else stays,
    even if dependencies no longer agree.
    """
    prefix = Path(prefix)
    installed = read_prefix_records(prefix)
    solved = _run(_solve([channel], specs, platform, ()))
    wanted = {rattler.MatchSpec(s).name.normalized for s in specs}
    new = [r for r in solved if r.name.normalized in wanted]
    keep = [r for r in installed if r.name.normalized not in wanted]
    # Same name-version-build with the same hash counts as unchanged for rattler; a move to
    # another channel must still relink, as `conda install --force-reinstall -c other` does.
    requested = [*_requested_specs(keep), *specs]
    _link([*keep, *new], prefix, platform, requested, None, installed=installed, reinstall=wanted)


def remove_package(prefix: Path, name: str, platform: str = "linux-64") -> None:
    """Unlink one package and its record, ignoring dependents (`conda remove --force`)."""
    prefix = Path(prefix)
    installed = read_prefix_records(prefix)
    if not any(r.name.normalized == name for r in installed):
        raise ValueError(f"{name} is not installed in {prefix}")
    keep = [r for r in installed if r.name.normalized != name]
    _link(keep, prefix, platform, _requested_specs(keep), None, installed=installed)


def _requested_specs(records: Sequence[rattler.PrefixRecord]) -> list[str]:
    """The specs recorded so far; rattler rewrites every record's list from what it is given."""
    return [spec for record in records for spec in record.requested_specs]


def read_prefix_records(prefix: Path) -> list[rattler.PrefixRecord]:
    return [
        rattler.PrefixRecord.from_path(path)
        for path in sorted((Path(prefix) / "conda-meta").glob("*.json"))
        if not path.name.startswith("._")
    ]


async def _solve(
    channels: Sequence[Channel], specs: Sequence[str], platform: str, virtual: Sequence[str]
) -> list[rattler.RepoDataRecord]:
    # file:// channels are read in place; the temporary cache only keeps rattler from
    # creating its default cache in the user's home.
    with tempfile.TemporaryDirectory(prefix="condafactory-repodata-") as cache:
        return await rattler.solve(
            [c.url for c in channels],
            list(specs),
            gateway=rattler.Gateway(cache_dir=Path(cache)),
            platforms=[rattler.Subdir(platform), rattler.Subdir("noarch")],
            virtual_packages=[_virtual_package(v) for v in virtual],
            channel_relations="disabled",
        )


def _virtual_package(text: str) -> rattler.GenericVirtualPackage:
    name, _, rest = text.partition("=")
    version, _, build = rest.partition("=")
    return rattler.GenericVirtualPackage(
        rattler.PackageName(name),
        rattler.Version(version or "0"),
        rattler.BuildString(build or "0"),
    )


def _link(
    records: Sequence[rattler.RepoDataRecord],
    prefix: Path,
    platform: str,
    specs: Sequence[str],
    cache_dir: Path | None,
    installed: list[rattler.PrefixRecord] | None,
    reinstall: set[str] | None = None,
) -> None:
    prefix.mkdir(parents=True, exist_ok=True)
    # py-rattler 0.28 hands its MatchSpec wrappers straight to the Rust side, which rejects
    # them ("not an instance of PyMatchSpec"); the inner objects are what it expects.
    requested = cast(
        "list[rattler.MatchSpec] | None",
        [rattler.MatchSpec(s)._match_spec for s in specs] or None,
    )

    async def link(cache: Path) -> None:
        await rattler.install(
            list(records),
            prefix,
            cache_dir=cache,
            installed_packages=installed,
            reinstall_packages=reinstall,
            platform=rattler.Subdir(platform),
            execute_link_scripts=False,
            show_progress=False,
            requested_specs=requested,
        )

    if cache_dir is not None:
        _run(link(Path(cache_dir)))
    else:
        with tempfile.TemporaryDirectory(prefix="condafactory-pkgs-") as tmp:
            _run(link(Path(tmp)))
    # conda treats a directory without conda-meta/history as "not an environment".
    (prefix / "conda-meta" / "history").touch(exist_ok=True)


# --------------------------------------------------------------------------- catalogue

_PY_DEP = "python >=3.11,<3.12.0a0"
_ZLIB_DEP = "libzlib >=1.3.1,<2.0a0"

# The clean environment used by fixtures, examples and the sample in tests/data: exact
# pins, because the catalogue deliberately holds competing builds and versions.
CLEAN_SPECS: tuple[str, ...] = (
    "python ==3.11.7 h1234_0_cpython",
    "numpy ==1.26.4 py311h64a7726_0",
    "pandas ==2.2.2",
    "requests ==2.32.3",
    "tzdata ==2024a",
    "openssl ==3.3.1",
)


def _numpy(version: str, build: str, build_number: int) -> PackageSpec:
    return PackageSpec(
        "numpy",
        version,
        build=build,
        build_number=build_number,
        depends=[_ZLIB_DEP, _PY_DEP],
        python_site_packages=True,
    )


def _openssl(version: str) -> PackageSpec:
    return PackageSpec(
        "openssl",
        version,
        build="h4ab18f5_0",
        depends=["ca-certificates", _ZLIB_DEP],
        files={"lib/libssl.so.3": f"ELF stand-in for libssl {version}\n".encode()},
    )


def standard_specs() -> list[PackageSpec]:
    """A small catalogue shaped like a conda-forge python env, with room for every drift.

    numpy has a newer version and a competing build, openssl two versions, and `zstd`
    is never in `CLEAN_SPECS` so it can be installed as an extra package.
    """
    return [
        PackageSpec(
            "python",
            "3.11.7",
            build="h1234_0_cpython",
            depends=[_ZLIB_DEP, "openssl >=3.0.13,<4.0a0", "tzdata", "ca-certificates"],
            files={
                "bin/python3.11": b"#!/bin/sh\necho 'stand-in python' >&2\nexit 1\n",
                "lib/python3.11/os.py": b"# stand-in\n",
                f"{SITE_PACKAGES}/README.txt": (
                    b"This directory exists so that third-party packages can be installed here.\n"
                ),
            },
            fmt=".tar.bz2",
        ),
        _numpy("1.26.4", "py311h64a7726_0", 0),
        _numpy("1.26.4", "py311h0000000_1", 1),
        _numpy("1.26.5", "py311h64a7726_0", 0),
        PackageSpec(
            "pandas",
            "2.2.2",
            build="py311h14de704_1",
            build_number=1,
            depends=["numpy >=1.23.5", _PY_DEP, "tzdata >=2022a"],
            python_site_packages=True,
            fmt=".tar.bz2",
        ),
        PackageSpec(
            "requests",
            "2.32.3",
            build="pyhd8ed1ab_0",
            subdir="noarch",
            noarch="python",
            depends=["python >=3.8"],
            python_site_packages=True,
        ),
        PackageSpec(
            "tzdata",
            "2024a",
            build="h0c530f3_0",
            subdir="noarch",
            noarch="generic",
            files={"share/zoneinfo/UTC": b"TZif2 stand-in\n"},
        ),
        _openssl("3.3.1"),
        _openssl("3.3.2"),
        PackageSpec(
            "libzlib",
            "1.3.1",
            build="h4ab18f5_1",
            build_number=1,
            files={"lib/libz.so.1.3.1": b"ELF stand-in for libz\n"},
        ),
        PackageSpec(
            "ca-certificates",
            "2024.7.4",
            build="hbcca054_0",
            files={"ssl/cacert.pem": b"-----BEGIN CERTIFICATE-----\nstand-in\n"},
        ),
        PackageSpec(
            "zstd",
            "1.5.6",
            build="ha6fb4c9_0",
            depends=[_ZLIB_DEP],
            files={"lib/libzstd.so.1.5.6": b"ELF stand-in for zstd\n"},
        ),
    ]


# --------------------------------------------------------------------------- drift


def site_packages(prefix: Path) -> Path:
    """The site-packages of the prefix's conda python, as conda derives it from the record."""
    for record in read_prefix_records(prefix):
        if record.name.normalized == "python":
            major_minor = ".".join(str(record.version).split(".")[:2])
            return Path(prefix) / "lib" / f"python{major_minor}" / "site-packages"
    raise ValueError(f"{prefix} has no conda python record; pip packages need one")


def add_pip_package(
    prefix: Path,
    name: str,
    version: str,
    *,
    shadow: bool = False,
    requires: Sequence[str] = (),
    minimal: bool = False,
) -> Path:
    """Leave what `pip install name==version` leaves in the prefix; return the dist-info.

    With `shadow=True` the conda package of the same name is uninstalled first the way pip
    does it (files listed in its RECORD, then the dist-info) while its conda-meta record
    stays — exactly the state `pip install --upgrade` over a conda package produces.
    `minimal=True` writes only INSTALLER and METADATA (old or hand-made installs, which
    conda does not list).
    """
    sp = site_packages(prefix)
    if shadow:
        owned = _find_dist_info(sp, name)
        if owned is None:
            raise ValueError(f"no dist-info for {name} in {sp} to shadow")
        _pip_uninstall(sp, owned)
    module = _import_name(name)
    dist = f"{_dist_name(name)}-{version}.dist-info"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    meta += "".join(f"Requires-Dist: {req}\n" for req in requires)
    files: dict[str, bytes] = {
        f"{dist}/INSTALLER": b"pip\n",
        f"{dist}/METADATA": meta.encode(),
    }
    if not minimal:
        files[f"{module}/__init__.py"] = f"__version__ = '{version}'\n".encode()
        files[f"{dist}/WHEEL"] = (
            b"Wheel-Version: 1.0\nGenerator: bdist_wheel (0.43.0)\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        )
        rows = [(rel, _pip_hash(data), str(len(data))) for rel, data in files.items()]
        files[f"{dist}/RECORD"] = _record_csv([*rows, (f"{dist}/RECORD", "", "")])
    for rel, data in files.items():
        _write(sp / rel, data)
    return sp / dist


def _find_dist_info(sp: Path, name: str) -> Path | None:
    wanted = _normalize(name)
    for path in sorted(sp.glob("*.dist-info")):
        dist_name = path.name[: -len(".dist-info")].rsplit("-", 1)[0]
        if _normalize(dist_name) == wanted:
            return path
    return None


def _pip_uninstall(sp: Path, dist_info: Path) -> None:
    record = dist_info / "RECORD"
    if record.exists():
        for row in csv.reader(io.StringIO(record.read_text())):
            if not row:
                continue
            target = (sp / row[0]).resolve()
            if target.is_relative_to(sp.resolve()) and target.is_file():
                target.unlink()
                _prune_empty_dirs(target.parent, sp)
    shutil.rmtree(dist_info, ignore_errors=True)


def _prune_empty_dirs(directory: Path, stop: Path) -> None:
    while directory != stop and directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
        directory = directory.parent


def record_path(prefix: Path, name: str) -> Path:
    """The conda-meta file of the installed package `name`."""
    for path in sorted((Path(prefix) / "conda-meta").glob("*.json")):
        if not path.name.startswith("._") and path.stem.rsplit("-", 2)[0] == name:
            return path
    raise ValueError(f"{name} has no conda-meta record in {prefix}")


def corrupt_record(prefix: Path, name: str) -> Path:
    """Truncate a record mid-write, like a crash or a full disk during `conda install`."""
    path = record_path(prefix, name)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    return path


def remove_history(prefix: Path) -> None:
    """Without `conda-meta/history` conda no longer treats the directory as an environment."""
    (Path(prefix) / "conda-meta" / "history").unlink()


def add_appledouble(prefix: Path, name: str) -> Path:
    """Add the `._<record>.json` AppleDouble file that copying via macOS leaves behind."""
    original = record_path(prefix, name)
    ghost = original.with_name(f"._{original.name}")
    header = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        \x00\x02"
    ghost.write_bytes(header + b"\x00\x00\x00\x09\x00\x00\x00\x32\x00\x00\x0e\xb0")
    return ghost


def add_misnamed_record(prefix: Path, name: str, file_name: str | None = None) -> Path:
    """Copy a record to a file not named `name-version-build.json` (a hand-made backup)."""
    original = record_path(prefix, name)
    target = original.with_name(file_name or f"{name}.json")
    shutil.copyfile(original, target)
    return target


# --------------------------------------------------------------------------- benchmarks


def synthetic_prefix(
    prefix: Path,
    n_packages: int,
    *,
    channel: str = "https://conda.anaconda.org/conda-forge/",
    subdir: str = "linux-64",
) -> list[dict[str, Any]]:
    """FOR BENCHMARKS ONLY: write `n_packages` conda-meta records without any archive.

    Records have every field rattler writes (see tests/data/prefix-good-pip/conda-meta),
    but their md5/sha256 are digests of the dist name, not of a real archive, and the
    payload files listed in `files` are not on disk (only python's site-packages is, so a
    pip scan has somewhere to look). Tests must use `install_prefix` instead. Returns the
    records so a matching lock can be written.
    """
    prefix = Path(prefix)
    meta = prefix / "conda-meta"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "history").touch()
    (prefix / SITE_PACKAGES).mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(n_packages):
        name = "python" if i == 0 else f"pkg-{i:05d}"
        version = "3.11.7" if i == 0 else f"{1 + i % 7}.{i % 13}.{i % 5}"
        record = _synthetic_record(name, version, i, channel.rstrip("/") + "/", subdir)
        (meta / f"{record['fn'].rsplit('.conda', 1)[0]}.json").write_text(
            json.dumps(record, indent=2)
        )
        records.append(record)
    return records


def _synthetic_record(
    name: str, version: str, index: int, channel: str, subdir: str
) -> dict[str, Any]:
    build = f"h{hashlib.sha256(name.encode()).hexdigest()[:7]}_{index % 3}"
    dist = f"{name}-{version}-{build}"
    files = [f"lib/lib{name}.so", f"share/{name}/README"]
    if name == "python":
        files = ["bin/python3.11", f"{SITE_PACKAGES}/README.txt"]
    platform, arch = _ARCH.get(subdir, ("linux", "x86_64"))
    depends = ["python >=3.11,<3.12.0a0"] if index % 4 == 1 else []
    return {
        "arch": arch,
        "build": build,
        "build_number": index % 3,
        "depends": depends,
        "indexed_timestamp": BUILD_TIMESTAMP_MS + 1000,
        "license": "BSD-3-Clause",
        "md5": hashlib.md5(dist.encode(), usedforsecurity=False).hexdigest(),
        "name": name,
        "platform": platform,
        "sha256": hashlib.sha256(dist.encode()).hexdigest(),
        "size": 2000 + index,
        "subdir": subdir,
        "timestamp": BUILD_TIMESTAMP_MS,
        "version": version,
        "fn": f"{dist}.conda",
        "url": f"{channel}{subdir}/{dist}.conda",
        "channel": channel,
        "extracted_package_dir": f"/opt/conda/pkgs/{dist}",
        "requested_specs": [f"{name} =={version}"],
        "files": files,
        "paths_data": {
            "paths_version": 1,
            "paths": [
                {
                    "_path": rel,
                    "path_type": "hardlink",
                    "sha256": hashlib.sha256(f"{dist}/{rel}".encode()).hexdigest(),
                    "size_in_bytes": 64,
                }
                for rel in files
            ],
        },
        "link": {"source": f"/opt/conda/pkgs/{dist}", "type": 1},
    }


# --------------------------------------------------------------------------- helpers


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a rattler coroutine from sync code, even inside a test's running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _json(value: Any) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def _record_csv(rows: Sequence[tuple[str, str, str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def _pip_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_name(name: str) -> str:
    """Wheel spelling of a project name in a dist-info directory name."""
    return re.sub(r"[-_.]+", "_", name)


def _import_name(name: str) -> str:
    return _dist_name(name).lower()
