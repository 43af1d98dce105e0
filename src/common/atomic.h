/*
 * atomic.h - C11 atomics with the memory order in the name.
 *
 * Every acquire/release use carries a comment at the call site saying what
 * it orders and who reads it.  Shared memory is accessed through these only.
 */
#ifndef HT_ATOMIC_H
#define HT_ATOMIC_H

#include <stdatomic.h>
#include <stdint.h>

#define ht_atomic_load_relaxed(p) atomic_load_explicit((p), memory_order_relaxed)
#define ht_atomic_load_acquire(p) atomic_load_explicit((p), memory_order_acquire)
#define ht_atomic_store_relaxed(p, v) atomic_store_explicit((p), (v), memory_order_relaxed)
#define ht_atomic_store_release(p, v) atomic_store_explicit((p), (v), memory_order_release)
#define ht_atomic_add_relaxed(p, v) atomic_fetch_add_explicit((p), (v), memory_order_relaxed)
#define ht_atomic_add_acq_rel(p, v) atomic_fetch_add_explicit((p), (v), memory_order_acq_rel)
#define ht_atomic_exchange_acq_rel(p, v) atomic_exchange_explicit((p), (v), memory_order_acq_rel)
#define ht_atomic_cas_acq_rel(p, expected, desired)                                         \
    atomic_compare_exchange_weak_explicit((p), (expected), (desired), memory_order_acq_rel, \
                                          memory_order_acquire)

#define HT_LIKELY(x) __builtin_expect(!!(x), 1)
#define HT_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HT_NOINLINE __attribute__((noinline))
#define HT_ALWAYS_INLINE inline __attribute__((always_inline))
#define HT_COLD __attribute__((cold, noinline))
#define HT_EXPORT __attribute__((visibility("default")))
#define HT_CACHELINE 64

#endif
