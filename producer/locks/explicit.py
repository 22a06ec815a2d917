"""@EXPLICIT spec files (CEP 23), as written by `conda list --explicit` and by conda-lock.

Every package is one URL line, so a line number is exact and no YAML is involved. The file
names its platform only in a `# platform:` comment; without one, the platform is read from
the subdirs of the URLs.
"""

from __future__ import annotations

import re
from pathlib import Path

from producer.locks import records, signatures
from producer.locks.interface import LockError, PlatformMissing
from producer.locks.naming import hex_digest
from worker.channels import split_archive_name, split_package_url
from worker.models import Lock, LockedPackage, LockKind

FORMAT = "explicit"

_PLATFORM = re.compile(r"#\s*platform\s*:\s*(\S+)\s*$")


class ExplicitLoader:
    format = FORMAT

    def sniff(self, path: Path, text: str) -> bool:
        return signatures.explicit(signatures.head(text))

    def load(self, path: Path, text: str, *, platform: str, environment: str | None) -> Lock:
        declared: str | None = None
        seen_marker = False
        packages: list[LockedPackage] = []
        subdirs: set[str] = set()
        channels: dict[str, None] = {}
        names: dict[str, int] = {}
        notes: list[str] = []
        for lineno, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            if line.startswith("#"):
                match = _PLATFORM.match(line)
                if match is not None:
                    declared = match.group(1)
                continue
            if line == "@EXPLICIT":
                seen_marker = True
                continue
            if not seen_marker:
                raise LockError(path, lineno, "package line before the @EXPLICIT marker")
            package = _package(path, lineno, line)
            if package.name in names:
                notes.append(
                    f"{path}:{lineno}: {package.name} is listed again; "
                    f"keeping line {names[package.name]}"
                )
                continue
            names[package.name] = lineno
            packages.append(package)
            if package.subdir and package.subdir != "noarch":
                subdirs.add(package.subdir)
            if package.channel:
                channels[package.channel] = None
        if not seen_marker:
            raise LockError(path, None, "not an explicit spec file: no @EXPLICIT line")
        have = {declared} if declared else subdirs
        if have and platform not in have:
            listed = ", ".join(sorted(have))
            raise PlatformMissing(
                path, None, f"no packages for platform {platform}; the lock has: {listed}"
            )
        if not packages:
            raise LockError(path, None, "no packages after @EXPLICIT")
        return records.lock(
            source=str(path),
            format=FORMAT,
            kind=LockKind.FULL,
            platform=platform,
            channels=list(channels),
            packages=packages,
            notes=notes,
        )


def _package(path: Path, lineno: int, line: str) -> LockedPackage:
    url, _, fragment = line.partition("#")
    url = url.strip()
    fragment = fragment.strip()
    if "://" not in url:
        raise LockError(path, lineno, f"expected a package URL, got {line!r}")
    md5 = sha256 = None
    if fragment:
        if fragment.startswith("sha256:"):
            sha256 = hex_digest(fragment[len("sha256:") :], 64)
        elif len(fragment) == 64:
            sha256 = hex_digest(fragment, 64)
        else:
            md5 = hex_digest(fragment, 32)
        if md5 is None and sha256 is None:
            raise LockError(
                path, lineno, f"bad hash {fragment!r}: expected an md5, a sha256 or sha256:<hex>"
            )
    channel, subdir, filename = split_package_url(url)
    parts = split_archive_name(filename)
    if parts is None or not filename.endswith((".conda", ".tar.bz2")):
        raise LockError(
            path, lineno, f"expected <channel>/<subdir>/<name>-<version>-<build>.conda, got {url!r}"
        )
    return records.locked_package(
        name=parts[0],
        version=parts[1],
        build=parts[2],
        channel=channel or None,
        subdir=subdir or None,
        md5=md5,
        sha256=sha256,
        url=url,
        line=lineno,
    )
