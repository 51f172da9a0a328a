#!/usr/bin/env bash
# normnet train --report and normnet report (docs/report-format.md): a tiny run writes
# bn_stats.csv, report.html and a PNG per chart; the report's tables hold metrics.csv's numbers
# and bn_stats.csv's statistics equal those of the saved running statistics; `normnet report`
# rebuilds the same bytes; a run resumed after 1 epoch (and one whose bn_stats.csv lags or runs
# ahead of its train state) ends with the bn_stats.csv of the run that never stopped; an
# experiment directory; bad input (missing directory, no CSV, malformed fields naming
# file:line:column) exits non-zero and writes no report.
#
# Usage: bash test_report.sh NORMNET_BINARY SOURCE_DIR WORKDIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # bin, work, data, fail, require_data, fresh_workdir
src=$2
require_data
fresh_workdir
train() { "$bin" train --limit 512 --batch-size 64 --quiet "$@"; }

# --- A run with --report. ---------------------------------------------------------------------
train --epochs 2 --report --out "$work/run" > train.txt 2> train.err || fail "train --report: $(cat train.err)"
for f in metrics.csv bn_stats.csv report.html; do test -s "run/$f" || fail "train --report did not write run/$f"; done
layers=$(cut -d, -f2 run/bn_stats.csv | tail -n +2 | sort -u | wc -l)
[ "$layers" -ge 1 ] || fail "bn_stats.csv names no layer"
[ "$(ls run/charts/*.png | wc -l)" -eq $((4 + 4 * layers)) ] ||
  fail "expected $((4 + 4 * layers)) PNG charts, got: $(ls run/charts)"
grep -q -i '<script' run/report.html && fail "report.html holds a script"

# The report's numbers are metrics.csv's; bn_stats.csv's are those of the saved model.
/usr/bin/python3 - "$src" <<'EOF_PY' || fail "report or bn_stats.csv disagree with metrics.csv or the model"
import csv, html.parser, struct, sys
import numpy as np
sys.path.insert(0, sys.argv[1] + "/tools")
from normnet_st import read_safetensors

class Tables(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.cell, self.svgs, self.figures = [], None, 0, []
    def handle_starttag(self, tag, attrs):
        if tag == "table": self.tables.append([])
        elif tag == "tr": self.tables[-1].append([])
        elif tag in ("td", "th"): self.cell = ""
        elif tag == "svg": self.svgs += 1
        elif tag == "figure": self.figures.append(dict(attrs)["id"])
    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[-1][-1].append(self.cell)
            self.cell = None
    def handle_data(self, data):
        if self.cell is not None: self.cell += data

page = Tables()
page.feed(open("run/report.html").read())
metrics = list(csv.reader(open("run/metrics.csv")))
assert len(metrics) == 3, metrics
per_epoch = [t for t in page.tables if t and t[0] == metrics[0]]
assert len(per_epoch) == 1, "no table with metrics.csv's header"
assert per_epoch[0] == metrics, (per_epoch[0], metrics)
summary = {row[0]: row[1] for row in page.tables[0][1:]}
last = dict(zip(metrics[0], metrics[-1]))
assert summary["final test accuracy"] == last["test_accuracy"], summary
assert summary["final train loss"] == last["train_loss"], summary
assert summary["epochs"] == "2", summary
assert page.svgs == len(page.figures) and page.svgs >= 8, (page.svgs, page.figures)
for name in ("chart-loss", "chart-accuracy", "chart-lr", "chart-images-per-second"):
    assert name in page.figures, name
for fig in page.figures:
    png = open("run/charts/%s.png" % fig[len("chart-"):], "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n", fig
    assert struct.unpack(">II", png[16:24])[0] >= 300, fig

rows = list(csv.DictReader(open("run/bn_stats.csv")))
assert sorted({r["epoch"] for r in rows}) == ["1", "2"], "bn_stats.csv should hold epochs 1 and 2"
tensors, _ = read_safetensors("run/model.safetensors")
checked = 0
for r in rows:
    if r["epoch"] != "2":
        continue
    v = tensors[r["layer"] + "." + r["quantity"]].astype(np.float64)
    assert int(r["count"]) == v.size, r
    want = {"min": v.min(), "p5": np.percentile(v, 5), "p25": np.percentile(v, 25), "p50": np.median(v),
            "p75": np.percentile(v, 75), "p95": np.percentile(v, 95), "max": v.max(), "mean": v.mean(),
            "std": v.std()}
    for k, w in want.items():
        assert abs(float(r[k]) - w) <= 1e-6 * (1 + abs(w)), (r["layer"], r["quantity"], k, r[k], w)
    checked += 1
assert checked >= 4, checked
EOF_PY

# normnet report rebuilds the same report from the files.
cp run/report.html report-by-train.html
"$bin" report "$work/run" > report.txt 2> report.err || fail "normnet report: $(cat report.err)"
grep -q "run report written to $work/run/report.html" report.txt || fail "report printed: $(cat report.txt)"
cmp -s run/report.html report-by-train.html || fail "normnet report wrote another report than train --report"

# --- Resume: bn_stats.csv as if the run had never stopped. --------------------------------------
train --epochs 1 --report --out "$work/resumed" > r1.txt 2> r1.err || fail "train --epochs 1: $(cat r1.err)"
"$bin" train --resume "$work/resumed" --epochs 2 --quiet > r2.txt 2> r2.err || fail "resume: $(cat r2.err)"
cmp -s run/bn_stats.csv resumed/bn_stats.csv || fail "bn_stats.csv after --resume differs from the uninterrupted run's"
[ "$(ls resumed/charts/*.png | wc -l)" -eq $((4 + 4 * layers)) ] || fail "the resumed run's report lacks charts"
# Stopped after the train state but before bn_stats.csv: its last epoch's rows are recomputed.
grep -v '^2,' resumed/bn_stats.csv > lagging.csv && cp lagging.csv resumed/bn_stats.csv
"$bin" train --resume "$work/resumed" --quiet > r3.txt 2> r3.err || fail "resume of a finished run: $(cat r3.err)"
cmp -s run/bn_stats.csv resumed/bn_stats.csv || fail "bn_stats.csv missing epoch 2 was not completed on --resume"
# Rows past the train state (a later run's) are dropped.
grep '^2,' run/bn_stats.csv | sed 's/^2,/3,/' >> resumed/bn_stats.csv
"$bin" train --resume "$work/resumed" --quiet > r4.txt 2> r4.err || fail "resume: $(cat r4.err)"
cmp -s run/bn_stats.csv resumed/bn_stats.csv || fail "bn_stats.csv rows after the resumed epoch were kept"

# --- An experiment directory. -------------------------------------------------------------------
mkdir -p exp
python3 - <<'EOF_PY'
rows = ["study,variant,seed,x_name,x,metric,value"]
for seed in (1, 2):
    for e in (1, 2, 3):
        rows.append("bn-vs-none,bn,%d,epoch,%d,test_accuracy,%.4f" % (seed, e, 0.8 + 0.02 * e + 0.01 * seed))
        rows.append("bn-vs-none,none,%d,epoch,%d,test_accuracy,%.4f" % (seed, e, 0.6 + 0.05 * e))
for lr in (0.003, 0.03, 0.3, 3):
    rows.append("learning-rate,bn,1,lr,%g,final_test_accuracy,0.8" % lr)
open("exp/curves.csv", "w").write("\n".join(rows) + "\n")
open("exp/studies.csv", "w").write("study,title,description\nbn-vs-none,BN against no BN,Test accuracy per epoch.\n")
EOF_PY
"$bin" report exp > exp.txt 2> exp.err || fail "report on an experiment: $(cat exp.err)"
grep -q "experiment report written to exp/report.html" exp.txt || fail "experiment report: $(cat exp.txt)"
grep -q '<h2>BN against no BN</h2>' exp/report.html || fail "experiment report lacks the study title"
test -s exp/charts/bn-vs-none-test-accuracy-epoch.png || fail "experiment report lacks the curve PNG"
test -s exp/charts/learning-rate-final-test-accuracy-lr.png || fail "experiment report lacks the sweep PNG"
# The mean over the two seeds of bn at epoch 3 is in the table: (0.87 + 0.88) / 2.
grep -q '<td class="num">0.875</td>' exp/report.html || fail "experiment table lacks the mean over seeds"

# --- Bad input: an error naming the fault, exit 1, no report written. ---------------------------
expect_error() {  # expect_error WHAT PATTERN DIR
  local what=$1 pattern=$2 dir=$3
  if "$bin" report "$dir" > bad.out 2> bad.err; then fail "$what: normnet report exited 0"; fi
  grep -q -e "$pattern" bad.err || fail "$what: expected '$pattern' in: $(cat bad.err)"
  [ "$(wc -l < bad.err)" -eq 1 ] || fail "$what: more than one line of error: $(cat bad.err)"
}
expect_error "missing directory" "directory 'nowhere' does not exist" nowhere
test -e nowhere && fail "normnet report created a missing directory"
mkdir -p empty
expect_error "no CSV files" "holds neither metrics.csv" empty
[ -z "$(ls empty)" ] || fail "normnet report wrote into a directory without CSV files: $(ls empty)"
touch not-a-dir
expect_error "a file" "is not a directory" not-a-dir

mkdir -p badrun && cp run/metrics.csv badrun/
sed -i '3s/^2,\([^,]*\),/2,\1,oops/' badrun/metrics.csv  # the train_accuracy of epoch 2
expect_error "malformed metrics.csv" "badrun/metrics.csv:3:[0-9]*: train_accuracy '.*' is not a finite number" badrun
test -e badrun/report.html && fail "a report was written for a malformed metrics.csv"
test -e badrun/charts && fail "charts were written for a malformed metrics.csv"

# A malformed file in a directory with a report leaves the old report as it was.
cp -r run badbn
cp badbn/report.html before.html
sed -i '2s/,[^,]*$/,x/' badbn/bn_stats.csv  # the std of the first row
expect_error "malformed bn_stats.csv" "badbn/bn_stats.csv:2:[0-9]*: std 'x' is not a finite number" badbn
cmp -s badbn/report.html before.html || fail "a failed rebuild changed report.html"
printf 'epoch,train_loss\n' > badrun/metrics.csv
expect_error "missing columns" "badrun/metrics.csv:1:1: no column 'train_accuracy'" badrun
printf 'study,variant,seed,x_name,x,metric,value\n' > exp/curves.csv
expect_error "no rows" "exp/curves.csv: no rows" exp
printf 'study,variant,seed,x_name,x,metric,value\ns,v,1,epoch,1,acc\n' > exp/curves.csv
expect_error "short row" "exp/curves.csv:2:[0-9]*: 6 fields, expected 7" exp
echo "test_report: all passed"
