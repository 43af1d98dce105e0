/*
 * deep.c - stk_deep [LEVELS]: recursion LEVELS deep (default 300) that
 * allocates 20001 bytes at the bottom, 5 times, then prints a checksum.
 */
#include <stdio.h>
#include <stdlib.h>

static unsigned long sum;

__attribute__((noinline)) unsigned long recurse(int n)
{
    if (n == 0) {
        char *p = malloc(20001); /* LINE: recurse_malloc */
        if (!p) exit(3);
        p[0] = 7;
        sum += (unsigned long)p[0];
        free(p);
        return 1;
    }
    unsigned long r = recurse(n - 1); /* LINE: recurse_call */
    __asm__ volatile("" ::: "memory");
    return r + 1;
}

int main(int argc, char **argv)
{
    int levels = argc > 1 ? atoi(argv[1]) : 300;
    unsigned long total = 0;
    for (int i = 0; i < 5; i++) {
        total += recurse(levels); /* LINE: main_recurse */
        __asm__ volatile("" ::: "memory");
    }
    printf("deep levels %d total %lu sum %lu\n", levels, total, sum);
    return 0;
}
