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
#include <stdint.h>
#include <stdlib.h>
#include <malloc.h>

#include "rt.h"

#define EXPORT HT_EXPORT

static inline uint32_t session_gen(void)
{
    return ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on);
}

/* errno: nothing on the recording path touches it but its slow paths,
 * which keep it themselves (ht__reserve_slow, the stack walk), so every wrapper
 * leaves errno as the real call left it without saving it per event. */

/* Records the outcome of an allocating call; returns p, so that the
 * interposer can end with `return record_alloc(...)`: a jump into the
 * general path when it is taken (rt.h, ht__emit_libc_alloc). */
static HT_ALWAYS_INLINE void *record_alloc(ht_tls *t, uint32_t g, unsigned api, void *p, uint64_t n)
{
    if (HT_UNLIKELY(t->pending_api)) { /* the block of a C++ operator new */
        api = t->pending_api;
        n = t->pending_size;
        t->pending_api = 0;
    }
    return ht__emit_libc_alloc(t, g, api, ht__libc_source(p), p, n);
}

/* The simple allocating calls: the exported function is only the idle test
 * and a tail call; the traced path is out of line, in one function. */
#define SIMPLE_ALLOC(name, api, PARAMS, ARGS, SIZE)                        \
    static HT_NOINLINE void *name##_traced(uint32_t g, PARAMS)             \
    {                                                                      \
        ht_tls *t = &ht__tls;                                              \
        if (t->nest) return ht__real.name ARGS;                            \
        void *p = ht__real.name ARGS;                                      \
        return record_alloc(t, g, api, p, SIZE);                           \
    }                                                                      \
    EXPORT void *name(PARAMS)                                              \
    {                                                                      \
        uint32_t g = session_gen();                                        \
        if (HT_LIKELY(g == 0)) return ht__real.name ARGS;                  \
        return name##_traced(g, ARGS_UNPAREN_##name);                      \
    }

#define ARGS_UNPAREN_malloc n
#define ARGS_UNPAREN_memalign align, n
#define ARGS_UNPAREN_aligned_alloc align, n
#define ARGS_UNPAREN_valloc n
#define ARGS_UNPAREN_pvalloc n
#define COMMA ,

SIMPLE_ALLOC(malloc, HT_API_MALLOC, size_t n, (n), n)
SIMPLE_ALLOC(memalign, HT_API_MEMALIGN, size_t align COMMA size_t n, (align, n), n)
SIMPLE_ALLOC(aligned_alloc, HT_API_ALIGNED_ALLOC, size_t align COMMA size_t n, (align, n), n)
SIMPLE_ALLOC(valloc, HT_API_VALLOC, size_t n, (n), n)
SIMPLE_ALLOC(pvalloc, HT_API_PVALLOC, size_t n, (n), n)

static HT_NOINLINE void *calloc_traced(uint32_t g, size_t n, size_t sz)
{
    ht_tls *t = &ht__tls;
    if (t->nest) return ht__real.calloc(n, sz);
    void *p = ht__real.calloc(n, sz);
    size_t total;
    if (__builtin_mul_overflow(n, sz, &total)) total = SIZE_MAX; /* overflowed request */
    return record_alloc(t, g, HT_API_CALLOC, p, total);
}

EXPORT void *calloc(size_t n, size_t sz)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0)) return ht__real.calloc(n, sz);
    return calloc_traced(g, n, sz);
}

static HT_NOINLINE int posix_memalign_traced(uint32_t g, void **out, size_t align, size_t n)
{
    ht_tls *t = &ht__tls;
    if (t->nest) return ht__real.posix_memalign(out, align, n);
    int rc = ht__real.posix_memalign(out, align, n);
    record_alloc(t, g, HT_API_POSIX_MEMALIGN, rc == 0 ? *out : NULL, n);
    return rc;
}

EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
    uint32_t g = session_gen();
    if (HT_LIKELY(g == 0)) return ht__real.posix_memalign(out, align, n);
    return posix_memalign_traced(g, out, align, n);
}

static HT_NOINLINE void free_slow(uint32_t g, void *p)
{
    if (ht__boot_owns(p)) return; /* bootstrap blocks are never freed */
    ht_tls *t = &ht__tls;
    if (g == 0 || t->nest || p == NULL) {
        ht__real.free(p);
        return;
    }
    unsigned api = HT_API_FREE;
    if (HT_UNLIKELY(t->pending_api)) { /* the release of a C++ operator delete */
        api = t->pending_api;
        t->pending_api = 0;
    }
    ht__emit_free(t, g, api, ht__libc_source(p), 1, p);
    ht__real.free(p);
}

EXPORT void free(void *p)
{
    uint32_t g = session_gen();
    /* idle and not a bootstrap block: one test, one branch */
    if (HT_LIKELY((g | (uint32_t)ht__boot_owns(p)) == 0)) {
        ht__real.free(p);
        return;
    }
    free_slow(g, p);
}

/* realloc and reallocarray share this: NULL old -> ALLOC, a size-0 realloc
 * (glibc frees the block and returns NULL) -> FREE, recorded before the call
 * like every free; anything else -> REALLOC (OldSize unknown here: 0). */
static HT_NOINLINE void *realloc_traced(uint32_t g, unsigned api, void *old, size_t n,
                                        size_t m, int is_array)
{
    if (ht__tls.nest) return is_array ? ht__real.reallocarray(old, n, m) : ht__real.realloc(old, n);
    ht_tls *t = &ht__tls;
    uint64_t size = n;
    size_t total;
    if (is_array) size = __builtin_mul_overflow(n, m, &total) ? SIZE_MAX : total;
    int frees = old != NULL && size == 0;
    if (frees) ht__emit_free(t, g, api, ht__libc_source(old), 1, old);
    void *p;
    if (is_array) {
        /* glibc's reallocarray calls realloc: that inner call is not an event */
        t->nest++;
        p = ht__real.reallocarray(old, n, m);
        t->nest--;
    } else {
        p = ht__real.realloc(old, n);
    }
    if (frees) return p;
    if (old == NULL) return ht__emit_libc_alloc(t, g, api, ht__libc_source(p), p, size);
    if (p == NULL) /* failed: the old block is untouched; show the failed request */
        return ht__emit_libc_realloc(t, g, api, 3, NULL, size, old);
    return ht__emit_libc_realloc(t, g, api, ht__libc_source(p), p, size, old);
}

static HT_NOINLINE void *realloc_slow(uint32_t g, void *old, size_t n)
{
    if (ht__boot_owns(old)) {
        /* a block from the bootstrap buffer: move it to the real heap */
        void *p = malloc(n);
        if (p) {
            size_t o = ht__boot_size(old);
            __builtin_memcpy(p, old, o < n ? o : n);
        }
        return p;
    }
    if (g == 0) return ht__real.realloc(old, n);
    return realloc_traced(g, HT_API_REALLOC, old, n, 1, 0);
}

EXPORT void *realloc(void *old, size_t n)
{
    uint32_t g = session_gen();
    if (HT_LIKELY((g | (uint32_t)ht__boot_owns(old)) == 0)) return ht__real.realloc(old, n);
    return realloc_slow(g, old, n);
}

EXPORT void *reallocarray(void *old, size_t n, size_t m)
{
    uint32_t g = session_gen();
    if (HT_LIKELY((g | (uint32_t)ht__boot_owns(old)) == 0)) return ht__real.reallocarray(old, n, m);
    size_t total;
    if (ht__boot_owns(old))
        return __builtin_mul_overflow(n, m, &total) ? NULL : realloc_slow(g, old, total);
    return realloc_traced(g, HT_API_REALLOCARRAY, old, n, m, 1);
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (HT_UNLIKELY(ht__boot_owns(p))) return ht__boot_size(p);
    return ht__real.malloc_usable_size(p);
}
