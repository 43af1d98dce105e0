/* summary.c - see summary.h */
#include "summary.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "stacktab.h"

const char *ht_fmt_bytes(uint64_t b, char *buf, size_t len)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    if (u == 0) snprintf(buf, len, "%" PRIu64 " B", b);
    else snprintf(buf, len, "%.1f %s", v, unit[u]);
    return buf;
}

const char *ht_fmt_ns(uint64_t ns, char *buf, size_t len)
{
    if (ns < 1000) snprintf(buf, len, "%" PRIu64 " ns", ns);
    else if (ns < 1000000) snprintf(buf, len, "%.1f us", ns / 1e3);
    else if (ns < 1000000000) snprintf(buf, len, "%.1f ms", ns / 1e6);
    else snprintf(buf, len, "%.2f s", ns / 1e9);
    return buf;
}

void ht_summary_print(const ht_prof *p, FILE *out)
{
    char a[32], b[32];
    uint64_t custom = 0;
    for (size_t i = 0; i < p->nheaps; i++) custom += p->heaps[i].heap != 1;
    fprintf(out, "heap summary:\n");
    fprintf(out, "  allocations      %" PRIu64 " (%" PRIu64 " failed)\n", p->allocs, p->failed_allocs);
    fprintf(out, "  frees            %" PRIu64 "\n", p->frees);
    fprintf(out, "  reallocs         %" PRIu64 " (%" PRIu64 " failed)\n", p->reallocs, p->failed_reallocs);
    fprintf(out, "  bytes allocated  %" PRIu64 " (%s)\n", p->bytes_allocated,
            ht_fmt_bytes(p->bytes_allocated, a, sizeof a));
    fprintf(out, "  peak live        %" PRIu64 " bytes (%s) at %s\n", p->peak_bytes,
            ht_fmt_bytes(p->peak_bytes, a, sizeof a), ht_fmt_ns(p->peak_ts, b, sizeof b));
    fprintf(out, "  live at exit     %" PRIu64 " blocks, %" PRIu64 " bytes (%s)  <- leaks\n", p->live_blocks,
            p->live_bytes, ht_fmt_bytes(p->live_bytes, a, sizeof a));
    fprintf(out, "  unknown frees    %" PRIu64 " (blocks not allocated in this session)\n",
            p->unknown_frees + p->unknown_reallocs + p->double_frees);
    if (p->bad_sizes)
        fprintf(out, "  bad sizes        %" PRIu64 " (allocations larger than an address space: damaged trace,"
                     " not counted as live)\n",
                p->bad_sizes);
    if (custom || p->destroyed_blocks)
        fprintf(out, "  custom heaps     %" PRIu64 " (%" PRIu64 " blocks released with their heap)\n", custom,
                p->destroyed_blocks);
    if (p->markers_total) fprintf(out, "  markers          %" PRIu64 "\n", p->markers_total);
    fprintf(out, "  events lost      %" PRIu64 "\n", p->lost);
    fprintf(out, "  duration         %s\n", ht_fmt_ns(p->last_ts, a, sizeof a));
    if (p->have_end) {
        if (p->end_unknown)
            fprintf(out, "  process ended    without an exit report (killed by a signal or crashed)\n");
        else if (p->end_signal)
            fprintf(out, "  process ended    killed by signal %d\n", p->end_signal);
        else
            fprintf(out, "  process ended    exit status %d\n", p->end_code);
    }
}

/* ---- allocation sites ---- */

static int by_bytes(const void *a, const void *b)
{
    const ht_prof_named *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}
static int by_live(const void *a, const void *b)
{
    const ht_prof_named *x = a, *y = b;
    return x->live_bytes < y->live_bytes ? 1 : x->live_bytes > y->live_bytes ? -1 : 0;
}

void ht_summary_print_sites(const ht_prof *p, struct ht_stacktab *stk, FILE *out, int top)
{
    if (!p->have_stacks || !stk) return;
    size_t n = 0;
    ht_prof_named *v = ht_prof_named_sites(p, stk, &n);
    if (!v) return;
    /* blocks allocated without a stack are no site here */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].stack == 0 && !strcmp(v[i].name, HT_PROF_NO_STACK)) free(v[i].name);
        else v[m++] = v[i];
    }
    char a1[32], a2[32];
    if (m > 1) qsort(v, m, sizeof *v, by_bytes);
    if (m) fprintf(out, "top allocation sites (bytes allocated):\n");
    for (size_t i = 0; i < m && (int)i < top; i++)
        fprintf(out, "  %10s in %9" PRIu64 " allocations  %s\n", ht_fmt_bytes(v[i].bytes, a1, sizeof a1), v[i].allocs,
                v[i].name);
    if (m > 1) qsort(v, m, sizeof *v, by_live);
    if (m && v[0].live_bytes) {
        fprintf(out, "blocks live at the end, by site (leaks):\n");
        for (size_t i = 0; i < m && (int)i < top && v[i].live_bytes; i++)
            fprintf(out, "  %10s in %9" PRIu64 " blocks  %s\n", ht_fmt_bytes(v[i].live_bytes, a2, sizeof a2),
                    v[i].live_blocks, v[i].name);
    }
    ht_prof_named_free(v, m);
}
