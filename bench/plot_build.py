"""Plots bench/build.sh's figures: median ms per case (cold, no-op rebuild, one file
changed) for isolette and each anchor, on a log scale. Usage: plot_build.py build.json build.png"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

data = json.load(open(sys.argv[1]))
cases = ["cold", "noop", "file"]
labels = {"cold": "cold (--no-cache)", "noop": "no-op rebuild", "file": "one file changed"}
tools = [("iso", "isolette build"), ("classic", "Docker classic"), ("buildkit", "BuildKit"), ("bah", "buildah")]
colors = {"iso": "#1f77b4", "classic": "#999999", "buildkit": "#666666", "bah": "#bbbbbb"}
fig, ax = plt.subplots(figsize=(10, 5))
width = 0.2
for i, (key, name) in enumerate(tools):
    xs = [c + (i - 1.5) * width for c in range(len(cases))]
    ys = [data["median_ms"][f"{key}/{case}"] for case in cases]
    bars = ax.bar(xs, ys, width, label=name, color=colors[key])
    ax.bar_label(bars, labels=[f"{y:g}" for y in ys], fontsize=8)
ax.set_xticks(range(len(cases)), [labels[c] for c in cases])
ax.set_yscale("log")
ax.set_ylabel("ms, median (log scale)")
ax.set_title(data["title"])
ax.legend()
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=110)
