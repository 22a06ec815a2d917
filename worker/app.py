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
import os
import signal
import threading
import time
from typing import Any

from celery import Celery, signals

from worker import __version__, codec
from worker.broker import BrokerURL
from worker.config import WorkerConfig
from worker.registry import (
    HostInfo,
    Lease,
    claim,
    lease_ttl,
    queue_name,
    register_owned,
)
from worker.service import TASK_NAME, Verifier, source_for
from worker.signing import FleetKey
from worker.transport import GUARD_OPTION, Guard, celery_broker

log = logging.getLogger("lockstep.worker")


def make_app(broker: BrokerURL, guard: Guard | None = None) -> Celery:
    """The Celery app; a worker passes its `guard` and gets the screening transport."""
    codec.register_kombu_serializer(task_bodies=guard is not None)
    options = broker.celery_options()
    url, transport = broker.celery_url(), None
    if guard is not None:
        url, transport = celery_broker(broker)
        options["broker_transport_options"] = {
            **options.get("broker_transport_options", {}),
            GUARD_OPTION: guard,
        }
    app = Celery("lockstep", broker=url, set_as_current=False)
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
        **options,
    )
    if transport is not None:
        app.conf.broker_transport = transport
    return app


class Heartbeat(threading.Thread):
    """Keeps the name's lease and the registry entry fresh, and notices a takeover.

    Started as soon as the lease is taken (Celery's start-up can outlast a short lease);
    the registry entry is written only once the worker is ready. When the lease turns out
    to belong to another instance (`--replace`), the worker stops itself with SIGTERM,
    Celery's warm shutdown, and nothing of it is written over the new owner's entry.
    """

    def __init__(
        self, client: Any, info: HostInfo, lease: Lease, every: float, lost: threading.Event
    ) -> None:
        super().__init__(name="lockstep-heartbeat", daemon=True)
        self.client, self.info, self.lease, self.every = client, info, lease, every
        self.stopped = threading.Event()
        self.ready = threading.Event()
        self.lost = lost  # shared with the transport's guard: it stops taking tasks at once

    def beat(self) -> bool:
        """One refresh; False once the name belongs to someone else."""
        info = self.info if self.ready.is_set() else None
        return register_owned(self.client, self.info.host, self.lease, info)

    def run(self) -> None:
        # After a failed refresh, retry every second: a Redis that restarted without its
        # data gets this host back in the registry as soon as it answers again, not a whole
        # refresh period later (a `check --all` in between would not see the host).
        delay = min(self.every, self.lease.ttl / 3)
        while not self.stopped.wait(delay):
            try:
                owned = self.beat()
                delay = min(self.every, self.lease.ttl / 3)
            except Exception as exc:  # a broker blip must not kill the heartbeat
                log.warning("lockstep: registry refresh failed: %s", exc)
                delay = min(1.0, self.every)
                continue
            if not owned:
                self.give_up()
                return

    def give_up(self) -> None:
        self.lost.set()
        log.warning(
            "lockstep: host name %s was taken over by another worker (--replace); "
            "this instance (%s) stops",
            self.info.host,
            self.info.instance[:12],
        )
        os.kill(os.getpid(), signal.SIGTERM)  # Celery's warm shutdown, from the main thread


def run_worker(
    broker: BrokerURL,
    config: WorkerConfig,
    platform: str,
    loglevel: str = "INFO",
    *,
    replace: bool = False,
    key: FleetKey | None = None,
) -> None:
    """Serve this host's queue until stopped; blocks.

    Raises `HostNameTaken` (a ConfigError: exit 2) when another live worker holds the name
    and `replace` is not set.
    """
    client = broker.client()
    verifier = Verifier(config, client, source_for(config), key=key, platform=platform)
    lease = Lease.mine(verifier.instance, lease_ttl(config.refresh_seconds))
    replaced = claim(client, config.host, lease, replace=replace)
    if replaced:
        log.warning("lockstep: took host name %s over from instance %s", config.host, replaced)
    lost = threading.Event()
    guard = Guard(config.host, client, key, verifier.answer_error, relinquished=lost)
    app = make_app(broker, guard)

    @app.task(name=TASK_NAME, acks_late=True, ignore_result=True)  # type: ignore[untyped-decorator]
    def verify(
        audit: object = None,
        locks: object = None,
        env: object = None,
        options: object = None,
        deadline: object = None,
        **_: object,
    ) -> None:
        verifier.handle(audit, locks, env, options, deadline)

    info = HostInfo(
        host=config.host,
        platform=platform,
        environments=config.environments,
        default_environment=config.default_env(),
        source=config.source,
        lockstep_version=__version__,
        queue=queue_name(config.host),
        started_at=time.time(),
        instance=verifier.instance,
    )
    heartbeat = Heartbeat(client, info, lease, config.refresh_seconds, lost)
    heartbeat.start()

    def on_ready(**_: Any) -> None:
        heartbeat.ready.set()
        try:
            if not heartbeat.beat():
                heartbeat.give_up()
        except Exception as exc:  # the heartbeat retries
            log.warning("lockstep: could not register %s: %s", config.host, exc)

    def on_shutdown(**_: Any) -> None:
        heartbeat.stopped.set()
        if lost.is_set():
            return  # the name is someone else's now: leave their entry alone
        stopped = info.model_copy(update={"state": "stopped"})
        try:
            register_owned(client, config.host, lease, stopped, release=True)
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
