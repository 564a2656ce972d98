"""A model quantized by the tq built on one LibTorch runs with the tq built on the other (ctest).
usage: check_cross_version.py TQ PEER_TQ SEED_MODEL WORK_DIR
Both tools quantize the seed model (onednn and qnnpack); each compares and benchmarks the
other's int8 file. Where a LibTorch cannot read the other's file, the tool must say so in one line
naming both versions ("written by tq on LibTorch X ... built on LibTorch Y"); anything else fails."""
import os
import re
import shutil
import subprocess
import sys

import torch

FAILURES = []


def run(tq, args):
    p = subprocess.run([tq] + args, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def main():
    tq, peer, model, work = sys.argv[1:5]
    if not os.access(peer, os.X_OK):
        print(f"no tq built on the other LibTorch at {peer} (make build)")
        return 77
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    w = lambda name: os.path.join(work, name)  # noqa: E731
    torch.manual_seed(0)
    torch.save(torch.randn(8, 3, 16, 16), w("calib.pt"))
    tools = {"this": tq, "peer": peer}
    for engine in ("onednn", "qnnpack"):
        for writer, reader in (("this", "peer"), ("peer", "this")):
            out = w(f"{writer}_{engine}_int8.pt")
            code, text = run(tools[writer], ["quantize", model, "-o", out, "--calib", w("calib.pt"), "--engine", engine])
            if code != 0:
                FAILURES.append(f"{writer} quantize ({engine}): {text}")
                continue
            for args, needle in ((["compare", model, out, "--data", w("calib.pt"), "--engine", engine], "output SQNR"),
                                 (["bench", out, "--input-shape", "2,3,16,16", "--iters", "2", "--warmup", "1",
                                   "--engine", engine], "")):
                code, text = run(tools[reader], args)
                refused = re.search(r"written by tq on LibTorch \S+ .* built on LibTorch \S+", text)
                ok = (code == 0 and needle in text) or (code != 0 and refused and text.count("\n") <= 2)
                print(("ok  " if ok else "FAIL") + f"  {reader} tq {args[0]} on {writer}'s {engine} int8 model -> {code}"
                      + (": " + text.strip().splitlines()[-1] if code != 0 and text.strip() else ""))
                if not ok:
                    FAILURES.append(f"{reader} {args[0]} of {writer}'s file: {text}")
    for f in FAILURES:
        print("FAIL:", f[:2000])
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
