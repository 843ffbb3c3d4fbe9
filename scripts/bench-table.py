#!/usr/bin/env python3
"""Print criterion results as a Markdown table of medians (from target/criterion/*/new/estimates.json).

Usage: python3 scripts/bench-table.py [GROUP ...]
"""
import json
import pathlib
import sys

root = pathlib.Path(__file__).resolve().parent.parent / "target" / "criterion"
groups = sys.argv[1:]


def fmt(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.1f} ns"


print("| benchmark | median | 95% CI of the median |")
print("| --- | --- | --- |")
for estimates in sorted(root.glob("*/*/new/estimates.json")):
    group, name = estimates.parts[-4], estimates.parts[-3]
    if groups and group not in groups:
        continue
    median = json.loads(estimates.read_text())["median"]
    ci = median["confidence_interval"]
    print(f"| {group}/{name} | {fmt(median['point_estimate'])} | {fmt(ci['lower_bound'])} – {fmt(ci['upper_bound'])} |")
