"""Inventory files: named groups of host patterns, each optionally with its own lock and env.

Groups let a deploy pipeline say `--group web` instead of repeating patterns, and let one
audit cover web hosts against one lock and GPU hosts against another.

    # TOML                              # YAML
    [groups.web]                        groups:
    hosts = ["web-*", "edge-1"]           web:
    lock = "locks/web.conda-lock.yml"       hosts: ["web-*", "edge-1"]
    env = "prod"                            lock: locks/web.conda-lock.yml

A relative `lock` is resolved against the inventory file's directory.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


class InventoryError(Exception):
    """The inventory is unreadable or malformed; the message starts with `file:line:`."""


@dataclass(frozen=True)
class Group:
    name: str
    hosts: tuple[str, ...]
    lock: Path | None = None
    env: str | None = None


def load_inventory(path: Path) -> dict[str, Group]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{path}: cannot read: {exc}") from exc
    data: Any
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line = getattr(exc, "lineno", None)
            raise InventoryError(f"{path}:{line or 1}: {exc.args[0] if exc.args else exc}") from exc
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            raise InventoryError(f"{path}:{line}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("groups"), dict):
        raise InventoryError(f"{path}:1: expected a top-level 'groups' table")
    groups: dict[str, Group] = {}
    for name, body in data["groups"].items():
        where = f"{path}:{_line_of(text, str(name))}"
        if isinstance(body, list):
            body = {"hosts": body}
        if not isinstance(body, dict):
            raise InventoryError(f"{where}: group {name!r} must be a table or a list of hosts")
        hosts = body.get("hosts")
        if isinstance(hosts, str):
            hosts = [hosts]
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
            raise InventoryError(f"{where}: group {name!r} needs 'hosts', a list of names/globs")
        lock = body.get("lock")
        env = body.get("env")
        if lock is not None and not isinstance(lock, str):
            raise InventoryError(f"{where}: group {name!r}: 'lock' must be a path")
        if env is not None and not isinstance(env, str):
            raise InventoryError(f"{where}: group {name!r}: 'env' must be a name")
        groups[str(name)] = Group(
            name=str(name),
            hosts=tuple(hosts),
            lock=(path.parent / lock) if lock else None,
            env=env,
        )
    return groups


def _line_of(text: str, key: str) -> int:
    """Best-effort line of a group's header, for error messages."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith((f"[groups.{key}]", f"{key}:", f'"{key}":', f'[groups."{key}"]')):
            return number
    return 1
