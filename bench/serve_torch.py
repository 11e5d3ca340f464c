#!/usr/bin/python3
"""PyTorch eager baseline for `npm run bench -- serve`: torchvision resnet50 (81 classes), eval + no_grad,
the serving pre-processing (PIL decode, letterbox to round(224/0.875) with black, center crop 224,
normalize), batches of 8 images (what 8 concurrent clients give the server), for SECONDS seconds.
Prints one JSON line: {"images", "seconds", "infer_images", "infer_seconds"} (end to end, and inference
alone on pre-processed batches), "frozen_images", "frozen_seconds" (inference through
torch.jit.optimize_for_inference: BatchNorm folded, oneDNN weights pre-packed: PyTorch's fastest fp32 CPU
path), "gemm_gflops" (a 2048 x 2048 fp32 matrix product on the same threads: what these cores sustain)
and "model_gflop" (2 x the multiply-adds of one 224 px image, counted over the convolutions and the
linear layer).

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
        frozen = torch.jit.optimize_for_inference(torch.jit.trace(model, x))
        frozen(x)
        k, t2 = 0, time.perf_counter()
        while time.perf_counter() - t2 < seconds / 2:
            frozen(x)
            k += BATCH
        fro = time.perf_counter() - t2
        a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
        a @ b
        g, t3 = 0, time.perf_counter()
        while time.perf_counter() - t3 < min(seconds / 2, 4):
            a @ b
            g += 1
        gemm = 2 * 2048**3 * g / (time.perf_counter() - t3) / 1e9
        macs = [0]

        def count(mod, _inp, out):
            if isinstance(mod, torch.nn.Conv2d):
                macs[0] += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
            elif isinstance(mod, torch.nn.Linear):
                macs[0] += out.numel() * mod.in_features

        hooks = [mod.register_forward_hook(count) for mod in model.modules()]
        model(x[:1])
        for h in hooks:
            h.remove()
    print(json.dumps({"images": n, "seconds": e2e, "infer_images": m, "infer_seconds": inf,
                      "frozen_images": k, "frozen_seconds": fro, "gemm_gflops": gemm,
                      "model_gflop": 2 * macs[0] / 1e9}))


if __name__ == "__main__":
    main()
