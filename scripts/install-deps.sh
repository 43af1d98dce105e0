#!/usr/bin/env bash
# Installs, with apt-get, every Debian package heaptrace needs to build, test
# and benchmark.  Does nothing when all are present.  Needs root (or sudo).
set -euo pipefail

PKGS=(
  # build
  gcc g++ make cmake pkg-config libzstd-dev zlib1g-dev
  # tests: unit framework, fuzzer (clang + libFuzzer runtime), real programs
  libcmocka-dev clang libclang-rt-14-dev python3 sqlite3 git
  # attach tests: a real server traced while it runs
  memcached
  # independent tracer for cross-checks and peer benchmarks
  lttng-tools liblttng-ust-dev babeltrace2 heaptrack hyperfine time
  # stacks and symbols
  libunwind-dev libdw-dev binutils
  # profiling (callgrind) and the exports' real consumers: ms_print, go tool pprof
  valgrind golang-go
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
