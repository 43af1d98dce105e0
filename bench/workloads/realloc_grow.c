/* realloc_grow.c - workload C of bench/run: REALLOCS reallocs growing NBUF
 * buffers by small steps (8-64 B) in round-robin; a buffer that would pass
 * MAX bytes is freed and starts again from NULL (realloc(NULL, n)).
 *
 * usage: realloc_grow [REALLOCS [NBUF [MAX]]]   (default 2000000 1000 16384)
 *
 * Heap calls made: REALLOCS reallocs (the first of each buffer's life is a
 * realloc of NULL, which heaptrace records as an allocation), one free per
 * buffer restart and NBUF frees at the end; free(NULL) is never called. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 2000000;
    long nbuf = argc > 2 ? atol(argv[2]) : 1000;
    long max = argc > 3 ? atol(argv[3]) : 16384;
    if (n < 1 || nbuf < 1 || nbuf > 1000000 || max < 128) {
        fprintf(stderr, "usage: realloc_grow [REALLOCS [NBUF [MAX]]]\n");
        return 2;
    }
    char **buf = calloc((size_t)nbuf, sizeof *buf);
    size_t *len = calloc((size_t)nbuf, sizeof *len);
    if (!buf || !len) return 1;
    unsigned x = 4242u;
    long frees = 0;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        long k = i % nbuf;
        x = x * 1103515245u + 12345u;
        size_t step = 8 + (x >> 16) % 57;
        if (len[k] + step > (size_t)max) {
            free(buf[k]);
            frees++;
            buf[k] = NULL;
            len[k] = 0;
        }
        char *p = realloc(buf[k], len[k] + step);
        if (!p) return 1;
        memset(p + len[k], (int)(i & 0x7f), step);
        buf[k] = p;
        len[k] += step;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    unsigned sum = 0;
    for (long k = 0; k < nbuf; k++) {
        if (buf[k]) sum += (unsigned char)buf[k][len[k] - 1];
        free(buf[k]);
    }
    free(buf);
    free(len);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    fprintf(stderr, "realloc_grow: %ld reallocs, %ld restarts in %.3f s: %.2f ns/realloc (check %u)\n", n,
            frees, s, s * 1e9 / (double)n, sum);
    return 0;
}
