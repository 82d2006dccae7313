"""The asyncio network backend under httpx: what anyio's did, on loopback servers.

tests/fixtures/tls holds a self-signed certificate for 127.0.0.1 and localhost (valid for
a hundred years), made for these tests only: ``openssl req -x509 -newkey rsa:2048 -nodes
-days 36500 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from bot.messages import Outbound
from bot.transports import http_backend
from bot.transports.http_backend import bot_api_transport
from bot.transports.telegram import TelegramTransport
from tests.support.fake_bot_api import FakeBotApi

pytestmark = pytest.mark.timeout(20)

TLS = Path(__file__).parent / "fixtures" / "tls"
Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def server(serve: Serve, tls: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """A loopback server running ``serve`` per connection; yields its base URL."""
    connections: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await serve(reader, writer)
        finally:
            writer.close()
            connections.discard(task)

    listening = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = listening.sockets[0].getsockname()[1]
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    finally:
        listening.close()
        for task in list(connections):
            task.cancel()
        if connections:
            await asyncio.wait(set(connections), timeout=2)
        await listening.wait_closed()


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes) -> bool:
    """Read one request and answer it (keep-alive); False when the client closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return False
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    await reader.readexactly(length)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    await writer.drain()
    return True


async def test_telegram_calls_go_over_the_asyncio_backend(
        monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[tuple[str, int]] = []
    connect = http_backend.AsyncioBackend.connect_tcp

    async def counted(self: http_backend.AsyncioBackend, host: str, port: int,
                      *args: object, **kwargs: object) -> object:
        opened.append((host, port))
        return await connect(self, host, port, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(http_backend.AsyncioBackend, "connect_tcp", counted)
    async with FakeBotApi() as api:
        transport = TelegramTransport(api.token, base_url=api.base_url,
                                      base_file_url=api.base_file_url)
        try:
            for n in range(3):
                await transport.send(Outbound("telegram:5", f"message {n}"))
        finally:
            await transport.close()
        assert [m["text"] for m in api.bot_messages(5)] == ["message 0", "message 1", "message 2"]
    assert opened and set(opened) == {("127.0.0.1", api.port)}
    assert len(opened) == 1  # getMe and the three messages on one kept-alive connection


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    async def once_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer(reader, writer, b'{"n": 1}')  # keep-alive promised, then closed

    async with server(once_then_close) as url, \
            httpx.AsyncClient(transport=bot_api_transport(1)) as client:
        assert (await client.get(url)).json() == {"n": 1}
        await asyncio.sleep(0.1)  # the server's close arrives
        assert (await client.get(url)).json() == {"n": 1}  # on a new connection


async def test_keep_alive_reuses_one_connection() -> None:
    connections = 0

    async def many(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        for _ in range(100):
            if not await answer(reader, writer, b"{}"):
                return

    async with server(many) as url, httpx.AsyncClient(transport=bot_api_transport(4)) as client:
        for _ in range(5):
            assert (await client.post(url, data={"a": "b"})).status_code == 200
    assert connections == 1


async def test_timeouts_and_refused_connections_are_httpx_errors() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(10)

    async with server(silent) as url, httpx.AsyncClient(transport=bot_api_transport(1)) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(url, timeout=httpx.Timeout(0.2))
    async with httpx.AsyncClient(transport=bot_api_transport(1)) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(url)  # the server is gone: refused


async def test_https_with_certificate_checks() -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(TLS / "localhost-cert.pem", TLS / "localhost-key.pem")

    async def ok(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await answer(reader, writer, b'{"ok": true}')

    trusting = ssl.create_default_context(cafile=str(TLS / "localhost-cert.pem"))
    async with server(ok, tls) as url:
        async with httpx.AsyncClient(transport=bot_api_transport(1, ssl_context=trusting)) as client, \
                client.stream("GET", url) as response:
            stream = response.extensions["network_stream"]
            assert stream.get_extra_info("ssl_object").version().startswith("TLS")
            assert await response.aread() == b'{"ok": true}'
        # The default context (certifi) does not know this certificate: refused.
        async with httpx.AsyncClient(transport=bot_api_transport(1)) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(url)
