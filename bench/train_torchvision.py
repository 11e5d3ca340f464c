#!/usr/bin/python3
"""The same recipe as `goodsrec train`, written with PyTorch + torchvision, for
the side-by-side result in the train/eval issue. Runs with Debian's
python3-torch/torchvision (1.13 / 0.14): /usr/bin/python3 bench/train_torchvision.py

Recipe (../shared/reference/recipe.md, as goodsrec's defaults): structure-
retention resize (pad to a black square), RandomResizedCrop(size, 0.08-1,
3/4-4/3), horizontal flip, ColorJitter(0.4, 0.4, 0.4), normalise with the
recipe's mean/std, Cutout; SGD momentum 0.9, lr 0.1 x batch/128, weight decay
1e-4 not on biases or norm weights, label smoothing 0.1, linear warmup then
cosine to 1e-6 per iteration. Eval: pad to square, resize size/0.875, center
crop size; every test image counted once.
"""
import argparse
import json
import math
import os
import time

import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from PIL import Image

# The recipe's mean/std from goodsrec's run config (their one source), passed by bench/epoch.ts.
NORM = json.loads(os.environ.get("GOODSREC_NORM") or "null") or {}
MEAN, STD = NORM.get("mean"), NORM.get("std")


def letterbox(img):
    w, h = img.size
    s = max(w, h)
    out = Image.new("RGB", (s, s), (0, 0, 0))
    out.paste(img, ((s - w) // 2, (s - h) // 2))
    return out


class Cutout:
    """DeVries & Taylor: one square of side `length` zeroed at a random centre (clipped)."""

    def __init__(self, length):
        self.length = length

    def __call__(self, x):
        if self.length <= 0:
            return x
        _, h, w = x.shape
        cy, cx = torch.randint(h, ()).item(), torch.randint(w, ()).item()
        y0, y1 = max(cy - self.length // 2, 0), min(cy + self.length // 2, h)
        x0, x1 = max(cx - self.length // 2, 0), min(cx + self.length // 2, w)
        x[:, y0:y1, x0:x1] = 0
        return x


class Manifest(torch.utils.data.Dataset):
    def __init__(self, root, split, transform):
        self.root = root
        self.transform = transform
        with open(os.path.join(root, "dataset", f"{split}.txt")) as f:
            rows = [line.strip().split(", ") for line in f if line.strip()]
        self.items = [(os.path.join(root, "dataset", r[0]), int(r[1])) for r in rows]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        with Image.open(path) as im:
            img = im.convert("RGB")
        return self.transform(letterbox(img)), label


class StreamBatches:
    """goodsrec's training batches in goodsrec's order, epoch by epoch (one pass of the file per epoch)."""

    def __init__(self, folder, ds, batch_size, size):
        import numpy as np
        with open(os.path.join(folder, "stream.json")) as f:
            meta = json.load(f)
        if meta["batch"] != [batch_size, 3, size, size]:
            raise SystemExit(f"--stream {folder}: batches are {meta['batch']}, not {[batch_size, 3, size, size]}")
        label = {os.path.realpath(p): l for p, l in ds.items}
        self.labels = torch.tensor([label[os.path.realpath(os.path.join(meta["root"], p))] for p in meta["paths"]])
        self.x = np.memmap(os.path.join(folder, "x.f32"), dtype=np.float32, mode="r").reshape(-1, 3, size, size)
        self.steps, self.epochs, self.epoch, self.b = meta["stepsPerEpoch"], meta["epochs"], 0, batch_size

    def __len__(self):
        return self.steps

    def __iter__(self):
        e, self.epoch = self.epoch, self.epoch + 1
        if e >= self.epochs:
            raise SystemExit(f"--stream: the stream holds {self.epochs} epoch(s); --epochs asks for more")
        for s in range(self.steps):
            i = (e * self.steps + s) * self.b
            yield torch.from_numpy(self.x[i:i + self.b].copy()), self.labels[i:i + self.b]


def main():
    if MEAN is None or STD is None:
        raise SystemExit('GOODSREC_NORM=\'{"mean": [r, g, b], "std": [r, g, b]}\' is needed (bench/epoch.ts sets it)')
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="../shared/datasets/grocery-store")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--warmup-epochs", type=float, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--cutout", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels-last", action="store_true", help="model and batches in channels_last memory format")
    ap.add_argument("--amp", choices=["off", "bf16"], default="off", help="bf16: torch.autocast('cpu', torch.bfloat16)")
    ap.add_argument("--out", default="")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N images of each split (smoke tests)")
    ap.add_argument("--stream", default="", help="train on batches written by scripts/experiments/dump-train-stream.mjs "
                    "(goodsrec's own training data) instead of this script's loader")
    a = ap.parse_args()

    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    train_tf = T.Compose([
        T.RandomResizedCrop(a.size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
        T.RandomHorizontalFlip(),
        T.ColorJitter(0.4, 0.4, 0.4),
        T.ToTensor(),
        T.Normalize(MEAN, STD),
        Cutout(a.cutout),
    ])
    eval_tf = T.Compose([T.Resize(round(a.size / 0.875)), T.CenterCrop(a.size), T.ToTensor(), T.Normalize(MEAN, STD)])
    train_ds = Manifest(a.data, "train", train_tf)
    test_ds = Manifest(a.data, "test", eval_tf)
    num_classes = 1 + max(l for _, l in train_ds.items + test_ds.items)
    if a.limit:
        train_ds.items, test_ds.items = train_ds.items[::max(1, len(train_ds.items) // a.limit)][:a.limit], test_ds.items[:a.limit]
    train_dl = torch.utils.data.DataLoader(train_ds, batch_size=a.batch_size, shuffle=True, drop_last=True,
                                           num_workers=a.workers, persistent_workers=a.workers > 0)
    if a.stream:
        train_dl = StreamBatches(a.stream, train_ds, a.batch_size, a.size)
    test_dl = torch.utils.data.DataLoader(test_ds, batch_size=64, shuffle=False, num_workers=a.workers)

    model = torchvision.models.resnet50(num_classes=num_classes)
    fmt = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.amp == "bf16")  # noqa: E731
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    lr = a.lr * a.batch_size / 128
    opt = torch.optim.SGD([{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 1e-4}],
                          lr=lr, momentum=0.9)
    steps_per_epoch = len(train_dl)
    total = a.epochs * steps_per_epoch
    warm = a.warmup_epochs * steps_per_epoch
    min_lr = 1e-6

    def lr_at(it):  # same formula as goodsrec's CosineWarmupLR (start factor 0.001), per iteration
        if it < warm:
            return lr * (0.001 + (1 - 0.001) * it / warm)
        t = min(it - warm, total - warm)
        return min_lr + (lr - min_lr) * (1 + math.cos(math.pi * t / (total - warm))) / 2

    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    t0 = time.time()
    it = 0
    history = []
    for epoch in range(a.epochs):
        model.train()
        e0 = time.time()
        loss_sum, n = 0.0, 0
        for x, y in train_dl:
            for g in opt.param_groups:
                g["lr"] = lr_at(it)
            with autocast():
                loss = loss_fn(model(x.contiguous(memory_format=fmt)), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            loss_sum += loss.item() * len(y)
            n += len(y)
        rec = {"epoch": epoch + 1, "trainLoss": loss_sum / n, "seconds": time.time() - e0, "imagesPerSec": n / (time.time() - e0)}
        history.append(rec)
        print(json.dumps(rec), flush=True)
    train_seconds = time.time() - t0
    model.eval()
    correct = top5 = total_n = 0
    with torch.no_grad():
        for x, y in test_dl:
            with autocast():
                out = model(x.contiguous(memory_format=fmt)).float()
            correct += (out.argmax(1) == y).sum().item()
            top5 += (out.topk(5, 1).indices == y[:, None]).any(1).sum().item()
            total_n += len(y)
    result = {"framework": f"torch {torch.__version__} torchvision {torchvision.__version__}", "top1": correct / total_n,
              "top5": top5 / total_n, "testSamples": total_n, "trainSeconds": train_seconds,
              "wallSeconds": time.time() - t0, "epochs": a.epochs, "seed": a.seed,
              "channelsLast": a.channels_last, "amp": a.amp, "history": history}
    print(json.dumps(result), flush=True)
    if a.out:
        with open(a.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
