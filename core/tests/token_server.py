#!/usr/bin/env python3
"""A token server for the registry tests (the distribution registry's `auth: token`).

Usage: token_server.py PORT KEY CERT USER PASSWORD LOG

Answers GET /token?service=...&scope=repository:NAME:ACTIONS with a JWT signed RS256 by
KEY (openssl does the signing), the certificate CERT in its `x5c` header. Anonymous
callers get `pull`; USER with PASSWORD (HTTP basic) gets what it asks for; wrong
credentials get a 401. Every request's scope and user go to LOG, one line each.
"""
import base64
import json
import subprocess
import sys
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

PORT, KEY, CERT, USER, PASSWORD, LOG = sys.argv[1:7]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def cert_der() -> str:
    pem = open(CERT).read()
    body = "".join(l for l in pem.splitlines() if "-----" not in l)
    return body


def sign(payload: dict) -> str:
    header = {"typ": "JWT", "alg": "RS256", "x5c": [cert_der()]}
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    sig = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", KEY], input=signing_input.encode(), capture_output=True, check=True
    ).stdout
    return signing_input + "." + b64url(sig)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        user = ""
        auth = self.headers.get("Authorization", "")
        if auth:
            try:
                user, password = base64.b64decode(auth.split(" ", 1)[1]).decode().split(":", 1)
            except Exception:
                user, password = "?", ""
            if (user, password) != (USER, PASSWORD):
                self.send_response(401)
                self.end_headers()
                return
        access = []
        for scope in query.get("scope", []):
            kind, name, actions = scope.rsplit(":", 2)[0].split(":")[0], scope.split(":")[1], scope.split(":")[-1]
            wanted = actions.split(",")
            granted = [a for a in wanted if user or a == "pull"]
            access.append({"type": kind, "name": name, "actions": granted})
        with open(LOG, "a") as log:
            log.write(f"user={user or '-'} scope={','.join(query.get('scope', [])) or '-'}\n")
        now = int(time.time())
        token = sign(
            {
                "iss": "isolette-test-issuer",
                "sub": user,
                "aud": query.get("service", [""])[0],
                "exp": now + 300,
                "nbf": now - 10,
                "iat": now,
                "jti": str(uuid.uuid4()),
                "access": access,
            }
        )
        body = json.dumps({"token": token, "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
