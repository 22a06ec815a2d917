"""pixi.lock (versions 6 and 7) read through rattler, the library pixi itself is built on.

rattler knows every field and version quirk of the format but reports neither line numbers
nor YAML positions, so the file is also scanned for where each package is declared, and a
file rattler rejects is composed as YAML to point at a syntax error when there is one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from yaml.nodes import Node

from producer.locks import records, signatures, yaml_nodes
from producer.locks.interface import LockError, PlatformMissing
from producer.locks.naming import hex_digest, pypi_name
from worker.channels import canonical_channel, split_package_url
from worker.models import Lock, LockedPackage, LockKind

if TYPE_CHECKING:  # rattler is imported when a pixi.lock is read, not on every start-up
    import rattler
    from rattler.lock import CondaLockedBinaryPackage, PypiLockedPackage

FORMAT = "pixi"
DEFAULT_ENVIRONMENT = "default"

_DECLARATION = re.compile(r"^- (?:conda|pypi)[ \t]*:[ \t]*['\"]?([^'\"\s#]+)", re.MULTILINE)
_RATTLER_LINE = re.compile(r"line (\d+)")


class PixiLoader:
    format = FORMAT

    def sniff(self, path: Path, text: str) -> bool:
        return signatures.pixi(signatures.head(text))

    def load(self, path: Path, text: str, *, platform: str, environment: str | None) -> Lock:
        from rattler import lock as rattler_lock

        lock_file = _read(path, text)
        name = environment or DEFAULT_ENVIRONMENT
        env = lock_file.environment(name)
        if env is None:
            have = ", ".join(sorted(n for n, _ in lock_file.environments())) or "none"
            raise LockError(path, None, f"no environment {name!r}; the lock has: {have}")
        lock_platform = next((p for p in env.platforms() if p.name == platform), None)
        if lock_platform is None:
            have = ", ".join(sorted(p.name for p in env.platforms())) or "none"
            raise PlatformMissing(
                path, None, f"no packages for platform {platform} in {name!r}; the lock has: {have}"
            )
        lines = _declaration_lines(text)
        packages: list[LockedPackage] = []
        notes: list[str] = []
        for package in env.packages(lock_platform) or []:
            line = lines.get(package.location)
            try:
                if isinstance(package, rattler_lock.CondaLockedBinaryPackage):
                    converted = _conda(package, line)
                elif isinstance(package, rattler_lock.PypiLockedPackage):
                    converted = _pypi(package, line)
                else:
                    notes.append(
                        f"{path}:{line or '?'}: {package.name} is built from source "
                        f"({package.location}); only its name is checked"
                    )
                    converted = records.locked_package(name=package.name, line=line)
            except Exception as exc:  # rattler's accessors fail in their own ways on odd input
                message = f"unreadable package {package.location!r}: {exc}"
                raise LockError(path, line, message) from None
            packages.append(converted)
        if not packages:
            raise PlatformMissing(path, None, f"no packages for platform {platform} in {name!r}")
        channels = [canonical_channel(str(channel)) for channel in env.channels()]
        return records.lock(
            source=str(path),
            format=FORMAT,
            kind=LockKind.FULL,
            platform=platform,
            environment=name,
            channels=[c for c in channels if c],
            packages=packages,
            notes=notes,
        )


def _read(path: Path, text: str) -> rattler.LockFile:
    import rattler

    try:
        return rattler.LockFile.from_path(path)
    except Exception as exc:  # rattler's ParseCondaLockError and I/O errors
        message = str(exc).strip() or type(exc).__name__
    # rattler gives no position: find a YAML syntax error ourselves, else the likely culprit.
    root = yaml_nodes.compose(path, text)
    match = _RATTLER_LINE.search(message)
    line = int(match.group(1)) if match else _locate(path, root, message)
    raise LockError(path, line, f"not a valid pixi lock: {message}")


def _locate(path: Path, root: Node | None, message: str) -> int | None:
    """Best guess at the line rattler objects to: the version key, or a malformed package."""
    if root is None:
        return None
    try:
        top = yaml_nodes.mapping(path, root, "a pixi lock")
        if "version" in message and "version" in top:
            return yaml_nodes.key_lines(root)["version"]
        packages = top.get("packages")
        if packages is None:
            return None
        for entry in yaml_nodes.sequence(path, packages, "'packages'"):
            fields = yaml_nodes.mapping(path, entry, "a package")
            if "conda" not in fields and "pypi" not in fields:
                return yaml_nodes.line_of(entry)
            lines = yaml_nodes.key_lines(entry)
            for key, length in (("md5", 32), ("sha256", 64)):
                node = fields.get(key)
                if node is not None:
                    value = yaml_nodes.scalar(path, node, key)
                    if hex_digest(value, length) is None:
                        return lines[key]
    except LockError as exc:
        return exc.line
    return None


def _declaration_lines(text: str) -> dict[str, int]:
    """Package URL -> line of its `- conda:` / `- pypi:` entry in the top-level `packages:`."""
    lines: dict[str, int] = {}
    line, position = 1, 0
    for match in _DECLARATION.finditer(text):
        line += text.count("\n", position, match.start())
        position = match.start()
        lines.setdefault(match.group(1), line)
    return lines


def _conda(package: CondaLockedBinaryPackage, line: int | None) -> LockedPackage:
    record = package.repo_data_record()
    url = str(record.url)
    url_channel, url_subdir, _ = split_package_url(url)
    channel = canonical_channel(record.channel) if record.channel else url_channel
    return records.locked_package(
        name=record.name.normalized,
        version=str(record.version),
        build=str(record.build),
        channel=channel or None,
        subdir=str(record.subdir) or url_subdir or None,
        md5=record.md5.hex() if record.md5 else None,
        sha256=record.sha256.hex() if record.sha256 else None,
        url=url,
        line=line,
    )


def _pypi(package: PypiLockedPackage, line: int | None) -> LockedPackage:
    hashes = package.hashes
    sha256 = hashes.sha256 if hashes is not None else None
    return records.locked_package(
        name=pypi_name(package.name),
        manager="pypi",
        version=str(package.version),
        sha256=sha256.hex() if sha256 else None,
        url=package.location,
        line=line,
    )
