"""Find the pip-installed packages of a prefix the way conda's PrefixData does.

conda lists a package as `pypi_0` when site-packages holds a distribution anchor that no
conda record owns. Anchors are `X.dist-info/RECORD`, `X.egg-info/PKG-INFO` and a bare
`X.egg-info` file. A dist-info without RECORD (or without METADATA) is skipped, because
conda fails to read it and moves on — reproducing that keeps our listing equal to conda's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_ANCHOR_ENDINGS = (".egg-info/PKG-INFO", ".dist-info/RECORD", ".egg-info")

# conda renames a handful of PyPI projects whose conda package has another name.
_PYPI_TO_CONDA = {"graphviz": "python-graphviz"}


@dataclass(frozen=True)
class PipDist:
    name: str
    version: str
    anchor: str


def normalize_pypi_name(name: str) -> str:
    """conda's `norm_package_name`: lower case, `.` and `_` become `-`."""
    normalized = name.replace(".", "-").replace("_", "-").lower()
    return _PYPI_TO_CONDA.get(normalized, normalized)


def site_packages_dir(python_version: str, override: str | None = None) -> str:
    """Prefix-relative site-packages for a python record (CEP 17's override wins)."""
    if override:
        return override.strip("/")
    major_minor = ".".join(python_version.split(".")[:2])
    return f"lib/python{major_minor}/site-packages"


def conda_anchor_files(sp_dir: str, files_by_record: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Map each conda-owned anchor file to the name of the record that owns it.

    A record owning several anchors is keyed by the shortest one, as conda does.
    """
    pattern = re.compile(
        rf"^{re.escape(sp_dir)}/[^/]+(?:{'|'.join(re.escape(e) for e in _ANCHOR_ENDINGS)})$"
    )
    owned: dict[str, str] = {}
    for name, files in files_by_record.items():
        anchors = [f for f in files if pattern.match(f)]
        if anchors:
            owned[min(anchors, key=len)] = name
    return owned


def site_packages_anchor_files(prefix: Path, sp_dir: str) -> set[str]:
    """Every distribution anchor present in site-packages, prefix-relative."""
    anchors: set[str] = set()
    try:
        entries = list(os.scandir(prefix / sp_dir))
    except OSError:
        return anchors
    for entry in entries:
        fname = entry.name
        if fname.endswith(".dist-info"):
            anchors.add(f"{sp_dir}/{fname}/RECORD")
        elif fname.endswith(".egg-info"):
            if entry.is_file():
                anchors.add(f"{sp_dir}/{fname}")
            else:
                anchors.add(f"{sp_dir}/{fname}/PKG-INFO")
    return anchors


def read_dist(prefix: Path, anchor: str) -> PipDist | str:
    """Read one non-conda distribution; return a reason string when conda would skip it."""
    if anchor.endswith(".dist-info/RECORD"):
        meta_dir = prefix / anchor[: -len("/RECORD")]
        if not (prefix / anchor).is_file():
            return f"{anchor}: no RECORD file; conda does not list this distribution"
        metadata = meta_dir / "METADATA"
    elif anchor.endswith("/PKG-INFO"):
        metadata = prefix / anchor
    else:
        metadata = prefix / anchor
    try:
        raw = metadata.read_bytes()
    except OSError:
        return f"{anchor}: no readable metadata; conda does not list this distribution"
    headers = _parse_headers(raw.decode("utf-8", errors="replace"))
    name, version = headers.get("name"), headers.get("version")
    if not name or not version:
        return f"{anchor}: metadata lacks Name or Version; conda does not list it"
    return PipDist(name=normalize_pypi_name(name), version=version, anchor=anchor)


def _parse_headers(text: str) -> dict[str, str]:
    """RFC 822 style headers up to the first blank line; only the first of each is kept."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        if line[:1] in (" ", "\t") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        headers.setdefault(key.strip().lower(), value.strip())
    return headers
