"""The upstream application of the mesh lab: a small httpbin-like HTTP server on 127.0.0.1.

It runs in a thread of the lab process. Stopping it closes the listening
socket and every open connection, as the kernel does when an application
container crashes, so the server sidecar's next connection attempt gets
"connection refused".
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger(__name__)

# httpbin caps /delay/N at 10 seconds too.
MAX_DELAY_S = 10.0
MAX_BYTES = 1024 * 1024
WRITE_CHUNK_BYTES = 16 * 1024


class _Handler(BaseHTTPRequestHandler):
    server_version = "gunicorn/19.9.0"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    # Buffer a reply so its headers leave in the same write as its body, as
    # gunicorn sends them. A path that drops large packets then loses both.
    wbufsize = 64 * 1024

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches on
        path = self.path.split("?", 1)[0]
        if path.startswith("/status/"):
            self._status(path.removeprefix("/status/"))
            return
        if path.startswith("/delay/"):
            self._delay(path.removeprefix("/delay/"))
            return
        if path.startswith("/bytes/"):
            self._bytes(path.removeprefix("/bytes/"))
            return
        if path in ("/get", "/headers", "/"):
            self._echo()
            return
        self._reply(404, b"Not Found\n", "text/plain")

    def _echo(self) -> None:
        headers = {name.title(): value for name, value in self.headers.items() if name.lower() != "authorization"}
        body = {"args": {}, "headers": headers, "url": f"http://{self.headers.get('Host', '')}{self.path}"}
        self._reply(200, (json.dumps(body, indent=2) + "\n").encode(), "application/json")

    def _bytes(self, text: str) -> None:
        try:
            size = int(text)
        except ValueError:
            self._reply(400, b"Invalid size\n", "text/plain")
            return
        if not 0 <= size <= MAX_BYTES:
            self._reply(400, b"Invalid size\n", "text/plain")
            return
        self._reply(200, os.urandom(size), "application/octet-stream")

    def _delay(self, text: str) -> None:
        try:
            seconds = min(float(text), MAX_DELAY_S)
        except ValueError:
            self._reply(400, b"Invalid delay\n", "text/plain")
            return
        time.sleep(max(seconds, 0.0))
        self._echo()

    def _status(self, text: str) -> None:
        try:
            code = int(text)
        except ValueError:
            self._reply(400, b"Invalid status code\n", "text/plain")
            return
        if not 200 <= code <= 599:
            self._reply(400, b"Invalid status code\n", "text/plain")
            return
        self._reply(code, b"", "text/html; charset=utf-8")

    def _reply(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        # Chunks smaller than the buffer join the headers in it; a larger write
        # would flush the headers on their own first.
        for offset in range(0, len(body), WRITE_CHUNK_BYTES):
            self.wfile.write(body[offset:offset + WRITE_CHUNK_BYTES])

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        logger.debug("upstream app: " + format, *args)


class _TrackingServer(ThreadingHTTPServer):
    """A threading HTTP server that remembers its open connections so `stop` can close them."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        with self._connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:  # type: ignore[override]
        with self._connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            open_connections = list(self.connections)
            self.connections.clear()
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            connection.close()


class UpstreamApp:
    """The httpbin-like server; `start` binds 127.0.0.1 on a port the kernel picks."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.requested_port = port
        self._server: _TrackingServer | None = None
        self._thread: threading.Thread | None = None
        self.port: int | None = None

    def start(self) -> int:
        """Start serving and return the port."""
        self._server = _TrackingServer((self.host, self.requested_port))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="lab-upstream-app", daemon=True)
        self._thread.start()
        logger.info("upstream app listening on %s:%d", self.host, self.port)
        return self.port

    @property
    def running(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        """Stop serving and close the listening socket; safe to call twice."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        logger.info("upstream app on 127.0.0.1:%s stopped", self.port)


def main(argv: list[str] | None = None) -> int:
    """Serve in the foreground until SIGTERM: the app of a lab pod in its own network namespace."""
    parser = argparse.ArgumentParser(prog="python -m doctor.lab.app", description="Run the lab's upstream app.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="TCP port to listen on (default: 8080)")
    options = parser.parse_args(argv)
    app = UpstreamApp(options.host, options.port)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stopped.set())
    app.start()
    print(f"listening on {options.host}:{app.port}", flush=True)
    stopped.wait()
    app.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
