"""Python's torch.jit.load runs the int8 TorchScript models tq's graph mode wrote (ctest, after
GraphInterop.WritesInt8Models): same output as in C++, bit for bit."""
import sys

import torch


def main(out_dir):
    for name, engine in [("seed_int8", "qnnpack"), ("resnet18_int8", "onednn")]:
        torch.backends.quantized.engine = engine
        model = torch.jit.load(f"{out_dir}/{name}.pt")
        x = torch.load(f"{out_dir}/{name}_input.pt")
        expected = torch.load(f"{out_dir}/{name}_output.pt")
        with torch.no_grad():
            out = model(x)
        if out.shape != expected.shape or not torch.equal(out, expected):
            print(f"{name}: PyTorch's output differs from tq's", file=sys.stderr)
            return 1
        print(f"{name}: PyTorch runs tq's int8 model, output equal")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
