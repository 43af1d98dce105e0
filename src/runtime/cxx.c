/*
 * cxx.c - C++ operator new / new[] / delete / delete[], with their nothrow,
 * sized and aligned variants, interposed.
 *
 * Each wrapper calls the real operator (libstdc++'s, found with
 * dlsym(RTLD_NEXT) on first use, so a C++ library dlopen'ed late works too)
 * with tls.pending_api set: the malloc (or free) that the operator makes
 * inside records the one event, with api NEW (DELETE...) and the operator's
 * size.  If the operator returns without such a call (another C++ runtime,
 * or it threw before allocating), the wrapper records the event itself.
 * This file is compiled with -fexceptions: when a throwing operator new
 * fails, the cleanup handler runs during unwinding, before std::bad_alloc
 * reaches the caller untouched.
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
    if (t->pending_api == 0) return; /* the inner malloc recorded it */
    t->pending_api = 0;
    void *p = g->done ? g->result : NULL;
    ht__emit_alloc(t, g->gen, g->api, ht__libc_source(p), 1, p, g->size);
}

/* Fallbacks if no C++ runtime provides the operator (cannot throw from C). */
static void *fallback_new(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    return p;
}

/* real_<sym> starts at <sym>_resolve, which finds the real operator on first
 * use, so the idle wrapper is one test and a tail call. */
#define NEW_WRAPPER(sym, api, PARAMS, ARGS, FALLBACK)                              \
    EXPORT void *sym PARAMS;                                                       \
    static void *sym##_resolve PARAMS;                                             \
    static void *(*real_##sym) PARAMS = sym##_resolve;                             \
    static HT_NOINLINE void *sym##_resolve PARAMS                                  \
    {                                                                              \
        void *(*f) PARAMS = (void *(*) PARAMS)resolve(#sym);                       \
        if (!f) return FALLBACK;                                                   \
        real_##sym = f;                                                            \
        return f ARGS;                                                             \
    }                                                                              \
    static HT_NOINLINE void *sym##_traced PARAMS                                   \
    {                                                                              \
        uint32_t gen = session_gen();                                              \
        /* new[] calls new inside: the outer operator is the event */           \
        if (gen == 0 || ht__tls.nest || ht__tls.pending_api) return real_##sym ARGS; \
        new_guard g __attribute__((cleanup(new_guard_end))) = {gen, api, n, 0, 0}; \
        ht__tls.pending_api = api;                                                 \
        ht__tls.pending_size = n;                                                  \
        g.result = real_##sym ARGS;                                                \
        g.done = 1;                                                                \
        return g.result;                                                           \
    }                                                                              \
    EXPORT void *sym PARAMS                                                        \
    {                                                                              \
        if (HT_LIKELY(session_gen() == 0)) return real_##sym ARGS;                 \
        return sym##_traced ARGS;                                                  \
    }

#define DELETE_WRAPPER(sym, api, PARAMS, ARGS)                                     \
    EXPORT void sym PARAMS;                                                        \
    static void sym##_resolve PARAMS;                                              \
    static void (*real_##sym) PARAMS = sym##_resolve;                              \
    static HT_NOINLINE void sym##_resolve PARAMS                                   \
    {                                                                              \
        void (*f) PARAMS = (void (*) PARAMS)resolve(#sym);                         \
        if (!f) {                                                                  \
            free(p);                                                               \
            return;                                                                \
        }                                                                          \
        real_##sym = f;                                                            \
        f ARGS;                                                                    \
    }                                                                              \
    static HT_NOINLINE void sym##_traced PARAMS                                    \
    {                                                                              \
        uint32_t gen = session_gen();                                              \
        if (gen == 0 || ht__tls.nest || ht__tls.pending_api || p == NULL) {        \
            real_##sym ARGS;                                                       \
            return;                                                                \
        }                                                                          \
        ht_tls *t = &ht__tls;                                                      \
        t->pending_api = api;                                                      \
        real_##sym ARGS;                                                           \
        if (t->pending_api) { /* no free seen inside: record it here */           \
            t->pending_api = 0;                                                    \
            ht__emit_free(t, gen, api, 3, 1, p);                                   \
        }                                                                          \
    }                                                                              \
    EXPORT void sym PARAMS                                                         \
    {                                                                              \
        if (HT_LIKELY(session_gen() == 0)) {                                       \
            real_##sym ARGS;                                                       \
            return;                                                                \
        }                                                                          \
        sym##_traced ARGS;                                                         \
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
