"""Which platforms a lock file has packages for, read from the file, never guessed.

A target that has not registered tells the producer nothing about its platform. Rather than
guess one (this machine's, say) and have the host judged against the wrong lock — DRIFT with
CHANNEL findings for an osx-arm64 host checked against linux-64 packages — the producer
sends every platform the lock holds and the worker picks the one of its own environment.

`None` means the file is not tied to a platform (an environment.yml without `platforms:`,
an @EXPLICIT file of noarch packages only): one lock, sent under the key "*".
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from producer.locks.detect import detect, loader_for, read_text

_DECLARED = re.compile(r"^#\s*platform\s*:\s*(\S+)\s*$", re.MULTILINE)
_URL_SUBDIR = re.compile(r"^\s*(?:https?|file|s3)://\S*/([A-Za-z0-9_-]+)/[^/\s]+$", re.MULTILINE)
_SELECTOR = re.compile(r"#\s*\[[^\]\n]+\]")
# The platforms conda-forge builds for: what an environment.yml with `# [selector]`
# comments but no `platforms:` key may be meant for.
COMMON_PLATFORMS = frozenset(
    {"linux-64", "linux-aarch64", "linux-ppc64le", "osx-64", "osx-arm64", "win-64"}
)
_NOT_A_PLATFORM = frozenset({"noarch", "pypi", ""})


def lock_platforms(
    path: Path, *, fmt: str | None = None, environment: str | None = None
) -> list[str] | None:
    """Sorted platforms of the lock at `path`, or None for a platform-agnostic file.

    Raises LockError when the file cannot be read; a malformed lock is reported by the
    loader itself when it is loaded for a platform.
    """
    text = read_text(path)
    chosen = fmt or detect(path, text).format
    if chosen == "conda-lock":
        return _sorted(_conda_lock(text))
    if chosen == "pixi":
        return _sorted(_pixi(path, environment))
    if chosen == "explicit":
        return _sorted(_explicit(text))
    if chosen == "golden":
        return _sorted(_golden(text))
    if chosen == "environment-yml":
        declared = _yaml_platforms(text)
        if declared is None and _SELECTOR.search(text):
            return sorted(COMMON_PLATFORMS)  # selectors pick per platform: judge each one
        return _sorted(declared)
    loader_for(chosen)  # raises for an unknown format name
    return None


def _sorted(found: set[str] | None) -> list[str] | None:
    if found is None:
        return None
    found = {p for p in found if p not in _NOT_A_PLATFORM}
    return sorted(found) or None


def _yaml(text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, RecursionError, ValueError):
        return None  # the loader reports the syntax error with its line


def _conda_lock(text: str) -> set[str]:
    root = _yaml(text)
    found: set[str] = set()
    if not isinstance(root, dict):
        return found
    metadata = root.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("platforms"), list):
        found.update(str(p) for p in metadata["platforms"] if isinstance(p, str))
    packages = root.get("package")
    if isinstance(packages, list):
        found.update(
            str(p["platform"])
            for p in packages
            if isinstance(p, dict) and isinstance(p.get("platform"), str)
        )
    return found


def _pixi(path: Path, environment: str | None) -> set[str] | None:
    from rattler import LockFile

    from producer.locks.pixi import DEFAULT_ENVIRONMENT

    try:
        lock_file = LockFile.from_path(path)
    except Exception:  # rattler's own types; the loader reports it with a line number
        return None
    env = lock_file.environment(environment or DEFAULT_ENVIRONMENT)
    if env is None:
        return set()  # the loader names the environments the file has
    return {p.name for p in env.platforms()}


def _explicit(text: str) -> set[str] | None:
    declared = _DECLARED.search(text)
    if declared is not None:
        return {declared.group(1)}
    return set(_URL_SUBDIR.findall(text)) or None


def _golden(text: str) -> set[str] | None:
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        try:
            entries = json.loads(text)
        except (ValueError, RecursionError):
            return None
        if isinstance(entries, dict):
            entries = entries.get("packages")
        if not isinstance(entries, list):
            return None
        subdirs = {
            str(e.get("platform") or e.get("subdir"))
            for e in entries
            if isinstance(e, dict) and (e.get("platform") or e.get("subdir"))
        }
        return subdirs or None
    declared = _DECLARED.search(text)
    if declared is not None:
        return {declared.group(1)}
    root = _yaml(text)
    if isinstance(root, dict):
        return _yaml_platforms(text)
    return None


def _yaml_platforms(text: str) -> set[str] | None:
    root = _yaml(text)
    if isinstance(root, dict) and isinstance(root.get("platforms"), list):
        return {str(p) for p in root["platforms"] if isinstance(p, str)} or None
    return None
