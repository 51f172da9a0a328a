#!/usr/bin/env bash
# The HTML report in a browser: headless Chromium (Debian's `chromium`) opens the report of a
# tiny training run and of an experiment directory (curves.csv written here), with no console message (the report has no
# script and loads nothing), a DOM holding every chart as inline SVG with its title, and a
# screenshot that is not blank and shows the charts' colours. Without chromium: SKIP (exit 77).
#
# Usage: bash test_report_chromium.sh NORMNET_BINARY SOURCE_DIR WORKDIR
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # bin, work, data, fail, require_data, fresh_workdir
src=$2
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "SKIP: chromium not installed (scripts/setup installs Debian's chromium)"
  exit 77
fi
require_data 77
fresh_workdir
"$bin" train --limit 256 --batch-size 64 --epochs 2 --quiet --report --out "$work/run" > train.txt 2> train.err ||
  fail "train --report: $(cat train.err)"
mkdir -p exp
python3 - <<'EOF_PY'
rows = ["study,variant,seed,x_name,x,metric,value"]
for seed in (1, 2, 3):
    for e in range(1, 6):
        rows.append("bn-vs-none,bn,%d,epoch,%d,test_loss,%.4f" % (seed, e, 0.9 / e + 0.01 * seed))
        rows.append("bn-vs-none,none,%d,epoch,%d,test_loss,%.4f" % (seed, e, 1.5 / e + 0.02 * seed))
for lr in (0.003, 0.01, 0.03, 0.1, 0.3, 1, 3):
    rows.append("learning-rate,bn,1,lr,%g,final_test_accuracy,%.3f" % (lr, 0.9 - 0.02 * abs(lr - 0.1)))
    rows.append("learning-rate,none,1,lr,%g,final_test_accuracy,%.3f" % (lr, 0.85 - 0.1 * abs(lr - 0.03)))
open("exp/curves.csv", "w").write("\n".join(rows) + "\n")
EOF_PY
"$bin" report exp > exp.txt 2> exp.err || fail "normnet report exp: $(cat exp.err)"

chrome() {  # chrome OUTPUT_FLAG... URL: headless, no sandbox (root in CI), no GPU, logs on stderr
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
    --enable-logging=stderr --v=0 --user-data-dir="$work/profile" "$@"
}
for page in run/report.html exp/report.html; do
  url="file://$work/$page"
  chrome --window-size=1200,1600 --screenshot="$work/shot.png" "$url" > shot.out 2> shot.err ||
    fail "chromium --screenshot exited non-zero: $(tail -n 5 shot.err)"
  # Console messages (errors included) are logged as CONSOLE lines; network failures as net:: errors.
  if grep -E 'CONSOLE|net::ERR|Uncaught' shot.err; then fail "console messages while rendering $page"; fi
  test -s shot.png || fail "no screenshot of $page"
  chrome --dump-dom "$url" > dom.html 2> dom.err || fail "chromium --dump-dom exited non-zero: $(tail -n 5 dom.err)"
  if grep -E 'CONSOLE|net::ERR|Uncaught' dom.err; then fail "console messages while loading $page"; fi
  python3 - "$page" <<'EOF_PY' || fail "the rendered report of $page lacks its charts or is blank"
import html, re, struct, sys, zlib

page = sys.argv[1]
src = open(page).read()
dom = open("dom.html").read()
figures = re.findall(r'<figure id="([^"]+)"', src)
assert len(figures) >= 2, figures
# Chromium parsed every chart: as many <svg> elements in the DOM, each figure and title there.
assert dom.count("<svg") == len(figures), (dom.count("<svg"), len(figures))
for f in figures:
    assert 'id="%s"' % f in dom, f
text = html.unescape(dom)
for title in re.findall(r"<title>([^<]*)</title>", src)[1:]:
    assert html.unescape(title) in text, title
assert "<script" not in dom.lower()

def decode_png(path):
    """(width, height, rows of RGB tuples): 8-bit RGB or RGBA, non-interlaced."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        cur = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride): cur[i] = (cur[i] + cur[i - bpp]) & 255
        elif f == 2:
            for i in range(stride): cur[i] = (cur[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride): cur[i] = (cur[i] + ((cur[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif f == 4:
            for i in range(stride):
                a = cur[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                cur[i] = (cur[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(cur))
        prev = cur
    return w, h, bpp, rows

w, h, bpp, rows = decode_png("shot.png")
assert (w, h) == (1200, 1600), (w, h)
nonwhite = colours = 0
blue = orange = 0
for row in rows[::3]:
    for x in range(0, w, 3):
        r, g, b = row[x * bpp:x * bpp + 3]
        if (r, g, b) != (255, 255, 255): nonwhite += 1
        # The palette's first two colours (#0072b2, #d55e00): train and test lines.
        if abs(r - 0) < 40 and abs(g - 0x72) < 40 and abs(b - 0xb2) < 40: blue += 1
        if abs(r - 0xd5) < 40 and abs(g - 0x5e) < 40 and b < 60: orange += 1
total = len(rows[::3]) * len(range(0, w, 3))
assert nonwhite > total * 0.02, "the screenshot is nearly blank (%d of %d pixels not white)" % (nonwhite, total)
assert blue > 20 and orange > 20, "the charts' line colours are missing (blue %d, orange %d)" % (blue, orange)
EOF_PY
done
echo "test_report_chromium: all passed"
