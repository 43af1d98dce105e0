/* loop.c - N malloc/free pairs of mixed sizes (16-512 B) with a ring of
 * live objects; prints calls/s.  usage: loop [PAIRS] [LIVE] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long pairs = argc > 1 ? atol(argv[1]) : 10000000;
    long live = argc > 2 ? atol(argv[2]) : 256;
    void **ring = calloc((size_t)live, sizeof *ring);
    unsigned x = 12345;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < pairs; i++) {
        x = x * 1103515245u + 12345u;
        size_t sz = 16 + (x >> 16) % 497;
        long k = i % live;
        free(ring[k]);
        ring[k] = malloc(sz);
        *(volatile char *)ring[k] = 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    for (long k = 0; k < live; k++) free(ring[k]);
    free(ring);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    fprintf(stderr, "loop: %ld pairs in %.3f s: %.2f ns/call\n", pairs, s, s * 1e9 / (2.0 * (double)pairs));
    return 0;
}
