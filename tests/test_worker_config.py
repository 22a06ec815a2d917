"""The worker's allow-list: a task names an environment, never a path."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, WorkerConfig, load_config


def test_only_allowed_names_resolve() -> None:
    config = WorkerConfig(host="h", environments={"prod": "/opt/envs/prod", "ml": "/opt/envs/ml"})
    assert config.prefix_for(None) == ("prod", Path("/opt/envs/prod"))
    assert config.prefix_for("ml") == ("ml", Path("/opt/envs/ml"))
    for hostile in ("/etc", "../prod", "prod/../../etc", "PROD"):
        with pytest.raises(ConfigError, match="is not allowed"):
            config.prefix_for(hostile)


def test_default_environment_and_empty_config() -> None:
    config = WorkerConfig(host="h", environments={"a": "/a", "b": "/b"}, default_environment="b")
    assert config.prefix_for(None)[0] == "b"
    with pytest.raises(ConfigError, match="no environment configured"):
        WorkerConfig(host="h").prefix_for(None)


def test_toml_config(tmp_path: Path) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(
        'host = "gpu-7"\ndefault_environment = "ml"\nsource = "micromamba"\n\n'
        '[environments]\nprod = "/opt/envs/prod"\nml = "/opt/envs/ml"\n'
    )
    config = load_config(path)
    assert config.host == "gpu-7" and config.source == "micromamba"
    assert config.prefix_for(None) == ("ml", Path("/opt/envs/ml"))
    assert config.check() == [
        "environment 'prod': /opt/envs/prod is not a conda environment (no conda-meta/history)",
        "environment 'ml': /opt/envs/ml is not a conda environment (no conda-meta/history)",
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("host = [\n", "worker.toml:1: "),
        ('host = "h"\nsource = 3 4\n', "worker.toml:2: "),
        ('environments = "x"\n', "worker.toml:1: environments: "),
        ("host = 'h'\nrefresh_seconds = 'soon'\n", "worker.toml:2: refresh_seconds: "),
        ("refresh_seconds = inf\n", "worker.toml:1: refresh_seconds: Input should be a finite"),
        ("refresh_seconds = -5.0\n", "worker.toml:1: refresh_seconds: Input should be greater"),
        ("source_timeout = nan\n", "worker.toml:1: source_timeout: Input should be a finite"),
        ('enviroments = {prod = "/x"}\n', "worker.toml:1: enviroments: "),
        ('[environments]\nprod = 3\n', "worker.toml:2: environments.prod: "),
        (
            'default_environment = "x"\n[environments]\nprod = "/p"\nml = "/m"\n',
            "worker.toml:1: default_environment 'x' is not one of: prod, ml",
        ),
    ],
)
def test_bad_toml_config_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "worker.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(str(tmp_path / message))
