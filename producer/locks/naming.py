"""Name and hash spellings shared by the loaders.

pip names are compared the way conda lists them (`lower()`, `.` and `_` become `-`), so a lock
that says `Jinja2` or `charset_normalizer` still meets the installed `jinja2` /
`charset-normalizer`.
"""

from __future__ import annotations

import re

_HEX = re.compile(r"[0-9a-fA-F]+")
# `[channel::]name=version[=build]`, as `conda list --export` and `conda env export` pin.
PIN = re.compile(
    r"(?:(?P<channel>[^\s:]+)::)?(?P<name>[A-Za-z0-9_.\-]+)"
    r"=(?P<version>[^=\s<>!~,|*\[\]]+)(?:=(?P<build>[^=\s<>!~,|*\[\]]+))?"
)


def pypi_name(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def hex_digest(value: str | None, length: int) -> str | None:
    """The lower-case digest when `value` is exactly `length` hex digits, else None."""
    if value is None:
        return None
    value = value.strip()
    if len(value) != length or not _HEX.fullmatch(value):
        return None
    return value.lower()
