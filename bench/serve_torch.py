#!/usr/bin/python3
"""PyTorch eager baseline for `npm run bench -- serve`: torchvision resnet50 (81 classes), eval + no_grad,
the serving pre-processing (PIL decode, letterbox to round(224/0.875) with black, center crop 224,
normalize), batches of 8 images (what 8 concurrent clients give the server), for SECONDS seconds.
Prints one JSON line: {"images", "seconds", "infer_images", "infer_seconds"} (end to end, and inference
alone on pre-processed batches).

Usage: /usr/bin/python3 bench/serve_torch.py THREADS SECONDS MEAN_JSON STD_JSON IMAGE...
"""
import json
import sys
import time

import torch
import torchvision
import torchvision.transforms as T
from PIL import Image

# The recipe's mean/std from goodsrec's run config (their one source), passed by bench/serve.ts.
MEAN, STD = json.loads(sys.argv[3]), json.loads(sys.argv[4])
SIZE = 224
BATCH = 8


def letterbox(im, size):
    w, h = im.size
    s = max(w, h)
    canvas = Image.new("RGB", (s, s), (0, 0, 0))
    canvas.paste(im, ((s - w) // 2, (s - h) // 2))
    return canvas.resize((size, size), Image.BILINEAR)


def main():
    threads, seconds, paths = int(sys.argv[1]), float(sys.argv[2]), sys.argv[5:]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=81).eval()
    tail = T.Compose([T.CenterCrop(SIZE), T.ToTensor(), T.Normalize(MEAN, STD)])
    resized = round(SIZE / 0.875)

    def prep(p):
        with open(p, "rb") as f:
            im = Image.open(f).convert("RGB")
        return tail(letterbox(im, resized))

    with torch.no_grad():
        # warm-up
        model(torch.stack([prep(p) for p in paths[:BATCH]]))
        n, i, t0 = 0, 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            batch = [paths[(i + k) % len(paths)] for k in range(BATCH)]
            i += BATCH
            x = torch.stack([prep(p) for p in batch])
            model(x).softmax(1).topk(5)
            n += BATCH
        e2e = time.perf_counter() - t0
        x = torch.stack([prep(p) for p in paths[:BATCH]])
        m, t1 = 0, time.perf_counter()
        while time.perf_counter() - t1 < seconds / 2:
            model(x)
            m += BATCH
        inf = time.perf_counter() - t1
    print(json.dumps({"images": n, "seconds": e2e, "infer_images": m, "infer_seconds": inf}))


if __name__ == "__main__":
    main()
