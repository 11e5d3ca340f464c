#!/usr/bin/python3
"""PyTorch side of the ResNet-50 step of scripts/device-check.sh (bench/device-check.ts resnet).

    PYTHON bench/resnet_parity_torch.py DIR DEVICE

Reads DIR/in.{bin,json} (goodsrec's float32 state dict under torchvision's names, and the batch x) and
DIR/labels.json; runs torchvision's resnet50(num_classes=10) in train mode on DEVICE: forward, cross entropy,
backward, then the forward under autocast (fp16 on CUDA, bf16 on the CPU). Writes DIR/out.{bin,json} (logits and the gradients goodsrec compares) and DIR/out-loss.json.
Nothing but torch, torchvision and the standard library (the GPU machine has no safetensors).
"""
import json
import os
import sys

import torch
import torchvision

GRADS = ["conv1.weight", "bn1.weight", "layer2.1.conv2.weight", "layer4.2.conv3.weight", "fc.weight", "fc.bias"]


def main():
    d, device = sys.argv[1], torch.device(sys.argv[2])
    entries = json.load(open(os.path.join(d, "in.json")))
    blob = open(os.path.join(d, "in.bin"), "rb").read()
    tensors = {}
    for e in entries:
        n = 1
        for s in e["shape"]:
            n *= s
        t = torch.frombuffer(bytearray(blob[e["offset"]:e["offset"] + n * 4]), dtype=torch.float32)
        tensors[e["name"]] = t.reshape(e["shape"]).clone()
    x = tensors.pop("x")
    y = torch.tensor(json.load(open(os.path.join(d, "labels.json"))), dtype=torch.long)
    model = torchvision.models.resnet50(num_classes=10)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    # goodsrec's state dict has every float tensor of torchvision's; only the integer BN counters may be absent.
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        sys.exit(f"resnet_parity_torch.py: state dict mismatch: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model = model.train().to(device)
    logits = model(x.to(device))
    loss = torch.nn.functional.cross_entropy(logits, y.to(device))
    loss.backward()
    params = dict(model.named_parameters())
    # The same forward under autocast (fp16 on CUDA, bf16 on the CPU), as goodsrec's AMP.
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype):
        amp_loss = torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device)).item()
    out = [("logits", logits.detach())] + [(f"grad.{n}", params[n].grad) for n in GRADS]
    parts, manifest, offset = [], [], 0
    for name, t in out:
        b = t.detach().float().cpu().contiguous().numpy().tobytes()
        manifest.append({"name": name, "dtype": "float32", "shape": list(t.shape), "offset": offset})
        parts.append(b)
        offset += len(b)
    open(os.path.join(d, "out.bin"), "wb").write(b"".join(parts))
    json.dump(manifest, open(os.path.join(d, "out.json"), "w"))
    json.dump({"loss": loss.item(), "ampLoss": amp_loss, "ampDtype": str(amp_dtype).replace("torch.", ""), "torch": torch.__version__, "torchvision": torchvision.__version__},
              open(os.path.join(d, "out-loss.json"), "w"))


if __name__ == "__main__":
    main()
