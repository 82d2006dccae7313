"""The Bot API's HTTP connections on plain asyncio streams, under httpx and httpcore.

python-telegram-bot sends through httpx, httpx through httpcore, and httpcore reaches the
network on asyncio through anyio. Profiled under load (bench/bench_telegram.py, py-spy),
anyio's layer cost about a fifth of the bot's CPU per reply: a cancel scope for every
read and write, and, for every request and every response, httpcore asks each idle
connection whether the server has closed it, which anyio answers by building a dictionary
of socket attributes (with a getpeername() call) and polling the socket. Here the same
work is done on asyncio's own streams: timeouts with ``asyncio.timeout``, and "has the
server closed it" from the stream's state, which asyncio keeps up to date anyway.

Only the network layer changes: httpcore still does HTTP/1.1, pooling, keep-alive and
pool timeouts, httpx the requests, PTB the Bot API; errors are httpcore's own, mapped by
httpx to the exceptions PTB expects (TimedOut, NetworkError).
"""

# httpcore's interface passes each operation's timeout as a parameter.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["AsyncioBackend", "bot_api_transport"]

#: Seconds an unused connection is kept open (httpx's default).
KEEPALIVE_SECONDS = 5.0


def bot_api_transport(max_connections: int, *,
                      ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncHTTPTransport:
    """An httpx transport with at most ``max_connections`` connections (all kept alive) on
    :class:`AsyncioBackend`. TLS as httpx sets it up (certifi, or SSL_CERT_FILE and
    SSL_CERT_DIR), unless ``ssl_context`` is given."""
    context = ssl_context if ssl_context is not None else httpx.create_ssl_context()
    transport = httpx.AsyncHTTPTransport(verify=context)
    # httpx has no way to name httpcore's network backend: its pool is replaced by one with
    # the same settings and this backend (tests/test_http_backend.py checks it is used).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=context, max_connections=max_connections,
        max_keepalive_connections=max_connections, keepalive_expiry=KEEPALIVE_SECONDS,
        http1=True, http2=False, network_backend=AsyncioBackend())
    return transport


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend on asyncio streams (TCP_NODELAY, as asyncio sets it)."""

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        stream = _Stream(reader, writer)
        for option in socket_options or ():
            writer.get_extra_info("socket").setsockopt(*option)
        return stream

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[Any] | None = None,
                                  ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_unix_connection(path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to {path} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return _Stream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)  # b"" once the server closed it
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("reading the response timed out") from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            self._writer.write(buffer)
            async with asyncio.timeout(timeout):
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("sending the request timed out") from exc
        except OSError as exc:  # includes a connection reset or closed by the server
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.close()
            raise httpcore.ConnectTimeout("the TLS handshake timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            self._writer.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # Asked of idle connections only, to drop those the server has closed (its
            # keep-alive ran out): asyncio has already read the end of the stream.
            return self._reader.at_eof() or self._writer.transport.is_closing()
        key = {"ssl_object": "ssl_object", "client_addr": "sockname",
               "server_addr": "peername", "socket": "socket"}.get(info)
        return self._writer.get_extra_info(key) if key is not None else None
