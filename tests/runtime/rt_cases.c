/*
 * rt_cases.c - programs that stress the runtime's safety rules; each mode
 * prints "calls N" (the heap calls it made itself, all of sizes
 * 13000..13999 so a checker can pick them out of the trace) and exits 0.
 *
 *   signals  the main thread reports a custom heap's events in a loop while
 *            a 20 kHz timer's handler mallocs and frees: the handler
 *            re-enters the runtime while the main thread is writing a record
 *            (the main thread never holds glibc's malloc lock, so the
 *            handler's malloc is safe from glibc's point of view)
 *   churn    2000 short-lived threads, each allocating: sub-buffers must be
 *            recycled at thread exit (the pool has far fewer than 2000)
 *   dlopen   a library that allocates in its constructor and in a function,
 *            dlopen'ed and dlclose'd 50 times
 *   exec     allocates, then execs itself in mode "after-exec", which
 *            allocates again: one pid, both images traced
 *   burst    one thread allocates as fast as it can, then the process exits
 *            at once: with small buffers, many full ones are waiting for the
 *            collector when the process ends, and all must be read
 *   backlog  with the collector stopped (SIGSTOP to the parent, only when
 *            traced), the main thread and a second one take turns: the
 *            main thread fills dozens of small sub-buffers, more than the
 *            collector notes for one thread in one round, while the other
 *            thread's records, interleaved in time, sit in one buffer; once
 *            the collector runs again all must come out in time order
 *   interleave  the same with 50 and 10 pairs a turn, 1000 turns, into
 *            16 KiB buffers: when the collector runs again the main thread
 *            has far more full buffers than it notes in a round, and the
 *            helper's noted ones reach much later, so the merge must hold
 *            back most of the helper's (spill, then full buffers kept
 *            unread); and the process exits at once
 *   errno    every allocation call made with errno set to a marker, in
 *            fresh threads (their first event opens a sub-buffer: the slow
 *            path's syscalls) and with small buffers (many switches): errno
 *            must come back as the call left it, the marker; exits 4 if not
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sched.h>
#include <unistd.h>

#include "heaptrace.h"

static atomic_long calls;

static void *volatile sink;

static void churn_heap(int n)
{
    for (int i = 0; i < n; i++) {
        void *p = malloc(13000 + (size_t)(i % 1000));
        sink = p;
        free(p);
        atomic_fetch_add(&calls, 2);
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    churn_heap(2);
}

static int mode_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);
    struct itimerval it = {{0, 50}, {0, 50}};
    setitimer(ITIMER_REAL, &it, NULL);
    static char pool[64][16];
    ht_heap_t h = ht_heap_create("signal-test", 0);
    for (int i = 0; i < 400000; i++) {
        void *p = pool[i % 64];
        ht_heap_alloc(h, p, 13000 + (size_t)(i % 1000), HT_SOURCE_MAINPATH);
        ht_heap_free(h, p, HT_SOURCE_MAINPATH);
        atomic_fetch_add(&calls, 2);
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    return 0;
}

static void *thread_main(void *arg)
{
    (void)arg;
    churn_heap(50);
    return NULL;
}

static int mode_churn(void)
{
    for (int i = 0; i < 2000; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_main, NULL) != 0) return 1;
        pthread_join(t, NULL);
    }
    return 0;
}

static int mode_dlopen(const char *lib)
{
    for (int i = 0; i < 50; i++) {
        void *h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            fprintf(stderr, "dlopen: %s\n", dlerror());
            return 1;
        }
        long (*fn)(int) = (long (*)(int))dlsym(h, "plugin_work");
        if (!fn) return 1;
        atomic_fetch_add(&calls, fn(100));
        dlclose(h);
    }
    return 0;
}

static atomic_long errno_bad;

/* errno after each call must be the marker the call found (these calls
 * succeed, and glibc leaves errno alone when they do) */
#define ERRNO_CHECK(call)                                    \
    do {                                                     \
        errno = 4242;                                        \
        call;                                                \
        if (errno != 4242) atomic_fetch_add(&errno_bad, 1);  \
    } while (0)

static void *errno_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200; i++) {
        size_t n = 13000 + (size_t)(i % 1000);
        void *p, *q, *r, *a = NULL;
        ERRNO_CHECK(p = malloc(n));
        ERRNO_CHECK(q = calloc(1, n));
        ERRNO_CHECK(r = realloc(p, n + 1));
        ERRNO_CHECK(posix_memalign(&a, 64, n));
        sink = r;
        ERRNO_CHECK(free(r));
        ERRNO_CHECK(free(q));
        ERRNO_CHECK(free(a));
        /* the checker counts allocations and frees of 13000..13999 bytes:
         * malloc, calloc, posix_memalign and three frees (realloc's record
         * is a REALLOC, and r's free matches it) */
        atomic_fetch_add(&calls, 6);
    }
    return NULL;
}

static int mode_errno(void)
{
    for (int i = 0; i < 20; i++) {
        pthread_t t[4];
        for (int k = 0; k < 4; k++)
            if (pthread_create(&t[k], NULL, errno_thread, NULL) != 0) return 1;
        for (int k = 0; k < 4; k++) pthread_join(t[k], NULL);
    }
    if (atomic_load(&errno_bad)) {
        fprintf(stderr, "errno changed by %ld calls\n", atomic_load(&errno_bad));
        return 4;
    }
    return 0;
}

static atomic_int turn; /* 0: main thread's, 1: the helper's, 2: done */
static int helper_pairs;

static void *backlog_helper(void *arg)
{
    (void)arg;
    for (;;) {
        int t;
        while ((t = atomic_load(&turn)) == 0) sched_yield();
        if (t == 2) return NULL;
        churn_heap(helper_pairs);
        atomic_store(&turn, 0);
    }
}

/* backlog: turns of 50 pairs (main) and 1 pair (helper), 60 turns;
 * interleave: 50 and 10, 1000 turns */
static int mode_backlog(int turns, int pairs)
{
    int traced = getenv("HEAPTRACE_SESSION") != NULL;
    helper_pairs = pairs;
    pthread_t t;
    if (pthread_create(&t, NULL, backlog_helper, NULL) != 0) return 1;
    if (traced) kill(getppid(), SIGSTOP);
    /* backlog: 60 x 100 records of 32 bytes, about 48 sub-buffers of 4 KiB */
    for (int i = 0; i < turns; i++) {
        churn_heap(50);
        atomic_store(&turn, 1);
        while (atomic_load(&turn) != 0) sched_yield();
    }
    if (traced) kill(getppid(), SIGCONT);
    atomic_store(&turn, 2);
    pthread_join(t, NULL);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    int rc = 2;
    if (!strcmp(argv[1], "signals")) rc = mode_signals();
    else if (!strcmp(argv[1], "churn")) rc = mode_churn();
    else if (!strcmp(argv[1], "burst")) {
        churn_heap(100000);
        rc = 0;
    }
    else if (!strcmp(argv[1], "backlog")) rc = mode_backlog(60, 1);
    else if (!strcmp(argv[1], "interleave")) rc = mode_backlog(1000, 10);
    else if (!strcmp(argv[1], "errno")) rc = mode_errno();
    else if (!strcmp(argv[1], "dlopen") && argc > 2) rc = mode_dlopen(argv[2]);
    else if (!strcmp(argv[1], "exec")) {
        churn_heap(1000);
        char n[32];
        snprintf(n, sizeof n, "%ld", atomic_load(&calls));
        execl("/proc/self/exe", argv[0], "after-exec", n, (char *)NULL);
        return 3;
    } else if (!strcmp(argv[1], "after-exec") && argc > 2) {
        atomic_store(&calls, atol(argv[2]));
        churn_heap(1000);
        rc = 0;
    }
    printf("calls %ld\n", atomic_load(&calls));
    return rc;
}
