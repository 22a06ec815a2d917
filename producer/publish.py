"""Publish one audit's tasks in Redis pipelines instead of one `send_task` round trip each.

`send_task` went through kombu's producer one message at a time: ~960 tasks/s measured here,
ten seconds of publishing for 10,000 hosts before the first verdict can even arrive. The
messages themselves are ordinary Celery protocol-2 task messages in kombu's Redis envelope —
Celery builds the headers (`as_task_v2`) and our registered serializer the body, once per
distinct request; each host's copy gets its own task id and is LPUSHed onto the host's queue
key, exactly where kombu's Redis transport would put it for the default exchange. Workers
cannot tell them from `send_task`'s, and the fleet tests run every audit through this path.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import redis
from celery import Celery

from worker import codec
from worker.service import TASK_NAME
from worker.signing import SIGNATURE_HEADER, FleetKey, sign

PIPELINE_BATCH = 1000
_NO_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def publish_tasks(
    client: redis.Redis,
    app: Celery,
    sends: Sequence[tuple[str, dict[str, Any]]],
    expires: datetime,
    *,
    key: FleetKey | None = None,
) -> None:
    """LPUSH a `lockstep.verify` task with `kwargs` onto each `queue`, expiring at `expires`.

    With a fleet key, each body is signed (HMAC over the exact encoded bytes the worker
    will decode) in the `lockstep-signature` header; workers holding the key refuse the rest.
    """
    prepared: dict[str, tuple[str, dict[str, Any]]] = {}
    pipe = client.pipeline(transaction=False)
    for count, (queue, kwargs) in enumerate(sends, start=1):
        body_key = json.dumps(kwargs, sort_keys=True)
        if body_key not in prepared:
            raw = codec.encode_value([[], kwargs, _NO_EMBED])
            template = app.amqp.as_task_v2(
                "", TASK_NAME, kwargs=kwargs, expires=expires, ignore_result=True
            ).headers
            if key is not None:
                template = {**template, SIGNATURE_HEADER: sign(key, raw)}
            prepared[body_key] = (base64.b64encode(raw).decode("ascii"), template)
        body, template = prepared[body_key]
        task_id = str(uuid.uuid4())
        headers = {**template, "id": task_id, "root_id": task_id}
        envelope = {
            "body": body,
            "content-encoding": codec.CONTENT_ENCODING,
            "content-type": codec.CONTENT_TYPE,
            "headers": headers,
            "properties": {
                "correlation_id": task_id,
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": str(uuid.uuid4()),
            },
        }
        pipe.lpush(queue, json.dumps(envelope))
        if count % PIPELINE_BATCH == 0:
            pipe.execute()
    pipe.execute()
