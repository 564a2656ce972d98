#!/usr/bin/env python3
"""HistogramObserver: PyTorch (Python) against tq (C++) on the same seeded data.

  /usr/bin/python3 bench/histogram_observer_bench.py --tq build/bench/tq_histogram_bench

Both sides draw torch.randn batches from the same seed, update a HistogramObserver (bins 2048,
reduce_range) over every batch, then call calculate_qparams. Reports times, qparams and peak memory
(each side in its own process). PyTorch 1.13's HistogramObserver builds its histogram over an
integer-truncated range and drops data, so its qparams differ from PyTorch 2.x's; tq follows 2.x
(checked bit for bit against PyTorch 2.11 in tests/test_histogram_observer.cpp).
"""
import argparse
import json
import resource
import subprocess
import time

import torch
from torch.ao.quantization.observer import HistogramObserver


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tq", required=True, help="path to tq_histogram_bench")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--batches", type=int, default=32)
    ap.add_argument("--shape", type=int, nargs="+", default=[32, 64, 56, 56])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    tq = subprocess.run([args.tq, "--seed", str(args.seed), "--batches", str(args.batches), "--shape",
                         *map(str, args.shape)], check=True, capture_output=True, text=True,
                        env={"TQ_BENCH_THREADS": str(args.threads)})
    tq = json.loads(tq.stdout.strip().splitlines()[-1])

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    ob = HistogramObserver(bins=2048, reduce_range=True)
    update_s = 0.0
    for _ in range(args.batches):
        x = torch.randn(args.shape)
        t0 = time.perf_counter()
        ob(x)
        update_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    scale, zp = ob.calculate_qparams()
    qparams_s = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    py = {"torch": torch.__version__, "update_s": update_s, "calculate_qparams_s": qparams_s,
          "scale": scale.item(), "zero_point": int(zp.item()), "min_val": ob.min_val.item(),
          "max_val": ob.max_val.item(), "peak_rss_mb": peak_mb}
    print(json.dumps({"pytorch": py, "tq": tq}, indent=1))
    print(f"update over {args.batches} batches: PyTorch {update_s:.3f} s, tq {tq['update_s']:.3f} s "
          f"({update_s / tq['update_s']:.1f}x)")
    print(f"calculate_qparams: PyTorch {qparams_s:.4f} s, tq {tq['calculate_qparams_s']:.4f} s "
          f"({qparams_s / tq['calculate_qparams_s']:.0f}x)")
    print(f"qparams: PyTorch {torch.__version__} scale={py['scale']:.9g} zp={py['zero_point']}; "
          f"tq scale={tq['scale']:.9g} zp={tq['zero_point']}"
          + ("" if (py['scale'], py['zero_point']) == (tq['scale'], tq['zero_point']) else
             "  (differ: PyTorch 1.13's integer-truncated histogram range)"))
    print(f"peak RSS: PyTorch process {peak_mb:.0f} MB, tq process {tq['peak_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
