# lttng_tally.awk - tallies the text output of babeltrace (1.x or 2.x) for a
# trace of LTTng-UST's libc wrapper (events lttng_ust_libc:*, contexts vpid,
# vtid, ip) plus lttng_ust_statedump:bin_info.
#
# A libc event becomes one of these categories (heaptrace's name in brackets):
#   malloc          malloc(n)                      [alloc, api malloc]
#   calloc          calloc(m, n)                   [alloc, api calloc]
#   realloc_null    realloc(NULL, n)               [alloc, api realloc]
#   realloc_free    realloc(p, 0) that freed p     [free,  api realloc]
#   realloc         any other realloc(p, n)        [realloc, api realloc]
#   free            free(p), p != NULL             [free,  api free]
#   free_null       free(NULL)                     [no event in heaptrace]
#   memalign        memalign(a, n)                 [alloc, api memalign]
#   posix_memalign  posix_memalign(&p, a, n)       [alloc, api posix_memalign]
#
# Output lines:
#   ev CATEGORY VPID MAIN IP COUNT BYTES FAILED
#        MAIN: 1 if vtid == vpid (the main thread); IP: the caller's address
#        as printed; BYTES: the sizes requested by the calls that succeeded;
#        FAILED: calls that returned no block (NULL, posix_memalign != 0; a
#        realloc that returned NULL although asked for bytes)
#   bin VPID BADDR MEMSZ PATH              from lttng_ust_statedump:bin_info
#   other NAME COUNT                       any other event
function field(key,    s) {
    # " key = value" where value ends at ',', ' ' or '}'
    if (match($0, "[ {]" key " = [^,} ]+")) {
        s = substr($0, RSTART + 1, RLENGTH - 1)
        return substr(s, length(key) + 4)
    }
    return ""
}
{
    if (!match($0, / [a-z_]+:[a-z_]+: \{/)) { next }
    name = substr($0, RSTART + 1, RLENGTH - 4)
    if (name == "lttng_ust_statedump:bin_info") {
        path = ""
        if (match($0, /path = "[^"]*"/)) path = substr($0, RSTART + 8, RLENGTH - 9)
        print "bin", field("vpid"), field("baddr"), field("memsz"), path
        next
    }
    if (substr(name, 1, 15) != "lttng_ust_libc:") { other[name]++; next }
    call = substr(name, 16)
    bytes = 0
    bad = 0
    nul = (field("ptr") ~ /^0x0*$|^0$/)
    if (call == "malloc") { cat = "malloc"; bytes = field("size"); bad = nul }
    else if (call == "calloc") { cat = "calloc"; bytes = field("nmemb") * field("size"); bad = nul }
    else if (call == "free") { cat = nul ? "free_null" : "free" }
    else if (call == "realloc") {
        bytes = field("size")
        if (field("in_ptr") ~ /^0x0*$|^0$/) { cat = "realloc_null"; bad = nul }
        else if (bytes + 0 == 0 && nul) cat = "realloc_free"
        else { cat = "realloc"; bad = nul }
    }
    else if (call == "memalign") { cat = "memalign"; bytes = field("size"); bad = nul }
    else if (call == "posix_memalign") { cat = "posix_memalign"; bytes = field("size"); bad = (field("result") != "0") }
    else { other[name]++; next }
    if (bad) bytes = 0
    vpid = field("vpid")
    k = cat " " vpid " " (field("vtid") == vpid ? 1 : 0) " " field("ip")
    n[k]++
    b[k] += bytes
    f[k] += bad
}
END {
    for (k in n) printf "ev %s %d %.0f %d\n", k, n[k], b[k], f[k]
    for (k in other) printf "other %s %d\n", k, other[k]
}
