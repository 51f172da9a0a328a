#!/usr/bin/python3
"""PyTorch model -> normnet checkpoint (docs/pytorch.md).

Writes the module's state_dict as a normnet checkpoint (safetensors, docs/checkpoint-format.md)
with the matching model description in its metadata, so `normnet predict`, `eval`, `export`
and `train --init` take it. Run it with Debian's python3, which has torch:

    /usr/bin/python3 tools/from_torch.py SOURCE --input 1,28,28 -o model.safetensors \\
        [--state-dict weights.pt] [--mean 0.2860 --std 0.3530] [--name NAME] [--model-json FILE]

SOURCE is one of
  - a file written by torch.save(module) (a whole nn.Module; unpickling runs code from the file:
    use it only on files you trust),
  - MODULE:FUNCTION or path/to/file.py:FUNCTION, a function called without arguments that
    returns the nn.Module,
  - a normnet model description (models/resnet20.json, or a zoo name such as resnet20): the
    module is the one tools/normnet_torch.torch_model builds from it, and the description itself
    is stored (with its notes).
--state-dict loads a torch.save(module.state_dict()) file into the module first (strict).
--input defaults to the description's input for a description SOURCE.

From Python:

    import from_torch          # with tools/ on sys.path
    from_torch.save(model, (1, 28, 28), "model.safetensors", mean=0.286, std=0.353)

Errors (an unsupported module, with its path and type; a mismatched state_dict) are printed as
"from_torch: error: ..." with exit status 1.
"""

import argparse
import importlib
import importlib.util
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from normnet_torch import UnsupportedModule, describe, load, save, torch_model  # noqa: E402,F401

MODELS = os.path.join(HERE, "..", "models")


def _zoo_file(source):
    if source.endswith(".json"):
        return source
    path = os.path.join(MODELS, f"{source}.json")
    return path if os.path.isfile(path) else None


def module_from_source(source):
    """(module, description or None) for a SOURCE as the command line takes it."""
    import torch
    zoo = _zoo_file(source)
    if zoo:
        with open(zoo) as f:
            spec = json.load(f)
        return torch_model(spec), spec
    if os.path.isfile(source):
        try:
            obj = torch.load(source, map_location="cpu")
        except Exception as e:
            raise ValueError(f"{source}: torch.load failed: {e}")
        if not isinstance(obj, torch.nn.Module):
            raise ValueError(f"{source}: holds a {type(obj).__name__}, not an nn.Module (for a "
                             "state_dict, give the architecture as SOURCE and the file as --state-dict)")
        return obj, None
    if ":" in source:
        where, func = source.rsplit(":", 1)
        if where.endswith(".py"):
            spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(where))[0], where)
            if spec is None or not os.path.isfile(where):
                raise ValueError(f"{source}: no Python file '{where}'")
            mod = importlib.util.module_from_spec(spec)
            sys.path.insert(0, os.path.dirname(os.path.abspath(where)))
            spec.loader.exec_module(mod)
        else:
            mod = importlib.import_module(where)
        if not hasattr(mod, func):
            raise ValueError(f"{source}: '{where}' has no '{func}'")
        obj = getattr(mod, func)()
        if not isinstance(obj, torch.nn.Module):
            raise ValueError(f"{source}: returned a {type(obj).__name__}, not an nn.Module")
        return obj, None
    raise ValueError(f"{source}: not a file, a zoo model or MODULE:FUNCTION")


def main(argv=None):
    p = argparse.ArgumentParser(description="PyTorch model -> normnet checkpoint",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("source", help="torch.save'd module, MODULE:FUNCTION, FILE.py:FUNCTION, or a model description")
    p.add_argument("-o", "--out", required=True, help="checkpoint to write (.safetensors)")
    p.add_argument("--input", help="per-sample input shape, e.g. 1,28,28")
    p.add_argument("--state-dict", help="torch.save'd state_dict to load (strict) before converting")
    p.add_argument("--mean", type=float, default=0.0, help="input normalization mean (pixels in [0, 1])")
    p.add_argument("--std", type=float, default=1.0, help="input normalization std")
    p.add_argument("--name", help="model name in the description")
    p.add_argument("--model-json", help="also write the model description to this file")
    a = p.parse_args(argv)
    try:
        import torch
        module, spec = module_from_source(a.source)
        if a.state_dict:
            sd = torch.load(a.state_dict, map_location="cpu")
            if not isinstance(sd, dict):
                raise ValueError(f"{a.state_dict}: holds a {type(sd).__name__}, not a state_dict")
            module.load_state_dict(sd, strict=True)
        if a.input:
            shape = [int(x) for x in a.input.replace("x", ",").split(",") if x.strip()]
        elif spec is not None:
            shape = spec["input"]
        else:
            raise ValueError("--input is required (the per-sample input shape, e.g. 1,28,28)")
        name = a.name or (spec["name"] if spec else os.path.splitext(os.path.basename(a.out))[0])
        out = save(module, shape, a.out, mean=a.mean, std=a.std, name=name, spec=spec)
        if a.model_json:
            with open(a.model_json, "w") as f:
                json.dump(out, f, indent=1)
                f.write("\n")
        n = sum(1 for _ in module.state_dict())
        print(f"wrote {a.out}: model '{out['name']}', input {out['input']}, {out['classes']} classes, "
              f"{n} tensors")
        for note in out.get("notes", []):
            if note.startswith("state_dict names changed"):
                print(note)
        return 0
    except (UnsupportedModule, ValueError, RuntimeError, ImportError, OSError) as e:
        print(f"from_torch: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
