"""BatchRenorm1d/2d and GhostBatchNorm1d/2d: normnet against PyTorch implementations written
here (neither is in torch.nn), run in float64 with autograd:

- BatchRenorm: the paper's Algorithm 1 with r and d `.detach()`ed (stop_gradient), running
  statistics updated as torch's BatchNorm (unbiased variance), the warmup schedule of
  docs/normalization.md. Autograd gives the reference gradients, independently of the
  derivation in src/kernels/batchrenorm.h.
- GhostBatchNorm: torch.nn.BatchNorm applied to each chunk of x.split(virtual_batch_size) in
  order (the last chunk the remainder; none of 2 values, whose input gradient float32 resolves
  poorly, see docs/normalization.md).

Each case runs several training steps through parity_runner's "module" mode (zero_grad,
forward, backward) and compares after every step: output, input gradient, weight and bias
gradients, and the state (running statistics, num_batches_tracked exactly); then one
evaluation step. Inputs move from step to step (offset and scale) so that r and d are clipped
in some steps and free in others (the script checks both happen).

Tolerance 1e-5 of max|want| per tensor (common.rel_err), as the BatchNorm parity test.
"""

import numpy as np
import torch
from torch import nn

from common import Checker, parse_args, run_runner

TOL = 1e-5


class TorchBatchRenorm(nn.Module):
    def __init__(self, c, eps=1e-5, momentum=0.01, r_max=3.0, d_max=5.0, warmup=(0, 0)):
        super().__init__()
        self.eps, self.momentum, self.r_max, self.d_max, self.warmup = eps, momentum, r_max, d_max, warmup
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        self.clipped = {"r": 0, "r_free": 0, "d": 0, "d_free": 0}

    def forward(self, x):
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        w, b = self.weight.view(shape), self.bias.view(shape)
        if not self.training:
            return (x - self.running_mean.view(shape)) / torch.sqrt(self.running_var.view(shape) + self.eps) * w + b
        t = int(self.num_batches_tracked)
        s, e = self.warmup
        frac = 0.0 if t < s else 1.0 if t >= e else (t - s) / (e - s)
        r_max, d_max = 1 + (self.r_max - 1) * frac, self.d_max * frac
        dims = [0] + list(range(2, x.dim()))
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False)
        sigma_b = torch.sqrt(var + self.eps)
        sigma = torch.sqrt(self.running_var + self.eps)
        r = (sigma_b / sigma).clamp(1 / r_max, r_max).detach()
        d = ((mean - self.running_mean) / sigma).clamp(-d_max, d_max).detach()
        if r_max > 1 and d_max > 0:
            rc = ((r - r_max).abs() < 1e-12) | ((r - 1 / r_max).abs() < 1e-12)
            dc = (d.abs() - d_max).abs() < 1e-12
            self.clipped["r"] += int(rc.sum()); self.clipped["r_free"] += int((~rc).sum())
            self.clipped["d"] += int(dc.sum()); self.clipped["d_free"] += int((~dc).sum())
        y = ((x - mean.view(shape)) / sigma_b.view(shape) * r.view(shape) + d.view(shape)) * w + b
        with torch.no_grad():
            self.num_batches_tracked += 1
            f = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
            m = x.numel() / x.shape[1]
            self.running_mean.mul_(1 - f).add_(f * mean)
            self.running_var.mul_(1 - f).add_(f * var * m / (m - 1))
        return y


class TorchGhostBatchNorm(nn.Module):
    def __init__(self, c, virtual_batch_size, dims, momentum=0.1):
        super().__init__()
        self.v = virtual_batch_size
        self.bn = (nn.BatchNorm2d if dims == 2 else nn.BatchNorm1d)(c, momentum=momentum)

    def forward(self, x):
        if not self.training:
            return self.bn(x)
        return torch.cat([self.bn(chunk) for chunk in x.split(self.v)], 0)

    def named_state(self):
        return {k: v for k, v in self.bn.state_dict().items()}


def step_inputs(rng, shape, steps):
    offsets = [0.0, 0.5, 20.0, -2.0, 1.0, 6.0, 0.2]
    scales = [1.0, 0.9, 8.0, 0.05, 1.2, 2.0, 1.0]
    c = shape[1]
    ch = np.arange(c).reshape([1, c] + [1] * (len(shape) - 2))
    xs = [(offsets[k] + ch + scales[k] * (1 + 0.5 * ch) * rng.uniform(-1, 1, shape)).astype(np.float32)
          for k in range(steps)]
    dys = [rng.normal(0, 1, shape).astype(np.float32) for _ in range(steps)]
    return xs, dys


def run_case(args, chk, name, layer, ref, params, state_of, shape, steps, rng):
    n = shape[0]
    xs, dys = step_inputs(rng, shape, steps)
    # Non-trivial affine, the same float32 values on both sides.
    w = rng.uniform(0.5, 2, shape[1]).astype(np.float32)
    b = rng.uniform(-1, 1, shape[1]).astype(np.float32)
    with torch.no_grad():
        params["weight"].copy_(torch.from_numpy(w))
        params["bias"].copy_(torch.from_numpy(b))
    ref.double()
    spec = {"name": "parity", "input": list(shape[1:]), "classes": int(np.prod(shape[1:])),
            "layers": [dict(layer, name="n"), {"type": "Flatten", "name": "_out"}]}
    tensors = {"state.n.weight": w, "state.n.bias": b,
               "state.n.running_mean": np.zeros(shape[1], np.float32),
               "state.n.running_var": np.ones(shape[1], np.float32),
               "state.n.num_batches_tracked": np.array(0, dtype=np.int64)}
    for i in range(steps):
        tensors[f"x.{i}"] = xs[i]
        tensors[f"dy.{i}"] = dys[i].reshape(n, -1)
    out = run_runner(args, name, {"mode": "module", "model": spec, "train": True, "steps": steps}, tensors)
    ref.train()
    for i in range(steps):
        chk.begin(f"{name} step {i}")
        for p in params.values():
            p.grad = None
        x = torch.from_numpy(xs[i]).double().requires_grad_(True)
        y = ref(x)
        y.backward(torch.from_numpy(dys[i]).double())
        chk.close("y", out[f"y.{i}"], y.detach().numpy().reshape(n, -1), TOL)
        chk.close("dx", out[f"dx.{i}"], x.grad.numpy(), TOL)
        chk.close("dweight", out[f"grad.{i}.n.weight"], params["weight"].grad.numpy(), TOL)
        chk.close("dbias", out[f"grad.{i}.n.bias"], params["bias"].grad.numpy(), TOL)
        for k, v in state_of().items():
            chk.close(f"state {k}", out[f"state.{i}.n.{k}"], v.numpy(), 0 if k == "num_batches_tracked" else TOL)
    # Evaluation with the running statistics both reached.
    chk.begin(f"{name} eval")
    state = {f"state.n.{k}": out[f"state.{steps - 1}.n.{k}"] for k in
             ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    x = rng.normal(0, 2, shape).astype(np.float32)
    ev = run_runner(args, name + "_eval", {"mode": "module", "model": spec, "train": False, "steps": 1},
                    dict(state, **{"x.0": x}))
    ref.eval()
    with torch.no_grad():
        y = ref(torch.from_numpy(x).double())
    chk.close("y", ev["y.0"], y.numpy().reshape(n, -1), TOL)


def main():
    args = parse_args()
    chk = Checker("batchnorm_variants")
    rng = np.random.default_rng(11)
    brn_refs = []
    for shape, layer, kw in [
        ((6, 3, 4, 4), {"type": "BatchRenorm2d", "num_features": 3, "momentum": 0.05, "r_max": 2.0, "d_max": 1.5},
         dict(momentum=0.05, r_max=2.0, d_max=1.5)),
        ((8, 3), {"type": "BatchRenorm1d", "num_features": 3, "momentum": 0.05, "r_max": 2.0, "d_max": 1.5},
         dict(momentum=0.05, r_max=2.0, d_max=1.5)),
        ((5, 3, 6), {"type": "BatchRenorm1d", "num_features": 3, "momentum": None},
         dict(momentum=None)),
        ((4, 3, 3, 3), {"type": "BatchRenorm2d", "num_features": 3, "momentum": 0.1, "warmup": [2, 5]},
         dict(momentum=0.1, warmup=(2, 5))),
    ]:
        ref = TorchBatchRenorm(shape[1], **kw)
        brn_refs.append(ref)
        run_case(args, chk, f"{layer['type']} {shape} {kw}", layer, ref,
                 {"weight": ref.weight, "bias": ref.bias},
                 lambda ref=ref: {k: v for k, v in ref.state_dict().items()
                                  if k in ("running_mean", "running_var", "num_batches_tracked")},
                 shape, 7, rng)
    clipped = {k: sum(r.clipped[k] for r in brn_refs) for k in brn_refs[0].clipped}
    print(f"  BatchRenorm channel-steps: {clipped}")
    chk.expect(all(v > 0 for v in clipped.values()), f"r and d were not both clipped and free: {clipped}")

    for shape, v, dims, momentum in [((10, 3, 2, 3), 4, 2, 0.1), ((11, 4), 4, 1, 0.3), ((7, 3, 5), 3, 1, None)]:
        ref = TorchGhostBatchNorm(shape[1], v, dims, momentum)
        layer = {"type": f"GhostBatchNorm{dims}d", "num_features": shape[1], "virtual_batch_size": v,
                 "momentum": momentum}
        run_case(args, chk, f"GhostBatchNorm{dims}d {shape} V={v} momentum {momentum}", layer, ref,
                 {"weight": ref.bn.weight, "bias": ref.bn.bias},
                 lambda ref=ref: {k: v for k, v in ref.bn.state_dict().items()
                                  if k in ("running_mean", "running_var", "num_batches_tracked")},
                 shape, 3, rng)
    chk.end()
    chk.finish()


if __name__ == "__main__":
    main()
