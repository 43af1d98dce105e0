/* stk_plugin.c - dlopen'ed by stk_chains, which dlclose's it before it ends. */
#include <stdlib.h>

void *plugin_alloc(void);

__attribute__((noinline)) static void *plugin_inner(void)
{
    void *p = malloc(10003); /* LINE: plugin_inner */
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) void *plugin_alloc(void)
{
    void *p = plugin_inner(); /* LINE: plugin_alloc */
    __asm__ volatile("" ::: "memory");
    return p;
}
