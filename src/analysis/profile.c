/* profile.c - see profile.h.
 *
 * Cost per heap event: one probe of the block table, a cached or hashed
 * site, cached process / thread / heap entries, a few counters.  The
 * sites' values at the peak are kept lazily (an epoch per site) so a new
 * peak costs O(1), not a walk over all sites. */
#include "profile.h"

#include "stacktab.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A live block of the trace. */
typedef struct ht_pblk {
    uint64_t addr, size, ts;
    uint32_t pid, heap;
    uint32_t site; /* index into sites */
    uint8_t state, api;
    uint16_t hidx; /* index into heaps + 1, 0: none */
} ht_pblk;

enum { B_EMPTY = 0, B_LIVE = 1 };

/* A recently released address (key = pid << 32 | heap); addr 0: none. */
typedef struct ht_pfreed {
    uint64_t addr, key;
} ht_pfreed;

static inline uint64_t mix(uint64_t h)
{
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

static inline uint64_t bhash(uint32_t pid, uint32_t heap, uint64_t addr)
{
    return mix(addr ^ ((uint64_t)pid << 32 | heap) * 0x9e3779b97f4a7c15ull);
}

void ht_prof_init(ht_prof *p, const ht_prof_opts *o)
{
    memset(p, 0, sizeof *p);
    if (o) p->opt = *o;
    if (!p->opt.series_max) p->opt.series_max = 2048;
    if (p->opt.series_max < 8) p->opt.series_max = 8;
    if (!p->opt.markers_max) p->opt.markers_max = 100000;
    p->first_ts = UINT64_MAX;
    p->last_proc_ = p->last_thread_ = p->last_heap_ = p->last_site_ = SIZE_MAX;
}

void ht_prof_free(ht_prof *p)
{
    for (size_t i = 0; i < p->nprocs; i++) {
        free(p->procs[i].command);
        free(p->procs[i].series);
    }
    for (size_t i = 0; i < p->nmarkers; i++) free(p->markers[i].text);
    free(p->procs);
    free(p->threads);
    free(p->heaps);
    free(p->markers);
    free(p->sites);
    free(p->site_idx_);
    free(p->thr_idx_);
    free(p->blk_);
    free(p->freed_);
    memset(p, 0, sizeof *p);
}

/* Grows a dense array of n elements to hold one more; zeroes the new room. */
static int grow_arr(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *x = realloc(*arr, c * elem);
    if (!x) return -1;
    memset((char *)x + *cap * elem, 0, (c - *cap) * elem);
    *arr = x;
    *cap = c;
    return 0;
}

/* ---- the block table ----
 *
 * Live blocks only, open addressing with linear probing at most half full,
 * deletion by backward shift (no tombstones): memory follows the live set
 * and probes stay short.  Released addresses go into a fixed direct-mapped
 * cache (HT_FREED_CACHE entries, 256 KiB), which tells a double free (an address
 * released again, not allocated since) from a free of an address the trace
 * never allocated, among the recently released ones. */

#define HT_FREED_CACHE 16384

static int blk_grow(ht_prof *p)
{
    size_t cap = p->capblk_ ? p->capblk_ * 2 : 4096;
    ht_pblk *n = calloc(cap, sizeof *n);
    if (!n) return -1;
    if (!p->freed_) {
        p->freed_ = calloc(HT_FREED_CACHE, sizeof *p->freed_);
        if (!p->freed_) {
            free(n);
            return -1;
        }
    }
    size_t mask = cap - 1;
    for (size_t i = 0; i < p->capblk_; i++) {
        ht_pblk *b = &p->blk_[i];
        if (b->state == B_EMPTY) continue;
        size_t j = bhash(b->pid, b->heap, b->addr) & mask;
        while (n[j].state) j = (j + 1) & mask;
        n[j] = *b;
    }
    free(p->blk_);
    p->blk_ = n;
    p->capblk_ = cap;
    return 0;
}

/* The slot of (pid, heap, addr): found (state LIVE) or the empty slot where
 * it would go.  Makes room first, so the slot can be filled. */
static ht_pblk *blk_slot(ht_prof *p, uint64_t h, uint32_t pid, uint32_t heap, uint64_t addr)
{
    if ((p->nblk_live_ + 1) * 2 > p->capblk_ && blk_grow(p) < 0) return NULL;
    size_t mask = p->capblk_ - 1, j = h & mask;
    for (;;) {
        ht_pblk *b = &p->blk_[j];
        if (b->state == B_EMPTY || (b->addr == addr && b->pid == pid && b->heap == heap)) return b;
        j = (j + 1) & mask;
    }
}

static ht_pblk *blk_find(ht_prof *p, uint64_t h, uint32_t pid, uint32_t heap, uint64_t addr)
{
    if (!p->capblk_) return NULL;
    size_t mask = p->capblk_ - 1, j = h & mask;
    for (;;) {
        ht_pblk *b = &p->blk_[j];
        if (b->state == B_EMPTY) return NULL;
        if (b->addr == addr && b->pid == pid && b->heap == heap) return b;
        j = (j + 1) & mask;
    }
}

/* Removes b; a block from further along its probe run may move into b's
 * slot (callers that walk the table look at the slot again). */
static void blk_delete(ht_prof *p, ht_pblk *b)
{
    size_t i = (size_t)(b - p->blk_), mask = p->capblk_ - 1, j = i;
    for (;;) {
        j = (j + 1) & mask;
        ht_pblk *c = &p->blk_[j];
        if (c->state == B_EMPTY) break;
        size_t home = bhash(c->pid, c->heap, c->addr) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) { /* home not in (i, j]: c may fill the hole */
            p->blk_[i] = *c;
            i = j;
        }
    }
    p->blk_[i].state = B_EMPTY;
    p->nblk_live_--;
}

static inline ht_pfreed *freed_slot(ht_prof *p, uint64_t h) { return &p->freed_[(h >> 20) & (HT_FREED_CACHE - 1)]; }

/* ---- sites ---- */

static int site_idx_grow(ht_prof *p)
{
    size_t cap = p->capsite_idx_ ? p->capsite_idx_ * 2 : 1024;
    uint32_t *n = calloc(cap, sizeof *n);
    if (!n) return -1;
    for (size_t i = 0; i < p->nsites; i++) {
        const ht_prof_site *s = &p->sites[i];
        size_t j = mix((uint64_t)s->pid << 32 | s->stack) & (cap - 1);
        while (n[j]) j = (j + 1) & (cap - 1);
        n[j] = (uint32_t)i + 1;
    }
    free(p->site_idx_);
    p->site_idx_ = n;
    p->capsite_idx_ = cap;
    return 0;
}

static ht_prof_site *site_slow(ht_prof *p, uint32_t pid, uint32_t stack)
{
    if ((p->nsites + 1) * 2 > p->capsite_idx_ && site_idx_grow(p) < 0) return NULL;
    size_t mask = p->capsite_idx_ - 1, j = mix((uint64_t)pid << 32 | stack) & mask;
    for (; p->site_idx_[j]; j = (j + 1) & mask) {
        ht_prof_site *s = &p->sites[p->site_idx_[j] - 1];
        if (s->pid == pid && s->stack == stack) {
            p->last_site_ = p->site_idx_[j] - 1;
            return s;
        }
    }
    if (p->nsites >= UINT32_MAX - 1 || grow_arr((void **)&p->sites, &p->capsites, p->nsites, sizeof *p->sites) < 0)
        return NULL;
    ht_prof_site *s = &p->sites[p->nsites];
    s->pid = pid;
    s->stack = stack;
    s->used = 1;
    s->epoch_ = p->epoch_;
    p->site_idx_[j] = (uint32_t)++p->nsites;
    p->last_site_ = p->nsites - 1;
    return s;
}

static inline ht_prof_site *site_of(ht_prof *p, uint32_t pid, uint32_t stack)
{
    if (__builtin_expect(p->last_site_ < p->nsites, 1)) {
        ht_prof_site *s = &p->sites[p->last_site_];
        if (s->pid == pid && s->stack == stack) return s;
    }
    return site_slow(p, pid, stack);
}

/* Before a site's live figures change: keep its value at the last peak. */
static inline void site_touch(ht_prof *p, ht_prof_site *s)
{
    if (s->epoch_ != p->epoch_) {
        s->peak_bytes = s->live_bytes;
        s->peak_blocks = s->live_blocks;
        s->epoch_ = p->epoch_;
    }
}

/* ---- processes, threads, heaps ---- */

static ht_prof_proc *proc_slow(ht_prof *p, uint32_t pid)
{
    ht_prof_proc *f = (ht_prof_proc *)ht_prof_proc_of(p, pid);
    if (f) {
        p->last_proc_ = (size_t)(f - p->procs);
        return f;
    }
    if (grow_arr((void **)&p->procs, &p->capprocs_, p->nprocs, sizeof *p->procs) < 0) return NULL;
    ht_prof_proc *r = &p->procs[p->nprocs];
    r->pid = pid;
    r->first_ts = UINT64_MAX;
    r->series_step_ = 1000; /* 1 us buckets to begin with */
    p->last_proc_ = p->nprocs++;
    return r;
}

const ht_prof_proc *ht_prof_proc_of(const ht_prof *p, uint32_t pid)
{
    for (size_t i = 0; i < p->nprocs; i++)
        if (p->procs[i].pid == pid) return &p->procs[i];
    return NULL;
}

static ht_prof_thread *thread_slow(ht_prof *p, uint32_t pid, uint32_t tid)
{
    if ((p->nthreads + 1) * 2 > p->capthr_idx_) {
        size_t cap = p->capthr_idx_ ? p->capthr_idx_ * 2 : 256;
        uint32_t *n = calloc(cap, sizeof *n);
        if (!n) return NULL;
        for (size_t i = 0; i < p->nthreads; i++) {
            size_t j = mix((uint64_t)p->threads[i].pid << 32 | p->threads[i].tid) & (cap - 1);
            while (n[j]) j = (j + 1) & (cap - 1);
            n[j] = (uint32_t)i + 1;
        }
        free(p->thr_idx_);
        p->thr_idx_ = n;
        p->capthr_idx_ = cap;
    }
    size_t mask = p->capthr_idx_ - 1, j = mix((uint64_t)pid << 32 | tid) & mask;
    for (; p->thr_idx_[j]; j = (j + 1) & mask) {
        ht_prof_thread *t = &p->threads[p->thr_idx_[j] - 1];
        if (t->pid == pid && t->tid == tid) {
            p->last_thread_ = p->thr_idx_[j] - 1;
            return t;
        }
    }
    if (p->nthreads >= UINT32_MAX - 1 ||
        grow_arr((void **)&p->threads, &p->capthreads_, p->nthreads, sizeof *p->threads) < 0)
        return NULL;
    ht_prof_thread *t = &p->threads[p->nthreads];
    t->pid = pid;
    t->tid = tid;
    p->thr_idx_[j] = (uint32_t)++p->nthreads;
    p->last_thread_ = p->nthreads - 1;
    return t;
}

static ht_prof_heap *heap_slow(ht_prof *p, uint32_t pid, uint64_t heap)
{
    for (size_t i = 0; i < p->nheaps; i++)
        if (p->heaps[i].pid == pid && p->heaps[i].heap == heap) {
            p->last_heap_ = i;
            return &p->heaps[i];
        }
    if (p->nheaps >= 65535) return NULL; /* a hostile trace: per-heap figures stop, totals go on (and a
                                          * block's heap index fits 16 bits) */
    if (grow_arr((void **)&p->heaps, &p->capheaps_, p->nheaps, sizeof *p->heaps) < 0) return NULL;
    ht_prof_heap *h = &p->heaps[p->nheaps];
    h->pid = pid;
    h->heap = heap;
    p->last_heap_ = p->nheaps++;
    return h;
}

/* The fast paths: consecutive events mostly share process, thread, heap
 * and (without stacks) site. */
static inline ht_prof_proc *proc_of(ht_prof *p, uint32_t pid)
{
    if (__builtin_expect(p->last_proc_ < p->nprocs, 1) && p->procs[p->last_proc_].pid == pid)
        return &p->procs[p->last_proc_];
    return proc_slow(p, pid);
}

static inline ht_prof_thread *thread_of(ht_prof *p, uint32_t pid, uint32_t tid)
{
    if (__builtin_expect(p->last_thread_ < p->nthreads, 1)) {
        ht_prof_thread *t = &p->threads[p->last_thread_];
        if (t->pid == pid && t->tid == tid) return t;
    }
    return thread_slow(p, pid, tid);
}

static inline ht_prof_heap *heap_of(ht_prof *p, uint32_t pid, uint64_t heap)
{
    if (__builtin_expect(p->last_heap_ < p->nheaps, 1) && p->heaps[p->last_heap_].pid == pid &&
        p->heaps[p->last_heap_].heap == heap)
        return &p->heaps[p->last_heap_];
    return heap_slow(p, pid, heap);
}

/* ---- memory over time ---- */

/* The end of ts's bucket, saturating (a hostile trace's times reach 2^64). */
static inline uint64_t bucket_end(uint64_t ts, uint64_t step)
{
    uint64_t q = ts / step + 1;
    return q > UINT64_MAX / step ? UINT64_MAX : q * step;
}

/* Merges the points into buckets of the (doubled) step: per bucket its
 * highest point and its last one, in time order. */
static void series_rebucket(ht_prof_proc *r)
{
    uint32_t w = 0;
    uint64_t end = 0;
    uint32_t bmax = 0, blast = 0;
    for (uint32_t i = 0; i < r->nseries; i++) {
        ht_prof_point pt = r->series[i];
        if (w == 0 || pt.ts >= end) {
            end = bucket_end(pt.ts, r->series_step_);
            r->series[w] = pt;
            bmax = blast = w++;
        } else if (pt.live > r->series[bmax].live) {
            r->series[bmax] = pt; /* the new point is the bucket's max and last */
            w = bmax + 1;
            blast = bmax;
        } else if (blast == bmax) {
            r->series[w] = pt;
            blast = w++;
        } else {
            r->series[blast] = pt;
        }
    }
    r->nseries = w;
    r->bucket_end_ = end;
    r->bmax_ = bmax;
    r->blast_ = blast;
}

static void series_new_bucket(ht_prof *p, ht_prof_proc *r, uint64_t ts, uint64_t live);

/* ts never decreases (callers pass the process's latest time so far: a
 * damaged or hostile stream may go back in time, the series may not). */
static inline void series_add(ht_prof *p, ht_prof_proc *r, uint64_t ts, uint64_t live)
{
    if (__builtin_expect(r->nseries && ts < r->bucket_end_, 1)) {
        ht_prof_point *m = &r->series[r->bmax_];
        if (live > m->live) {
            m->ts = ts, m->live = live;
            r->nseries = r->bmax_ + 1;
            r->blast_ = r->bmax_;
        } else if (r->blast_ == r->bmax_) {
            /* a bucket starts with room for its second point */
            r->series[r->nseries] = (ht_prof_point){ts, live};
            r->blast_ = r->nseries++;
        } else {
            r->series[r->blast_] = (ht_prof_point){ts, live};
        }
        return;
    }
    series_new_bucket(p, r, ts, live);
}

static void series_new_bucket(ht_prof *p, ht_prof_proc *r, uint64_t ts, uint64_t live)
{
    while (r->nseries + 2 > p->opt.series_max) {
        if (r->series_step_ >= (1ull << 62)) { /* one bucket spans all times: keep the max and the last */
            r->series[0] = r->series[r->bmax_].live >= live ? r->series[r->bmax_] : (ht_prof_point){ts, live};
            r->nseries = 1;
            break;
        }
        r->series_step_ *= 2;
        series_rebucket(r);
    }
    if (r->nseries + 2 > r->cap_series_) {
        uint32_t c = r->cap_series_ ? r->cap_series_ * 2 : 64;
        if (c > p->opt.series_max) c = p->opt.series_max;
        ht_prof_point *n = realloc(r->series, c * sizeof *n);
        if (!n) {
            p->oom = 1;
            return;
        }
        r->series = n;
        r->cap_series_ = c;
    }
    r->bucket_end_ = bucket_end(ts, r->series_step_);
    r->series[r->nseries] = (ht_prof_point){ts, live};
    r->bmax_ = r->blast_ = r->nseries++;
}

/* ---- events ---- */

int ht_prof_family(unsigned api)
{
    /* a table, not a switch: it is asked on every free */
    static const uint8_t fam[32] = {
        [HT_API_NONE] = HT_FAM_HEAP,        [HT_API_MALLOC] = HT_FAM_MALLOC,   [HT_API_CALLOC] = HT_FAM_MALLOC,
        [HT_API_REALLOC] = HT_FAM_MALLOC,   [HT_API_REALLOCARRAY] = HT_FAM_MALLOC,
        [HT_API_MEMALIGN] = HT_FAM_MALLOC,  [HT_API_POSIX_MEMALIGN] = HT_FAM_MALLOC,
        [HT_API_ALIGNED_ALLOC] = HT_FAM_MALLOC, [HT_API_VALLOC] = HT_FAM_MALLOC, [HT_API_PVALLOC] = HT_FAM_MALLOC,
        [HT_API_FREE] = HT_FAM_MALLOC,      [HT_API_NEW] = HT_FAM_NEW,         [HT_API_DELETE] = HT_FAM_NEW,
        [HT_API_NEW_ARRAY] = HT_FAM_NEW_ARRAY, [HT_API_DELETE_ARRAY] = HT_FAM_NEW_ARRAY,
        [HT_API_HEAP] = HT_FAM_HEAP,
    };
    return fam[api & 31]; /* apis the format may add later: malloc's family */
}

const char *ht_prof_family_name(int fam)
{
    static const char *const n[] = {"malloc/calloc/realloc", "new", "new[]", "custom heap"};
    return fam >= 0 && fam < HT_FAM_COUNT ? n[fam] : "?";
}

const char *ht_prof_range_name(int cls)
{
    static const char *const n[] = {"AIFI", "AIFO", "AOFI", "AOFO"};
    return cls >= 0 && cls < HT_RANGE_CLASSES ? n[cls] : "?";
}

const char *ht_prof_life_label(int k)
{
    static const char *const n[] = {"< 1 ns",  "< 10 ns", "< 100 ns", "< 1 us", "< 10 us", "< 100 us",
                                    "< 1 ms",  "< 10 ms", "< 100 ms", "< 1 s",  "< 10 s",  ">= 10 s"};
    return k >= 0 && k < HT_PROF_LIFE_BUCKETS ? n[k] : "?";
}

static inline int size_bucket(uint64_t size) { return size ? 64 - __builtin_clzll(size) : 0; }

/* The number of decimal digits of ns (0 for 0), at most the last bucket. */
static inline int life_bucket(uint64_t ns)
{
    static const uint64_t p10[] = {1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
                                   100000000ull, 1000000000ull, 10000000000ull, 100000000000ull,
                                   1000000000000ull, 10000000000000ull, 100000000000000ull,
                                   1000000000000000ull, 10000000000000000ull, 100000000000000000ull,
                                   1000000000000000000ull, 10000000000000000000ull};
    if (!ns) return 0;
    int t = ((64 - __builtin_clzll(ns)) * 1233) >> 12;
    int k = t + (ns >= p10[t]);
    return k < HT_PROF_LIFE_BUCKETS - 1 ? k : HT_PROF_LIFE_BUCKETS - 1;
}

static inline void set_peak(ht_prof *p, uint64_t ts)
{
    if (p->live_bytes > p->peak_bytes) {
        p->peak_bytes = p->live_bytes;
        p->peak_blocks = p->live_blocks;
        p->peak_ts = ts;
        p->epoch_++; /* every site's value at this peak is its current one */
    }
}

static void range_add(ht_prof *p, ht_prof_site *s, int cls, uint64_t size)
{
    p->range_count[cls]++;
    p->range_bytes[cls] += size;
    if (s) s->range_count[cls]++, s->range_bytes[cls] += size;
}

/* A live block ends at ts (freed, moved by realloc, destroyed with its heap). */
static void block_end(ht_prof *p, ht_prof_proc *r, ht_pblk *b, uint64_t ts)
{
    ht_prof_site *s = b->site < p->nsites ? &p->sites[b->site] : NULL;
    if (s) {
        site_touch(p, s);
        s->live_blocks--;
        s->live_bytes -= b->size;
    }
    p->live_bytes -= b->size;
    p->live_blocks--;
    p->bytes_freed += b->size;
    if (r) {
        r->live_bytes -= b->size;
        r->live_blocks--;
    }
    if (b->hidx) { /* a custom heap's block */
        ht_prof_heap *h = &p->heaps[b->hidx - 1];
        h->live_blocks--;
        h->live_bytes -= b->size;
        if (r) r->c_live_bytes_ -= b->size, r->c_live_blocks_--;
    }
    uint64_t life = ts > b->ts ? ts - b->ts : 0;
    int k = life_bucket(life);
    p->life_count[k]++;
    p->life_bytes[k] += b->size;
    if (p->opt.have_range) {
        uint64_t t0 = p->opt.t0, t1 = p->opt.t1;
        if (b->ts >= t0 && b->ts < t1) range_add(p, s, ts < t1 ? HT_RANGE_AIFI : HT_RANGE_AIFO, b->size);
        else if (b->ts < t0 && ts >= t0) range_add(p, s, ts < t1 ? HT_RANGE_AOFI : HT_RANGE_AOFO, b->size);
    }
}

/* Releases the block at addr (a free, or the old block of a realloc).
 * Returns the block's size, or -1 if it was not live. */
static int64_t release(ht_prof *p, ht_prof_proc *r, const ht_event *ev, uint64_t addr, int fam, int is_realloc)
{
    uint64_t h = bhash(ev->pid, (uint32_t)ev->heap, addr);
    ht_pblk *b = blk_find(p, h, ev->pid, (uint32_t)ev->heap, addr);
    int temporary = r && r->last_alloc_ == addr && r->last_alloc_heap_ == (uint32_t)ev->heap && addr;
    if (r) r->last_alloc_ = 0;
    if (!b) {
        ht_pfreed *f = p->freed_ ? freed_slot(p, h) : NULL;
        if (f && f->addr == addr && f->key == ((uint64_t)ev->pid << 32 | (uint32_t)ev->heap)) p->double_frees++;
        else if (is_realloc) p->unknown_reallocs++;
        else p->unknown_frees++;
        return -1;
    }
    int afam = ht_prof_family(b->api);
    if (afam != fam && afam != HT_FAM_HEAP && fam != HT_FAM_HEAP) {
        p->mismatch[afam][fam]++;
        p->mismatches++;
        if (p->nmismatch_ex < sizeof p->mismatch_ex / sizeof *p->mismatch_ex) {
            const ht_prof_site *s = b->site < p->nsites ? &p->sites[b->site] : NULL;
            p->mismatch_ex[p->nmismatch_ex++] = (ht_prof_mismatch_ex){
                .pid = ev->pid, .tid = ev->tid, .ts = ev->ts, .addr = addr, .size = b->size,
                .alloc_api = b->api, .free_api = ev->api, .alloc_stack = s ? s->stack : 0, .free_stack = ev->stack};
        }
    }
    if (temporary) {
        p->temporary++;
        if (b->site < p->nsites) p->sites[b->site].temporary++;
    }
    uint64_t size = b->size;
    block_end(p, r, b, ev->ts);
    *freed_slot(p, h) = (ht_pfreed){addr, (uint64_t)ev->pid << 32 | (uint32_t)ev->heap};
    blk_delete(p, b);
    return (int64_t)size;
}

static void allocate(ht_prof *p, ht_prof_proc *r, ht_prof_thread *t, ht_prof_heap *h, const ht_event *ev)
{
    /* the event's fields in locals: the counters below are uint64_t too, so
     * the compiler would reload ev->... after every store */
    const uint64_t size = ev->size, addr = ev->addr, ts = ev->ts;
    const uint32_t pid = ev->pid, heap = (uint32_t)ev->heap;
    if (size > HT_PROF_SIZE_MAX || p->live_bytes + size > HT_PROF_LIVE_MAX) {
        p->bad_sizes++; /* p->live_bytes bounds every other live figure */
        return;
    }
    ht_prof_site *s = site_of(p, pid, ev->stack);
    uint64_t hh = bhash(pid, heap, addr);
    ht_pblk *b = blk_slot(p, hh, pid, heap, addr);
    if (!s || !b) {
        p->oom = 1;
        return;
    }
    if (b->state == B_LIVE) /* allocated again without a free we saw: the old block is gone */
        block_end(p, r, b, ts);
    else
        p->nblk_live_++;
    ht_pfreed *f = freed_slot(p, hh); /* allocated again: no longer a released address */
    if (f->addr == addr) f->addr = 0, f->key = 0;
    b->addr = addr;
    b->pid = pid;
    b->heap = heap;
    b->size = size;
    b->ts = ts;
    b->api = ev->api;
    b->site = (uint32_t)(s - p->sites);
    b->hidx = h ? (uint16_t)(h - p->heaps + 1) : 0;
    b->state = B_LIVE;
    site_touch(p, s);
    s->allocs++;
    s->bytes += size;
    s->live_blocks++;
    s->live_bytes += size;
    p->blocks_allocated++;
    p->bytes_allocated += size;
    p->bytes_[ev->api & 31][ev->source & 7] += size;
    int k = size_bucket(size);
    p->size_count[k]++;
    p->size_bytes[k] += size;
    p->live_bytes += size;
    p->live_blocks++;
    set_peak(p, ts);
    if (r) {
        r->bytes += size;
        r->live_bytes += size;
        r->live_blocks++;
        if (r->live_bytes > r->peak_bytes) r->peak_bytes = r->live_bytes, r->peak_ts = ts;
        r->last_alloc_ = addr;
        r->last_alloc_heap_ = heap;
    }
    if (t) t->bytes += size, r->o_bytes_ += size;
    if (h) { /* a custom heap */
        h->bytes += size;
        h->live_blocks++;
        h->live_bytes += size;
        if (h->live_bytes > h->peak_bytes) h->peak_bytes = h->live_bytes;
        if (r) r->c_bytes_ += size, r->c_live_bytes_ += size, r->c_live_blocks_++;
    } else if (r && r->has_custom_ && r->live_bytes - r->c_live_bytes_ > r->libc_peak_) {
        r->libc_peak_ = r->live_bytes - r->c_live_bytes_;
    }
}

static void copy_text(char *dst, size_t len, const ht_event *ev)
{
    size_t n = ev->text_len < len - 1 ? ev->text_len : len - 1;
    memcpy(dst, ev->text, n);
    dst[n] = 0;
}

static void heap_destroy(ht_prof *p, ht_prof_proc *r, const ht_event *ev)
{
    ht_prof_heap *h = ev->heap == 1 ? NULL : heap_of(p, ev->pid, ev->heap);
    if (h) h->destroyed = 1;
    for (size_t i = 0; i < p->capblk_; i++) {
        ht_pblk *b = &p->blk_[i];
        /* a deletion may shift another block into slot i: look again */
        while (b->state == B_LIVE && b->pid == ev->pid && b->heap == (uint32_t)ev->heap) {
            block_end(p, r, b, ev->ts);
            uint64_t hf = bhash(b->pid, b->heap, b->addr);
            *freed_slot(p, hf) = (ht_pfreed){b->addr, (uint64_t)b->pid << 32 | b->heap};
            blk_delete(p, b);
            p->destroyed_blocks++;
            if (h) h->destroyed_blocks++;
        }
    }
}

void ht_prof_event(ht_prof *p, const ht_event *ev)
{
    if (p->opt.have_pid && ev->pid != p->opt.pid && ev->kind != HT_EV_SESSION_START && ev->kind != HT_EV_SESSION_END)
        return;
    int heap_ev = ev->kind >= HT_EV_ALLOC && ev->kind <= HT_EV_REALLOC;
    if (p->opt.have_heap && (heap_ev || ev->kind == HT_EV_HEAP_CREATE || ev->kind == HT_EV_HEAP_DESTROY) &&
        ev->heap != p->opt.heap)
        return;
    p->records++;
    if (ev->ts < p->first_ts) p->first_ts = ev->ts;
    if (ev->ts > p->last_ts) p->last_ts = ev->ts;
    if (ev->kind == HT_EV_SESSION_START || ev->kind == HT_EV_SESSION_END) return;
    ht_prof_proc *r = proc_of(p, ev->pid);
    if (!r) {
        p->oom = 1;
        return;
    }
    if (ev->ts < r->first_ts) r->first_ts = ev->ts;
    if (ev->ts > r->last_ts) r->last_ts = ev->ts;
    if (heap_ev) {
        /* one counter per (kind, api, source): the totals by kind, api and
         * Source are summed from it at the end */
        p->cnt_[ev->kind][ev->api & 31][ev->source & 7]++;
        p->have_stacks |= ev->stack != 0;
        if (!r->has_main_) r->has_main_ = 1, r->main_tid_ = ev->tid;
        ht_prof_thread *t = ev->tid == r->main_tid_ ? NULL : thread_of(p, ev->pid, ev->tid);
        /* the libc heap's figures come from the process's at the end */
        ht_prof_heap *h = ev->heap == 1 ? NULL : heap_of(p, ev->pid, ev->heap);
        if (h && !r->has_custom_) {
            r->has_custom_ = 1;
            r->libc_peak_ = r->peak_bytes; /* until now every live byte was libc's */
        }
        uint64_t before = r->live_bytes;
        switch (ev->kind) {
        case HT_EV_ALLOC:
            p->allocs++;
            r->allocs++;
            if (t) t->allocs++, r->o_allocs_++;
            if (h) h->allocs++, r->c_allocs_++;
            if (ev->addr == 0) {
                p->failed_allocs++;
                break;
            }
            allocate(p, r, t, h, ev);
            break;
        case HT_EV_FREE:
            p->frees++;
            r->frees++;
            if (t) t->frees++, r->o_frees_++;
            if (h) h->frees++, r->c_frees_++;
            release(p, r, ev, ev->addr, ht_prof_family(ev->api), 0);
            break;
        case HT_EV_REALLOC: {
            p->reallocs++;
            r->reallocs++;
            if (t) t->reallocs++, r->o_reallocs_++;
            if (h) h->reallocs++, r->c_reallocs_++;
            if (ev->addr == 0) { /* failed: the old block stays */
                p->failed_reallocs++;
                break;
            }
            int64_t old = ev->old_addr ? release(p, r, ev, ev->old_addr, HT_FAM_MALLOC, 1) : -1;
            uint64_t osz = old >= 0 ? (uint64_t)old : ev->old_size;
            if (old >= 0 || ev->old_size) {
                if (ev->size > osz) p->realloc_grow++, p->realloc_grow_bytes += ev->size - osz;
                else if (ev->size < osz) p->realloc_shrink++, p->realloc_shrink_bytes += osz - ev->size;
                else p->realloc_same++;
            }
            if (ev->old_addr) {
                if (ev->addr == ev->old_addr) p->realloc_inplace++;
                else p->realloc_moved++;
            }
            allocate(p, r, t, h, ev);
            ht_prof_site *s = site_of(p, ev->pid, ev->stack);
            if (s) s->reallocs++;
            break;
        }
        }
        if (r->live_bytes != before) series_add(p, r, r->last_ts, r->live_bytes);
        return;
    }
    switch (ev->kind) {
    case HT_EV_HEAP_CREATE: {
        ht_prof_heap *h = ev->heap == 1 ? NULL : heap_of(p, ev->pid, ev->heap);
        if (h && ev->text_len) copy_text(h->name, sizeof h->name, ev);
        break;
    }
    case HT_EV_HEAP_DESTROY: {
        uint64_t before = r->live_bytes;
        heap_destroy(p, r, ev);
        if (r->live_bytes != before) series_add(p, r, r->last_ts, r->live_bytes);
        break;
    }
    case HT_EV_MARKER:
        p->markers_total++;
        if (p->nmarkers < p->opt.markers_max &&
            grow_arr((void **)&p->markers, &p->capmarkers_, p->nmarkers, sizeof *p->markers) == 0) {
            char *txt = malloc(ev->text_len + 1);
            if (!txt) break;
            memcpy(txt, ev->text, ev->text_len);
            txt[ev->text_len] = 0;
            p->markers[p->nmarkers++] = (ht_prof_marker){ev->pid, ev->tid, ev->ts, txt};
        }
        break;
    case HT_EV_LOST: p->lost += ev->nargs ? ev->arg[0] : 0; break;
    case HT_EV_THREAD: {
        ht_prof_thread *t = thread_of(p, ev->pid, ev->tid);
        if (t && ev->text_len) copy_text(t->name, sizeof t->name, ev);
        break;
    }
    case HT_EV_PROCESS:
        r->ppid = ev->nargs ? (uint32_t)ev->arg[0] : 0;
        if (ev->text_len && !r->command) {
            r->command = malloc(ev->text_len + 1);
            if (r->command) copy_text(r->command, ev->text_len + 1, ev);
        }
        break;
    case HT_EV_PROCESS_END:
        r->ended = 1;
        r->exit_code = ev->nargs > 0 ? (int)ev->arg[0] : 0;
        r->exit_signal = ev->nargs > 1 ? (int)ev->arg[1] : 0;
        r->exit_unknown = ev->nargs > 2 && ev->arg[2] == 2;
        p->have_end = 1;
        p->end_code = r->exit_code, p->end_signal = r->exit_signal, p->end_unknown = r->exit_unknown;
        break;
    case HT_EV_STACK: p->have_stacks = 1; break;
    default: break;
    }
}

static int heap_order(const void *a, const void *b)
{
    const ht_prof_heap *x = a, *y = b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    return x->heap < y->heap ? -1 : x->heap > y->heap;
}

void ht_prof_finish(ht_prof *p)
{
    if (p->finished_) return;
    p->finished_ = 1;
    for (unsigned k = 1; k < 4; k++)
        for (unsigned a = 0; a < 32; a++)
            for (unsigned x = 0; x < 8; x++) {
                uint64_t c = p->cnt_[k][a][x];
                unsigned ai = a < HT_API_COUNT ? a : 0; /* apis this version does not know: "" */
                p->heap_events += c;
                p->kind_count[k] += c;
                p->api_count[ai] += c;
                p->source_count[x] += c;
                if (k == 1) {
                    p->api_bytes[ai] += p->bytes_[a][x];
                    p->source_bytes[x] += p->bytes_[a][x];
                }
            }
    if (p->first_ts == UINT64_MAX) p->first_ts = 0;
    for (size_t i = 0; i < p->nsites; i++) site_touch(p, &p->sites[i]);
    if (p->opt.have_range) /* blocks live at the end: live at t1 if allocated before it */
        for (size_t i = 0; i < p->capblk_; i++) {
            const ht_pblk *b = &p->blk_[i];
            if (b->state != B_LIVE || b->ts >= p->opt.t1) continue;
            ht_prof_site *s = b->site < p->nsites ? &p->sites[b->site] : NULL;
            range_add(p, s, b->ts >= p->opt.t0 ? HT_RANGE_AIFO : HT_RANGE_AOFO, b->size);
        }
    /* the main thread of each process: what its other threads did not do */
    for (size_t i = 0; i < p->nprocs; i++) {
        ht_prof_proc *r = &p->procs[i];
        if (!r->has_main_) continue;
        ht_prof_thread *t = thread_of(p, r->pid, r->main_tid_);
        if (!t) {
            p->oom = 1;
            break;
        }
        t->allocs = r->allocs - r->o_allocs_;
        t->frees = r->frees - r->o_frees_;
        t->reallocs = r->reallocs - r->o_reallocs_;
        t->bytes = r->bytes - r->o_bytes_;
    }
    /* the libc heap of each process: what its custom heaps did not do */
    for (size_t i = 0; i < p->nprocs; i++) {
        const ht_prof_proc *r = &p->procs[i];
        if (p->opt.have_heap && p->opt.heap != 1) break;
        if (r->allocs == r->c_allocs_ && r->frees == r->c_frees_ && r->reallocs == r->c_reallocs_) continue;
        if (p->nheaps >= 65535 || grow_arr((void **)&p->heaps, &p->capheaps_, p->nheaps, sizeof *p->heaps) < 0) {
            p->oom = 1;
            break;
        }
        ht_prof_heap *h = &p->heaps[p->nheaps++];
        h->pid = r->pid;
        h->heap = 1;
        strcpy(h->name, "libc");
        h->allocs = r->allocs - r->c_allocs_;
        h->frees = r->frees - r->c_frees_;
        h->reallocs = r->reallocs - r->c_reallocs_;
        h->bytes = r->bytes - r->c_bytes_;
        h->live_bytes = r->live_bytes - r->c_live_bytes_;
        h->live_blocks = r->live_blocks - r->c_live_blocks_;
        h->peak_bytes = r->has_custom_ ? r->libc_peak_ : r->peak_bytes;
    }
    if (p->nheaps > 1) qsort(p->heaps, p->nheaps, sizeof *p->heaps, heap_order);
    p->last_heap_ = SIZE_MAX;
    /* a process's last value closes its series */
    for (size_t i = 0; i < p->nprocs; i++) {
        ht_prof_proc *r = &p->procs[i];
        if (r->first_ts == UINT64_MAX) r->first_ts = 0;
        if (r->nseries && r->series[r->nseries - 1].live != r->live_bytes) series_add(p, r, r->last_ts, r->live_bytes);
    }
}

/* ---- sites by name ---- */

static int named_cmp(const void *x, const void *y)
{
    return strcmp(((const ht_prof_named *)x)->name, ((const ht_prof_named *)y)->name);
}

void ht_prof_named_free(ht_prof_named *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) free(v[i].name);
    free(v);
}

ht_prof_named *ht_prof_named_sites(const ht_prof *p, struct ht_stacktab *stk, size_t *n_out)
{
    ht_prof_named *v = calloc(p->nsites ? p->nsites : 1, sizeof *v);
    if (!v) return NULL;
    char buf[1024];
    size_t n = 0;
    for (size_t i = 0; i < p->nsites; i++) {
        const ht_prof_site *x = &p->sites[i];
        const char *nm = HT_PROF_NO_STACK;
        if (x->stack) {
            if (stk && ht_stk_site(stk, x->pid, x->stack, buf, sizeof buf)) nm = buf;
            else snprintf(buf, sizeof buf, "(stack %u of process %u: not in the trace)", x->stack, x->pid), nm = buf;
        }
        ht_prof_named *d = &v[n];
        if (!(d->name = strdup(nm))) {
            ht_prof_named_free(v, n);
            return NULL;
        }
        n++;
        d->pid = x->pid, d->stack = x->stack;
        d->allocs = x->allocs, d->bytes = x->bytes, d->reallocs = x->reallocs, d->temporary = x->temporary;
        d->live_blocks = x->live_blocks, d->live_bytes = x->live_bytes;
        d->peak_blocks = x->peak_blocks, d->peak_bytes = x->peak_bytes;
        memcpy(d->range_count, x->range_count, sizeof d->range_count);
        memcpy(d->range_bytes, x->range_bytes, sizeof d->range_bytes);
    }
    if (n > 1) qsort(v, n, sizeof *v, named_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (m && !strcmp(v[m - 1].name, v[i].name)) {
            ht_prof_named *d = &v[m - 1], *x = &v[i];
            d->allocs += x->allocs, d->bytes += x->bytes, d->reallocs += x->reallocs, d->temporary += x->temporary;
            d->live_blocks += x->live_blocks, d->live_bytes += x->live_bytes;
            d->peak_blocks += x->peak_blocks, d->peak_bytes += x->peak_bytes;
            for (int k = 0; k < HT_RANGE_CLASSES; k++)
                d->range_count[k] += x->range_count[k], d->range_bytes[k] += x->range_bytes[k];
            free(x->name);
        } else {
            v[m++] = v[i];
        }
    }
    *n_out = m;
    return v;
}
