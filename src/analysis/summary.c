/* summary.c - see summary.h */
#include "summary.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "stacktab.h"

void ht_summary_init(ht_summary *s)
{
    memset(s, 0, sizeof *s);
    ht_addrmap_init(&s->live);
}

void ht_summary_free(ht_summary *s)
{
    ht_addrmap_free(&s->live);
    free(s->sites);
}

/* The accumulator of (pid, stack), made if missing; NULL without a stack. */
static ht_site_acc *site(ht_summary *s, uint32_t pid, uint32_t stack)
{
    if (!stack) return NULL;
    if ((s->nsites + 1) * 2 > s->capsites) {
        size_t cap = s->capsites ? s->capsites * 2 : 256;
        ht_site_acc *n = calloc(cap, sizeof *n);
        if (!n) return NULL;
        for (size_t i = 0; i < s->capsites; i++) {
            if (!s->sites[i].key) continue;
            size_t j = (s->sites[i].key * 0x9e3779b97f4a7c15ull) >> 20 & (cap - 1);
            while (n[j].key) j = (j + 1) & (cap - 1);
            n[j] = s->sites[i];
        }
        free(s->sites);
        s->sites = n;
        s->capsites = cap;
    }
    uint64_t key = (uint64_t)pid << 32 | stack;
    size_t j = (key * 0x9e3779b97f4a7c15ull) >> 20 & (s->capsites - 1);
    while (s->sites[j].key && s->sites[j].key != key) j = (j + 1) & (s->capsites - 1);
    if (!s->sites[j].key) {
        s->sites[j].key = key;
        s->nsites++;
    }
    return &s->sites[j];
}

static void add_live(ht_summary *s, const ht_event *ev, uint64_t addr, uint64_t size)
{
    int existed;
    ht_block *b = ht_addrmap_put(&s->live, ev->pid, (uint32_t)ev->heap, addr, &existed);
    if (!b) return;
    if (existed) s->live_bytes -= b->size; /* allocated twice without a free: keep the newer */
    if (existed && b->stack) {
        ht_site_acc *o = site(s, ev->pid, b->stack);
        if (o) o->live_blocks--, o->live_bytes -= b->size;
    }
    b->size = size;
    b->ts = ev->ts;
    b->api = ev->api;
    b->stack = ev->stack;
    ht_site_acc *a = site(s, ev->pid, ev->stack);
    if (a) a->allocs++, a->bytes += size, a->live_blocks++, a->live_bytes += size;
    s->live_bytes += size;
    if (s->live_bytes > s->peak_bytes) {
        s->peak_bytes = s->live_bytes;
        s->peak_ts = ev->ts;
    }
}

/* Returns 1 if the block was live (and removes it), 0 if unknown. */
static int remove_live(ht_summary *s, const ht_event *ev, uint64_t addr, uint64_t *size)
{
    ht_block *b = ht_addrmap_get(&s->live, ev->pid, (uint32_t)ev->heap, addr);
    if (!b) return 0;
    ht_block old = ht_addrmap_del(&s->live, b);
    s->live_bytes -= old.size;
    ht_site_acc *a = site(s, old.pid, old.stack);
    if (a) a->live_blocks--, a->live_bytes -= old.size;
    if (size) *size = old.size;
    return 1;
}

void ht_summary_event(ht_summary *s, const ht_event *ev)
{
    if (ev->ts > s->last_ts) s->last_ts = ev->ts;
    switch (ev->kind) {
    case HT_EV_ALLOC:
        s->allocs++;
        if (ev->addr == 0) {
            s->failed_allocs++;
            break;
        }
        s->bytes_allocated += ev->size;
        add_live(s, ev, ev->addr, ev->size);
        break;
    case HT_EV_FREE:
        s->frees++;
        if (!remove_live(s, ev, ev->addr, NULL)) s->unknown_frees++;
        break;
    case HT_EV_REALLOC:
        s->reallocs++;
        if (ev->addr == 0) { /* failed: the old block stays */
            s->failed_reallocs++;
            break;
        }
        if (!remove_live(s, ev, ev->old_addr, NULL)) s->unknown_reallocs++;
        s->bytes_allocated += ev->size;
        add_live(s, ev, ev->addr, ev->size);
        break;
    case HT_EV_HEAP_CREATE: s->heaps++; break;
    case HT_EV_HEAP_DESTROY:
        /* blocks still in a destroyed heap went with it: not leaks */
        for (size_t i = 0; i < s->live.cap; i++) {
            ht_block *b = &s->live.slots[i];
            while (b->used && b->pid == ev->pid && b->heap == (uint32_t)ev->heap) {
                s->live_bytes -= b->size;
                s->destroyed_blocks++;
                ht_addrmap_del(&s->live, b); /* may shift another block into slot i */
            }
        }
        break;
    case HT_EV_MARKER: s->markers++; break;
    case HT_EV_LOST: s->lost += ev->arg[0]; break;
    case HT_EV_THREAD: s->threads++; break;
    case HT_EV_PROCESS: s->processes++; break;
    case HT_EV_PROCESS_END:
        s->have_end = 1;
        s->exit_code = (int)ev->arg[0];
        s->exit_signal = (int)ev->arg[1];
        s->exit_unknown = ev->nargs > 2 && ev->arg[2] == 2;
        break;
    default: break;
    }
}

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

void ht_summary_print(const ht_summary *s, FILE *out)
{
    char a[32], b[32];
    fprintf(out, "heap summary:\n");
    fprintf(out, "  allocations      %" PRIu64 " (%" PRIu64 " failed)\n", s->allocs, s->failed_allocs);
    fprintf(out, "  frees            %" PRIu64 "\n", s->frees);
    fprintf(out, "  reallocs         %" PRIu64 " (%" PRIu64 " failed)\n", s->reallocs, s->failed_reallocs);
    fprintf(out, "  bytes allocated  %" PRIu64 " (%s)\n", s->bytes_allocated,
            ht_fmt_bytes(s->bytes_allocated, a, sizeof a));
    fprintf(out, "  peak live        %" PRIu64 " bytes (%s) at %s\n", s->peak_bytes,
            ht_fmt_bytes(s->peak_bytes, a, sizeof a), ht_fmt_ns(s->peak_ts, b, sizeof b));
    fprintf(out, "  live at exit     %zu blocks, %" PRIu64 " bytes (%s)  <- leaks\n", s->live.count,
            s->live_bytes, ht_fmt_bytes(s->live_bytes, a, sizeof a));
    fprintf(out, "  unknown frees    %" PRIu64 " (blocks not allocated in this session)\n",
            s->unknown_frees + s->unknown_reallocs);
    if (s->heaps || s->destroyed_blocks)
        fprintf(out, "  custom heaps     %" PRIu64 " (%" PRIu64 " blocks released with their heap)\n",
                s->heaps, s->destroyed_blocks);
    if (s->markers) fprintf(out, "  markers          %" PRIu64 "\n", s->markers);
    fprintf(out, "  events lost      %" PRIu64 "\n", s->lost);
    fprintf(out, "  duration         %s\n", ht_fmt_ns(s->last_ts, a, sizeof a));
    if (s->have_end) {
        if (s->exit_unknown)
            fprintf(out, "  process ended    without an exit report (killed by a signal or crashed)\n");
        else if (s->exit_signal)
            fprintf(out, "  process ended    killed by signal %d\n", s->exit_signal);
        else
            fprintf(out, "  process ended    exit status %d\n", s->exit_code);
    }
}

/* ---- allocation sites ---- */

typedef struct named { char *name; uint64_t allocs, bytes, live_blocks, live_bytes; } named;

static int by_name(const void *a, const void *b) { return strcmp(((const named *)a)->name, ((const named *)b)->name); }
static int by_bytes(const void *a, const void *b)
{
    const named *x = a, *y = b;
    return x->bytes < y->bytes ? 1 : x->bytes > y->bytes ? -1 : 0;
}
static int by_live(const void *a, const void *b)
{
    const named *x = a, *y = b;
    return x->live_bytes < y->live_bytes ? 1 : x->live_bytes > y->live_bytes ? -1 : 0;
}

void ht_summary_print_sites(const ht_summary *s, struct ht_stacktab *stk, FILE *out, int top)
{
    if (!s->nsites || !stk) return;
    named *v = calloc(s->nsites, sizeof *v);
    if (!v) return;
    size_t n = 0;
    char buf[1024];
    for (size_t i = 0; i < s->capsites; i++) {
        const ht_site_acc *a = &s->sites[i];
        if (!a->key) continue;
        if (!ht_stk_site(stk, (uint32_t)(a->key >> 32), (uint32_t)a->key, buf, sizeof buf))
            snprintf(buf, sizeof buf, "(stack %u of process %u: unknown)", (uint32_t)a->key, (uint32_t)(a->key >> 32));
        size_t l = strlen(buf) + 1;
        v[n].name = malloc(l);
        if (!v[n].name) break;
        memcpy(v[n].name, buf, l);
        v[n].allocs = a->allocs;
        v[n].bytes = a->bytes;
        v[n].live_blocks = a->live_blocks;
        v[n].live_bytes = a->live_bytes;
        n++;
    }
    /* stacks that differ further up share a site: add them up */
    qsort(v, n, sizeof *v, by_name);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && !strcmp(v[m - 1].name, v[i].name)) {
            v[m - 1].allocs += v[i].allocs;
            v[m - 1].bytes += v[i].bytes;
            v[m - 1].live_blocks += v[i].live_blocks;
            v[m - 1].live_bytes += v[i].live_bytes;
            free(v[i].name);
        } else {
            v[m++] = v[i];
        }
    }
    char a1[32], a2[32];
    qsort(v, m, sizeof *v, by_bytes);
    fprintf(out, "top allocation sites (bytes allocated):\n");
    for (size_t i = 0; i < m && (int)i < top; i++)
        fprintf(out, "  %10s in %9" PRIu64 " allocations  %s\n", ht_fmt_bytes(v[i].bytes, a1, sizeof a1), v[i].allocs,
                v[i].name);
    qsort(v, m, sizeof *v, by_live);
    if (m && v[0].live_bytes) {
        fprintf(out, "blocks live at the end, by site (leaks):\n");
        for (size_t i = 0; i < m && (int)i < top && v[i].live_bytes; i++)
            fprintf(out, "  %10s in %9" PRIu64 " blocks  %s\n", ht_fmt_bytes(v[i].live_bytes, a2, sizeof a2),
                    v[i].live_blocks, v[i].name);
    }
    for (size_t i = 0; i < m; i++) free(v[i].name);
    free(v);
}
