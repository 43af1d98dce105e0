#!/usr/bin/env bash
# Quick start, step 1: install what is missing, build, and record the bundled
# demo program (threads parsing a text corpus into hash tables) with call
# stacks (libunwind); prints the session statistics and the heap summary
# with its top allocation sites.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p out
exec build/heaptrace record --stacks dwarf -o out/demo.htrace -- build/demo 4 200000
