/* steady.c - a long-running process that allocates steadily: THREADS
 * threads, each a malloc/free pair of 16..512 bytes every ~10 us, until
 * killed.  The target of bench/attach_latency.py. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static void *volatile sink;

static void *work(void *arg)
{
    (void)arg;
    struct timespec nap = {0, 10000};
    for (unsigned i = 0;; i++) {
        void *p = malloc(16 + i % 497);
        sink = p;
        free(p);
        if (i % 8 == 0) nanosleep(&nap, NULL);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2;
    for (int i = 1; i < n; i++) {
        pthread_t t;
        pthread_create(&t, NULL, work, NULL);
    }
    work(NULL);
    return 0;
}
