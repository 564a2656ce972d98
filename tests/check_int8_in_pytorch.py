"""Python's torch.jit.load runs the int8 TorchScript models tq's graph mode wrote (ctest, after
GraphInterop.WritesInt8Models): same output as in C++, bit for bit. The onednn form (written on
LibTorch 2.x builds) must also make no quantized tensor where PyTorch loads and runs it."""
import os
import sys
import warnings

import torch


def main(out_dir):
    models = [("seed_int8", "qnnpack"), ("resnet18_int8", "onednn")]
    if os.path.exists(f"{out_dir}/resnet18_int8_onednn.pt"):
        models.append(("resnet18_int8_onednn", "onednn"))
    for name, engine in models:
        torch.backends.quantized.engine = engine
        x = torch.load(f"{out_dir}/{name}_input.pt")
        expected = torch.load(f"{out_dir}/{name}_output.pt")
        torch.set_warn_always(True)
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            model = torch.jit.load(f"{out_dir}/{name}.pt")
            out = model(x)
        torch.set_warn_always(False)
        if out.shape != expected.shape or not torch.equal(out, expected):
            print(f"{name}: PyTorch's output differs from tq's", file=sys.stderr)
            return 1
        made = [w for w in caught if "quantized tensor creation" in str(w.message)]
        if name.endswith("_onednn") and made:
            print(f"{name}: PyTorch made a quantized tensor running it: {made[0].message}", file=sys.stderr)
            return 1
        print(f"{name}: PyTorch runs tq's int8 model, output equal")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
