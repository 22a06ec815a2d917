"""Find a conda environment by name or from the active shell, as conda does.

A verifier that silently picked the wrong environment would report a clean bill of health
for the wrong thing, so every lookup either finds exactly one prefix or says where it looked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from worker.snapshot.conda_meta import is_environment
from worker.snapshot.interface import SnapshotError


def current_prefix() -> Path:
    """The active environment (`$CONDA_PREFIX`), else this interpreter's prefix if conda's."""
    active = os.environ.get("CONDA_PREFIX")
    if active:
        return Path(active)
    if is_environment(Path(sys.prefix)):
        return Path(sys.prefix)
    raise SnapshotError("no active conda environment: activate one, or pass -n NAME or -p PREFIX")


def root_prefixes() -> list[Path]:
    roots: list[Path] = []
    for var in ("CONDA_ROOT", "MAMBA_ROOT_PREFIX", "CONDA_ROOT_PREFIX"):
        if os.environ.get(var):
            roots.append(Path(os.environ[var]))
    exe = os.environ.get("CONDA_EXE") or os.environ.get("MAMBA_EXE")
    if exe:
        roots.append(Path(exe).resolve().parent.parent)
    home = Path.home()
    for guess in ("miniforge3", "mambaforge", "miniconda3", "anaconda3", "micromamba"):
        roots.append(home / guess)
    roots.append(Path("/opt/conda"))
    return list(dict.fromkeys(roots))


def envs_dirs() -> list[Path]:
    dirs: list[Path] = []
    for var in ("CONDA_ENVS_PATH", "CONDA_ENVS_DIRS"):
        dirs += [Path(p) for p in os.environ.get(var, "").split(os.pathsep) if p]
    dirs += [root / "envs" for root in root_prefixes()]
    dirs.append(Path.home() / ".conda" / "envs")
    return list(dict.fromkeys(dirs))


def resolve_name(name: str) -> Path:
    """`-n NAME`: `base` is the root prefix; others live in an envs directory."""
    if name == "base":
        for root in root_prefixes():
            if is_environment(root):
                return root
    else:
        for directory in envs_dirs():
            if is_environment(directory / name):
                return directory / name
        registry = Path.home() / ".conda" / "environments.txt"
        if registry.is_file():
            for line in registry.read_text(errors="replace").splitlines():
                candidate = Path(line.strip())
                if candidate.name == name and is_environment(candidate):
                    return candidate
    looked = ", ".join(str(d) for d in envs_dirs())
    raise SnapshotError(f"environment {name!r} not found (looked in {looked})")
