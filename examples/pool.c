/*
 * pool.c - a fixed-size object pool that reports its own heap to heaptrace
 * through the public API (include/heaptrace.h).
 *
 * Sources, with ETW's meaning:
 *   LOOKASIDE - served from the pool's free list (a recycled object)
 *   MAINPATH  - carved from the current slab (bump allocation)
 *   SLOWPATH  - a new slab had to be fetched from the OS (mmap)
 * Runs unchanged without the runtime: every ht_* call is then a no-op.
 *
 * usage: pool_example [OBJECTS]
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "heaptrace.h"

#define SLAB_BYTES (64 * 1024)

typedef struct slab {
    struct slab *next;
    size_t used;
    _Alignas(16) unsigned char mem[];
} slab;

typedef struct pool {
    size_t obj_size;
    slab *slabs;
    void *free_list; /* recycled objects, linked through their first word */
    ht_heap_t heap;
} pool;

static void pool_init(pool *p, size_t obj_size, const char *name)
{
    memset(p, 0, sizeof *p);
    p->obj_size = (obj_size + 15) & ~(size_t)15;
    p->heap = ht_heap_create(name, 0);
}

static void *pool_alloc(pool *p)
{
    if (p->free_list) {
        void *o = p->free_list;
        p->free_list = *(void **)o;
        ht_heap_alloc(p->heap, o, p->obj_size, HT_SOURCE_LOOKASIDE);
        return o;
    }
    ht_source src = HT_SOURCE_MAINPATH;
    if (!p->slabs || p->slabs->used + p->obj_size > SLAB_BYTES - sizeof(slab)) {
        slab *s = mmap(NULL, SLAB_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (s == MAP_FAILED) {
            ht_heap_alloc(p->heap, NULL, p->obj_size, HT_SOURCE_SLOWPATH); /* out of memory */
            return NULL;
        }
        s->next = p->slabs;
        s->used = 0;
        p->slabs = s;
        src = HT_SOURCE_SLOWPATH;
    }
    void *o = p->slabs->mem + p->slabs->used;
    p->slabs->used += p->obj_size;
    ht_heap_alloc(p->heap, o, p->obj_size, src);
    return o;
}

static void pool_free(pool *p, void *o)
{
    if (!o) return;
    ht_heap_free(p->heap, o, HT_SOURCE_LOOKASIDE);
    *(void **)o = p->free_list;
    p->free_list = o;
}

static void pool_destroy(pool *p)
{
    ht_heap_destroy(p->heap);
    for (slab *s = p->slabs, *n; s; s = n) {
        n = s->next;
        munmap(s, SLAB_BYTES);
    }
    memset(p, 0, sizeof *p);
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
    pool nodes;
    pool_init(&nodes, 48, "node-pool");
    void **live = calloc(n, sizeof *live);
    if (!live) return 1;
    ht_marker("fill");
    for (size_t i = 0; i < n; i++) live[i] = pool_alloc(&nodes);
    ht_marker("churn");
    for (size_t i = 0; i < n; i += 2) pool_free(&nodes, live[i]);
    for (size_t i = 0; i < n; i += 2) live[i] = pool_alloc(&nodes); /* LOOKASIDE hits */
    ht_marker("teardown");
    for (size_t i = 0; i < n / 2; i++) pool_free(&nodes, live[i]);
    pool_destroy(&nodes); /* the other half goes away with the heap */
    free(live);
    printf("pool: %zu objects, tracing %s\n", n, ht_enabled() ? "on" : "off");
    return 0;
}
