/*
 * stacks.c - call stacks of heap events (session option --stacks).
 *
 *   fp     walks the frame-pointer chain: bounded by --depth, every frame
 *          checked to lie inside the thread's stack, 8-aligned and above
 *          the previous one, so a bad chain ends the walk, never faults.
 *          Code built without frame pointers cuts the chain short.
 *   dwarf  libunwind's unw_backtrace (libunwind.so.8, loaded with dlopen
 *          when the first such session starts: idle processes never load
 *          it), correct through code without frame pointers.
 *
 * The runtime's own frames are skipped, and a stack ends at the first
 * address that lies in no loaded object (checked once per distinct walk).  A stack is identified by
 * a 64-bit hash of its frames; a thread writes the frames (a STACK record)
 * the first time it uses a hash in this session (a per-thread direct-mapped
 * cache of 1024 hashes, so no lock and no sharing), then only the hash,
 * appended to the heap event's record.  The collector gives each distinct
 * stack of a process one id and writes its frames once.
 *
 * Modules: when a new stack holds an address outside every object described
 * so far in the session, the loaded objects are enumerated
 * (dl_iterate_phdr) and a MODULE record is written for each object not yet
 * described: the library is mapped at that moment, since its code is on the
 * stack, so it symbolizes later even after a dlclose.
 *
 * Everything here runs inside the record window (ht__enter), on the thread
 * of the heap event.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../common/log.h"
#include "rt.h"

#define CACHE_SLOTS 1024

static uintptr_t self_lo, self_hi; /* our own text */
static int (*unw_bt)(void **, int);

/* ---- set-up (session install, not on the fast path) ---- */

static int self_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (me >= lo && me < hi) {
            self_lo = lo;
            self_hi = hi;
            return 1;
        }
    }
    return 0;
}

void ht__stacks_setup(uint32_t mode)
{
    if (!self_hi) {
        ht__tls.nest++;
        dl_iterate_phdr(self_cb, (void *)(uintptr_t)&ht__stacks_setup);
        ht__tls.nest--;
    }
    if (mode == HT_STACKS_DWARF && !unw_bt) {
        ht__tls.nest++;
        void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
        if (h) {
            /* per-thread caches of unwind info, as heaptrack sets them: the
             * default global cache takes a lock on every step */
            void **as = (void **)dlsym(h, "_ULx86_64_local_addr_space");
            int (*policy)(void *, int) = (int (*)(void *, int))dlsym(h, "_ULx86_64_set_caching_policy");
            int (*csize)(void *, size_t, int) = (int (*)(void *, size_t, int))dlsym(h, "_ULx86_64_set_cache_size");
            if (as && policy) policy(*as, 2 /* UNW_CACHE_PER_THREAD */);
            if (as && csize) csize(*as, 1024, 0);
            unw_bt = (int (*)(void **, int))dlsym(h, "unw_backtrace");
        }
        ht__tls.nest--;
        if (!unw_bt) ht_log("cannot load libunwind.so.8: dwarf stacks fall back to frame pointers");
    }
}

/* ---- walking ---- */

static void stack_bounds(ht_tls *t)
{
    pthread_attr_t at;
    void *addr = NULL;
    size_t size = 0;
    t->nest++; /* glibc reads /proc/self/maps for the main thread: allocates */
    if (pthread_getattr_np(pthread_self(), &at) == 0) {
        pthread_attr_getstack(&at, &addr, &size);
        pthread_attr_destroy(&at);
    }
    t->nest--;
    t->stk_lo = (uintptr_t)addr;
    t->stk_hi = (uintptr_t)addr + size;
    if (!t->stk_hi) t->stk_hi = 1; /* unknown: fp walks stop at once */
}

static HT_NOINLINE int walk_fp(ht_tls *t, uint64_t *out, int max)
{
    if (!t->stk_hi) stack_bounds(t);
    uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
    /* callers' frames lie above our own: below it the stack may not even be
     * mapped (the main thread's grows on demand) */
    uintptr_t lo = fp > t->stk_lo ? fp : t->stk_lo;
    int n = 0;
    for (int guard = 0; n < max && guard < max + 64; guard++) {
        if (fp < lo || t->stk_hi < 16 || fp > t->stk_hi - 16 || (fp & 7)) break;
        uintptr_t next = ((const uintptr_t *)fp)[0], ret = ((const uintptr_t *)fp)[1];
        if (!ret) break;
        if (ret < self_lo || ret >= self_hi) out[n++] = ret; /* our own frames: not the program's */
        if (next <= fp) break;
        fp = next;
    }
    return n;
}

static HT_NOINLINE int walk_dwarf(ht_tls *t, uint64_t *out, int max)
{
    void *buf[HT_STACK_DEPTH_MAX + 16];
    int want = max + 16 > (int)(sizeof buf / sizeof *buf) ? (int)(sizeof buf / sizeof *buf) : max + 16;
    t->nest++; /* libunwind may allocate: not the program's event */
    int got = unw_bt(buf, want);
    t->nest--;
    int n = 0;
    for (int i = 0; i < got && n < max; i++)
        if ((uintptr_t)buf[i] < self_lo || (uintptr_t)buf[i] >= self_hi) out[n++] = (uint64_t)(uintptr_t)buf[i];
    return n;
}

static uint64_t hash_frames(const uint64_t *f, int n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    for (int i = 0; i < n; i++) {
        h ^= f[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return h ? h : 1;
}

/* ---- modules ---- */

#define MODS_MAX 1024
static struct { uintptr_t lo, hi; } mods[MODS_MAX];
static int nmods;
static uint32_t mods_gen; /* session the table describes */
static atomic_flag mods_lock = ATOMIC_FLAG_INIT;

static int covered(uintptr_t a)
{
    int n = __atomic_load_n(&nmods, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        if (a >= mods[i].lo && a < mods[i].hi) return 1;
    return 0;
}

typedef struct rundown {
    ht_tls *t;
    uint32_t gen;
    char exe[512];
} rundown;

static void put_module(ht_tls *t, uint32_t gen, uintptr_t lo, uintptr_t hi, uint64_t off, uint64_t bias,
                       const uint8_t *bid, uint32_t bid_len, const char *path)
{
    size_t plen = strlen(path);
    if (plen > 1500) plen = 1500;
    if (bid_len > 64) bid_len = 0;
    size_t bytes = (sizeof(ht_rec_module) + bid_len + plen + 1 + 7) & ~(size_t)7;
    char *r = ht__reserve(t, gen, bytes);
    if (!r) return;
    ht_rec_module *m = (ht_rec_module *)r;
    uint64_t ts = ht__begin(t, r);
    ht__hdr(&m->h, HT_EV_MODULE, 0, 0, bytes, 0, ts);
    m->start = lo;
    m->end = hi;
    m->offset = off;
    m->bias = bias;
    m->build_id_len = bid_len;
    m->path_len = (uint32_t)plen;
    memcpy(m->data, bid, bid_len);
    memcpy(m->data + bid_len, path, plen);
    memset(m->data + bid_len + plen, 0, bytes - sizeof *m - bid_len - plen);
    ht__commit(t, r + bytes);
}

static int rundown_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    rundown *rd = arg;
    const uint8_t *bid = NULL;
    uint32_t bid_len = 0;
    for (int i = 0; i < info->dlpi_phnum && !bid; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE) continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr), *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            size_t nsz = (nh->n_namesz + 3) & ~3u, dsz = (nh->n_descsz + 3) & ~3u;
            const uint8_t *name = p + sizeof *nh, *desc = name + nsz;
            if (desc + dsz > end) break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && !memcmp(name, "GNU", 4)) {
                bid = desc;
                bid_len = nh->n_descsz;
                break;
            }
            p = desc + dsz;
        }
    }
    const char *path = info->dlpi_name && *info->dlpi_name ? info->dlpi_name : rd->exe;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        int known = 0;
        for (int k = 0; k < nmods && !known; k++) known = mods[k].lo == lo && mods[k].hi == hi;
        if (known || nmods >= MODS_MAX) continue;
        put_module(rd->t, rd->gen, lo, hi, ph->p_offset, info->dlpi_addr, bid, bid_len, path);
        mods[nmods].lo = lo;
        mods[nmods].hi = hi;
        __atomic_store_n(&nmods, nmods + 1, __ATOMIC_RELEASE);
    }
    return 0;
}

static unsigned long long seen_adds, seen_subs; /* loader counters at the last rundown */

static int counters_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    unsigned long long *c = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        c[0] = info->dlpi_adds;
        c[1] = info->dlpi_subs;
    }
    return 1; /* the first object is enough */
}

/* Whether objects were loaded or unloaded since the last rundown. */
static int modules_changed(ht_tls *t)
{
    unsigned long long c[2] = {~0ull, ~0ull};
    t->nest++;
    dl_iterate_phdr(counters_cb, c);
    t->nest--;
    return c[0] != seen_adds || c[1] != seen_subs;
}

/* Rundown of the objects not yet described in this session (lock held). */
static void describe_modules_locked(ht_tls *t, uint32_t gen)
{
    if (mods_gen != gen) { /* a new session: its trace needs them all again */
        __atomic_store_n(&nmods, 0, __ATOMIC_RELEASE);
        mods_gen = gen;
    }
    rundown rd = {t, gen, {0}};
    ssize_t k = readlink("/proc/self/exe", rd.exe, sizeof rd.exe - 1);
    rd.exe[k > 0 ? k : 0] = 0;
    unsigned long long c[2] = {~0ull, ~0ull};
    t->nest++;
    dl_iterate_phdr(counters_cb, c);
    dl_iterate_phdr(rundown_cb, &rd);
    t->nest--;
    seen_adds = c[0];
    seen_subs = c[1];
}

/* Whether `a` lies in a loaded object, describing objects as needed. */
static int check_covered(ht_tls *t, uint32_t gen, uintptr_t a)
{
    if (mods_gen == gen && covered(a)) return 1;
    while (atomic_flag_test_and_set_explicit(&mods_lock, memory_order_acquire)) sched_yield();
    if (mods_gen != gen || modules_changed(t)) describe_modules_locked(t, gen);
    int ok = covered(a);
    atomic_flag_clear_explicit(&mods_lock, memory_order_release);
    return ok;
}

/* ---- the stack of the current heap event ---- */

static uint64_t stack_of(ht_tls *t, uint32_t gen);

/* errno is the program's: the walk, mmap and dl_iterate_phdr may change it */
uint64_t ht__stack(ht_tls *t, uint32_t gen)
{
    int e = errno;
    uint64_t h = stack_of(t, gen);
    errno = e;
    return h;
}

static uint64_t stack_of(ht_tls *t, uint32_t gen)
{
    uint64_t frames[HT_STACK_DEPTH_MAX];
    int max = (int)ht__sess.stack_depth;
    if (max < 1 || max > HT_STACK_DEPTH_MAX) max = HT_STACK_DEPTH_MAX;
    int n = ht__sess.stack_mode == HT_STACKS_DWARF && unw_bt ? walk_dwarf(t, frames, max) : walk_fp(t, frames, max);
    if (n <= 0) return 0;
    uint64_t h = hash_frames(frames, n);
    if (!t->stk_cache) {
        void *m = mmap(NULL, CACHE_SLOTS * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return 0;
        t->stk_cache = m;
        t->stk_gen = gen;
    }
    if (t->stk_gen != gen) { /* a new session: its trace needs the frames again */
        memset(t->stk_cache, 0, CACHE_SLOTS * sizeof(uint64_t));
        t->stk_gen = gen;
    }
    uint64_t *slot = &t->stk_cache[h % CACHE_SLOTS];
    if (*slot == h) return h;
    /* First use by this thread: describe the objects new to the session,
     * and end the stack at the first return address that is in no loaded
     * object: a walk through code that uses rbp as a plain register (no
     * frame pointers) can read a stack word that is not a return address.
     * The record keeps the walk's hash `h`, so later events with the same
     * walk refer to this checked stack. */
    for (int i = 0; i < n; i++)
        if (!check_covered(t, gen, (uintptr_t)frames[i])) {
            n = i;
            break;
        }
    if (n == 0) {
        *slot = h; /* nothing usable: no stack, and no retry for this walk */
        return 0;
    }
    size_t bytes = sizeof(ht_rec_stack) + (size_t)n * 8;
    char *r = ht__reserve(t, gen, bytes);
    if (!r) return 0;
    ht_rec_stack *s = (ht_rec_stack *)r;
    uint64_t ts = ht__begin(t, r);
    ht__hdr(&s->h, HT_EV_STACK, 0, 0, bytes, 0, ts);
    s->hash = h;
    s->n = (uint32_t)n;
    s->_pad = 0;
    memcpy(s->frames, frames, (size_t)n * 8);
    ht__commit(t, r + bytes);
    *slot = h;
    return h;
}

void ht__stacks_thread_exit(ht_tls *t)
{
    if (t->stk_cache) munmap(t->stk_cache, CACHE_SLOTS * sizeof(uint64_t));
    t->stk_cache = NULL;
}
