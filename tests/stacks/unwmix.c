/*
 * unwmix.c - allocations through every kind of frame a dwarf unwinder meets,
 * built -O2 -fomit-frame-pointer (check_stacks.py "unwinders" records it
 * with the runtime's own unwinder and with libunwind, and compares):
 *
 *   30000  a plain chain (no frame pointers: rsp-based CFA)
 *   30001  below a frame with alloca (rbp-based CFA, dynamic stack)
 *   30002  a qsort comparator (glibc's sorting frames)
 *   30011+ reallocs
 *   30004  deep recursion through a function pointer
 *   30005  a signal handler (the signal frame: libunwind's business)
 *   30006  a handler on an alternate signal stack (off the thread's stack)
 *   30007  another thread
 *   30008  the same frames (pc, rsp, rbp) from two call sites of main: the
 *          walk remembered from the first must not answer for the second
 *
 * `unwmix threads N`: N threads one after the other, each allocating once;
 * prints how much the address space grew (the runtime's per-thread state
 * must go with its thread).
 */
#include <alloca.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static void *volatile sink;

__attribute__((noinline)) static void keep(void *p)
{
    sink = p;
    free(p);
}

__attribute__((noinline)) static void leaf(size_t n)
{
    keep(malloc(n));
    __asm__ volatile("" ::: "memory"); /* not a tail call */
}

__attribute__((noinline)) static void dyn(size_t n)
{
    char *b = alloca(n);
    memset(b, 1, n);
    sink = b;
    leaf(30000 + (size_t)b[0]);
    __asm__ volatile("" ::: "memory");
}

static int cmp(const void *a, const void *b)
{
    keep(malloc(30002));
    return *(const int *)a - *(const int *)b;
}

__attribute__((noinline)) static void grow(void)
{
    void *p = NULL;
    for (int i = 1; i <= 4; i++) p = realloc(p, 30010 + (size_t)i);
    free(p);
}

typedef void (*rec_fn)(int);
static rec_fn volatile rec_ptr;

__attribute__((noinline)) static void rec(int d)
{
    if (d == 0) leaf(30004);
    else rec_ptr(d - 1);
    __asm__ volatile("" ::: "memory");
}

static void on_usr1(int s)
{
    (void)s;
    keep(malloc(30005));
}

static void on_usr2(int s)
{
    (void)s;
    keep(malloc(30006));
}

static void *thread_main(void *a)
{
    leaf(30007);
    return a;
}

static long vm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmSize: %ld", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

static int thread_churn(int n)
{
    pthread_t th;
    /* the first threads set up what is kept (glibc's stack cache) */
    for (int i = 0; i < 20; i++)
        if (pthread_create(&th, NULL, thread_main, NULL) == 0) pthread_join(th, NULL);
    long before = vm_kb();
    for (int i = 0; i < n; i++)
        if (pthread_create(&th, NULL, thread_main, NULL) == 0) pthread_join(th, NULL);
    printf("vm_growth_kb=%ld\n", vm_kb() - before);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "threads")) return thread_churn(atoi(argv[2]));
    rec_ptr = rec;
    signal(SIGUSR1, on_usr1);
    static char alt[1 << 16];
    stack_t ss = {.ss_sp = alt, .ss_size = sizeof alt};
    sigaltstack(&ss, NULL);
    struct sigaction sa = {.sa_handler = on_usr2, .sa_flags = SA_ONSTACK};
    sigaction(SIGUSR2, &sa, NULL);
    for (int round = 0; round < 3; round++) {
        leaf(30000);
        leaf(30008);
        leaf(30008);
        dyn(100 + 16 * (size_t)round);
        int v[16];
        for (int i = 0; i < 16; i++) v[i] = (i * 7 + round) % 16;
        qsort(v, 16, sizeof v[0], cmp);
        grow();
        rec(20);
        raise(SIGUSR1);
        raise(SIGUSR2);
        pthread_t th;
        if (pthread_create(&th, NULL, thread_main, NULL) == 0) pthread_join(th, NULL);
    }
    return 0;
}
