"""A hostile HTTP/1.1 server in a thread, for tests of the clients' bounded reading path.

Each path gets an ``Answer``: a status, headers and a body that is bytes, or ``Huge`` (that many
bytes made on the fly, never held), or a gzip bomb (``gzip_bomb()``: ~1 MB expanding to ~1 GB),
optionally trickled one byte per ``trickle`` seconds. The server records every request it saw
(method, path, query) and, for each answer, how many body bytes it sent and whether the client
hung up before the end: so tests assert from the server's side that nothing was sent twice, a
redirect was not followed, and a too-large or too-slow answer was abandoned.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from retry_pipelines_tests.support.loop_server import LoopServer

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Huge:
    """``size`` body bytes, made a chunk at a time as they are sent."""

    size: int
    byte: bytes = b"x"


@functools.cache
def gzip_bomb(expanded: int = 1024**3) -> bytes:
    """A gzip member of ``expanded`` zero bytes (about 1 MB for 1 GB), compressed in chunks."""
    out = io.BytesIO()
    zeros = bytes(CHUNK * 16)
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9) as packed:
        for _ in range(expanded // len(zeros)):
            packed.write(zeros)
    return out.getvalue()


@dataclass
class Answer:
    status: int = 200
    body: bytes | Huge | dict | list | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False
    """Send without Content-Length (chunked), so the client cannot tell the size up front."""
    trickle: float | None = None
    """Seconds between body bytes (headers are sent at once)."""


@dataclass
class Seen:
    method: str
    path: str
    query: str
    body: bytes
    sent: int = 0
    """Body bytes the server managed to send."""
    client_left: bool = False
    """The client closed the connection before the whole answer was sent."""
    done: threading.Event = field(default_factory=threading.Event)


Route = Answer | Callable[["Seen"], Answer]


def _body_bytes(body) -> bytes | Huge:
    if isinstance(body, bytes | Huge):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).encode()


class HostileServer(LoopServer):
    """``routes``: path → ``Answer`` (or a function of the request's ``Seen`` returning one).
    Unknown paths get 404. Use as a context manager; ``url`` is its base URL."""

    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__()
        self.routes = routes
        self.seen: list[Seen] = []

    def hits(self, path: str, method: str | None = None) -> list[Seen]:
        return [s for s in self.seen if s.path == path and method in (None, s.method)]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(self, reader, writer) -> bool:
        line = await reader.readline()
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers = {}
        while (raw := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        parts = urlsplit(target)
        seen = Seen(method, parts.path, parts.query, body)
        self.seen.append(seen)
        route = self.routes.get(parts.path, Answer(404, {"error": "not found"}))
        answer = route(seen) if callable(route) else route
        try:
            await self._answer(writer, answer, seen)
        except ConnectionError:
            seen.client_left = True
            return False
        finally:
            seen.done.set()
        return True

    async def _answer(self, writer, answer: Answer, seen: Seen) -> None:
        body = _body_bytes(answer.body)
        size = body.size if isinstance(body, Huge) else len(body)
        head = [f"HTTP/1.1 {answer.status} X"]
        head += [f"{k}: {v}" for k, v in answer.headers.items()]
        if answer.chunked:
            head.append("Transfer-Encoding: chunked")
        else:
            head.append(f"Content-Length: {size}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        await writer.drain()
        for piece in _pieces(body, 1 if answer.trickle else CHUNK):
            if answer.trickle:
                await asyncio.sleep(answer.trickle)
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if answer.chunked else piece)
            await writer.drain()
            seen.sent += len(piece)
            if writer.transport.is_closing():
                raise ConnectionResetError
        if answer.chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()


def _pieces(body: bytes | Huge, size: int):
    if isinstance(body, Huge):
        block = body.byte * size
        left = body.size
        while left > 0:
            yield block[: min(size, left)]
            left -= size
        return
    for start in range(0, len(body), size):
        yield body[start : start + size]
