/*
 * apimix.c - every C allocation API, a known number of times, for the LTTng
 * cross-check (lttng_crosscheck.py apimix).  Real programs rarely call
 * memalign, posix_memalign or realloc(p, 0); this one does, so that every
 * row of the heaptrace <-> LTTng mapping is exercised.
 *
 * usage: ht_apimix [ROUNDS]   (default 1000)
 * Per round: malloc, calloc, realloc(NULL, n), realloc grow, realloc
 * shrink, realloc(p, 0), free, free(NULL), memalign, posix_memalign,
 * aligned_alloc, valloc, pvalloc, reallocarray; a failing malloc and a
 * failing calloc (overflow) every 100 rounds.  Prints, for each kind of
 * heap event heaptrace should record, how many the program caused:
 * "expect EVENT API COUNT" (EVENT and API as `heaptrace dump` names them).
 * Build with -fno-builtin: the compiler must not turn realloc(NULL, n) into
 * malloc(n) or drop a malloc/free pair.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile size_t huge = SIZE_MAX / 2; /* not constant: no compile-time warning */
static void *volatile null_ptr;            /* realloc(null_ptr, n): a real realloc call */
static char outbuf[4096];                  /* stdout's buffer: not from the heap */

int main(int argc, char **argv)
{
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    unsigned long rounds = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
    unsigned long failed = 0, tries = 0;
    for (unsigned long i = 0; i < rounds; i++) {
        size_t n = 8 + (i * 37) % 1000;
        char *a = malloc(n);
        char *b = calloc(1 + i % 7, n);
        char *r = realloc(null_ptr, n);        /* an allocation */
        r = realloc(r, 2 * n + 4096 * (i % 3)); /* grows, may move */
        r = realloc(r, n / 2 + 1);              /* shrinks */
        char *z = malloc(n);
        z = realloc(z, 0);                      /* glibc: frees, returns NULL */
        void *m = memalign(64, n);
        void *pm = NULL;
        if (posix_memalign(&pm, 128, n) != 0) pm = NULL;
        void *aa = aligned_alloc(256, 256 * (1 + i % 4));
        void *v = valloc(n);
        void *pv = pvalloc(n);
        void *ra = reallocarray(null_ptr, 3, n);
        if (!a || !b || !r || z || !m || !pm || !aa || !v || !pv || !ra) {
            fprintf(stderr, "unexpected allocation result in round %lu\n", i);
            return 1;
        }
        memset(a, 1, n);
        free(a);
        free(b);
        free(r);
        free(NULL);
        free(m);
        free(pm);
        free(aa);
        free(v);
        free(pv);
        free(ra);
        if (i % 100 == 0) {
            tries++;
            if (malloc(huge * 3) == NULL) failed++;
            if (calloc(huge, 4) == NULL) failed++;
        }
    }
    if (failed != 2 * tries) {
        fprintf(stderr, "an impossible allocation succeeded\n");
        return 1;
    }
    unsigned long R = rounds;
    printf("expect alloc malloc %lu\n", 2 * R + tries); /* a, z, the failing one */
    printf("expect alloc calloc %lu\n", R + tries);
    printf("expect alloc realloc %lu\n", R);            /* realloc(NULL, n) */
    printf("expect realloc realloc %lu\n", 2 * R);      /* grow, shrink */
    printf("expect free realloc %lu\n", R);             /* realloc(z, 0) */
    printf("expect alloc memalign %lu\n", R);
    printf("expect alloc posix_memalign %lu\n", R);
    printf("expect alloc aligned_alloc %lu\n", R);
    printf("expect alloc valloc %lu\n", R);
    printf("expect alloc pvalloc %lu\n", R);
    printf("expect alloc reallocarray %lu\n", R);       /* reallocarray(NULL, 3, n) */
    printf("expect free free %lu\n", 9 * R);            /* free(NULL) is no event */
    printf("free(NULL) calls %lu\n", R);
    return 0;
}
