"""What a worker may verify, fixed when it starts and never widened by a task.

A task names an environment; only names listed here resolve to a prefix. A task cannot
carry a path or a command, so whoever can write to the broker still cannot make a worker
read another directory or run another program.
"""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError

from worker.models import Model
from worker.snapshot.conda_meta import is_environment


class ConfigError(Exception):
    """The worker's configuration is unusable; the message names the file or option."""


class WorkerConfig(Model):
    model_config = ConfigDict(extra="forbid")  # a typo in worker.toml must not pass silently

    host: str = Field(default_factory=socket.gethostname)
    environments: dict[str, str] = Field(default_factory=dict)  # name -> prefix
    default_environment: str | None = None
    source: str = "conda-meta"
    source_timeout: float = 60.0
    refresh_seconds: float = 15.0

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

    def check(self) -> list[str]:
        """Problems worth a warning at start-up; a broken env is still served, as ERROR."""
        return [
            f"environment {name!r}: {prefix} is not a conda environment (no conda-meta/history)"
            for name, prefix in self.environments.items()
            if not is_environment(Path(prefix))
        ]


def load_config(path: Path) -> WorkerConfig:
    """TOML: `host`, `default_environment`, `source`, and `[environments]` (name = prefix)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    try:
        return WorkerConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from exc
