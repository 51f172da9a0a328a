"""Layers and the loss: normnet against torch.nn, outputs and gradients.

Conv2d (stride, padding, dilation, groups, depthwise, bias off, non-square), Conv1d, Linear,
MaxPool2d/1d (padding, dilation, ceil_mode), AvgPool2d (count_include_pad on and off, ceil_mode),
ReLU / LeakyReLU / ELU, GlobalAvgPool, Reshape, a residual block, and CrossEntropyLoss with
label_smoothing 0, 0.1 and 0.3. Each module case runs two steps (zero_grad, forward, backward)
through parity_runner and through torch (float64, from the same float32 weights and inputs) and
compares the output, the input grad and every parameter grad.

Tolerance 1e-5 of max|want| per tensor: normnet computes in float32 against a float64
reference. A convolution/linear output or weight gradient is a sum of K products (K up to ~300
here); float32 accumulation gives errors of ~sqrt(K) * 6e-8 relative to the size of the terms,
i.e. ~1e-6 of the largest output; 1e-5 keeps a 10x margin, while any indexing mistake (a wrong
padding offset, group, dilation or divisor) moves values by a large fraction of their size.
Pooling and activations are exact up to one rounding. Inputs are continuous random values, so
max-pool windows have no ties and no activation input sits exactly on a kink.
"""

import numpy as np
import torch

from common import Checker, parse_args, run_module_case, run_runner, torch_model

TOL = 1e-5


def case(args, chk, rng, name, layers, shape, steps=2, seed=0):
    with torch.no_grad():
        yshape = tuple(torch_model({"layers": layers})(torch.zeros(shape)).shape)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(steps)]
    dys = [rng.standard_normal(yshape).astype(np.float32) for _ in range(steps)]
    run_module_case(args, chk, name, layers, xs, dys, train=True, tol=TOL, seed=seed)


def conv2d(cin, cout, k, **kw):
    return dict({"type": "Conv2d", "name": "conv", "in_channels": cin, "out_channels": cout,
                 "kernel_size": k}, **kw)


def main():
    args = parse_args()
    chk = Checker("layers parity")
    rng = np.random.default_rng(99)

    convs = [
        ("Conv2d 3->4 k3", [conv2d(3, 4, 3)], (2, 3, 9, 9)),
        ("Conv2d stride 2 padding 1", [conv2d(3, 4, 3, stride=2, padding=1)], (2, 3, 9, 8)),
        ("Conv2d dilation 2 padding 2", [conv2d(3, 5, 3, dilation=2, padding=2)], (2, 3, 10, 9)),
        ("Conv2d groups 2", [conv2d(4, 6, 3, groups=2, padding=1)], (2, 4, 7, 7)),
        ("Conv2d depthwise", [conv2d(4, 8, 3, groups=4, stride=2, padding=1)], (2, 4, 9, 9)),
        ("Conv2d bias off", [conv2d(3, 4, 3, bias=False, padding=1)], (2, 3, 6, 6)),
        ("Conv2d non-square", [conv2d(2, 3, [2, 3], stride=[1, 2], padding=[1, 0],
                                      dilation=[2, 1])], (2, 2, 8, 9)),
        ("Conv2d 1x1", [conv2d(6, 3, 1)], (3, 6, 4, 5)),
        ("Conv2d 5x5 32 channels", [conv2d(8, 32, 5, padding=2)], (2, 8, 12, 12)),
        ("Conv1d", [{"type": "Conv1d", "name": "conv", "in_channels": 3, "out_channels": 5,
                     "kernel_size": 3}], (2, 3, 12)),
        ("Conv1d stride 2 padding 1 dilation 2", [
            {"type": "Conv1d", "name": "conv", "in_channels": 4, "out_channels": 6,
             "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2, "groups": 2}], (3, 4, 15)),
        ("Conv1d bias off", [{"type": "Conv1d", "name": "conv", "in_channels": 2, "out_channels": 3,
                              "kernel_size": 5, "padding": 2, "bias": False}], (2, 2, 11)),
        ("Linear", [{"type": "Linear", "name": "fc", "in_features": 20, "out_features": 7}],
         (5, 20)),
        ("Linear bias off", [{"type": "Linear", "name": "fc", "in_features": 300,
                              "out_features": 10, "bias": False}], (4, 300)),
    ]
    pools = [
        ("MaxPool2d k2", [{"type": "MaxPool2d", "kernel_size": 2}], (2, 3, 8, 8)),
        ("MaxPool2d k3 s2 p1", [{"type": "MaxPool2d", "kernel_size": 3, "stride": 2, "padding": 1}],
         (2, 3, 9, 8)),
        ("MaxPool2d k2 ceil_mode", [{"type": "MaxPool2d", "kernel_size": 2, "ceil_mode": True}],
         (2, 2, 7, 9)),
        ("MaxPool2d k3 s2 p1 ceil_mode", [{"type": "MaxPool2d", "kernel_size": 3, "stride": 2,
                                          "padding": 1, "ceil_mode": True}], (2, 2, 8, 10)),
        ("MaxPool2d dilation 2", [{"type": "MaxPool2d", "kernel_size": 2, "stride": 1,
                                   "dilation": 2}], (2, 2, 7, 7)),
        ("MaxPool2d overlapping k3 s1", [{"type": "MaxPool2d", "kernel_size": 3, "stride": 1}],
         (2, 2, 6, 6)),
        ("MaxPool1d k3 s2 p1", [{"type": "MaxPool1d", "kernel_size": 3, "stride": 2, "padding": 1}],
         (2, 3, 11)),
        ("MaxPool1d k2 ceil_mode", [{"type": "MaxPool1d", "kernel_size": 2, "ceil_mode": True}],
         (2, 3, 9)),
        ("AvgPool2d k2", [{"type": "AvgPool2d", "kernel_size": 2}], (2, 3, 8, 8)),
        ("AvgPool2d k3 s2 p1 count_include_pad", [
            {"type": "AvgPool2d", "kernel_size": 3, "stride": 2, "padding": 1}], (2, 2, 9, 8)),
        ("AvgPool2d k3 s2 p1 no count_include_pad", [
            {"type": "AvgPool2d", "kernel_size": 3, "stride": 2, "padding": 1,
             "count_include_pad": False}], (2, 2, 9, 8)),
        ("AvgPool2d ceil_mode count_include_pad", [
            {"type": "AvgPool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}],
         (2, 2, 8, 10)),
        ("AvgPool2d ceil_mode no count_include_pad", [
            {"type": "AvgPool2d", "kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True,
             "count_include_pad": False}], (2, 2, 8, 10)),
        ("AvgPool2d k2 ceil_mode no padding", [
            {"type": "AvgPool2d", "kernel_size": 2, "ceil_mode": True}], (2, 2, 7, 7)),
    ]
    acts = [
        ("ReLU", [{"type": "ReLU"}], (4, 3, 5, 5)),
        ("LeakyReLU 0.01", [{"type": "LeakyReLU"}], (4, 3, 5, 5)),
        ("LeakyReLU 0.2", [{"type": "LeakyReLU", "negative_slope": 0.2}], (4, 30)),
        ("ELU", [{"type": "ELU"}], (4, 3, 5, 5)),
        ("ELU alpha 0.7", [{"type": "ELU", "alpha": 0.7}], (4, 3, 11)),
    ]
    composites = [
        ("GlobalAvgPool + Linear", [conv2d(3, 6, 3, padding=1), {"type": "GlobalAvgPool"},
                                   {"type": "Linear", "name": "fc", "in_features": 6,
                                    "out_features": 4}], (3, 3, 6, 7)),
        ("Reshape + Conv1d", [{"type": "Reshape", "shape": [4, 12]},
                              {"type": "Conv1d", "name": "c", "in_channels": 4, "out_channels": 2,
                               "kernel_size": 3}, {"type": "Flatten"}], (2, 48)),
        ("Residual block", [
            {"type": "Residual", "name": "block", "activation": "ReLU",
             "body": [conv2d(3, 4, 3, padding=1, stride=2, bias=False) | {"name": "conv1"},
                      {"type": "BatchNorm2d", "name": "bn1", "num_features": 4},
                      {"type": "ELU", "name": "act"},
                      conv2d(4, 4, 3, padding=1, bias=False) | {"name": "conv2"},
                      {"type": "BatchNorm2d", "name": "bn2", "num_features": 4}],
             "shortcut": [conv2d(3, 4, 1, stride=2, bias=False) | {"name": "0"},
                          {"type": "BatchNorm2d", "name": "1", "num_features": 4}]}],
         (4, 3, 8, 8)),
    ]
    for i, (name, layers, shape) in enumerate(convs + pools + acts + composites):
        case(args, chk, rng, name, layers, shape, seed=i)

    # CrossEntropyLoss (mean reduction): loss and d loss / d logits.
    for ls in (0.0, 0.1, 0.3):
        for n, k, scale in ((8, 10, 1.0), (5, 3, 10.0), (64, 100, 3.0)):
            chk.begin(f"CrossEntropyLoss label_smoothing {ls} ({n}, {k}) logits x{scale}")
            logits = (rng.standard_normal((n, k)) * scale).astype(np.float32)
            labels = rng.integers(0, k, size=n).astype(np.int64)
            z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
            loss = torch.nn.CrossEntropyLoss(label_smoothing=ls)(z, torch.tensor(labels))
            loss.backward()
            out = run_runner(args, f"ce_{ls}_{n}_{k}", {"mode": "loss", "label_smoothing": ls},
                             {"logits": logits, "labels": labels})
            chk.close("loss", out["loss"], loss.detach(), TOL)
            chk.close("dlogits", out["dlogits"], z.grad, TOL)
    chk.finish()


if __name__ == "__main__":
    main()
