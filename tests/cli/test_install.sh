#!/usr/bin/env bash
# Installs normnet into a temporary prefix and builds examples/ against it with
# find_package(normnet), as the README shows, then runs the example for a moment.
set -euo pipefail
bin=$1 src=$2 work=$3
build=$(dirname "$bin")
rm -rf "$work" && mkdir -p "$work"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/include/normnet/layers.h"
test -f "$work/prefix/share/normnet/models/seed001.json"
cmake -S "$src/examples" -B "$work/example" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log"
cmake --build "$work/example" > "$work/build.log"
if [ -d /usr/share/datasets/fashion-mnist ]; then
  "$work/example/train_small" | tee "$work/run.log"
  grep -q "epoch 2: mean loss" "$work/run.log"
fi
echo "install test passed"
