#!/usr/bin/python3
"""A goodsrec ResNet-50 run's last checkpoint evaluated by the torchvision twin's own evaluation pipeline
(bench/train_torchvision.py: PIL decode, letterbox, Resize(size/0.875), CenterCrop, the recipe's mean/std),
then again after recomputing its BatchNorm statistics on 40 train batches ("precise BN"). Separates a
difference in evaluation from one in the trained weights (docs/speed.md, accuracy at equal budget).

  /usr/bin/python3 scripts/experiments/cross_eval_torchvision.py RUN SIZE [DATASET]
"""
import csv
import json
import os
import struct
import sys

import torch
import torchvision
import torchvision.transforms as T

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
run, size = sys.argv[1], int(sys.argv[2])
data = sys.argv[3] if len(sys.argv) > 3 else os.path.join(HERE, "..", "..", "..", "shared", "datasets", "grocery-store")
norm = json.load(open(os.path.join(run, "preprocess.json")))
os.environ["GOODSREC_NORM"] = json.dumps({"mean": norm["mean"], "std": norm["std"]})
import train_torchvision as tt  # noqa: E402  (reads GOODSREC_NORM at import)


def load_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header, base, out = json.loads(b[8:8 + n]), 8 + n, {}
    kinds = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = torch.frombuffer(bytearray(b[base + s:base + e]), dtype=kinds[v["dtype"]]).reshape(v["shape"])
    return out


names = json.load(open(os.path.join(run, "classes.json")))
ids = {r["Class Name (str)"]: int(r["Class ID (int)"]) for r in csv.DictReader(open(os.path.join(data, "dataset", "classes.csv")))}
to_id = torch.tensor([ids[n] for n in names])  # goodsrec class index -> the dataset's class id
latest = json.load(open(os.path.join(run, "latest.json")))["checkpoint"]
model = torchvision.models.resnet50(num_classes=len(names))
model.load_state_dict(load_safetensors(os.path.join(run, "checkpoints", latest, "model.safetensors")))
tf = T.Compose([T.Resize(round(size / 0.875)), T.CenterCrop(size), T.ToTensor(), T.Normalize(tt.MEAN, tt.STD)])
test = torch.utils.data.DataLoader(tt.Manifest(data, "test", tf), batch_size=64, num_workers=2)


def top1():
    model.eval()
    c = n = 0
    with torch.no_grad():
        for x, y in test:
            c += (to_id[model(x).argmax(1)] == y).sum().item()
            n += len(y)
    return c / n


print(json.dumps({"run": run, "checkpoint": latest, "top1": top1()}))
for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
model.train()
train = torch.utils.data.DataLoader(tt.Manifest(data, "train", tf), batch_size=64, shuffle=True,
                                    generator=torch.Generator().manual_seed(0), num_workers=2)
with torch.no_grad():
    for i, (x, _) in enumerate(train):
        model(x)
        if i >= 40:
            break
print(json.dumps({"run": run, "checkpoint": latest, "top1PreciseBn": top1()}))
