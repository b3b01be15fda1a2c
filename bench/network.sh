#!/usr/bin/env bash
# The network benchmark: integrity, per-run cost and throughput of the user-mode network
# backends (Debian 12's pasta and slirp4netns, started by hand as isolette would), root and
# in a user namespace, then what an isolette CLI run costs with `none`, `outbound` and `-p`,
# side by side in one run. Needs root. Traffic goes only to a test host in a network
# namespace this script makes (198.51.100.250/29, a veth pair) and to loopback.
#
#   bench/network.sh [TRANSFERS]     transfers per backend and mode (default 100; a transfer
#                                    that makes no progress for 2 s counts as hung)
#
# Installs passt (for the comparison) and slirp4netns when missing. Results go to stdout and
# bench/results/network.txt.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/lib.sh
[[ $EUID -eq 0 ]] || { echo "network.sh: run as root" >&2; exit 1; }
ensure_packages passt slirp4netns python3 busybox-static
COUNT="${1:-100}"
CLI="$(build_static_cli)"
scripts/build-test-images.sh >/dev/null
mkdir -p bench/results
export COUNT CLI TRANSFER_TIMEOUT=2 SCRIPT="$ROOT/core/tests/net/transfer.py"
python3 - <<'PY' | tee bench/results/network.txt
import os, statistics, subprocess, sys, time

count, cli, script = int(os.environ["COUNT"]), os.environ["CLI"], os.environ["SCRIPT"]
ok = lambda *a: subprocess.run(a, check=True, capture_output=True)

# The test host: a namespace of our own behind a veth pair, serving transfer.py.
keeper = subprocess.Popen(["unshare", "--net", "sleep", "3600"])
time.sleep(0.05)
pid = str(keeper.id if hasattr(keeper, "id") else keeper.pid)
ok("ip", "link", "add", "isobench0", "type", "veth", "peer", "name", "isobench1", "netns", pid)
ok("ip", "addr", "add", "198.51.100.249/29", "dev", "isobench0")
ok("ip", "link", "set", "isobench0", "up")
inside = lambda *a: ok("nsenter", "-t", pid, "--net", "--", *a)
inside("ip", "addr", "add", "198.51.100.250/29", "dev", "isobench1")
inside("ip", "link", "set", "isobench1", "up")
inside("ip", "link", "set", "lo", "up")
server = subprocess.Popen(["nsenter", "-t", pid, "--net", "--", "python3", script, "serve-tcp", "198.51.100.250", "7000"],
                          stdout=subprocess.PIPE)
assert server.stdout.readline() == b"ready\n"

def backend(name, userns):
    """Starts `name` on a fresh namespace; returns (namespace holder, backend, start ms)."""
    holder = subprocess.Popen(["unshare", "-U", "-r", "--net", "sleep", "600"] if userns else ["unshare", "--net", "sleep", "600"])
    time.sleep(0.05)
    net = os.open(f"/proc/{holder.pid}/ns/net", os.O_RDONLY)
    user = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY)
    r, w = os.pipe()
    started = time.perf_counter()
    if name == "pasta":
        args = ["pasta", "--config-net", "--quiet", "--foreground", "-T", "none", "-U", "none", "-t", "none", "-u", "none",
                "--no-map-gw", "--runas", "0", "--netns", f"/proc/self/fd/{net}", "--pid", f"/proc/self/fd/{w}"]
        if userns:
            args += ["--userns", f"/proc/self/fd/{user}"]
    else:
        # As isolette does: a persistent tap made ahead in the namespace.
        enter = ["nsenter", "-t", str(holder.pid), "--net"] + (["--user", "--preserve-credentials"] if userns else [])
        ok(*enter, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
        started = time.perf_counter()
        args = ["slirp4netns", "--configure", "--mtu=65520", "--netns-type=path", f"--ready-fd={w}", "--enable-seccomp",
                f"/proc/self/fd/{net}", "tap0"]
        if userns:
            args.insert(1, f"--userns-path=/proc/self/fd/{user}")
    proc = subprocess.Popen(args, pass_fds=[net, user, w], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(w)
    import select
    took = None  # None: it never said it was ready
    if select.select([r], [], [], 10)[0] and os.read(r, 16):
        took = (time.perf_counter() - started) * 1000
    for fd in (r, net, user):
        os.close(fd)
    return holder, proc, took

def stop(holder, proc):
    started = time.perf_counter()
    proc.kill(); proc.wait()
    took = (time.perf_counter() - started) * 1000
    holder.kill(); holder.wait()
    return took

print(f"# user-mode network backends, {count} mixed transfers each (1 B to 8 MiB, half-closes from either side)")
print(f"{'backend':<12} {'caller':<8} {'transfers':>9} {'bad':>4} {'hung':>4} {'MB/s':>7} {'start ms':>9} {'stop ms':>8}")
for name in ("slirp4netns", "pasta"):
    for userns in (False, True):
        holder, proc, start_ms = backend(name, userns)
        caller = "userns" if userns else "root"
        enter = ["nsenter", "-t", str(holder.pid), "--net"] + (["--user", "--preserve-credentials"] if userns else [])
        try:
            out = subprocess.run(enter + ["python3", script, "tcp", "198.51.100.250", "7000", str(count), "7"],
                                 capture_output=True, text=True, timeout=10 + count * 10).stdout.split()
        except subprocess.TimeoutExpired:
            out = []
        stop_ms = stop(holder, proc)
        if start_ms is None or len(out) < 10:
            print(f"{name:<12} {caller:<8} did not finish: " + ("it never said it was ready" if start_ms is None
                  else f"the transfers did not end within {10 + count * 10} s"))
            continue
        n, bad, hung, total, secs = int(out[1]), int(out[3]), int(out[5]), int(out[7]), float(out[9])
        print(f"{name:<12} {caller:<8} {n:>9} {bad:>4} {hung:>4} {total / secs / 1e6:>7.1f} "
              f"{start_ms:>9.2f} {stop_ms:>8.2f}")

# What a CLI run costs, modes interleaved.
img = "ROOT/.cache/images/busybox".replace("ROOT", os.getcwd())
modes = {"none": [], "outbound": ["--network", "outbound"], "-p": ["-p", "0:8000"],
         "outbound -p": ["--network", "outbound", "-p", "0:8000"]}
times = {m: [] for m in modes}
for _ in range(200):
    for m, a in modes.items():
        t = time.perf_counter()
        subprocess.run([cli, "run", "--image", img, *a, "--", "/bin/true"], check=True)
        times[m].append((time.perf_counter() - t) * 1000)
base = statistics.median(times["none"])
print("\n# isolette CLI, /bin/true, 200 runs per mode, interleaved")
for m, xs in times.items():
    xs.sort()
    print(f"{m:<12} median {statistics.median(xs):6.2f} ms  p90 {xs[int(len(xs) * .9)]:6.2f} ms  "
          f"{statistics.median(xs) / base:.2f}x none")

server.kill(); server.wait()
keeper.kill(); keeper.wait()
subprocess.run(["ip", "link", "del", "isobench0"], capture_output=True)
PY
