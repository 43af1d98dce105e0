/* summary.c - see summary.h */
#include "summary.h"

#include <inttypes.h>
#include <string.h>

void ht_summary_init(ht_summary *s)
{
    memset(s, 0, sizeof *s);
    ht_addrmap_init(&s->live);
}

void ht_summary_free(ht_summary *s) { ht_addrmap_free(&s->live); }

static void add_live(ht_summary *s, const ht_event *ev, uint64_t addr, uint64_t size)
{
    int existed;
    ht_block *b = ht_addrmap_put(&s->live, ev->pid, (uint32_t)ev->heap, addr, &existed);
    if (!b) return;
    if (existed) s->live_bytes -= b->size; /* allocated twice without a free: keep the newer */
    b->size = size;
    b->ts = ev->ts;
    b->api = ev->api;
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
