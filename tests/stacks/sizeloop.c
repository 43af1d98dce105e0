/*
 * sizeloop.c - stk_sizeloop [N]: N (default 100000) rounds of malloc/free
 * from three call sites (sizes 40001, 40002, 40003), round robin.
 */
#include <stdio.h>
#include <stdlib.h>

#define NOINLINE __attribute__((noinline))

static unsigned long sum;

static void use(char *p)
{
    if (!p) exit(3);
    p[0] = 1;
    sum += (unsigned long)p[0];
    free(p);
}

NOINLINE void site1(void) { use(malloc(40001)); /* LINE: site1 */ }
NOINLINE void site2(void) { use(malloc(40002)); /* LINE: site2 */ }
NOINLINE void site3(void) { use(malloc(40003)); /* LINE: site3 */ }

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    for (long i = 0; i < n; i++) {
        switch (i % 3) {
        case 0: site1(); break; /* LINE: main_site1 */
        case 1: site2(); break; /* LINE: main_site2 */
        default: site3(); break; /* LINE: main_site3 */
        }
    }
    printf("sizeloop %ld sum %lu\n", n, sum);
    return 0;
}
