# tally.awk - tallies `heaptrace dump --format csv` in one streaming pass
# (awk is several times faster than python's csv module on millions of rows).
#
# Columns: 1 event, 2 ts_ns, 3 pid, 4 tid, 5 heap, 6 api, 7 address, 8 size,
# 9 new_address, 10 new_size, 11 old_address, 12 old_size, 13 source,
# 14 detail, 15 stack.  Only detail and stack are ever quoted; metadata
# rows have no stack, so fields past 13 are glued back together and the
# empty stack field's comma dropped.
#
# Replays the allocations per (pid, heap) on its own, independently of
# `heaptrace summary`: a free or realloc of an address that is not live is
# "unknown", an allocation of an address that is live is "dup".  Checks the
# time order of heap events within each process.
#
# Output lines (space separated; read by htreal.py):
#   header LINE
#   rows N
#   count EVENT API PID TID N
#   bytes EVENT API PID TID SUM MIN MAX    sizes of the successful allocations
#                                          and reallocs (size / new_size)
#   lost PID TID N
#   process PID DETAIL...
#   process_end PID DETAIL...
#   session_end DETAIL...
#   replay PID unknown_frees N unknown_reallocs N dup_allocs N failed_allocs N
#          failed_reallocs N live N
#   order PID inversions N max_back_ns N
BEGIN { FS = "," }
NR == 1 { print "header " $0; next }
{
    rows++
    ev = $1
    if (ev == "alloc" || ev == "free" || ev == "realloc") {
        pid = $3
        k = ev " " $6 " " pid " " $4
        n[k]++
        pids[pid] = 1
        ts = $2 + 0
        if ((pid in last) && ts < last[pid]) {
            inv[pid]++
            if (last[pid] - ts > maxback[pid]) maxback[pid] = last[pid] - ts
        }
        last[pid] = ts
        if (ev == "alloc") {
            if ($7 == "0x0") { failed[pid]++; next }
            addsize(k, $8 + 0)
            a = pid SUBSEP $5 SUBSEP $7
            if (a in live) dup[pid]++
            live[a] = 1
        } else if (ev == "free") {
            a = pid SUBSEP $5 SUBSEP $7
            if (a in live) delete live[a]
            else unk_free[pid]++
        } else {
            if ($9 == "0x0") { failed_re[pid]++; next }
            addsize(k, $10 + 0)
            a = pid SUBSEP $5 SUBSEP $11
            if (a in live) delete live[a]
            else unk_realloc[pid]++
            a = pid SUBSEP $5 SUBSEP $9
            if (a in live) dup[pid]++
            live[a] = 1
        }
        next
    }
    d = $14
    for (i = 15; i <= NF; i++) d = d "," $i
    sub(/,$/, "", d)
    gsub(/^"|"$/, "", d)
    if (ev == "lost") lostn[$3 " " $4] += d
    else if (ev == "process") print "process " $3 " " d
    else if (ev == "process_end") print "process_end " $3 " " d
    else if (ev == "session_end") print "session_end " d
}
function addsize(key, s) {
    if (!(key in bsum)) { bmin[key] = s; bmax[key] = s }
    bsum[key] += s
    if (s < bmin[key]) bmin[key] = s
    if (s > bmax[key]) bmax[key] = s
}
END {
    printf "rows %d\n", rows
    for (k in n) printf "count %s %d\n", k, n[k]
    for (k in bsum) printf "bytes %s %.0f %.0f %.0f\n", k, bsum[k], bmin[k], bmax[k]
    for (k in lostn) printf "lost %s %.0f\n", k, lostn[k]
    for (a in live) { split(a, parts, SUBSEP); nlive[parts[1]]++ }
    for (p in pids)
        printf "replay %s unknown_frees %d unknown_reallocs %d dup_allocs %d failed_allocs %d failed_reallocs %d live %d\n",
               p, unk_free[p], unk_realloc[p], dup[p], failed[p], failed_re[p], nlive[p]
    for (p in pids) printf "order %s inversions %d max_back_ns %.0f\n", p, inv[p], maxback[p]
}
