"""A "golden host": what a known-good environment reports about itself.

Three spellings are accepted, all of which conda writes: `conda list --json` (also
micromamba's `{"packages": [...]}`), `conda list --export` (`name=version=build` lines) and
`conda env export` (YAML with `name=version=build` dependencies and a `pip:` list). None of
them carries hashes (micromamba's JSON aside), so a golden lock pins versions, builds and,
where given, channels.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from yaml.nodes import MappingNode, Node

from producer.locks import records, signatures, yaml_nodes
from producer.locks.interface import LockError, PlatformMissing
from producer.locks.naming import PIN, hex_digest, pypi_name
from worker.channels import PYPI, canonical_channel
from worker.models import Lock, LockedPackage, LockKind

FORMAT = "golden"

_PLATFORM = re.compile(r"#\s*platform\s*:\s*(\S+)\s*$")
_DEPENDENCIES_KEY = re.compile(r"^dependencies[ \t]*:[ \t]*(?:#.*)?$", re.MULTILINE)
_JSON_NAME = re.compile(r'"name"\s*:')
_PIP_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*)\s*===?\s*(?P<version>[^\s;#]+)")
_PYPI_BUILD = "pypi_0"


class GoldenLoader:
    format = FORMAT

    def sniff(self, path: Path, text: str) -> bool:
        return signatures.golden(signatures.head(text))

    def load(self, path: Path, text: str, *, platform: str, environment: str | None) -> Lock:
        head = text.lstrip()[:1]
        notes: list[str] = []
        if head in ("[", "{"):
            packages, subdirs, note = _from_json(path, text), None, "conda list --json"
        elif _DEPENDENCIES_KEY.search(text):
            packages, subdirs, note = _from_env_export(path, text, notes), None, "conda env export"
        else:
            packages, declared = _from_export(path, text)
            subdirs, note = ({declared} if declared else None), "conda list --export"
        if subdirs is None:
            subdirs = {p.subdir for p in packages if p.subdir and p.subdir != "noarch"}
            subdirs.discard(PYPI)
        if subdirs and platform not in subdirs:
            have = ", ".join(sorted(subdirs))
            raise PlatformMissing(
                path, None, f"no packages for platform {platform}; the lock has: {have}"
            )
        if not packages:
            raise LockError(path, None, "no packages listed")
        channels = dict.fromkeys(p.channel for p in packages if p.channel and p.manager == "conda")
        return records.lock(
            source=str(path),
            format=FORMAT,
            kind=LockKind.FULL,
            platform=platform,
            channels=[c for c in channels if c],
            packages=packages,
            notes=[f"golden host lock read as `{note}` output", *notes],
        )


def _from_json(path: Path, text: str) -> list[LockedPackage]:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LockError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise LockError(path, None, "invalid JSON: nested too deeply") from None
    if isinstance(data, dict) and "packages" in data:
        data = data["packages"]
    if not isinstance(data, list):
        raise LockError(path, 1, "expected a JSON array of packages, as `conda list --json` prints")
    lines: list[int | None] = []
    line, position = 1, 0
    for match in _JSON_NAME.finditer(text):
        line += text.count("\n", position, match.start())
        position = match.start()
        lines.append(line)
    if len(lines) != len(data):
        lines = [None] * len(data)
    return [_json_package(path, entry, index, lines[index]) for index, entry in enumerate(data)]


def _json_text(entry: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _json_package(path: Path, entry: Any, index: int, line: int | None) -> LockedPackage:
    where = f"package #{index + 1}"
    if not isinstance(entry, dict):
        raise LockError(path, line, f"{where} is not a JSON object")
    name = _json_text(entry, "name")
    version = _json_text(entry, "version")
    if name is None or version is None:
        missing = "name" if name is None else "version"
        raise LockError(path, line, f"{where} has no {missing!r}")
    subdir = _json_text(entry, "platform", "subdir")
    channel = _json_text(entry, "channel")
    if channel == PYPI or subdir == PYPI:
        return records.locked_package(
            name=pypi_name(name), manager="pypi", version=version, line=line
        )
    base = _json_text(entry, "base_url") or channel
    return records.locked_package(
        name=name,
        version=version,
        build=_json_text(entry, "build_string", "build"),
        channel=canonical_channel(base) if base else None,
        subdir=subdir,
        md5=hex_digest(_json_text(entry, "md5"), 32),
        sha256=hex_digest(_json_text(entry, "sha256"), 64),
        url=_json_text(entry, "url"),
        line=line,
    )


def _from_export(path: Path, text: str) -> tuple[list[LockedPackage], str | None]:
    declared: str | None = None
    packages: list[LockedPackage] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            match = _PLATFORM.match(line)
            if match is not None:
                declared = match.group(1)
            continue
        packages.append(_pinned(path, lineno, line, require_build=True))
    return packages, declared


def _pinned(path: Path, lineno: int, text: str, *, require_build: bool) -> LockedPackage:
    match = PIN.fullmatch(text)
    if match is None or (require_build and match.group("build") is None):
        shape = "name=version=build" if require_build else "name=version[=build]"
        raise LockError(path, lineno, f"expected {shape}, got {text!r}")
    name, version, build = match.group("name", "version", "build")
    if build == _PYPI_BUILD:
        return records.locked_package(
            name=pypi_name(name), manager="pypi", version=version, line=lineno
        )
    channel = match.group("channel")
    return records.locked_package(
        name=name,
        version=version,
        build=build,
        channel=canonical_channel(channel) if channel else None,
        line=lineno,
    )


def _from_env_export(path: Path, text: str, notes: list[str]) -> list[LockedPackage]:
    node = yaml_nodes.compose(path, text)
    if node is None:
        raise LockError(path, None, "file is empty")
    root = yaml_nodes.mapping(path, node, "an environment export")
    dependencies = root.get("dependencies")
    if dependencies is None or yaml_nodes.is_null(dependencies):
        raise LockError(path, 1, "no 'dependencies' list")
    packages: list[LockedPackage] = []
    for item in yaml_nodes.sequence(path, dependencies, "'dependencies'"):
        if isinstance(item, MappingNode):
            pip = yaml_nodes.mapping(path, item, "a dependency").get("pip")
            if pip is not None and not yaml_nodes.is_null(pip):
                for pip_item in yaml_nodes.sequence(path, pip, "'pip'"):
                    package = _pip_pin(path, pip_item, notes)
                    if package is not None:
                        packages.append(package)
            continue
        spec = yaml_nodes.text_value(path, item, "a dependency")
        packages.append(_pinned(path, yaml_nodes.line_of(item), spec, require_build=False))
    return packages


def _pip_pin(path: Path, node: Node, notes: list[str]) -> LockedPackage | None:
    line = yaml_nodes.line_of(node)
    text = yaml_nodes.text_value(path, node, "a pip entry")
    match = _PIP_PIN.fullmatch(text)
    if match is None:
        notes.append(f"{path}:{line}: ignored pip line {text!r} (not name==version)")
        return None
    return records.locked_package(
        name=pypi_name(match.group("name")),
        manager="pypi",
        version=match.group("version"),
        line=line,
    )
