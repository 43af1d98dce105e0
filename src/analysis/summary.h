/*
 * summary.h - the end-of-run summary: one streaming pass over the events,
 * memory proportional to the live blocks.  Used by `record` at exit and by
 * `summary FILE`, so both print the same thing.
 */
#ifndef HT_SUMMARY_H
#define HT_SUMMARY_H

#include <stdint.h>
#include <stdio.h>

#include "../format/format.h"
#include "addrmap.h"

typedef struct ht_summary {
    uint64_t allocs, failed_allocs, frees, reallocs, failed_reallocs;
    uint64_t bytes_allocated;
    uint64_t live_bytes, peak_bytes, peak_ts;
    uint64_t unknown_frees;     /* frees of blocks not allocated in the session */
    uint64_t unknown_reallocs;  /* reallocs of such blocks */
    uint64_t destroyed_blocks;  /* released with their heap (HEAP_DESTROY) */
    uint64_t lost, markers, threads, processes, heaps;
    uint64_t last_ts;
    int have_end, exit_code, exit_signal;
    int exit_unknown; /* ended without an exit report (attach) */
    ht_addrmap live;
    /* per (process, call stack): allocations, bytes, live blocks/bytes */
    struct ht_site_acc *sites;
    size_t nsites, capsites;
} ht_summary;

typedef struct ht_site_acc {
    uint64_t key; /* pid << 32 | stack id; 0: empty slot */
    uint64_t allocs, bytes, live_blocks, live_bytes;
} ht_site_acc;

struct ht_stacktab;
/* With call stacks: the top allocation sites (bytes allocated) and the
 * sites of the blocks live at the end, named by their first frame that is
 * not allocator plumbing.  Prints nothing without stacks. */
void ht_summary_print_sites(const ht_summary *s, struct ht_stacktab *stk, FILE *out, int top);

void ht_summary_init(ht_summary *s);
void ht_summary_event(ht_summary *s, const ht_event *ev);
/* Prints the summary block (live blocks = leaks at the end). */
void ht_summary_print(const ht_summary *s, FILE *out);
void ht_summary_free(ht_summary *s);

/* Human-readable sizes and times into buf ("1.5 MiB", "12.3 ms"). */
const char *ht_fmt_bytes(uint64_t b, char *buf, size_t len);
const char *ht_fmt_ns(uint64_t ns, char *buf, size_t len);

#endif
