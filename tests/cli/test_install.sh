#!/usr/bin/env bash
# Installs normnet into a temporary prefix and builds examples/ against it with
# find_package(normnet), as the README shows, then runs the example for a moment.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # bin, work, data, fresh_workdir
src=$2
build=$(dirname "$bin")
fresh_workdir
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/include/normnet/layers.h"
test -f "$work/prefix/share/normnet/models/seed001.json"
cmake -S "$src/examples" -B "$work/example" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log"
cmake --build "$work/example" > "$work/build.log"
if [ -d "$data" ]; then
  "$work/example/train_small" | tee "$work/run.log"
  grep -q "epoch 2: mean loss" "$work/run.log"
fi
echo "install test passed"
