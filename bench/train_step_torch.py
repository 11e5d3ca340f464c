#!/usr/bin/python3
"""PyTorch side of `npm run bench -- train-step`: ResNet-50 train steps timed in-process.

    /usr/bin/python3 bench/train_step_torch.py FORMAT STEPS WARMUP THREADS   (FORMAT: nchw | channels_last)

Prints one JSON line: {"times_ms": [...], "peak_rss_mb": ...}. Same step as goodsrec's:
zero_grad(set_to_none=True), forward, cross entropy with label smoothing 0.1, backward, SGD momentum 0.9.
"""
import json
import os
import resource
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torchvision  # noqa: E402


def main():
    fmt, steps, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=1000).train()
    x = torch.randn(32, 3, 160, 160)
    y = torch.randint(0, 1000, (32,))
    if fmt == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    times, cpu, faults = [], [], []
    for i in range(warmup + steps):
        t = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        opt.zero_grad(set_to_none=True)
        loss = crit(model(x), y)
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1000)
            ru1 = resource.getrusage(resource.RUSAGE_SELF)
            cpu.append((ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) * 1000)
            faults.append(ru1.ru_minflt - ru0.ru_minflt)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"times_ms": times, "cpu_ms": cpu, "faults": faults, "peak_rss_mb": ru.ru_maxrss / 1024,
                      "loss": loss.item(), "minor_faults": ru.ru_minflt}))


if __name__ == "__main__":
    main()
