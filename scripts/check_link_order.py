#!/usr/bin/env python3
"""Every layer library calls only into its own layer and the layers below it.

Linking the layer archives in order (each links the one below it) catches a call from a lower
layer into a higher one only when the higher layer's object was not pulled in already; this reads
the archives' symbol tables and catches every such call.

  python3 scripts/check_link_order.py core=libtq_core.a kernels=libtq_kernels.a ...

Layers are given lowest first. Prints each reference into a higher layer (or into no layer), and
exits 1 if there is one.
"""
import subprocess
import sys

PREFIXES = ("vtable for ", "typeinfo for ", "typeinfo name for ", "VTT for ", "guard variable for ")


def tq_symbol(name):
    for p in PREFIXES:
        if name.startswith(p):
            name = name[len(p):]
    return name.startswith("tq::")


def symbols(archive):
    """(defined, undefined) tq symbols of an archive, the undefined ones with the member using them."""
    out = subprocess.run(["nm", "-C", archive], capture_output=True, text=True, check=True).stdout
    defined, undefined, member = set(), [], ""
    for line in out.splitlines():
        if line.endswith(":") and not line.startswith(" "):
            member = line[:-1]
            continue
        parts = line.split(None, 2) if not line.startswith(" ") else [""] + line.split(None, 1)
        if len(parts) < 3:
            continue
        kind, name = parts[1], parts[2]
        if not tq_symbol(name):
            continue
        if kind == "U":
            undefined.append((member, name))
        elif kind not in "Nn":
            defined.add(name)
    return defined, undefined


def main():
    layers = [arg.split("=", 1) for arg in sys.argv[1:]]
    if not layers:
        sys.exit("usage: check_link_order.py LAYER=ARCHIVE ...  (lowest layer first)")
    defined_in, uses = {}, []
    for rank, (layer, archive) in enumerate(layers):
        defined, undefined = symbols(archive)
        for name in defined:
            defined_in.setdefault(name, rank)
        uses += [(rank, layer, member, name) for member, name in undefined]
    problems = []
    for rank, layer, member, name in uses:
        at = defined_in.get(name)
        if at is None:
            problems.append(f"{layer} ({member}) uses {name}, which no layer defines")
        elif at > rank:
            problems.append(f"{layer} ({member}) uses {name}, defined in the higher layer {layers[at][0]}")
    for p in sorted(set(problems)):
        print(p)
    print(f"link order: {len(uses)} references to tq symbols in {len(layers)} layer libraries, "
          f"{len(set(problems))} reach up or nowhere ({' < '.join(l for l, _ in layers)})")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
