#!/usr/bin/env python3
"""Every #include of tq's own headers points to the same layer or a lower one.

An include by itself never fails to link, so the layering needs its own check. The layers, lowest
first, are the folders of include/tq and src; the int8 interface and its backends
(include/tq/kernels/int8*.h, src/kernels/int8/) form a layer of their own above numerics (they
compute qparams with it), below every module and workflow that runs int8.

  python3 scripts/check_layers.py [ROOT]

Prints each include that reaches up, and exits 1 if there is one.
"""
import os
import re
import sys

LAYERS = ["core", "kernels", "numerics", "int8", "observers", "fake_quant", "nn", "serialize", "ptq", "quant",
          "graph", "export", "distributed", "tq.h"]
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    """The layer of a path relative to include/tq or src ("kernels/int8.h", "graph/summary.cpp")."""
    parts = path.split("/")
    if parts[0] == "kernels" and (parts[1:2] == ["int8"] or parts[-1].startswith("int8")):
        return "int8"
    return parts[0]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    rank = {name: i for i, name in enumerate(LAYERS)}
    problems, checked = [], 0
    for base in ("include/tq", "src"):
        top = os.path.join(root, base)
        for folder, _, files in os.walk(top):
            for name in files:
                if not name.endswith((".h", ".cpp")):
                    continue
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, top)
                own = layer_of(rel)
                if own not in rank:
                    problems.append(f"{base}/{rel}: layer '{own}' is not in scripts/check_layers.py's list")
                    continue
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        target = m.group(1)
                        if target.startswith("tq/"):
                            to = layer_of(target[3:])
                        elif target.startswith("../"):
                            to = layer_of(os.path.normpath(os.path.join(os.path.dirname(rel), target)))
                        else:
                            continue  # a header of the same folder, or another library's
                        checked += 1
                        if to not in rank:
                            problems.append(f"{base}/{rel}:{number}: includes {target}, of no known layer")
                        elif rank[to] > rank[own]:
                            problems.append(f"{base}/{rel}:{number}: {own} includes {target} ({to}, a higher layer)")
    for p in problems:
        print(p)
    print(f"layers: {checked} includes of tq's headers checked, {len(problems)} reach up "
          f"({' < '.join(LAYERS)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
