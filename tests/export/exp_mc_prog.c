/*
 * exp_mc_prog.c - the program the massif and chrome export tests record
 * (check_massif_chrome.py), in known phases with known sizes through known
 * call chains:
 *
 *   grow    40 blocks of 100000 bytes through
 *           main -> grow_phase -> grow_level1 -> grow_level2 -> alloc_block,
 *           2 of 250000 in mid_alloc, 10 of 64 in each of small_a, small_b,
 *           small_c: the peak, 4501920 bytes (nothing else is live: no stdio
 *           before the end)
 *   free    all but 2 big blocks and the small ones freed
 *   churn   a thread named "exp-worker" allocates and frees 200 x 1000 bytes
 *   end     2 big blocks and the small ones stay live (leaks); the counts
 *           are printed for the test
 *
 * With the argument "fork", a child process (forked first, before any heap
 * event) holds 1000000 bytes from child_hold -> main through the grow and
 * free phases, so the peak of both processes together is 5501920 bytes.
 *
 * Markers between the phases, one with a quote, a backslash, a newline, a
 * control character and invalid UTF-8 (JSON escaping).  Compiled -O1 with
 * frame pointers; the check reads the LINE markers of this file.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heaptrace.h"

#define NOINLINE __attribute__((noinline))
#define BIG_N 40
#define BIG_SIZE 100000
#define BIG_KEPT 2
#define MID_N 2
#define MID_SIZE 250000
#define SMALL_N 10
#define SMALL_SIZE 64
#define CHURN_N 200
#define CHURN_SIZE 1000
#define CHILD_SIZE 1000000

static void *big[BIG_N], *mid[MID_N], *small[3 * SMALL_N];
static volatile unsigned long sink;
/* volatile: a loop the compiler cannot unroll into two call sites (two
 * nodes of the tree) */
static volatile int mid_n = MID_N;

static void pause_us(long us)
{
    struct timespec t = {0, us * 1000L};
    nanosleep(&t, NULL);
}

static void pause_ms(long ms)
{
    pause_us(ms * 1000L);
}

static void *use(void *p)
{
    if (!p) exit(3);
    memset(p, 1, 16);
    sink += ((unsigned char *)p)[7];
    return p;
}

static NOINLINE void *alloc_block(size_t n)
{
    void *p = malloc(n); /* LINE: alloc_block */
    __asm__ volatile("" ::: "memory");
    return use(p);
}

static NOINLINE void grow_level2(int i)
{
    big[i] = alloc_block(BIG_SIZE); /* LINE: grow_level2 */
    __asm__ volatile("" ::: "memory");
}

static NOINLINE void grow_level1(int i)
{
    grow_level2(i); /* LINE: grow_level1 */
    __asm__ volatile("" ::: "memory");
}

static NOINLINE void grow_phase(void)
{
    for (int i = 0; i < BIG_N; i++) {
        grow_level1(i); /* LINE: grow_phase */
        __asm__ volatile("" ::: "memory");
        if (i % 10 == 9) pause_ms(5); /* a rising slope, not a step */
    }
}

static NOINLINE void mid_alloc(int i)
{
    mid[i] = use(malloc(MID_SIZE)); /* LINE: mid_alloc */
    __asm__ volatile("" ::: "memory");
}

static NOINLINE void small_a(int i)
{
    small[i] = use(malloc(SMALL_SIZE));
    __asm__ volatile("" ::: "memory");
}

static NOINLINE void small_b(int i)
{
    small[SMALL_N + i] = use(malloc(SMALL_SIZE));
    __asm__ volatile("" ::: "memory");
}

static NOINLINE void small_c(int i)
{
    small[2 * SMALL_N + i] = use(malloc(SMALL_SIZE));
    __asm__ volatile("" ::: "memory");
}

static NOINLINE void *child_hold(void)
{
    void *p = malloc(CHILD_SIZE); /* LINE: child_hold */
    __asm__ volatile("" ::: "memory");
    return use(p);
}

/* The child of fork mode: holds its block until the parent says.  Inlined
 * into main: massif shows an inlined frame as a node of its own with its
 * caller's address. */
static inline __attribute__((always_inline)) void child(int ready, int release)
{
    void *p = child_hold(); /* LINE: child_main */
    char c = 'x';
    if (write(ready, &c, 1) != 1) _exit(4);
    if (read(release, &c, 1) != 1) _exit(4);
    free(p);
    _exit(0);
}

static void *churn(void *arg)
{
    (void)arg;
    /* named before its first heap event: the trace takes the name then */
    prctl(PR_SET_NAME, "exp-worker");
    /* apart in time: a series of a few hundred points, more than the
     * massif export's snapshots */
    for (int i = 0; i < CHURN_N; i++) {
        void *p = use(malloc(CHURN_SIZE));
        pause_us(20);
        free(p);
        pause_us(20);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int forked = argc > 1 && !strcmp(argv[1], "fork");
    int ready[2], release[2];
    pid_t kid = -1;
    if (forked) {
        char c;
        if (pipe(ready) || pipe(release)) return 2;
        kid = fork();
        if (kid < 0) return 2;
        if (kid == 0) child(ready[1], release[0]); /* LINE: main_child */
        if (read(ready[0], &c, 1) != 1) return 2; /* it holds its block */
    }

    ht_marker("phase: grow");
    for (int i = 0; i < SMALL_N; i++) {
        small_a(i);
        small_b(i);
        small_c(i);
    }
    for (int i = 0; i < mid_n; i++) mid_alloc(i); /* LINE: main_mid */
    grow_phase(); /* LINE: main_grow */
    __asm__ volatile("" ::: "memory");
    ht_marker("peak reached");
    pause_ms(20);

    ht_marker("free \"big\" blocks \\ now\nsecond line\x01\ttab, bad utf8 \xff\xfe end");
    for (int i = BIG_KEPT; i < BIG_N; i++) {
        free(big[i]);
        if (i % 10 == 9) pause_ms(5);
    }
    for (int i = 0; i < MID_N; i++) free(mid[i]);
    if (forked) {
        int st;
        if (write(release[1], "x", 1) != 1 || waitpid(kid, &st, 0) != kid || !WIFEXITED(st) || WEXITSTATUS(st))
            return 2;
    }
    pause_ms(20);

    ht_marker("phase: churn");
    pthread_t th;
    if (pthread_create(&th, NULL, churn, NULL) != 0) return 2;
    pthread_join(th, NULL);
    pause_ms(20);
    ht_marker("phase: end");

    unsigned long own = (unsigned long)BIG_N * BIG_SIZE + MID_N * MID_SIZE + 3 * SMALL_N * SMALL_SIZE;
    unsigned long kid_bytes = forked ? CHILD_SIZE : 0;
    printf("peak %lu big %lu mid %lu small %lu kept %lu child %lu own %lu sink %lu\n", own + kid_bytes,
           (unsigned long)BIG_N * BIG_SIZE, (unsigned long)MID_N * MID_SIZE, (unsigned long)3 * SMALL_N * SMALL_SIZE,
           (unsigned long)BIG_KEPT * BIG_SIZE + 3 * SMALL_N * SMALL_SIZE, kid_bytes, own, sink);
    return 0;
}
