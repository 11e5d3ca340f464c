#!/usr/bin/python3
"""PyTorch side of `npm run bench -- train-step`: ResNet-50 train steps timed in-process.

    PYTHON bench/train_step_torch.py FORMAT STEPS WARMUP THREADS [PRECISION [DEVICE]]
    (FORMAT: nchw | channels_last; PRECISION: fp32 (default) | bf16 | fp16: the step under torch.autocast(device,
    dtype), fp16 with a GradScaler as PyTorch's CUDA AMP recipe; DEVICE: cpu (default) | cuda)

torchvision's ResNet-50 (Debian's 1.13 side: python3-torchvision; the 2.x side: torchvision 0.29.1 in the venv of
scripts/setup-cuda.sh). GOODSREC_BENCH_BATCH: batch size (default 32).

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
from torch import nn  # noqa: E402

try:
    import torchvision  # noqa: E402
except ImportError:
    sys.exit("train_step_torch.py: torchvision is required (the reference ResNet-50). Debian: apt-get install "
             "python3-torchvision; PyTorch 2.x: the venv of scripts/setup-cuda.sh (torch 2.14.1 + torchvision 0.29.1) "
             "as GOODSREC_BENCH_PYTHON")


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    fmt, steps, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    precision = sys.argv[5] if len(sys.argv) > 5 else "fp32"
    device = torch.device(sys.argv[6] if len(sys.argv) > 6 else "cpu")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = torchvision.models.resnet50(num_classes=1000).train().to(device)
    size = int(os.environ.get("GOODSREC_BENCH_SIZE", "160"))
    batch = int(os.environ.get("GOODSREC_BENCH_BATCH", "32"))
    x = torch.randn(batch, 3, size, size).to(device)
    y = torch.randint(0, 1000, (batch,)).to(device)
    if fmt == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    scaler = None
    if precision == "fp16":  # torch.amp.GradScaler is 2.3+; 1.13 has the CUDA one only
        scaler = torch.amp.GradScaler(device.type) if hasattr(torch.amp, "GradScaler") else torch.cuda.amp.GradScaler()
    times, cpu, faults = [], [], []
    for i in range(warmup + steps):
        t = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = crit(model(x), y)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        sync(device)
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
