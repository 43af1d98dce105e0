/*
 * api.c - the public custom-heap and marker API (include/heaptrace.h).
 *
 * Heap handles are small integers handed out here: 1 is the C library's
 * heap, custom heaps get 2, 3, ... in registration order.
 */
#include "heaptrace.h"

#include "rt.h"

static _Atomic uint32_t next_heap = 2;

static inline uint32_t gen_now(void)
{
    return ht_atomic_load_relaxed((_Atomic uint32_t *)&ht__on);
}

HT_EXPORT ht_heap_t ht__heap_create(const char *name, uint32_t flags)
{
    uint32_t h = ht_atomic_add_relaxed(&next_heap, 1);
    if (h == 0) return HT_HEAP_NONE; /* wrapped after 4G heaps */
    ht__emit_text(HT_EV_HEAP_CREATE, h, flags, name, HT_HEAP_NAME_MAX);
    return h;
}

HT_EXPORT void ht__heap_destroy(ht_heap_t heap)
{
    if (heap == HT_HEAP_NONE) return;
    ht__emit_text(HT_EV_HEAP_DESTROY, heap, 0, NULL, 0);
}

HT_EXPORT void ht__heap_alloc(ht_heap_t heap, void *addr, size_t size, ht_source src)
{
    uint32_t g = gen_now();
    if (HT_LIKELY(g == 0) || heap == HT_HEAP_NONE) return;
    ht__emit_alloc(&ht__tls, g, HT_API_HEAP, (unsigned)src, heap, addr, size);
}

HT_EXPORT void ht__heap_free(ht_heap_t heap, void *addr, ht_source src)
{
    uint32_t g = gen_now();
    if (HT_LIKELY(g == 0) || heap == HT_HEAP_NONE) return;
    ht__emit_free(&ht__tls, g, HT_API_HEAP, (unsigned)src, heap, addr);
}

HT_EXPORT void ht__heap_realloc(ht_heap_t heap, void *new_addr, size_t new_size, void *old_addr,
                                size_t old_size, ht_source src)
{
    uint32_t g = gen_now();
    if (HT_LIKELY(g == 0) || heap == HT_HEAP_NONE) return;
    ht__emit_realloc(&ht__tls, g, HT_API_HEAP, (unsigned)src, heap, new_addr, new_size,
                     old_addr, old_size);
}

HT_EXPORT void ht__marker(const char *text)
{
    ht__emit_text(HT_EV_MARKER, 0, 0, text, HT_MARKER_MAX);
}
