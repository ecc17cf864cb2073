"""A real headless Chromium (Debian's `chromium` package, installed when missing) for tests
of what browsers do, and a page origin of the test's own to load in it."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.debian_packages import ensure_installed
from tests.upstream_services import free_port


def chromium() -> str:
    return ensure_installed("chromium")


def rendered_dom(url: str, budget_ms: int = 15000) -> str:
    """The page's DOM once its scripts (and the fetches they await) have run."""
    command = [
        chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-extensions", "--disable-dev-shm-usage", f"--virtual-time-budget={budget_ms}",
        "--dump-dom", url,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class PageOrigin:
    """A loopback origin of its own that serves `html` at / (set it once URLs are known)."""

    def __init__(self) -> None:
        self.html = ""
        self.port = free_port()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def page_origin() -> Iterator[PageOrigin]:
    page = PageOrigin()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", page.port), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield page
    finally:
        server.shutdown()
        server.server_close()
