#!/usr/bin/python3
"""Oracle for goodsrec's nn/optim/models parity tests: torchvision's resnet50 trained a few steps.

    /usr/bin/python3 test/oracle/nn_oracle.py OUT_DIR THREADS MODE      (MODE: sgd | adamw)

Writes into OUT_DIR:
  weights.safetensors  initial state dict (random weights, perturbed BN statistics)
  weights.pth          the same, torch.save'd as {"epoch": 3, "state_dict": {"module." + key: tensor}}
  inputs.safetensors   x [4, 3, 64, 64] float32, y [4] int64
  result.safetensors   eval.logits (eval mode, from the initial weights), then after 3 training steps:
                       every state-dict entry under "after.<key>" and the optimizer state under
                       "opt.<param name>.<state key>"
  result.json          losses of the 3 steps, lrs of each step, init_check values, scheduler sequences
Training: label smoothing 0.1; param groups: no weight decay on 1-d params and biases, 1e-4
(sgd) / 0.05 (adamw) on the rest; sgd: lr 0.1 momentum 0.9 (nesterov off); adamw: lr 1e-3 with
SequentialLR(LinearLR(0.1, 2), CosineAnnealingLR(8, 1e-5)) stepped per iteration.
"""
import collections
import json
import os
import struct
import sys

# Spin-waiting OpenMP threads make every op 5-10x slower when other processes share the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torchvision  # noqa: E402

ST_DTYPE = {torch.float32: "F32", torch.int64: "I64", torch.float64: "F64"}


def write_safetensors(path, tensors):
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        b = t.flatten().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": ST_DTYPE[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        chunks.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)


def param_groups(model, wd):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or n.endswith(".bias") else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": wd}]


def lr_sequence(opt, sched, n):
    seq = []
    for _ in range(n):
        seq.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return seq


def schedule_sequences():
    """lr per step of the schedulers the TypeScript side reproduces in closed form."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    cosine = lr_sequence(opt, torch.optim.lr_scheduler.SequentialLR(opt, [
        torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, total_iters=5),
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=15, eta_min=1e-6)], milestones=[5]), 20)
    opt = torch.optim.SGD([p], lr=0.05)
    step = lr_sequence(opt, torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5), 10)
    return {"cosine_warmup": cosine, "step": step}


def main():
    out_dir, threads, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    # float64: weights and inputs are written as float32, then everything after them runs in float64
    # (so that the test's bound holds on any CPU and thread count).
    double = len(sys.argv) > 4 and sys.argv[4] == "float64"
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(num_classes=10)
    init_check = {k: model.state_dict()[k].flatten()[:6].tolist() for k in ("conv1.weight", "layer3.2.conv2.weight", "fc.weight", "fc.bias")}
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.num_batches_tracked.fill_(5)
    sd = model.state_dict()
    write_safetensors(f"{out_dir}/weights.safetensors", sd)
    torch.save({"epoch": 3, "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())}, f"{out_dir}/weights.pth")

    x = torch.randn(4, 3, 64, 64, generator=g)
    y = torch.randint(0, 10, (4,), generator=g)
    write_safetensors(f"{out_dir}/inputs.safetensors", {"x": x, "y": y})

    if double:
        model.double()
        x = x.double()
    result = {}
    model.eval()
    with torch.no_grad():
        result["eval.logits"] = model(x)

    model.train()
    crit = torch.nn.CrossEntropyLoss(label_smoothing=0.1)
    if mode == "sgd":
        opt = torch.optim.SGD(param_groups(model, 1e-4), lr=0.1, momentum=0.9)
        sched = None
    else:
        opt = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-3)
        sched = torch.optim.lr_scheduler.SequentialLR(opt, [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=2),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=1e-5)], milestones=[2])
    losses, lrs = [], []
    for _ in range(3):
        opt.zero_grad(set_to_none=True)
        loss = crit(model(x), y)
        loss.backward()
        lrs.append([grp["lr"] for grp in opt.param_groups])
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
    for k, v in model.state_dict().items():
        result["after." + k] = v
    names = {id(p): n for n, p in model.named_parameters()}
    for p, st in opt.state.items():
        for k, v in st.items():
            if torch.is_tensor(v) and v.ndim > 0:
                result[f"opt.{names[id(p)]}.{k}"] = v
    write_safetensors(f"{out_dir}/result.safetensors", result)
    with open(f"{out_dir}/result.json", "w") as f:
        json.dump({"losses": losses, "lrs": lrs, "init_check": init_check, "schedules": schedule_sequences(),
                   "torch": torch.__version__, "threads": threads}, f)


if __name__ == "__main__":
    main()
