#!/usr/bin/env bash
# `normnet train` under mpirun with 2 ranks on this machine (docs/distributed.md): only rank 0
# prints and writes; a run stopped after epoch 1 and resumed with 2 ranks ends with the same
# bytes as the uninterrupted run; --resume with 3 ranks, or with one process, is refused with a
# message naming both counts, and --sync-bn against a run without it too; killing one rank with
# SIGKILL mid-run ends the whole job with a non-zero exit within a minute.
# Under NORMNET_TEST_SANITIZED=1 (the sanitizer build; tests/cli/common.sh) the test split is cut
# to its first 2000 images (--data of a copy): every epoch evaluates it.
#
# Usage: bash test_mpi_train.sh NORMNET_BINARY MPIRUN WORKDIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../cli/common.sh"  # bin, work, data, fail, require_data, fresh_workdir
mpirun=$2
require_data
fresh_workdir
if [ "$sanitized" = 1 ]; then cut_test_split 2000; fi
# Root may start ranks; more ranks than cores; one thread per rank.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
run2() { "$mpirun" --oversubscribe -np 2 "$@"; }
common=(--data "$data" --limit 300 --batch-size 50 --threads 1 --quiet)

# --- Only rank 0 prints and writes; resuming with 2 ranks repeats the uninterrupted run. -------
run2 "$bin" train "${common[@]}" --sync-bn --epochs 2 --out full > full.txt 2> full.err ||
  fail "mpirun -np 2 normnet train --sync-bn exited non-zero: $(cat full.err)"
[ "$(grep -c '^normnet train: model' full.txt)" = 1 ] || fail "the start line is not printed exactly once: $(cat full.txt)"
[ "$(grep -c '^epoch 2:' full.txt)" = 1 ] || fail "epoch 2's line is not printed exactly once: $(cat full.txt)"
grep -q 'data parallel on 2 ranks (global batch 50), synchronized BatchNorm' full.txt ||
  fail "no data-parallel line: $(cat full.txt)"
for f in model.safetensors train-state.safetensors metrics.csv metrics.jsonl; do
  [ -s "full/$f" ] || fail "full/$f was not written"
done
[ "$(ls full | wc -l)" = 4 ] || fail "unexpected files in full/: $(ls full)"

run2 "$bin" train "${common[@]}" --sync-bn --epochs 1 --out part > part1.txt 2> part1.err ||
  fail "the first half exited non-zero: $(cat part1.err)"
run2 "$bin" train --resume part --epochs 2 --threads 1 --quiet > part2.txt 2> part2.err ||
  fail "--resume with 2 ranks exited non-zero: $(cat part2.err)"
grep -q '^resuming part' part2.txt || fail "the resumed run printed no resuming line: $(cat part2.txt)"
cmp -s part/model.safetensors full/model.safetensors ||
  fail "the resumed run's model.safetensors differs from the uninterrupted run's"
cmp -s part/train-state.safetensors full/train-state.safetensors ||
  fail "the resumed run's train-state.safetensors differs from the uninterrupted run's"

# --- --resume with another number of ranks, or --sync-bn against plain BatchNorm: refused. -----
if "$mpirun" --oversubscribe -np 3 "$bin" train --resume part --epochs 3 --threads 1 --quiet > r3.txt 2> r3.err; then
  fail "--resume of a 2-rank run with 3 ranks succeeded"
fi
grep -q "was trained on 2 ranks (mpirun -np 2) and can only continue on as many.*this job has 3 ranks" r3.err ||
  fail "--resume with 3 ranks: unexpected message: $(cat r3.err)"
if "$bin" train --resume part --epochs 3 --threads 1 --quiet > r1.txt 2> r1.err; then
  fail "--resume of a 2-rank run in one process succeeded"
fi
grep -q "was trained on 2 ranks .*this job has 1 process" r1.err || fail "--resume in one process: unexpected message: $(cat r1.err)"

run2 "$bin" train "${common[@]}" --epochs 1 --out plain > plain.txt 2> plain.err ||
  fail "mpirun -np 2 normnet train (per-rank BatchNorm) exited non-zero: $(cat plain.err)"
grep -q 'per-rank BatchNorm' plain.txt || fail "no per-rank BatchNorm line: $(cat plain.txt)"
if run2 "$bin" train --resume plain --epochs 2 --sync-bn --threads 1 --quiet > rs.txt 2> rs.err; then
  fail "--sync-bn on resuming a run without it succeeded"
fi
grep -q -- "--sync-bn contradicts the run being resumed" rs.err || fail "--sync-bn on resume: unexpected message: $(cat rs.err)"

# --- A rank killed mid-run ends the job, non-zero, within a minute. -----------------------------
tag="normnet-kill-test-$$"
NORMNET_TEST_TAG=$tag NORMNET_STEP_DELAY_MS=200 run2 "$bin" train --data "$data" --limit 4000 \
  --batch-size 20 --epochs 5 --threads 1 --quiet --out killed > killed.txt 2> killed.err &
job=$!
# Rank 1's process: the one whose environment holds the tag and rank 1; wait for it to exist.
env_of() { cat "/proc/$1/environ" 2>/dev/null | tr '\0' '\n'; }
tagged() {  # the job's rank processes: PID RANK
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$(readlink -f "$bin")" ] || continue
    env=$(env_of "$p")
    grep -qx "NORMNET_TEST_TAG=$tag" <<< "$env" || continue
    echo "$p $(sed -n 's/^OMPI_COMM_WORLD_RANK=//p' <<< "$env")"
  done
}
victim=""
for _ in $(seq 1 300); do
  victim=$(tagged | awk '$2 == 1 {print $1}')
  [ -n "$victim" ] && break
  sleep 0.1
done
[ -n "$victim" ] || { kill "$job" 2>/dev/null; fail "rank 1 of the job never started"; }
sleep 3  # well into training (steps take 200 ms)
kill -0 "$job" 2>/dev/null || fail "the job ended before rank 1 was killed: $(cat killed.err)"
kill -9 "$victim"
ended=0
for _ in $(seq 1 600); do
  if ! kill -0 "$job" 2>/dev/null; then
    ended=1
    break
  fi
  sleep 0.1
done
if [ "$ended" = 0 ]; then
  kill -9 "$job" 2>/dev/null || true
  fail "the job was still running a minute after rank 1 was killed"
fi
status=0
wait "$job" || status=$?
[ "$status" != 0 ] || fail "the job exited 0 after rank 1 was killed"
left=$(tagged)
[ -z "$left" ] || fail "rank processes remain after the job ended: $left"
echo "killed rank 1 (pid $victim): the job exited with status $status"
echo "PASS"
