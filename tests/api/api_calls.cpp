// api_calls.cpp - a known sequence of calls through every API the heaptrace
// runtime interposes or exports, for tests/api/check_api.py.
//
// usage: api_calls EXPECTED_FILE
//
// Between the markers "begin" and "end" the main thread calls the whole
// malloc family (successes and failures), operator new/delete in all their
// variants, the custom-heap API, and fork()s a child that allocates (the
// child is not traced).  Three threads, started before "begin" and released
// right after it, each make a small sequence between their own markers
// "thread-begin N" / "thread-end N".
//
// Every call's exact arguments and results are noted, as they happen, in
// static tables (no allocation), as the event the runtime must record for
// it, in the vocabulary of `heaptrace dump --format jsonl`.  After "end" the
// tables are written to EXPECTED_FILE as JSON lines: first a "meta" object
// (pids, tids, heap handles, whether the runtime is loaded), then one object
// per expected event, each with a "window" key ("main" or "thread N").
//
// stdout and the exit status (42 on success, so that a test sees it pass
// through `heaptrace record`; 1 on a setup failure) do not depend on
// whether the runtime is loaded.  Without the runtime the heaptrace.h calls
// are no-ops: heap handles are 0 and the meta line says so.
//
// Built with -O0, and every result goes through a volatile sink, so that no
// allocation is elided or merged by the compiler.
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cxxabi.h>
#include <malloc.h>
#include <new>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <typeinfo>
#include <unistd.h>
#include <unwind.h>

#include "heaptrace.h"

#define NOINLINE __attribute__((noinline))

// A released block's address is noted after the call that released it (the
// value only, never dereferenced).
#pragma GCC diagnostic ignored "-Wuse-after-free"

// A call did not behave as this program relies on (exit 1, no allocation).
static void bail(int line, const char *what)
{
    char b[256];
    int n = snprintf(b, sizeof b, "api_calls: line %d: %s\n", line, what);
    ssize_t w = write(2, b, n > 0 && n < (int)sizeof b ? (size_t)n : sizeof b - 1);
    (void)w;
    _exit(1);
}
#define BAIL_IF(cond) do { if (cond) bail(__LINE__, #cond); } while (0)

// ---------------------------------------------------------------------------
// Expected events, noted without allocating.

enum Kind { ALLOC, FREE, REALLOC, HEAP_CREATE, HEAP_DESTROY, MARKER };

struct Exp {
    Kind kind;
    const char *api;
    uint64_t heap;
    uint64_t addr, size;         // ALLOC, FREE (addr only)
    uint64_t new_addr, new_size; // REALLOC
    uint64_t old_addr, old_size; // REALLOC
    const char *source;
    const char *addr_ref;        // instead of addr: "$name", an address the
                                 // program cannot see (check_api.py binds it)
    char detail[64];             // HEAP_CREATE name, MARKER text
};

struct ExpList {
    Exp ev[160];
    int n;
};

static ExpList main_exp;

static const char *const MAINPATH = "MAINPATH";
static const char *const SLOWPATH = "SLOWPATH";
static const char *const LOOKASIDE = "LOOKASIDE";

static NOINLINE Exp *add(ExpList *l, Kind k)
{
    if (l->n >= (int)(sizeof l->ev / sizeof l->ev[0])) {
        static const char msg[] = "api_calls: expectation table full\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(1);
    }
    Exp *e = &l->ev[l->n++];
    memset(e, 0, sizeof *e);
    e->kind = k;
    return e;
}

static uint64_t u(const void *p) { return (uint64_t)(uintptr_t)p; }

static NOINLINE void exp_alloc(ExpList *l, const char *api, uint64_t heap, const void *p, uint64_t size,
                               const char *src)
{
    Exp *e = add(l, ALLOC);
    e->api = api, e->heap = heap, e->addr = u(p), e->size = size, e->source = src;
}

static NOINLINE void exp_free(ExpList *l, const char *api, uint64_t heap, const void *p, const char *src)
{
    Exp *e = add(l, FREE);
    e->api = api, e->heap = heap, e->addr = u(p), e->source = src;
}

static NOINLINE void exp_realloc(ExpList *l, const char *api, uint64_t heap, const void *np, uint64_t ns,
                                 const void *op, uint64_t os, const char *src)
{
    Exp *e = add(l, REALLOC);
    e->api = api, e->heap = heap, e->new_addr = u(np), e->new_size = ns, e->old_addr = u(op),
    e->old_size = os, e->source = src;
}

static NOINLINE void exp_text(ExpList *l, Kind k, uint64_t heap, const char *text)
{
    Exp *e = add(l, k);
    e->heap = heap;
    size_t n = strlen(text);
    if (n >= sizeof e->detail) n = sizeof e->detail - 1;
    memcpy(e->detail, text, n);
    e->detail[n] = 0;
}

// A block whose address the program cannot see: malloc'ed, then freed.
static NOINLINE void exp_exception_object(ExpList *l, const char *ref, uint64_t size)
{
    Exp *e = add(l, ALLOC);
    e->api = "malloc", e->heap = HT_HEAP_LIBC, e->addr_ref = ref, e->size = size, e->source = "MAINPATH";
    e = add(l, FREE);
    e->api = "free", e->heap = HT_HEAP_LIBC, e->addr_ref = ref, e->source = "MAINPATH";
}

// Libc heap: handle 1 (HT_HEAP_LIBC).
static const uint64_t LIBC = HT_HEAP_LIBC;

// Every result goes through here so that nothing is optimised away.
static void *volatile sink;
static NOINLINE void *keep(void *p)
{
    sink = p;
    return p;
}

// Sizes the compiler cannot see (no -Walloc-size-larger-than, no folding).
static volatile size_t HUGE_SIZE = SIZE_MAX / 2;  // > PTRDIFF_MAX: every allocator refuses it
static volatile size_t HALF_SIZE = SIZE_MAX / 2 + 1; // HALF_SIZE * 2 overflows
static volatile size_t BIG_SIZE = 64u << 20;      // 64 MiB > glibc's largest mmap threshold (32 MiB)

// ---------------------------------------------------------------------------
// The exception object that a failing operator new throws.
//
// libstdc++'s __cxa_allocate_exception mallocs sizeof(__cxa_refcounted_exception)
// + sizeof(thrown object) and returns the address after that header; the
// block is freed (with free) when the catch handler ends.  The header layout
// below is libstdc++'s (unwind-cxx.h, Itanium C++ ABI 2.2.1); it is checked
// at run time in prewarm() against __cxa_get_globals()->caughtExceptions.

struct CxaException {
    std::type_info *exceptionType;
    void (*exceptionDestructor)(void *);
    void (*unexpectedHandler)();
    void (*terminateHandler)();
    CxaException *nextException;
    int handlerCount;
    int handlerSwitchValue;
    const unsigned char *actionRecord;
    const unsigned char *languageSpecificData;
    _Unwind_Ptr catchTemp;
    void *adjustedPtr;
    _Unwind_Exception unwindHeader;
};
struct CxaRefcountedException {
    int referenceCount; // _Atomic_word
    CxaException exc;
};

static const void *caught_header(void)
{
    // __cxa_eh_globals starts with `__cxa_exception *caughtExceptions`.
    return *(void *const *)abi::__cxa_get_globals();
}

static const void *exception_block(const void *thrown)
{
    return (const char *)thrown - sizeof(CxaRefcountedException);
}

// ---------------------------------------------------------------------------
// Threads

enum { NTHREADS = 3 };

struct ThreadCtx {
    int n;
    pid_t tid;
    char begin[32], end[32];
    ExpList exp;
};

static ThreadCtx threads[NTHREADS];
static pthread_barrier_t go;

static pid_t gettid_(void) { return (pid_t)syscall(SYS_gettid); }

static void *thread_main(void *arg)
{
    ThreadCtx *c = (ThreadCtx *)arg;
    ExpList *l = &c->exp;
    int n = c->n;
    c->tid = gettid_();
    pthread_barrier_wait(&go);

    ht_marker(c->begin);
    void *p = keep(malloc(1000 + n));
    exp_alloc(l, "malloc", LIBC, p, 1000 + n, MAINPATH);
    void *q = keep(calloc(n, 32));
    exp_alloc(l, "calloc", LIBC, q, 32 * n, MAINPATH);
    void *q2 = keep(realloc(q, 2000 + n));
    exp_realloc(l, "realloc", LIBC, q2, 2000 + n, q, 0, MAINPATH);
    void *o = keep(::operator new(48 + n));
    exp_alloc(l, "new", LIBC, o, 48 + n, MAINPATH);
    void *a = keep(::operator new[](16 * n));
    exp_alloc(l, "new[]", LIBC, a, 16 * n, MAINPATH);
    void *m = nullptr;
    BAIL_IF(posix_memalign(&m, 32, 100 + n) != 0);
    keep(m);
    exp_alloc(l, "posix_memalign", LIBC, m, 100 + n, MAINPATH);
    ::operator delete(o);
    exp_free(l, "delete", LIBC, o, MAINPATH);
    ::operator delete[](a);
    exp_free(l, "delete[]", LIBC, a, MAINPATH);
    free(m);
    exp_free(l, "free", LIBC, m, MAINPATH);
    free(q2);
    exp_free(l, "free", LIBC, q2, MAINPATH);
    free(p);
    exp_free(l, "free", LIBC, p, MAINPATH);
    ht_marker(c->end);
    return nullptr;
}

// ---------------------------------------------------------------------------
// The main sequence, in parts.

static ExpList *const M = &main_exp;

static NOINLINE void c_malloc_family(void)
{
    // malloc, malloc(0), a failing malloc; free; free(NULL) is no event.
    void *p = keep(malloc(100));
    exp_alloc(M, "malloc", LIBC, p, 100, MAINPATH);
    void *z = keep(malloc(0));
    exp_alloc(M, "malloc", LIBC, z, 0, MAINPATH);
    void *f = keep(malloc(HUGE_SIZE));
    BAIL_IF(f);
    exp_alloc(M, "malloc", LIBC, nullptr, HUGE_SIZE, MAINPATH);
    free(nullptr);
    free(z);
    exp_free(M, "free", LIBC, z, MAINPATH);

    // calloc, calloc overflow (size SIZE_MAX), calloc too large (no overflow)
    void *c = keep(calloc(10, 20));
    exp_alloc(M, "calloc", LIBC, c, 200, MAINPATH);
    void *co = keep(calloc(HALF_SIZE, 2));
    BAIL_IF(co);
    exp_alloc(M, "calloc", LIBC, nullptr, SIZE_MAX, MAINPATH);
    void *cl = keep(calloc(1, HUGE_SIZE));
    BAIL_IF(cl);
    exp_alloc(M, "calloc", LIBC, nullptr, HUGE_SIZE, MAINPATH);

    // malloc_usable_size is interposed but is no event
    BAIL_IF(malloc_usable_size(p) < 100);

    // realloc: NULL -> ALLOC; grow, shrink -> REALLOC (old_size 0); failing
    // -> REALLOC to 0x0 with the requested size; (p, 0) -> FREE.
    void *r = keep(realloc(nullptr, 50));
    exp_alloc(M, "realloc", LIBC, r, 50, MAINPATH);
    void *r0 = keep(realloc(nullptr, 0));
    exp_alloc(M, "realloc", LIBC, r0, 0, MAINPATH);
    void *g = keep(realloc(r, 5000));
    exp_realloc(M, "realloc", LIBC, g, 5000, r, 0, MAINPATH);
    void *s = keep(realloc(g, 10));
    exp_realloc(M, "realloc", LIBC, s, 10, g, 0, MAINPATH);
    errno = 0;
    void *rf = keep(realloc(s, HUGE_SIZE));
    BAIL_IF(rf || errno != ENOMEM);
    exp_realloc(M, "realloc", LIBC, nullptr, HUGE_SIZE, s, 0, MAINPATH);
    void *rz = keep(realloc(s, 0)); // glibc frees s, returns NULL
    BAIL_IF(rz);
    exp_free(M, "realloc", LIBC, s, MAINPATH);
    void *rz0 = keep(realloc(r0, 0));
    BAIL_IF(rz0);
    exp_free(M, "realloc", LIBC, r0, MAINPATH);

    // reallocarray: the same, size = n*m, SIZE_MAX when it overflows
    void *ra = keep(reallocarray(nullptr, 4, 25));
    exp_alloc(M, "reallocarray", LIBC, ra, 100, MAINPATH);
    void *ra2 = keep(reallocarray(ra, 8, 25));
    exp_realloc(M, "reallocarray", LIBC, ra2, 200, ra, 0, MAINPATH);
    void *rao = keep(reallocarray(ra2, HALF_SIZE, 2));
    BAIL_IF(rao);
    exp_realloc(M, "reallocarray", LIBC, nullptr, SIZE_MAX, ra2, 0, MAINPATH);
    void *ran = keep(reallocarray(nullptr, HALF_SIZE, 4));
    BAIL_IF(ran);
    exp_alloc(M, "reallocarray", LIBC, nullptr, SIZE_MAX, MAINPATH);
    void *raz = keep(reallocarray(ra2, 0, 7));
    BAIL_IF(raz);
    exp_free(M, "reallocarray", LIBC, ra2, MAINPATH);

    // the aligned allocators and their failures
    void *ma = keep(memalign(64, 100));
    exp_alloc(M, "memalign", LIBC, ma, 100, MAINPATH);
    void *maf = keep(memalign(64, HUGE_SIZE));
    BAIL_IF(maf);
    exp_alloc(M, "memalign", LIBC, nullptr, HUGE_SIZE, MAINPATH);

    void *pm = nullptr;
    BAIL_IF(posix_memalign(&pm, 128, 300) != 0);
    keep(pm);
    exp_alloc(M, "posix_memalign", LIBC, pm, 300, MAINPATH);
    // EINVAL (alignment not a power of two times sizeof(void *)): no block,
    // *out untouched; the runtime records the failed request as an ALLOC
    // at 0x0 (interpose.c: rc == 0 ? *out : NULL).
    void *pe = (void *)0x1; // must stay untouched
    BAIL_IF(posix_memalign(&pe, 24, 300) != EINVAL || pe != (void *)0x1);
    exp_alloc(M, "posix_memalign", LIBC, nullptr, 300, MAINPATH);
    void *pn = nullptr;
    BAIL_IF(posix_memalign(&pn, 64, HUGE_SIZE) != ENOMEM);
    exp_alloc(M, "posix_memalign", LIBC, nullptr, HUGE_SIZE, MAINPATH);

    void *aa = keep(aligned_alloc(256, 512));
    exp_alloc(M, "aligned_alloc", LIBC, aa, 512, MAINPATH);
    void *va = keep(valloc(100));
    exp_alloc(M, "valloc", LIBC, va, 100, MAINPATH);
    void *pv = keep(pvalloc(100));
    exp_alloc(M, "pvalloc", LIBC, pv, 100, MAINPATH);
    void *pvf = keep(pvalloc(HUGE_SIZE));
    BAIL_IF(pvf);
    exp_alloc(M, "pvalloc", LIBC, nullptr, HUGE_SIZE, MAINPATH);

    free(pv);
    exp_free(M, "free", LIBC, pv, MAINPATH);
    free(va);
    exp_free(M, "free", LIBC, va, MAINPATH);
    free(aa);
    exp_free(M, "free", LIBC, aa, MAINPATH);
    free(pm);
    exp_free(M, "free", LIBC, pm, MAINPATH);
    free(ma);
    exp_free(M, "free", LIBC, ma, MAINPATH);
    free(c);
    exp_free(M, "free", LIBC, c, MAINPATH);
    free(p);
    exp_free(M, "free", LIBC, p, MAINPATH);
}

static NOINLINE void c_slowpath(void)
{
    // glibc serves 64 MiB with mmap: SLOWPATH for the block's events.
    void *b = keep(malloc(BIG_SIZE));
    BAIL_IF(!b);
    exp_alloc(M, "malloc", LIBC, b, BIG_SIZE, SLOWPATH);
    void *b2 = keep(realloc(b, BIG_SIZE + (1u << 20))); // mremap: still mmap'ed
    BAIL_IF(!b2);
    exp_realloc(M, "realloc", LIBC, b2, BIG_SIZE + (1u << 20), b, 0, SLOWPATH);
    void *bz = keep(realloc(b2, 0)); // frees the mmap'ed block
    BAIL_IF(bz);
    exp_free(M, "realloc", LIBC, b2, SLOWPATH);
    void *c = keep(calloc(1, BIG_SIZE));
    BAIL_IF(!c);
    exp_alloc(M, "calloc", LIBC, c, BIG_SIZE, SLOWPATH);
    free(c);
    exp_free(M, "free", LIBC, c, SLOWPATH);
}

struct Obj { char c[40]; };               // trivially destructible: no array cookie
struct alignas(64) Al64 { char c[64]; };  // over-aligned: aligned new/delete

static NOINLINE void c_new_delete(void)
{
    using std::align_val_t;
    const std::nothrow_t &nt = std::nothrow;

    // new-expressions (sized delete for complete types: -fsized-deallocation)
    Obj *o = new Obj;
    keep(o);
    exp_alloc(M, "new", LIBC, o, sizeof(Obj), MAINPATH);
    Obj *oa = new Obj[3];
    keep(oa);
    exp_alloc(M, "new[]", LIBC, oa, 3 * sizeof(Obj), MAINPATH);
    Obj *on = new (std::nothrow) Obj;
    keep(on);
    exp_alloc(M, "new", LIBC, on, sizeof(Obj), MAINPATH);
    Al64 *al = new Al64;
    keep(al);
    exp_alloc(M, "new", LIBC, al, sizeof(Al64), MAINPATH);
    Al64 *ala = new Al64[2];
    keep(ala);
    exp_alloc(M, "new[]", LIBC, ala, 2 * sizeof(Al64), MAINPATH);
    delete o;
    exp_free(M, "delete", LIBC, o, MAINPATH);
    delete[] oa;
    exp_free(M, "delete[]", LIBC, oa, MAINPATH);
    delete on;
    exp_free(M, "delete", LIBC, on, MAINPATH);
    delete al;
    exp_free(M, "delete", LIBC, al, MAINPATH);
    delete[] ala;
    exp_free(M, "delete[]", LIBC, ala, MAINPATH);

    // delete of a null pointer is no event (expression and operators)
    Obj *volatile nul = nullptr;
    delete nul;
    delete[] nul;
    ::operator delete(nullptr);
    ::operator delete[](nullptr);
    ::operator delete(nullptr, (size_t)40);
    ::operator delete(nullptr, align_val_t(64));

    // every operator, called directly: 8 new, 12 delete
    void *n1 = keep(::operator new(11));
    exp_alloc(M, "new", LIBC, n1, 11, MAINPATH);
    void *n2 = keep(::operator new[](22));
    exp_alloc(M, "new[]", LIBC, n2, 22, MAINPATH);
    void *n3 = keep(::operator new(33, nt));
    exp_alloc(M, "new", LIBC, n3, 33, MAINPATH);
    void *n4 = keep(::operator new[](44, nt));
    exp_alloc(M, "new[]", LIBC, n4, 44, MAINPATH);
    void *n5 = keep(::operator new(55, align_val_t(32)));
    exp_alloc(M, "new", LIBC, n5, 55, MAINPATH);
    void *n6 = keep(::operator new[](66, align_val_t(64)));
    exp_alloc(M, "new[]", LIBC, n6, 66, MAINPATH);
    void *n7 = keep(::operator new(77, align_val_t(128), nt));
    exp_alloc(M, "new", LIBC, n7, 77, MAINPATH);
    void *n8 = keep(::operator new[](88, align_val_t(256), nt));
    exp_alloc(M, "new[]", LIBC, n8, 88, MAINPATH);
    void *n9 = keep(::operator new(99));
    exp_alloc(M, "new", LIBC, n9, 99, MAINPATH);
    void *n10 = keep(::operator new[](110));
    exp_alloc(M, "new[]", LIBC, n10, 110, MAINPATH);
    void *n11 = keep(::operator new(121, align_val_t(32)));
    exp_alloc(M, "new", LIBC, n11, 121, MAINPATH);
    void *n12 = keep(::operator new[](132, align_val_t(32)));
    exp_alloc(M, "new[]", LIBC, n12, 132, MAINPATH);

    ::operator delete(n1);                                     // _ZdlPv
    exp_free(M, "delete", LIBC, n1, MAINPATH);
    ::operator delete[](n2);                                   // _ZdaPv
    exp_free(M, "delete[]", LIBC, n2, MAINPATH);
    ::operator delete(n3, nt);                                 // _ZdlPvRKSt9nothrow_t
    exp_free(M, "delete", LIBC, n3, MAINPATH);
    ::operator delete[](n4, nt);                               // _ZdaPvRKSt9nothrow_t
    exp_free(M, "delete[]", LIBC, n4, MAINPATH);
    ::operator delete(n5, align_val_t(32));                    // _ZdlPvSt11align_val_t
    exp_free(M, "delete", LIBC, n5, MAINPATH);
    ::operator delete[](n6, align_val_t(64));                  // _ZdaPvSt11align_val_t
    exp_free(M, "delete[]", LIBC, n6, MAINPATH);
    ::operator delete(n7, align_val_t(128), nt);               // _ZdlPvSt11align_val_tRKSt9nothrow_t
    exp_free(M, "delete", LIBC, n7, MAINPATH);
    ::operator delete[](n8, align_val_t(256), nt);             // _ZdaPvSt11align_val_tRKSt9nothrow_t
    exp_free(M, "delete[]", LIBC, n8, MAINPATH);
    ::operator delete(n9, (size_t)99);                         // _ZdlPvm
    exp_free(M, "delete", LIBC, n9, MAINPATH);
    ::operator delete[](n10, (size_t)110);                     // _ZdaPvm
    exp_free(M, "delete[]", LIBC, n10, MAINPATH);
    ::operator delete(n11, (size_t)121, align_val_t(32));      // _ZdlPvmSt11align_val_t
    exp_free(M, "delete", LIBC, n11, MAINPATH);
    ::operator delete[](n12, (size_t)132, align_val_t(32));    // _ZdaPvmSt11align_val_t
    exp_free(M, "delete[]", LIBC, n12, MAINPATH);

    // The std::bad_alloc that a failing operator new throws lives in a
    // block that libstdc++ mallocs after the failed allocation and frees when
    // the handler ends: two more calls that allocate and release memory,
    // recorded as what they are (malloc, free), after the new's failed ALLOC.
    const uint64_t exc_size = sizeof(CxaRefcountedException) + sizeof(std::bad_alloc);

    // failing nothrow new: an ALLOC at 0x0; libstdc++'s nothrow operators
    // call the throwing one and catch, inside, so the exception object's
    // address is not visible here: "$excN" (check_api.py requires one
    // nonzero address for the malloc and the free).
    void *f1 = keep(::operator new(HUGE_SIZE, nt));
    BAIL_IF(f1);
    exp_alloc(M, "new", LIBC, nullptr, HUGE_SIZE, MAINPATH);
    exp_exception_object(M, "$exc1", exc_size);
    void *f2 = keep(::operator new[](HUGE_SIZE, nt));
    BAIL_IF(f2);
    exp_alloc(M, "new[]", LIBC, nullptr, HUGE_SIZE, MAINPATH);
    exp_exception_object(M, "$exc2", exc_size);
    void *f3 = keep(::operator new(HUGE_SIZE, align_val_t(64), nt));
    BAIL_IF(f3);
    exp_alloc(M, "new", LIBC, nullptr, HUGE_SIZE, MAINPATH);
    exp_exception_object(M, "$exc3", exc_size);

    // failing throwing new: an ALLOC at 0x0 with api new, then the
    // exception object's malloc and (at the end of the handler) free, at
    // the address known here.
    bool threw = false;
    try {
        keep(::operator new(HUGE_SIZE));
    } catch (const std::bad_alloc &e) {
        threw = true;
        const void *blk = exception_block(&e);
        exp_alloc(M, "new", LIBC, nullptr, HUGE_SIZE, MAINPATH);
        exp_alloc(M, "malloc", LIBC, blk, exc_size, MAINPATH);
        exp_free(M, "free", LIBC, blk, MAINPATH);
    }
    BAIL_IF(!threw);
    // and the wrappers still record after an exception went through them
    void *after = keep(::operator new(7));
    exp_alloc(M, "new", LIBC, after, 7, MAINPATH);
    ::operator delete(after, (size_t)7);
    exp_free(M, "delete", LIBC, after, MAINPATH);
}

static ht_heap_t heap1, heap2;
alignas(64) static unsigned char pool_mem[1 << 16];

static NOINLINE void c_custom_heap(void)
{
    unsigned char *m = pool_mem;
    heap1 = ht_heap_create("test-pool", 0);
    exp_text(M, HEAP_CREATE, heap1, "test-pool");
    ht_heap_alloc(heap1, m + 0, 32, HT_SOURCE_LOOKASIDE);
    exp_alloc(M, "heap", heap1, m + 0, 32, LOOKASIDE);
    ht_heap_alloc(heap1, m + 64, 100, HT_SOURCE_MAINPATH);
    exp_alloc(M, "heap", heap1, m + 64, 100, MAINPATH);
    ht_heap_alloc(heap1, m + 4096, 8192, HT_SOURCE_SLOWPATH);
    exp_alloc(M, "heap", heap1, m + 4096, 8192, SLOWPATH);
    ht_heap_realloc(heap1, m + 256, 64, m + 0, 32, HT_SOURCE_MAINPATH);
    exp_realloc(M, "heap", heap1, m + 256, 64, m + 0, 32, MAINPATH);
    ht_heap_free(heap1, m + 64, HT_SOURCE_MAINPATH);
    exp_free(M, "heap", heap1, m + 64, MAINPATH);
    ht_heap_free(heap1, m + 256, HT_SOURCE_LOOKASIDE);
    exp_free(M, "heap", heap1, m + 256, LOOKASIDE);

    // a second heap gets the next handle
    heap2 = ht_heap_create("test-pool-2", 0);
    exp_text(M, HEAP_CREATE, heap2, "test-pool-2");
    ht_heap_alloc(heap2, m + 100, 8, HT_SOURCE_MAINPATH);
    exp_alloc(M, "heap", heap2, m + 100, 8, MAINPATH);
    ht_heap_destroy(heap2);
    exp_text(M, HEAP_DESTROY, heap2, "");

    // HT_HEAP_NONE: every call is a no-op
    ht_heap_alloc(HT_HEAP_NONE, m, 1, HT_SOURCE_MAINPATH);
    ht_heap_realloc(HT_HEAP_NONE, m, 2, m, 1, HT_SOURCE_MAINPATH);
    ht_heap_free(HT_HEAP_NONE, m, HT_SOURCE_MAINPATH);
    ht_heap_destroy(HT_HEAP_NONE);

    ht_heap_destroy(heap1); // the block at m + 4096 goes with the heap
    exp_text(M, HEAP_DESTROY, heap1, "");
}

static pid_t child_pid;
static int child_status = -1;

static NOINLINE void c_fork(void)
{
    // The child allocates sizes used nowhere else (4243, 4244, 4245); none
    // of its events may appear.
    pid_t c = fork();
    BAIL_IF(c < 0);
    if (c == 0) {
        void *a = keep(malloc(4243));
        void *b = keep(::operator new(4244));
        void *d = keep(calloc(1, 4245));
        ht_marker("child");
        ::operator delete(b);
        free(a);
        free(d);
        _exit(0);
    }
    child_pid = c;
    int st;
    BAIL_IF(waitpid(c, &st, 0) != c);
    child_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// ---------------------------------------------------------------------------
// Before "begin": make the C++ runtime and libc do their one-time work
// (first exception, stdio buffers are only used after "end").

static NOINLINE void prewarm(void)
{
    try {
        keep(::operator new(HUGE_SIZE));
    } catch (const std::bad_alloc &e) {
        // the header layout above matches this libstdc++
        const char *hdr = (const char *)caught_header();
        if (hdr + sizeof(CxaException) != (const char *)&e) {
            fprintf(stderr, "api_calls: unexpected __cxa_exception layout\n");
            _exit(1);
        }
    }
    void *p = keep(::operator new(HUGE_SIZE, std::nothrow));
    BAIL_IF(p);
}

// ---------------------------------------------------------------------------
// Output

static void put_hex(FILE *f, const char *key, uint64_t v) { fprintf(f, ",\"%s\":\"0x%" PRIx64 "\"", key, v); }
static void put_num(FILE *f, const char *key, uint64_t v) { fprintf(f, ",\"%s\":%" PRIu64, key, v); }

static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void write_list(FILE *f, const char *window, const ExpList *l)
{
    static const char *const kinds[] = {"alloc", "free", "realloc", "heap_create", "heap_destroy", "marker"};
    for (int i = 0; i < l->n; i++) {
        const Exp *e = &l->ev[i];
        fprintf(f, "{\"window\":");
        put_json_string(f, window);
        fprintf(f, ",\"event\":\"%s\"", kinds[e->kind]);
        switch (e->kind) {
        case ALLOC:
        case FREE:
        case REALLOC:
            put_num(f, "heap", e->heap);
            fprintf(f, ",\"api\":\"%s\"", e->api);
            if (e->kind == REALLOC) {
                put_hex(f, "new_address", e->new_addr);
                put_num(f, "new_size", e->new_size);
                put_hex(f, "old_address", e->old_addr);
                put_num(f, "old_size", e->old_size);
            } else if (e->addr_ref) {
                fprintf(f, ",\"address\":\"%s\"", e->addr_ref);
            } else {
                put_hex(f, "address", e->addr);
            }
            if (e->kind == ALLOC) put_num(f, "size", e->size);
            fprintf(f, ",\"source\":\"%s\"", e->source);
            break;
        case HEAP_CREATE:
        case HEAP_DESTROY:
            put_num(f, "heap", e->heap);
            /* fall through */
        case MARKER:
            fprintf(f, ",\"detail\":");
            put_json_string(f, e->detail);
            break;
        }
        fputs("}\n", f);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: api_calls EXPECTED_FILE\n");
        return 2;
    }
    const int runtime_loaded = &ht__session_on != nullptr;
    const int enabled = ht_enabled();

    prewarm();

    if (pthread_barrier_init(&go, nullptr, NTHREADS + 1) != 0) return 1;
    pthread_t th[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        threads[i].n = i + 1;
        snprintf(threads[i].begin, sizeof threads[i].begin, "thread-begin %d", i + 1);
        snprintf(threads[i].end, sizeof threads[i].end, "thread-end %d", i + 1);
        if (pthread_create(&th[i], nullptr, thread_main, &threads[i]) != 0) return 1;
    }

    ht_marker("begin");
    pthread_barrier_wait(&go); // the threads run their sequences from here on
    c_malloc_family();
    ht_marker("mid");
    exp_text(M, MARKER, 0, "mid");
    c_slowpath();
    c_new_delete();
    c_custom_heap();
    c_fork();
    ht_marker("end");

    for (int i = 0; i < NTHREADS; i++)
        if (pthread_join(th[i], nullptr) != 0) return 1;

    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fprintf(f, "{\"meta\":1,\"pid\":%d,\"main_tid\":%d,\"child_pid\":%d,\"child_status\":%d", (int)getpid(),
            (int)gettid_(), (int)child_pid, child_status);
    fprintf(f, ",\"runtime_loaded\":%d,\"enabled\":%d,\"heaps\":[%" PRIu64 ",%" PRIu64 "]", runtime_loaded, enabled,
            (uint64_t)heap1, (uint64_t)heap2);
    fprintf(f, ",\"child_sizes\":[4243,4244,4245],\"threads\":[");
    for (int i = 0; i < NTHREADS; i++)
        fprintf(f, "%s{\"n\":%d,\"tid\":%d,\"begin\":\"%s\",\"end\":\"%s\"}", i ? "," : "", threads[i].n,
                (int)threads[i].tid, threads[i].begin, threads[i].end);
    fprintf(f, "]}\n");
    write_list(f, "main", &main_exp);
    for (int i = 0; i < NTHREADS; i++) {
        char w[32];
        snprintf(w, sizeof w, "thread %d", threads[i].n);
        write_list(f, w, &threads[i].exp);
    }
    if (fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }

    printf("api_calls: %d main-thread calls, %d threads\n", main_exp.n, NTHREADS);
    printf("api_calls: fork child exited with %d\n", child_status);
    printf("api_calls: done\n");
    return child_status == 0 ? 42 : 1;
}
