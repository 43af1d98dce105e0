/* loop.c - workloads A and B of bench/run: malloc/free pairs of mixed sizes
 * (16-512 B), each thread keeping a ring of LIVE objects alive, so that
 * every malloc is preceded by the free of the object LIVE pairs older.
 *
 * usage: loop [PAIRS_PER_THREAD [THREADS [LIVE]]]   (default 10000000 1 256)
 *
 * Heap calls made (all recorded by heaptrace; free(NULL) is never called):
 *   THREADS * PAIRS mallocs + THREADS * PAIRS frees.
 * With THREADS = 1 the loop runs in the main thread (no thread is created).
 * Prints the loop's own time on stderr. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long pairs = 10000000, live = 256;

static void *worker(void *arg)
{
    unsigned x = 12345u + 977u * (unsigned)(size_t)arg;
    void **ring = __builtin_alloca((size_t)live * sizeof *ring);
    for (long k = 0; k < live; k++) {
        x = x * 1103515245u + 12345u;
        ring[k] = malloc(16 + (x >> 16) % 497);
        *(volatile char *)ring[k] = 1;
    }
    for (long i = live; i < pairs; i++) {
        x = x * 1103515245u + 12345u;
        size_t sz = 16 + (x >> 16) % 497;
        long k = i % live;
        free(ring[k]);
        ring[k] = malloc(sz);
        *(volatile char *)ring[k] = 1;
    }
    for (long k = 0; k < live; k++) free(ring[k]);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) pairs = atol(argv[1]);
    long threads = argc > 2 ? atol(argv[2]) : 1;
    if (argc > 3) live = atol(argv[3]);
    if (pairs < 1 || threads < 1 || threads > 64 || live < 1 || live > 100000 || live > pairs) {
        fprintf(stderr, "usage: loop [PAIRS_PER_THREAD [THREADS [LIVE]]] (LIVE <= PAIRS)\n");
        return 2;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (threads == 1) {
        worker(0);
    } else {
        pthread_t t[64];
        for (long i = 0; i < threads; i++)
            if (pthread_create(&t[i], NULL, worker, (void *)(size_t)i) != 0) {
                fprintf(stderr, "loop: pthread_create failed\n");
                return 1;
            }
        for (long i = 0; i < threads; i++) pthread_join(t[i], NULL);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    fprintf(stderr, "loop: %ld threads x %ld pairs in %.3f s: %.2f ns/call\n", threads, pairs, s,
            s * 1e9 / (2.0 * (double)pairs * (double)threads));
    return 0;
}
