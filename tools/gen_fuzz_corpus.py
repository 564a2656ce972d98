#!/usr/bin/env python3
"""Seed corpus of the fuzz targets (fuzz/), written by PyTorch and NumPy-format bytes:

  /usr/bin/python3 tools/gen_fuzz_corpus.py --out fuzz/corpus

fuzz_state_dict   torch.save of state_dicts: float (OrderedDict + _metadata), converted int8
                  (packed params, quantized weights), observer, fake quantizer, a plain dict; and
                  each one's pickle alone (the target zips it with tensor records)
fuzz_torchscript  small scripted and traced modules (torch.jit.save)
fuzz_cli_data     first byte picks the format (0 .pt, 1 .npy, 2 IDX, 3 gzipped IDX), then the file"""
import argparse
import gzip
import io
import os
import struct
import zipfile
import sys
from collections import OrderedDict

import torch
from torch.ao.quantization.fake_quantize import default_per_channel_weight_fake_quant
from torch.ao.quantization.observer import MinMaxObserver

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interop_net import Net, quantized  # noqa: E402


def saved(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def write(path, data):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = ap.parse_args().out
    torch.manual_seed(7)
    for d in ("fuzz_state_dict", "fuzz_torchscript", "fuzz_cli_data"):
        os.makedirs(f"{out}/{d}", exist_ok=True)

    net = Net().eval()
    obs = MinMaxObserver()
    obs(torch.randn(10))
    fq = default_per_channel_weight_fake_quant()
    fq(torch.randn(3, 2))
    sd = f"{out}/fuzz_state_dict"
    write(f"{sd}/float_state.pt", saved(net.state_dict()))
    write(f"{sd}/int8_state.pt", saved(quantized(net, [torch.randn(2, 1, 8, 8)]).state_dict()))
    write(f"{sd}/observer.pt", saved(obs.state_dict()))
    write(f"{sd}/fake_quant.pt", saved(fq.state_dict()))
    write(f"{sd}/plain_dict.pt", saved({"weight": torch.randn(3, 4), "bias": torch.zeros(3)}))
    for name in ("float_state", "int8_state", "observer", "fake_quant", "plain_dict"):
        with zipfile.ZipFile(f"{sd}/{name}.pt") as z:
            pkl = next(n for n in z.namelist() if n.endswith("/data.pkl"))
            write(f"{sd}/{name}.pkl", z.read(pkl))

    class Small(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return torch.relu(self.fc(x))

    ts = f"{out}/fuzz_torchscript"
    for name, module in (("scripted.pt", torch.jit.script(Small())),
                         ("traced.pt", torch.jit.trace(Small(), torch.randn(1, 4)))):
        buf = io.BytesIO()
        torch.jit.save(module, buf)
        write(f"{ts}/{name}", buf.getvalue())

    data = f"{out}/fuzz_cli_data"
    x = torch.rand(2, 1, 3, 3)
    write(f"{data}/tensor.pt", b"\x00" + saved(x))
    write(f"{data}/list.pt", b"\x00" + saved([x, x]))
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 3, 3), }"
    header += " " * (63 - len(header)) + "\n"
    write(f"{data}/array.npy", b"\x01" + b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
          + x.numpy().astype("<f4").tobytes())
    idx = struct.pack(">BBBB", 0, 0, 8, 3) + struct.pack(">III", 2, 3, 3) + bytes(range(18))
    write(f"{data}/images.idx", b"\x02" + idx)
    write(f"{data}/images.idx.gz", b"\x03" + gzip.compress(idx, mtime=0))


if __name__ == "__main__":
    main()
