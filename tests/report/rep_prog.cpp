// rep_prog - a program whose heap behaviour `heaptrace report` must find
// exactly (tests/report/check_report.py knows every number below).
//
//   phase 1  (marker "phase1")  TEMP_N malloc+free pairs, each freed at once:
//                               TEMP_N temporary allocations
//   phase 2  (marker "phase2")  PEAK_N blocks of PEAK_SZ bytes held, then freed:
//                               the peak, at the site hold_blocks
//   phase 3  (marker "phase3")  mismatched releases: MM_N of each kind
//   phase 4  (marker "phase4")  custom heap "rep-pool": allocations, a double
//                               free and a free of an address it never gave,
//                               then destroyed with POOL_LIVE blocks in it
//   end                         LEAK_N blocks of LEAK_SZ bytes left live at leak_blocks
//
// `rep_prog many N` instead makes N malloc/free pairs (a long trace).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "heaptrace.h"

enum { TEMP_N = 1000, PEAK_N = 300, PEAK_SZ = 4096, MM_N = 7, LEAK_N = 5, LEAK_SZ = 333, POOL_LIVE = 4 };

// Called through volatile pointers so that the compiler cannot see (and warn
// about, or fold) the deliberately mismatched pairs.
static void *(*volatile do_malloc)(size_t) = malloc;
static void (*volatile do_free)(void *) = free;

__attribute__((noinline)) static void temporaries(void)
{
    for (int i = 0; i < TEMP_N; i++) {
        char *p = static_cast<char *>(do_malloc(24 + (i % 8)));
        p[0] = 1;
        do_free(p);
    }
}

__attribute__((noinline)) static void hold_blocks(void **v)
{
    for (int i = 0; i < PEAK_N; i++) {
        v[i] = do_malloc(PEAK_SZ);
        memset(v[i], i, 16);
    }
}

__attribute__((noinline)) static void release_blocks(void **v)
{
    for (int i = PEAK_N; i-- > 0;) do_free(v[i]);
}

__attribute__((noinline)) static void mismatches(void)
{
    for (int i = 0; i < MM_N; i++) {
        int *a = new int(i);          // new, released by free
        do_free(a);
        int *b = static_cast<int *>(do_malloc(sizeof(int)));  // malloc, released by delete
        int *volatile vb = b;
        delete vb;
        char *c = new char[32];        // new[], released by delete
        char *volatile vc = c;
        delete reinterpret_cast<char *>(vc);
    }
}

__attribute__((noinline)) static void pool(void)
{
    static char arena[64 * 1024];
    ht_heap_t h = ht_heap_create("rep-pool", 0);
    for (int i = 0; i < 8; i++) ht_heap_alloc(h, arena + i * 1024, 1000, HT_SOURCE_LOOKASIDE);
    for (int i = 0; i < 4; i++) ht_heap_free(h, arena + i * 1024, HT_SOURCE_LOOKASIDE);
    ht_heap_free(h, arena + 0 * 1024, HT_SOURCE_LOOKASIDE);          // double free
    ht_heap_free(h, arena + 60 * 1024, HT_SOURCE_LOOKASIDE);         // never allocated
    ht_heap_destroy(h);                                              // POOL_LIVE blocks go with it
}

__attribute__((noinline)) static void leak_blocks(void)
{
    for (int i = 0; i < LEAK_N; i++) {
        void *p = do_malloc(LEAK_SZ);
        memset(p, 0, LEAK_SZ);
        static void *keep[LEAK_N];
        keep[i] = p;
    }
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "many")) { // a long trace: N pairs, a ring of 64 live blocks
        long n = atol(argv[2]);
        static void *ring[64];
        for (long i = 0; i < n; i++) {
            do_free(ring[i & 63]);
            ring[i & 63] = do_malloc(16 + (i & 255));
        }
        return 0;
    }
    static void *v[PEAK_N];
    ht_marker("phase1");
    temporaries();
    ht_marker("phase2");
    hold_blocks(v);
    release_blocks(v);
    ht_marker("phase3");
    mismatches();
    ht_marker("phase4");
    pool();
    leak_blocks();
    std::printf("rep_prog done\n");
    return 0;
}
