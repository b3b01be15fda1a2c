"""Plots bench/side-by-side.sh's figures: latency per tool (W1, W2), throughput, and the
cost of a run against the caller's memory. Usage: plot.py latest.json latest.png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(open(sys.argv[1]))
fig = plt.figure(figsize=(13, 10))
quiet = data.get("quietness", {})
if not quiet.get("publishable", True):
    fig.suptitle(f"NOT PUBLISHABLE: the machine was not quiet (drift {quiet['drift']:.2f}x > 1.3x)", color="red")
grid = fig.add_gridspec(2, 2, height_ratios=[3, 2])
axes = [fig.add_subplot(grid[0, :]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[1, 1])]

rows = data["latency"]
names = [f'{r["workload"]}  {r["name"]}' for r in rows]
colors = ["#1f77b4" if "isolette" in r["name"] else "#999999" for r in rows]
ax = axes[0]
ax.barh(names, [r["median_ms"] for r in rows], color=colors)
ax.errorbar([r["p90_ms"] for r in rows], names, fmt="|", color="black", label="p90")
ax.invert_yaxis()
ax.set_xlabel("ms per sandbox running /bin/true (median; | = p90)")
ax.set_title("latency (W1 no limits, W2 memory + pids)")

t = data["throughput"]
ax = axes[1]
ax.barh([r["name"] for r in t], [r["runs_per_s"] for r in t],
        color=["#1f77b4" if "isolette" in r["name"] else "#999999" for r in t])
ax.invert_yaxis()
ax.set_xlabel("runs per second, two at a time")
ax.set_title("throughput")

c = data["caller_memory"]["rows"]
ax = axes[2]
ax.plot([r["caller_mib"] for r in c], [r["p50_ms"] for r in c], "o-", color="#1f77b4")
ax.set_xscale("log")
ax.set_ylim(0, max(r["p50_ms"] for r in c) * 1.2)
ax.set_xlabel("memory the calling process holds (MiB)")
ax.set_ylabel("ms per in-process W2 run (p50)")
ax.set_title("in-process W2 vs the caller's own memory")

machine = data["machine"].split(", cgroup")[0]
fig.suptitle(f"isolette side by side, one run — {machine}", fontsize=10)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
