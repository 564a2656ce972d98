"""What every golden-data generator shares: tensors as JSON, and files written atomically."""
import json
import os

import torch


def tensor_json(t):
    """{"shape", "data", "dtype"}: float32 values written as exact decimal doubles."""
    t = t.detach()
    return {"shape": list(t.shape), "data": t.flatten().tolist(), "dtype": str(t.dtype).replace("torch.", "")}


def write_json(path, obj):
    """Writes {"torch": version, **obj} to a temporary file, then renames it into place."""
    with open(path + ".tmp", "w") as f:
        json.dump({"torch": torch.__version__, **obj}, f)
    os.replace(path + ".tmp", path)
