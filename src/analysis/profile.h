/*
 * profile.h - the analysis model behind `heaptrace report` and `heaptrace
 * export`: one streaming pass over a trace's records that keeps everything
 * the views need, in memory that grows with the live blocks, the unique
 * call stacks, the threads and heaps, never with the number of events.
 *
 *   ht_prof p;  ht_prof_init(&p, &opts);
 *   while (ht_reader_next(&r, &ev) > 0) ht_prof_event(&p, &ev);
 *   ht_prof_finish(&p);           // fills the at-peak and end-of-trace views
 *   ... read p.sites, p.procs, p.markers ...; ht_prof_free(&p);
 *
 * A site is one (process, call stack) pair; stack 0 is "no call stack"
 * (a trace recorded without --stacks has one such site per process).  The
 * stack table (stacktab.h) names a site and its frames.
 *
 * Definitions (the same everywhere, FORMAT.md and the report say so too):
 *  - live bytes: sum of the sizes of the blocks allocated in the trace and
 *    not yet freed; a realloc frees the old block and allocates the new one;
 *    HEAP_DESTROY releases the blocks of its heap.
 *  - peak: the highest live bytes of the whole trace (all processes
 *    together), its time, and every site's live bytes at that moment.
 *  - temporary allocation (heaptrack's definition): a block freed by the
 *    next heap event of its process after its allocation (no other
 *    allocation or free of that process in between).
 *  - leak: a block still live at the end of the trace.
 *  - unknown free: a free (or realloc) of an address that no allocation of
 *    the trace produced: allocated before the session, or invalid.
 *    A double free: an address freed again after it was freed in the trace
 *    and not allocated since (among the recently freed addresses: a fixed
 *    cache of them, see profile.c).  The two are counted apart.
 *  - mismatch: a block released by the wrong family (free of new/new[],
 *    delete of malloc'ed or new[] memory, delete[] of malloc'ed or new).
 *  - range classes (WPA), for a window [t0, t1): AIFI allocated and freed
 *    inside; AIFO allocated inside, live at t1; AOFI allocated before t0,
 *    freed inside; AOFO allocated before t0, live through t1.
 */
#ifndef HT_PROFILE_H
#define HT_PROFILE_H

#include <stddef.h>
#include <stdint.h>

#include "../format/format.h"

enum { HT_RANGE_AIFI, HT_RANGE_AIFO, HT_RANGE_AOFI, HT_RANGE_AOFO, HT_RANGE_CLASSES };

typedef struct ht_prof_opts {
    int have_pid;           /* only this process's records */
    uint32_t pid;
    int have_heap;          /* only heap events of this heap handle */
    uint64_t heap;
    int have_range;         /* range classes for [t0, t1) (ns from the start) */
    uint64_t t0, t1;
    uint32_t series_max;    /* points kept per process of the memory-over-time
                             * series (0: 2048); downsampled, peaks kept */
    uint32_t markers_max;   /* markers kept (0: 100000); the rest are counted */
} ht_prof_opts;

typedef struct ht_prof_site {
    uint32_t pid, stack;             /* key; stack 0: no call stack */
    uint64_t allocs, bytes;          /* allocations made here (a moving realloc's new block counts) */
    uint64_t reallocs;               /* reallocs made here */
    uint64_t temporary;              /* temporary allocations */
    uint64_t live_blocks, live_bytes;/* live now; after finish: at the end (leaks) */
    uint64_t peak_blocks, peak_bytes;/* after finish: live at the trace's peak */
    uint64_t range_count[HT_RANGE_CLASSES], range_bytes[HT_RANGE_CLASSES];
    uint8_t used;                    /* slot of the hash table in use */
    uint64_t epoch_;                 /* private: peak bookkeeping */
} ht_prof_site;

typedef struct ht_prof_point { uint64_t ts, live; } ht_prof_point;

typedef struct ht_prof_proc {
    uint32_t pid, ppid;
    char *command;                   /* from PROCESS, NULL if none */
    uint64_t first_ts, last_ts;
    uint64_t allocs, frees, reallocs, bytes;
    uint64_t live_bytes, live_blocks;/* after finish: at the end */
    uint64_t peak_bytes, peak_ts;    /* this process's own peak */
    int ended, exit_code, exit_signal, exit_unknown;
    ht_prof_point *series;           /* live bytes over time, ts ascending, <= series_max points;
                                      * holds the process's peak point and its last value */
    uint32_t nseries;
    uint64_t series_step_, bucket_end_; /* private: downsampling */
    uint32_t bmax_, blast_, cap_series_;
    uint64_t last_alloc_;            /* private: temporary detection */
    uint32_t last_alloc_heap_;
    /* private: the custom heaps' sums; the libc heap's figures are the
     * process's minus these (so libc events touch no heap entry) */
    int has_custom_;
    uint64_t c_allocs_, c_frees_, c_reallocs_, c_bytes_, c_live_bytes_, c_live_blocks_;
    uint64_t libc_peak_;             /* the libc heap's peak once custom heaps exist */
    /* private: the thread of the process's first heap event has no entry
     * updated per event; its figures are the process's minus the others' */
    int has_main_;
    uint32_t main_tid_;
    uint64_t o_allocs_, o_frees_, o_reallocs_, o_bytes_;
} ht_prof_proc;

typedef struct ht_prof_thread {
    uint32_t pid, tid;
    char name[17];
    uint64_t allocs, frees, reallocs, bytes;
} ht_prof_thread;

typedef struct ht_prof_heap {
    uint32_t pid;
    int destroyed;
    uint64_t heap;
    uint64_t allocs, frees, reallocs, bytes;
    uint64_t live_blocks, live_bytes, peak_bytes;
    uint64_t destroyed_blocks;       /* released with HEAP_DESTROY */
    char name[64];                   /* from HEAP_CREATE; "libc" for 1; "" unknown */
} ht_prof_heap;

typedef struct ht_prof_marker {
    uint32_t pid, tid;
    uint64_t ts;
    char *text;
} ht_prof_marker;

#define HT_PROF_SIZE_BUCKETS 65      /* [0]: size 0; [k]: 2^(k-1) <= size < 2^k */
/* No process has a block larger than its address space (2^57 bytes covers
 * x86-64 with 5-level paging and arm64's 52-bit VA): a larger size, or one
 * that would take the live bytes past HT_PROF_LIVE_MAX, comes from a damaged
 * trace. Such an allocation is counted in bad_sizes and not tracked, so no
 * live or peak figure can wrap around 64 bits. */
#define HT_PROF_SIZE_MAX (1ull << 57)
#define HT_PROF_LIVE_MAX (1ull << 62)
#define HT_PROF_LIFE_BUCKETS 12      /* [k]: < 10^k ns for k < 11 (1 ns .. 100 s); [11]: longer */

/* api families for mismatches */
enum { HT_FAM_MALLOC, HT_FAM_NEW, HT_FAM_NEW_ARRAY, HT_FAM_HEAP, HT_FAM_COUNT };

typedef struct ht_prof_mismatch_ex {
    uint32_t pid, tid;
    uint64_t ts, addr, size;
    uint8_t alloc_api, free_api;
    uint32_t alloc_stack, free_stack;
} ht_prof_mismatch_ex;

typedef struct ht_prof {
    ht_prof_opts opt;
    /* totals */
    uint64_t records, heap_events;          /* heap_events and the tables below: after finish */
    uint64_t kind_count[4];                 /* by kind 1..3 (ALLOC, FREE, REALLOC) */
    uint64_t api_count[HT_API_COUNT];       /* heap events by api */
    uint64_t api_bytes[HT_API_COUNT];       /* bytes allocated by api */
    uint64_t source_count[8], source_bytes[8];
    uint64_t allocs, failed_allocs, frees, reallocs, failed_reallocs;
    uint64_t blocks_allocated;              /* allocations + successful reallocs: the sites' allocs summed */
    uint64_t bytes_allocated, bytes_freed;  /* bytes_allocated: the sites' bytes summed */
    uint64_t temporary;
    uint64_t live_bytes, live_blocks;       /* after finish: at the end */
    uint64_t peak_bytes, peak_blocks, peak_ts;
    uint64_t unknown_frees, unknown_reallocs;   /* addresses never allocated in the trace */
    uint64_t double_frees;                  /* freed again after a free in the trace */
    uint64_t bad_sizes;                     /* allocations beyond HT_PROF_SIZE_MAX/LIVE_MAX, not tracked */
    uint64_t destroyed_blocks;
    uint64_t lost, markers_total, first_ts, last_ts;
    int have_end, end_code, end_signal, end_unknown; /* the last PROCESS_END of the trace */
    int have_stacks;
    /* reallocs of known blocks */
    uint64_t realloc_grow, realloc_shrink, realloc_same, realloc_inplace, realloc_moved;
    uint64_t realloc_grow_bytes, realloc_shrink_bytes;
    /* histograms: allocations by size; freed blocks by lifetime (and still live at the end) */
    uint64_t size_count[HT_PROF_SIZE_BUCKETS], size_bytes[HT_PROF_SIZE_BUCKETS];
    uint64_t life_count[HT_PROF_LIFE_BUCKETS], life_bytes[HT_PROF_LIFE_BUCKETS];
    /* mismatches: [allocating family][releasing family] (diagonal unused) */
    uint64_t mismatch[HT_FAM_COUNT][HT_FAM_COUNT];
    uint64_t mismatches;
    ht_prof_mismatch_ex mismatch_ex[16];
    uint32_t nmismatch_ex;
    /* range classes (opt.have_range) */
    uint64_t range_count[HT_RANGE_CLASSES], range_bytes[HT_RANGE_CLASSES];
    /* tables */
    ht_prof_site *sites;                    /* i < nsites (dense; entries up to capsites are zero,
                                             * so iterating i < capsites skipping !used works too) */
    size_t nsites, capsites;
    ht_prof_proc *procs;
    size_t nprocs;
    ht_prof_thread *threads;
    size_t nthreads;
    ht_prof_heap *heaps;                    /* after finish, by (pid, heap); the libc heap's entry
                                             * is made by finish */
    size_t nheaps;
    ht_prof_marker *markers;
    size_t nmarkers;
    int oom;                                /* memory ran out: results incomplete */
    /* private */
    uint64_t cnt_[4][32][8];                /* heap events by kind, api (5 bits), source */
    uint64_t bytes_[32][8];                 /* bytes allocated by api, source */
    uint64_t epoch_;
    struct ht_pblk *blk_;                   /* the live blocks */
    size_t capblk_, nblk_live_;
    struct ht_pfreed *freed_;               /* recently released addresses (double frees) */
    uint32_t *site_idx_;                    /* (pid, stack) -> index + 1 */
    size_t capsite_idx_;
    uint32_t *thr_idx_;                     /* (pid, tid) -> index + 1 */
    size_t capthr_idx_;
    size_t capprocs_, capthreads_, capheaps_, capmarkers_;
    size_t last_proc_, last_thread_, last_heap_, last_site_;
    int finished_;
} ht_prof;

void ht_prof_init(ht_prof *p, const ht_prof_opts *o); /* o may be NULL */
void ht_prof_event(ht_prof *p, const ht_event *ev);
void ht_prof_finish(ht_prof *p);
void ht_prof_free(ht_prof *p);

/* Sites as reports name them: the (process, stack) pairs whose
 * allocation-site frame (stacktab.h's ht_stk_site) reads the same, added up;
 * sorted by name.  `pid, stack` are the first pair's (to show its frames). */
typedef struct ht_prof_named {
    char *name;
    uint32_t pid, stack;
    uint64_t allocs, bytes, reallocs, temporary, live_blocks, live_bytes, peak_blocks, peak_bytes;
    uint64_t range_count[HT_RANGE_CLASSES], range_bytes[HT_RANGE_CLASSES];
} ht_prof_named;
#define HT_PROF_NO_STACK "(no call stack: record with --stacks fp or dwarf)"
struct ht_stacktab;
/* After finish; *n gets the count.  NULL on out-of-memory. */
ht_prof_named *ht_prof_named_sites(const ht_prof *p, struct ht_stacktab *stk, size_t *n);
void ht_prof_named_free(ht_prof_named *v, size_t n);

/* A process's entry (during or after the pass); NULL if absent. */
const ht_prof_proc *ht_prof_proc_of(const ht_prof *p, uint32_t pid);

/* The family of an api (HT_FAM_*). */
int ht_prof_family(unsigned api);
const char *ht_prof_family_name(int fam);
const char *ht_prof_range_name(int cls); /* "AIFI" ... */
/* Lower bound of a lifetime bucket in ns, and its label ("< 1 us"). */
const char *ht_prof_life_label(int bucket);

#endif
