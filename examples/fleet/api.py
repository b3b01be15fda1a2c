"""The fleet's submitter and reader: a small HTTP API over fleet.submit and fleet.result.

    python examples/fleet/api.py [--port 8090] [--host 127.0.0.1]

POST /submissions   {language, problem, code, kind?}  -> 202 {id}; 400 for an unknown
                    language or problem, 413 for code over 64 KiB (or a body over 1 MiB)
GET  /submissions/ID                                  -> 200 the verdict with every test's
                    figures, 202 {status: "queued"} while it waits, 404 for no such id
"""

from __future__ import annotations

import argparse
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import fleet

MAX_BODY = 1 << 20


class Handler(BaseHTTPRequestHandler):
    server_version = "isolette-fleet"
    redis = fleet.connect()

    def reply(self, status: int, value: Any) -> None:
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        if self.path != "/submissions":
            return self.reply(404, {"error": "not found"})
        size = int(self.headers.get("content-length") or 0)
        if size > MAX_BODY:
            return self.reply(413, {"error": f"the body is over {MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(size))
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            sid = fleet.submit(
                self.redis, body.get("language"), body.get("problem"), body.get("code"), body.get("kind", "practice")
            )
        except fleet.Refused as e:
            return self.reply(e.status, {"error": str(e)})
        except ValueError as e:
            return self.reply(400, {"error": f"the body must be JSON: {e}"})
        self.reply(202, {"id": sid})

    def do_GET(self) -> None:  # noqa: N802
        m = re.fullmatch(r"/submissions/([0-9a-f]{32})", self.path)
        if not m:
            return self.reply(404, {"error": "not found"})
        verdict = fleet.result(self.redis, m.group(1))
        if verdict is None:
            return self.reply(404, {"error": "no such submission"})
        self.reply(200 if verdict["status"] == "done" else 202, verdict)

    def log_message(self, *_: Any) -> None:
        pass


def serve(port: int = 8090, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    return ThreadingHTTPServer((host, port), Handler)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = serve(args.port, args.host)
    print(f"fleet API on http://{args.host}:{server.server_address[1]}/", flush=True)
    server.serve_forever()
