#!/usr/bin/env bash
# normnet experiment (docs/experiments.md): `all --quick` runs every study into one directory;
# the CSVs hold the studies, variants, seeds, x values and metrics each study promises; every
# number in report.html equals the CSVs' (the per-study value tables recomputed from
# curves.csv, the free tables equal tables.csv and are recomputed from curves.csv where they
# derive from it: steps to reach an accuracy, final accuracies, accuracy by statistics used,
# divergence counts); the covariate-shift probe at step 0 sees BatchNorm's output (mean 0,
# std 1); `normnet report` rebuilds the same bytes; one study with --seeds/--epochs/--limit
# overrides and the default --out; bad input (unknown study, bad numbers, missing data, --out a
# file) exits non-zero and writes nothing.
# Under NORMNET_TEST_SANITIZED=1 (the sanitizer build; tests/cli/common.sh) `all --quick` runs
# with one seed on 256 training and 100 test images (about an eighth of the work); every check
# above still runs on it (bn-vs-none's probe curve then has 2 points, 5 otherwise).
#
# Usage: bash test_experiment.sh NORMNET_BINARY SOURCE_DIR WORKDIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # bin, work, data, fail, require_data, fresh_workdir
src=$2
require_data
fresh_workdir

# --- Bad input: non-zero exit, a message naming the fault, nothing written. -------------------
bad() {  # bad EXPECTED_TEXT ARGS...
  local want=$1
  shift
  if "$bin" experiment "$@" > bad.out 2> bad.err; then fail "experiment $* succeeded"; fi
  grep -q -- "$want" bad.err || fail "experiment $*: expected '$want' in: $(cat bad.err)"
  [ ! -e badout ] || fail "experiment $* wrote badout"
  [ ! -e experiments ] || fail "experiment $* wrote experiments/"
}
bad "unknown study 'bn-vs-bn'" bn-vs-bn --out badout
bad "--seeds must be" placement --quick --seeds 0 --out badout
bad "--epochs must be" placement --quick --epochs -3 --out badout
bad "--limit must be" placement --quick --limit 0 --out badout
bad "--test-limit must be" placement --quick --test-limit 0 --out badout
bad "no such directory" placement --quick --data "$work/nodata" --out badout
bad "--threads" placement --quick --threads -1 --out badout
bad "" placement --quick --no-such-flag --out badout
bad "" --out badout
touch afile
bad "is not a directory" placement --quick --out afile

# --- One study with overrides and the default --out. ------------------------------------------
"$bin" experiment placement --quick --seeds 1 --epochs 1 --limit 300 --test-limit 200 --threads 1 \
  > one.out 2> one.err || fail "experiment placement: $(cat one.err)"
for f in curves.csv studies.csv report.html; do test -s "experiments/placement/$f" || fail "no experiments/placement/$f"; done
/usr/bin/python3 - <<'EOF_PY' || fail "placement --seeds 1 --epochs 1: wrong rows"
import csv
rows = list(csv.DictReader(open("experiments/placement/curves.csv")))
assert {r["seed"] for r in rows} == {"1"}, {r["seed"] for r in rows}
assert {(r["x_name"], r["x"]) for r in rows} == {("epoch", "1")}
assert {r["variant"] for r in rows} == {"bn-before-relu", "bn-after-relu"}
assert {r["study"] for r in rows} == {"placement"}
EOF_PY

# --- Every study, --quick, into one directory. -------------------------------------------------
# Sanitized: 1 seed, 256 training images (bn-vs-none's 4 steps of 64 give probes at steps 0 and
# 4 instead of 0, 4, 8, 12, 16), 100 test images.
seeds=2 probes=3 reduce=()
if [ "$sanitized" = 1 ]; then seeds=1 probes=2 reduce=(--seeds 1 --limit 256 --test-limit 100); fi
"$bin" experiment all --quick "${reduce[@]}" --threads 1 --out "$work/all" > all.out 2> all.err ||
  fail "experiment all: $(cat all.err)"
[ "$(grep -c 'done in' all.out)" -eq 7 ] || fail "expected 7 studies done: $(cat all.out)"
grep -q -i '<script' all/report.html && fail "report.html holds a script"
cp all/report.html report.first.html
"$bin" report "$work/all" > report.out 2> report.err || fail "normnet report: $(cat report.err)"
cmp -s all/report.html report.first.html || fail "normnet report rebuilt a different report.html"

/usr/bin/python3 - "$seeds" "$probes" <<'EOF_PY' || fail "the experiment's CSVs or report disagree (see above)"
import csv, html.parser, math, os, struct, sys
from collections import defaultdict

seeds = [str(s) for s in range(1, int(sys.argv[1]) + 1)]
min_probes = int(sys.argv[2])

def rows(name):
    return list(csv.DictReader(open("all/" + name)))

curves, tables, studies, dists = rows("curves.csv"), rows("tables.csv"), rows("studies.csv"), rows("distributions.csv")
order = ["bn-vs-none", "learning-rate", "batch-size", "placement", "activation", "covariate-shift", "train-vs-eval"]
assert [s["study"] for s in studies] == order, [s["study"] for s in studies]

def of(study, **kw):
    return [r for r in curves if r["study"] == study and all(r[k] == v for k, v in kw.items())]

def variants(study): return {r["variant"] for r in of(study)}
def xs(study, **kw): return sorted({float(r["x"]) for r in of(study, **kw)})

# Studies, variants, seeds, x values and metrics.
assert variants("bn-vs-none") == {"seed001-bn", "seed001-none", "vgg-mini-bn", "vgg-mini-none"}
assert {r["metric"] for r in of("bn-vs-none")} == {"train_loss", "train_accuracy", "test_accuracy", "probe_accuracy"}
assert {r["x_name"] for r in of("bn-vs-none", metric="probe_accuracy")} == {"step"}
steps = xs("bn-vs-none", metric="probe_accuracy", variant="seed001-bn", seed="1")
assert steps[0] == 0 and len(steps) >= min_probes and all(b - a == 4 for a, b in zip(steps, steps[1:])), steps
assert variants("learning-rate") == {"bn", "none"} and xs("learning-rate") == [0.01, 0.3, 3]
assert variants("batch-size") == {"bn", "gn:8", "ln", "brn", "ghost:16"} and xs("batch-size") == [4, 64]
assert variants("placement") == {"bn-before-relu", "bn-after-relu"} and xs("placement") == [1, 2]
assert variants("activation") == {n + "-" + a for n in ("seed001", "seed002", "seed003-cnn2d") for a in ("relu", "elu")}
assert variants("covariate-shift") == {"bn", "none"}
assert variants("train-vs-eval") == {"running statistics", "batch statistics", "recalibrated"}
assert xs("train-vs-eval") == [0, 0.01, 0.1]
for s in order:
    assert {r["seed"] for r in of(s)} == set(seeds), s
    for r in of(s):
        assert math.isfinite(float(r["value"])), r
    for r in of(s):
        if "accuracy" in r["metric"]:
            assert 0 <= float(r["value"]) <= 1, r

# The report: sections in studies.csv order, with their tables and charts.
class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.cell, self.text, self.h = [], None, None, None
    def handle_starttag(self, tag, attrs):
        if tag == "h2": self.sections.append({"title": "", "tables": [], "figures": []}); self.h = "h2"
        elif tag == "h3": self.h, self.text = "h3", ""
        elif tag == "table" and self.sections: self.sections[-1]["tables"].append({"title": self.text, "rows": []})
        elif tag == "tr" and self.sections: self.sections[-1]["tables"][-1]["rows"].append([])
        elif tag in ("td", "th"): self.cell = ""
        elif tag == "figure" and self.sections: self.sections[-1]["figures"].append(dict(attrs)["id"])
    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.sections[-1]["tables"][-1]["rows"][-1].append(self.cell)
            self.cell = None
        if tag in ("h2", "h3"): self.h = None
    def handle_data(self, data):
        if self.cell is not None: self.cell += data
        elif self.h == "h2": self.sections[-1]["title"] += data
        elif self.h == "h3": self.text += data

page = Page()
page.feed(open("all/report.html").read())
assert [s["title"] for s in page.sections] == [s["title"] for s in studies], [s["title"] for s in page.sections]
section = dict(zip(order, page.sections))

def g(v): return "%.6g" % v

def stats(vals):
    mean = sum(vals) / len(vals)
    ss = 0.0
    for v in vals: ss += (v - mean) * (v - mean)
    return mean, math.sqrt(ss / len(vals))

def mean_text(vals):
    m, s = stats(vals)
    return g(m) + " +- " + g(s)

for s in order:
    sec = section[s]
    # Value tables: recomputed from curves.csv (means over seeds at the last epoch/step of a
    # curve over time, at every x of a sweep).
    want = []
    groups = []
    for r in of(s):
        if (r["metric"], r["x_name"]) not in groups: groups.append((r["metric"], r["x_name"]))
    for metric, x_name in groups:
        vs = []
        for r in of(s, metric=metric, x_name=x_name):
            if r["variant"] not in vs: vs.append(r["variant"])
        for v in vs:
            by_x = defaultdict(list)
            for r in of(s, metric=metric, x_name=x_name, variant=v): by_x[float(r["x"])].append(float(r["value"]))
            keys = sorted(by_x)
            if x_name in ("epoch", "step"): keys = keys[-1:]
            for x in keys:
                vals = by_x[x]
                m, sd = stats(vals)
                want.append([metric, v, g(x), g(m), g(sd), g(min(vals)), g(max(vals)), str(len(vals))])
    got = [t for t in sec["tables"] if t["title"] == "Values (mean over seeds)"]
    assert len(got) == 1, (s, [t["title"] for t in sec["tables"]])
    assert got[0]["rows"][1:] == want, (s, got[0]["rows"][1:], want)
    # Free tables: exactly tables.csv.
    names = []
    for t in tables:
        if t["study"] == s and t["table"] not in names: names.append(t["table"])
    for name in names:
        cells = [t for t in tables if t["study"] == s and t["table"] == name]
        cols, rws = [], []
        for c in cells:
            if c["column"] not in cols: cols.append(c["column"])
            if c["row"] not in rws: rws.append(c["row"])
        value = {(c["row"], c["column"]): c["value"] for c in cells}
        shown = [t for t in sec["tables"] if t["title"] == name]
        assert len(shown) == 1, (s, name)
        assert shown[0]["rows"] == [[""] + cols] + [[r] + [value.get((r, c), "") for c in cols] for r in rws], (s, name)
    # Charts: one per (metric, x_name), plus the distributions; a PNG each.
    n_dist = len({(d["variant"], d["layer"], d["quantity"], d["x_name"]) for d in dists if d["study"] == s})
    assert len(sec["figures"]) == len(groups) + n_dist, (s, sec["figures"])
    for fig in sec["figures"]:
        png = open("all/charts/%s.png" % fig[len("chart-"):], "rb").read()
        assert png[:8] == b"\x89PNG\r\n\x1a\n", fig

def cell(study, table, row, column):
    hits = [t["value"] for t in tables if (t["study"], t["table"], t["row"], t["column"]) == (study, table, row, column)]
    assert len(hits) == 1, (study, table, row, column, hits)
    return hits[0]

# bn-vs-none: steps to reach each probe accuracy, from the probe curves.
for v in variants("bn-vs-none"):
    for target in (0.7, 0.8, 0.85):
        reached = []
        for seed in seeds:
            curve = sorted((float(r["x"]), float(r["value"])) for r in of("bn-vs-none", metric="probe_accuracy", variant=v, seed=seed))
            hit = [x for x, a in curve if a >= target]
            reached.append(hit[0] if hit else None)
        got = [x for x in reached if x is not None]
        text = "not reached" if not got else mean_text(got)
        if got and len(got) < len(reached): text += " (%d of %d seeds)" % (len(got), len(reached))
        assert cell("bn-vs-none", "Steps to reach a probe accuracy (mean +- std over seeds)", v, "accuracy " + g(target)) == text, (v, target)

# learning-rate: diverged runs count at chance level and are counted in the table.
diverged = [t for t in tables if t["study"] == "learning-rate" and t["table"] == "Runs that diverged" and t["column"] == "accuracy counted"]
for d in diverged:
    assert d["value"] == "0.1", d
    norm, _, lr, _, seed = d["row"].split(" ")
    assert [float(r["value"]) for r in of("learning-rate", variant=norm, seed=seed) if g(float(r["x"])) == lr] == [0.1], d
for norm in ("bn", "none"):
    for lr in (0.01, 0.3, 3):
        n = sum(1 for d in diverged if d["row"].startswith("%s lr %s seed" % (norm, g(lr))))
        assert cell("learning-rate", "Diverged runs (of the seeds)", "lr " + g(lr), norm) == "%d of %d" % (n, len(seeds))

# activation: final accuracies from the last epoch's test accuracy.
for net in ("seed001", "seed002", "seed003-cnn2d"):
    fin = {}
    for act in ("relu", "elu"):
        fin[act] = [float(r["value"]) for r in of("activation", variant=net + "-" + act, metric="test_accuracy", x="1")]
        assert cell("activation", "Final test accuracy (mean +- std over seeds)", net, act) == mean_text(fin[act])
    assert cell("activation", "Final test accuracy (mean +- std over seeds)", net, "elu - relu (same seed)") == \
        mean_text([e - r for e, r in zip(fin["elu"], fin["relu"])])

# train-vs-eval: the table is the curves; the momentum does not change training, so the
# batch-statistics and recalibrated accuracies are the same for every momentum.
for m, name in ((0.01, "momentum 0.01"), (0.1, "momentum 0.1"), (0, "cumulative average")):
    for v in ("running statistics", "batch statistics", "recalibrated"):
        vals = [float(r["value"]) for r in of("train-vs-eval", variant=v) if float(r["x"]) == m]
        assert len(vals) == len(seeds)
        assert cell("train-vs-eval", "Test accuracy by statistics used (mean +- std over seeds)", name, v) == mean_text(vals)
for v in ("batch statistics", "recalibrated"):
    assert len({(r["seed"], r["value"]) for r in of("train-vs-eval", variant=v)}) == len(seeds), v

# covariate-shift: distributions of relu1 and relu2 inputs at every probe step; at step 0
# (before any update) BatchNorm's training-mode output has mean 0 and std 1 per channel, so
# over the layer too; the curves' mean is the distribution's.
for v in ("bn", "none"):
    for layer in ("relu1", "relu2"):
        ds = [d for d in dists if d["study"] == "covariate-shift" and d["variant"] == v and d["layer"] == layer and d["seed"] == "1"]
        assert ds and {d["quantity"] for d in ds} == {"preactivation"} and ds[0]["x"] == "0", (v, layer)
        for d in ds:
            q = [float(d[k]) for k in ("min", "p5", "p25", "p50", "p75", "p95", "max")]
            assert q == sorted(q), d
            means = [r["value"] for r in of("covariate-shift", variant=v, seed="1", metric=layer + "_mean", x=d["x"])]
            assert len(means) == 1 and float(means[0]) == float(d["mean"]), (d, means)
        if v == "bn":
            assert abs(float(ds[0]["mean"])) < 1e-3 and abs(float(ds[0]["std"]) - 1) < 1e-2, ds[0]
print("experiment checks passed")
EOF_PY
echo "test_experiment: ok"
