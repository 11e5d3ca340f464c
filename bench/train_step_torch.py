#!/usr/bin/python3
"""PyTorch side of `npm run bench -- train-step`: ResNet-50 train steps timed in-process.

    PYTHON bench/train_step_torch.py FORMAT STEPS WARMUP THREADS [PRECISION]
    (FORMAT: nchw | channels_last; PRECISION: fp32 (default) | bf16, the step under torch.autocast('cpu', bfloat16))

torchvision's ResNet-50 when torchvision is installed; otherwise (e.g. a torch 2.13 venv, for which no torchvision
wheel is at hand) the same architecture defined below (the layout of torchvision's resnet50, v1.5).

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
    torchvision = None


class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


def resnet50(num_classes):
    if torchvision is not None:
        return torchvision.models.resnet50(num_classes=num_classes)
    layers, cin = [], 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * 4
    return nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                         nn.MaxPool2d(3, 2, 1), *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def main():
    fmt, steps, warmup, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    bf16 = len(sys.argv) > 5 and sys.argv[5] == "bf16"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = resnet50(1000).train()
    size = int(os.environ.get("GOODSREC_BENCH_SIZE", "160"))
    x = torch.randn(32, 3, size, size)
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
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
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
