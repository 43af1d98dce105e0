#!/usr/bin/env bash
# Quick start, step 2 (and CI): install what is missing, build, and run the
# whole test suite:
#   1. the normal build with -Werror: every test (unit, e2e, real programs)
#   2. ASan+UBSan build: the unit tests and the collector-side e2e tests
#      (not the "long" attach/detach cycling tests: runtime-side, slow here)
#   3. TSan build: the concurrency tests
#   4. clang + libFuzzer: each decoder fuzzed for a fixed short time
# Ends with one line "tests: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || exit 1
JOBS=$(nproc)
passed=0; failed=0; failed_names=()

# run_suite NAME BUILD_DIR "CMAKE ARGS" "CTEST ARGS" [TARGETS...]
run_suite() {
  local name=$1 dir=$2 cargs=$3 targs=$4 log
  shift 4
  local targets=()
  [ $# -gt 0 ] && targets=(--target "$@")
  echo "=== $name ==="
  # shellcheck disable=SC2086
  if ! cmake -S . -B "$dir" -DHT_WERROR=ON $cargs >"$dir.configure.log" 2>&1 ||
     ! cmake --build "$dir" -j"$JOBS" "${targets[@]}" >"$dir.build.log" 2>&1; then
    echo "$name: build FAILED"; tail -n 40 "$dir.configure.log" "$dir.build.log" 2>/dev/null
    failed=$((failed + 1)); failed_names+=("$name:build"); return
  fi
  log=$(mktemp)
  # shellcheck disable=SC2086
  ctest --test-dir "$dir" --output-on-failure --timeout 600 $targs 2>&1 | tee "$log"
  local p f
  p=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .* Passed' "$log")
  f=$(grep -cE '^ *[0-9]+/[0-9]+ Test +#[0-9]+: .*(\*\*\*|Failed|Timeout|Exception)' "$log")
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$f" != 0 ]; then failed_names+=("$name"); fi
  if [ "$p" = 0 ] && [ "$f" = 0 ]; then
    echo "$name: no test ran"; failed=$((failed + 1)); failed_names+=("$name:empty")
  fi
  rm -f "$log"
}

run_suite "normal build" build-test "-DCMAKE_BUILD_TYPE=RelWithDebInfo" ""
run_suite "ASan+UBSan" build-asan "-DCMAKE_BUILD_TYPE=Debug -DHT_SANITIZE=address,undefined" "-L unit|e2e -LE long"
run_suite "TSan" build-tsan "-DCMAKE_BUILD_TYPE=RelWithDebInfo -DHT_SANITIZE=thread" "-L tsan"
run_suite "fuzz" build-fuzz "-DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DHT_FUZZ=ON" "-L fuzz" fuzz_reader gen_seeds fuzz_cfi gen_cfi_seeds

echo
[ ${#failed_names[@]} -gt 0 ] && echo "failed suites: ${failed_names[*]}"
echo "tests: $passed passed, $failed failed"
[ "$failed" = 0 ]
