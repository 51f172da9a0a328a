"""Special values (NaN, +-inf, -0) through ReLU, LeakyReLU, ELU, MaxPool2d and the fused
BatchNorm2d -> ReLU -> MaxPool2d(2): normnet against torch.nn in float32.

What is compared: where the outputs and input gradients are NaN, their signs where they are
zero or infinite, and their values elsewhere. The activations and pooling are exact (one
comparison or one rounding), so the finite values must be equal. BatchNorm in evaluation mode
normalizes with float32 roundings that differ from torch's by ~1 ulp, and its finite values are
compared within 1e-6 of max|want|; the zero-sign check is left out where BN output feeds the
comparison (torch and normnet may round a value to -0 and +0 differently).
BatchNorm's training mode is left out on purpose: a NaN in a channel makes that channel's mean
NaN in both, and nothing more is learned from it.
"""

import numpy as np
import torch

from common import Checker, module_spec, parse_args, run_runner, state_numpy, torch_model

NAN, INF = float("nan"), float("inf")


def special_input(shape, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1)
    specials = [NAN, INF, -INF, -0.0, 0.0, NAN, -0.0]
    for i, v in enumerate(specials):
        flat[(7 * i + 3) % flat.size] = v
    return x


def same_special(chk, what, got, want, tol, check_zero_sign=True):
    got = np.asarray(got, dtype=np.float32).reshape(want.shape)
    want = np.asarray(want, dtype=np.float32)
    ok = True
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        idx = np.argwhere(np.isnan(got) != np.isnan(want))[0]
        chk.fail(f"{what}: NaN positions differ, first at {tuple(idx)}: got {got[tuple(idx)]}, "
                 f"want {want[tuple(idx)]}")
        ok = False
    inf = np.isinf(want)
    if not np.array_equal(got[inf], want[inf]):
        chk.fail(f"{what}: infinities differ: got {got[inf]}, want {want[inf]}")
        ok = False
    zero = want == 0
    if check_zero_sign and not np.array_equal(np.signbit(got[zero]), np.signbit(want[zero])):
        chk.fail(f"{what}: signs of zeros differ: got {got[zero]}, want {want[zero]}")
        ok = False
    fin = np.isfinite(want)
    if ok and fin.any():
        diff = float(np.max(np.abs(got[fin].astype(np.float64) - want[fin])))
        scale = max(float(np.max(np.abs(want[fin]))), 1e-30)
        if not (diff <= tol * scale):
            chk.fail(f"{what}: finite values differ by {diff:.3e} (tolerance {tol * scale:.3e})")
            ok = False
    chk.count += 1
    return ok


def run_case(args, chk, name, layers, shape, rng, tol=0.0, check_zero_sign=True, train=False):
    chk.begin(name)
    torch.manual_seed(0)
    net = torch_model({"layers": layers})
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.linspace(-0.5, 0.5, m.num_features))
                m.running_var.copy_(torch.linspace(0.5, 2.0, m.num_features))
                m.weight.copy_(torch.linspace(0.5, 1.5, m.num_features))
                m.bias.copy_(torch.linspace(-0.2, 0.2, m.num_features))
    net.train(train)
    x = special_input(shape, rng)
    xt = torch.tensor(x, requires_grad=True)
    y = net(xt)
    dy = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(torch.tensor(dy))
    spec = module_spec(layers, shape[1:])
    tensors = {f"state.{k}": v for k, v in state_numpy(net).items()}
    tensors["x.0"] = x
    tensors["dy.0"] = dy.reshape(dy.shape[0], -1)
    out = run_runner(args, name, {"mode": "module", "model": spec, "train": train, "steps": 1}, tensors)
    same_special(chk, "y", out["y.0"], y.detach().numpy(), tol, check_zero_sign)
    same_special(chk, "dx", out["dx.0"], xt.grad.numpy(), tol, check_zero_sign)


def main():
    args = parse_args()
    chk = Checker("special values")
    rng = np.random.default_rng(5)
    run_case(args, chk, "ReLU", [{"type": "ReLU"}], (2, 3, 4, 4), rng)
    run_case(args, chk, "LeakyReLU", [{"type": "LeakyReLU", "negative_slope": 0.1}], (2, 3, 4, 4), rng)
    # ELU of -0: torch gives +0 (its vectorized (exp(x) - 1) * alpha), normnet alpha * expm1(-0)
    # = -0; the zero signs of the output are not compared for ELU.
    run_case(args, chk, "ELU", [{"type": "ELU"}], (2, 3, 4, 4), rng, tol=1e-6, check_zero_sign=False)
    run_case(args, chk, "MaxPool2d", [{"type": "MaxPool2d", "kernel_size": 2}], (2, 3, 6, 6), rng)
    run_case(args, chk, "ReLU -> MaxPool2d",
             [{"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2}], (2, 3, 6, 6), rng)
    # BatchNorm2d (eval) -> ReLU -> MaxPool2d(2): normnet runs the fused kernel.
    run_case(args, chk, "BatchNorm2d eval -> ReLU -> MaxPool2d (fused)",
             [{"type": "BatchNorm2d", "name": "bn", "num_features": 3}, {"type": "ReLU"},
              {"type": "MaxPool2d", "kernel_size": 2}], (2, 3, 6, 7), rng, tol=1e-6,
             check_zero_sign=False)
    chk.finish()


if __name__ == "__main__":
    main()
