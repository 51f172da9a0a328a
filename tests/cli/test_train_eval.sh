#!/usr/bin/env bash
# End to end on Fashion-MNIST: train seed001 on 3000 images for one epoch, then eval prints the
# test accuracy train printed; train's output files; summary of a model and of the checkpoint;
# models; every subcommand's --help; predict on an IDX file and on grayscale and RGB PNGs
# (which give the same probabilities as the same pixels in the IDX file), and a wrong-size PNG.
#
# Usage: bash test_train_eval.sh NORMNET_BINARY SOURCE_DIR WORKDIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # bin, work, data, fail, require_data, fresh_workdir
src=$2
require_data
fresh_workdir

# --- Help: exits 0 and shows the defaults. ----------------------------------------------------
"$bin" --help > help.txt || fail "normnet --help exited non-zero"
for sub in train eval predict models summary; do
  grep -q -w "$sub" help.txt || fail "normnet --help does not list '$sub'"
  "$bin" "$sub" --help > "help-$sub.txt" || fail "normnet $sub --help exited non-zero"
  grep -q "^Usage: normnet $sub" "help-$sub.txt" || fail "normnet $sub --help shows no usage line"
done
grep -q -e '--batch-size INT=128' help-train.txt || fail "train --help does not show the batch size default 128"
grep -q -e '--epochs INT=3' help-train.txt || fail "train --help does not show the epochs default 3"
default_lr=$(sed -n 's/^ *--lr FLOAT=\([0-9.e-]*\) .*/\1/p' help-train.txt)
[ -n "$default_lr" ] || fail "train --help does not show the lr default"
grep -q -e '--model TEXT=seed001' help-train.txt || fail "train --help does not show the default model"
grep -q -e "--data TEXT=$data" help-train.txt || fail "train --help does not show the default data directory"
grep -q -e '--batch-size INT=1000' help-eval.txt || fail "eval --help does not show its batch size default 1000"
grep -q -e '--logits' help-predict.txt || fail "predict --help does not show --logits"

# --- models and summary of a model. -----------------------------------------------------------
"$bin" models > models.txt
grep -q '^seed001 ' models.txt || fail "models does not list seed001"
grep -q '^seed001-nobn ' models.txt || fail "models does not list seed001-nobn"
grep -E -q '^seed001 +50378 ' models.txt || fail "models does not give seed001's 50378 parameters"
"$bin" summary seed001 > summary-name.txt
grep -q '^Model: seed001$' summary-name.txt || fail "summary has no 'Model: seed001' line"
grep -q '^Trainable parameters: 50378$' summary-name.txt || fail "summary does not count 50378 parameters"
grep -q '^Buffers (running statistics): 194 values$' summary-name.txt || fail "summary does not count 194 buffer values"
grep -E -q '^bn1 +BatchNorm2d\(32\) +\(1, 32, 28, 28\) +64$' summary-name.txt || fail "summary has no bn1 row"
grep -E -q '^fc +.*\(1, 10\) +31370$' summary-name.txt || fail "summary has no fc row giving (1, 10)"
"$bin" summary "$src/models/seed001.json" > summary-file.txt
cmp -s summary-name.txt summary-file.txt || fail "summary of seed001 and of models/seed001.json differ"

# --- train, then eval. ------------------------------------------------------------------------
"$bin" train --limit 3000 --epochs 1 --out "$work/run" --quiet > train.txt 2> train.err ||
  fail "train exited non-zero: $(cat train.err)"
# train runs with the defaults --help shows.
grep -q "sgd lr $default_lr, batch 128, 1 epochs, seed 1$" train.txt ||
  fail "train's settings line does not show the defaults of --help (lr $default_lr): $(head -n 1 train.txt)"
for f in model.safetensors train-state.safetensors metrics.csv metrics.jsonl; do
  test -s "run/$f" || fail "train did not write run/$f"
done
[ "$(ls run | wc -l)" -eq 4 ] || fail "train left other files in its output directory: $(ls run)"
[ "$(wc -l < run/metrics.csv)" -eq 2 ] || fail "metrics.csv should hold a header and 1 row"
[ "$(head -n 1 run/metrics.csv)" = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,seconds,images_per_second,lr" ] ||
  fail "metrics.csv header: $(head -n 1 run/metrics.csv)"
[ "$(wc -l < run/metrics.jsonl)" -eq 1 ] || fail "metrics.jsonl should hold 1 line"
grep -q '^test accuracy: [01]\.[0-9]\{4\}$' train.txt || fail "train printed no 'test accuracy: X.XXXX' line"
train_acc=$(grep '^test accuracy: ' train.txt)
# metrics.csv and metrics.jsonl hold the same epoch and accuracy as train printed.
python3 - "${train_acc#test accuracy: }" <<'EOF' || fail "metrics files disagree with train's output"
import csv, json, sys
printed = sys.argv[1]
row = list(csv.DictReader(open("run/metrics.csv")))[0]
rec = json.loads(open("run/metrics.jsonl").readline())
assert row["epoch"] == "1" and rec["epoch"] == 1, (row, rec)
assert "%.4f" % float(row["test_accuracy"]) == printed, (row["test_accuracy"], printed)
assert "%.4f" % rec["test_accuracy"] == printed, (rec["test_accuracy"], printed)
assert 0.3 < rec["test_accuracy"] <= 1.0, "one epoch on 3000 images should beat chance by far"
EOF

"$bin" eval run/model.safetensors > eval.txt || fail "eval exited non-zero"
eval_acc=$(grep '^test accuracy: ' eval.txt | sed 's/ (.*//')
[ "$eval_acc" = "$train_acc" ] || fail "eval printed '$eval_acc' but train printed '$train_acc'"
grep -q '^test images: 10000$' eval.txt || fail "eval did not use the 10000 test images"
[ "$(grep -c '^  class ' eval.txt)" -eq 10 ] || fail "eval printed no per-class accuracy for 10 classes"

"$bin" summary run/model.safetensors > summary-ckpt.txt
cmp -s summary-name.txt summary-ckpt.txt || fail "summary of the checkpoint differs from summary of seed001"

# --- predict on IDX and PNG inputs. -----------------------------------------------------------
# first3.idx3: the first 3 test images as a raw IDX file; gray.png: test image 0 as an 8-bit
# grayscale PNG; rgb.png: the same pixels in R, G and B; small.png: a 20x20 grayscale image.
python3 - "$data/t10k-images-idx3-ubyte.gz" <<'EOF'
import gzip, struct, sys, zlib
raw = gzip.open(sys.argv[1]).read()
n, h, w = struct.unpack(">III", raw[4:16])
assert (h, w) == (28, 28)
with open("first3.idx3", "wb") as f:
    f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 3, 28, 28) + raw[16:16 + 3 * 784])
pixels = raw[16:16 + 784]

def png(path, width, height, color_type, rows):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    data = b"".join(b"\0" + r for r in rows)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))

png("gray.png", 28, 28, 0, [pixels[r * 28:(r + 1) * 28] for r in range(28)])
png("rgb.png", 28, 28, 2, [bytes(v for p in pixels[r * 28:(r + 1) * 28] for v in (p, p, p)) for r in range(28)])
png("small.png", 20, 20, 0, [bytes(20) for _ in range(20)])
EOF

"$bin" predict run/model.safetensors first3.idx3 gray.png rgb.png --logits "$work/logits.csv" > predict.txt ||
  fail "predict exited non-zero"
[ "$(wc -l < predict.txt)" -eq 6 ] || fail "predict should print 5 result lines and the logits line"
for i in 0 1 2; do
  grep -E -q "^first3\.idx3\[$i\]: class [0-9] \(p=[01]\.[0-9]{4}\) probabilities:( [01]\.[0-9]{4}){10}$" predict.txt ||
    fail "predict printed no well-formed line for first3.idx3[$i]"
done
idx0=$(grep '^first3\.idx3\[0\]: ' predict.txt | sed 's/^[^:]*: //')
gray=$(grep '^gray\.png: ' predict.txt | sed 's/^[^:]*: //')
rgb=$(grep '^rgb\.png: ' predict.txt | sed 's/^[^:]*: //')
[ -n "$idx0" ] && [ "$gray" = "$idx0" ] || fail "gray.png gave '$gray' but the same image in the IDX file gave '$idx0'"
[ "$rgb" = "$gray" ] || fail "rgb.png (R = G = B) gave '$rgb' but gray.png gave '$gray'"
grep -q "^logits: $work/logits.csv$" predict.txt || fail "predict did not report the logits file"
# The logits file: 5 rows of 10 numbers whose argmax is the printed class.
python3 - <<'EOF' || fail "logits.csv does not match predict's output"
import re
rows = [list(map(float, l.split(","))) for l in open("logits.csv")]
assert len(rows) == 5 and all(len(r) == 10 for r in rows), [len(r) for r in rows]
classes = [int(m) for m in re.findall(r": class (\d) ", open("predict.txt").read())]
assert classes == [max(range(10), key=r.__getitem__) for r in rows], classes
assert rows[3] == rows[0] and rows[4] == rows[0], "the PNGs' logits differ from the IDX image's"
EOF
# Predicting the test images one file at a time agrees with predicting them in one batch.
"$bin" predict run/model.safetensors gray.png > predict-one.txt
[ "$(sed 's/^[^:]*: //' predict-one.txt)" = "$gray" ] || fail "predict of gray.png alone differs from in a batch"

rc=0
"$bin" predict run/model.safetensors small.png > small.out 2> small.err || rc=$?
[ "$rc" -ne 0 ] || fail "predict accepted a 20x20 PNG for a 28x28 model"
grep -q 'small\.png' small.err || fail "the wrong-size message does not name the file: $(cat small.err)"
grep -q '20x20' small.err || fail "the wrong-size message does not give the size 20x20: $(cat small.err)"
grep -q '28x28' small.err || fail "the wrong-size message does not give the expected 28x28: $(cat small.err)"
[ ! -s small.out ] || fail "predict printed results before failing on small.png"

echo "train/eval test passed"
