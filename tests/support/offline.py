"""A network guard for tests: only loopback may be reached, and $XDG_*_HOME and the default
models folder (BOT_MODELS_DIR, and ARGOS_PACKAGES_DIR, its older name) are temporary
folders. Used by every test module that runs real offline translation, which must neither
reach the network nor write under the real home."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class NetworkGuard:
    """Refuses and records every attempt to reach a non-loopback address."""

    def __init__(self, home: Path) -> None:
        self.home = home  # the temporary $XDG_*_HOME parent
        self.attempts: list[str] = []

    @staticmethod
    def _is_loopback(host: Any) -> bool:
        if isinstance(host, bytes):
            host = host.decode()
        if host is None or host == "localhost":
            return True
        try:
            return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return False

    def check(self, what: str, address: Any) -> None:
        if isinstance(address, tuple):  # AF_INET/AF_INET6; AF_UNIX addresses are paths
            host = address[0]
        elif isinstance(address, (str, bytes)) and what == "getaddrinfo":
            host = address
        else:
            return
        if not self._is_loopback(host):
            self.attempts.append(f"{what} {host!r}")
            raise OSError(f"network access blocked in tests: {what} {host!r}")

    def install(self, mp: pytest.MonkeyPatch) -> None:
        real_connect = socket.socket.connect
        real_connect_ex = socket.socket.connect_ex
        real_create_connection = socket.create_connection
        real_getaddrinfo = socket.getaddrinfo

        def connect(sock: socket.socket, address: Any) -> None:
            self.check("connect", address)
            real_connect(sock, address)

        def connect_ex(sock: socket.socket, address: Any) -> int:
            self.check("connect_ex", address)
            return real_connect_ex(sock, address)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
            self.check("create_connection", address)
            return real_create_connection(address, *args, **kwargs)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            self.check("getaddrinfo", host)
            return real_getaddrinfo(host, *args, **kwargs)

        mp.setattr(socket.socket, "connect", connect)
        mp.setattr(socket.socket, "connect_ex", connect_ex)
        mp.setattr(socket, "create_connection", create_connection)
        mp.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(scope="session")
def offline_argos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetworkGuard]:
    """Temporary XDG and models dirs and a blocked network, for the whole session."""
    home = tmp_path_factory.mktemp("argos-home")
    guard = NetworkGuard(home)
    with pytest.MonkeyPatch.context() as mp:
        for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME"):
            mp.setenv(var, str(home / var.lower()))
        mp.setenv("BOT_MODELS_DIR", str(home / "default-models"))
        mp.setenv("ARGOS_PACKAGES_DIR", str(home / "default-packages"))
        guard.install(mp)
        yield guard


@pytest.fixture
def no_network_attempts(offline_argos: NetworkGuard) -> Iterator[NetworkGuard]:
    offline_argos.attempts.clear()
    yield offline_argos
    assert offline_argos.attempts == [], "something tried to reach the network"
