/* plugin.c - a dlopen'ed library that allocates (sizes 13000..13999). */
#include <stdlib.h>

static void *keep;

__attribute__((constructor)) static void plugin_init(void)
{
    keep = malloc(13500);
}

__attribute__((destructor)) static void plugin_fini(void)
{
    free(keep);
}

long plugin_work(int n);
long plugin_work(int n)
{
    void *volatile p;
    for (int i = 0; i < n; i++) {
        p = malloc(13000 + (size_t)i);
        free(p);
    }
    return 2L * n + 2; /* + the constructor's malloc and the destructor's free */
}
