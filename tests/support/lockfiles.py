"""Write lock files of every supported format from real installed prefixes.

Tests install a prefix, write its lock in format X, then drift the prefix: the lock is the
prefix's own truth, written the way each real tool writes it (conda-lock's YAML shape, CEP 23
explicit lines, py-rattler's own pixi.lock writer, conda's golden outputs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import rattler
import yaml

from worker.snapshot import conda_json
from worker.snapshot.conda_meta import CondaMetaSource


def records(prefix: Path) -> list[dict[str, Any]]:
    found = [json.loads(p.read_text()) for p in (prefix / "conda-meta").glob("*.json")]
    return sorted(found, key=lambda r: r["name"])


def conda_lock(prefixes: Mapping[str, Path], pip: Mapping[str, str] | None = None) -> str:
    """conda-lock v1 for one prefix per platform; `pip` adds `manager: pip` entries."""
    packages: list[dict[str, Any]] = []
    for platform, prefix in prefixes.items():
        for r in records(prefix):
            packages.append(
                {
                    "name": r["name"],
                    "version": r["version"],
                    "manager": "conda",
                    "platform": platform,
                    "dependencies": {},
                    "url": r["url"],
                    "hash": {"md5": r["md5"], "sha256": r["sha256"]},
                    "category": "main",
                    "optional": False,
                }
            )
        for name, version in (pip or {}).items():
            packages.append(
                {
                    "name": name,
                    "version": version,
                    "manager": "pip",
                    "platform": platform,
                    "dependencies": {},
                    "url": f"https://files.example.invalid/{name}-{version}.whl",
                    "hash": {"sha256": "0" * 64},
                    "category": "main",
                    "optional": False,
                }
            )
    doc = {
        "version": 1,
        "metadata": {
            "content_hash": {p: "0" * 64 for p in prefixes},
            "channels": [{"url": "conda-forge", "used_env_vars": []}],
            "platforms": list(prefixes),
            "sources": ["environment.yml"],
        },
        "package": packages,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def explicit(prefix: Path, platform: str = "linux-64", hash_form: str = "md5") -> str:
    lines = [f"# platform: {platform}", "@EXPLICIT"]
    for r in records(prefix):
        if hash_form == "md5":
            lines.append(f"{r['url']}#{r['md5']}")
        elif hash_form == "sha256":
            lines.append(f"{r['url']}#{r['sha256']}")
        else:
            lines.append(f"{r['url']}#sha256:{r['sha256']}")
    return "\n".join(lines) + "\n"


def pixi_lock(
    prefix: Path, path: Path, platform: str = "linux-64", environment: str = "default"
) -> None:
    """The way SOURCES.md says the sample pixi.lock was written: py-rattler's own writer."""
    recs = [
        rattler.PrefixRecord.from_path(p) for p in sorted((prefix / "conda-meta").glob("*.json"))
    ]
    lock_platform = rattler.LockPlatform(platform)
    lock = rattler.LockFile([lock_platform])
    channel = recs[0].url.rsplit("/", 2)[0] + "/" if recs else "https://conda.anaconda.org/x/"
    lock.set_channels(environment, [rattler.LockChannel(channel)])
    for rec in recs:
        lock.add_conda_package(environment, lock_platform, rec)
    lock.to_path(path)


def golden_json(prefix: Path) -> str:
    return conda_json.render(CondaMetaSource().snapshot(prefix))


def golden_export(prefix: Path, platform: str = "linux-64") -> str:
    snap = CondaMetaSource().snapshot(prefix)
    lines = [f"# platform: {platform}"]
    lines += [
        f"{e['name']}={e['version']}={e['build_string']}"
        for e in conda_json.conda_list_entries(snap)
    ]
    return "\n".join(lines) + "\n"


def environment_yml(
    conda_specs: list[str], pip_specs: list[str] | None = None, channels: tuple[str, ...] = ()
) -> str:
    deps: list[Any] = list(conda_specs)
    if pip_specs:
        deps.append({"pip": pip_specs})
    return yaml.safe_dump(
        {"name": "t", "channels": list(channels), "dependencies": deps}, sort_keys=False
    )
