/* report.c - `heaptrace report`: what a trace says, as text or JSON (the
 * JSON document is described in docs/REPORT.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../analysis/summary.h" /* ht_fmt_bytes, ht_fmt_ns */
#include "analyze.h"
#include "cli.h"

typedef ht_prof_named rsite;

typedef struct rep {
    const ht_analysis *a;
    const ht_prof *p;
    rsite *s;
    size_t n;
    int top, json;
    FILE *o;
    const char *path;
} rep;

static int build_sites(rep *r)
{
    r->s = ht_prof_named_sites(r->p, r->a->stk, &r->n);
    return r->s ? 0 : -1;
}

/* ---- sorting by one field ---- */
static size_t sort_off;
static int sort_cls = -1;
static uint64_t key_of(const rsite *s)
{
    if (sort_cls >= 0) return s->range_bytes[sort_cls];
    return *(const uint64_t *)((const char *)s + sort_off);
}
static int by_key(const void *x, const void *y)
{
    uint64_t a = key_of(x), b = key_of(y);
    if (a != b) return a < b ? 1 : -1;
    return strcmp(((const rsite *)x)->name, ((const rsite *)y)->name);
}
static void sort_by(rep *r, size_t off, int cls)
{
    sort_off = off;
    sort_cls = cls;
    qsort(r->s, r->n, sizeof *r->s, by_key);
    sort_cls = -1;
}

/* ---- JSON helpers ---- */
static void jstr(FILE *o, const char *s)
{
    fputc('"', o);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(o, "\\%c", *c);
        else if (*c == '\n') fputs("\\n", o);
        else if (*c < 0x20 || *c == 0x7f) fprintf(o, "\\u%04x", *c);
        else if (*c >= 0x80) { /* keep valid UTF-8, replace the rest */
            int len = (*c & 0xe0) == 0xc0 ? 2 : (*c & 0xf0) == 0xe0 ? 3 : (*c & 0xf8) == 0xf0 ? 4 : 0;
            int ok = len > 0;
            for (int k = 1; ok && k < len; k++) ok = (c[k] & 0xc0) == 0x80;
            if (ok) {
                fwrite(c, 1, (size_t)len, o);
                c += len - 1;
            } else {
                fputs("\\ufffd", o);
            }
        } else fputc(*c, o);
    }
    fputc('"', o);
}

static double pct(uint64_t a, uint64_t b) { return b ? 100.0 * (double)a / (double)b : 0.0; }

/* The frames of a site's first stack (JSON array), innermost first. */
static void jframes(rep *r, const rsite *s)
{
    FILE *o = r->o;
    const ht_stk_frame *fr;
    uint32_t site;
    int n = s->stack ? ht_stk_nframes(r->a->stk, s->pid, s->stack, &fr, &site) : 0;
    fputc('[', o);
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', o);
        jstr(o, fr[i].text);
    }
    fputc(']', o);
}

/* ---- sections: one function per site list, text or JSON ---- */

enum col { C_BYTES, C_ALLOCS, C_TEMP, C_LIVE, C_PEAK, C_REALLOCS };

static void site_list(rep *r, const char *title, const char *jkey, enum col col)
{
    size_t off = col == C_BYTES ? offsetof(rsite, bytes) : col == C_ALLOCS ? offsetof(rsite, allocs)
               : col == C_TEMP ? offsetof(rsite, temporary) : col == C_LIVE ? offsetof(rsite, live_bytes)
               : col == C_PEAK ? offsetof(rsite, peak_bytes) : offsetof(rsite, reallocs);
    sort_by(r, off, -1);
    FILE *o = r->o;
    char a[32], b[32];
    if (r->json) {
        fprintf(o, ",\n  \"%s\": [", jkey);
        int k = 0;
        for (size_t i = 0; i < r->n && k < r->top; i++) {
            const rsite *s = &r->s[i];
            if (!key_of(s)) break;
            fprintf(o, "%s\n    {\"site\": ", k++ ? "," : "");
            jstr(o, s->name);
            fprintf(o,
                    ", \"allocations\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"temporary\": %" PRIu64
                    ", \"reallocs\": %" PRIu64 ", \"live_blocks\": %" PRIu64 ", \"live_bytes\": %" PRIu64
                    ", \"peak_blocks\": %" PRIu64 ", \"peak_bytes\": %" PRIu64 ", \"stack\": ",
                    s->allocs, s->bytes, s->temporary, s->reallocs, s->live_blocks, s->live_bytes, s->peak_blocks,
                    s->peak_bytes);
            jframes(r, s);
            fputc('}', o);
        }
        fputs(k ? "\n  ]" : "]", o);
        return;
    }
    fprintf(o, "\n%s\n", title);
    int k = 0;
    for (size_t i = 0; i < r->n && k < r->top; i++, k++) {
        const rsite *s = &r->s[i];
        uint64_t v = key_of(s);
        if (!v) break;
        switch (col) {
        case C_BYTES:
            fprintf(o, "  %10s  %5.1f%%  in %" PRIu64 " allocations  %s\n", ht_fmt_bytes(v, a, sizeof a),
                    pct(v, r->p->bytes_allocated), s->allocs, s->name);
            break;
        case C_ALLOCS:
            fprintf(o, "  %10" PRIu64 "  %5.1f%%  allocations (%s)  %s\n", v, pct(v, r->p->blocks_allocated),
                    ht_fmt_bytes(s->bytes, a, sizeof a), s->name);
            break;
        case C_TEMP:
            fprintf(o, "  %10" PRIu64 "  %5.1f%% of its %" PRIu64 " allocations are temporary  %s\n", v,
                    pct(v, s->allocs), s->allocs, s->name);
            break;
        case C_LIVE:
            fprintf(o, "  %10s  in %" PRIu64 " blocks  %s\n", ht_fmt_bytes(v, a, sizeof a), s->live_blocks, s->name);
            break;
        case C_PEAK:
            fprintf(o, "  %10s  %5.1f%%  in %" PRIu64 " blocks  %s\n", ht_fmt_bytes(v, a, sizeof a),
                    pct(v, r->p->peak_bytes), s->peak_blocks, s->name);
            break;
        case C_REALLOCS:
            fprintf(o, "  %10" PRIu64 "  reallocs (%s allocated)  %s\n", v, ht_fmt_bytes(s->bytes, b, sizeof b),
                    s->name);
            break;
        }
    }
    if (!k) fputs("  (none)\n", o);
}

static void totals(rep *r)
{
    const ht_prof *p = r->p;
    FILE *o = r->o;
    char a[32], b[32], c[32];
    if (r->json) {
        fprintf(o, "  \"totals\": {\"records\": %" PRIu64 ", \"heap_events\": %" PRIu64 ", \"allocations\": %" PRIu64
                   ", \"failed_allocations\": %" PRIu64 ", \"frees\": %" PRIu64 ", \"reallocs\": %" PRIu64
                   ", \"failed_reallocs\": %" PRIu64 ", \"blocks_allocated\": %" PRIu64
                   ", \"bytes_allocated\": %" PRIu64 ", \"bytes_freed\": %" PRIu64 ", \"temporary\": %" PRIu64
                   ", \"lost\": %" PRIu64 ", \"markers\": %" PRIu64 ", \"duration_ns\": %" PRIu64
                   ", \"processes\": %zu, \"threads\": %zu, \"stacks\": %s},\n",
                p->records, p->heap_events, p->allocs, p->failed_allocs, p->frees, p->reallocs, p->failed_reallocs,
                p->blocks_allocated, p->bytes_allocated, p->bytes_freed, p->temporary, p->lost, p->markers_total,
                p->last_ts - p->first_ts, p->nprocs, p->nthreads, p->have_stacks ? "true" : "false");
        fputs("  \"by_api\": [", o);
        int k = 0;
        for (unsigned i = 0; i < HT_API_COUNT; i++)
            if (p->api_count[i]) {
                fprintf(o, "%s{\"api\": \"%s\", \"events\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", k++ ? ", " : "",
                        ht_api_name(i), p->api_count[i], p->api_bytes[i]);
            }
        fputs("],\n  \"by_source\": [", o);
        k = 0;
        for (unsigned i = 0; i < 8; i++)
            if (p->source_count[i])
                fprintf(o, "%s{\"source\": \"%s\", \"events\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", k++ ? ", " : "",
                        ht_source_name(i), p->source_count[i], p->source_bytes[i]);
        fprintf(o, "],\n  \"peak\": {\"bytes\": %" PRIu64 ", \"blocks\": %" PRIu64 ", \"ts_ns\": %" PRIu64 "},\n",
                p->peak_bytes, p->peak_blocks, p->peak_ts);
        fprintf(o, "  \"leaks\": {\"blocks\": %" PRIu64 ", \"bytes\": %" PRIu64 "},\n", p->live_blocks,
                p->live_bytes);
        fprintf(o, "  \"bad_frees\": {\"unknown_frees\": %" PRIu64 ", \"unknown_reallocs\": %" PRIu64
                   ", \"double_frees\": %" PRIu64 ", \"destroyed_with_heap\": %" PRIu64
                   ", \"bad_sizes\": %" PRIu64 "}",
                p->unknown_frees, p->unknown_reallocs, p->double_frees, p->destroyed_blocks, p->bad_sizes);
        return;
    }
    fprintf(o, "heaptrace report of %s\n", r->path);
    for (size_t i = 0; i < p->nprocs && i < (size_t)r->top; i++) {
        const ht_prof_proc *x = &p->procs[i];
        fprintf(o, "  process %u%s%s", x->pid, x->command ? ": " : "", x->command ? x->command : "");
        if (x->ended) {
            if (x->exit_unknown) fputs("  (ended without an exit report)", o);
            else if (x->exit_signal) fprintf(o, "  (killed by signal %d)", x->exit_signal);
            else fprintf(o, "  (exit status %d)", x->exit_code);
        }
        fputc('\n', o);
    }
    if (p->nprocs > (size_t)r->top) fprintf(o, "  ... %zu processes in all\n", p->nprocs);
    fprintf(o, "  duration %s, %zu threads, %" PRIu64 " records, call stacks: %s\n",
            ht_fmt_ns(p->last_ts - p->first_ts, a, sizeof a), p->nthreads, p->records, p->have_stacks ? "yes" : "no");
    fputs("\ntotals\n", o);
    fprintf(o, "  allocations      %" PRIu64 " (%" PRIu64 " failed)\n", p->allocs, p->failed_allocs);
    fprintf(o, "  frees            %" PRIu64 "\n", p->frees);
    fprintf(o, "  reallocs         %" PRIu64 " (%" PRIu64 " failed)\n", p->reallocs, p->failed_reallocs);
    fprintf(o, "  bytes allocated  %" PRIu64 " (%s) in %" PRIu64 " blocks (reallocs included)\n",
            p->bytes_allocated, ht_fmt_bytes(p->bytes_allocated, a, sizeof a), p->blocks_allocated);
    fprintf(o, "  temporary        %" PRIu64 " (%.1f%% of the blocks: freed right after their allocation)\n",
            p->temporary, pct(p->temporary, p->blocks_allocated));
    fprintf(o, "  peak live        %" PRIu64 " bytes (%s) in %" PRIu64 " blocks at %s\n", p->peak_bytes,
            ht_fmt_bytes(p->peak_bytes, a, sizeof a), p->peak_blocks, ht_fmt_ns(p->peak_ts, b, sizeof b));
    fprintf(o, "  live at the end  %" PRIu64 " blocks, %" PRIu64 " bytes (%s)  <- leaks\n", p->live_blocks,
            p->live_bytes, ht_fmt_bytes(p->live_bytes, c, sizeof c));
    fprintf(o, "  events lost      %" PRIu64 "\n", p->lost);
    fputs("  by api          ", o);
    for (unsigned i = 0; i < HT_API_COUNT; i++)
        if (p->api_count[i]) fprintf(o, " %s %" PRIu64, ht_api_name(i), p->api_count[i]);
    fputs("\n  by source       ", o);
    for (unsigned i = 0; i < 8; i++)
        if (p->source_count[i])
            fprintf(o, " %s %" PRIu64 " (%s)", ht_source_name(i), p->source_count[i],
                    ht_fmt_bytes(p->source_bytes[i], a, sizeof a));
    fputc('\n', o);
}

static void histograms(rep *r)
{
    const ht_prof *p = r->p;
    FILE *o = r->o;
    char a[32], b[32];
    if (r->json) {
        fputs(",\n  \"sizes\": [", o);
        int k = 0;
        for (int i = 0; i < HT_PROF_SIZE_BUCKETS; i++)
            if (p->size_count[i])
                fprintf(o, "%s{\"min\": %" PRIu64 ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", k++ ? ", " : "",
                        i ? (uint64_t)1 << (i - 1) : 0, p->size_count[i], p->size_bytes[i]);
        fputs("],\n  \"lifetimes\": [", o);
        k = 0;
        for (int i = 0; i < HT_PROF_LIFE_BUCKETS; i++)
            if (p->life_count[i])
                fprintf(o, "%s{\"below\": \"%s\", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", k++ ? ", " : "",
                        ht_prof_life_label(i), p->life_count[i], p->life_bytes[i]);
        fprintf(o, "], \"lifetimes_live_at_end\": %" PRIu64, p->live_blocks);
        return;
    }
    uint64_t mx = 0;
    for (int i = 0; i < HT_PROF_SIZE_BUCKETS; i++) mx = p->size_count[i] > mx ? p->size_count[i] : mx;
    fputs("\nallocation sizes\n", o);
    for (int i = 0; i < HT_PROF_SIZE_BUCKETS; i++) {
        if (!p->size_count[i]) continue;
        char lo[32], hi[32];
        if (i == 0) snprintf(lo, sizeof lo, "0 B"), snprintf(hi, sizeof hi, "1 B");
        else ht_fmt_bytes((uint64_t)1 << (i - 1), lo, sizeof lo), i < 64 ? (void)ht_fmt_bytes((uint64_t)1 << i, hi, sizeof hi) : (void)snprintf(hi, sizeof hi, "max");
        int bar = mx ? (int)(30 * p->size_count[i] / mx) : 0;
        fprintf(o, "  [%9s, %9s)  %10" PRIu64 "  %10s  %.*s\n", lo, hi, p->size_count[i],
                ht_fmt_bytes(p->size_bytes[i], a, sizeof a), bar, "##############################");
    }
    mx = p->live_blocks;
    for (int i = 0; i < HT_PROF_LIFE_BUCKETS; i++) mx = p->life_count[i] > mx ? p->life_count[i] : mx;
    fputs("\nlifetimes (allocation to free)\n", o);
    for (int i = 0; i < HT_PROF_LIFE_BUCKETS; i++) {
        if (!p->life_count[i]) continue;
        int bar = mx ? (int)(30 * p->life_count[i] / mx) : 0;
        fprintf(o, "  %-10s  %10" PRIu64 "  %10s  %.*s\n", ht_prof_life_label(i), p->life_count[i],
                ht_fmt_bytes(p->life_bytes[i], b, sizeof b), bar, "##############################");
    }
    if (p->live_blocks) {
        int bar = mx ? (int)(30 * p->live_blocks / mx) : 0;
        fprintf(o, "  %-10s  %10" PRIu64 "  %10s  %.*s\n", "never", p->live_blocks,
                ht_fmt_bytes(p->live_bytes, b, sizeof b), bar, "##############################");
    }
}

static void heaps_threads(rep *r)
{
    const ht_prof *p = r->p;
    FILE *o = r->o;
    char a[32], b[32], c[32];
    if (r->json) {
        fputs(",\n  \"heaps\": [", o);
        for (size_t i = 0; i < p->nheaps; i++) {
            const ht_prof_heap *h = &p->heaps[i];
            fprintf(o, "%s\n    {\"pid\": %u, \"heap\": %" PRIu64 ", \"name\": ", i ? "," : "", h->pid, h->heap);
            jstr(o, h->name);
            fprintf(o, ", \"allocations\": %" PRIu64 ", \"frees\": %" PRIu64 ", \"reallocs\": %" PRIu64
                       ", \"bytes\": %" PRIu64 ", \"live_blocks\": %" PRIu64 ", \"live_bytes\": %" PRIu64
                       ", \"peak_bytes\": %" PRIu64 ", \"destroyed\": %s, \"destroyed_blocks\": %" PRIu64 "}",
                    h->allocs, h->frees, h->reallocs, h->bytes, h->live_blocks, h->live_bytes, h->peak_bytes,
                    h->destroyed ? "true" : "false", h->destroyed_blocks);
        }
        fputs(p->nheaps ? "\n  ],\n  \"threads\": [" : "],\n  \"threads\": [", o);
        for (size_t i = 0; i < p->nthreads; i++) {
            const ht_prof_thread *t = &p->threads[i];
            fprintf(o, "%s\n    {\"pid\": %u, \"tid\": %u, \"name\": ", i ? "," : "", t->pid, t->tid);
            jstr(o, t->name);
            fprintf(o, ", \"allocations\": %" PRIu64 ", \"frees\": %" PRIu64 ", \"reallocs\": %" PRIu64
                       ", \"bytes\": %" PRIu64 "}",
                    t->allocs, t->frees, t->reallocs, t->bytes);
        }
        fputs(p->nthreads ? "\n  ]" : "]", o);
        return;
    }
    fputs("\nheaps\n", o);
    for (size_t i = 0; i < p->nheaps; i++) {
        const ht_prof_heap *h = &p->heaps[i];
        fprintf(o, "  %u/%" PRIu64 " %-12s  %9" PRIu64 " allocs %9" PRIu64 " frees  %10s allocated  peak %10s"
                   "  live %10s%s\n",
                h->pid, h->heap, h->name[0] ? h->name : "(unnamed)", h->allocs + h->reallocs, h->frees,
                ht_fmt_bytes(h->bytes, a, sizeof a), ht_fmt_bytes(h->peak_bytes, b, sizeof b),
                ht_fmt_bytes(h->live_bytes, c, sizeof c), h->destroyed ? "  (destroyed)" : "");
    }
    fputs("\nthreads (by allocations)\n", o);
    /* a copy sorted by allocations, the top N */
    ht_prof_thread *t = malloc((p->nthreads ? p->nthreads : 1) * sizeof *t);
    if (!t) return;
    memcpy(t, p->threads, p->nthreads * sizeof *t);
    for (size_t i = 1; i < p->nthreads; i++) /* insertion sort: thread counts are small */
        for (size_t j = i; j > 0 && t[j].allocs + t[j].reallocs > t[j - 1].allocs + t[j - 1].reallocs; j--) {
            ht_prof_thread x = t[j];
            t[j] = t[j - 1];
            t[j - 1] = x;
        }
    for (size_t i = 0; i < p->nthreads && i < (size_t)r->top; i++)
        fprintf(o, "  %u/%-7u %-16s %10" PRIu64 " allocs %10" PRIu64 " frees %10" PRIu64 " reallocs  %10s\n", t[i].pid,
                t[i].tid, t[i].name[0] ? t[i].name : "-", t[i].allocs, t[i].frees, t[i].reallocs,
                ht_fmt_bytes(t[i].bytes, a, sizeof a));
    if (p->nthreads > (size_t)r->top) fprintf(o, "  ... %zu threads in all\n", p->nthreads);
    free(t);
}

static void reallocs_bad(rep *r)
{
    const ht_prof *p = r->p;
    FILE *o = r->o;
    char a[32], b[32];
    if (r->json) {
        fprintf(o, ",\n  \"reallocs\": {\"total\": %" PRIu64 ", \"failed\": %" PRIu64 ", \"grow\": %" PRIu64
                   ", \"shrink\": %" PRIu64 ", \"same\": %" PRIu64 ", \"in_place\": %" PRIu64 ", \"moved\": %" PRIu64
                   ", \"bytes_grown\": %" PRIu64 ", \"bytes_shrunk\": %" PRIu64 "}",
                p->reallocs, p->failed_reallocs, p->realloc_grow, p->realloc_shrink, p->realloc_same,
                p->realloc_inplace, p->realloc_moved, p->realloc_grow_bytes, p->realloc_shrink_bytes);
        fputs(",\n  \"mismatches\": [", o);
        int k = 0;
        for (int x = 0; x < HT_FAM_COUNT; x++)
            for (int y = 0; y < HT_FAM_COUNT; y++)
                if (p->mismatch[x][y])
                    fprintf(o, "%s{\"allocated_by\": \"%s\", \"released_by\": \"%s\", \"count\": %" PRIu64 "}",
                            k++ ? ", " : "", ht_prof_family_name(x), y == HT_FAM_MALLOC ? "free/realloc"
                            : y == HT_FAM_NEW ? "delete" : y == HT_FAM_NEW_ARRAY ? "delete[]" : "custom heap",
                            p->mismatch[x][y]);
        fputs("],\n  \"mismatch_examples\": [", o);
        for (uint32_t i = 0; i < p->nmismatch_ex; i++) {
            const ht_prof_mismatch_ex *e = &p->mismatch_ex[i];
            char st[1024] = "";
            if (e->alloc_stack) ht_stk_site(r->a->stk, e->pid, e->alloc_stack, st, sizeof st);
            fprintf(o, "%s{\"pid\": %u, \"tid\": %u, \"ts_ns\": %" PRIu64 ", \"address\": %" PRIu64
                       ", \"size\": %" PRIu64 ", \"allocated_by\": \"%s\", \"released_by\": \"%s\", \"site\": ",
                    i ? ", " : "", e->pid, e->tid, e->ts, e->addr, e->size, ht_api_name(e->alloc_api),
                    ht_api_name(e->free_api));
            jstr(o, st);
            fputc('}', o);
        }
        fputc(']', o);
        return;
    }
    fputs("\nreallocs\n", o);
    fprintf(o, "  %" PRIu64 " reallocs (%" PRIu64 " failed): %" PRIu64 " grew (+%s), %" PRIu64 " shrank (-%s), %" PRIu64
               " kept their size; %" PRIu64 " in place, %" PRIu64 " moved\n",
            p->reallocs, p->failed_reallocs, p->realloc_grow, ht_fmt_bytes(p->realloc_grow_bytes, a, sizeof a),
            p->realloc_shrink, ht_fmt_bytes(p->realloc_shrink_bytes, b, sizeof b), p->realloc_same,
            p->realloc_inplace, p->realloc_moved);
    fputs("\nmismatched releases\n", o);
    if (!p->mismatches) fputs("  (none)\n", o);
    for (int x = 0; x < HT_FAM_COUNT; x++)
        for (int y = 0; y < HT_FAM_COUNT; y++)
            if (p->mismatch[x][y])
                fprintf(o, "  %10" PRIu64 "  allocated by %s, released by %s\n", p->mismatch[x][y],
                        ht_prof_family_name(x), y == HT_FAM_MALLOC ? "free/realloc" : y == HT_FAM_NEW ? "delete"
                                                : y == HT_FAM_NEW_ARRAY ? "delete[]" : "a custom heap");
    for (uint32_t i = 0; i < p->nmismatch_ex && i < 5; i++) {
        const ht_prof_mismatch_ex *e = &p->mismatch_ex[i];
        char st[1024] = "";
        if (e->alloc_stack) ht_stk_site(r->a->stk, e->pid, e->alloc_stack, st, sizeof st);
        fprintf(o, "    e.g. %s of 0x%" PRIx64 " (%" PRIu64 " B, from %s) at %s in %u/%u%s%s\n", ht_api_name(e->free_api),
                e->addr, e->size, ht_api_name(e->alloc_api), ht_fmt_ns(e->ts, a, sizeof a), e->pid, e->tid,
                st[0] ? ", allocated at " : "", st);
    }
    fputs("\nfrees of unknown blocks\n", o);
    fprintf(o, "  %10" PRIu64 "  frees and %" PRIu64 " reallocs of blocks not allocated in the trace (allocated before"
               " the session started, or invalid)\n",
            p->unknown_frees, p->unknown_reallocs);
    fprintf(o, "  %10" PRIu64 "  double frees (freed again after a free in the trace)\n", p->double_frees);
    if (p->destroyed_blocks)
        fprintf(o, "  %10" PRIu64 "  blocks released with their heap (HEAP_DESTROY), not leaks\n", p->destroyed_blocks);
    if (p->bad_sizes)
        fprintf(o, "  %10" PRIu64 "  allocations larger than an address space (a damaged trace), not tracked\n",
                p->bad_sizes);
}

static void range(rep *r)
{
    const ht_prof *p = r->p;
    if (!p->opt.have_range) return;
    FILE *o = r->o;
    char a[32], b[32], c[32];
    static const char *const what[] = {"allocated and freed inside", "allocated inside, live at its end",
                                       "allocated before, freed inside", "allocated before, live through it"};
    if (r->json) {
        fprintf(o, ",\n  \"range\": {\"t0_ns\": %" PRIu64 ", \"t1_ns\": %" PRIu64 ", \"classes\": [", p->opt.t0,
                p->opt.t1);
        for (int k = 0; k < HT_RANGE_CLASSES; k++) {
            fprintf(o, "%s\n    {\"class\": \"%s\", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 ", \"sites\": [",
                    k ? "," : "", ht_prof_range_name(k), p->range_count[k], p->range_bytes[k]);
            sort_by(r, 0, k);
            int m = 0;
            for (size_t i = 0; i < r->n && m < r->top && r->s[i].range_bytes[k]; i++) {
                fprintf(o, "%s{\"site\": ", m++ ? ", " : "");
                jstr(o, r->s[i].name);
                fprintf(o, ", \"count\": %" PRIu64 ", \"bytes\": %" PRIu64 "}", r->s[i].range_count[k],
                        r->s[i].range_bytes[k]);
            }
            fputs("]}", o);
        }
        fputs("\n  ]}", o);
        return;
    }
    fprintf(o, "\ntime range [%s, %s): lifetime classes\n", ht_fmt_ns(p->opt.t0, a, sizeof a),
            ht_fmt_ns(p->opt.t1, b, sizeof b));
    for (int k = 0; k < HT_RANGE_CLASSES; k++) {
        fprintf(o, "  %s  %10" PRIu64 " blocks  %10s  %s\n", ht_prof_range_name(k), p->range_count[k],
                ht_fmt_bytes(p->range_bytes[k], c, sizeof c), what[k]);
        sort_by(r, 0, k);
        for (size_t i = 0; i < r->n && (int)i < (r->top < 5 ? r->top : 5) && r->s[i].range_bytes[k]; i++)
            fprintf(o, "        %10s in %" PRIu64 " blocks  %s\n", ht_fmt_bytes(r->s[i].range_bytes[k], c, sizeof c),
                    r->s[i].range_count[k], r->s[i].name);
    }
}

static void help(void)
{
    fputs("usage: heaptrace report FILE [--top N] [--range T0,T1] [--pid PID] [--heap HANDLE] [--json]\n"
          "\n"
          "What a trace says, in one pass over it: totals by event, API and Source; the\n"
          "peak (when, and the sites that held it); leaks (blocks live at the end) by\n"
          "site; top sites by bytes, by allocations and by temporary allocations (freed\n"
          "right after, with no allocation in between); allocation sizes; lifetimes;\n"
          "heaps (named by HEAP_CREATE), threads; reallocs; mismatched releases (free of\n"
          "new, delete of malloc, ...); frees of unknown blocks and double frees.\n"
          "\n"
          "options:\n"
          "      --top N              rows per list (default 10)\n"
          "      --range T0,T1        WPA's lifetime classes for the window [T0, T1) from the\n"
          "                           start: AIFI, AIFO, AOFI, AOFO; times in seconds or with\n"
          "                           a unit (ns, us, ms, s, m), an empty T1 is the end\n"
          HT_FILTER_HELP
          "      --json               the same content as one JSON document (docs/REPORT.md)\n" HT_SYMBOL_HELP
          "\n"
          "A damaged trace is reported as far as it is intact; the damage is named on\n"
          "stderr and the exit status is 1.\n",
          stdout);
}

int ht_cmd_report(int argc, char **argv)
{
    enum { O_TOP = 1300, O_RANGE, O_JSON };
    static const struct option lo[] = {{"top", required_argument, 0, O_TOP},
                                       {"range", required_argument, 0, O_RANGE},
                                       {"json", no_argument, 0, O_JSON},
                                       {"help", no_argument, 0, 'h'},
                                       HT_SYMBOL_LONGOPTS,
                                       HT_FILTER_LONGOPTS,
                                       {0, 0, 0, 0}};
    ht_prof_opts po = {0};
    ht_symbol_opts so = {0};
    rep r = {.top = 10, .o = stdout};
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
        int s = ht_symbol_opt(c, optarg, &so, "report");
        if (!s) s = ht_filter_opt(c, optarg, &po, "report");
        if (s < 0) return 2;
        if (s) continue;
        char *end;
        switch (c) {
        case 'h': help(); return 0;
        case O_TOP: {
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || v < 1 || v > 1000000) {
                ht_err("report: --top needs a count from 1 to 1000000, not '%s'", optarg);
                return 2;
            }
            r.top = (int)v;
            break;
        }
        case O_RANGE: {
            char *comma = strchr(optarg, ',');
            if (!comma) {
                ht_err("report: --range needs T0,T1 (e.g. 1.5,3 or 200ms,1s), not '%s'", optarg);
                return 2;
            }
            *comma = 0;
            uint64_t t1 = UINT64_MAX;
            int bad = ht_parse_time(optarg, &po.t0) < 0 || (comma[1] && ht_parse_time(comma + 1, &t1) < 0);
            *comma = ',';
            if (bad || t1 <= po.t0) {
                ht_err("report: --range needs T0,T1 with T0 < T1 (seconds, or a unit: ns us ms s m), not '%s'",
                       optarg);
                return 2;
            }
            po.t1 = t1;
            po.have_range = 1;
            break;
        }
        case O_JSON: r.json = 1; break;
        case ':': ht_err("report: option '%s' needs a value", argv[optind - 1]); return 2;
        default: ht_err("report: unknown option '%s'; see 'heaptrace report --help'", ht_optname(argv)); return 2;
        }
    }
    if (optind != argc - 1) {
        ht_err("usage: heaptrace report FILE [--top N] [--range T0,T1] [--pid PID] [--heap H] [--json]");
        return 2;
    }
    r.path = argv[optind];
    ht_analysis a;
    int rc = ht_analyze(r.path, &po, &so, &a);
    if (rc) return rc;
    r.a = &a;
    r.p = &a.prof;
    if (build_sites(&r) < 0) {
        ht_err("report: out of memory");
        ht_analysis_free(&a);
        return 1;
    }
    FILE *o = r.o;
    if (r.json) {
        fputs("{\n  \"heaptrace_report\": 1,\n  \"trace\": ", o);
        jstr(o, r.path);
        fputs(",\n  \"processes\": [", o);
        for (size_t i = 0; i < r.p->nprocs; i++) {
            const ht_prof_proc *x = &r.p->procs[i];
            fprintf(o, "%s\n    {\"pid\": %u, \"ppid\": %u, \"command\": ", i ? "," : "", x->pid, x->ppid);
            jstr(o, x->command ? x->command : "");
            fprintf(o, ", \"allocations\": %" PRIu64 ", \"frees\": %" PRIu64 ", \"reallocs\": %" PRIu64
                       ", \"peak_bytes\": %" PRIu64 ", \"peak_ts_ns\": %" PRIu64 ", \"live_bytes\": %" PRIu64
                       ", \"live_blocks\": %" PRIu64 ", \"ended\": %s, \"exit_code\": %d, \"exit_signal\": %d}",
                    x->allocs, x->frees, x->reallocs, x->peak_bytes, x->peak_ts, x->live_bytes, x->live_blocks,
                    x->ended ? (x->exit_unknown ? "\"unknown\"" : "true") : "false", x->exit_code, x->exit_signal);
        }
        fputs(r.p->nprocs ? "\n  ],\n" : "],\n", o);
    }
    totals(&r);
    site_list(&r, "sites at the peak (live bytes when the peak was reached)", "peak_sites", C_PEAK);
    site_list(&r, "leaks: blocks live at the end, by site", "leak_sites", C_LIVE);
    site_list(&r, "top sites by bytes allocated", "top_bytes", C_BYTES);
    site_list(&r, "top sites by allocations", "top_allocations", C_ALLOCS);
    site_list(&r, "top sites by temporary allocations", "top_temporary", C_TEMP);
    histograms(&r);
    heaps_threads(&r);
    reallocs_bad(&r);
    site_list(&r, "top realloc sites", "top_reallocs", C_REALLOCS);
    range(&r);
    if (r.json) fputs("\n}\n", o);
    int bad = a.damaged;
    if (fflush(o) != 0 || ferror(o)) {
        ht_err("report: writing the report failed: %s", strerror(errno));
        bad = 1;
    }
    ht_prof_named_free(r.s, r.n);
    ht_analysis_free(&a);
    return bad ? 1 : 0;
}
