#!/usr/bin/env bash
# full_disk.sh HEAPTRACE - recording onto a full file system: one clear line
# on stderr, the program runs to its end with its own output, and record
# exits non-zero because the trace is incomplete.  Needs root (a 64 KiB
# tmpfs is mounted); CI runs as root.
set -u
ht=$1
dir=$(mktemp -d)
trap 'umount "$dir" 2>/dev/null; rmdir "$dir"' EXIT
if ! mount -t tmpfs -o size=64k tmpfs "$dir"; then
  echo "FAIL: cannot mount a small tmpfs (this test needs root)"
  exit 1
fi
out=$(PYTHONMALLOC=malloc "$ht" record -q -o "$dir/t.htrace" -- \
      python3 -c 'x = [str(i) * 3 for i in range(300000)]; print("done", len(x))' 2>"$dir.err")
rc=$?
err=$(cat "$dir.err"); rm -f "$dir.err"
fail=0
[ "$out" = "done 300000" ] || { echo "FAIL: program output changed: '$out'"; fail=1; }
[ "$rc" = 1 ] || { echo "FAIL: exit status $rc, expected 1 (trace incomplete)"; fail=1; }
n=$(printf '%s\n' "$err" | grep -c '^heaptrace: writing .*t.htrace: No space left on device')
[ "$n" = 1 ] || { echo "FAIL: expected one 'No space left on device' line, stderr was:"; printf '%s\n' "$err"; fail=1; }
lines=$(printf '%s\n' "$err" | grep -c .)
[ "$lines" = 1 ] || { echo "FAIL: stderr has $lines lines, expected 1:"; printf '%s\n' "$err"; fail=1; }
[ $fail = 0 ] && echo "ok: full disk: one clear line, program unchanged, exit 1"
exit $fail
