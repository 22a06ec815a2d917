"""A broker password planted in every URL form never reaches an output, a log or `ps`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.demo import stop_workers, wait_registered
from producer.embedded_redis import EmbeddedRedis
from tests.support import condafactory as cf
from tests.support import lockfiles
from worker.broker import BrokerError, BrokerURL, BrokerURLError
from worker.channels import mask_url

PW = "pwPlanted7c41e9"


@pytest.mark.parametrize(
    "url",
    [
        f"redis://admin:{PW}@queue:6379/0",
        f"redis://queue:6379/0?password={PW}",
        f"redis://queue:6379/0?db=1&sentinel_password={PW}",
        f"sentinel://:{PW}@s1:26379;sentinel://:{PW}@s2:26379",
        f"redis://:{PW}/0",
        f"redis://:pa/{PW}@queue/0",
        f"redis:/:{PW}@queue:6379",
    ],
)
def test_masking_covers_every_credential_form(url: str) -> None:
    assert PW not in ";".join(mask_url(p) for p in url.split(";"))
    try:
        assert PW not in BrokerURL.parse(url).masked()
    except BrokerURLError as exc:
        assert PW not in str(exc)


def test_tls_key_paths_stay_visible() -> None:
    url = "rediss://q:6380/0?ssl_keyfile=/etc/k.pem&ssl_certfile=/etc/c.pem"
    assert mask_url(url) == url


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tcp=True, maxclients=200) as server:
        server.client().config_set("requirepass", PW)
        yield server


def lockstep(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


def start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "producer.cli", "worker", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **env},
        )


def test_no_output_or_log_shows_the_password(
    locked_redis: EmbeddedRedis, tmp_path: Path, conda_channel: cf.Channel
) -> None:
    port = locked_redis.port
    userinfo = f"redis://:{PW}@127.0.0.1:{port}/0"
    query = f"redis://127.0.0.1:{port}/0?password={PW}"
    prefix = tmp_path / "env"
    cf.install_prefix(conda_channel, cf.CLEAN_SPECS, prefix)
    lock = tmp_path / "conda-lock.yml"
    lock.write_text(lockfiles.conda_lock({"linux-64": prefix}))
    config = tmp_path / "worker.toml"
    config.write_text(
        f'host = "sec-2"\nbroker = "{userinfo}"\nrefresh_seconds = 2\n'
        f'[environments]\nprod = "{prefix}"\n'
    )
    logs = [tmp_path / "w1.log", tmp_path / "w2.log", tmp_path / "w3.log"]
    base = ["--loglevel", "INFO"]
    procs = [
        start(
            [*base, "--hostname", "sec-1", "-p", f"prod={prefix}", "--refresh", "2"],
            logs[0],
            {"LOCKSTEP_BROKER": userinfo},
        ),
        start([*base, "--config", str(config)], logs[1], {}),
        start(
            [*base, "--broker", userinfo, "--hostname", "sec-3", "-p", f"prod={prefix}"],
            logs[2],
            {},
        ),
    ]
    outputs: list[str] = []
    try:
        wait_registered(BrokerURL.parse(userinfo), {"sec-1", "sec-2", "sec-3"}, procs, logs, 90)
        for pid in (procs[0].pid, procs[1].pid):
            assert PW not in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        env = {"LOCKSTEP_BROKER": userinfo}
        ok = lockstep(
            "check", "--lock", str(lock), "--all", "-f", "json", "--timeout", "30", env=env
        )
        assert ok.returncode == 0, ok.stderr
        assert {h["status"] for h in json.loads(ok.stdout)["hosts"]} == {"OK"}
        runs = [
            ok,
            lockstep(
                "check",
                "--broker",
                query,
                "--lock",
                str(lock),
                "--host",
                "sec-1",
                "--timeout",
                "30",
            ),
            lockstep("hosts", env=env),
            lockstep("hosts", "--format", "json", "--broker", query),
            lockstep(
                "check", "--broker", f"redis://:{PW}@127.0.0.1:1/0", "--lock", str(lock), "--all"
            ),
            lockstep(
                "check", "--broker", f"redis:/:{PW}@127.0.0.1:{port}", "--lock", str(lock), "--all"
            ),
            lockstep(
                "check",
                "--broker",
                f"redis://:wrong{PW}@127.0.0.1:{port}/0",
                "--lock",
                str(lock),
                "--all",
            ),
            lockstep("hosts", "--broker", f"sentinel://:{PW}@127.0.0.1:1;sentinel://:{PW}@x:1"),
            lockstep("worker", "--broker", f"redis://:{PW}/0", "-p", str(prefix)),
            lockstep("worker", "--broker", f"redis://u:{PW}@[::1/0", "-p", str(prefix)),
        ]
        assert [r.returncode for r in runs[1:]] == [0, 0, 0, 4, 2, 4, 4, 2, 2], [
            r.stderr for r in runs
        ]
        outputs += [r.stdout + r.stderr for r in runs]
    finally:
        stop_workers(procs)
    texts = outputs + [log.read_text(errors="replace") for log in logs]
    for text in texts:
        assert PW not in text, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
    assert "serving prod via redis://***@127.0.0.1" in texts[-2]
    assert "holds a credential that `ps` shows" in texts[-1]


def test_ping_error_masks_the_url() -> None:
    with pytest.raises(BrokerError) as err:
        BrokerURL.parse(f"redis://:{PW}@127.0.0.1:1/0").ping(timeout=1)
    assert PW not in str(err.value) and "***@127.0.0.1:1" in str(err.value)
