#!/usr/bin/python3
"""PyTorch side of `npm run bench -- models`: a torchvision model's inference and train throughput.

    /usr/bin/python3 bench/models_torch.py NAME BATCH SIZE STEPS WARMUP THREADS SLOW_MS

Prints one JSON line {"infer_ms": [...], "train_ms": [...]}: per-batch times of eval-mode forward
under no_grad, and of a train step (zero_grad, forward, cross entropy, backward, SGD momentum 0.9),
with 1000 classes. When a warm-up step takes longer than SLOW_MS, one timed step is taken.
"""
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torchvision  # noqa: E402


def timed(fn, steps, warmup, slow_ms):
    times = []
    for i in range(warmup + steps):
        t = time.perf_counter()
        fn()
        ms = (time.perf_counter() - t) * 1e3
        if i >= warmup:
            times.append(ms)
        elif ms > slow_ms:
            steps = 1
        if len(times) >= steps:
            break
    return times


def main():
    name, batch, size, steps, warmup, threads, slow_ms = sys.argv[1], *map(int, sys.argv[2:7]), float(sys.argv[7])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(num_classes=1000)
    x = torch.randn(batch, 3, size, size)
    y = torch.randint(0, 1000, (batch,))
    model.eval()

    def infer():
        with torch.no_grad():
            model(x)

    infer_ms = timed(infer, steps, warmup, slow_ms)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def train():
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    train_ms = timed(train, steps, warmup, slow_ms)
    print(json.dumps({"infer_ms": infer_ms, "train_ms": train_ms}))


if __name__ == "__main__":
    main()
