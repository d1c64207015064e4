"""A scripted HTTP server on 127.0.0.1 for what a real registry will not do on demand:
stall, drop a connection halfway, send an endless body, answer 503, redirect, ask for a
token. Each test gives the function that answers; the requests are recorded."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Scripted:
    """A running server: ``host`` is ``127.0.0.1:PORT``; ``seen`` lists the requests."""

    host: str
    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


Answer = Callable[[BaseHTTPRequestHandler, Seen], None]


def serve(answer: Answer) -> Scripted:
    """Start a server whose every request is answered by ``answer(handler, seen)``."""
    holder: dict[str, Scripted] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            seen = Seen(self.command, self.path, {k: v for k, v in self.headers.items()}, body)
            holder["s"].seen.append(seen)
            try:
                answer(self, seen)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    scripted = Scripted(f"127.0.0.1:{server.server_address[1]}", server)
    holder["s"] = scripted
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return scripted


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
    """A whole answer with a Content-Length."""
    handler.send_response(status)
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)
