# The prologue the command-line test scripts share (tests/cli/test_*.sh,
# tests/dist/test_mpi_train.sh), sourced after `set -euo pipefail` with the script's own
# arguments in place: NORMNET_BINARY first, WORKDIR third (the second is SOURCE_DIR for
# tests/cli/, MPIRUN for tests/dist/; each script names it).
bin=$1 work=$3
# Fashion-MNIST where scripts/setup installs it (Debian's dataset-fashion-mnist).
data=/usr/share/datasets/fashion-mnist
# 1 in the sanitizer build (-DNORMNET_SANITIZE=ON: tests/CMakeLists.txt sets
# NORMNET_TEST_SANITIZED=1 in the environment of these scripts): a script whose whole run costs
# minutes under ASan runs its reduced version (docs/robustness.md, "Sanitizers").
sanitized=${NORMNET_TEST_SANITIZED:-0}

fail() {  # fail MESSAGE...: prints it and ends the test with status 1
  echo "FAIL: $*" >&2
  exit 1
}

# require_data [STATUS]: without the data set, says so and ends the test with STATUS (default 0;
# 77 for a test that ctest counts as skipped on it, SKIP_RETURN_CODE).
require_data() {
  if [ ! -d "$data" ]; then
    echo "skipped: $data not found"
    exit "${1:-0}"
  fi
}

# cut_test_split N: $data becomes $work/data-test-N, the data set with its test split cut to the
# first N images (the training files linked, so training and its normalization are unchanged);
# for the sanitized version of tests whose time goes into evaluating the 10000 test images.
cut_test_split() {
  local n=$1 dir=$work/data-test-$1
  mkdir -p "$dir"
  ln -sf "$data"/train-* "$dir"/
  python3 - "$data" "$dir" "$n" <<'EOF_PY'
import gzip, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
    raw = gzip.open(src + "/" + name).read()
    rank = raw[3]
    dims = struct.unpack(">%dI" % rank, raw[4:4 + 4 * rank])
    assert dims[0] >= n, (name, dims)
    item = 1
    for d in dims[1:]: item *= d
    body = 4 + 4 * rank
    with gzip.open(dst + "/" + name, "wb") as f:
        f.write(raw[:4] + struct.pack(">I", n) + raw[8:body] + raw[body:body + n * item])
EOF_PY
  data=$dir
}

# fresh_workdir: $work emptied (made if missing) and made the current directory.
fresh_workdir() {
  rm -rf "$work" && mkdir -p "$work"
  cd "$work"
}
