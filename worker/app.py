"""The Celery side of the contract: app settings shared by producer and worker, and the worker.

Every setting here departs from a Celery default for a reason measured at fleet scale:
no result backend (verdicts go to one audit-scoped Redis list, not a SUBSCRIBE per task),
no gossip/mingle/heartbeat (O(N²) chatter between thousands of workers), no remote control
(its pidbox holds extra connections), prefetch 1 with late acks (a verification is
idempotent; a crashed worker's task is simply redelivered), and our own serializer only —
never pickle.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import Celery, signals

from worker import __version__, codec
from worker.broker import BrokerURL
from worker.config import WorkerConfig
from worker.registry import HostInfo, mark_stopped, queue_name, register
from worker.service import TASK_NAME, Verifier, source_for

log = logging.getLogger("lockstep.worker")


def make_app(broker: BrokerURL) -> Celery:
    codec.register_kombu_serializer()
    app = Celery("lockstep", broker=broker.celery_url(), set_as_current=False)
    app.conf.update(
        task_serializer=codec.SERIALIZER_NAME,
        result_serializer=codec.SERIALIZER_NAME,
        accept_content=[codec.CONTENT_TYPE],
        result_accept_content=[codec.CONTENT_TYPE],
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_enable_remote_control=False,
        worker_send_task_events=False,
        task_send_sent_event=False,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_pool_limit=1,
        broker_heartbeat=0,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_default_queue="lockstep.default",
        **broker.celery_options(),
    )
    return app


class Heartbeat(threading.Thread):
    """Keeps the registry entry fresh; the producer shows `last_seen` for silent hosts."""

    def __init__(self, verifier: Verifier, info: HostInfo, every: float) -> None:
        super().__init__(name="lockstep-heartbeat", daemon=True)
        self.verifier, self.info, self.every = verifier, info, every
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.every):
            try:
                register(self.verifier.client, self.info)
            except Exception as exc:  # a broker blip must not kill the heartbeat
                log.warning("lockstep: registry refresh failed: %s", exc)


def run_worker(
    broker: BrokerURL, config: WorkerConfig, platform: str, loglevel: str = "INFO"
) -> None:
    """Serve this host's queue until stopped; blocks."""
    app = make_app(broker)
    client = broker.client()
    verifier = Verifier(config, client, source_for(config))

    @app.task(name=TASK_NAME, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def verify(
        audit: str, lock: str, env: str | None = None, options: dict[str, Any] | None = None
    ) -> None:
        verifier.handle(audit, lock, env, options or {})

    info = HostInfo(
        host=config.host,
        platform=platform,
        environments=config.environments,
        default_environment=config.default_env(),
        source=config.source,
        lockstep_version=__version__,
        queue=queue_name(config.host),
        started_at=time.time(),
    )
    heartbeat = Heartbeat(verifier, info, config.refresh_seconds)

    def on_ready(**_: Any) -> None:
        register(client, info)
        heartbeat.start()

    def on_shutdown(**_: Any) -> None:
        heartbeat.stopped.set()
        try:
            mark_stopped(client, info)
        except Exception as exc:
            log.warning("lockstep: could not mark %s stopped: %s", config.host, exc)

    signals.worker_ready.connect(on_ready, weak=False)
    signals.worker_shutdown.connect(on_shutdown, weak=False)
    app.worker_main(
        argv=[
            "worker",
            "--queues",
            queue_name(config.host),
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"lockstep@{config.host}",
            "--loglevel",
            loglevel,
        ]
    )
