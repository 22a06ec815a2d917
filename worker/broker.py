"""Broker URLs: one place that turns a user's URL into safe redis-py and Celery settings.

Three traps live here. A `rediss://` URL without SSL options makes kombu silently skip
certificate checks (CERT_NONE), so we always say CERT_REQUIRED unless the URL itself asks
otherwise. A `sentinel://` URL needs a master name that kombu reads from transport options
and redis-py from a Sentinel object. And a URL may carry a password, so everything that
prints a URL prints `masked()`.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from worker.channels import mask_url

DEFAULT_MASTER_NAME = "mymaster"
CLIENT_RETRIES = 4
CLIENT_RETRY_BASE = 0.05
CLIENT_RETRY_CAP = 1.0
_SSL_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_SSL_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


class BrokerError(Exception):
    """The broker URL is malformed or the broker cannot be reached."""


class BrokerURLError(BrokerError):
    """The broker URL itself is wrong (a usage error, exit 2); the message shows it masked."""


def retry_options() -> dict[str, Any]:
    """Retries for every redis-py client we build: `from_url` alone gives none.

    A connection that drops (Redis restarted, a failover) is retried a few times with
    exponential backoff inside each call; longer outages are the caller's to outlast, up to
    its own deadline (the producer's collection loop, the worker's verdict push).
    """
    return {
        "retry": Retry(
            ExponentialBackoff(cap=CLIENT_RETRY_CAP, base=CLIENT_RETRY_BASE), CLIENT_RETRIES
        ),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
    }


@dataclass(frozen=True)
class BrokerURL:
    url: str
    master_name: str | None = None
    socket_timeout: float = 10.0
    _query: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, url: str, master_name: str | None = None) -> BrokerURL:
        """Refuse a URL that redis-py or kombu would misread, before anything connects.

        `redis:/host:6379` (one slash) parses as a URL with no host, which redis-py quietly
        turns into localhost; a bad port or db number used to surface as a traceback.
        """
        url = url.strip()
        parts = url.split(";")
        scheme = _scheme(parts[0])
        if scheme not in ("redis", "rediss", "redis+socket", "unix", "sentinel"):
            raise BrokerURLError(
                f"unsupported broker URL scheme {scheme!r} in {_masked(url)}: use redis://, "
                "rediss://, redis+socket:// (unix socket) or sentinel://"
                " (Redis Cluster is not supported by kombu as a broker)"
            )
        if len(parts) > 1 and scheme != "sentinel":
            raise BrokerURLError(
                f"broker URL {_masked(url)}: only sentinel:// URLs may list several hosts"
            )
        for part in parts:
            _check_part(part, scheme, url)
        query = parse_qs(urlsplit(parts[0]).query)
        if scheme == "sentinel":
            master_name = master_name or query.get("master_name", [DEFAULT_MASTER_NAME])[0]
        return cls(url=url, master_name=master_name, _query=query)

    @property
    def scheme(self) -> str:
        return urlsplit(self.url.split(";", 1)[0]).scheme

    def masked(self) -> str:
        return ";".join(mask_url(part) for part in self.url.split(";"))

    def _ssl_reqs(self) -> ssl.VerifyMode:
        wanted = self._query.get("ssl_cert_reqs", ["required"])[0].lower()
        wanted = wanted.removeprefix("cert_")
        return _SSL_REQS.get(wanted, ssl.CERT_REQUIRED)

    def celery_url(self) -> str:
        """The URL for kombu; TLS settings travel in `broker_use_ssl`, not in the query."""
        if self.scheme == "unix":
            return "redis+socket://" + self.url[len("unix://") :]
        if self.scheme == "rediss" and self._query:
            parts = urlsplit(self.url)
            return urlunsplit((parts.scheme, parts.netloc, parts.path, "", parts.fragment))
        return self.url

    def _ssl_options(self) -> dict[str, Any]:
        """CERT_REQUIRED unless the URL says otherwise, plus any CA / client cert files."""
        options: dict[str, Any] = {"ssl_cert_reqs": self._ssl_reqs()}
        for key in _SSL_FILES:
            if key in self._query:
                options[key] = self._query[key][0]
        return options

    def celery_options(self) -> dict[str, Any]:
        """Broker settings for Celery: TLS verification on, sentinel master named."""
        options: dict[str, Any] = {}
        transport: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
        }
        if self.scheme == "rediss":
            options["broker_use_ssl"] = self._ssl_options()
        if self.scheme == "sentinel":
            transport["master_name"] = self.master_name
        options["broker_transport_options"] = transport
        return options

    def client(self) -> redis.Redis:
        """A redis-py client for registry, locks and verdicts (bytes in, bytes out)."""
        if self.scheme == "sentinel":
            hosts = []
            for part in self.url.split(";"):
                parts = urlsplit(part)
                hosts.append((parts.hostname or "localhost", parts.port or 26379))
            first = urlsplit(self.url.split(";", 1)[0])
            db = int((first.path or "/0").strip("/") or 0)
            sentinel_kwargs: dict[str, Any] = {**retry_options()}
            if first.password:
                sentinel_kwargs["password"] = first.password
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                hosts,
                socket_timeout=self.socket_timeout,
                sentinel_kwargs=sentinel_kwargs,
            )
            master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
                self.master_name or DEFAULT_MASTER_NAME,
                db=db,
                password=first.password,
                socket_timeout=self.socket_timeout,
                **retry_options(),
            )
            return master
        url = self.url
        if self.scheme == "redis+socket":
            url = "unix://" + url[len("redis+socket://") :]
        kwargs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "health_check_interval": 30,
            **retry_options(),
        }
        if self.scheme == "rediss" and "ssl_cert_reqs" not in self._query:
            kwargs["ssl_cert_reqs"] = "required"
        return redis.Redis.from_url(url, **kwargs)

    def ping(self, timeout: float = 5.0) -> None:
        """Fail fast and clearly when the broker is down: exit code 4, not a hang."""
        try:
            client = BrokerURL(self.url, self.master_name, timeout, self._query).client()
            client.ping()
            client.close()
        except (redis.RedisError, OSError) as exc:
            raise BrokerError(f"broker {self.masked()} unreachable: {mask_text(exc)}") from exc
        except ValueError as exc:  # redis-py's own URL parsing (a bad query value)
            raise BrokerURLError(f"broker URL {self.masked()}: {mask_text(exc)}") from exc


def _masked(url: str) -> str:
    return ";".join(mask_url(part) for part in url.split(";"))


def mask_text(exc: BaseException) -> str:
    """An exception's text with any URL in it masked (redis-py may quote what it was given)."""
    return " ".join(mask_url(word) if "://" in word else word for word in str(exc).split(" "))


def _scheme(part: str) -> str:
    head, sep, _ = part.partition(":")
    return head.lower() if sep else ""


def _check_part(part: str, scheme: str, whole: str) -> None:
    """Host, port and db of one URL (one sentinel of a list); never quotes a password."""
    shown = _masked(whole)
    if _scheme(part) != scheme:
        raise BrokerURLError(f"broker URL {shown}: every part must use {scheme}://")
    if not part[len(scheme) + 1 :].startswith("//"):
        raise BrokerURLError(
            f"broker URL {shown} is malformed: write {scheme}://"
            + ("/path/to/redis.sock" if scheme in ("unix", "redis+socket") else "HOST:PORT/DB")
        )
    try:
        split = urlsplit(part)
        port = split.port
    except ValueError:
        raise BrokerURLError(
            f"broker URL {shown}: the host or port is malformed (a port is a number 1-65535)"
        ) from None
    query = parse_qs(split.query)
    db = query.get("db", query.get("virtual_host", [None]))[0]
    if scheme in ("unix", "redis+socket"):
        if not split.path.strip("/"):
            raise BrokerURLError(f"broker URL {shown} names no socket path")
    else:
        if not split.hostname:
            raise BrokerURLError(f"broker URL {shown} has no host: write {scheme}://HOST:PORT/DB")
        if port == 0:
            raise BrokerURLError(f"broker URL {shown}: port 0 is not a port")
        db = split.path.strip("/") or db
    if db is not None and not (db.isdigit() and int(db) < 2**31):
        raise BrokerURLError(f"broker URL {shown}: the database must be a number, like /0")
