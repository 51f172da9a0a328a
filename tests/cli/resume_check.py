"""normnet train --resume, --checkpoint-every, divergence and bad labels, end to end (run by
test_resume.sh). Every run uses a small crafted data set (600 + 100 images of 12x12, MNIST
format) and small model files, so the whole script takes seconds.

1. Killed and resumed: a run killed with SIGKILL at a random step (after a random checkpoint)
   and resumed with `--resume DIR` alone ends with model.safetensors and
   train-state.safetensors byte-identical to an uninterrupted run, and the same metrics except
   the wall-clock columns (seconds, images_per_second). Twice: SGD with Nesterov momentum,
   weight decay and a cosine schedule with warm-up; and, killed mid-epoch, a network with
   Dropout trained with Adam, crop-flip augmentation, label smoothing, --clip-grad-norm and a
   step schedule. That run is also extended: 1 epoch, then --resume --epochs 2.
2. Killed while writing: a run with --checkpoint-every 1 is killed the moment a temporary file
   appears in its directory, again and again; after every kill the checkpoint files parse and
   `normnet eval` loads model.safetensors; resuming each time, the run still ends with the same
   bytes as the uninterrupted one, and no temporary file is left. At least one kill must have
   landed between a temporary file's creation and its rename.
3. Flags given with --resume that contradict the stored ones, --epochs shorter (or longer with
   a cosine schedule), other data, a missing or truncated train state, --out elsewhere: an
   error naming the flag or file, and the run's files unchanged.
4. A full disk: --out on a tmpfs big enough for one checkpoint but not for the temporary copy of
   the next: a clear error (ENOSPC, naming the file), exit status 1, the previous checkpoint
   intact and loadable, no temporary file left; after the tmpfs is enlarged, --resume finishes
   the run with the uninterrupted run's bytes. Skipped (with a message) where mount is refused.
5. Divergence: --lr 1e30 stops with an error naming the step and a layer or parameter; the
   checkpoint kept is that of the step before and holds only finite numbers.
6. Labels outside the model's classes, in the training or the test labels file: an error
   naming the file and the index of the first bad label.

Usage: python3 resume_check.py NORMNET_BINARY SOURCE_DIR WORKDIR
"""

import array
import json
import math
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time

BIN, SRC, WORK = (os.path.abspath(a) for a in sys.argv[1:4])
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
os.chdir(WORK)
SEED = int(os.environ.get("NORMNET_TEST_SEED", time.time_ns() % 1000000))
rng = random.Random(SEED)
print(f"random kill points from seed {SEED} (NORMNET_TEST_SEED={SEED} repeats them)")
failures = []


def expect(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


# ------------------------------------------------------------------------------ data, models

def idx(dims, payload):
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)


def write_data(d, seed, n_train=600, n_test=100, train_label_max=9, test_label_max=9, bad=None):
    """A bright 3x3 square placed by the label on noise; a quarter of the labels random."""
    r = random.Random(seed)
    os.makedirs(d, exist_ok=True)
    for prefix, n, top in (("train", n_train, train_label_max), ("t10k", n_test, test_label_max)):
        labels = [r.randrange(top + 1) for _ in range(n)]
        pixels = []
        for y in labels:
            img = [r.randrange(90) for _ in range(144)]
            row, col = (y // 4) * 3 + 1, (y % 4) * 3
            for dr in range(3):
                for dc in range(3):
                    img[(row + dr) * 12 + col + dc] = 150 + r.randrange(106)
            pixels += img
        for i in range(n):
            if r.random() < 0.25:
                labels[i] = r.randrange(top + 1)
        if bad and bad[0] == prefix:
            labels[bad[1]] = bad[2]
        with open(f"{d}/{prefix}-images-idx3-ubyte", "wb") as f:
            f.write(idx([n, 12, 12], pixels))
        with open(f"{d}/{prefix}-labels-idx1-ubyte", "wb") as f:
            f.write(idx([n], labels))


def model_file(name, classes=10, dropout=False):
    layers = [
        {"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 6, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d", "name": "bn1", "num_features": 6},
        {"type": "ReLU", "name": "relu1"},
        {"type": "MaxPool2d", "name": "pool1", "kernel_size": 2},
        {"type": "Flatten", "name": "flatten"},
    ]
    if dropout:
        layers.append({"type": "Dropout", "name": "drop", "p": 0.3})
    layers.append({"type": "Linear", "name": "fc", "in_features": 216, "out_features": classes})
    with open(name, "w") as f:
        json.dump({"name": name[:-5], "input": [1, 12, 12], "classes": classes, "layers": layers}, f)
    return name


def wide_model_file(name):
    """A model whose conv2 (16 -> 16 channels, 3x3, stride 1) runs by Winograd under --conv fast."""
    layers = [
        {"type": "Conv2d", "name": "conv1", "in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"type": "ReLU", "name": "relu1"},
        {"type": "Conv2d", "name": "conv2", "in_channels": 16, "out_channels": 16, "kernel_size": 3, "padding": 1},
        {"type": "BatchNorm2d", "name": "bn2", "num_features": 16},
        {"type": "ReLU", "name": "relu2"},
        {"type": "MaxPool2d", "name": "pool2", "kernel_size": 2},
        {"type": "Flatten", "name": "flatten"},
        {"type": "Linear", "name": "fc", "in_features": 576, "out_features": 10},
    ]
    with open(name, "w") as f:
        json.dump({"name": name[:-5], "input": [1, 12, 12], "classes": 10, "layers": layers}, f)
    return name


write_data("data", 1)
write_data("data-other", 2)
model_file("tiny.json")
wide_model_file("wide.json")
model_file("tiny-dropout.json", dropout=True)
model_file("tiny5.json", classes=5)

# --------------------------------------------------------------------------------- helpers

def read_st(path):
    """(metadata, {name: (dtype, shape, bytes)}) of a safetensors file; raises if malformed."""
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = blob[8 + n:]
    at, tensors = 0, {}
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, e = t["data_offsets"]
        assert b == at and e >= b, f"{path}: offsets of {name}"
        size = {"F32": 4, "I64": 8}[t["dtype"]]
        assert e - b == size * math.prod(t["shape"]), f"{path}: size of {name}"
        tensors[name] = (t["dtype"], t["shape"], data[b:e])
        at = e
    assert at == len(data), f"{path}: data not covered exactly"
    return meta, tensors


def state_of(out):
    """The train state's position: dict with epoch, step, step_in_epoch; None if none."""
    try:
        meta, _ = read_st(f"{out}/train-state.safetensors")
        return json.loads(meta["normnet.train_state"])
    except (OSError, ValueError, KeyError, AssertionError, struct.error):
        return None


def all_finite(path):
    _, tensors = read_st(path)
    for name, (dtype, shape, raw) in tensors.items():
        if dtype == "F32" and not all(math.isfinite(v) for v in array.array("f", raw)):
            return False
    return True


def run(args, **kw):
    return subprocess.run([BIN] + args, capture_output=True, text=True, **kw)


def temporaries(out):
    return [n for n in os.listdir(out) if ".tmp." in n] if os.path.isdir(out) else []


WALL = {"seconds", "images_per_second"}


def metrics_rows(out):
    with open(f"{out}/metrics.csv") as f:
        lines = f.read().splitlines()
    head = lines[0].split(",")
    rows = [dict(zip(head, line.split(","))) for line in lines[1:]]
    with open(f"{out}/metrics.jsonl") as f:
        objs = [json.loads(line) for line in f]
    strip = lambda d: {k: v for k, v in d.items() if k not in WALL}
    return head, [strip(r) for r in rows], [strip(o) for o in objs]


def same_run(ref, out, what):
    ok = True
    for name in ("model.safetensors", "train-state.safetensors"):
        a, b = open(f"{ref}/{name}", "rb").read(), open(f"{out}/{name}", "rb").read()
        ok &= expect(a == b, f"{what}: {name} byte-identical to the uninterrupted run's")
    ok &= expect(metrics_rows(ref) == metrics_rows(out),
                 f"{what}: metrics.csv and metrics.jsonl equal but for seconds, images_per_second")
    ok &= expect(not temporaries(out), f"{what}: no temporary file left")
    return ok


def kill_after(args, out, min_step, mid_epoch=False):
    """Starts a run, waits for a checkpoint at or after min_step (mid-epoch if asked), lets it run
    on for a random few milliseconds and kills it with SIGKILL. Returns the train state then."""
    # 20 ms per step (NORMNET_STEP_DELAY_MS): the tiny model would otherwise finish all its steps
    # before this loop sees the checkpoint, and the kill would come too late.
    env = dict(os.environ, NORMNET_STEP_DELAY_MS="20")
    p = subprocess.Popen([BIN] + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    while p.poll() is None:
        s = state_of(out)
        if s and s["step"] >= min_step and (not mid_epoch or s["step_in_epoch"] > 0):
            time.sleep(rng.uniform(0, 0.02))
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.0005)
    rc = p.wait()
    expect(rc == -signal.SIGKILL, f"run to {out} killed by SIGKILL after step {min_step} (status {rc})")
    return state_of(out)


SGD = ["--model", "tiny.json", "--data", "data", "--epochs", "2", "--batch-size", "32", "--lr", "0.05",
       "--nesterov", "--weight-decay", "5e-4", "--schedule", "cosine", "--warmup-steps", "5",
       "--checkpoint-every", "4", "--quiet"]
ADAM = ["--model", "tiny-dropout.json", "--data", "data", "--epochs", "2", "--batch-size", "32",
        "--optimizer", "adam", "--lr", "0.005", "--augment", "crop-flip", "--schedule", "step",
        "--step-size", "1", "--gamma", "0.5", "--label-smoothing", "0.1", "--clip-grad-norm", "1.0",
        "--checkpoint-every", "3", "--quiet"]
def with_flags(args, **flags):
    """args with --name value replaced (or added) for each name=value (underscores as dashes)."""
    out = list(args)
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if flag in out:
            out[out.index(flag) + 1] = str(value)
        else:
            out += [flag, str(value)]
    return out


STEPS = 38  # 600 images in batches of 32: 19 steps per epoch (the last of 24 images), 2 epochs


def train(args, out, what):
    r = run(["train"] + args + ["--out", out])
    expect(r.returncode == 0, f"{what}: exit status 0" + (f" (stderr: {r.stderr.strip()})" if r.returncode else ""))
    return r


def resume(out, what, extra=()):
    r = run(["train", "--resume", out, "--quiet", *extra])
    expect(r.returncode == 0 and "resuming" in r.stdout,
           f"{what}: --resume {out} {' '.join(extra)} exits 0" + (f" (stderr: {r.stderr.strip()})" if r.returncode else ""))
    return r


# ------------------------------------------------------------------- 1. killed and resumed

train(SGD, "ref-sgd", "uninterrupted SGD run")
train(ADAM, "ref-adam", "uninterrupted Adam + Dropout run")

k = rng.randrange(4, STEPS - 4)
s = kill_after(["train"] + SGD + ["--out", "kill-sgd"], "kill-sgd", k)
expect(s is not None and s["step"] >= k, f"SGD: killed with a checkpoint at step {s and s['step']} >= {k}")
resume("kill-sgd", "SGD")
same_run("ref-sgd", "kill-sgd", f"SGD killed after step {k} and resumed")

k = rng.randrange(3, STEPS - 4)
s = kill_after(["train"] + ADAM + ["--out", "kill-adam"], "kill-adam", k, mid_epoch=True)
expect(s is not None and s["step_in_epoch"] > 0,
       f"Adam: killed with a mid-epoch checkpoint (epoch {s and s['epoch']} + {s and s['step_in_epoch']} steps)")
resume("kill-adam", "Adam")
same_run("ref-adam", "kill-adam", f"Adam + Dropout + crop-flip killed mid-epoch after step {k} and resumed")

one_epoch = with_flags(ADAM, epochs=1)
train(one_epoch, "extend-adam", "Adam run of 1 epoch")
resume("extend-adam", "extended", ["--epochs", "2"])
same_run("ref-adam", "extend-adam", "1 epoch, then --resume --epochs 2")

# The global --conv is part of the run: a run trained with --conv exact continues with the
# direct sums when resumed without it (equal to the uninterrupted exact run), and differs from
# the default (Winograd) run, so the flag did reach the convolution.
WIDE = ["--model", "wide.json", "--data", "data", "--epochs", "2", "--batch-size", "32", "--quiet"]
train(WIDE + ["--conv", "exact"], "ref-exact", "uninterrupted --conv exact run")
train(WIDE, "ref-fast", "uninterrupted default (--conv fast) run")
train(with_flags(WIDE, epochs=1) + ["--conv", "exact"], "extend-exact", "--conv exact run of 1 epoch")
resume("extend-exact", "--conv exact extended", ["--epochs", "2"])
same_run("ref-exact", "extend-exact", "--conv exact, 1 epoch, then --resume --epochs 2 without --conv")
expect(open("ref-exact/model.safetensors", "rb").read() != open("ref-fast/model.safetensors", "rb").read(),
       "--conv exact and --conv fast train different weights (Winograd rounds differently)")

# ----------------------------------------------------------------- 2. killed while writing

EVERY = with_flags(SGD, checkpoint_every=1)
train(EVERY, "ref-every", "uninterrupted run with a checkpoint every step")
out, mid_write, finished, kills, stale = "kill-every", 0, False, 0, set()
for attempt in range(12):
    args = ["train", "--resume", out, "--quiet"] if state_of(out) else ["train"] + EVERY + ["--out", out]
    # Kill when the (skip + 1)-th new temporary file appears (not one a killed run left behind),
    # once a checkpoint exists to fall back on.
    skip, seen, writing = rng.randrange(2, 10), 0, False
    p = subprocess.Popen([BIN] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while p.poll() is None:
        now = bool(set(temporaries(out)) - stale) and os.path.exists(f"{out}/train-state.safetensors")
        if now and not writing:
            seen += 1
            if seen > skip:
                p.send_signal(signal.SIGKILL)
                break
        writing = now
    rc = p.wait()
    if rc == 0:
        finished = True
        break
    kills += 1
    expect(rc == -signal.SIGKILL, f"kill {kills}: killed by SIGKILL (status {rc}, {p.stderr.read().strip()})")
    left = sorted(set(temporaries(out)) - stale)
    stale |= set(left)
    mid_write += bool(left)
    # train-state.safetensors is written first: killed right after the first one, the run has no
    # model.safetensors yet (the resumed run writes it).
    first = state_of(out) is not None and state_of(out)["step"] == 1
    try:
        read_st(f"{out}/train-state.safetensors")
        if not first or os.path.exists(f"{out}/model.safetensors"):
            read_st(f"{out}/model.safetensors")
        problem = ""
    except Exception as e:  # noqa: BLE001
        problem = f" ({type(e).__name__}: {e})"
    expect(not problem, f"kill {kills} ({'during a write: ' + ', '.join(left) if left else 'between writes'}): "
           f"train-state.safetensors and model.safetensors parse{problem}")
    if kills <= 2 and os.path.exists(f"{out}/model.safetensors"):
        r = run(["eval", f"{out}/model.safetensors", "--data", "data"])
        expect(r.returncode == 0, f"kill {kills}: normnet eval loads model.safetensors")
    if kills == 8:  # enough: let the next run finish
        r = resume(out, "after the last kill")
        finished = r.returncode == 0
        break
expect(finished, f"the run killed {kills} times finished after resuming")
expect(mid_write >= 1, f"{mid_write} of {kills} kills landed while a temporary file was being written")
same_run("ref-every", out, f"killed {kills} times (often mid-write) and resumed")

# ------------------------------------------------------------------ 3. contradicting flags

def snapshot(out):
    return {n: open(f"{out}/{n}", "rb").read() for n in sorted(os.listdir(out))}


def expect_error(args, parts, what, untouched=None):
    before = snapshot(untouched) if untouched else None
    r = run(args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    ok = r.returncode == 1 and len(lines) == 1 and all(p in r.stderr for p in parts)
    expect(ok, f"{what}: exit 1, one line naming {parts}" + ("" if ok else f" (status {r.returncode}: {r.stderr.strip()})"))
    if untouched:
        expect(snapshot(untouched) == before, f"{what}: the files in {untouched} unchanged")
    return r


expect_error(["train", "--resume", "ref-sgd", "--lr", "0.5"], ["--lr 0.5 contradicts", "--lr 0.05"],
             "--lr other than the run's", "ref-sgd")
expect_error(["train", "--resume", "ref-sgd", "--optimizer", "adam"], ["--optimizer adam contradicts"],
             "--optimizer other than the run's", "ref-sgd")
expect_error(["train", "--resume", "ref-sgd", "--nesterov", "--seed", "7"], ["--seed 7 contradicts"],
             "--seed other than the run's", "ref-sgd")
expect_error(["train", "--resume", "ref-sgd", "--epochs", "1"], ["--epochs 1", "can only extend"],
             "--epochs fewer than the run's", "ref-sgd")
expect_error(["train", "--resume", "ref-sgd", "--epochs", "3"], ["--epochs 3", "cosine"],
             "--epochs more with a cosine schedule", "ref-sgd")
expect_error(["train", "--resume", "ref-sgd", "--data", "data-other"], ["data-other", "fingerprint"],
             "--data with other images", "ref-sgd")
expect_error(["train", "--resume", "ref-sgd", "--out", "elsewhere"], ["--out", "ref-sgd"],
             "--out other than the resumed directory", "ref-sgd")
expect_error(["train", "--resume", "nowhere"], ["nowhere", "train-state.safetensors"], "--resume of no run")
expect_error(["train", "--resume", "ref-exact", "--conv", "fast"], ["--conv fast contradicts", "--conv exact"],
             "--conv other than the run's", "ref-exact")
shutil.copytree("ref-sgd", "truncated")
with open("truncated/train-state.safetensors", "r+b") as f:
    f.truncate(os.path.getsize("truncated/train-state.safetensors") // 2)
expect_error(["train", "--resume", "truncated"], ["truncated/train-state.safetensors"], "--resume of a truncated train state")
expect_error(["train"] + with_flags(SGD, clip_grad_norm=-1, out="neg"), ["--clip-grad-norm"], "--clip-grad-norm -1")
expect_error(["train"] + with_flags(SGD, checkpoint_every=-2, out="neg"), ["--checkpoint-every"], "--checkpoint-every -2")
before = snapshot("ref-sgd")
r = run(["train", "--resume", "ref-sgd", "--nesterov", "--lr", "0.05", "--threads", "1"])
expect(r.returncode == 0 and "had finished its 2 epochs" in r.stdout,
       "--resume of a finished run (flags repeated as stored) says so and exits 0")
after = snapshot("ref-sgd")
expect(all(after[n] == before[n] for n in ("model.safetensors", "train-state.safetensors", "metrics.csv")),
       "--resume of a finished run rewrites nothing differently")

# ---------------------------------------------------------------------------- 4. full disk

def pages(path):
    return -(-os.path.getsize(path) // 4096)


mnt = os.path.join(WORK, "tmpfs")
os.makedirs(mnt)
p_state, p_model = pages("ref-sgd/train-state.safetensors"), pages("ref-sgd/model.safetensors")
size_k = 4 * (p_state + p_model + max(1, p_state // 2))
m = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_k}k", "tmpfs", mnt], capture_output=True, text=True)
if m.returncode != 0:
    print(f"skipped the full-disk case: cannot mount a tmpfs ({m.stderr.strip() or m.returncode})")
else:
    try:
        out = f"{mnt}/run"
        r = run(["train"] + SGD + ["--out", out])
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        expect(r.returncode == 1 and len(lines) == 1, f"full disk ({size_k} KiB): exit status 1 and one line "
               f"(status {r.returncode}: {r.stderr.strip()})")
        expect("No space left on device" in r.stderr and "train-state.safetensors" in r.stderr,
               "full disk: the message names the file and says the device is full")
        expect("the last checkpoint (epoch 0, step 4)" in r.stderr, "full disk: the message names the checkpoint kept")
        expect(not temporaries(out), f"full disk: no temporary file left ({temporaries(out)})")
        s = state_of(out)
        expect(s is not None and s["step"] == 4, "full disk: the train state of step 4 is intact")
        meta, _ = read_st(f"{out}/model.safetensors")
        expect(meta.get("normnet.step") == "4", "full disk: model.safetensors of step 4 is intact")
        r = run(["eval", f"{out}/model.safetensors", "--data", "data"])
        expect(r.returncode == 0, "full disk: normnet eval loads the checkpoint kept")
        subprocess.run(["mount", "-o", "remount,size=4m", mnt], check=True)
        resume(out, "after the disk was enlarged")
        same_run("ref-sgd", out, "full disk, enlarged, resumed")
    finally:
        subprocess.run(["umount", mnt])

# ---------------------------------------------------------------------------- 5. divergence

r = run(["train"] + with_flags(SGD, lr="1e30", checkpoint_every=1, out="diverge"))
lines = [l for l in r.stderr.splitlines() if l.strip()]
expect(r.returncode == 1 and len(lines) == 1, f"--lr 1e30: exit status 1, one line ({r.returncode}: {r.stderr.strip()})")
m = re.search(r"training stopped at epoch (\d+), step (\d+) of 19 \(step (\d+) of the run\)", r.stderr)
expect(m is not None, "--lr 1e30: the message names the epoch and step")
expect(re.search(r"(Conv2d|BatchNorm2d|ReLU|MaxPool2d|Linear) '|parameter '|buffer '", r.stderr) is not None,
       "--lr 1e30: the message names a layer, parameter or buffer")
if m:
    bad = int(m.group(3))
    if bad > 1:
        expect(f"the last checkpoint (epoch 0, step {bad - 1})" in r.stderr, "--lr 1e30: the message names the checkpoint kept")
        s = state_of("diverge")
        expect(s is not None and s["step"] == bad - 1, f"--lr 1e30: the train state kept is that of step {bad - 1}")
        expect(all_finite("diverge/model.safetensors") and all_finite("diverge/train-state.safetensors"),
               "--lr 1e30: the checkpoint kept holds only finite numbers")
    else:
        expect("no checkpoint was written" in r.stderr and not os.path.exists("diverge/model.safetensors"),
               "--lr 1e30: stopped at the first step, no checkpoint written")

# -------------------------------------------------------------------------------- 6. labels

write_data("data-5", 3, train_label_max=4, test_label_max=4, bad=("train", 3, 7))
expect_error(["train", "--model", "tiny5.json", "--data", "data-5", "--out", "labels"],
             ["data-5/train-labels-idx1-ubyte", "label 7 at index 3", "[0, 5)"], "a training label >= the model's 5 classes")
write_data("data-5t", 4, train_label_max=4, test_label_max=4, bad=("t10k", 42, 9))
expect_error(["train", "--model", "tiny5.json", "--data", "data-5t", "--out", "labels"],
             ["data-5t/t10k-labels-idx1-ubyte", "label 9 at index 42"], "a test label >= the model's 5 classes")
expect(not os.path.exists("labels/model.safetensors"), "bad labels: no checkpoint written")

if failures:
    print(f"{len(failures)} check(s) failed")
    sys.exit(1)
print("resume test passed")
