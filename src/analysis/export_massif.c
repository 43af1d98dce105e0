/*
 * export_massif.c - see export.h.
 *
 * The file is what valgrind's massif (3.13 and later, coregrind/m_xtree.c)
 * writes, so ms_print and massif-visualizer read it as their own:
 *
 *   desc: ...                         header
 *   cmd: CMD
 *   time_unit: ms
 *   #-----------                      one block per snapshot, numbered 0..n-1
 *   snapshot=N
 *   #-----------
 *   time=T                            integer, in time_unit
 *   mem_heap_B=B
 *   mem_heap_extra_B=0
 *   mem_stacks_B=0
 *   heap_tree=empty|detailed|peak
 *   n2: B (heap allocation functions) malloc/new/new[], --alloc-fns, etc.
 *    n1: B1 0xADDR: fn (file.c:12)    a child per line, one more space deep
 *     n0: B1 0xADDR: main (file.c:40)
 *    n0: B2 in 3 places, all below massif's threshold (1.00%)
 *
 * Our trace holds the live bytes over time (the profile's per-process
 * series) and every site's live bytes at the peak and at the end, so the
 * peak snapshot carries the peak's allocation tree, the last one the tree
 * of what was still live (the leaks), the others only their totals.
 * ms_print dies on any line it does not expect, and on a tree node larger
 * than its snapshot's total: every number below is kept consistent with
 * that (a node's children never sum to more than the node).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "export.h"

#define MAX_SNAPSHOTS 100 /* massif's default --max-snapshots */
#define MAX_DEPTH 200     /* massif's largest --depth: also bounds the recursion below */
#define THRESHOLD 1       /* massif's default --threshold, percent of the snapshot's total */

static const char top_node_desc[] = "(heap allocation functions) malloc/new/new[], --alloc-fns, etc.";

/* The one frame of a site without a call stack (export.h). */
static const ht_stk_frame no_stack = {.text = "[no call stack]"};

/* Writes s with control characters replaced: a newline inside a name would
 * end the line in the middle of a record. */
static void put_clean(FILE *out, const char *s)
{
    for (; *s; s++) putc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, out);
}

static const char *base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* A frame as massif describes an address (VG_(describe_IP)):
 * "0xADDR: fn (file:line)", "0xADDR: fn (in module)" or "0xADDR: ???". Like
 * valgrind, the address is the call instruction's (return address - 1) and
 * the file its basename. */
static void put_frame(FILE *out, const ht_stk_frame *f)
{
    if (f == &no_stack) {
        fputs("0x0: [no call stack]", out);
        return;
    }
    fprintf(out, "0x%" PRIX64 ": ", f->pc ? f->pc - 1 : 0);
    put_clean(out, f->function ? f->function : "???");
    if (f->function && f->file) {
        fputs(" (", out);
        put_clean(out, base(f->file));
        fprintf(out, ":%d)", f->line);
    } else if (f->module) {
        fputs(" (in ", out);
        put_clean(out, f->module);
        fputc(')', out);
    }
}

/* ---- the allocation tree ---- */

/* One site's path through the tree: its frames from the allocation site
 * outwards (fr[0] is the site), and its bytes. */
typedef struct ms_ec {
    const ht_stk_frame *fr;
    uint32_t n;
    uint64_t v;
} ms_ec;

/* Sites sharing their frame at one depth below the same parent; an
 * insignificant group (key NULL) stands for n_ec groups below the threshold,
 * merged as massif does. */
typedef struct ms_group {
    const ht_stk_frame *key;
    const ms_ec *ec;
    uint32_t n_ec;
    uint64_t total;
} ms_group;

/* Frames are the same node when they are the same code: same address and
 * same text (inlined frames share their caller's address; two processes can
 * map different code at one address). */
static int frame_cmp(const ht_stk_frame *a, const ht_stk_frame *b)
{
    if (a == b) return 0;
    if (a->pc != b->pc) return a->pc < b->pc ? -1 : 1;
    return strcmp(a->text, b->text);
}

/* Paths in lexicographic order, a path before its extensions: the sites of
 * every node of the tree are then one contiguous run. */
static int ec_cmp(const void *va, const void *vb)
{
    const ms_ec *a = va, *b = vb;
    uint32_t n = a->n < b->n ? a->n : b->n;
    for (uint32_t i = 0; i < n; i++) {
        int c = frame_cmp(&a->fr[i], &b->fr[i]);
        if (c) return c;
    }
    return a->n < b->n ? -1 : a->n > b->n;
}

/* Bigger first; among equals the insignificant group first (massif sorts it
 * by its address 0), then by frame, so the output is deterministic. */
static int group_cmp(const void *va, const void *vb)
{
    const ms_group *a = va, *b = vb;
    if (a->total != b->total) return a->total > b->total ? -1 : 1;
    if (!a->key || !b->key) return !b->key - !a->key;
    return frame_cmp(a->key, b->key);
}

/* The groups at `depth` of the sorted paths ec[0..n) (massif's
 * ms_make_groups): paths that end above depth take no part; groups below
 * sig bytes become one insignificant group. */
static int make_groups(uint32_t depth, const ms_ec *ec, uint32_t n, uint64_t sig, ms_group **out, uint32_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (depth >= MAX_DEPTH) return 0;
    uint32_t ng = 0;
    const ht_stk_frame *last = NULL;
    for (uint32_t i = 0; i < n; i++)
        if (ec[i].n > depth && (!last || frame_cmp(&ec[i].fr[depth], last))) {
            last = &ec[i].fr[depth];
            ng++;
        }
    if (!ng) return 0;
    ms_group *g = malloc(ng * sizeof *g);
    if (!g) return -ENOMEM;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n;) {
        if (ec[i].n <= depth) {
            i++;
            continue;
        }
        ms_group *c = &g[k++];
        *c = (ms_group){.key = &ec[i].fr[depth], .ec = &ec[i], .n_ec = 0, .total = 0};
        while (i < n && ec[i].n > depth && !frame_cmp(&ec[i].fr[depth], c->key)) {
            c->total += ec[i].v;
            c->n_ec++;
            i++;
        }
    }
    /* the insignificant ones into the first of them, the others moved up */
    uint32_t w = 0, insig = UINT32_MAX, n_insig = 0;
    for (uint32_t i = 0; i < k; i++) {
        if (g[i].total < sig) {
            uint64_t t = g[i].total; /* g[i] may be the slot the merged group takes */
            if (insig == UINT32_MAX) {
                insig = w;
                g[w++] = (ms_group){.key = NULL, .ec = NULL, .n_ec = 0, .total = 0};
            }
            g[insig].total += t;
            n_insig++;
        } else {
            g[w++] = g[i];
        }
    }
    if (insig != UINT32_MAX) g[insig].n_ec = n_insig;
    qsort(g, w, sizeof *g, group_cmp);
    *out = g;
    *nout = w;
    return 0;
}

static int put_group(FILE *out, uint32_t depth, const ms_group *g, uint64_t sig)
{
    int indent = (int)depth + 1;
    if (!g->key) {
        fprintf(out, "%*sn0: %" PRIu64 " in %" PRIu32 " place%s below massif's threshold (%.2f%%)\n", indent, "",
                g->total, g->n_ec, g->n_ec == 1 ? "," : "s, all", (double)THRESHOLD);
        return 0;
    }
    ms_group *sub;
    uint32_t nsub;
    if (make_groups(depth + 1, g->ec, g->n_ec, sig, &sub, &nsub) < 0) return -ENOMEM;
    fprintf(out, "%*sn%" PRIu32 ": %" PRIu64 " ", indent, "", nsub, g->total);
    put_frame(out, g->key);
    fputc('\n', out);
    int rc = 0;
    for (uint32_t i = 0; i < nsub && !rc; i++) rc = put_group(out, depth + 1, &sub[i], sig);
    free(sub);
    return rc;
}

/* Functions below main (massif's Vg_FnNameBelowMain): massif cuts stacks
 * there, as it does after main. */
static int below_main(const char *fn)
{
    static const char *const names[] = {"__libc_start_main", "__libc_start_call_main", "generic_start_main",
                                        "_start"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(fn, names[i])) return 1;
    return 0;
}

/* The path of a site: from its allocation-site frame (so the allocator's
 * own frames stay out, under massif's "heap allocation functions" root) to
 * main, or to the first function below main, or to the outermost frame. */
static void site_path(const ht_export_ctx *x, const ht_prof_site *s, uint64_t v, ms_ec *e)
{
    const ht_stk_frame *fr = NULL;
    uint32_t site = 0;
    int nf = s->stack ? ht_stk_nframes(x->stk, s->pid, s->stack, &fr, &site) : 0;
    if (nf <= 0 || !fr || site >= (uint32_t)nf) {
        *e = (ms_ec){.fr = &no_stack, .n = 1, .v = v};
        return;
    }
    uint32_t end = (uint32_t)nf, bm = 0;
    for (uint32_t i = site; i < (uint32_t)nf; i++) {
        const char *fn = fr[i].function;
        if (!fn) continue;
        if (!strcmp(fn, "main")) {
            end = i + 1;
            bm = 0;
            break;
        }
        if (!bm && below_main(fn)) bm = i + 1;
    }
    if (bm) end = bm;
    uint32_t n = end - site;
    *e = (ms_ec){.fr = fr + site, .n = n < MAX_DEPTH ? n : MAX_DEPTH, .v = v};
}

/* The tree of a detailed snapshot of `total` bytes, each site weighing its
 * peak bytes (at_peak) or its bytes live at the end. */
static int put_tree(FILE *out, const ht_export_ctx *x, int at_peak, uint64_t total)
{
    const ht_prof *p = x->prof;
    size_t n = 0;
    for (size_t i = 0; i < p->capsites; i++)
        if (p->sites[i].used && (at_peak ? p->sites[i].peak_bytes : p->sites[i].live_bytes)) n++;
    if (n > UINT32_MAX) n = UINT32_MAX;
    ms_ec *ec = malloc((n ? n : 1) * sizeof *ec);
    if (!ec) return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < p->capsites && k < n; i++) {
        const ht_prof_site *s = &p->sites[i];
        uint64_t v = at_peak ? s->peak_bytes : s->live_bytes;
        if (s->used && v) site_path(x, s, v, &ec[k++]);
    }
    /* Bytes by site never add up to more than the total in a sound profile;
     * should they, the excess is cut so the file stays one ms_print
     * accepts (it dies on a node larger than its snapshot). */
    uint64_t left = total;
    for (size_t i = 0; i < k; i++) {
        if (ec[i].v > left) ec[i].v = left;
        left -= ec[i].v;
    }
    qsort(ec, k, sizeof *ec, ec_cmp);
    /* Massif's significance: 1% of the snapshot's total, in whole bytes
     * (everything is insignificant in an empty snapshot). */
    uint64_t sig = total ? total * THRESHOLD / 100 : 1;
    ms_group *g;
    uint32_t ng;
    int rc = make_groups(0, ec, (uint32_t)k, sig, &g, &ng);
    if (!rc) {
        fprintf(out, "n%" PRIu32 ": %" PRIu64 " %s\n", ng, total, top_node_desc);
        for (uint32_t i = 0; i < ng && !rc; i++) rc = put_group(out, 0, &g[i], sig);
        free(g);
    }
    free(ec);
    return rc;
}

/* ---- the snapshots ---- */

typedef struct merge_ev {
    uint64_t ts, live;
    uint32_t proc, seq;
} merge_ev;

static int merge_ev_cmp(const void *va, const void *vb)
{
    const merge_ev *a = va, *b = vb;
    if (a->ts != b->ts) return a->ts < b->ts ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The live bytes of all processes together over time: at every point of
 * any process's series, the sum of each process's latest value. */
static int merged_series(const ht_prof *p, ht_prof_point **out, size_t *nout)
{
    size_t n = 0;
    for (size_t k = 0; k < p->nprocs; k++) n += p->procs[k].nseries;
    /* room for the points added later: the start, the peak and the end */
    ht_prof_point *pt = malloc((n + 3) * sizeof *pt);
    if (!pt) return -ENOMEM;
    *out = pt;
    *nout = 0;
    if (p->nprocs == 1) {
        if (n) memcpy(pt, p->procs[0].series, n * sizeof *pt);
        *nout = n;
        return 0;
    }
    merge_ev *ev = malloc((n ? n : 1) * sizeof *ev);
    uint64_t *cur = calloc(p->nprocs ? p->nprocs : 1, sizeof *cur);
    if (!ev || !cur) {
        free(ev);
        free(cur);
        return -ENOMEM;
    }
    size_t m = 0;
    for (size_t k = 0; k < p->nprocs; k++)
        for (uint32_t i = 0; i < p->procs[k].nseries; i++, m++)
            ev[m] = (merge_ev){.ts = p->procs[k].series[i].ts, .live = p->procs[k].series[i].live,
                               .proc = (uint32_t)k, .seq = (uint32_t)m};
    qsort(ev, n, sizeof *ev, merge_ev_cmp);
    uint64_t sum = 0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        sum = sum - cur[ev[i].proc] + ev[i].live;
        cur[ev[i].proc] = ev[i].live;
        if (i + 1 < n && ev[i + 1].ts == ev[i].ts) continue; /* one point per moment */
        pt[w++] = (ht_prof_point){ev[i].ts, sum};
    }
    free(ev);
    free(cur);
    *nout = w;
    return 0;
}

/* Cuts the time between the first and the last point into nb equal
 * stretches; returns how many of them hold a point (the first and last
 * aside), and marks each one's highest point in keep (if not NULL). */
static size_t stretches(const ht_prof_point *pt, size_t n, uint64_t nb, unsigned char *keep)
{
    double span = (double)(pt[n - 1].ts - pt[0].ts) + 1;
    size_t used = 0, best = 0;
    uint64_t cur = UINT64_MAX;
    for (size_t i = 1; i + 1 < n; i++) {
        uint64_t b = (uint64_t)((double)(pt[i].ts - pt[0].ts) / span * (double)nb);
        if (b != cur) { /* ts ascending: a stretch's points are consecutive */
            if (keep && cur != UINT64_MAX) keep[best] = 1;
            cur = b;
            best = i;
            used++;
        } else if (pt[i].live > pt[best].live) {
            best = i;
        }
    }
    if (keep && cur != UINT64_MAX) keep[best] = 1;
    return used;
}

static uint64_t to_ms(uint64_t ns)
{
    return ns / 1000000 + (ns % 1000000 >= 500000);
}

int ht_export_massif(const ht_export_ctx *x, FILE *out)
{
    const ht_prof *p = x->prof;
    ht_prof_point *pt;
    size_t n;
    if (merged_series(p, &pt, &n) < 0) return -ENOMEM;

    /* Each process's series is downsampled on its own, so a sum of them can
     * pair values from different moments; nothing exceeds the true peak. */
    for (size_t i = 0; i < n; i++)
        if (pt[i].live > p->peak_bytes) pt[i].live = p->peak_bytes;
    /* The peak point itself, exactly (the series of several processes need
     * not hold it). */
    size_t pk = 0;
    while (pk < n && pt[pk].ts < p->peak_ts) pk++;
    if (pk == n || pt[pk].ts != p->peak_ts) {
        memmove(pt + pk + 1, pt + pk, (n - pk) * sizeof *pt);
        n++;
    }
    pt[pk] = (ht_prof_point){p->peak_ts, p->peak_bytes};
    /* massif starts from nothing at time 0 ... */
    if (pt[0].ts > 0) {
        memmove(pt + 1, pt, n * sizeof *pt);
        pt[0] = (ht_prof_point){0, 0};
        n++;
        pk++;
    }
    /* ... and the graph runs to the trace's last record */
    if (p->last_ts > pt[n - 1].ts) {
        pt[n] = (ht_prof_point){p->last_ts, pt[n - 1].live};
        n++;
    }

    /* At most MAX_SNAPSHOTS: the first, the last, the peak, and the highest
     * point of every stretch of time in between that has any (a downsampled
     * memory graph should keep its spikes).  Activity comes in bursts, so
     * the stretches are made as short as the budget allows. */
    unsigned char *keep = calloc(n, 1);
    if (!keep) {
        free(pt);
        return -ENOMEM;
    }
    if (n <= MAX_SNAPSHOTS) {
        memset(keep, 1, n);
    } else {
        uint64_t lo = MAX_SNAPSHOTS - 3, hi = (uint64_t)n * 64;
        while (lo < hi) {
            uint64_t mid = lo + (hi - lo + 1) / 2;
            if (stretches(pt, n, mid, NULL) + 3 <= MAX_SNAPSHOTS) lo = mid;
            else hi = mid - 1;
        }
        stretches(pt, n, lo, keep);
        keep[0] = keep[n - 1] = keep[pk] = 1;
    }

    const char *cmd = p->nprocs && p->procs[0].command ? p->procs[0].command : x->trace_path;
    fputs("desc: (heaptrace export of ", out);
    put_clean(out, x->trace_path ? x->trace_path : "a trace");
    fputs(")\ncmd: ", out);
    put_clean(out, cmd ? cmd : "(unknown)");
    fputs("\ntime_unit: ms\n", out);

    int rc = 0;
    unsigned num = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!keep[i]) continue;
        /* the peak with its tree; the end with the tree of what stayed live */
        int peak = i == pk, end = i == n - 1 && !peak && pt[i].live;
        fprintf(out,
                "#-----------\nsnapshot=%u\n#-----------\ntime=%" PRIu64 "\nmem_heap_B=%" PRIu64
                "\nmem_heap_extra_B=0\nmem_stacks_B=0\nheap_tree=%s\n",
                num++, to_ms(pt[i].ts), pt[i].live, peak ? "peak" : end ? "detailed" : "empty");
        if (peak || end) rc = put_tree(out, x, peak, pt[i].live);
    }
    free(keep);
    free(pt);
    if (rc) return rc;
    return ferror(out) ? -EIO : 0;
}
