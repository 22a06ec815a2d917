"""Every number a user types is finite and in range, on the command line and in worker.toml."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.cli import main
from producer.options import COUNT, MAX_SECONDS, REFRESH, TIMEOUT


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-1", "1e400", "abc", "", "1e9"])
def test_timeout_refuses_what_would_hang_or_crash(value: str) -> None:
    with pytest.raises(click.BadParameter):
        TIMEOUT.convert(value, None, None)


@pytest.mark.parametrize("value", ["0.5", "-5", "nan", "inf", "0"])
def test_refresh_is_at_least_one_second(value: str) -> None:
    with pytest.raises(click.BadParameter):
        REFRESH.convert(value, None, None)
    assert REFRESH.convert("1", None, None) == 1.0


def test_counts_are_never_negative() -> None:
    with pytest.raises(click.BadParameter):
        COUNT.convert(-1, None, None)
    assert COUNT.convert(0, None, None) == 0


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_an_accepted_timeout_is_always_usable(value: float) -> None:
    try:
        got = TIMEOUT.convert(repr(value), None, None)
    except click.BadParameter:
        return
    assert 0 < got <= MAX_SECONDS


@pytest.mark.parametrize(
    "args, message",
    [
        (["check", "--local", "--lock", "x", "--timeout", "nan"], "not a finite number"),
        (["check", "--local", "--lock", "x", "--timeout", "inf"], "not a finite number"),
        (["demo", "--timeout", "-1"], "must be more than 0"),
        (["worker", "--refresh", "-5", "-p", "/tmp"], "below the minimum of 1"),
        (["worker", "--refresh", "inf", "-p", "/tmp"], "not a finite number"),
    ],
)
def test_cli_range_errors_are_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ("refresh_seconds = -5.0\n", "worker.toml:1: refresh_seconds: Input should be greater"),
        ('host = "h"\nsource_timeout = inf\n', "worker.toml:2: source_timeout: Input should be a"),
        (
            'default_environment = "x"\n[environments]\nprod = "/p"\n',
            "worker.toml:1: default_environment 'x' is not one of: prod",
        ),
    ],
)
def test_worker_config_errors_are_exit_2_with_file_and_line(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "worker.toml"
    config.write_text(text)
    result = CliRunner().invoke(
        main, ["worker", "--broker", "redis://127.0.0.1:1/0", "--config", str(config)]
    )
    assert result.exit_code == 2, result.stderr
    assert f"lockstep: error: {tmp_path}/{message}" in result.stderr, result.stderr


def test_default_environment_may_name_an_environment_given_as_an_option(tmp_path: Path) -> None:
    """The config's default may be served by `-p`; only the merged allow-list is checked."""
    from worker.config import ConfigError, load_config, where_is

    config = tmp_path / "worker.toml"
    config.write_text('host = "h"\ndefault_environment = "ml"\n')
    loaded = load_config(config, check_default=False)
    merged = loaded.model_copy(update={"environments": {"ml": str(tmp_path)}})
    merged.check_default(where_is(config, "default_environment"))
    with pytest.raises(ConfigError, match=r"worker.toml:2: default_environment 'ml' is not one"):
        loaded.check_default(where_is(config, "default_environment"))


def test_worker_without_any_broker_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["worker", "-p", str(tmp_path)], env={"LOCKSTEP_BROKER": ""})
    assert result.exit_code == 2 and "no broker configured" in result.stderr
