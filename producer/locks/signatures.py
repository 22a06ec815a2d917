"""How each lock format announces itself in the first lines of a file.

Detection runs on every check, before any loader is imported, so it must neither import a
loader (with its YAML, JSON and pydantic dependencies) nor read a whole 2 MB lock. Every writer
puts its format's signature at the top (conda-lock's `version:`/`metadata:` before `package:`,
pixi's `version:` and `environments:` first, the `@EXPLICIT` marker after a comment header),
so only a prefix of the text is looked at. A file whose signature only comes later is still
read when its name, or the user, says which format it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from producer.locks.naming import PIN

HEAD_LIMIT = 64 * 1024

_EXPLICIT_MARKER = re.compile(r"^[ \t]*@EXPLICIT[ \t]*$", re.MULTILINE)
_PIXI_ENVIRONMENTS_KEY = re.compile(r"^environments[ \t]*:", re.MULTILINE)
_PIXI_VERSION_KEY = re.compile(r"^version[ \t]*:", re.MULTILINE)
_CONDA_LOCK_PACKAGE_KEY = re.compile(r"^package:[ \t]*(?:#.*)?$", re.MULTILINE)
_CONDA_LOCK_VERSION_KEY = re.compile(r"^version:[ \t]*['\"]?1['\"]?[ \t]*(?:#.*)?$", re.MULTILINE)
_CONDA_LOCK_METADATA_KEY = re.compile(r"^metadata:", re.MULTILINE)
_BARE_DEPENDENCIES_KEY = re.compile(r"^dependencies[ \t]*:[ \t]*(?:#.*)?$", re.MULTILINE)
_DEPENDENCIES_KEY = re.compile(r"^dependencies[ \t]*:", re.MULTILINE)
_PREFIX_KEY = re.compile(r"^prefix[ \t]*:", re.MULTILINE)
# `conda env export` writes `prefix:` last; this much of the end of the file is looked at.
TAIL_LIMIT = 4096


def head(text: str) -> str:
    """The first HEAD_LIMIT characters, ending on a whole line so no `$` matches a cut line."""
    if len(text) <= HEAD_LIMIT:
        return text
    cut = text.rfind("\n", 0, HEAD_LIMIT)
    return text[: cut + 1] if cut >= 0 else text[:HEAD_LIMIT]


def explicit(head: str) -> bool:
    return _EXPLICIT_MARKER.search(head) is not None


def pixi(head: str) -> bool:
    return (
        _PIXI_ENVIRONMENTS_KEY.search(head) is not None
        and _PIXI_VERSION_KEY.search(head) is not None
    )


def conda_lock(head: str) -> bool:
    if _CONDA_LOCK_PACKAGE_KEY.search(head) is None:
        return False
    return (
        _CONDA_LOCK_VERSION_KEY.search(head) is not None
        or _CONDA_LOCK_METADATA_KEY.search(head) is not None
    )


def golden(head: str) -> bool:
    """`conda list --json`, `conda env export` (see `env_export`), `conda list --export`."""
    first = head.lstrip()[:1]
    if first == "[":
        return True
    if first == "{":
        return '"packages"' in head
    if _BARE_DEPENDENCIES_KEY.search(head):
        return env_export(head)
    # A stray bad line must not hide the format: its error should name that line.
    lines = [s for s in (line.strip() for line in head.splitlines()) if s and s[0] != "#"]
    return any(is_triple(line) for line in lines) and not any("://" in s for s in lines)


def env_export(text: str) -> bool:
    """An environment file that `conda env export` wrote, so a full list of what was installed.

    Pinning every dependency as `name=version=build` does not make a file an export: people
    write such spec files by hand, and `conda compare` reads them as constraints. The export
    also carries conda's `prefix:` key (written last, hence the look at the tail); without
    it, only `--lock-format golden` turns the file into a full lock.
    """
    if not _all_pinned(head(text)):
        return False
    return _PREFIX_KEY.search(head(text)) is not None or (
        len(text) > HEAD_LIMIT and _PREFIX_KEY.search(text[-TAIL_LIMIT:]) is not None
    )


def sniff(head: str) -> str | None:
    """The first format whose signature `head` carries, or None."""
    for fmt, test in SNIFFERS:
        if test(head):
            return fmt
    return None


def environment_yml(head: str) -> bool:
    return _DEPENDENCIES_KEY.search(head) is not None


# Sniffing order matters: the narrowest signatures come first (an @EXPLICIT marker, pixi's
# `environments:`), environment.yml's bare `dependencies:` last.
SNIFFERS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("explicit", explicit),
    ("pixi", pixi),
    ("conda-lock", conda_lock),
    ("golden", golden),
    ("environment-yml", environment_yml),
)


def is_triple(line: str) -> bool:
    match = PIN.fullmatch(line)
    return match is not None and match.group("build") is not None


def _all_pinned(text: str) -> bool:
    """True when every conda dependency is `name=version=build`, as `conda env export` writes."""
    match = _BARE_DEPENDENCIES_KEY.search(text)
    if match is None:
        return False
    indent = -1
    found = False
    for raw in text[match.end() :].splitlines()[1:]:
        body = raw.lstrip()
        if not body or body[0] == "#":
            continue
        depth = len(raw) - len(body)
        if indent < 0:
            if not body.startswith("- "):
                return False
            indent = depth
        if depth < indent or (depth == indent and not body.startswith("- ")):
            break
        if depth > indent:
            continue
        item = body[2:].split(" #", 1)[0].strip()
        if item.startswith("pip:") or item.startswith(("'pip'", '"pip"')):
            continue
        if not is_triple(item.strip("'\"")):
            return False
        found = True
    return found
