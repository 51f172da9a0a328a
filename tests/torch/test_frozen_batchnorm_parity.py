"""FrozenBatchNorm2d: normnet against torchvision.ops.FrozenBatchNorm2d.

torchvision is used when installed; otherwise the same module is written here from
torchvision's source (four buffers; forward x * scale + (bias - running_mean * scale) with
scale = weight * rsqrt(running_var + eps)). Each case goes through parity_runner's "module"
mode in training and in evaluation mode (the same computation), from float32 buffers and
inputs, and is compared with the reference in float64: output, input gradient, and the state
after the step (names exactly the reference's state_dict keys: no num_batches_tracked; values
unchanged by training).

Tolerance 1e-5 of max|want| per tensor (common.rel_err): one multiply-add in float32 against
float64, where a wrong formula (no eps, the variance instead of its square root, the wrong
channel) is off by 1e-3 or more.
"""

import numpy as np
import torch
from torch import nn

from common import Checker, parse_args, run_runner

TOL = 1e-5


class FormulaFrozenBatchNorm2d(nn.Module):
    """torchvision.ops.FrozenBatchNorm2d as written in torchvision/ops/misc.py."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        w = self.weight.reshape(1, -1, 1, 1)
        b = self.bias.reshape(1, -1, 1, 1)
        rv = self.running_var.reshape(1, -1, 1, 1)
        rm = self.running_mean.reshape(1, -1, 1, 1)
        scale = w * (rv + self.eps).rsqrt()
        bias = b - rm * scale
        return x * scale + bias


def reference(num_features, eps):
    try:
        from torchvision.ops import FrozenBatchNorm2d
        return FrozenBatchNorm2d(num_features, eps=eps), "torchvision"
    except ImportError:
        return FormulaFrozenBatchNorm2d(num_features, eps), "formula"


def main():
    args = parse_args()
    chk = Checker("frozen_batchnorm")
    rng = np.random.default_rng(7)
    cases = [((4, 3, 5, 5), 1e-5), ((1, 6, 2, 3), 1e-5), ((3, 2, 1, 1), 1e-3)]
    for shape, eps in cases:
        c = shape[1]
        ref, kind = reference(c, eps)
        state = {
            "weight": rng.uniform(-2, 2, c).astype(np.float32),
            "bias": rng.uniform(-1, 1, c).astype(np.float32),
            "running_mean": rng.uniform(-3, 3, c).astype(np.float32),
            "running_var": rng.uniform(0.0, 4, c).astype(np.float32),
        }
        state["running_var"][0] = 0.0  # eps matters
        ref.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()}, strict=True)
        ref = ref.double()
        x = rng.normal(0, 3, shape).astype(np.float32)
        dy = rng.normal(0, 1, shape).astype(np.float32)
        xt = torch.from_numpy(x).double().requires_grad_(True)
        y = ref(xt)
        y.backward(torch.from_numpy(dy).double())
        layer = {"type": "FrozenBatchNorm2d", "name": "fbn", "num_features": c}
        if eps != 1e-5:
            layer["eps"] = eps
        spec = {"name": "parity", "input": list(shape[1:]), "classes": int(np.prod(shape[1:])),
                "layers": [layer, {"type": "Flatten", "name": "_out"}]}
        for train in (True, False):
            chk.begin(f"{kind} {shape} eps {eps} {'train' if train else 'eval'}")
            tensors = {f"state.fbn.{k}": v for k, v in state.items()}
            tensors["x.0"] = x
            tensors["dy.0"] = dy.reshape(shape[0], -1)
            out = run_runner(args, f"frozen_{'_'.join(map(str, shape))}_{train}",
                             {"mode": "module", "model": spec, "train": train, "steps": 1},
                             tensors)
            chk.close("y", out["y.0"], y.detach().numpy().reshape(shape[0], -1), TOL)
            chk.close("dx", out["dx.0"], xt.grad.numpy(), TOL)
            got_state = sorted(k[len("state.0."):] for k in out if k.startswith("state.0."))
            want_state = sorted("fbn." + k for k in ref.state_dict())
            chk.expect(got_state == want_state, f"state names {got_state} != {want_state}")
            for k, v in state.items():
                chk.close(f"state {k}", out[f"state.0.fbn.{k}"], v, 0.0)
    chk.end()
    chk.finish()


if __name__ == "__main__":
    main()
