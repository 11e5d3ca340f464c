#!/usr/bin/python3
"""Oracle for goodsrec's weight-file readers (test/io.test.ts): writes weight files with PyTorch
into OUT_DIR, plus OUT_DIR/manifest.json describing what each file holds, bit for bit.

    /usr/bin/python3 scripts/oracle/make_weights.py OUT_DIR

manifest.json: {file: {tensor_name: {"dtype", "shape", "sha256", "hex"?}}} where sha256 (and hex,
for small tensors) are of the tensor's bytes, little-endian, row-major, which is what goodsrec's
RawTensor.data must hold. Only the Debian python3-torch 1.13 oracle is needed; there is no Python
safetensors package there, so safetensors files are written here from the tensors' raw bytes
(the format is just that: length, JSON header, bytes).
"""
import collections
import hashlib
import json
import os
import pickle
import struct
import sys
import zipfile

import torch
import torchvision

GOODSREC_DTYPE = {
    torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float64: "float64",
    torch.int64: "int64", torch.int32: "int32", torch.int16: "int16", torch.int8: "int8",
    torch.uint8: "uint8", torch.bool: "bool",
}
SAFETENSORS_DTYPE = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
    torch.uint8: "U8", torch.bool: "BOOL",
}


def raw_bytes(t):
    """Row-major little-endian bytes of a tensor (this machine is little-endian)."""
    return t.detach().contiguous().flatten().view(torch.uint8).numpy().tobytes()


def describe(sd):
    out = {}
    for k, t in sd.items():
        b = raw_bytes(t)
        d = {"dtype": GOODSREC_DTYPE[t.dtype], "shape": list(t.shape), "sha256": hashlib.sha256(b).hexdigest()}
        if len(b) <= 256:
            d["hex"] = b.hex()
        out[k] = d
    return out


def write_safetensors(path, sd, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for k, t in sd.items():
        b = raw_bytes(t)
        header[k] = {"dtype": SAFETENSORS_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def all_dtypes(g):
    """One tensor per dtype, with the awkward values (NaN, inf, -0, subnormals, extremes)."""
    f = torch.randn(3, 5, generator=g)
    special = torch.tensor([float("nan"), float("inf"), float("-inf"), -0.0, 1e-40, 65504.0, 1e-7, 3.0])
    sd = collections.OrderedDict()
    sd["f32"] = torch.cat([f.flatten(), special]).reshape(23)
    sd["f16"] = torch.cat([f.flatten(), special]).to(torch.float16).reshape(23)
    sd["bf16"] = torch.cat([f.flatten(), special]).to(torch.bfloat16).reshape(23)
    sd["f64"] = torch.randn(2, 3, 4, generator=g, dtype=torch.float64)
    sd["i64"] = torch.tensor([0, 1, -1, 2**62, -(2**63), 2**63 - 1, 123456789012345], dtype=torch.int64)
    sd["i32"] = torch.randint(-(2**31), 2**31 - 1, (4, 4), generator=g, dtype=torch.int32)
    sd["i16"] = torch.randint(-(2**15), 2**15 - 1, (9,), generator=g, dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, -1, 0, 1, 127], dtype=torch.int8)
    sd["u8"] = torch.randint(0, 256, (2, 2, 2), generator=g, dtype=torch.uint8)
    sd["bool"] = torch.tensor([[True, False, True], [False, False, True]])
    sd["scalar"] = torch.tensor(2.5)
    sd["empty"] = torch.zeros(0, 3)
    return sd


def views(g):
    """Tensors that are strided views: transposed, sliced with offsets, expanded, channels_last, shared."""
    base = torch.arange(60, dtype=torch.float32).reshape(3, 4, 5)
    sd = collections.OrderedDict()
    sd["base"] = base
    sd["transposed"] = base.transpose(0, 2)
    sd["sliced"] = base[1:, ::2, 1:4]
    sd["row"] = base[2, 1]
    sd["element"] = base[1, 2, 3]
    sd["expanded"] = torch.tensor([1.0, 2.0, 3.0]).expand(4, 3)
    sd["channels_last"] = torch.randn(2, 3, 4, 5, generator=g).to(memory_format=torch.channels_last)
    big = torch.randn(1000, generator=g, dtype=torch.float64)
    sd["tail_of_big"] = big[990:]  # a small view at the end of a large storage
    sd["i16_permuted"] = torch.arange(24, dtype=torch.int16).reshape(2, 3, 4).permute(2, 0, 1)
    sd["bf16_step"] = torch.randn(10, generator=g).to(torch.bfloat16)[1::3]
    sd["bool_t"] = (torch.randn(3, 4, generator=g) > 0).t()
    return sd


class Evil:
    """A pickle payload that would run a command when loaded by pickle (never by goodsrec)."""

    def __init__(self, fn, arg):
        self.fn, self.arg = fn, arg

    def __reduce__(self):
        return (self.fn, (self.arg,))


def write_zip_checkpoint(path, records):
    """A torch.save-style zip from raw records (for corrupted and hand-made checkpoints)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in records.items():
            z.writestr(name, data)


def zip_records(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i.filename) for i in z.infolist()}


def main(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(1234)
    torch.manual_seed(0)
    manifest = {}

    def save(name, obj, expected, **kw):
        torch.save(obj, os.path.join(out, name), **kw)
        manifest[name] = describe(expected)

    dt = all_dtypes(g)
    write_safetensors(os.path.join(out, "dtypes.safetensors"), dt, {"format": "pt", "source": "oracle"})
    manifest["dtypes.safetensors"] = describe(dt)
    save("dtypes.pth", dt, dt)
    save("dtypes_p4.pth", dt, dt, pickle_protocol=4)
    save("dtypes_p5.pth", dt, dt, pickle_protocol=5)

    v = views(g)
    save("views.pth", v, v)

    # Parameters, nested containers, plain Python values and torch.Size beside the tensors.
    lin = torch.nn.Linear(3, 2)
    nested = {
        "w": lin.weight,  # nn.Parameter: _rebuild_parameter
        "sub": {"a": torch.ones(2, dtype=torch.int32), "deeper": collections.OrderedDict(b=torch.zeros(1))},
        "lst": [torch.full((2,), 7, dtype=torch.int8), 3, "x"],
        "tup": (torch.tensor([1.5]), None),
        "shape": torch.Size([2, 3]),
        "meta": {"epoch": 3, "lr": 0.1, "name": "résumé", "flag": True, "none": None, "big": 2**70, "neg": -5},
    }
    flat = collections.OrderedDict(
        [("w", lin.weight), ("sub.a", nested["sub"]["a"]), ("sub.deeper.b", nested["sub"]["deeper"]["b"]),
         ("lst.0", nested["lst"][0]), ("tup.0", nested["tup"][0])])
    save("nested.pth", nested, flat)

    # torchvision ResNet-50, plain and as training scripts wrap it.
    model = torchvision.models.resnet50()
    sd = model.state_dict()
    save("resnet50.pth", sd, sd)
    write_safetensors(os.path.join(out, "resnet50.safetensors"), sd)
    manifest["resnet50.safetensors"] = describe(sd)

    # A small torchvision model (about 6 MB) keeps the wrapped variants cheap to write and read.
    small = torchvision.models.mobilenet_v3_small(num_classes=7)
    ssd = small.state_dict()
    dp = torch.nn.DataParallel(small).state_dict()  # keys gain "module."
    save("wrapped_state_dict.pth", {"epoch": 5, "state_dict": dp, "optimizer": {"lr": 0.1}}, dp)
    save("wrapped_model.pth", {"model": ssd, "best_acc": 0.5}, ssd)
    save("wrapped_model_state_dict.pth", {"model_state_dict": ssd, "epoch": 2}, ssd)
    save("dataparallel.pth", dp, dp)
    write_safetensors(os.path.join(out, "dataparallel.safetensors"), dp)
    manifest["dataparallel.safetensors"] = describe(dp)
    manifest["small_keys"] = {k: {"dtype": GOODSREC_DTYPE[t.dtype], "shape": list(t.shape)} for k, t in ssd.items()}

    # Legacy (pre-1.6) format.
    torch.save(dt, os.path.join(out, "legacy.pth"), _use_new_zipfile_serialization=False)

    # Malicious pickles: each would create a marker file if unpickled by Python.
    marker = os.path.join(out, "PWNED")
    torch.save({"w": torch.ones(1), "evil": Evil(os.system, "touch " + marker)}, os.path.join(out, "evil_system.pth"))
    records = zip_records(os.path.join(out, "dtypes.pth"))
    prefix = next(n for n in records if n.endswith("data.pkl"))[: -len("data.pkl")]
    records[prefix + "data.pkl"] = pickle.dumps(
        {"w": Evil(eval, "open(%r, 'w').close()" % marker)}, protocol=4)  # STACK_GLOBAL builtins eval
    write_zip_checkpoint(os.path.join(out, "evil_eval.pth"), records)
    records = zip_records(os.path.join(out, "dtypes.pth"))
    records[prefix + "data.pkl"] = pickle.dumps(Evil(os.system, "touch " + marker), protocol=2)
    write_zip_checkpoint(os.path.join(out, "evil_toplevel.pth"), records)

    # Damaged checkpoints.
    records = zip_records(os.path.join(out, "dtypes.pth"))
    missing = dict(records)
    del missing[prefix + "data/0"]
    write_zip_checkpoint(os.path.join(out, "missing_entry.pth"), missing)
    cut = dict(records)
    cut[prefix + "data.pkl"] = records[prefix + "data.pkl"][: len(records[prefix + "data.pkl"]) // 2]
    write_zip_checkpoint(os.path.join(out, "truncated_pickle.pth"), cut)

    # Big-endian storages, as PyTorch 2.x on a big-endian host writes them (with a byteorder record).
    be = collections.OrderedDict(a=torch.randn(2, 3, generator=g), b=torch.arange(5, dtype=torch.int64),
                                 c=torch.randn(4, generator=g).to(torch.float16))
    be["a_t"] = be["a"].t()
    torch.save(be, os.path.join(out, "be_src.pth"))
    records = zip_records(os.path.join(out, "be_src.pth"))
    prefix = next(n for n in records if n.endswith("data.pkl"))[: -len("data.pkl")]
    for name in list(records):
        if "/data/" in name:
            key = name.rsplit("/", 1)[1]
            t = {"0": be["a"], "1": be["b"], "2": be["c"]}[key]
            isz = t.element_size()
            b = records[name]
            records[name] = b"".join(b[i:i + isz][::-1] for i in range(0, len(b), isz))
    records[prefix + "byteorder"] = b"big"
    write_zip_checkpoint(os.path.join(out, "big_endian.pth"), records)
    os.remove(os.path.join(out, "be_src.pth"))
    manifest["big_endian.pth"] = describe(be)

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
