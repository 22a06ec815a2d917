"""`environment.yml` (CEP 24): constraints, not a full list of packages.

The conda part is MatchSpecs (parsed by rattler, which knows conda's grammar); the `pip:` part
is requirement lines as pip reads them, options and URLs included. Only named requirements
can be checked against a host, so everything else is skipped with a note rather than failing
the whole check. conda-lock's `# [selector]` comments are honoured for simple selectors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from yaml.nodes import MappingNode, Node, ScalarNode

from producer.locks import records, signatures, yaml_nodes
from producer.locks.interface import LockError, PlatformMissing
from producer.locks.naming import pypi_name
from worker.channels import canonical_channel
from worker.models import Lock, LockedPackage, LockKind

FORMAT = "environment-yml"

_SELECTOR = re.compile(r"#\s*\[([^\]]*)\]\s*$")


class EnvironmentYmlLoader:
    format = FORMAT

    def sniff(self, path: Path, text: str) -> bool:
        return signatures.environment_yml(signatures.head(text))

    def load(self, path: Path, text: str, *, platform: str, environment: str | None) -> Lock:
        root_node = yaml_nodes.compose(path, text)
        if root_node is None:
            raise LockError(path, None, "file is empty")
        root = yaml_nodes.mapping(path, root_node, "an environment file")
        lines = text.splitlines()
        notes: list[str] = []
        _check_platforms(path, root, platform)
        channels = [canonical_channel(c) for c in _strings(path, root.get("channels"), "channels")]
        dependencies = root.get("dependencies")
        if dependencies is None:
            raise LockError(path, 1, "no 'dependencies' list")
        packages: list[LockedPackage] = []
        items = [] if yaml_nodes.is_null(dependencies) else dependencies_list(path, dependencies)
        for item in items:
            line = yaml_nodes.line_of(item)
            if isinstance(item, MappingNode):
                for key, value in yaml_nodes.mapping(path, item, "a dependency").items():
                    if key != "pip":
                        notes.append(f"{path}:{line}: ignored the unknown '{key}:' section")
                        continue
                    for pip_item in _pip_items(path, value):
                        package = _pip_package(path, pip_item, lines, platform, notes)
                        if package is not None:
                            packages.append(package)
                continue
            spec = yaml_nodes.text_value(path, item, "a dependency")
            if not _selected(path, line, lines, platform, notes):
                continue
            packages.append(_conda_package(path, line, spec))
        if not packages:
            raise PlatformMissing(path, None, f"no dependencies for platform {platform}")
        return records.lock(
            source=str(path),
            format=FORMAT,
            kind=LockKind.SPEC,
            platform=platform,
            channels=[c for c in channels if c],
            packages=packages,
            notes=notes,
        )


def dependencies_list(path: Path, node: Node) -> list[Node]:
    return yaml_nodes.sequence(path, node, "'dependencies'")


def _strings(path: Path, node: Node | None, what: str) -> list[str]:
    if node is None or yaml_nodes.is_null(node):
        return []
    values = []
    for item in yaml_nodes.sequence(path, node, f"'{what}'"):
        value = yaml_nodes.scalar(path, item, f"a {what} entry")
        if value and value.strip():
            values.append(value.strip())
    return values


def _check_platforms(path: Path, root: dict[str, Node], platform: str) -> None:
    """conda-lock's `platforms:` key says which platforms the file is meant for."""
    node = root.get("platforms")
    platforms = _strings(path, node, "platforms")
    if node is not None and platforms and platform not in platforms:
        raise PlatformMissing(
            path,
            yaml_nodes.line_of(node),
            f"no packages for platform {platform}; the file has: {', '.join(platforms)}",
        )


def _conda_package(path: Path, line: int, spec: str) -> LockedPackage:
    import rattler

    try:
        matcher = rattler.MatchSpec(spec).name
    except Exception as exc:  # rattler raises its own exception types for bad specs
        raise LockError(path, line, f"invalid MatchSpec {spec!r}: {exc}") from None
    name = matcher.normalized if matcher is not None else None
    if not name:
        raise LockError(path, line, f"MatchSpec {spec!r} names no package")
    return records.locked_package(name=name, spec=spec, line=line)


def _pip_items(path: Path, node: Node) -> list[Node]:
    if yaml_nodes.is_null(node):
        return []
    return yaml_nodes.sequence(path, node, "'pip'")


def _pip_package(
    path: Path, node: Node, lines: list[str], platform: str, notes: list[str]
) -> LockedPackage | None:
    line = yaml_nodes.line_of(node)
    if not isinstance(node, ScalarNode):
        notes.append(f"{path}:{line}: ignored a pip entry that is not a requirement line")
        return None
    text = (yaml_nodes.scalar(path, node, "a pip entry") or "").strip()
    if not text:
        return None
    if not _selected(path, line, lines, platform, notes):
        return None
    if text.startswith("-") or "://" in text.split("@", 1)[0] or text.startswith((".", "/")):
        notes.append(f"{path}:{line}: ignored pip line {text!r} (not a named requirement)")
        return None
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        notes.append(f"{path}:{line}: ignored pip line {text!r}: {exc}")
        return None
    return records.locked_package(
        name=pypi_name(requirement.name), manager="pypi", spec=text, line=line
    )


def _selected(path: Path, line: int, lines: list[str], platform: str, notes: list[str]) -> bool:
    """Whether the entry on `line` applies to `platform`, judging a `# [selector]` comment."""
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    match = _SELECTOR.search(source)
    if match is None:
        return True
    result = selector_applies(match.group(1), platform)
    if result is None:
        notes.append(f"{path}:{line}: selector [{match.group(1)}] not understood; entry kept")
        return True
    return result


_SELECTORS: dict[str, Callable[[str], bool]] = {
    "linux": lambda p: p.startswith("linux-"),
    "osx": lambda p: p.startswith("osx-"),
    "win": lambda p: p.startswith("win-"),
    "unix": lambda p: p.startswith(("linux-", "osx-")),
    "linux64": lambda p: p == "linux-64",
    "linux32": lambda p: p == "linux-32",
    "aarch64": lambda p: p == "linux-aarch64",
    "ppc64le": lambda p: p == "linux-ppc64le",
    "s390x": lambda p: p == "linux-s390x",
    "osx64": lambda p: p == "osx-64",
    "arm64": lambda p: p in ("osx-arm64", "win-arm64"),
    "win64": lambda p: p == "win-64",
    "win32": lambda p: p == "win-32",
    "x86_64": lambda p: p in ("linux-64", "osx-64", "win-64"),
}


def selector_applies(selector: str, platform: str) -> bool | None:
    """`linux`, `not win`, `osx or win`, ...: None when the selector is beyond this grammar."""
    alternatives = [part.strip() for part in selector.split(" or ")]
    result = False
    for alternative in alternatives:
        negate = alternative.startswith("not ")
        word = alternative[4:].strip() if negate else alternative
        test = _SELECTORS.get(word)
        if test is None:
            return None
        result = result or (test(platform) != negate)
    return result
