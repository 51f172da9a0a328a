"""Gradient clipping (normnet train --clip-grad-norm) against torch.nn.utils.clip_grad_norm_.

parity_runner trains seed001 for a few steps with clipping, the way the trainer does it
(zero_grad, forward, loss, backward, clip_grad_norm, update), and returns every step's
gradients before and after clipping, the total norm and the state after the update. For each
step, torch.nn.utils.clip_grad_norm_ (norm type 2) applied in float64 to normnet's unclipped
gradients must give normnet's total norm (relative 1e-12: normnet sums in double) and clipped
gradients (relative 1e-6: normnet's are float32); PyTorch in float32 agrees to 1e-5 (its float32
norms); and torch.optim (float64) applied with the clipped gradients
to normnet's state before the step must give normnet's parameters and optimizer state after it
(relative 1e-6) -- which also checks that clipping comes before weight decay and momentum, as in
a PyTorch loop. Runs: SGD with momentum and weight decay, clipped to 0.5 (active on every step);
Adam clipped to 2.0; and a limit never reached (gradients unchanged, bit for bit).
"""

import json
import os

import numpy as np
import torch
from torch import nn

from common import Checker, parse_args, run_runner, state_numpy, torch_model

STEPS, BATCH = 6, 16


def data():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(STEPS, BATCH, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, size=(STEPS, BATCH)).astype(np.int64)
    return x, y


def make_optimizer(params, opt):
    if opt["kind"] == "sgd":
        return torch.optim.SGD(params, lr=opt["lr"], momentum=opt["momentum"],
                               weight_decay=opt.get("weight_decay", 0.0))
    return torch.optim.Adam(params, lr=opt["lr"])


STATE_KEYS = {"sgd": ("momentum_buffer",), "adam": ("exp_avg", "exp_avg_sq")}


def main():
    args = parse_args()
    chk = Checker("clip_grad_norm parity")
    with open(os.path.join(args.models, "seed001.json")) as f:
        spec = json.load(f)
    torch.manual_seed(0)
    state0 = state_numpy(torch_model(spec))
    names = [n for n, _ in torch_model(spec).named_parameters()]
    x, y = data()
    runs = [
        ("SGD momentum 0.9 weight_decay 5e-4, clip 0.5",
         {"kind": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}, 0.5),
        ("Adam lr 1e-3, clip 2.0", {"kind": "adam", "lr": 1e-3}, 2.0),
        ("SGD, clip 1e6 (never reached)", {"kind": "sgd", "lr": 0.05, "momentum": 0.9}, 1e6),
    ]
    for name, opt, max_norm in runs:
        chk.begin(name)
        tensors = {f"state.{k}": v for k, v in state0.items()}
        tensors.update({"x": x, "labels": y})
        op = {"mode": "train", "model": spec, "optimizer": opt, "clip_grad_norm": max_norm}
        out = run_runner(args, name, op, tensors)
        clipped_steps = 0
        for i in range(STEPS):
            before = state0 if i == 0 else {k[len(f"state.{i - 1}."):]: v for k, v in out.items()
                                            if k.startswith(f"state.{i - 1}.")}
            # Clipping: torch on normnet's unclipped gradients, in float64 (the exact reference)
            # and in float32 (PyTorch's own rounding).
            total = {}
            clipped = {}
            for dtype in (torch.float64, torch.float32):
                ps = [nn.Parameter(torch.zeros(out[f"raw_grad.{i}.{n}"].shape, dtype=dtype)) for n in names]
                for n, p in zip(names, ps):
                    p.grad = torch.tensor(out[f"raw_grad.{i}.{n}"], dtype=dtype)
                total[dtype] = torch.nn.utils.clip_grad_norm_(ps, max_norm).item()
                clipped[dtype] = {n: p.grad.numpy() for n, p in zip(names, ps)}
            got_total = np.array(out["grad_norms"][i])
            chk.close(f"step {i + 1} total norm (float64)", got_total, np.array(total[torch.float64]), 1e-12)
            chk.close(f"step {i + 1} total norm (torch float32)", got_total, np.array(total[torch.float32]), 1e-5)
            clipped_steps += total[torch.float64] > max_norm
            for n in names:
                got = out[f"grad.{i}.{n}"]
                chk.close(f"step {i + 1} clipped grad {n}", got, clipped[torch.float64][n], 1e-6)
                chk.close(f"step {i + 1} clipped grad {n} (torch float32)", got, clipped[torch.float32][n], 1e-5)
                if max_norm >= 1e6:
                    chk.expect(np.array_equal(got, out[f"raw_grad.{i}.{n}"]),
                               f"step {i + 1} {n}: a limit never reached changed the gradient")
            # The update with the clipped gradients, in float64 from normnet's state.
            params = [nn.Parameter(torch.tensor(before[n], dtype=torch.float64)) for n in names]
            o = make_optimizer(params, opt)
            for n, p in zip(names, params):
                p.grad = torch.tensor(out[f"grad.{i}.{n}"], dtype=torch.float64)
                if i > 0:
                    s = {k: torch.tensor(out[f"opt.{i - 1}.{n}.{k}"], dtype=torch.float64)
                         for k in STATE_KEYS[opt["kind"]]}
                    if opt["kind"] == "adam":
                        s["step"] = torch.tensor(float(i))
                    o.state[p] = s
            o.step()
            for n, p in zip(names, params):
                chk.close(f"step {i + 1} update {n}", out[f"state.{i}.{n}"], p.detach().numpy(), 1e-6)
                for k in STATE_KEYS[opt["kind"]]:
                    chk.close(f"step {i + 1} {n}.{k}", out[f"opt.{i}.{n}.{k}"], o.state[p][k].numpy(), 1e-6)
        if max_norm < 1e6:
            chk.expect(clipped_steps >= 1, f"the limit {max_norm} was never reached: clipping untested")
        print(f"  {name}: norms {' '.join(f'{v:.3f}' for v in out['grad_norms'])}, "
              f"clipped on {clipped_steps} of {STEPS} steps")
    chk.finish()


if __name__ == "__main__":
    main()
