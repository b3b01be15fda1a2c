#!/usr/bin/env python3
"""Byte-exact transfers for the network tests and `bench/network.sh`.

  transfer.py serve-tcp ADDR PORT      serve the protocol below until killed ("ready" on stdout)
  transfer.py serve-udp ADDR PORT      answer each datagram with its length and sha256
  transfer.py tcp HOST PORT COUNT SEED [quit]
                                       COUNT transfers; prints one line of totals; with
                                       `quit`, then tells the server to exit
  transfer.py udp HOST PORT COUNT SEED [quit]

TCP: each connection opens with one line, `OP N SEED`, and moves N bytes of
`random.Random(SEED).randbytes(N)`:
  GET   the server sends the bytes and half-closes; the client half-closes first (get-hc)
        or only after reading to the end (get)
  PUT   the client sends the bytes and half-closes; the server answers `N SHA256` and closes
  LATE  the server sends the bytes and half-closes; the client reads to the end, then sends
        them back and half-closes; the server checks them (the answer to `CHECK 0 SEED`
        counts the bad ones)
Every transfer compares byte counts and sha256. The totals line is
`transfers N bad B hung H bytes T seconds S`; a transfer that makes no progress for 20 s
(or $TRANSFER_TIMEOUT) counts as hung. The server waits for its clients without a limit.
"""
import hashlib
import os
import random
import socket
import sys
import threading
import time

SIZES = [1, 9, 1000, 65536, 1_000_000, 8 << 20]
WEIGHTS = [20, 20, 20, 20, 12, 8]
UDP_SIZES = [1, 9, 1000, 8192, 32768, 60000]
TIMEOUT = float(os.environ.get("TRANSFER_TIMEOUT", "20"))
late_bad = {}
lock = threading.Lock()


def data(n, seed):
    return random.Random(seed).randbytes(n)


def send_all(c, data):
    """sendall, with the timeout applying to each send (no progress for TIMEOUT), not to all."""
    view = memoryview(data)
    while view:
        view = view[c.send(view):]


def read_all(c):
    h, got = hashlib.sha256(), 0
    while True:
        d = c.recv(1 << 20)
        if not d:
            return got, h.digest()
        h.update(d)
        got += len(d)


def handle(c):
    with c:
        head = b""
        while b"\n" not in head:
            d = c.recv(4096)
            if not d:
                return
            head += d
        line, rest = head.split(b"\n", 1)
        op, n, seed = line.split()
        n, seed = int(n), int(seed)
        if op == b"GET" or op == b"LATE":
            send_all(c, data(n, seed))
            c.shutdown(socket.SHUT_WR)
            got, digest = read_all(c)
            if op == b"LATE":
                # The client sends only after reading to the end: nothing came with the line.
                ok = got == n and digest == hashlib.sha256(data(n, seed)).digest() and not rest
                with lock:
                    late_bad[seed >> 20] = late_bad.get(seed >> 20, 0) + (not ok)
        elif op == b"PUT":
            h = hashlib.sha256(rest)
            got = len(rest)
            while True:
                d = c.recv(1 << 20)
                if not d:
                    break
                h.update(d)
                got += len(d)
            c.sendall(b"%d %s\n" % (got, h.hexdigest().encode()))
        elif op == b"QUIT":
            os._exit(0)
        elif op == b"CHECK":
            with lock:
                c.sendall(b"%d\n" % late_bad.pop(seed >> 20, 0))


def serve_tcp(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(128)
    print("ready", flush=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def serve_udp(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, port))
    print("ready", flush=True)
    while True:
        d, peer = s.recvfrom(65536)
        if d == b"QUIT":
            os._exit(0)
        s.sendto(b"%d %s" % (len(d), hashlib.sha256(d).hexdigest().encode()), peer)


def connect(host, port):
    # The server may be starting still (a sandbox published before it listens): a refused
    # or reset connection before any byte moved is tried again for up to TIMEOUT.
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            return socket.create_connection((host, port), timeout=TIMEOUT)
        except (ConnectionRefusedError, ConnectionResetError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def tcp_one(host, port, op, n, seed):
    with connect(host, port) as c:
        if op in ("get", "get-hc"):
            c.sendall(b"GET %d %d\n" % (n, seed))
            if op == "get-hc":
                c.shutdown(socket.SHUT_WR)
            return read_all(c) == (n, hashlib.sha256(data(n, seed)).digest())
        if op == "put":
            body = data(n, seed)
            send_all(c, b"PUT %d %d\n" % (n, seed) + body)
            c.shutdown(socket.SHUT_WR)
            r = b""
            while True:
                d = c.recv(4096)
                if not d:
                    break
                r += d
            return r == b"%d %s\n" % (n, hashlib.sha256(body).hexdigest().encode())
        c.sendall(b"LATE %d %d\n" % (n, seed))
        ok = read_all(c) == (n, hashlib.sha256(data(n, seed)).digest())
        send_all(c, data(n, seed))
        c.shutdown(socket.SHUT_WR)
        c.recv(1)  # the server closes once it has read and checked everything
        return ok


def tcp_client(host, port, count, seed, quit):
    rnd = random.Random(seed)
    bad = hung = total = 0
    started = time.monotonic()
    for k in range(count):
        n = rnd.choices(SIZES, WEIGHTS)[0]
        op = ("get-hc", "get", "put", "late")[k % 4]
        s = (seed << 20) | k
        try:
            if not tcp_one(host, port, op, n, s):
                bad += 1
                print("bad", op, n, file=sys.stderr)
        except socket.timeout:
            hung += 1
            print("hung", op, n, file=sys.stderr)
        except OSError as e:  # a reset or refused connection: the transfer failed
            bad += 1
            print("bad", op, n, e, file=sys.stderr)
        total += n * (2 if op == "late" else 1)
    with connect(host, port) as c:
        c.sendall(b"CHECK 0 %d\n" % (seed << 20))
        late = int(c.makefile().readline() or "1")
    report(count, bad + late, hung, total, time.monotonic() - started)
    if quit:
        with connect(host, port) as c:
            c.sendall(b"QUIT 0 0\n")


def udp_client(host, port, count, seed, quit):
    rnd = random.Random(seed)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    s.connect((host, port))
    bad = hung = total = 0
    started = time.monotonic()
    for k in range(count):
        d = data(rnd.choice(UDP_SIZES), (seed << 20) | k)
        s.send(d)
        try:
            if s.recv(256) != b"%d %s" % (len(d), hashlib.sha256(d).hexdigest().encode()):
                bad += 1
        except socket.timeout:
            hung += 1
        total += len(d)
    report(count, bad, hung, total, time.monotonic() - started)
    if quit:
        s.send(b"QUIT")


def report(count, bad, hung, total, seconds):
    print("transfers %d bad %d hung %d bytes %d seconds %.3f" % (count, bad, hung, total, seconds), flush=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve-tcp":
        serve_tcp(args[0], int(args[1]))
    elif cmd == "serve-udp":
        serve_udp(args[0], int(args[1]))
    elif cmd == "tcp":
        tcp_client(args[0], int(args[1]), int(args[2]), int(args[3]), args[4:] == ["quit"])
    elif cmd == "udp":
        udp_client(args[0], int(args[1]), int(args[2]), int(args[3]), args[4:] == ["quit"])
    else:
        sys.exit(__doc__)
