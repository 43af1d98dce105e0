#!/bin/bash
# bad_input.sh - the heaptrace command on bad input (ctest label "e2e").
#
#   bad_input.sh HEAPTRACE GROUP
#
# GROUP is one of:
#   dump        `heaptrace dump` on missing / empty / foreign / truncated /
#               corrupt / future-version files
#   summary     the same for `heaptrace summary`
#   record      `heaptrace record` with an unusable output path, a missing or
#               non-executable command, bad options
#   passthrough `heaptrace record` leaves CMD's stdin, stdout, stderr and exit
#               status (128+N for signal N) alone
#   exit_record the trace records how the program ended (PROCESS_END)
#
# Expectations for a file that cannot be read (or not entirely): exactly one
# line on stderr, starting with "heaptrace: " and naming the file; non-zero
# exit status below 128 (no crash); for truncated/corrupt traces every event
# of the intact chunks is still printed, identical to the undamaged dump.
# The traces are recorded here from /bin/sh; chunk boundaries are read from
# the file (docs/FORMAT.md §1-2), so the checks do not depend on its size.
set -u

if [ $# -ne 2 ]; then
    echo "usage: $0 HEAPTRACE GROUP" >&2
    exit 2
fi
HT=$1
GROUP=$2
case $HT in /*) ;; *) HT=$PWD/$HT ;; esac
if [ ! -x "$HT" ]; then
    echo "FAIL: $HT is not an executable" >&2
    exit 1
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/ht-cli-test.XXXXXX") || exit 1
cleanup() { chmod -R u+w "$TMP" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
cd "$TMP" || exit 1
ulimit -c 0 # the signal cases must not leave core files around

FAILS=0
CHECKS=0
OUT=$TMP/stdout
ERR=$TMP/stderr

fail() {
    FAILS=$((FAILS + 1))
    echo "FAIL: $CASE: $*"
    echo "  --- stderr:"
    sed -n '1,10s/^/  | /p' "$ERR"
    echo "  --- stdout (first lines):"
    sed -n '1,5s/^/  | /p' "$OUT"
}
ok() { echo "ok:   $CASE"; }

# run CMD...: runs with stdin from /dev/null (unless STDIN_FILE is set),
# captures stdout/stderr, sets $st.  A hang is a failure, not a timing check.
run() {
    timeout -k 5 60 "$@" <"${STDIN_FILE:-/dev/null}" >"$OUT" 2>"$ERR"
    st=$?
    if [ $st -eq 124 ]; then echo "  (timed out after 60 s: $*)"; fi
}

# The checks below return 1 (after recording a failure) or 0.
expect_status() { # N
    CHECKS=$((CHECKS + 1))
    [ "$st" -eq "$1" ] && return 0
    fail "exit status $st, expected $1"
    return 1
}

expect_no_crash_nonzero() {
    CHECKS=$((CHECKS + 1))
    if [ "$st" -eq 0 ]; then
        fail "exit status 0, expected non-zero"
        return 1
    fi
    if [ "$st" -ge 124 ]; then
        fail "exit status $st: crashed, killed or hung"
        return 1
    fi
    if grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer|Segmentation|core dumped' "$ERR"; then
        fail "sanitizer or crash report on stderr"
        return 1
    fi
    return 0
}

# One line on stderr, "heaptrace: ", mentioning $1 (a file or command name).
expect_one_error_line() { # WHAT
    CHECKS=$((CHECKS + 1))
    local n
    n=$(wc -l <"$ERR")
    if [ "$n" -ne 1 ]; then
        fail "$n lines on stderr, expected exactly 1"
        return 1
    fi
    if ! head -n1 "$ERR" | grep -q '^heaptrace: '; then
        fail "stderr does not start with 'heaptrace: '"
        return 1
    fi
    if ! grep -qF -- "$1" "$ERR"; then
        fail "the message does not name '$1'"
        return 1
    fi
    return 0
}

expect_stderr_matches() { # ERE
    CHECKS=$((CHECKS + 1))
    grep -qE -- "$1" "$ERR" && return 0
    fail "stderr does not match /$1/"
    return 1
}

expect_stderr_not_matches() { # ERE
    CHECKS=$((CHECKS + 1))
    grep -qE -- "$1" "$ERR" || return 0
    fail "stderr matches /$1/ but should not"
    return 1
}

expect_stdout_empty() {
    CHECKS=$((CHECKS + 1))
    [ ! -s "$OUT" ] && return 0
    fail "stdout is not empty"
    return 1
}

expect_stdout_equals_file() { # FILE
    CHECKS=$((CHECKS + 1))
    cmp -s "$OUT" "$1" && return 0
    fail "stdout differs from $(basename "$1"): $(diff "$1" "$OUT" | head -n 4 | tr '\n' '|')"
    return 1
}

expect_absent() { # PATH
    CHECKS=$((CHECKS + 1))
    [ ! -e "$1" ] && return 0
    fail "$1 exists but should not"
    return 1
}

# ---- byte-level helpers --------------------------------------------------

u32_at() { od -An -tu4 -j "$2" -N 4 "$1" | tr -d ' '; }
u8_at() { od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' '; }

put_bytes() { # FILE OFFSET BYTE... (decimal)
    local f=$1 off=$2 s="" b
    shift 2
    for b in "$@"; do s="$s\\$(printf %03o "$b")"; done
    printf "$s" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
}
put_u16() { put_bytes "$1" "$2" $(($3 & 255)) $((($3 >> 8) & 255)); }
put_u32() { put_bytes "$1" "$2" $(($3 & 255)) $((($3 >> 8) & 255)) $((($3 >> 16) & 255)) $((($3 >> 24) & 255)); }
xor_byte() { put_bytes "$1" "$2" $(($(u8_at "$1" "$2") ^ $3)); }

# Recompute the header CRC (crc32 of the 256 header bytes with the field
# zeroed; the gzip trailer carries the same CRC-32, little-endian).
fix_header_crc() { # FILE
    head -c 256 "$1" >"$TMP/hdr.bin"
    put_u32 "$TMP/hdr.bin" 20 0
    gzip -c -n <"$TMP/hdr.bin" | tail -c 8 | head -c 4 | dd of="$1" bs=1 seek=20 conv=notrunc status=none
}

# Chunk table of a trace: C_OFF[i] C_HS[i] C_STORED[i] C_RECS[i], NCHUNKS.
read_chunks() { # FILE
    local f=$1 size off hs
    size=$(stat -c %s "$f")
    off=$(u32_at "$f" 12)
    NCHUNKS=0
    C_OFF=() C_HS=() C_STORED=() C_RECS=()
    while [ $((off + 48)) -le "$size" ]; do
        [ "$(u32_at "$f" "$off")" = 1262703688 ] || return 1 # "HTCK"
        hs=$(u32_at "$f" $((off + 4)))
        C_OFF[NCHUNKS]=$off
        C_HS[NCHUNKS]=$hs
        C_RECS[NCHUNKS]=$(u32_at "$f" $((off + 32)))
        C_STORED[NCHUNKS]=$(u32_at "$f" $((off + 40)))
        off=$((off + hs + C_STORED[NCHUNKS]))
        NCHUNKS=$((NCHUNKS + 1))
    done
    [ "$off" -eq "$size" ]
}

# ---- a real trace to damage ----------------------------------------------

# good.htrace: /bin/sh running a tiny script (its allocations in a process
# chunk, then the session chunk).  good.txt / good.sum: its dump / summary.
make_good_trace() {
    CASE="setup: record a trace of /bin/sh"
    run "$HT" record -q -o good.htrace -- /bin/sh -c 'x=abc; y="$x$x"; exit 0'
    expect_status 0 || return 1
    if ! read_chunks good.htrace; then
        fail "cannot walk the chunks of good.htrace"
        return 1
    fi
    if [ "$NCHUNKS" -lt 2 ]; then
        fail "good.htrace has $NCHUNKS chunk(s); the damage cases need 2 or more"
        return 1
    fi
    run "$HT" dump good.htrace
    expect_status 0 || return 1
    cp "$OUT" good.txt
    if [ -s "$ERR" ]; then
        fail "stderr not empty for an intact trace"
        return 1
    fi
    local total=0 i
    for ((i = 0; i < NCHUNKS; i++)); do total=$((total + C_RECS[i])); done
    if [ "$(wc -l <good.txt)" -ne "$total" ]; then
        fail "dump printed $(wc -l <good.txt) lines for $total records"
        return 1
    fi
    if ! grep -q ' alloc ' good.txt; then
        fail "the trace of /bin/sh has no alloc events"
        return 1
    fi
    run "$HT" summary good.htrace
    expect_status 0 || return 1
    cp "$OUT" good.sum
    ok
    return 0
}

# Lines of good.txt that belong to chunks FIRST..LAST (0-based).
lines_of_chunks() { # FIRST LAST
    local start=1 i count=0
    for ((i = 0; i < $1; i++)); do start=$((start + C_RECS[i])); done
    for ((i = $1; i <= $2; i++)); do count=$((count + C_RECS[i])); done
    tail -n +"$start" good.txt | head -n "$count"
}

# Builds the damaged files.  Each gets an expectation file NAME.expect:
# the dump output of its intact part ("-" if the file is refused).
make_bad_files() {
    local last=$((NCHUNKS - 1)) o
    local size
    size=$(stat -c %s good.htrace)

    : >empty.htrace
    if [ -r /etc/passwd ]; then cp /etc/passwd passwd.htrace; else printf 'root:x:0:0:root:/root:/bin/sh\n' >passwd.htrace; fi
    mkdir dir.htrace
    head -c 100 good.htrace >short_header.htrace

    # a flipped bit in the file header (hostname): the header CRC catches it
    cp good.htrace header_bitflip.htrace
    xor_byte header_bitflip.htrace 70 4

    # a future major version, with the now stale CRC and with a fixed one
    cp good.htrace future_major.htrace
    put_u16 future_major.htrace 8 99
    cp future_major.htrace future_major_crc.htrace
    fix_header_crc future_major_crc.htrace

    # a newer minor version (FORMAT.md: readers accept any minor)
    cp good.htrace newer_minor.htrace
    put_u16 newer_minor.htrace 10 9
    fix_header_crc newer_minor.htrace
    cp good.txt newer_minor.expect

    # a larger header (FORMAT.md: minor versions may grow header_size)
    { head -c 256 good.htrace; head -c 256 /dev/zero; tail -c +257 good.htrace; } >big_header.htrace
    put_u16 big_header.htrace 10 1
    put_u32 big_header.htrace 12 512
    fix_header_crc big_header.htrace
    cp good.txt big_header.expect

    # truncated inside the last chunk's payload / header: all but it intact
    head -c $((C_OFF[last] + C_HS[last] + C_STORED[last] / 2)) good.htrace >trunc_payload.htrace
    lines_of_chunks 0 $((last - 1)) >trunc_payload.expect
    head -c $((C_OFF[last] + 20)) good.htrace >trunc_chunk_header.htrace
    cp trunc_payload.expect trunc_chunk_header.expect
    # truncated inside the first chunk: nothing intact
    head -c $((C_OFF[0] + C_HS[0] + C_STORED[0] / 2)) good.htrace >trunc_first.htrace
    : >trunc_first.expect

    # a flipped bit in the first chunk's payload: CRC mismatch, skipped,
    # the reader resynchronises on the next chunk
    cp good.htrace payload_bitflip.htrace
    xor_byte payload_bitflip.htrace $((C_OFF[0] + C_HS[0] + C_STORED[0] / 2)) 1
    lines_of_chunks 1 "$last" >payload_bitflip.expect

    # the first chunk's magic destroyed
    cp good.htrace chunk_magic.htrace
    put_u32 chunk_magic.htrace "${C_OFF[0]}" 0x2a2a2a2a
    cp payload_bitflip.expect chunk_magic.expect

    # the first chunk's stored_size points past the end of the file
    cp good.htrace bad_size.htrace
    put_u32 bad_size.htrace $((C_OFF[0] + 40)) $((size * 4))
    cp payload_bitflip.expect bad_size.expect

    # the last chunk's stored_size points past the end: a truncated tail
    cp good.htrace bad_size_last.htrace
    put_u32 bad_size_last.htrace $((C_OFF[last] + 40)) $((size * 4))
    cp trunc_payload.expect bad_size_last.expect

    # 100 bytes of garbage between the first and second chunk: nothing lost
    o=$((C_OFF[0] + C_HS[0] + C_STORED[0]))
    { head -c "$o" good.htrace; head -c 100 /dev/zero | tr '\0' '\252'; tail -c +$((o + 1)) good.htrace; } >garbage_between.htrace
    cp good.txt garbage_between.expect
}

# ---- dump / summary --------------------------------------------------------

refused_file() { # VERB NAME [message ERE]
    local verb=$1 name=$2
    CASE="$verb: $name"
    run "$HT" "$verb" "$TMP/$name"
    expect_no_crash_nonzero && expect_one_error_line "$TMP/$name" && expect_stdout_empty || return
    if [ $# -ge 3 ]; then expect_stderr_matches "$3" || return; fi
    if [ $# -ge 4 ]; then expect_stderr_not_matches "$4" || return; fi
    ok
}

# A damaged trace: the intact part is printed, one line says what was lost.
partly_read() { # VERB NAME
    local verb=$1 name=$2
    CASE="$verb: $name"
    run "$HT" "$verb" "$name"
    expect_no_crash_nonzero && expect_one_error_line "$name" || return
    if [ "$verb" = dump ]; then
        expect_stdout_equals_file "${name%.htrace}.expect" || return
    else
        summary_matches "${name%.htrace}.expect" || return
    fi
    ok
}

# An acceptable trace (newer minor, larger header): read as the original.
fully_read() { # VERB NAME
    local verb=$1 name=$2
    CASE="$verb: $name"
    run "$HT" "$verb" "$name"
    expect_status 0 || return
    CHECKS=$((CHECKS + 1))
    if [ -s "$ERR" ]; then fail "unexpected stderr"; return; fi
    if [ "$verb" = dump ]; then
        expect_stdout_equals_file "${name%.htrace}.expect" || return
    else
        expect_stdout_equals_file good.sum || return
    fi
    ok
}

# The summary of a damaged trace counts exactly the intact events: its
# allocation and free counts are those of the expected dump lines.
summary_matches() { # EXPECTED_DUMP
    CHECKS=$((CHECKS + 1))
    local allocs frees
    allocs=$(grep -c '^[^ ]* [^ ]* alloc ' "$1")
    frees=$(grep -c '^[^ ]* [^ ]* free ' "$1")
    if ! grep -q '^heap summary:' "$OUT"; then
        fail "no summary printed"
        return 1
    fi
    if ! grep -qE "^  allocations +$allocs " "$OUT"; then
        fail "summary does not count the $allocs intact allocations: $(grep allocations "$OUT")"
        return 1
    fi
    if ! grep -qE "^  frees +$frees\$" "$OUT"; then
        fail "summary does not count the $frees intact frees: $(grep frees "$OUT")"
        return 1
    fi
    return 0
}

reader_group() { # VERB
    local verb=$1
    make_good_trace || return
    make_bad_files

    refused_file "$verb" does-not-exist.htrace
    refused_file "$verb" empty.htrace
    refused_file "$verb" passwd.htrace
    refused_file "$verb" dir.htrace
    refused_file "$verb" short_header.htrace
    refused_file "$verb" header_bitflip.htrace
    # the version check comes before the CRC check (FORMAT.md §1)
    refused_file "$verb" future_major.htrace 'newer|version|upgrade' 'checksum|damaged'
    refused_file "$verb" future_major_crc.htrace 'newer|version|upgrade' 'checksum|damaged'

    fully_read "$verb" newer_minor.htrace
    fully_read "$verb" big_header.htrace

    local f
    for f in trunc_payload trunc_chunk_header payload_bitflip chunk_magic bad_size bad_size_last garbage_between; do
        partly_read "$verb" "$f.htrace"
    done
    # nothing intact: the same one line, and dump prints nothing
    CASE="$verb: trunc_first.htrace"
    run "$HT" "$verb" trunc_first.htrace
    if expect_no_crash_nonzero && expect_one_error_line trunc_first.htrace; then
        if [ "$verb" = dump ]; then expect_stdout_empty && ok; else summary_matches trunc_first.expect && ok; fi
    fi

    # usage errors
    CASE="$verb: no file argument"
    run "$HT" "$verb"
    expect_no_crash_nonzero && expect_one_error_line "usage" && ok
    CASE="$verb: two file arguments"
    run "$HT" "$verb" good.htrace good.htrace
    expect_no_crash_nonzero && expect_one_error_line "usage" && expect_stdout_empty && ok
}

# ---- record: refusing to start -------------------------------------------

# The command must not run: it would create ./ran.
record_refused() { # DESCRIPTION NAME-IN-MESSAGE STATUS(or "any") ARGS...
    local what=$2 want=$3
    CASE="record: $1"
    shift 3
    rm -f ran
    run "$HT" record -q "$@"
    if [ "$want" = any ]; then expect_no_crash_nonzero || return; else expect_status "$want" || return; fi
    expect_one_error_line "$what" && expect_stdout_empty && expect_absent ran || return
    ok
}

record_group() {
    record_refused "output in a missing directory" /nonexistent/dir/x.htrace any \
        -o /nonexistent/dir/x.htrace -- touch ran
    mkdir adir
    record_refused "output is a directory" "$TMP/adir" any -o "$TMP/adir" -- touch ran
    if [ "$(id -u)" -eq 0 ]; then
        echo "SKIP: record: output in a read-only directory (running as root: the directory would be writable)"
    else
        mkdir rodir
        chmod 555 rodir
        record_refused "output in a read-only directory" rodir/x.htrace any -o rodir/x.htrace -- touch ran
        expect_absent rodir/x.htrace || :
    fi

    record_refused "command does not exist" ht-no-such-command-5829 127 -o nocmd.htrace -- ht-no-such-command-5829
    CASE="record: command does not exist: no trace left behind"
    expect_absent nocmd.htrace && ok
    CASE="record: command does not exist: stderr says why"
    expect_stderr_matches 'No such file|not found' && ok

    printf '#!/bin/sh\ntouch ran\n' >notexec.sh
    chmod 644 notexec.sh
    record_refused "command not executable" ./notexec.sh 126 -o notexec.htrace -- ./notexec.sh
    CASE="record: command not executable: stderr says why"
    expect_stderr_matches 'Permission denied|not executable' && ok
    record_refused "command is a directory" "$TMP/adir" 126 -o dircmd.htrace -- "$TMP/adir"

    record_refused "--mode foo" foo any -o opt.htrace --mode foo -- touch ran
    CASE="record: --mode foo: no trace created"
    expect_absent opt.htrace && ok
    record_refused "--buffer-size 1" buffer-size any -o opt.htrace --buffer-size 1 -- touch ran
    record_refused "--buffer-size 1T" buffer-size any -o opt.htrace --buffer-size 1T -- touch ran
    record_refused "--buffers 1" buffers any -o opt.htrace --buffers 1 -- touch ran
    record_refused "--flush-interval 0" flush-interval any -o opt.htrace --flush-interval 0 -- touch ran
    record_refused "--compression-level 99" compression-level any -o opt.htrace --compression-level 99 -- touch ran
    CASE="record: bad options: no trace created"
    expect_absent opt.htrace && ok
    record_refused "no command" "no command" any -o opt.htrace
    record_refused "no command after --" "no command" any -o opt.htrace --

    # an unknown option: refused, the command does not run (getopt words
    # the message, so only its content is checked, not its form)
    CASE="record: unknown option --bogus"
    rm -f ran
    run "$HT" record -q --bogus -o opt.htrace -- touch ran
    expect_no_crash_nonzero && expect_stderr_matches "bogus" && expect_stdout_empty && expect_absent ran && ok
}

# ---- record: pass-through ------------------------------------------------

passthrough_group() {
    CASE="record: stdout, stderr and exit status of CMD"
    run "$HT" record -q -o p1.htrace -- sh -c 'echo out; echo err >&2; exit 7'
    if expect_status 7; then
        CHECKS=$((CHECKS + 1))
        if [ "$(cat "$OUT")" != out ]; then
            fail "stdout is not exactly 'out'"
        elif [ "$(cat "$ERR")" != err ]; then
            fail "stderr is not exactly 'err' (with -q heaptrace itself must be silent)"
        else
            ok
        fi
    fi

    CASE="record: exit status 0"
    run "$HT" record -q -o p0.htrace -- sh -c 'exit 0'
    expect_status 0 && ok

    # without -o: heaptrace.COMM.PID.htrace in the working directory, PID
    # being CMD's (the file is created before CMD starts, then renamed)
    CASE="record: default trace name heaptrace.COMM.PID.htrace, CMD's pid"
    rm -f heaptrace.*.htrace*
    run "$HT" record -q -- sh -c 'echo $$'
    if expect_status 0; then
        CHECKS=$((CHECKS + 1))
        local pid names
        pid=$(cat "$OUT")
        names=$(ls heaptrace.*.htrace* 2>/dev/null | tr '\n' ' ')
        if [ "$names" != "heaptrace.sh.$pid.htrace " ]; then
            fail "trace files '$names', expected heaptrace.sh.$pid.htrace alone"
        elif ! "$HT" summary "heaptrace.sh.$pid.htrace" >/dev/null 2>&1; then
            fail "heaptrace.sh.$pid.htrace is not a readable trace"
        else
            ok
        fi
    fi
    rm -f heaptrace.*.htrace*

    # as execvp and shells do: a script without #! runs under /bin/sh
    CASE="record: an executable script without #! runs under /bin/sh"
    printf 'echo "noshebang $1"\n' >nosb.sh
    chmod 755 nosb.sh
    run "$HT" record -q -o nosb.htrace -- ./nosb.sh arg1
    if expect_status 0; then
        CHECKS=$((CHECKS + 1))
        if [ "$(cat "$OUT")" != "noshebang arg1" ]; then fail "stdout is not 'noshebang arg1'"; else ok; fi
    fi
    CASE="record: a script without #! found through an empty \$PATH element (the current directory)"
    PATH=":$PATH" run "$HT" record -q -o nosb2.htrace -- nosb.sh arg2
    if expect_status 0; then
        CHECKS=$((CHECKS + 1))
        if [ "$(cat "$OUT")" != "noshebang arg2" ]; then fail "stdout is not 'noshebang arg2'"; else ok; fi
    fi

    CASE="record: without -q the statistics go to stderr, not stdout"
    run "$HT" record -o p2.htrace -- sh -c 'echo out'
    if expect_status 0; then
        CHECKS=$((CHECKS + 1))
        if [ "$(cat "$OUT")" != out ]; then fail "stdout is not exactly 'out'"; else ok; fi
    fi

    CASE="record: stdin passes through"
    printf 'hi\n' >in.txt
    STDIN_FILE=in.txt run "$HT" record -q -o p3.htrace -- cat
    if expect_status 0; then
        CHECKS=$((CHECKS + 1))
        if [ "$(cat "$OUT")" != hi ]; then fail "stdout is not 'hi'"; else ok; fi
    fi
    CASE="record: stdin from a pipe"
    printf 'hi\n' | timeout -k 5 60 "$HT" record -q -o p4.htrace -- cat >"$OUT" 2>"$ERR"
    st=$?
    if expect_status 0; then
        CHECKS=$((CHECKS + 1))
        if [ "$(cat "$OUT")" != hi ]; then fail "stdout is not 'hi'"; else ok; fi
    fi

    local sig num
    for sig in KILL:9 SEGV:11 TERM:15; do
        num=${sig#*:}
        sig=${sig%:*}
        CASE="record: CMD killed by SIG$sig gives $((128 + num))"
        run "$HT" record -q -o "sig$sig.htrace" -- sh -c "kill -$sig \$\$"
        expect_status $((128 + num)) && expect_stdout_empty || continue
        ok
        # what was recorded before the death is in the trace, intact
        CASE="record: trace of CMD killed by SIG$sig is readable"
        run "$HT" dump "sig$sig.htrace"
        expect_status 0 || continue
        CHECKS=$((CHECKS + 1))
        if ! grep -q ' alloc ' "$OUT"; then fail "no alloc events in the trace"; continue; fi
        ok
    done
}

# ---- the end of the program is recorded ----------------------------------

# The ending is checked over several runs: a race that loses the record
# some of the time must not pass by luck.
EXIT_RUNS=10
exit_record_group() {
    local i miss=0 nosum=0
    CASE="trace of 'exit 7' has a process_end record with exit 7 ($EXIT_RUNS runs)"
    for ((i = 0; i < EXIT_RUNS; i++)); do
        run "$HT" record -q -o e7.htrace -- sh -c 'exit 7'
        expect_status 7 || return
        run "$HT" dump e7.htrace
        expect_status 0 || return
        grep -qE ' process_end +exit 7$' "$OUT" || miss=$((miss + 1))
        run "$HT" summary e7.htrace
        grep -qE 'process ended +exit status 7' "$OUT" || nosum=$((nosum + 1))
    done
    CHECKS=$((CHECKS + 1))
    if [ $miss -eq 0 ]; then ok; else fail "no 'process_end exit 7' line in the dump in $miss of $EXIT_RUNS runs"; fi
    CASE="summary of 'exit 7' says how the process ended ($EXIT_RUNS runs)"
    CHECKS=$((CHECKS + 1))
    if [ $nosum -eq 0 ]; then ok; else fail "no 'process ended exit status 7' in the summary in $nosum of $EXIT_RUNS runs"; fi

    miss=0
    CASE="trace of a program killed by SIGKILL has a process_end record with signal 9 ($EXIT_RUNS runs)"
    for ((i = 0; i < EXIT_RUNS; i++)); do
        run "$HT" record -q -o e9.htrace -- sh -c 'kill -KILL $$'
        expect_status 137 || return
        run "$HT" dump e9.htrace
        expect_status 0 || return
        grep -qE ' process_end +signal 9$' "$OUT" || miss=$((miss + 1))
    done
    CHECKS=$((CHECKS + 1))
    if [ $miss -eq 0 ]; then ok; else fail "no 'process_end signal 9' line in the dump in $miss of $EXIT_RUNS runs"; fi
}

case $GROUP in
dump) reader_group dump ;;
summary) reader_group summary ;;
record) record_group ;;
passthrough) passthrough_group ;;
exit_record) exit_record_group ;;
*)
    echo "unknown group '$GROUP'" >&2
    exit 2
    ;;
esac

echo "$GROUP: $CHECKS checks, $FAILS failed"
[ "$FAILS" -eq 0 ]
