#!/usr/bin/env bash
# Bad input of every kind: each case must exit non-zero (without a crash), print nothing on
# stdout and one message on stderr naming the file or flag at fault, and write no output file
# (no model.safetensors in --out, no --logits file). The data sets and checkpoints are small
# files crafted here, so the test needs no installed data.
#
# Usage: bash test_bad_input.sh NORMNET_BINARY SOURCE_DIR WORKDIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # bin, work, fresh_workdir
src=$2
fresh_workdir
failures=0

# expect_fail NAME "SUBSTRING[|SUBSTRING...]" COMMAND...: runs the command with $out as a fresh
# output path and checks the rules above; every |-separated substring must be in the message.
expect_fail() {
  local name=$1 want=$2
  shift 2
  local rc=0
  "$@" > "$work/$name.stdout" 2> "$work/$name.stderr" || rc=$?
  local problems=()
  if [ "$rc" -eq 0 ]; then problems+=("exit status 0"); fi
  if [ "$rc" -ge 128 ]; then problems+=("exit status $rc (killed by a signal)"); fi
  if [ -s "$work/$name.stdout" ]; then problems+=("wrote to stdout"); fi
  # CLI11's parse errors add the hint "Run with --help for more information." to the message.
  local lines
  lines=$(grep -v -c -e '^Run with --help for more information\.$' "$work/$name.stderr" || true)
  if [ "$lines" -ne 1 ]; then problems+=("$lines lines of error message, expected 1"); fi
  local IFS='|'
  for part in $want; do
    if ! grep -q -F -e "$part" "$work/$name.stderr"; then problems+=("message does not name '$part'"); fi
  done
  unset IFS
  if [ -e "$out/model.safetensors" ] || { [ -d "$out" ] && [ -n "$(ls -A "$out")" ]; }; then
    problems+=("wrote into $out")
  fi
  if [ -e "$work/logits.csv" ] || [ -e "$work/logits.safetensors" ] || [ -e "$work/logits.txt" ]; then
    problems+=("wrote a logits file")
  fi
  if [ ${#problems[@]} -eq 0 ]; then
    echo "ok   $name: $(head -n 1 "$work/$name.stderr")"
  else
    echo "FAIL $name: ${problems[*]}"
    echo "     command: $*"
    sed 's/^/     stderr: /' "$work/$name.stderr"
    sed 's/^/     stdout: /' "$work/$name.stdout"
    failures=$((failures + 1))
  fi
  rm -rf "$out" "$work/logits.csv" "$work/logits.safetensors" "$work/logits.txt"
}

# --- Data: a valid tiny data set, then one directory per fault. -------------------------------
python3 - "$work" <<'EOF'
import gzip, os, random, struct, sys
work = sys.argv[1]
rng = random.Random(7)

def idx(dims, payload):
    return struct.pack(">BBBB", 0, 0, 8, len(dims)) + b"".join(struct.pack(">I", d) for d in dims) + bytes(payload)

def images(n):
    return idx([n, 28, 28], [rng.randrange(256) for _ in range(n * 784)])

def labels(n, bad_at=None):
    v = [rng.randrange(10) for _ in range(n)]
    if bad_at is not None:
        v[bad_at] = 12
    return idx([n], v)

def write_dir(name, files):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    for fname, data in files.items():
        with open(os.path.join(d, fname), "wb") as f:
            f.write(gzip.compress(data) if fname.endswith(".gz") else data)

good = {"train-images-idx3-ubyte.gz": images(64), "train-labels-idx1-ubyte.gz": labels(64),
        "t10k-images-idx3-ubyte.gz": images(32), "t10k-labels-idx1-ubyte.gz": labels(32)}
write_dir("data", good)
os.makedirs(os.path.join(work, "data-empty"), exist_ok=True)
# The images file cut in the middle of its compressed stream.
truncated = dict(good)
del truncated["train-images-idx3-ubyte.gz"]
write_dir("data-truncated", truncated)
whole = gzip.compress(images(64))
with open(os.path.join(work, "data-truncated", "train-images-idx3-ubyte.gz"), "wb") as f:
    f.write(whole[: len(whole) // 2])
write_dir("data-label12", dict(good, **{"train-labels-idx1-ubyte.gz": labels(64, bad_at=17)}))
write_dir("data-count", dict(good, **{"train-labels-idx1-ubyte.gz": labels(63)}))
# An IDX file of two test images for predict.
with open(os.path.join(work, "two.idx3"), "wb") as f:
    f.write(images(2))
EOF

# A model file with a typo'd key.
sed 's/"kernel_size": 3, "padding": 1}/"kernal_size": 3, "padding": 1}/' "$src/models/seed002.json" > typo.json
grep -q kernal_size typo.json

# --- A good checkpoint (seed002 on the tiny data) and broken copies of it. --------------------
"$bin" train --model seed002 --data data --epochs 1 --batch-size 32 --out good --quiet > good.log
test -f good/model.safetensors
"$bin" eval good/model.safetensors --data data > good-eval.log  # the intact file loads

size=$(wc -c < good/model.safetensors)
head -c $((size / 2)) good/model.safetensors > truncated.safetensors
head -c $((size - 1)) good/model.safetensors > short-by-one.safetensors
printf 'abc' > three-bytes.safetensors
python3 - <<'EOF'
import json, random, struct

rng = random.Random(11)
with open("random.safetensors", "wb") as f:
    f.write(bytes(rng.randrange(256) for _ in range(4096)))

def read(path):
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
               for k, v in header.items()}
    return meta, tensors

def write(path, meta, tensors):
    header, chunks, at = {"__metadata__": meta}, [], 0
    for name in sorted(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(raw)]}
        chunks.append(raw)
        at += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))

meta, tensors = read("good/model.safetensors")
write("rewritten.safetensors", meta, tensors)  # control: the rewriting itself is sound
t = dict(tensors); del t["bn1.running_var"]
write("missing.safetensors", meta, t)
t = dict(tensors); dtype, shape, raw = t["fc.weight"]; assert shape == [10, 64]
t["fc.weight"] = (dtype, [20, 32], raw)
write("wrong-shape.safetensors", meta, t)
t = dict(tensors); t["bn1.extra"] = ("F32", [1], b"\0\0\0\0")
write("unexpected.safetensors", meta, t)
EOF
"$bin" eval rewritten.safetensors --data data > rewritten-eval.log

# --- The cases. -------------------------------------------------------------------------------
out=$work/out
expect_fail unknown-flag "--bogus" "$bin" train --bogus --data data --out "$out"
expect_fail epochs-zero "--epochs" "$bin" train --epochs 0 --data data --out "$out"
expect_fail epochs-not-a-number "--epochs" "$bin" train --epochs three --data data --out "$out"
expect_fail batch-size-negative "--batch-size" "$bin" train --batch-size -1 --data data --out "$out"
expect_fail lr-negative "--lr" "$bin" train --lr -1 --data data --out "$out"
expect_fail threads-negative "--threads" "$bin" train --threads -2 --data data --out "$out"
expect_fail unknown-optimizer "--optimizer" "$bin" train --optimizer rmsprop --data data --out "$out"
expect_fail unknown-model "nosuchmodel" "$bin" train --model nosuchmodel --data data --out "$out"
expect_fail model-typo "typo.json|layers[0]|kernal_size" "$bin" train --model "$work/typo.json" --data data --out "$out"
expect_fail data-missing "$work/nowhere" "$bin" train --model seed002 --data "$work/nowhere" --out "$out"
expect_fail data-empty "data-empty" "$bin" train --model seed002 --data data-empty --out "$out"
expect_fail data-truncated-gz "data-truncated/train-images-idx3-ubyte.gz" \
  "$bin" train --model seed002 --data data-truncated --out "$out"
expect_fail data-label-12 "data-label12/train-labels-idx1-ubyte.gz|12" \
  "$bin" train --model seed002 --data data-label12 --out "$out"
expect_fail data-count-mismatch "data-count/train-images-idx3-ubyte.gz|data-count/train-labels-idx1-ubyte.gz" \
  "$bin" train --model seed002 --data data-count --out "$out"
expect_fail eval-data-empty "data-empty" "$bin" eval good/model.safetensors --data data-empty

for ckpt in truncated short-by-one three-bytes random; do
  expect_fail "eval-$ckpt" "$ckpt.safetensors" "$bin" eval "$ckpt.safetensors" --data data
done
expect_fail eval-missing-tensor "missing.safetensors|bn1.running_var" "$bin" eval missing.safetensors --data data
expect_fail eval-wrong-shape "wrong-shape.safetensors|fc.weight|(20, 32)" "$bin" eval wrong-shape.safetensors --data data
expect_fail eval-unexpected-tensor "unexpected.safetensors|bn1.extra" "$bin" eval unexpected.safetensors --data data
expect_fail eval-no-checkpoint "nothere.safetensors" "$bin" eval nothere.safetensors --data data
expect_fail init-truncated "truncated.safetensors" \
  "$bin" train --init truncated.safetensors --data data --out "$out"
expect_fail init-missing-tensor "missing.safetensors|bn1.running_var" \
  "$bin" train --init missing.safetensors --data data --out "$out"
expect_fail summary-truncated "truncated.safetensors" "$bin" summary truncated.safetensors

expect_fail predict-truncated-checkpoint "truncated.safetensors" \
  "$bin" predict truncated.safetensors two.idx3 --logits "$work/logits.csv"
expect_fail predict-wrong-shape "wrong-shape.safetensors|fc.weight" \
  "$bin" predict wrong-shape.safetensors two.idx3 --logits "$work/logits.safetensors"
expect_fail predict-missing-input "nope.png" \
  "$bin" predict good/model.safetensors two.idx3 "$work/nope.png" --logits "$work/logits.csv"
expect_fail predict-input-not-an-image "typo.json" \
  "$bin" predict good/model.safetensors two.idx3 typo.json --logits "$work/logits.csv"
expect_fail predict-logits-extension "--logits|logits.txt" \
  "$bin" predict good/model.safetensors two.idx3 --logits "$work/logits.txt"

# The good inputs still work after all that: predict writes its logits.
"$bin" predict good/model.safetensors two.idx3 --logits "$work/logits.csv" > predict.log
test "$(wc -l < "$work/logits.csv")" -eq 2

if [ "$failures" -ne 0 ]; then
  echo "$failures bad-input case(s) failed"
  exit 1
fi
echo "bad input test passed"
