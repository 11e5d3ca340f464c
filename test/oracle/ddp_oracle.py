# PyTorch DDP reference for test/dist-parity.test.ts: 2 processes on Gloo (loopback), a small
# float64 CNN, the inputs and initial weights the test wrote, SGD with momentum for k steps.
# Usage: ddp_oracle.py <dir> <port> <steps>; writes the shared inputs <dir>/data.safetensors and
# <dir>/init.safetensors, then <dir>/torch-rank<r>.safetensors (final state) and <dir>/result.json
# (per-rank losses).
import json, os, sys
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.utils.data import DistributedSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nn_oracle import write_safetensors  # noqa: E402

N, STEPS_DEFAULT = 24, 3


def model():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).double()


def inputs():
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(N, 3, 12, 12, generator=g, dtype=torch.float64)
    y = torch.randint(0, 5, (N,), generator=g)
    torch.manual_seed(99)
    init = model().state_dict()
    return x, y, init


def worker(rank, world, d, port, steps, q):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    x, y, init = inputs()
    m = model()
    m.load_state_dict(init)
    ddp = nn.parallel.DistributedDataParallel(m)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    sampler = DistributedSampler(range(len(y)), num_replicas=world, rank=rank, shuffle=False)
    order = list(sampler)
    per = len(order) // steps
    losses = []
    for s in range(steps):
        idx = torch.tensor(order[s * per:(s + 1) * per])
        loss = nn.functional.cross_entropy(ddp(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    write_safetensors(os.path.join(d, f'torch-rank{rank}.safetensors'), m.state_dict())
    q.put((rank, losses))
    dist.destroy_process_group()


if __name__ == '__main__':
    d, port, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    x, y, init = inputs()
    write_safetensors(os.path.join(d, 'data.safetensors'), {'x': x, 'y': y})
    write_safetensors(os.path.join(d, 'init.safetensors'), init)
    ctx = mp.get_context('spawn')
    q = ctx.Queue()
    ps = [ctx.Process(target=worker, args=(r, 2, d, port, steps, q)) for r in range(2)]
    for p in ps: p.start()
    res = dict(q.get(timeout=120) for _ in ps)
    for p in ps: p.join()
    json.dump({'losses': [res[0], res[1]]}, open(os.path.join(d, 'result.json'), 'w'))
