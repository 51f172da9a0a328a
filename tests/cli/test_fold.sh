#!/usr/bin/env bash
# normnet fold end to end on Fashion-MNIST: train seed001 on 2000 images for one epoch, fold its
# BatchNorms into the convolutions, then
#  - fold reports both BNs folded and writes an ordinary checkpoint (summary shows no BN rows;
#    the description's conv layers have a bias),
#  - eval of the original and the folded checkpoint print the same test accuracy line,
#  - predict --logits of the first 200 test images agree within 1e-5 relative
#    (max|folded - original| / max|original|; folding rounds W * gamma / sqrt(var + eps) to
#    float once, about 1e-7 relative),
# and bad input (missing file, not a checkpoint, -o the input itself, an unwritable -o) is an
# error naming the problem that writes nothing.
# Under NORMNET_TEST_SANITIZED=1 (the sanitizer build; tests/cli/common.sh) the test split is cut
# to its first 2000 images (--data of a copy), so that each evaluation costs a second, not 7 s.
#
# Usage: bash test_fold.sh NORMNET_BINARY SOURCE_DIR WORKDIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # bin, work, data, fail, require_data, fresh_workdir
src=$2
require_data
fresh_workdir
if [ "$sanitized" = 1 ]; then cut_test_split 2000; fi

"$bin" fold --help > help-fold.txt || fail "normnet fold --help exited non-zero"
grep -q "^Usage: normnet fold" help-fold.txt || fail "fold --help shows no usage line"

"$bin" train --model seed001 --limit 2000 --epochs 1 --out run --data "$data" --quiet > train.txt ||
  fail "train exited non-zero"
"$bin" fold run/model.safetensors -o folded.safetensors > fold.txt || fail "fold exited non-zero"
cat fold.txt
grep -q "^folded BatchNorm2d 'bn1' into Conv2d 'conv1'$" fold.txt || fail "fold did not report bn1 folded"
grep -q "^folded BatchNorm2d 'bn2' into Conv2d 'conv2'$" fold.txt || fail "fold did not report bn2 folded"
grep -q "2 BatchNorm layer(s) folded, 0 kept" fold.txt || fail "fold's summary line is missing"

"$bin" summary folded.safetensors > summary.txt || fail "summary of the folded checkpoint failed"
grep -q BatchNorm summary.txt && fail "the folded model still has a BatchNorm layer"
grep -q '^conv1 ' summary.txt || fail "summary of the folded model has no conv1 row"

"$bin" eval run/model.safetensors --data "$data" > eval-original.txt || fail "eval of the original failed"
"$bin" eval folded.safetensors --data "$data" > eval-folded.txt || fail "eval of the folded checkpoint failed"
acc_original=$(grep '^test accuracy:' eval-original.txt)
acc_folded=$(grep '^test accuracy:' eval-folded.txt)
echo "original: $acc_original"
echo "folded:   $acc_folded"
[ -n "$acc_original" ] && [ "$acc_original" = "$acc_folded" ] || fail "accuracies differ: '$acc_original' vs '$acc_folded'"

python3 - "$data/t10k-images-idx3-ubyte.gz" <<'EOF'
import gzip, struct, sys
raw = gzip.open(sys.argv[1]).read()
with open("first200.idx3", "wb") as f:
    f.write(struct.pack(">BBBBIII", 0, 0, 8, 3, 200, 28, 28) + raw[16:16 + 200 * 784])
EOF
"$bin" predict run/model.safetensors first200.idx3 --logits logits-original.csv > /dev/null ||
  fail "predict with the original failed"
"$bin" predict folded.safetensors first200.idx3 --logits logits-folded.csv > /dev/null ||
  fail "predict with the folded checkpoint failed"
python3 - <<'EOF' || fail "logits of the folded checkpoint differ"
def read(path):
    return [[float(v) for v in line.split(",")] for line in open(path) if line.strip()]
a, b = read("logits-folded.csv"), read("logits-original.csv")
assert len(a) == len(b) == 200, (len(a), len(b))
err = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
mag = max(abs(y) for rb in b for y in rb)
print(f"logits: max|folded - original| / max|original| = {err / mag:.3g}")
assert err <= 1e-5 * mag, err / mag
EOF

# --- Bad input: an error naming the problem, nothing written. ---------------------------------
expect_error() {  # expect_error PATTERN OUTPUT ARGS...
  local pattern=$1 out=$2
  shift 2
  if "$bin" "$@" > out.txt 2> err.txt; then fail "normnet $* should have failed"; fi
  grep -q "$pattern" err.txt || fail "normnet $*: error does not mention '$pattern': $(cat err.txt)"
  [ ! -e "$out" ] || fail "normnet $*: wrote $out"
}
expect_error "missing.safetensors" new1.safetensors fold missing.safetensors -o new1.safetensors
echo "not a checkpoint" > junk.safetensors
expect_error "junk.safetensors" new2.safetensors fold junk.safetensors -o new2.safetensors
cp run/model.safetensors same.safetensors
before=$(cksum < same.safetensors)
if "$bin" fold same.safetensors -o same.safetensors > out.txt 2> err.txt; then fail "fold onto its input should fail"; fi
grep -q "is the input checkpoint" err.txt || fail "fold onto its input: unclear error: $(cat err.txt)"
[ "$(cksum < same.safetensors)" = "$before" ] || fail "fold onto its input changed the input"
expect_error "no-such-dir" no-such-dir/x.safetensors fold run/model.safetensors -o no-such-dir/x.safetensors
ls | grep -q '\.tmp' && fail "a temporary file was left behind"

echo "test_fold: all checks passed"
