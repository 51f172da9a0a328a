"""Shared helpers of the PyTorch-parity scripts (tests/torch/test_*.py).

    args = parse_args()                       # --runner --normnet --models --workdir (created)
    net = torch_model(spec)                   # nn.Sequential equivalent of a normnet model JSON
    out = run_runner(args, "case", op, tensors)   # parity_runner, tensors in and out (numpy)
    chk = Checker("batchnorm"); chk.close("y", got, want, tol); chk.finish()

Errors are measured per tensor as max|got - want| / max|want| (the absolute error where want is
all zeros): a relative error of the tensor as a whole, not of each element, so elements that
cancel to almost zero (BatchNorm gradients, outputs near 0) do not blow it up.
"""

import argparse
import copy
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st  # noqa: E402


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--runner", required=True)
    p.add_argument("--normnet", required=True)
    p.add_argument("--models", required=True)
    p.add_argument("--workdir", required=True)
    args, _ = p.parse_known_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch.set_num_threads(1)
    return args


# ---------------------------------------------------------------- model descriptions -> torch
# The torch forms of normnet's layers live in tools/normnet_torch.py (tools/from_torch.py uses
# them too): torch_model(spec), torch_layer(spec), GlobalAvgPool, Reshape, Residual, Concat.

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from normnet_torch import (Concat, GlobalAvgPool, Reshape, Residual, torch_layer,  # noqa: E402,F401
                           torch_model)


def module_spec(layers, input_shape):
    """A model description around `layers` for the runner's "module" mode: per-sample `input`,
    and a trailing Flatten ("_out") when the layers do not end in (N, K), classes = K."""
    net = copy.deepcopy(torch_model({"layers": layers})).eval()
    with torch.no_grad():
        out = net(torch.zeros((2,) + tuple(input_shape)))
    layers = list(layers)
    if out.dim() != 2:
        layers.append({"type": "Flatten", "name": "_out"})
    return {"name": "parity", "input": list(input_shape), "classes": int(np.prod(out.shape[1:])),
            "layers": layers}


def state_numpy(module):
    """The module's state_dict as numpy: float tensors as float32, num_batches_tracked int64."""
    out = {}
    for k, v in module.state_dict().items():
        v = v.detach().cpu()
        out[k] = v.numpy().astype(np.float32 if v.is_floating_point() else np.int64)
    return out


# ---------------------------------------------------------------- the runner

class RunnerError(Exception):
    pass


def run_runner(args, case, op, tensors):
    """Runs parity_runner on `tensors` (name -> array) with metadata op; returns its tensors.
    Raises RunnerError with the runner's stderr when it exits non-zero."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in case)
    req = os.path.join(args.workdir, f"{safe}.request.safetensors")
    resp = os.path.join(args.workdir, f"{safe}.response.safetensors")
    if os.path.exists(resp):
        os.remove(resp)
    st.write_safetensors(req, tensors, {"op": json.dumps(op)})
    r = subprocess.run([args.runner, req, resp], capture_output=True, text=True)
    if r.returncode != 0:
        raise RunnerError(f"parity_runner exited {r.returncode} on '{case}': {r.stderr.strip()}")
    out, _ = st.read_safetensors(resp)
    return out


# ---------------------------------------------------------------- comparisons

def to_numpy(v):
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def rel_err(got, want):
    """max|got - want| / max|want| in float64 (absolute when want is all zeros)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if want.size == 0:
        return 0.0
    diff = float(np.max(np.abs(got - want)))
    scale = float(np.max(np.abs(want)))
    return diff / scale if scale > 0 else diff


class Checker:
    """Collects comparisons; finish() prints a summary and exits 1 if any failed."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.count = 0
        self.max_err = 0.0
        self.max_where = ""
        self.case = ""
        self._case_max = (0.0, "")
        self._case_count = 0

    def begin(self, case):
        self.end()
        self.case = case
        self._case_max = (0.0, "")
        self._case_count = 0

    def end(self):
        if self.case and self._case_count:
            e, where = self._case_max
            print(f"  {self.case}: {self._case_count} tensors, max rel err {e:.2e} ({where})")
        self.case = ""
        self._case_count = 0

    def fail(self, msg):
        self.failures.append(f"{self.case}: {msg}" if self.case else msg)
        print(f"  FAIL {self.failures[-1]}")

    def expect(self, ok, msg):
        if not ok:
            self.fail(msg)
        return ok

    def close(self, what, got, want, tol):
        got, want = to_numpy(got), to_numpy(want)
        self.count += 1
        self._case_count += 1
        if got.shape != want.shape:
            self.fail(f"{what}: shape {got.shape}, expected {want.shape}")
            return False
        if np.issubdtype(want.dtype, np.integer):
            if not np.array_equal(got, want):
                self.fail(f"{what}: {got.ravel()[:8]} != expected {want.ravel()[:8]}")
                return False
            return True
        if not np.all(np.isfinite(got)):
            self.fail(f"{what}: non-finite values")
            return False
        e = rel_err(got, want)
        if e > self._case_max[0] or not self._case_max[1]:
            self._case_max = (e, what)
        if e > self.max_err or not self.max_where:
            self.max_err, self.max_where = e, f"{self.case}: {what}"
        if not (e <= tol):
            self.fail(f"{what}: max rel err {e:.3e} > tolerance {tol:.1e} "
                      f"(max|want| {np.max(np.abs(want)):.4g})")
            return False
        return True

    def finish(self):
        self.end()
        print(f"{self.name}: {self.count} tensor comparisons, max relative error "
              f"{self.max_err:.3e} ({self.max_where})")
        if self.failures:
            print(f"{self.name}: FAILED, {len(self.failures)} mismatches:")
            for f in self.failures:
                print(f"  {f}")
            sys.exit(1)
        print(f"{self.name}: PASSED")
        sys.exit(0)


# ---------------------------------------------------------------- module runs

def run_module_case(args, chk, case, layers, xs, dys=None, train=True, tol=1e-5, prepare=None,
                    ref_dtype=torch.float64, seed=0):
    """Runs `layers` for len(xs) steps (zero_grad, forward, backward with dys[i] if given) in
    normnet and in torch (in ref_dtype from the same float32 state) and compares after every
    step: output y, input grad dx, every parameter's grad, every parameter and buffer.
    prepare(net) may set parameters and buffers of the float32 torch model first. tol is a
    number or a function of the compared tensor's label ("step 0 grad bn.weight")."""
    tol_of = tol if callable(tol) else (lambda what: tol)
    chk.begin(case)
    torch.manual_seed(seed)
    net = torch_model({"layers": layers})
    if prepare:
        with torch.no_grad():
            prepare(net)
    spec = module_spec(layers, xs[0].shape[1:])
    state = state_numpy(net)
    tensors = {f"state.{k}": v for k, v in state.items()}
    for i, x in enumerate(xs):
        tensors[f"x.{i}"] = np.asarray(x, dtype=np.float32)
    ref = copy.deepcopy(net).to(ref_dtype)
    ref.train(train)
    want = []
    for i, x in enumerate(xs):
        for p in ref.parameters():
            p.grad = None
        xt = torch.tensor(np.asarray(x, dtype=np.float32), dtype=ref_dtype, requires_grad=True)
        y = ref(xt)
        step = {"y": y.detach().clone()}
        if dys is not None:
            dy = np.asarray(dys[i], dtype=np.float32)
            tensors[f"dy.{i}"] = dy.reshape(dy.shape[0], int(np.prod(dy.shape[1:]))) if y.dim() != 2 else dy
            y.backward(torch.tensor(dy, dtype=ref_dtype))
            step["dx"] = xt.grad.clone()
            step["grad"] = {k: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
                            for k, p in ref.named_parameters()}
        step["state"] = {k: v.clone() for k, v in ref.state_dict().items()}
        want.append(step)
    op = {"mode": "module", "model": spec, "train": train, "steps": len(xs)}
    out = run_runner(args, case, op, tensors)
    for i, w in enumerate(want):
        def close(what, got, want):
            chk.close(what, got, want, tol_of(what))
        close(f"step {i} y", out[f"y.{i}"].reshape(w["y"].shape), w["y"])
        if "dx" in w:
            close(f"step {i} dx", out[f"dx.{i}"], w["dx"])
            for k, g in w["grad"].items():
                close(f"step {i} grad {k}", out[f"grad.{i}.{k}"], g)
        for k, v in w["state"].items():
            close(f"step {i} {k}", out[f"state.{i}.{k}"], v)
    return out, want
