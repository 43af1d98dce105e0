/*
 * bootstrap.c - start-up of the runtime: resolving the real allocator with
 * dlsym(RTLD_NEXT) and serving the allocations dlsym itself makes from a
 * static buffer.
 *
 * ht__real starts out pointing at boot_* functions, so the first call of
 * any wrapper initialises the runtime, whoever makes it and however early
 * (before our constructor, from another library's constructor).  The idle
 * wrappers therefore need no "initialised?" test.  Only the thread running
 * the initialisation is served from the static buffer; other threads wait.
 */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "rt.h"

char ht__boot_buf[HT_BOOT_SIZE] __attribute__((aligned(64)));
static _Atomic size_t boot_used;
static _Atomic int init_state; /* 0 none, 1 running, 2 done */
static __thread int in_init __attribute__((tls_model("initial-exec")));

#define BOOT_HDR 16u

void *ht__boot_alloc(size_t n, size_t align)
{
    if (align < BOOT_HDR) align = BOOT_HDR;
    size_t used = ht_atomic_load_relaxed(&boot_used);
    for (;;) {
        size_t start = (used + BOOT_HDR + align - 1) & ~(align - 1);
        if (n > HT_BOOT_SIZE || start + n > HT_BOOT_SIZE) return NULL;
        if (atomic_compare_exchange_weak(&boot_used, &used, start + n)) {
            ((size_t *)(ht__boot_buf + start))[-1] = n;
            return ht__boot_buf + start; /* static storage: already zeroed */
        }
    }
}

size_t ht__boot_size(const void *p)
{
    return ((const size_t *)p)[-1];
}

static void *boot_malloc(size_t n);
static void boot_free(void *p);
static void *boot_calloc(size_t n, size_t m);
static void *boot_realloc(void *p, size_t n);
static void *boot_reallocarray(void *p, size_t n, size_t m);
static void *boot_memalign(size_t a, size_t n);
static int boot_posix_memalign(void **out, size_t a, size_t n);
static void *boot_aligned_alloc(size_t a, size_t n);
static void *boot_valloc(size_t n);
static void *boot_pvalloc(size_t n);
static size_t boot_usable(void *p);

ht_real ht__real = {
    boot_malloc,    boot_free,          boot_calloc, boot_realloc,
    boot_reallocarray, boot_memalign,   boot_posix_memalign,
    boot_aligned_alloc, boot_valloc,    boot_pvalloc, boot_usable,
};

#define RESOLVE(field, name)                                                   \
    do {                                                                       \
        void *sym = dlsym(RTLD_NEXT, name);                                    \
        if (sym) __atomic_store_n((void **)&ht__real.field, sym, __ATOMIC_RELEASE); \
        else missing = name;                                                   \
    } while (0)

static void resolve_real(void)
{
    const char *missing = NULL;
    RESOLVE(malloc, "malloc");
    RESOLVE(free, "free");
    RESOLVE(calloc, "calloc");
    RESOLVE(realloc, "realloc");
    RESOLVE(reallocarray, "reallocarray");
    RESOLVE(memalign, "memalign");
    RESOLVE(posix_memalign, "posix_memalign");
    RESOLVE(aligned_alloc, "aligned_alloc");
    RESOLVE(valloc, "valloc");
    RESOLVE(pvalloc, "pvalloc");
    RESOLVE(malloc_usable_size, "malloc_usable_size");
    if (missing) {
        ht_log("cannot resolve the real %s; aborting", missing);
        abort();
    }
    /* glibc's malloc is an alias of __libc_malloc: only then do we read its
     * chunk headers (for SLOWPATH detection). */
    void *libc_malloc = dlsym(RTLD_NEXT, "__libc_malloc");
    ht__sess.glibc = libc_malloc != NULL && libc_malloc == (void *)ht__real.malloc;
}

int ht__prefetchw;

/* CPUID 0x80000001 ECX bit 8 (PRFCHW): the CPU has PREFETCHW (rt.h). */
static void detect_cpu(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000001u, &a, &b, &c, &d)) ht__prefetchw = (c >> 8) & 1;
#endif
}

void ht__init(void)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&init_state, &expected, 1)) {
        in_init = 1;
        detect_cpu();
        resolve_real();
        ht__session_join();
        in_init = 0;
        atomic_store(&init_state, 2);
        return;
    }
    while (atomic_load(&init_state) != 2 && !in_init) sched_yield();
}

/* The thread running ht__init is served from the static buffer. */
#define BOOT_OR_INIT(expr_boot)                 \
    do {                                        \
        if (in_init) return expr_boot;          \
        ht__init();                             \
        if (in_init) return expr_boot;          \
    } while (0)

static void *boot_malloc(size_t n) { BOOT_OR_INIT(ht__boot_alloc(n, 16)); return malloc(n); }
static void boot_free(void *p)
{
    if (ht__boot_owns(p) || in_init) return;
    ht__init();
    free(p);
}
static void *boot_calloc(size_t n, size_t m)
{
    size_t t;
    if (__builtin_mul_overflow(n, m, &t)) t = SIZE_MAX;
    BOOT_OR_INIT(ht__boot_alloc(t, 16));
    return calloc(n, m);
}
static void *boot_realloc(void *p, size_t n) { BOOT_OR_INIT(NULL); return realloc(p, n); }
static void *boot_reallocarray(void *p, size_t n, size_t m) { BOOT_OR_INIT(NULL); return reallocarray(p, n, m); }
static void *boot_memalign(size_t a, size_t n) { BOOT_OR_INIT(ht__boot_alloc(n, a)); return memalign(a, n); }
static int boot_posix_memalign(void **out, size_t a, size_t n)
{
    if (in_init) return (*out = ht__boot_alloc(n, a)) ? 0 : 12;
    ht__init();
    return posix_memalign(out, a, n);
}
static void *boot_aligned_alloc(size_t a, size_t n) { BOOT_OR_INIT(ht__boot_alloc(n, a)); return aligned_alloc(a, n); }
static void *boot_valloc(size_t n) { BOOT_OR_INIT(ht__boot_alloc(n, 4096)); return valloc(n); }
static void *boot_pvalloc(size_t n) { BOOT_OR_INIT(ht__boot_alloc(n, 4096)); return pvalloc(n); }
static size_t boot_usable(void *p) { BOOT_OR_INIT(0); return malloc_usable_size(p); }

__attribute__((constructor)) static void ht__ctor(void)
{
    ht__init();
    /* touch the TLS block early (initial-exec) */
    ht__tls.nest = 0;
    ht__control_start();
}
