/*
 * stress.c - threads hammering malloc/free, for the e2e stress tests.
 *
 * usage: ht_stress local THREADS ITERS
 *        ht_stress handoff PAIRS ITERS
 *
 * local:   each of THREADS worker threads makes ITERS malloc/free pairs with
 *          sizes 16..512 (a per-thread LCG picks them) through a ring of 64
 *          slots, so frees come out of allocation order and addresses are
 *          reused.  Every block is freed by the thread that allocated it.
 * handoff: PAIRS producer/consumer pairs; the producer mallocs ITERS blocks
 *          (16..512 bytes) and hands each to its consumer through a
 *          lock-free single-producer/single-consumer ring; the consumer
 *          frees it.  Every free is of a block another thread allocated,
 *          and glibc hands freed addresses back out to other threads.
 *
 * The worker threads make no heap calls besides these.  Prints on stdout,
 * after all workers are joined, one line per worker
 *   "worker TID MALLOCS FREES BYTES"   (BYTES: sum of the sizes it malloc'ed)
 * then "calls N" (all malloc + free calls the workers made), "mallocs N",
 * "frees N", "failed N".  ITERS = 0 runs only the set-up (thread creation,
 * join, printing): the baseline of the heap calls the process makes itself.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SLOTS 64
#define RING 256
#define MAX_THREADS 64

struct ring {
    _Atomic unsigned long head, tail; /* head: next to write, tail: next to read */
    void *slot[RING];
};

struct worker {
    pthread_t th;
    unsigned idx;
    unsigned long iters;
    struct ring *ring; /* handoff mode */
    pid_t tid;
    unsigned long mallocs, frees, failed;
    unsigned long long bytes;
};

static size_t next_size(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return 16 + (size_t)((*x >> 17) % 497); /* 16..512 */
}

static void *run_local(void *arg)
{
    struct worker *w = arg;
    void *slot[SLOTS] = {0};
    uint64_t x = 0x9e3779b97f4a7c15ull * (w->idx + 1);
    w->tid = (pid_t)syscall(SYS_gettid);
    for (unsigned long i = 0; i < w->iters; i++) {
        size_t n = next_size(&x);
        unsigned s = (unsigned)(x >> 33) % SLOTS;
        if (slot[s]) {
            free(slot[s]);
            w->frees++;
        }
        slot[s] = malloc(n);
        w->mallocs++;
        w->bytes += n;
        if (!slot[s]) w->failed++;
        else ((volatile char *)slot[s])[n - 1] = (char)i;
    }
    for (unsigned s = 0; s < SLOTS; s++)
        if (slot[s]) {
            free(slot[s]);
            w->frees++;
        }
    return NULL;
}

static void *run_producer(void *arg)
{
    struct worker *w = arg;
    struct ring *r = w->ring;
    uint64_t x = 0x9e3779b97f4a7c15ull * (w->idx + 1);
    w->tid = (pid_t)syscall(SYS_gettid);
    for (unsigned long i = 0; i < w->iters; i++) {
        size_t n = next_size(&x);
        void *p = malloc(n);
        w->mallocs++;
        w->bytes += n;
        if (!p) {
            w->failed++;
            continue; /* the consumer counts only what it gets */
        }
        ((volatile char *)p)[n - 1] = (char)i;
        unsigned long h = atomic_load_explicit(&r->head, memory_order_relaxed);
        while (h - atomic_load_explicit(&r->tail, memory_order_acquire) >= RING) sched_yield();
        r->slot[h % RING] = p;
        atomic_store_explicit(&r->head, h + 1, memory_order_release);
    }
    return NULL;
}

static void *run_consumer(void *arg)
{
    struct worker *w = arg;
    struct ring *r = w->ring;
    w->tid = (pid_t)syscall(SYS_gettid);
    unsigned long want = w->iters; /* the producer's successful mallocs: checked by main */
    for (unsigned long got = 0; got < want; got++) {
        unsigned long t = atomic_load_explicit(&r->tail, memory_order_relaxed);
        while (atomic_load_explicit(&r->head, memory_order_acquire) == t) sched_yield();
        void *p = r->slot[t % RING];
        atomic_store_explicit(&r->tail, t + 1, memory_order_release);
        free(p);
        w->frees++;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "local") && strcmp(argv[1], "handoff"))) {
        fprintf(stderr, "usage: %s local|handoff THREADS|PAIRS ITERS\n", argv[0]);
        return 2;
    }
    int handoff = !strcmp(argv[1], "handoff");
    unsigned n = (unsigned)strtoul(argv[2], NULL, 10);
    unsigned long iters = strtoul(argv[3], NULL, 10);
    unsigned nt = handoff ? 2 * n : n;
    if (n < 1 || nt > MAX_THREADS) {
        fprintf(stderr, "at most %d threads\n", MAX_THREADS);
        return 2;
    }
    /* static: main makes no heap calls of its own until it prints */
    static struct worker w[MAX_THREADS];
    static struct ring rings[MAX_THREADS / 2];
    for (unsigned i = 0; i < nt; i++) {
        w[i].idx = i;
        w[i].iters = iters;
        void *(*fn)(void *) = run_local;
        if (handoff) {
            w[i].ring = &rings[i / 2];
            w[i].idx = i / 2;
            fn = (i % 2) ? run_consumer : run_producer;
        }
        if (pthread_create(&w[i].th, NULL, fn, &w[i]) != 0) {
            fprintf(stderr, "pthread_create failed\n");
            return 1;
        }
    }
    unsigned long mallocs = 0, frees = 0, failed = 0;
    for (unsigned i = 0; i < nt; i++) {
        pthread_join(w[i].th, NULL);
        mallocs += w[i].mallocs;
        frees += w[i].frees;
        failed += w[i].failed;
    }
    for (unsigned i = 0; i < nt; i++)
        printf("worker %d %lu %lu %llu\n", (int)w[i].tid, w[i].mallocs, w[i].frees, w[i].bytes);
    printf("calls %lu\nmallocs %lu\nfrees %lu\nfailed %lu\n", mallocs + frees, mallocs, frees, failed);
    /* a failed malloc would leave a consumer waiting forever; never here */
    return failed ? 1 : 0;
}
