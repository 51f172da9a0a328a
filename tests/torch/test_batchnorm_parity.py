"""BatchNorm1d ((N, C), (N, C, L)) and BatchNorm2d: normnet against torch.nn in every mode.

Each case runs several steps (zero_grad, forward, backward) through parity_runner and through
torch.nn (in float64, from the same float32 parameters, buffers and inputs) and compares after
every step: output, input grad, gamma/beta grads, running_mean, running_var and
num_batches_tracked (exactly). Modes: momentum 0.1 / 0.5 / 1.0 / None (cumulative average),
affine off, track_running_stats off (train and eval), eval with non-trivial running statistics,
eps 1e-3 and 0.1, an input with mean 1000. Last, a batch with one value per channel must be
refused by both in training (and with track_running_stats off, where batch statistics are used
in eval too).

Tolerance 1e-5 of max|want| per tensor: normnet runs in float32 against a float64 reference,
so each output carries a few float32 roundings (~6e-8 each) plus the float32 rounding of the
batch statistics; 1e-5 leaves a margin of ~20x over what is seen (~5e-7) while a wrong formula
(biased for unbiased variance at these batch sizes, a missed momentum, a wrong eps) gives 1e-3
or more. The input with mean 1000 is the exception, explained at that case.
"""

import numpy as np
import torch

from common import (Checker, RunnerError, module_spec, parse_args, run_module_case, run_runner,
                    state_numpy, torch_model)

TOL = 1e-5


def inputs(rng, shape, steps, shift=0.0, scale=1.0):
    """`steps` inputs with a per-channel offset and scale so every channel has its own stats."""
    c = shape[1]
    bshape = (1, c) + (1,) * (len(shape) - 2)
    offs = rng.uniform(-2, 2, size=bshape) + shift
    scales = rng.uniform(0.5, 3, size=bshape) * scale
    xs = [(rng.standard_normal(shape) * scales + offs).astype(np.float32) for _ in range(steps)]
    dys = [rng.standard_normal(shape).astype(np.float32) for _ in range(steps)]
    return xs, dys


def random_affine(net):
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.affine:
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)


def random_stats(net):
    random_affine(net)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)
            m.num_batches_tracked.fill_(7)


def xhat_error_from_float32_mean(x, eps=1e-5):
    """max over channels of |float32(mean_c) - mean_c| / sqrt(var_c + eps), exact stats."""
    axes = (0,) + tuple(range(2, x.ndim))
    x = x.astype(np.float64)
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    return float(np.max(np.abs(mean.astype(np.float32).astype(np.float64) - mean)
                        / np.sqrt(var + eps)))


def bn(kind, c, **kw):
    return [dict({"type": kind, "name": "bn", "num_features": c}, **kw)]


SHAPES = [("BatchNorm1d", (8, 5)), ("BatchNorm1d", (6, 4, 7)), ("BatchNorm2d", (4, 3, 5, 5))]


def main():
    args = parse_args()
    chk = Checker("batchnorm parity")
    rng = np.random.default_rng(1234)
    for kind, shape in SHAPES:
        c = shape[1]
        tag = f"{kind}{shape}"
        modes = [
            ("momentum 0.1", {}, True, 3),
            ("momentum 0.5", {"momentum": 0.5}, True, 3),
            ("momentum 1.0", {"momentum": 1.0}, True, 3),
            ("momentum None (cumulative)", {"momentum": None}, True, 5),
            ("affine off", {"affine": False}, True, 3),
            ("track_running_stats off, train", {"track_running_stats": False}, True, 3),
            ("track_running_stats off, eval", {"track_running_stats": False}, False, 3),
            ("eps 1e-3", {"eps": 1e-3}, True, 3),
            ("eps 0.1, momentum None", {"eps": 0.1, "momentum": None}, True, 3),
        ]
        for name, kw, train, steps in modes:
            xs, dys = inputs(rng, shape, steps)
            run_module_case(args, chk, f"{tag} {name}", bn(kind, c, **kw), xs, dys, train=train,
                            tol=TOL, prepare=random_affine)
        # Eval with running statistics that are not the defaults (and num_batches_tracked 7,
        # which must stay 7): the batch's own statistics must play no part.
        xs, dys = inputs(rng, shape, 3)
        run_module_case(args, chk, f"{tag} eval, running stats", bn(kind, c), xs, dys,
                        train=False, tol=TOL, prepare=random_stats)
        xs, dys = inputs(rng, shape, 3)
        run_module_case(args, chk, f"{tag} eval, running stats, affine off",
                        bn(kind, c, affine=False, eps=1e-2), xs, dys, train=False, tol=TOL,
                        prepare=random_stats)
        # Training from non-default running stats: the update starts from them.
        xs, dys = inputs(rng, shape, 3)
        run_module_case(args, chk, f"{tag} train from running stats, momentum None",
                        bn(kind, c, momentum=None), xs, dys, train=True, tol=TOL,
                        prepare=random_stats)

    # Mean 1000, compared with torch in float64. First with data whose batch mean is exactly
    # 1000 in every channel (values in +-z pairs about 1000, exact in float32): nothing is lost
    # in storing the mean as float32, so the statistics algorithm alone is tested at the
    # general 1e-5 (a one-pass E[x^2] - E[x]^2 in float32 would lose most digits of the
    # variance).
    for kind, shape in [("BatchNorm2d", (8, 4, 6, 6)), ("BatchNorm1d", (64, 6))]:
        xs, dys = inputs(rng, shape, 3, shift=1000.0, scale=0.5)
        for x in xs:
            h = shape[0] // 2
            x[:, :] = 1000.0 + (x - x.mean(axis=0, keepdims=True))  # float32: rounded
            # Exact: x and 2000 - x lie in [512, 1024), on the same float32 grid (2^-14), so
            # every pair sums to 2000 and each channel's mean is exactly 1000.
            x[h:] = 2000.0 - x[:h]
        run_module_case(args, chk, f"{kind}{shape} mean exactly 1000", bn(kind, shape[1]), xs,
                        dys, train=True, tol=TOL, prepare=random_affine)
    # Then 1000 + randn: the batch mean is stored in float32 (normnet and PyTorch's float32
    # kernel both normalize with it), off the exact mean by d_c <= half an ulp of 1000
    # (3.05e-5). Every normalized value xhat = (x - mean) * invstd then carries an absolute
    # error e = max_c d_c * invstd_c, computed below from the data (~1e-4 for std 0.25): y, dx
    # and gamma's grad are functions of xhat with O(1) factors (gamma <= 1.5; dgamma_c also
    # carries |sum dy_c| / max|sum dy * xhat|), so their tolerance is 1e-5 + 4 e. The running
    # statistics and beta's grad do not depend on xhat and keep 1e-5. (PyTorch float32 on the
    # same inputs is off by up to ~3e-4 in gamma's grad.)
    for kind, shape in [("BatchNorm2d", (8, 4, 6, 6)), ("BatchNorm1d", (64, 6))]:
        for kw in ({}, {"momentum": None}):
            xs, dys = inputs(rng, shape, 3, shift=1000.0, scale=0.5)
            e = max(xhat_error_from_float32_mean(x) for x in xs)
            def tol(what, e=e):
                return TOL if ("running" in what or "bias" in what) else TOL + 4 * e
            run_module_case(args, chk, f"{kind}{shape} mean 1000 {kw} (xhat error {e:.1e})",
                            bn(kind, shape[1], **kw), xs, dys, train=True, tol=tol,
                            prepare=random_affine)

    # One value per channel: torch refuses to compute batch statistics from it ("Expected more
    # than 1 value per channel when training"); normnet must refuse too. With
    # track_running_stats off, eval also uses batch statistics and torch refuses there as well.
    chk.begin("one value per channel")
    refusals = [("BatchNorm1d", (1, 4), {}, True), ("BatchNorm1d", (1, 4, 1), {}, True),
                ("BatchNorm2d", (1, 3, 1, 1), {}, True),
                ("BatchNorm2d", (1, 3, 1, 1), {"momentum": None, "affine": False}, True),
                ("BatchNorm1d", (1, 4), {"track_running_stats": False}, False),
                ("BatchNorm2d", (1, 3, 1, 1), {"track_running_stats": False}, False)]
    for kind, shape, kw, train in refusals:
        what = f"{kind}{shape} {kw} {'train' if train else 'eval'}"
        layers = bn(kind, shape[1], **kw)
        xs, dys = inputs(rng, shape, 1)
        try:
            m = torch.nn.__dict__[kind](shape[1], **kw).train(train)
            m(torch.tensor(xs[0]))
            chk.fail(f"{what}: torch accepted the batch (test assumption broken)")
        except ValueError as e:
            chk.expect("more than 1 value per channel" in str(e), f"{what}: torch said {e}")
        spec = module_spec(layers, shape[1:])
        tensors = {f"state.{k}": v
                   for k, v in state_numpy(torch_model({"layers": layers})).items()}
        tensors.update({"x.0": xs[0], "dy.0": dys[0].reshape(shape[0], -1)})
        op = {"mode": "module", "model": spec, "train": train, "steps": 1}
        try:
            run_runner(args, f"one value {what}", op, tensors)
            chk.fail(f"{what}: normnet accepted a batch with one value per channel")
        except RunnerError as e:
            ok = chk.expect("more than 1 value per channel" in str(e),
                            f"{what}: normnet failed without the expected message: {e}")
            if ok:
                print(f"  {what}: refused by both")
    # An empty batch between two real ones: torch counts it in num_batches_tracked (so with
    # momentum None the third batch gets weight 1/3) and leaves the running statistics alone.
    for kind, shape in [("BatchNorm1d", (6, 4)), ("BatchNorm2d", (4, 3, 2, 2))]:
        for kw in ({}, {"momentum": None}):
            xs, dys = inputs(rng, shape, 3)
            xs[1], dys[1] = xs[1][:0], dys[1][:0]
            run_module_case(args, chk, f"{kind}{shape} empty middle batch {kw}", bn(kind, shape[1], **kw),
                            xs, dys, train=True, tol=TOL, prepare=random_affine)
    # In eval mode with running statistics one value per channel is fine in both.
    for kind, shape in [("BatchNorm1d", (1, 4)), ("BatchNorm2d", (1, 3, 1, 1))]:
        xs, dys = inputs(rng, shape, 2)
        run_module_case(args, chk, f"{kind}{shape} eval, one value per channel",
                        bn(kind, shape[1]), xs, dys, train=False, tol=TOL, prepare=random_stats)
    chk.finish()


if __name__ == "__main__":
    main()
