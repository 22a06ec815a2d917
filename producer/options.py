"""Numeric option types that refuse what would make lockstep hang, spin or crash.

click's FloatRange lets `inf` through (it is > 0) and `nan` too (every comparison with nan is
false); `--timeout inf` then overflows a wait and `--refresh -5` busy-loops the registry. So
every number a user types goes through one of these.
"""

from __future__ import annotations

import math
from typing import Any

import click

MAX_SECONDS = 7 * 24 * 3600.0  # beyond a week no wait in lockstep makes sense; time APIs overflow


class Seconds(click.types.FloatParamType):
    """A finite number of seconds within [minimum, MAX_SECONDS] (or above 0 when minimum is 0)."""

    name = "seconds"

    def __init__(self, minimum: float = 0.0) -> None:
        self.minimum = minimum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number of seconds", param, ctx)
        if self.minimum > 0 and number < self.minimum:
            self.fail(f"{number:g} is below the minimum of {self.minimum:g} s", param, ctx)
        if number <= 0:
            self.fail(f"{number:g} must be more than 0 seconds", param, ctx)
        if number > MAX_SECONDS:
            self.fail(f"{number:g} is more than a week ({MAX_SECONDS:g} s)", param, ctx)
        return number

    def __repr__(self) -> str:
        return f"Seconds(minimum={self.minimum})"


TIMEOUT = Seconds()  # finite and > 0
REFRESH = Seconds(minimum=1.0)  # finite and >= 1: a registry write per second per host at most
COUNT = click.IntRange(min=0)  # how many of something: never negative
