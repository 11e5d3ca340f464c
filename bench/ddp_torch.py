#!/usr/bin/python3
"""PyTorch side of `npm run bench -- ddp`: one DDP rank (Gloo, env:// from torchrun's variables).

    RANK=.. WORLD_SIZE=2 MASTER_ADDR=.. MASTER_PORT=.. /usr/bin/python3 bench/ddp_torch.py STEPS WARMUP BATCH

Rank 0 prints one JSON line: {"times_ms": [...], "bytes": gradient bytes all-reduced per step, "loss": ...}.
"""
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torchvision  # noqa: E402


def main():
    steps, warmup, batch = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(int(os.environ.get("GOODSREC_THREADS", "1")))
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(rank)
    model = torchvision.models.resnet18(num_classes=100).train()
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    x = torch.randn(batch, 3, 112, 112)
    y = torch.randint(0, 100, (batch,))
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    times = []
    loss = 0.0
    for i in range(warmup + steps):
        t = time.perf_counter()
        out = torch.nn.functional.cross_entropy(ddp(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        out.backward()
        opt.step()
        loss = out.item()
        if i >= warmup:
            times.append((time.perf_counter() - t) * 1000)
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    if rank == 0:
        print(json.dumps({"times_ms": times, "bytes": nbytes, "loss": loss}))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
