"""GroupNorm, LayerNorm, InstanceNorm1d/2d: normnet against torch.nn in every mode.

Each case runs several steps (zero_grad, forward, backward) through parity_runner's "module"
mode and through torch.nn (in float64, from the same float32 parameters, buffers and inputs)
and compares after every step: output, input grad, weight/bias grads, and every parameter and
buffer (running_mean, running_var, num_batches_tracked exactly: PyTorch's InstanceNorm never
advances it, so neither may normnet).

Cases. GroupNorm: groups 1, 2, 3 and C; (N, C), (N, C, L) and (N, C, H, W) inputs; batch 1;
channels 6 and 17; affine off; eps 1e-3; train and eval (the same computation). LayerNorm:
normalized_shape [features], [C, H, W], [W] only, [C, L]; elementwise_affine off; eps 0.1.
InstanceNorm1d/2d: affine on/off, track_running_stats on/off, momentum 0.1 / 0.5 / 1.0, batch
1; training for several steps (running statistics after each), then evaluation with the
running statistics torch reached by that training; evaluation without tracking (instance
statistics). Every layer gets non-trivial weights and biases (per channel or per position), and
every channel its own offset and scale. Inputs with mean 1000; a small network of all three
trained for 6 SGD steps; empty batches. Last, the refusals: InstanceNorm with one spatial
element when instance statistics are used (both refuse), momentum None.

Tolerance 1e-5 of max|want| per tensor (common.rel_err), as for BatchNorm: normnet runs in
float32 against a float64 reference, so each output carries a few float32 roundings (~6e-8
each) plus the float32 rounding of the statistics; the worst seen is reported at the end (about
5e-7), a 20x margin, while a wrong formula (biased for unbiased variance in the running
statistics, a sum over the wrong set, the gamma of another channel, a missed batch average)
gives 1e-3 or more. The mean-1000 cases are the exception, explained at that case.
"""

import numpy as np
import torch

import common
from common import (Checker, RunnerError, parse_args, run_module_case, run_runner, state_numpy,
                    torch_model)

TOL = 1e-5
NORM_TYPES = ("GroupNorm", "LayerNorm", "InstanceNorm1d", "InstanceNorm2d")


def _install_torch_layers():
    """Teach common.torch_layer the normalization layers if it does not know them yet: their
    model-file keys are exactly the torch.nn constructor's arguments."""
    try:
        common.torch_layer({"type": "GroupNorm", "num_groups": 1, "num_channels": 1})
        return
    except ValueError:
        pass
    base = common.torch_layer

    def torch_layer(spec):
        if spec["type"] in NORM_TYPES:
            kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items()
                  if k not in ("type", "name", "comment")}
            return getattr(torch.nn, spec["type"])(**kw)
        return base(spec)

    common.torch_layer = torch_layer


def inputs(rng, shape, steps, shift=0.0, scale=1.0):
    """`steps` inputs with a per-channel offset and scale, and per-step output gradients."""
    c = shape[1]
    bshape = (1, c) + (1,) * (len(shape) - 2)
    offs = rng.uniform(-2, 2, size=bshape) + shift
    scales = rng.uniform(0.5, 3, size=bshape) * scale
    xs = [(rng.standard_normal(shape) * scales + offs).astype(np.float32) for _ in range(steps)]
    dys = [rng.standard_normal(shape).astype(np.float32) for _ in range(steps)]
    return xs, dys


def random_affine(net):
    for m in net.modules():
        if getattr(m, "weight", None) is not None and not isinstance(m, torch.nn.Linear):
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)


def random_stats(net):
    random_affine(net)
    for m in net.modules():
        if getattr(m, "running_mean", None) is not None:
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2.0)


def set_stats(stats):
    """prepare(net) that loads the given running statistics (and random affine parameters)."""
    def prepare(net):
        random_affine(net)
        for k, v in net.state_dict().items():
            if k in stats:
                v.copy_(torch.as_tensor(stats[k]).to(v.dtype))
    return prepare


def xhat_error(x, set_axes, eps=1e-5):
    """max over normalization sets of |float32(mean) - mean| / sqrt(var + eps), exact stats:
    the error that normalizing with a float32 mean puts in every xhat."""
    x = x.astype(np.float64)
    mean = x.mean(axis=set_axes, keepdims=True)
    var = x.var(axis=set_axes, keepdims=True)
    return float(np.max(np.abs(mean.astype(np.float32).astype(np.float64) - mean)
                        / np.sqrt(var + eps)))


class ZeroDx:
    """A Checker for run_module_case whose input-gradient comparisons require normnet's dx to
    be exactly zero (and torch's to be rounding noise); other comparisons go to the Checker."""

    def __init__(self, chk):
        self.chk = chk

    def begin(self, case):
        self.chk.begin(case)

    def close(self, what, got, want, tol):
        if not what.endswith(" dx"):
            return self.chk.close(what, got, want, tol)
        want_max = float(np.max(np.abs(common.to_numpy(want))))
        return self.chk.expect(not np.any(got) and want_max < 1e-9,
                               f"{what}: expected 0, normnet max|dx| {np.max(np.abs(got)):.3g}, "
                               f"torch {want_max:.3g}")


def gn(c, g, **kw):
    return [dict({"type": "GroupNorm", "name": "gn", "num_groups": g, "num_channels": c}, **kw)]


def ln(shape, **kw):
    return [dict({"type": "LayerNorm", "name": "ln", "normalized_shape": shape}, **kw)]


def inorm(dims, c, **kw):
    return [dict({"type": f"InstanceNorm{dims}d", "name": "inorm", "num_features": c}, **kw)]


def train_net_case(args, chk, rng, steps=6, batch=8):
    def conv(name, cin, cout, **kw):
        return dict({"type": "Conv2d", "name": name, "in_channels": cin, "out_channels": cout,
                     "kernel_size": 3, "padding": 1}, **kw)
    spec = {"name": "norm-mix", "input": [2, 8, 8], "classes": 10, "layers": [
        conv("c1", 2, 6), {"type": "GroupNorm", "name": "gn", "num_groups": 3, "num_channels": 6},
        {"type": "ELU"},
        {"type": "InstanceNorm2d", "name": "inorm", "num_features": 6, "affine": True,
         "track_running_stats": True, "momentum": 0.3},
        conv("c2", 6, 4, stride=2),
        {"type": "LayerNorm", "name": "ln", "normalized_shape": [4, 4, 4]},
        {"type": "ELU"}, {"type": "Flatten"},
        {"type": "Linear", "name": "fc", "in_features": 64, "out_features": 10}]}
    chk.begin(f"Conv-GroupNorm-InstanceNorm-Conv-LayerNorm-Linear, {steps} SGD steps")
    torch.manual_seed(7)
    net = torch_model(spec)
    with torch.no_grad():
        random_affine(net)
    state0 = state_numpy(net)
    x = rng.standard_normal((steps, batch, 2, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 10, size=(steps, batch)).astype(np.int64)
    opt = {"kind": "sgd", "lr": 0.05, "momentum": 0.9}
    tensors = {f"state.{k}": v for k, v in state0.items()}
    tensors.update({"x": x, "labels": labels})
    out = run_runner(args, "norm training", {"mode": "train", "model": spec, "optimizer": opt},
                     tensors)
    ref = net.double().train()
    sgd = torch.optim.SGD(ref.parameters(), lr=opt["lr"], momentum=opt["momentum"])
    losses = []
    for i in range(steps):
        sgd.zero_grad()
        loss = torch.nn.functional.cross_entropy(ref(torch.tensor(x[i], dtype=torch.float64)),
                                                 torch.tensor(labels[i]))
        loss.backward()
        for k, p in ref.named_parameters():
            chk.close(f"step {i} grad {k}", out[f"grad.{i}.{k}"], p.grad, 2e-5)
        sgd.step()
        losses.append(loss.item())
        for k, v in ref.state_dict().items():
            chk.close(f"step {i} {k}", out[f"state.{i}.{k}"], v, 2e-5)
    chk.close("losses", out["losses"], np.array(losses), 2e-5)


def main():
    args = parse_args()
    _install_torch_layers()
    chk = Checker("normalization parity")
    rng = np.random.default_rng(4321)

    # ------------------------------------------------------------ GroupNorm
    gn_cases = [((4, 6, 5, 5), g, {}) for g in (1, 2, 3, 6)] + [
        ((3, 6), 2, {}), ((8, 6), 6, {}), ((2, 17, 7), 17, {}), ((2, 17, 7), 1, {}),
        ((1, 6, 3, 3), 2, {}), ((1, 6, 3, 3), 6, {}), ((4, 6, 5, 5), 2, {"affine": False}),
        ((4, 6, 5, 5), 3, {"eps": 1e-3}), ((3, 6, 7), 2, {"eps": 0.1, "affine": False})]
    for shape, g, kw in gn_cases:
        group_size = shape[1] // g * int(np.prod(shape[2:]))
        for train in (True, False):
            xs, dys = inputs(rng, shape, 3)
            case = f"GroupNorm({g}, {shape[1]}) {kw} on {shape} {'train' if train else 'eval'}"
            if group_size > 1:
                run_module_case(args, chk, case, gn(shape[1], g, **kw), xs, dys, train=train,
                                tol=TOL, prepare=random_affine)
                continue
            # One value per group: y = beta whatever x, so dx = 0 exactly. torch's float64
            # reference returns rounding noise (~1e-13) there, which a relative comparison
            # cannot use: dx is checked to be exactly zero instead (normnet evaluates dx in
            # double, so its cancellation is exact), everything else as usual.
            run_module_case(args, ZeroDx(chk), case, gn(shape[1], g, **kw), xs, dys,
                            train=train, tol=TOL, prepare=random_affine)

    # ------------------------------------------------------------ LayerNorm
    ln_cases = [((8, 20), [20], {}), ((8, 20), 20, {}), ((4, 3, 5, 5), [3, 5, 5], {}),
                ((4, 3, 5, 5), [5], {}), ((2, 6, 7), [6, 7], {}), ((1, 300), [300], {}),
                ((4, 3, 5, 5), [5, 5], {"elementwise_affine": False}),
                ((6, 10), [10], {"eps": 0.1})]
    for shape, ns, kw in ln_cases:
        for train in (True, False):
            xs, dys = inputs(rng, shape, 3)
            run_module_case(args, chk, f"LayerNorm({ns}) {kw} on {shape} "
                            f"{'train' if train else 'eval'}", ln(ns, **kw), xs, dys,
                            train=train, tol=TOL, prepare=random_affine)

    # ------------------------------------------------------------ InstanceNorm
    for dims, shape in ((1, (4, 3, 7)), (2, (4, 3, 5, 5)), (2, (1, 3, 4, 4)), (1, (1, 5, 9))):
        c = shape[1]
        tag = f"InstanceNorm{dims}d{shape}"
        modes = [
            ("defaults (no affine, no tracking)", {}, True),
            ("defaults, eval (instance statistics)", {}, False),
            ("affine", {"affine": True}, True),
            ("affine, eval (instance statistics)", {"affine": True}, False),
            ("eps 1e-3, affine", {"affine": True, "eps": 1e-3}, True),
        ]
        for name, kw, train in modes:
            xs, dys = inputs(rng, shape, 3)
            run_module_case(args, chk, f"{tag} {name}", inorm(dims, c, **kw), xs, dys,
                            train=train, tol=TOL, prepare=random_affine)
        # Tracking: several training steps (running statistics compared after each), then
        # evaluation from the running statistics torch reached (not touched by eval).
        for momentum in (0.1, 0.5, 1.0):
            for affine in (True, False):
                kw = {"track_running_stats": True, "affine": affine, "momentum": momentum}
                xs, dys = inputs(rng, shape, 5)
                _, want = run_module_case(args, chk, f"{tag} tracking {kw} train",
                                          inorm(dims, c, **kw), xs, dys, train=True, tol=TOL,
                                          prepare=random_affine)
                trained = {k: v.numpy().astype(np.float32) for k, v in want[-1]["state"].items()
                           if k.endswith(("running_mean", "running_var"))}
                xs, dys = inputs(rng, shape, 3)
                run_module_case(args, chk, f"{tag} tracking {kw} eval after training",
                                inorm(dims, c, **kw), xs, dys, train=False, tol=TOL,
                                prepare=set_stats(trained))
        # Training from non-default running statistics.
        xs, dys = inputs(rng, shape, 3)
        run_module_case(args, chk, f"{tag} tracking, train from running stats",
                        inorm(dims, c, track_running_stats=True, affine=True), xs, dys,
                        train=True, tol=TOL, prepare=random_stats)

    # ------------------------------------------------------------ mean 1000
    # 1000 + N(0, 0.5^2)-ish inputs. The statistics are summed in double by both, but each
    # normalization set's mean is stored in float32 before normalizing (normnet; PyTorch's
    # float32 kernels likewise), off the exact mean by up to half an ulp of 1000 (3.05e-5).
    # Every xhat = (x - mean) * invstd then carries an absolute error e = max over sets of
    # that rounding times invstd, computed from the data (~1e-4); y, dx and gamma's grad are
    # functions of xhat with O(1) factors, so they get 1e-5 + 4 e. beta's grad and the running
    # statistics do not depend on xhat and keep 1e-5.
    big = [
        ("GroupNorm(2, 6)", gn(6, 2), (4, 6, 5, 5), (2, 3, 4), lambda x: x.reshape(4, 2, 75)),
        ("GroupNorm(6, 6)", gn(6, 6), (4, 6, 5, 5), (2, 3), None),
        ("LayerNorm([3, 5, 5])", ln([3, 5, 5]), (4, 3, 5, 5), (1, 2, 3), None),
        ("LayerNorm([20])", ln([20]), (16, 20), (1,), None),
        ("InstanceNorm2d tracking", inorm(2, 3, track_running_stats=True, affine=True),
         (4, 3, 6, 6), (2, 3), None),
        ("InstanceNorm1d", inorm(1, 4, affine=True), (4, 4, 30), (2,), None),
    ]
    for name, layers, shape, axes, view in big:
        xs, dys = inputs(rng, shape, 3, shift=1000.0, scale=0.25)
        if view is not None:  # GroupNorm sets span channels: measure on the (N, G, D) view
            e = max(xhat_error(view(x), (2,)) for x in xs)
        else:
            e = max(xhat_error(x, axes) for x in xs)

        def tol(what, e=e):
            return TOL if ("running" in what or "bias" in what) else TOL + 4 * e
        run_module_case(args, chk, f"{name} mean 1000 (xhat error {e:.1e})", layers, xs, dys,
                        train=True, tol=tol, prepare=random_affine)

    # ------------------------------------------------------------ training
    # The three layers inside a small network trained with SGD (momentum 0.9) by the runner's
    # "train" mode (normnet::train_step: loss, backward, optimizer step) and by torch in float64
    # from the same start: the loss of every step, then every gradient, parameter and running
    # statistic after each step. Smooth activations (ELU), no pooling: no decision can flip, so
    # the runs differ only by float32 rounding carried through the steps (measured <= 3e-6 after
    # 6 steps, the worst in a conv bias's gradient); tolerance 2e-5. A layer left out of the
    # optimizer, a parameter missed by zero_grad, or eval-mode statistics in training would be
    # off by 1e-2 or more.
    train_net_case(args, chk, rng)

    # ------------------------------------------------------------ empty batch
    # N = 0: an empty output and empty input gradient, zero parameter gradients, in both.
    # (torch's InstanceNorm with affine or running statistics fails on N = 0 with an
    # IndexError; normnet passes the empty batch through and leaves the statistics alone,
    # tested in norm_module_test.)
    for name, layers, shape in [("GroupNorm(2, 4)", gn(4, 2), (0, 4, 3, 3)),
                                ("LayerNorm([4, 3, 3])", ln([4, 3, 3]), (0, 4, 3, 3)),
                                ("InstanceNorm2d", inorm(2, 4), (0, 4, 3, 3))]:
        chk.begin(f"{name} empty batch {shape}")
        net = torch_model({"layers": layers}).double()
        with torch.no_grad():
            random_affine(net)
        x = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
        y = net(x)
        y.backward(torch.zeros_like(y))
        per_sample = int(np.prod(shape[1:]))
        spec = {"name": "parity", "input": list(shape[1:]), "classes": per_sample,
                "layers": layers + [{"type": "Flatten", "name": "_out"}]}
        tensors = {f"state.{k}": v for k, v in state_numpy(net).items()}
        tensors.update({"x.0": np.zeros(shape, np.float32),
                        "dy.0": np.zeros((0, per_sample), np.float32)})
        out = run_runner(args, f"empty {name}", {"mode": "module", "model": spec, "train": True,
                                                 "steps": 1}, tensors)
        chk.close("y", out["y.0"].reshape(shape), y, TOL)
        chk.close("dx", out["dx.0"], x.grad, TOL)
        for k, p in net.named_parameters():
            chk.close(f"grad {k}", out[f"grad.0.{k}"], p.grad, TOL)

    # ------------------------------------------------------------ refusals
    chk.begin("refusals")
    for dims, shape, kw, train in [(2, (2, 3, 1, 1), {}, True), (2, (2, 3, 1, 1), {}, False),
                                   (1, (3, 2, 1), {"affine": True}, True),
                                   (2, (2, 3, 1, 1), {"track_running_stats": True}, True)]:
        what = f"InstanceNorm{dims}d{shape} {kw} {'train' if train else 'eval'}"
        layers = inorm(dims, shape[1], **kw)
        xs, dys = inputs(rng, shape, 1)
        try:
            torch_model({"layers": layers}).train(train)(torch.tensor(xs[0]))
            chk.fail(f"{what}: torch accepted the batch (test assumption broken)")
        except ValueError as e:
            chk.expect("more than 1 spatial element" in str(e), f"{what}: torch said {e}")
        spec = {"name": "parity", "input": list(shape[1:]), "classes": int(np.prod(shape[1:])),
                "layers": layers + [{"type": "Flatten", "name": "_out"}]}
        state = state_numpy(torch_model({"layers": layers}))
        tensors = {f"state.{k}": v for k, v in state.items()}
        tensors.update({"x.0": xs[0], "dy.0": dys[0].reshape(shape[0], -1)})
        try:
            run_runner(args, f"refusal {what}", {"mode": "module", "model": spec, "train": train,
                                                 "steps": 1}, tensors)
            chk.fail(f"{what}: normnet accepted one spatial element")
        except RunnerError as e:
            if chk.expect("more than 1 spatial element" in str(e),
                          f"{what}: normnet failed without the expected message: {e}"):
                print(f"  {what}: refused by both")
    # With running statistics in eval, one spatial element is fine in both.
    xs, dys = inputs(rng, (2, 3, 1, 1), 2)
    run_module_case(args, chk, "InstanceNorm2d(2, 3, 1, 1) tracking, eval, one spatial element",
                    inorm(2, 3, track_running_stats=True, affine=True), xs, dys, train=False,
                    tol=TOL, prepare=random_stats)
    # momentum None: torch's InstanceNorm fails at forward, normnet refuses the model file.
    chk.begin("momentum None")
    layers = inorm(2, 3, track_running_stats=True, momentum=None)
    try:
        torch_model({"layers": layers}).train()(torch.zeros(2, 3, 2, 2))
        chk.fail("torch accepted momentum=None (test assumption broken)")
    except TypeError:
        pass
    spec = {"name": "parity", "input": [3, 2, 2], "classes": 12,
            "layers": layers + [{"type": "Flatten", "name": "_out"}]}
    try:
        run_runner(args, "momentum None",
                   {"mode": "module", "model": spec, "train": True, "steps": 1},
                   {"x.0": np.zeros((2, 3, 2, 2), np.float32)})
        chk.fail("normnet accepted InstanceNorm momentum=None")
    except RunnerError as e:
        if chk.expect("'momentum' must be a number" in str(e), f"normnet said: {e}"):
            print("  momentum None: refused by both")
    chk.finish()


if __name__ == "__main__":
    main()
