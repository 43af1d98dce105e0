/*
 * cxx.c - C++ operator new / new[] / delete / delete[], with their nothrow,
 * sized and aligned variants, interposed.
 *
 * Each wrapper calls the real operator (libstdc++'s, found with
 * dlsym(RTLD_NEXT) on first use, so a C++ library dlopen'ed late works too)
 * with tls.nest raised, so the malloc/free it makes inside is not recorded
 * again: one `new` is one event with api NEW.  This file is compiled with
 * -fexceptions: when a throwing operator new fails, the cleanup handler runs
 * during unwinding and records the failed allocation (address 0) before the
 * std::bad_alloc propagates to the caller, untouched.
 */
#include <dlfcn.h>
#include <stdlib.h>

#include "rt.h"

#define EXPORT HT_EXPORT

static void *resolve(const char *name)
{
    ht__tls.nest++; /* dlsym may allocate: not an event */
    void *p = dlsym(RTLD_NEXT, name);
    ht__tls.nest--;
    return p;
}

static inline uint32_t session_gen(void)
{
    return ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on);
}

typedef struct new_guard {
    uint32_t gen;
    unsigned api;
    size_t size;
    void *result;
    int done;
} new_guard;

/* Runs when the traced new returns, and during unwinding if it throws. */
static void new_guard_end(new_guard *g)
{
    ht_tls *t = &ht__tls;
    t->nest--;
    ht__emit_alloc(t, g->gen, g->api, ht__libc_source(g->done ? g->result : NULL), 1, ht__now(),
                   g->done ? g->result : NULL, g->size);
}

/* Fallbacks if no C++ runtime provides the operator (cannot throw from C). */
static void *fallback_new(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

#define NEW_WRAPPER(sym, api, PARAMS, ARGS, FALLBACK)                              \
    EXPORT void *sym PARAMS;                                                       \
    static void *(*real_##sym) PARAMS;                                             \
    EXPORT void *sym PARAMS                                                        \
    {                                                                              \
        if (HT_UNLIKELY(!real_##sym)) {                                            \
            real_##sym = (void *(*) PARAMS)resolve(#sym);                          \
            if (!real_##sym) return FALLBACK;                                      \
        }                                                                          \
        uint32_t gen = session_gen();                                              \
        if (HT_LIKELY(gen == 0) || ht__tls.nest) return real_##sym ARGS;           \
        new_guard g __attribute__((cleanup(new_guard_end))) = {gen, api, n, 0, 0}; \
        ht__tls.nest++;                                                            \
        g.result = real_##sym ARGS;                                                \
        g.done = 1;                                                                \
        return g.result;                                                           \
    }

#define DELETE_WRAPPER(sym, api, PARAMS, ARGS)                                     \
    EXPORT void sym PARAMS;                                                        \
    static void (*real_##sym) PARAMS;                                              \
    EXPORT void sym PARAMS                                                         \
    {                                                                              \
        if (HT_UNLIKELY(!real_##sym)) {                                            \
            real_##sym = (void (*) PARAMS)resolve(#sym);                           \
            if (!real_##sym) { free(p); return; }                                  \
        }                                                                          \
        uint32_t gen = session_gen();                                              \
        if (HT_LIKELY(gen == 0) || ht__tls.nest || p == NULL) {                    \
            real_##sym ARGS;                                                       \
            return;                                                                \
        }                                                                          \
        ht_tls *t = &ht__tls;                                                      \
        ht__emit_free(t, gen, api, ht__libc_source(p), 1, ht__now(), p);           \
        t->nest++;                                                                 \
        real_##sym ARGS;                                                           \
        t->nest--;                                                                 \
    }

typedef struct nothrow_t nothrow_t;
typedef size_t align_t; /* std::align_val_t is an enum class over size_t */

/* operator new(size_t), new[](size_t) */
NEW_WRAPPER(_Znwm, HT_API_NEW, (size_t n), (n), fallback_new(n))
NEW_WRAPPER(_Znam, HT_API_NEW_ARRAY, (size_t n), (n), fallback_new(n))
/* nothrow */
NEW_WRAPPER(_ZnwmRKSt9nothrow_t, HT_API_NEW, (size_t n, const nothrow_t *nt), (n, nt), malloc(n ? n : 1))
NEW_WRAPPER(_ZnamRKSt9nothrow_t, HT_API_NEW_ARRAY, (size_t n, const nothrow_t *nt), (n, nt), malloc(n ? n : 1))
/* aligned */
NEW_WRAPPER(_ZnwmSt11align_val_t, HT_API_NEW, (size_t n, align_t a), (n, a), aligned_alloc(a, n))
NEW_WRAPPER(_ZnamSt11align_val_t, HT_API_NEW_ARRAY, (size_t n, align_t a), (n, a), aligned_alloc(a, n))
NEW_WRAPPER(_ZnwmSt11align_val_tRKSt9nothrow_t, HT_API_NEW, (size_t n, align_t a, const nothrow_t *nt),
            (n, a, nt), aligned_alloc(a, n))
NEW_WRAPPER(_ZnamSt11align_val_tRKSt9nothrow_t, HT_API_NEW_ARRAY, (size_t n, align_t a, const nothrow_t *nt),
            (n, a, nt), aligned_alloc(a, n))

/* delete, delete[] */
DELETE_WRAPPER(_ZdlPv, HT_API_DELETE, (void *p), (p))
DELETE_WRAPPER(_ZdaPv, HT_API_DELETE_ARRAY, (void *p), (p))
/* sized */
DELETE_WRAPPER(_ZdlPvm, HT_API_DELETE, (void *p, size_t n), (p, n))
DELETE_WRAPPER(_ZdaPvm, HT_API_DELETE_ARRAY, (void *p, size_t n), (p, n))
/* aligned, sized aligned */
DELETE_WRAPPER(_ZdlPvSt11align_val_t, HT_API_DELETE, (void *p, align_t a), (p, a))
DELETE_WRAPPER(_ZdaPvSt11align_val_t, HT_API_DELETE_ARRAY, (void *p, align_t a), (p, a))
DELETE_WRAPPER(_ZdlPvmSt11align_val_t, HT_API_DELETE, (void *p, size_t n, align_t a), (p, n, a))
DELETE_WRAPPER(_ZdaPvmSt11align_val_t, HT_API_DELETE_ARRAY, (void *p, size_t n, align_t a), (p, n, a))
/* nothrow */
DELETE_WRAPPER(_ZdlPvRKSt9nothrow_t, HT_API_DELETE, (void *p, const nothrow_t *nt), (p, nt))
DELETE_WRAPPER(_ZdaPvRKSt9nothrow_t, HT_API_DELETE_ARRAY, (void *p, const nothrow_t *nt), (p, nt))
DELETE_WRAPPER(_ZdlPvSt11align_val_tRKSt9nothrow_t, HT_API_DELETE, (void *p, align_t a, const nothrow_t *nt),
               (p, a, nt))
DELETE_WRAPPER(_ZdaPvSt11align_val_tRKSt9nothrow_t, HT_API_DELETE_ARRAY,
               (void *p, align_t a, const nothrow_t *nt), (p, a, nt))
