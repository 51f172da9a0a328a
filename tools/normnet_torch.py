"""normnet <-> PyTorch: the torch.nn module of a normnet model description, the description of a
torch.nn module, and normnet checkpoints written from and read into torch modules.

Runs with Debian's /usr/bin/python3 (torch, numpy); no other package is needed (safetensors
files are read and written by tools/normnet_st.py).

    net = torch_model(spec)                 # description (dict or JSON text) -> nn.Sequential
    spec, renames = describe(module, input_shape)   # torch module -> description
    spec = save(module, input_shape, path, mean=0.0, std=1.0)   # a normnet checkpoint
    net, spec, norm = load(path)            # checkpoint -> torch module (strict), eval mode

Translation rules (docs/pytorch.md): layer types and argument names are torch.nn's, so most
layers map one to one. Containers: nn.Sequential (nested ones are flattened, their names joined
with "_": "features.0.weight" becomes "features_0.weight", reported in `renames`), and the
classes below, which are the torch form of normnet's Residual, Concat, GlobalAvgPool and
Reshape. Anything else raises UnsupportedModule naming the module's path and type.
"""

import collections
import copy
import json
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import normnet_st  # noqa: E402

FORMAT = "1"


# ---------------------------------------------------------------- torch forms of normnet layers

class GlobalAvgPool(nn.Module):
    """(N, C, ...) -> (N, C): mean over the spatial positions; no parameters."""

    def forward(self, x):
        return x.flatten(2).mean(2)


class Reshape(nn.Module):
    """(N, ...) -> (N, *shape)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class Residual(nn.Module):
    """body(x) + shortcut(x), then an activation; body layers registered directly on the block."""

    def __init__(self, body, shortcut, shortcut_name, post):
        super().__init__()
        self._body = []
        for name, m in body.items():
            self.add_module(name, m)
            self._body.append(name)
        self._shortcut = shortcut_name if shortcut is not None and len(shortcut) else None
        if self._shortcut:
            self.add_module(shortcut_name, shortcut)
        self.post = post

    def forward(self, x):
        y = x
        for name in self._body:
            y = getattr(self, name)(y)
        y = y + (getattr(self, self._shortcut)(x) if self._shortcut else x)
        return self.post(y) if self.post is not None else y


class Concat(nn.Module):
    """torch.cat([branch(x) for branch in branches], 1); an empty branch is the identity."""

    def __init__(self, branches):
        super().__init__()
        self._branches = []
        for name, seq in branches:
            self.add_module(name, seq)
            self._branches.append(name)

    def forward(self, x):
        return torch.cat([getattr(self, n)(x) for n in self._branches], 1)


class FrozenBatchNorm2d(nn.Module):
    """torchvision's FrozenBatchNorm2d: BatchNorm2d with fixed statistics and affine, all
    buffers (weight, bias, running_mean, running_var)."""

    def __init__(self, num_features, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x):
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)


# ---------------------------------------------------------------- description -> torch

_SAME_ARGS = ("Conv1d", "Conv2d", "Linear", "BatchNorm1d", "BatchNorm2d", "ReLU", "LeakyReLU", "ELU",
              "MaxPool1d", "MaxPool2d", "AvgPool2d", "Dropout", "Identity", "GroupNorm",
              "LayerNorm", "InstanceNorm1d", "InstanceNorm2d")


def _arg(v):
    return tuple(v) if isinstance(v, list) else v


def _layers(specs):
    out = collections.OrderedDict()
    for i, spec in enumerate(specs):
        out[spec.get("name", str(i))] = torch_layer(spec)
    return out


def torch_layer(spec):
    """The torch.nn module for one layer of a normnet model description."""
    t = spec["type"]
    kw = {k: _arg(v) for k, v in spec.items() if k not in ("type", "name", "comment", "inplace")}
    if t in _SAME_ARGS:
        return getattr(nn, t)(**kw)
    if t == "Flatten":
        return nn.Flatten()
    if t == "GlobalAvgPool":
        return GlobalAvgPool()
    if t == "Reshape":
        return Reshape(spec["shape"])
    if t == "FrozenBatchNorm2d":
        return FrozenBatchNorm2d(**kw)
    if t == "Concat":
        return Concat([(b.get("name", str(i)), nn.Sequential(_layers(b["layers"])))
                       for i, b in enumerate(spec["branches"])])
    if t == "Residual":
        short = spec.get("shortcut")
        act = spec.get("activation")
        post = {None: None, "ReLU": nn.ReLU(), "ELU": nn.ELU()}[act]
        return Residual(_layers(spec["body"]), nn.Sequential(_layers(short)) if short else None,
                        spec.get("shortcut_name", "shortcut"), post)
    raise ValueError(f"torch_model: no torch equivalent for layer type '{t}'")


def torch_model(spec):
    """nn.Sequential(OrderedDict) with the layer names of a model description (dict or JSON)."""
    if isinstance(spec, str):
        spec = json.loads(spec)
    return nn.Sequential(_layers(spec["layers"]))


# ---------------------------------------------------------------- torch -> description

class UnsupportedModule(ValueError):
    """A module describe() cannot translate; the message names its path and type."""


def _type_name(m):
    t = type(m)
    return t.__name__ if t.__module__.startswith("torch.nn") else f"{t.__module__}.{t.__qualname__}"


def _prefix(path):
    return f"{path}." if path else ""


def _is_plain_sequential(m):
    return isinstance(m, nn.Sequential) and type(m).forward is nn.Sequential.forward


def _single(v, what, path):
    """An int from an int or a 1-tuple (1-d layers)."""
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise UnsupportedModule(f"{path}: {what} {v} is not one size")
        return int(v[0])
    return int(v)


def _pair(v):
    """An int (both sizes equal) or [h, w]."""
    if isinstance(v, (tuple, list)):
        v = [int(x) for x in v]
        return v[0] if len(v) == 2 and v[0] == v[1] else v
    return int(v)


_CHANNEL_DROPOUTS = tuple(getattr(nn, n) for n in ("Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
                                                  "FeatureAlphaDropout") if hasattr(nn, n))


class _Describer:
    def __init__(self, shapes):
        self.shapes = shapes  # module path -> (input shape, output shape), batch included
        self.renames = {}     # torch state_dict key -> normnet key (only where they differ)
        self.keys = {}        # torch key -> normnet key, every tensor

    def fail(self, path, m, why):
        raise UnsupportedModule(f"module '{path or '<root>'}' ({_type_name(m)}): {why}")

    def state(self, m, torch_path, normnet_path):
        for k in m.state_dict(keep_vars=True):
            if "." in k:  # only the module's own tensors; children are visited on their own
                continue
            tk = f"{_prefix(torch_path)}{k}"
            nk = f"{normnet_path}.{k}"
            self.keys[tk] = nk
            if tk != nk:
                self.renames[tk] = nk

    def sequence(self, children, torch_prefix, normnet_prefix, name_prefix="", out=None):
        """Layer specs of (name, module) children in order; nested plain Sequentials are
        flattened, their names joined with "_"."""
        out = [] if out is None else out
        children = list(children)
        for i, (name, m) in enumerate(children):
            tpath = f"{torch_prefix}{name}"
            lname = f"{name_prefix}{name}"
            if _is_plain_sequential(m):
                self.sequence(m.named_children(), _prefix(tpath), normnet_prefix, f"{lname}_", out)
                continue
            nxt = children[i + 1][1] if i + 1 < len(children) else None
            for spec in self.layer(m, tpath, lname, normnet_prefix, nxt):
                out.append(spec)
        names = [s["name"] for s in out]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise UnsupportedModule(f"module '{torch_prefix.rstrip('.') or '<root>'}': flattening "
                                    f"nested Sequentials gives duplicate layer names {sorted(dup)}")
        return out

    def layer(self, m, tpath, lname, normnet_prefix, nxt):
        """[spec, ...] for module m at torch path tpath, named lname in its normnet sequence."""
        npath = f"{normnet_prefix}{lname}"
        spec = self.leaf(m, tpath, nxt)
        if isinstance(spec, list):  # AdaptiveAvgPool: GlobalAvgPool (+ Reshape to keep dims)
            spec[0]["name"] = lname
            if len(spec) > 1:
                spec[1]["name"] = f"{lname}_keepdim"
            return spec
        spec = dict({"type": spec.pop("type"), "name": lname}, **spec)
        if spec["type"] == "Residual":
            body = [(n, c) for n, c in m.named_children() if n in m._body]
            spec["body"] = self.sequence(body, _prefix(tpath), f"{npath}.")
            if m._shortcut:
                sc = getattr(m, m._shortcut)
                spath = f"{_prefix(tpath)}{m._shortcut}"
                if not _is_plain_sequential(sc):
                    self.fail(spath, sc, "a Residual shortcut must be an nn.Sequential")
                spec["shortcut"] = self.sequence(sc.named_children(), f"{spath}.", f"{npath}.{m._shortcut}.")
                spec["shortcut_name"] = m._shortcut
            else:
                spec["shortcut"] = None
            if m.post is None:
                spec["activation"] = None
            elif type(m.post) in (nn.ReLU, nn.ELU) and (type(m.post) is nn.ReLU or m.post.alpha == 1.0):
                spec["activation"] = type(m.post).__name__
            else:
                self.fail(f"{_prefix(tpath)}post", m.post, "a Residual activation must be ReLU, ELU(1.0) or None")
        elif spec["type"] == "Concat":
            branches = []
            for bname in m._branches:
                b = getattr(m, bname)
                bpath = f"{_prefix(tpath)}{bname}"
                if not _is_plain_sequential(b):
                    self.fail(bpath, b, "a Concat branch must be an nn.Sequential")
                branches.append({"name": bname, "layers": self.sequence(
                    b.named_children(), f"{bpath}.", f"{npath}.{bname}.")})
            spec["branches"] = branches
        else:
            self.state(m, tpath, npath)
        return [spec]

    def shape(self, path, m, which):
        if path not in self.shapes:
            self.fail(path, m, "it did not run in the forward pass (a module a custom forward skips?)")
        return self.shapes[path][which]

    def leaf(self, m, path, nxt):
        """The spec (without name) of one module, or a list for modules that need two layers."""
        t = type(m)
        if t in (nn.Conv1d, nn.Conv2d):
            d = 1 if t is nn.Conv1d else 2
            if m.padding_mode != "zeros":
                self.fail(path, m, f"padding_mode '{m.padding_mode}' (only 'zeros')")
            pad = m.padding
            if isinstance(pad, str):
                if pad == "valid":
                    pad = (0,) * d
                else:  # 'same' (stride 1): symmetric only when every dilation*(k-1) is even
                    tot = [dl * (k - 1) for dl, k in zip(m.dilation, m.kernel_size)]
                    if any(x % 2 for x in tot):
                        self.fail(path, m, "padding='same' with an even kernel pads unevenly")
                    pad = tuple(x // 2 for x in tot)
            conv = (lambda v, w: _single(v, w, path)) if d == 1 else (lambda v, w: _pair(v))
            return {"type": t.__name__, "in_channels": m.in_channels, "out_channels": m.out_channels,
                    "kernel_size": conv(m.kernel_size, "kernel_size"), "stride": conv(m.stride, "stride"),
                    "padding": conv(pad, "padding"), "dilation": conv(m.dilation, "dilation"),
                    "groups": m.groups, "bias": m.bias is not None}
        if t is nn.Linear:
            return {"type": "Linear", "in_features": m.in_features, "out_features": m.out_features,
                    "bias": m.bias is not None}
        if t in (nn.BatchNorm1d, nn.BatchNorm2d):
            return {"type": t.__name__, "num_features": m.num_features, "eps": m.eps,
                    "momentum": m.momentum, "affine": m.affine,
                    "track_running_stats": m.track_running_stats}
        if t in (nn.InstanceNorm1d, nn.InstanceNorm2d):
            if m.momentum is None:
                self.fail(path, m, "momentum=None (PyTorch's InstanceNorm fails on it in training)")
            return {"type": t.__name__, "num_features": m.num_features, "eps": m.eps,
                    "momentum": m.momentum, "affine": m.affine,
                    "track_running_stats": m.track_running_stats}
        if t is nn.GroupNorm:
            return {"type": "GroupNorm", "num_groups": m.num_groups, "num_channels": m.num_channels,
                    "eps": m.eps, "affine": m.affine}
        if t is nn.LayerNorm:
            if getattr(m, "bias", True) is None and m.elementwise_affine:
                self.fail(path, m, "an affine LayerNorm without bias")
            return {"type": "LayerNorm", "normalized_shape": list(m.normalized_shape), "eps": m.eps,
                    "elementwise_affine": m.elementwise_affine}
        if t.__name__ == "FrozenBatchNorm2d" and all(
                hasattr(m, b) for b in ("weight", "bias", "running_mean", "running_var", "eps")):
            return {"type": "FrozenBatchNorm2d", "num_features": int(m.weight.shape[0]), "eps": m.eps}
        if t is nn.ReLU:
            return {"type": "ReLU"}
        if t is nn.LeakyReLU:
            return {"type": "LeakyReLU", "negative_slope": m.negative_slope}
        if t is nn.ELU:
            return {"type": "ELU", "alpha": m.alpha}
        if t in (nn.MaxPool1d, nn.MaxPool2d):
            if m.return_indices:
                self.fail(path, m, "return_indices=True")
            d = 1 if t is nn.MaxPool1d else 2
            f = (lambda v: _single(v, "size", path)) if d == 1 else _pair
            stride = m.stride if m.stride is not None else m.kernel_size
            return {"type": t.__name__, "kernel_size": f(m.kernel_size), "stride": f(stride),
                    "padding": f(m.padding), "dilation": f(m.dilation), "ceil_mode": m.ceil_mode}
        if t is nn.AvgPool2d:
            if m.divisor_override is not None:
                self.fail(path, m, "divisor_override")
            stride = m.stride if m.stride is not None else m.kernel_size
            return {"type": "AvgPool2d", "kernel_size": _pair(m.kernel_size), "stride": _pair(stride),
                    "padding": _pair(m.padding), "ceil_mode": m.ceil_mode,
                    "count_include_pad": m.count_include_pad}
        if t in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d):
            size = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size,)
            if any(s != 1 for s in size):
                self.fail(path, m, f"output_size {m.output_size} (only 1: global average pooling)")
            out = self.shape(path, m, 1)
            specs = [{"type": "GlobalAvgPool"}]
            flat_next = type(nxt) is nn.Flatten and nxt.start_dim == 1 and nxt.end_dim == -1
            if not flat_next:  # torch keeps the pooled dimensions as size 1
                specs.append({"type": "Reshape", "shape": list(out[1:])})
            return specs
        if t is GlobalAvgPool:
            return {"type": "GlobalAvgPool"}
        if t is nn.Flatten:
            if m.start_dim == 1 and m.end_dim == -1:
                return {"type": "Flatten"}
            rank = len(self.shape(path, m, 0))
            if m.start_dim % rank == 0:
                self.fail(path, m, "flattening the batch dimension")
            return {"type": "Reshape", "shape": list(self.shape(path, m, 1)[1:])}
        if t in (nn.Unflatten, Reshape):
            if t is nn.Unflatten and m.dim in (0, -len(self.shape(path, m, 0))):
                self.fail(path, m, "unflattening the batch dimension")
            return {"type": "Reshape", "shape": list(self.shape(path, m, 1)[1:])}
        if t is nn.Dropout:
            return {"type": "Dropout", "p": m.p}
        if t is nn.Identity:
            return {"type": "Identity"}
        if t is Residual:
            return {"type": "Residual"}
        if t is Concat:
            return {"type": "Concat"}
        if isinstance(m, _CHANNEL_DROPOUTS):
            self.fail(path, m, "not supported: it drops whole channels (or is alpha dropout); normnet's "
                      "Dropout drops elements (replace it by nn.Dropout, or nn.Identity for inference)")
        if _is_plain_sequential(m):  # reached only at the top of a Residual/Concat part
            self.fail(path, m, "a nested Sequential here cannot keep its names")
        self.fail(path, m, "not supported (supported: Conv1d/2d, Linear, BatchNorm1d/2d, GroupNorm, "
                  "LayerNorm, InstanceNorm1d/2d, FrozenBatchNorm2d, ReLU, LeakyReLU, ELU, MaxPool1d/2d, "
                  "AvgPool2d, AdaptiveAvgPool1d/2d(1), Flatten, Unflatten, Dropout, Identity, "
                  "Sequential, and normnet_torch's Residual, Concat, GlobalAvgPool, Reshape)")


def _forward_shapes(module, input_shape):
    """{module path: (input shape, output shape)} from one evaluation-mode forward of a copy on
    zeros of batch 2, and the output shape."""
    net = copy.deepcopy(module).cpu().float().eval()
    shapes = {}
    hooks = []
    for path, m in net.named_modules():
        def hook(mod, inp, out, path=path):
            if path not in shapes and isinstance(out, torch.Tensor) and inp and isinstance(inp[0], torch.Tensor):
                shapes[path] = (tuple(inp[0].shape), tuple(out.shape))
        hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = net(torch.zeros((2,) + tuple(input_shape)))
    except Exception as e:
        raise UnsupportedModule(f"the module does not run on input (N, {', '.join(map(str, input_shape))}): {e}")
    finally:
        for h in hooks:
            h.remove()
    return shapes, tuple(out.shape)


def describe(module, input_shape, name="model", description=None):
    """(spec, renames): the normnet model description equivalent to `module` (eval-mode
    forward) for per-sample `input_shape`, and {torch state_dict key: normnet key} for the keys
    that differ (flattened nested Sequentials, a bare top-level layer). Raises
    UnsupportedModule naming the module path and type of anything it cannot translate, and
    when the output is not (N, classes)."""
    input_shape = [int(d) for d in input_shape]
    if not 1 <= len(input_shape) <= 3:
        raise UnsupportedModule(f"input shape {input_shape}: normnet takes 1 to 3 per-sample dimensions")
    shapes, out = _forward_shapes(module, input_shape)
    if len(out) != 2 or out[1] < 2:
        raise UnsupportedModule(f"the module's output is {list(out)} for input {[2] + input_shape}; "
                                "normnet needs (N, classes) with at least 2 classes")
    d = _Describer(shapes)
    if _is_plain_sequential(module):
        layers = d.sequence(module.named_children(), "", "")
    else:  # a bare layer: named "0", its tensors gain the prefix "0."
        layers = d.layer(module, "", "0", "", None)
    state_keys = set(module.state_dict())
    if set(d.keys) != state_keys:
        missed = sorted(state_keys - set(d.keys))
        raise UnsupportedModule(f"state_dict entries not covered by the translation: {missed[:8]}")
    spec = {"name": name,
            "description": description or f"translated from PyTorch {_type_name(module)} by tools/from_torch.py",
            "input": input_shape, "classes": int(out[1]), "layers": layers}
    if d.renames:
        spec["notes"] = ["state_dict names changed (nested Sequentials flattened): " + ", ".join(
            f"{k} -> {v}" for k, v in sorted(d.renames.items()))]
    return spec, d.keys


# ---------------------------------------------------------------- checkpoints

def _tensor_numpy(name, v):
    v = v.detach().cpu()
    if name.endswith("num_batches_tracked"):
        return np.asarray(v.numpy(), dtype=np.int64).reshape(())
    if not v.is_floating_point():
        raise ValueError(f"state_dict entry '{name}' has dtype {v.dtype}; normnet stores float32")
    return v.numpy().astype(np.float32)


def checkpoint_tensors(module, keys):
    """The module's state_dict under normnet names (keys: torch key -> normnet key), float32
    tensors and int64 scalars num_batches_tracked."""
    return {keys[k]: _tensor_numpy(k, v) for k, v in module.state_dict().items()}


def save(module, input_shape, path, mean=0.0, std=1.0, name=None, spec=None, metadata=None):
    """Writes `module` as a normnet checkpoint at `path` and returns its model description.

    input_shape: per-sample shape, e.g. (1, 28, 28). mean, std: the input normalization normnet
    applies to pixels in [0, 1] ((pixel/255 - mean) / std), recorded in the checkpoint.
    spec: keep this description (e.g. the zoo JSON the module was built from) instead of the
    generated one; it must give the same state_dict names. metadata: extra string entries."""
    if not (std > 0 and np.isfinite(std) and np.isfinite(mean)):
        raise ValueError(f"normalization mean {mean}, std {std}: std must be positive and finite")
    generated, keys = describe(module, input_shape, name=name or "model")
    if spec is None:
        spec = generated
    else:
        spec = json.loads(spec) if isinstance(spec, str) else copy.deepcopy(spec)
        want = set(torch_model(spec).state_dict())
        if want != set(keys.values()) or list(spec["input"]) != list(generated["input"]):
            raise ValueError("the given description does not match the module: state_dict names "
                             f"{sorted(want ^ set(keys.values()))[:8]} differ")
        if name:
            spec["name"] = name
    meta = dict(metadata or {})
    meta.update({"normnet.format": FORMAT, "normnet.model": json.dumps(spec),
                 "normnet.normalization": json.dumps({"mean": float(mean), "std": float(std)})})
    normnet_st.write_safetensors(path, checkpoint_tensors(module, keys), meta)
    return spec


def load(path):
    """(module, spec, normalization) from a normnet checkpoint: the torch module built from its
    description with the state loaded by load_state_dict(strict=True), in evaluation mode."""
    tensors, meta = normnet_st.read_safetensors(path)
    for key in ("normnet.format", "normnet.model", "normnet.normalization"):
        if key not in meta:
            raise ValueError(f"{path}: not a normnet checkpoint (no '{key}' metadata)")
    spec = json.loads(meta["normnet.model"])
    net = torch_model(spec)
    net.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)
    return net.eval(), spec, json.loads(meta["normnet.normalization"])
