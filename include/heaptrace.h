/*
 * heaptrace.h - public API of heaptrace, heap-event tracing for Linux.
 *
 * The event model is ETW's heap tracing: ALLOC, FREE, REALLOC, HEAP_CREATE
 * and HEAP_DESTROY, with HeapHandle, Address, Size and Source (ETW's
 * MEMORY_FROM_* numbering).  The C library's heap is traced automatically
 * when libheaptrace.so is loaded (LD_PRELOAD or -lheaptrace); a custom heap
 * (arena, pool, slab) reports its own events through the functions below.
 *
 * Every function here is safe to call when the runtime is NOT loaded: the
 * implementation symbols are weak references, so a program compiled against
 * this header links and runs unchanged without libheaptrace, and the calls
 * become no-ops (ht_heap_create returns HT_HEAP_NONE).  When the runtime is
 * loaded but no session is recording, each call costs one predictable branch.
 *
 * Thread-safe, async-signal-safe while idle, never allocates through malloc.
 */
#ifndef HEAPTRACE_H
#define HEAPTRACE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HEAPTRACE_VERSION_MAJOR 0
#define HEAPTRACE_VERSION_MINOR 1

/* Where an allocation was served from: ETW's MEMORY_FROM_* values. */
typedef enum ht_source {
    HT_SOURCE_NONE      = 0, /* the provider did not say */
    HT_SOURCE_LOOKASIDE = 1, /* per-thread cache / lookaside / pool free list */
    HT_SOURCE_LOWFRAG   = 2, /* size-class (low-fragmentation) front end */
    HT_SOURCE_MAINPATH  = 3, /* the allocator's main path */
    HT_SOURCE_SLOWPATH  = 4, /* fresh memory from the OS (mmap, heap growth) */
    HT_SOURCE_INVALID   = 5, /* invalid request (e.g. foreign pointer freed) */
    HT_SOURCE_SEGMENT   = 6  /* reserved, as in ETW */
} ht_source;

/* A heap handle (ETW's HeapHandle).  0 is "no heap" (runtime not loaded). */
typedef uint64_t ht_heap_t;
#define HT_HEAP_NONE ((ht_heap_t)0)
#define HT_HEAP_LIBC ((ht_heap_t)1) /* malloc & co, operator new & co */

/* ---- implementation symbols (exported by libheaptrace.so; weak here) ---- */
#if defined(HT_BUILDING_RUNTIME)
#define HT__WEAK /* the definitions, in libheaptrace.so */
#elif defined(__GNUC__)
#define HT__WEAK __attribute__((weak))
#else
#define HT__WEAK
#endif
extern volatile const uint32_t ht__session_on HT__WEAK;
ht_heap_t ht__heap_create(const char *name, uint32_t flags) HT__WEAK;
void ht__heap_destroy(ht_heap_t heap) HT__WEAK;
void ht__heap_alloc(ht_heap_t heap, void *addr, size_t size, ht_source src) HT__WEAK;
void ht__heap_free(ht_heap_t heap, void *addr, ht_source src) HT__WEAK;
void ht__heap_realloc(ht_heap_t heap, void *new_addr, size_t new_size,
                      void *old_addr, size_t old_size, ht_source src) HT__WEAK;
void ht__marker(const char *text) HT__WEAK;

/* ---- the API ---- */
#ifndef HT_BUILDING_RUNTIME

/* Nonzero while a session is recording this process.  Use it to skip work
 * that only feeds the trace (e.g. computing an old size). */
static inline int ht_enabled(void)
{
    return &ht__session_on != 0 && ht__session_on != 0;
}

/* Register a custom heap (emits HEAP_CREATE with the name, truncated to 63
 * bytes).  Returns its handle, or HT_HEAP_NONE when the runtime is absent or
 * its heap table is full; the other calls accept HT_HEAP_NONE and do nothing. */
static inline ht_heap_t ht_heap_create(const char *name, uint32_t flags)
{
    return ht__heap_create ? ht__heap_create(name, flags) : HT_HEAP_NONE;
}

/* Unregister a custom heap (emits HEAP_DESTROY).  Blocks still live in it
 * are reported by analysis as released with the heap, not as leaks. */
static inline void ht_heap_destroy(ht_heap_t heap)
{
    if (ht__heap_destroy) ht__heap_destroy(heap);
}

/* A block of `size` bytes at `addr` was handed out by `heap`. */
static inline void ht_heap_alloc(ht_heap_t heap, void *addr, size_t size, ht_source src)
{
    if (ht__heap_alloc) ht__heap_alloc(heap, addr, size, src);
}

/* The block at `addr` went back to `heap`. */
static inline void ht_heap_free(ht_heap_t heap, void *addr, ht_source src)
{
    if (ht__heap_free) ht__heap_free(heap, addr, src);
}

/* The block at `old_addr` (old_size bytes, 0 if unknown) became `new_addr`
 * of `new_size` bytes. */
static inline void ht_heap_realloc(ht_heap_t heap, void *new_addr, size_t new_size,
                                   void *old_addr, size_t old_size, ht_source src)
{
    if (ht__heap_realloc) ht__heap_realloc(heap, new_addr, new_size, old_addr, old_size, src);
}

/* A user marker: `text` (truncated to 255 bytes) with the current time, to
 * mark phases of the program in the trace. */
static inline void ht_marker(const char *text)
{
    if (ht__marker) ht__marker(text);
}

#endif /* !HT_BUILDING_RUNTIME */

#ifdef __cplusplus
}
#endif
#endif /* HEAPTRACE_H */
