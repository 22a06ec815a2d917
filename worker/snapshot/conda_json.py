"""Render a snapshot exactly as `conda list --json` prints it.

Byte-for-byte equality with conda lets a user diff our output against conda's and lets
the output of `lockstep snapshot` serve directly as a golden-host lock.
"""

from __future__ import annotations

import json
from typing import Any

from worker.channels import channel_base_url, channel_display_name
from worker.models import Package, Snapshot


def conda_list_entries(snapshot: Snapshot) -> list[dict[str, Any]]:
    """The entries conda would list, in conda's order.

    conda drops a record whose dist-info anchor vanished and lets a pip distribution of
    the same name replace the conda record, so we do the same here (and only here: the
    comparison keeps both to report the shadowing).
    """
    chosen: dict[str, Package] = {}
    for pkg in snapshot.packages:
        if pkg.clobbered:
            continue
        if pkg.name in chosen and pkg.manager != "pypi":
            continue
        chosen[pkg.name] = pkg
    return [_entry(chosen[name]) for name in sorted(chosen)]


def _entry(pkg: Package) -> dict[str, Any]:
    return {
        "base_url": channel_base_url(pkg.channel),
        "build_number": pkg.build_number,
        "build_string": pkg.build,
        "channel": channel_display_name(pkg.channel),
        "dist_name": f"{pkg.name}-{pkg.version}-{pkg.build}",
        "name": pkg.name,
        "platform": pkg.subdir,
        "version": pkg.version,
    }


def render(snapshot: Snapshot) -> str:
    """conda prints sorted keys, two-space indent, no trailing newline."""
    return json.dumps(conda_list_entries(snapshot), indent=2, sort_keys=True)
