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
from redis.sentinel import Sentinel

from worker.channels import mask_url

DEFAULT_MASTER_NAME = "mymaster"
_SSL_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
_SSL_REQS = {"required": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "none": ssl.CERT_NONE}


class BrokerError(Exception):
    """The broker URL is malformed or the broker cannot be reached."""


@dataclass(frozen=True)
class BrokerURL:
    url: str
    master_name: str | None = None
    socket_timeout: float = 10.0
    _query: dict[str, list[str]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, url: str, master_name: str | None = None) -> BrokerURL:
        url = url.strip()
        scheme = urlsplit(url.split(";", 1)[0]).scheme
        if scheme not in ("redis", "rediss", "redis+socket", "unix", "sentinel"):
            raise BrokerError(
                f"unsupported broker URL scheme {scheme!r} in {mask_url(url)}: use redis://, "
                "rediss://, redis+socket:// (unix socket) or sentinel://"
                " (Redis Cluster is not supported by kombu as a broker)"
            )
        query = parse_qs(urlsplit(url.split(";", 1)[0]).query)
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
            sentinel = Sentinel(  # type: ignore[no-untyped-call]
                hosts,
                socket_timeout=self.socket_timeout,
                sentinel_kwargs={"password": first.password} if first.password else None,
            )
            master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
                self.master_name or DEFAULT_MASTER_NAME,
                db=db,
                password=first.password,
                socket_timeout=self.socket_timeout,
            )
            return master
        url = self.url
        if self.scheme == "redis+socket":
            url = "unix://" + url[len("redis+socket://") :]
        kwargs: dict[str, Any] = {
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
            "health_check_interval": 30,
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
            raise BrokerError(f"broker {self.masked()} unreachable: {exc}") from exc
