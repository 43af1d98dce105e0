/*
 * badfp.c - stk_badfp: allocations (30001 bytes) made while the caller's
 * saved frame pointer (the slot at __builtin_frame_address(0)) holds garbage:
 * 0x1, a pointer into the heap (to a fake chain of frames with junk return
 * addresses), a pointer to the slot itself, a pointer below it, a misaligned
 * one, a pointer near the top of the address space (wraps
 * around when a bound check adds to it), and, on the second thread, a pointer to a fake chain on another
 * thread's stack.  The slot is restored before returning, so the program
 * itself runs correctly.  Also one control allocation (30002 bytes) with
 * the chain intact.  Each case runs on the main thread and on a second
 * thread.  Prints the number of allocations and a checksum.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOINLINE __attribute__((noinline))
#define NCASES 7

static uintptr_t fake_heap_chain;
static uintptr_t other_stack_chain; /* on the main thread's stack */
static int calls;
static unsigned long sum;

static uintptr_t bogus_value(int c, uintptr_t *slot)
{
    switch (c) {
    case 0: return 0x1;
    case 1: return fake_heap_chain;
    case 2: return (uintptr_t)slot;
    case 3: return (uintptr_t)slot - 256;
    case 4: return (uintptr_t)slot + 64 + 3;
    case 5: return (uintptr_t)-8; /* fp + 16 wraps around to 8 */
    default: return other_stack_chain;
    }
}

NOINLINE void *corrupt_alloc(int c)
{
    uintptr_t *volatile slot = (uintptr_t *)__builtin_frame_address(0);
    uintptr_t saved = *slot;
    uintptr_t bogus = bogus_value(c, slot);
    __asm__ volatile("" ::: "memory");
    *slot = bogus;
    __asm__ volatile("" ::: "memory");
    void *p = malloc(30001); /* LINE: corrupt_alloc */
    __asm__ volatile("" ::: "memory");
    *slot = saved;
    __asm__ volatile("" ::: "memory");
    calls++;
    return p;
}

NOINLINE void *clean_alloc(void)
{
    void *p = malloc(30002); /* LINE: clean_alloc */
    __asm__ volatile("" ::: "memory");
    calls++;
    return p;
}

NOINLINE void run_cases(int on_thread)
{
    /* the last case only off the main thread: there, the main thread's
     * stack is another thread's */
    for (int c = 0; c < (on_thread ? NCASES : NCASES - 1); c++) {
        char *p = corrupt_alloc(c); /* LINE: run_cases */
        if (!p) exit(3);
        p[0] = (char)c;
        sum += (unsigned long)p[0] + 1;
        free(p);
    }
    char *q = clean_alloc(); /* LINE: run_cases_clean */
    if (!q) exit(3);
    free(q);
}

static void *thread_main(void *arg)
{
    (void)arg;
    run_cases(1); /* LINE: thread_main */
    return NULL;
}

int main(void)
{
    /* a fake chain of frames in the heap: each links to the next, with junk
     * return addresses */
    uintptr_t *heap = malloc(64 * sizeof *heap);
    if (!heap) return 3;
    for (int i = 0; i < 62; i += 2) {
        heap[i] = (uintptr_t)&heap[i + 2];
        heap[i + 1] = 0x4141414141414140ull + (uintptr_t)i;
    }
    heap[62] = heap[63] = 0;
    fake_heap_chain = (uintptr_t)heap;

    /* the same on the main thread's stack (good for the second thread) */
    volatile uintptr_t fake[64];
    for (int i = 0; i < 62; i += 2) {
        fake[i] = (uintptr_t)&fake[i + 2];
        fake[i + 1] = 0x4242424242424240ull + (uintptr_t)i;
    }
    fake[62] = fake[63] = 0;
    other_stack_chain = (uintptr_t)&fake[0];

    run_cases(0); /* LINE: main_run */
    pthread_t th;
    if (pthread_create(&th, NULL, thread_main, NULL) != 0) return 4;
    pthread_join(th, NULL);
    free(heap);
    printf("badfp calls %d sum %lu fake %lu\n", calls, sum, (unsigned long)fake[1]);
    return 0;
}
