#!/usr/bin/env bash
# normnet recalibrate end to end on Fashion-MNIST: train seed001 on 2000 images for one epoch,
# recalibrate its BatchNorm statistics over those images; it prints the test accuracy before
# (= what eval says of the original checkpoint) and after (= what eval says of the written
# checkpoint), writes CKPT.recal.safetensors by default or -o OUT, and changes nothing but the
# running statistics. Bad input (missing checkpoint, a model without BatchNorm, a bad batch
# size or limit, a missing data directory, an unwritable output) exits 1 with one message and
# writes nothing.
# Under NORMNET_TEST_SANITIZED=1 (the sanitizer build; tests/cli/common.sh) the test split is cut
# to its first 2000 images (--data of a copy), so that each evaluation costs a second, not 7 s.
#
# Usage: bash test_recalibrate.sh NORMNET_BINARY SOURCE_DIR WORKDIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # bin, work, data, fail, require_data, fresh_workdir
src=$2
require_data
fresh_workdir
data_args=() test_images=10000
if [ "$sanitized" = 1 ]; then
  cut_test_split 2000
  data_args=(--data "$data") test_images=2000
fi

"$bin" recalibrate --help > help.txt || fail "recalibrate --help exited non-zero"
grep -q '^Usage: normnet recalibrate' help.txt || fail "recalibrate --help shows no usage line"
grep -q -e '--batch-size INT=128' help.txt || fail "recalibrate --help does not show the batch size default 128"

"$bin" train "${data_args[@]}" --limit 2000 --epochs 1 --out run --quiet > train.txt 2> train.err ||
  fail "train exited non-zero: $(cat train.err)"

"$bin" recalibrate run/model.safetensors "${data_args[@]}" --limit 2000 --batch-size 100 > recal.txt 2> recal.err ||
  fail "recalibrate exited non-zero: $(cat recal.err)"
cat recal.txt
grep -q '^normnet recalibrate: model seed001, 2 layers, 2000 training images, batch 100$' recal.txt ||
  fail "no summary line: $(head -n 1 recal.txt)"
before=$(sed -n "s/^test accuracy before: \([01]\.[0-9]\{4\} ([0-9]*\/$test_images)\).*/\1/p" recal.txt)
after=$(sed -n "s/^test accuracy after: \([01]\.[0-9]\{4\} ([0-9]*\/$test_images)\).*/\1/p" recal.txt)
[ -n "$before" ] || fail "no 'test accuracy before: X.XXXX (c/$test_images)' line"
[ -n "$after" ] || fail "no 'test accuracy after: X.XXXX (c/$test_images)' line"
grep -q '^wrote run/model.recal.safetensors$' recal.txt || fail "did not report the default output name"
test -s run/model.recal.safetensors || fail "run/model.recal.safetensors not written"

"$bin" eval run/model.safetensors "${data_args[@]}" > eval-orig.txt
"$bin" eval run/model.recal.safetensors "${data_args[@]}" > eval-recal.txt
[ "$(sed -n 's/^test accuracy: //p' eval-orig.txt)" = "$before" ] ||
  fail "eval of the original says '$(grep '^test accuracy' eval-orig.txt)' but recalibrate printed before '$before'"
[ "$(sed -n 's/^test accuracy: //p' eval-recal.txt)" = "$after" ] ||
  fail "eval of the recalibrated checkpoint says '$(grep '^test accuracy' eval-recal.txt)' but recalibrate printed after '$after'"

# Only the running statistics differ; num_batches_tracked counts the 20 batches of 2000 / 100
# (training counted 16 batches of 128).
python3 - <<'PY' || fail "the recalibrated checkpoint's tensors are wrong"
import json, struct
def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = raw[8 + n:]
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items()}, meta
a, meta_a = load("run/model.safetensors")
b, meta_b = load("run/model.recal.safetensors")
assert a.keys() == b.keys(), (a.keys() ^ b.keys())
assert meta_a["normnet.model"] == meta_b["normnet.model"]
assert "normnet.recalibrated" in meta_b, meta_b.keys()
changed = sorted(k for k in a if a[k] != b[k])
stats = sorted(k for k in a if k.endswith(("running_mean", "running_var", "num_batches_tracked")))
assert changed == stats, (changed, stats)
for k in stats:
    if k.endswith("num_batches_tracked"):
        assert struct.unpack("<q", b[k])[0] == 20, (k, struct.unpack("<q", b[k]))
PY

# -o OUT.
"$bin" recalibrate run/model.safetensors "${data_args[@]}" --limit 300 --batch-size 100 -o "$work/other.safetensors" > recal2.txt ||
  fail "recalibrate -o exited non-zero"
grep -q "^wrote $work/other.safetensors$" recal2.txt || fail "did not report the -o name"
test -s other.safetensors || fail "-o output not written"

# Bad input: exit 1, one 'normnet: error:' line naming the culprit, nothing written.
mkdir -p bad
expect_error() {
  local what=$1 pattern=$2
  shift 2
  local rc=0
  "$@" > out.txt 2> err.txt || rc=$?
  [ "$rc" -eq 1 ] || fail "$what: exit status $rc, expected 1"
  [ "$(wc -l < err.txt)" -eq 1 ] || fail "$what: expected one line on stderr, got: $(cat err.txt)"
  grep -q -e "^normnet: error: .*$pattern" err.txt || fail "$what: message '$(cat err.txt)' does not match '$pattern'"
  [ -z "$(ls -A bad)" ] || fail "$what: wrote $(ls -A bad)"
}
expect_error "missing checkpoint" "bad/none.safetensors" "$bin" recalibrate bad/none.safetensors
expect_error "batch size 0" "--batch-size" "$bin" recalibrate run/model.safetensors --batch-size 0 -o bad/x.safetensors
expect_error "limit 0" "--limit" "$bin" recalibrate run/model.safetensors --limit 0 -o bad/x.safetensors
expect_error "missing data directory" "nodata" \
  "$bin" recalibrate run/model.safetensors --data "$work/nodata" -o bad/x.safetensors
expect_error "output in a missing directory" "bad/missing/x.safetensors" \
  "$bin" recalibrate run/model.safetensors "${data_args[@]}" --limit 200 -o bad/missing/x.safetensors
[ ! -s out.txt ] || fail "an output in a missing directory was refused only after the work: $(cat out.txt)"
expect_error "output is a directory" "bad' is a directory" \
  "$bin" recalibrate run/model.safetensors "${data_args[@]}" --limit 200 -o bad
[ ! -s out.txt ] || fail "a directory as output was refused only after the work: $(cat out.txt)"
"$bin" train "${data_args[@]}" --model seed001-nobn --limit 300 --epochs 1 --out nobn --quiet > /dev/null 2>&1 ||
  fail "train seed001-nobn exited non-zero"
expect_error "model without BatchNorm" "no BatchNorm-like layer" \
  "$bin" recalibrate nobn/model.safetensors -o bad/x.safetensors

echo "recalibrate test passed"
