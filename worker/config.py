"""What a worker may verify, fixed when it starts and never widened by a task.

A task names an environment; only names listed here resolve to a prefix. A task cannot
carry a path or a command, so whoever can write to the broker still cannot make a worker
read another directory or run another program.
"""

from __future__ import annotations

import re
import socket
import tomllib
from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError

from worker.models import Model
from worker.snapshot.conda_meta import is_environment


class ConfigError(Exception):
    """The worker's configuration is unusable; the message names the file or option."""


MAX_SECONDS = 7 * 24 * 3600.0


class WorkerConfig(Model):
    model_config = ConfigDict(extra="forbid")  # a typo in worker.toml must not pass silently

    host: str = Field(default_factory=socket.gethostname)
    environments: dict[str, str] = Field(default_factory=dict)  # name -> prefix
    default_environment: str | None = None
    source: str = "conda-meta"
    # Finite and bounded like the CLI's options: `inf` overflows a wait, a tiny refresh spins.
    source_timeout: float = Field(default=60.0, gt=0, le=MAX_SECONDS, allow_inf_nan=False)
    refresh_seconds: float = Field(default=15.0, ge=1, le=MAX_SECONDS, allow_inf_nan=False)
    # Kept in this file (mode 0600) so the password is not in the worker's command line.
    broker: str | None = Field(default=None, repr=False)
    fleet_key_file: str | None = None

    def default_env(self) -> str | None:
        if self.default_environment:
            return self.default_environment
        return next(iter(self.environments), None)

    def prefix_for(self, name: str | None) -> tuple[str, Path]:
        """Resolve a task's environment name against the allow-list, or refuse."""
        chosen = name or self.default_env()
        if chosen is None:
            raise ConfigError(f"worker {self.host} has no environment configured")
        if chosen not in self.environments:
            allowed = ", ".join(sorted(self.environments)) or "none"
            raise ConfigError(
                f"environment {chosen!r} is not allowed on worker {self.host} (allowed: {allowed})"
            )
        return chosen, Path(self.environments[chosen])

    def check_default(self, where: str) -> None:
        """A default outside the allow-list would make every check that names none an ERROR."""
        chosen = self.default_environment
        if chosen is not None and chosen not in self.environments:
            allowed = ", ".join(self.environments) or "none"
            raise ConfigError(f"{where}: default_environment {chosen!r} is not one of: {allowed}")

    def check(self) -> list[str]:
        """Problems worth a warning at start-up; a broken env is still served, as ERROR."""
        return [
            f"environment {name!r}: {prefix} is not a conda environment (no conda-meta/history)"
            for name, prefix in self.environments.items()
            if not is_environment(Path(prefix))
        ]


def load_config(path: Path, *, check_default: bool = True) -> WorkerConfig:
    """TOML: `host`, `default_environment`, `source`, `broker`, `fleet_key_file`,
    `refresh_seconds`, `source_timeout`, and `[environments]` (name = prefix).

    Errors read `file:line: what is wrong` whenever the line can be known. The CLI passes
    `check_default=False` and checks after adding the environments given as options.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _AT_LINE.search(str(exc))
        if found is None:
            last = len(text.splitlines()) or 1
            what = str(exc).replace(" (at end of document)", "")
            raise ConfigError(f"{path}:{last}: {what} (at end of file)") from exc
        what = _AT_LINE.sub("", str(exc)).strip()
        raise ConfigError(f"{path}:{found.group(1)}: {what} (column {found.group(2)})") from exc
    try:
        config = WorkerConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        where = ".".join(loc)
        line = _line_of(text, loc)
        at = f"{path}:{line}" if line else str(path)
        raise ConfigError(f"{at}: {where}: {first['msg']}") from exc
    if config.fleet_key_file and not Path(config.fleet_key_file).expanduser().is_absolute():
        config.fleet_key_file = str(path.parent / Path(config.fleet_key_file).expanduser())
    if check_default:
        config.check_default(where_is(path, "default_environment", text))
    return config


def where_is(path: Path, key: str, text: str | None = None) -> str:
    """`file:line` of a top-level key (just `file` when the line cannot be found)."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return str(path)
    line = _line_of(text, [key])
    return f"{path}:{line}" if line else str(path)


_AT_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


def _line_of(text: str, loc: list[str]) -> int | None:
    """The line that sets `loc` (a top-level key, or a key of a `[table]`), when findable."""
    if not loc:
        return None
    table, key = (loc[0], loc[1]) if len(loc) > 1 else (None, loc[0])
    in_table = table is None
    key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    header_re = re.compile(r"^\s*\[([^\]]*)\]")
    for number, line in enumerate(text.splitlines(), start=1):
        header = header_re.match(line)
        if header:
            in_table = table is not None and header.group(1).strip() == table
            continue
        if in_table and key_re.match(line):
            return number
        if table is not None and not in_table and re.match(rf"^\s*{re.escape(table)}\s*=", line):
            return number  # an inline table, or a key that should have been a table
    return None
