"""Counts visits in Redis (service `db`), and serves ./static: the Compose example's web app.

GET /        increments the counter and answers `visits N`
GET /health  answers `ok` once Redis answers
GET /static/NAME  a file of the bind-mounted ./static
"""

import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REDIS = (os.environ.get("REDIS_HOST", "db"), 6379)


def redis(*words: str) -> bytes:
    """One Redis command over RESP; its reply line, without the type byte."""
    request = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w.encode()) for w in words)
    with socket.create_connection(REDIS, timeout=2) as conn:
        conn.sendall(request)
        reply = conn.makefile("rb").readline()
    if not reply or reply[:1] == b"-":
        raise OSError(f"redis said {reply!r}")
    return reply[1:].strip()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        try:
            if self.path == "/":
                body = b"visits %s\n" % redis("INCR", "visits")
            elif self.path == "/health":
                redis("PING")
                body = b"ok\n"
            elif self.path.startswith("/static/") and "/" not in self.path[len("/static/"):]:
                with open("/srv/static/" + self.path[len("/static/"):], "rb") as f:
                    body = f.read()
            else:
                self.send_error(404)
                return
        except OSError as e:
            self.send_error(503, str(e))
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(self.address_string(), format % args, flush=True)


if __name__ == "__main__":
    print("serving on :8000", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
