#!/usr/bin/python3
"""PyTorch oracle for test/tensor-ops.test.ts: one run computes every case.

    /usr/bin/python3 test/oracle/ops_oracle.py DIR

DIR/inputs.json + DIR/inputs.bin (written by the test) hold, per case, the input tensors
(raw little-endian bytes, row-major), how each is laid out (transposed, strided slice,
channels_last), a Python expression over `x` (the list of inputs), and the cotangents
goodsrec used for its backward pass. This script evaluates the expression with the same
inputs, runs backward with the same cotangents, and writes DIR/outputs.json +
DIR/outputs.bin: forward outputs and input gradients (floats as float64, integers as
int64, bools as uint8), dtypes and channels_last flags. A case that raises records its
error message instead.
"""
import json
import os
import sys
import traceback

import torch
import torch.nn.functional as F

DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
    "uint8": torch.uint8, "bool": torch.bool,
}
NAMES = {v: k for k, v in DTYPES.items()}


def read_tensor(buf, spec):
    dtype = DTYPES[spec["dtype"]]
    n = 1
    for d in spec["shape"]:
        n *= d
    t = torch.frombuffer(buf, dtype=dtype, count=n, offset=spec["offset"]) if n else torch.empty(0, dtype=dtype)
    return t.clone().reshape(spec["shape"])


def make_input(buf, spec):
    """The leaf the gradient is taken for, and the (possibly non-contiguous) view the op sees."""
    base = read_tensor(buf, spec)
    layout = spec.get("layout")
    if layout == "cl":
        base = base.contiguous(memory_format=torch.channels_last)
    if spec.get("grad"):
        base.requires_grad_(True)
    if layout == "T":
        view = base.transpose(-1, -2)
    elif layout == "slice":
        view = base[..., ::2]
    else:
        view = base
    return base, view


class Writer:
    def __init__(self):
        self.buf = bytearray()

    def add(self, t):
        t = t.detach()
        if t.is_floating_point():
            kind, data = "float64", t.double()
        elif t.dtype == torch.bool:
            kind, data = "bool", t.to(torch.uint8)
        else:
            kind, data = "int64", t.long()
        raw = data.contiguous().numpy().tobytes()
        while len(self.buf) % 8:
            self.buf.append(0)
        off = len(self.buf)
        self.buf += raw
        return {
            "offset": off, "kind": kind, "shape": list(t.shape), "dtype": NAMES.get(t.dtype, str(t.dtype)),
            "channelsLast": t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous(),
        }


def as_list(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [o for o in out]


def run_case(buf, case, w):
    leaves, views = zip(*[make_input(buf, s) for s in case["inputs"]]) if case["inputs"] else ((), ())
    ns = {"torch": torch, "F": F, "x": list(views)}
    if case.get("autocast"):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs = as_list(eval(case["py"], ns))
    else:
        outs = as_list(eval(case["py"], ns))
    written = [w.add(o) for o in outs]
    cots = case.get("cots", [])
    if cots:
        loss = None
        for c in cots:
            o = outs[c["output"]]
            if not o.requires_grad:
                raise RuntimeError(f"output {c['output']} does not require grad in PyTorch")
            term = (o * read_tensor(buf, c)).sum()
            loss = term if loss is None else loss + term
        loss.backward()
    grads = [w.add(l.grad) if l.grad is not None else None for l in leaves]
    return {"outputs": written, "grads": grads}


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "inputs.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(d, "inputs.bin"), "rb") as f:
        buf = bytearray(f.read())
    torch.set_num_threads(manifest["threads"])
    w = Writer()
    results = {}
    for case in manifest["cases"]:
        try:
            results[case["name"]] = run_case(buf, case, w)
        except Exception as e:  # reported per case by the test
            results[case["name"]] = {"error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc(limit=3)}
    with open(os.path.join(d, "outputs.bin"), "wb") as f:
        f.write(w.buf)
    with open(os.path.join(d, "outputs.json"), "w") as f:
        json.dump({"torch": torch.__version__, "results": results}, f)


if __name__ == "__main__":
    main()
