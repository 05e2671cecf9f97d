"""A loopback server that answers every request with whatever bytes a test writes to the socket.

``http.server`` (and with it the fake Tamtam server) always sends a well-formed status line, headers and a
correct ``Content-Length``; the answers of a broken proxy or a hostile upstream need raw bytes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType

Respond = Callable[[socket.socket], None]


class RawHTTPServer:
    """Reads each request's head, then calls ``respond(connection)``; ``stop()`` drops every connection."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> RawHTTPServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        head = b""
        with contextlib.suppress(OSError):
            while b"\r\n\r\n" not in head:
                data = connection.recv(4096)
                if not data:
                    return
                head += data
            with self._lock:
                self.requests += 1
            self.respond(connection)
            connection.shutdown(socket.SHUT_RDWR)
        connection.close()


def answer(raw: bytes) -> Respond:
    """Respond with these exact bytes, then close."""

    def respond(connection: socket.socket) -> None:
        connection.sendall(raw)

    return respond


def hang(connection: socket.socket) -> None:
    """Never answer: hold the connection until the client gives up or the server stops."""
    while connection.recv(1):
        pass
