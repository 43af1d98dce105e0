/*
 * interpose.c - the C allocation API, interposed.
 *
 * Each wrapper: one relaxed load and one predictable branch while idle, then
 * a tail call to the real function.  While a session records, the real call
 * is timed and one fixed record is written (rt.h).  Frees and reallocs take
 * their timestamp around the real call so that, across threads, the free
 * of an address is always timestamped before its reuse by another thread.
 *
 * Before the real functions are resolved the pointers in ht__real point at
 * boot_* functions that initialise the runtime first (bootstrap.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <malloc.h>

#include "rt.h"

#define EXPORT HT_EXPORT

static inline uint32_t session_gen(void)
{
    return ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on);
}

/* Records the outcome of an allocating call; keeps errno as the real call
 * left it. */
static HT_NOINLINE void record_alloc(uint32_t g, unsigned api, uint64_t ts, void *p, uint64_t n)
{
    int e = errno;
    ht__emit_alloc(&ht__tls, g, api, ht__libc_source(p), 1, ts, p, n);
    errno = e;
}

EXPORT void *malloc(size_t n)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0) || ht__tls.nest) return ht__real.malloc(n);
    void *p = ht__real.malloc(n);
    record_alloc(g, HT_API_MALLOC, ht__now(), p, n);
    return p;
}

EXPORT void free(void *p)
{
    uint32_t g = session_gen();
    if (HT_UNLIKELY(ht__boot_owns(p))) return; /* bootstrap blocks are never freed */
    if (HT_LIKELY(g == 0) || ht__tls.nest || p == NULL) {
        ht__real.free(p);
        return;
    }
    int e = errno;
    ht__emit_free(&ht__tls, g, HT_API_FREE, ht__libc_source(p), 1, ht__now(), p);
    errno = e;
    ht__real.free(p);
}

EXPORT void *calloc(size_t n, size_t sz)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0) || ht__tls.nest) return ht__real.calloc(n, sz);
    void *p = ht__real.calloc(n, sz);
    size_t total;
    if (__builtin_mul_overflow(n, sz, &total)) total = SIZE_MAX; /* overflowed request */
    record_alloc(g, HT_API_CALLOC, ht__now(), p, total);
    return p;
}

/* realloc and reallocarray share this: NULL old -> ALLOC, a size-0 realloc
 * that freed -> FREE, anything else -> REALLOC (OldSize unknown here: 0). */
static HT_NOINLINE void *realloc_traced(uint32_t g, unsigned api, void *old, size_t n,
                                        size_t m, int is_array)
{
    uint64_t ts = ht__now();
    void *p;
    uint64_t size = n;
    if (is_array) {
        p = ht__real.reallocarray(old, n, m);
        size_t total;
        size = __builtin_mul_overflow(n, m, &total) ? SIZE_MAX : total;
    } else {
        p = ht__real.realloc(old, n);
    }
    int e = errno;
    ht_tls *t = &ht__tls;
    if (old == NULL) {
        ht__emit_alloc(t, g, api, ht__libc_source(p), 1, ht__now(), p, size);
    } else if (size == 0 && p == NULL) {
        /* glibc: realloc(p, 0) frees p and returns NULL */
        ht__emit_free(t, g, api, 3, 1, ts, old);
    } else if (p == NULL) {
        /* failed: the old block is untouched; show the failed request */
        ht__emit_realloc(t, g, api, 3, 1, ht__now(), NULL, size, old, 0);
    } else {
        ht__emit_realloc(t, g, api, ht__libc_source(p), 1, ht__now(), p, size, old, 0);
    }
    errno = e;
    return p;
}

EXPORT void *realloc(void *old, size_t n)
{
    uint32_t g = session_gen();
    if (HT_UNLIKELY(ht__boot_owns(old))) {
        /* a block from the bootstrap buffer: move it to the real heap */
        void *p = malloc(n);
        if (p) {
            size_t o = ht__boot_size(old);
            __builtin_memcpy(p, old, o < n ? o : n);
        }
        return p;
    }
    if (HT_LIKELY(g == 0) || ht__tls.nest) return ht__real.realloc(old, n);
    return realloc_traced(g, HT_API_REALLOC, old, n, 1, 0);
}

EXPORT void *reallocarray(void *old, size_t n, size_t m)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0) || ht__tls.nest) return ht__real.reallocarray(old, n, m);
    return realloc_traced(g, HT_API_REALLOCARRAY, old, n, m, 1);
}

EXPORT void *memalign(size_t align, size_t n)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0) || ht__tls.nest) return ht__real.memalign(align, n);
    void *p = ht__real.memalign(align, n);
    record_alloc(g, HT_API_MEMALIGN, ht__now(), p, n);
    return p;
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0) || ht__tls.nest) return ht__real.posix_memalign(out, align, n);
    int rc = ht__real.posix_memalign(out, align, n);
    record_alloc(g, HT_API_POSIX_MEMALIGN, ht__now(), rc == 0 ? *out : NULL, n);
    return rc;
}

EXPORT void *aligned_alloc(size_t align, size_t n)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0) || ht__tls.nest) return ht__real.aligned_alloc(align, n);
    void *p = ht__real.aligned_alloc(align, n);
    record_alloc(g, HT_API_ALIGNED_ALLOC, ht__now(), p, n);
    return p;
}

EXPORT void *valloc(size_t n)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0) || ht__tls.nest) return ht__real.valloc(n);
    void *p = ht__real.valloc(n);
    record_alloc(g, HT_API_VALLOC, ht__now(), p, n);
    return p;
}

EXPORT void *pvalloc(size_t n)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0) || ht__tls.nest) return ht__real.pvalloc(n);
    void *p = ht__real.pvalloc(n);
    record_alloc(g, HT_API_PVALLOC, ht__now(), p, n);
    return p;
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (HT_UNLIKELY(ht__boot_owns(p))) return ht__boot_size(p);
    return ht__real.malloc_usable_size(p);
}
