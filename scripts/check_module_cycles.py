#!/usr/bin/env python3
"""Lint: no import cycle between the extension's top-level modules.

A module's dependencies are the `crate::<module>` paths its files name
(src/<module>.rs, or src/<module>/*.rs for a folder). Prints the graph with
-v, and any cycle found; exits 1 if there is one."""
import glob
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
modules = {}
for path in glob.glob(os.path.join(ROOT, "*.rs")) + glob.glob(os.path.join(ROOT, "*", "*.rs")):
    rel = os.path.relpath(path, ROOT)
    name = rel.split(os.sep)[0].removesuffix(".rs")
    if name in ("lib", "tests"):
        continue
    text = open(path, encoding="utf-8").read()
    # test code may reach anywhere
    text = text.split("\nmod tests {")[0]
    deps = set(re.findall(r"crate::([a-z_][a-z0-9_]*)", text)) - {name}
    modules.setdefault(name, set()).update(deps)
for deps in modules.values():
    deps.intersection_update(modules.keys())

if "-v" in sys.argv:
    for m in sorted(modules):
        print(f"{m}: {' '.join(sorted(modules[m]))}")

state, stack, cycles = {}, [], []
def visit(m):
    state[m] = 1
    stack.append(m)
    for d in sorted(modules[m]):
        if state.get(d) == 1:
            cycles.append(stack[stack.index(d):] + [d])
        elif d not in state:
            visit(d)
    stack.pop()
    state[m] = 2
for m in sorted(modules):
    if m not in state:
        visit(m)
for c in cycles:
    print("module cycle: " + " -> ".join(c), file=sys.stderr)
if not cycles:
    print(f"module graph: {len(modules)} modules, no cycle")
sys.exit(1 if cycles else 0)
