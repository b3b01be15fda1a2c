#!/usr/bin/env python3
"""The same egress rules give the same verdicts from the CLI, Python and Node.

Run by scripts/test.sh after the Python and Node packages are built, with the venv's
Python (`isolette` installed) and ISOLETTE_TEST_CLI pointing at the CLI. Needs root: it
makes a test host (a network namespace of its own behind a veth pair, 198.51.100.58/29 and
the link-local 169.254.107.2) serving a greeting on two ports, and reaches nothing else.
Each rule list is given to each surface in its own words (the CLI's `--egress allow:...`,
Python's pairs, Node's pairs and words); the sandbox tries three destinations; the three
surfaces must agree with each other and with the expected verdicts. Ends with the plain
`N passed, N failed` line.
"""
import json
import os
import subprocess
import sys
import time

import isolette

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLI = os.environ["ISOLETTE_TEST_CLI"]
BUSYBOX = os.path.join(ROOT, ".cache", "images", "busybox")
HOST, LINK_LOCAL, HOST_SIDE = "198.51.100.58", "169.254.107.2", "198.51.100.57"


def ok(*args):
    subprocess.run(args, check=True, capture_output=True)


def test_host():
    """A namespace of our own behind a veth pair, greeting `a` on 7001 and `b` on 7002."""
    keeper = subprocess.Popen(["unshare", "--net", "sleep", "3600"])
    ours = os.readlink("/proc/self/ns/net")
    while os.readlink(f"/proc/{keeper.pid}/ns/net") == ours:
        time.sleep(0.001)
    pid = str(keeper.pid)
    dev = f"isoeg{os.getpid() % 100000}"
    ok("ip", "link", "add", dev, "type", "veth", "peer", "name", "isoeg-peer", "netns", pid)
    ok("ip", "addr", "add", f"{HOST_SIDE}/29", "dev", dev)
    ok("ip", "link", "set", dev, "up")
    ok("ip", "route", "add", f"{LINK_LOCAL}/32", "dev", dev)
    inside = ["nsenter", "-t", pid, "--net", "--"]
    for args in (["addr", "add", f"{HOST}/29", "dev", "isoeg-peer"], ["addr", "add", f"{LINK_LOCAL}/32", "dev", "isoeg-peer"],
                 ["link", "set", "isoeg-peer", "up"], ["link", "set", "lo", "up"],
                 ["route", "add", "default", "dev", "isoeg-peer"]):
        ok(*inside, "ip", *args)
    server = subprocess.Popen(inside + [sys.executable, "-c", """
import socket, threading
def serve(port, word):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", port)); s.listen(16)
    while True:
        c, _ = s.accept(); c.sendall(word); c.close()
for port, word in ((7001, b"a"), (7002, b"b")):
    threading.Thread(target=serve, args=(port, word)).start()
print("ready", flush=True)
"""], stdout=subprocess.PIPE)
    assert server.stdout.readline() == b"ready\n"
    return keeper, server, dev


# Each destination prints its greeting, or x.
TARGETS = [(HOST, 7001), (HOST, 7002), (LINK_LOCAL, 7001)]
SCRIPT = "; ".join(f'r=$(nc -w 1 {h} {p} </dev/null 2>/dev/null); echo "${{r:-x}}"' for h, p in TARGETS)

H = f"{HOST}/29"
CASES = [  # (rules, expected greetings)
    ([], "a b x"),  # link-local refused by default
    ([f"deny:{HOST}:7001"], "x b x"),
    ([f"deny:{HOST}:7001", f"allow:{H}"], "x b x"),  # first match: the deny
    ([f"allow:{HOST}:7001", f"deny:{H}"], "a x x"),  # first match: the allow
    ([f"allow:{LINK_LOCAL}"], "x x a"),  # an allow rule: what no rule matches is refused
    ([f"allow:{H}", f"allow:{LINK_LOCAL}:7001"], "a b a"),
    ([f"allow:{H}:7002-7009", f"deny:{LINK_LOCAL}", "allow:0.0.0.0/0"], "a b x"),
]


def cli(rules):
    args = [CLI, "run", "--network", "outbound", "--image", BUSYBOX]
    for r in rules:
        args += ["--egress", r]
    return subprocess.run(args + ["--", "/bin/sh", "-c", SCRIPT], capture_output=True, text=True, check=True).stdout


def python(rules):
    pairs = [tuple(r.split(":", 1)) for r in rules]
    out = isolette.run(isolette.Image.open(BUSYBOX), ["/bin/sh", "-c", SCRIPT], network="outbound", egress=pairs)
    return out.stdout.decode()


def node(rules):
    # Pairs and words mixed: the first rule as a word, the others as pairs.
    given = [r if k == 0 else r.split(":", 1) for k, r in enumerate(rules)]
    code = f"""
const isolette = require({json.dumps(os.path.join(ROOT, "bindings-node"))})
isolette.run(isolette.Image.open({json.dumps(BUSYBOX)}), ['/bin/sh', '-c', {json.dumps(SCRIPT)}],
             {{ network: 'outbound', egress: {json.dumps(given)} }})
  .then((out) => process.stdout.write(out.stdout))
"""
    return subprocess.run(["node", "-e", code], capture_output=True, text=True, check=True).stdout


def main():
    keeper, server, dev = test_host()
    passed = failed = 0
    try:
        for rules, want in CASES:
            got = {name: " ".join(f(rules).split()) for name, f in (("cli", cli), ("python", python), ("node", node))}
            if set(got.values()) == {want}:
                passed += 1
                print(f"ok    {rules}: {want} from the CLI, Python and Node")
            else:
                failed += 1
                print(f"FAIL  {rules}: expected {want}, got {got}")
    finally:
        for p in (server, keeper):
            p.kill()
            p.wait()
        subprocess.run(["ip", "link", "del", dev], capture_output=True)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or not passed else 0)


if __name__ == "__main__":
    main()
