#!/usr/bin/python3
"""Oracle for goodsrec's EfficientNet/Swin parity tests (test/models-zoo-b.test.ts): torchvision 0.14.

    /usr/bin/python3 test/oracle/zoo_b_oracle.py OUT_DIR THREADS

For each case (efficientnet_b0, efficientnet_b3, swin_t; 10 classes) writes into OUT_DIR:
  <case>.safetensors   the state dict: torchvision's init for seed 0, then every 1-d parameter and
                       BN statistic perturbed (so a wrong bias, norm or running stat cannot pass),
                       Swin's position-bias tables redrawn with std 1 and qkv weights x3 (x10 makes float32 itself lose 1e-3)
and into result.safetensors:
  <case>.x<S>          input [1, 3, S, S] for each size S of the case; <case>.y [1] int64 target
  <case>.eval.<S>      eval-mode logits at size S
  <case>.grad.<name>   gradient of every parameter after one training-mode step (cross entropy) at
                       the case's training size, with dropout and stochastic depth off
result.json: losses per case and the sizes used.

Inputs, logits and gradients are float64 (the float32 weights promoted), so the test's tolerance holds
on any CPU. Negative controls: a case BASE~WRONG (WRONG below) is BASE's weights and inputs through a
deliberately wrong architecture; its outputs are written under that name and the test checks that
goodsrec's BASE model does NOT match them.
"""
import json
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402
import torchvision  # noqa: E402
from torchvision.ops import StochasticDepth  # noqa: E402
from torchvision.models.swin_transformer import ShiftedWindowAttention  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nn_oracle import write_safetensors  # noqa: E402

# case -> (constructor, eval sizes, training size)
CASES = {
    "efficientnet_b0": (torchvision.models.efficientnet_b0, [224, 97], 224),
    "efficientnet_b3": (torchvision.models.efficientnet_b3, [64], 64),
    "swin_t": (torchvision.models.swin_t, [224, 200], 224),
}


def perturb(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim != 1:
                continue
            if name.endswith("weight"):  # BN / LayerNorm scales
                p.copy_(torch.rand(p.shape, generator=g) + 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.num_batches_tracked.fill_(5)
            elif isinstance(m, ShiftedWindowAttention):
                # Peaked attention (the init's is nearly uniform), so the shift mask, the bias gather
                # and the window order change the logits well beyond the tolerance.
                m.relative_position_bias_table.copy_(torch.randn(m.relative_position_bias_table.shape, generator=g))
                m.qkv.weight.mul_(3)


def _se_no_sigmoid(model):
    for m in model.modules():
        if isinstance(m, torchvision.ops.SqueezeExcitation):
            m.scale_activation = torch.nn.Identity()


def _no_shift(model):
    for m in model.modules():
        if isinstance(m, ShiftedWindowAttention):
            m.shift_size = [0, 0]


WRONG = {"se_no_sigmoid": _se_no_sigmoid, "no_shift": _no_shift}
NEGATIVE = ["efficientnet_b0~se_no_sigmoid", "swin_t~no_shift"]


def main():
    out_dir, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    result, losses = {}, {}
    for case in list(CASES) + NEGATIVE:
        base, _, wrong = case.partition("~")
        ctor, eval_sizes, train_size = CASES[base]
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(1)
        model = ctor(num_classes=10)
        perturb(model, g)
        if wrong:
            WRONG[wrong](model)
        else:
            write_safetensors(f"{out_dir}/{case}.safetensors", model.state_dict())
        model.double()
        y = torch.randint(0, 10, (1,), generator=g)
        result[f"{case}.y"] = y
        xs = {}
        for s in sorted(set(eval_sizes + [train_size])):
            xs[s] = torch.randn(1, 3, s, s, generator=g).double()
            result[f"{case}.x{s}"] = xs[s]
        model.eval()
        with torch.no_grad():
            for s in eval_sizes:
                result[f"{case}.eval.{s}"] = model(xs[s])
        for m in model.modules():
            if isinstance(m, (StochasticDepth, torch.nn.Dropout)):
                m.p = 0.0
        model.train()
        loss = torch.nn.functional.cross_entropy(model(xs[train_size]), y)
        loss.backward()
        losses[case] = loss.item()
        for name, p in model.named_parameters():
            result[f"{case}.grad.{name}"] = p.grad
    write_safetensors(f"{out_dir}/result.safetensors", result)
    with open(f"{out_dir}/result.json", "w") as f:
        cases = {k: {"eval": CASES[k.split("~")[0]][1], "train": CASES[k.split("~")[0]][2]} for k in list(CASES) + NEGATIVE}
        json.dump({"losses": losses, "cases": cases,
                   "torch": torch.__version__, "torchvision": torchvision.__version__}, f)


if __name__ == "__main__":
    main()
