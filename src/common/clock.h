/*
 * clock.h - the session clock: the TSC where it is invariant, else
 * CLOCK_MONOTONIC in ns.  The collector decides which (ht_clock_pick) and
 * writes it into the shared region; runtime and collector then read the same
 * clock, so their timestamps compare directly.  ht_clock_conv turns raw
 * readings into ns since the session start, re-calibrating piecewise
 * against CLOCK_MONOTONIC so long sessions do not drift.
 */
#ifndef HT_CLOCK_H
#define HT_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "shm.h"

static inline uint64_t ht_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t ht_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline uint64_t ht_rdtsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#else
    return ht_mono_ns();
#endif
}

static inline uint64_t ht_clock_read(uint32_t clock)
{
    return HT_LIKELY(clock == HT_CLOCK_TSC) ? ht_rdtsc() : ht_mono_ns();
}

/* HT_CLOCK_TSC if this machine has an invariant TSC that the kernel uses as
 * its clocksource, else HT_CLOCK_MONOTONIC.  HEAPTRACE_CLOCK=monotonic forces
 * the fallback. */
uint32_t ht_clock_pick(void);

/* Converter from raw readings to ns since the session start. */
typedef struct ht_clock_conv {
    uint32_t clock;
    uint64_t start_raw, start_mono, start_real;
    /* current segment: ns = seg_ns + (raw - seg_raw) * rate, where rate is
     * kept as a 32.32 fixed-point multiplier for the per-event conversion */
    uint64_t seg_raw, seg_ns;
    double rate; /* ns per raw unit */
    uint64_t mult;
    int fast; /* TSC, mult < 2^32 and seg_ns < 2^62: the 64-bit path may serve */
} ht_clock_conv;

/* Sets the current segment (and the fast-path flag). */
static inline void ht_clock_conv_segment(ht_clock_conv *c, uint64_t seg_raw, uint64_t seg_ns, uint64_t mult)
{
    c->seg_raw = seg_raw;
    c->seg_ns = seg_ns;
    c->mult = mult;
    c->fast = c->clock == HT_CLOCK_TSC && mult < (1ull << 32) && seg_ns < (1ull << 62);
}

void ht_clock_conv_init(ht_clock_conv *c, uint32_t clock);
/* Re-measure the rate against CLOCK_MONOTONIC; call now and then (each flush). */
void ht_clock_conv_update(ht_clock_conv *c);

static inline uint64_t ht_clock_conv_ns(const ht_clock_conv *c, uint64_t raw)
{
    /* nearly always: a reading within 2^31 ticks of the segment's start,
     * before it as often as after (the collector reads records written
     * before its last rate update), and a clock faster than 1 GHz: the
     * product fits 63 bits.  >> of a negative value is arithmetic in GCC
     * and Clang, as in the general formula below. */
    uint64_t delta = raw - c->seg_raw;
    if (__builtin_expect(delta + (1ull << 31) < (1ull << 32) && c->fast, 1)) {
        /* |delta| <= 2^31 and mult < 2^32: the product fits; seg_ns below
         * 2^62: so does the sum, and ns <= 0 is what clamps to 0 */
        int64_t ns = (int64_t)c->seg_ns + (((int64_t)delta * (int64_t)c->mult) >> 32);
        return ns > 0 ? (uint64_t)ns : 0;
    }
    if (c->clock != HT_CLOCK_TSC) return raw >= c->start_raw ? raw - c->start_raw : 0;
    __int128 d = (__int128)(int64_t)(raw - c->seg_raw) * (__int128)c->mult;
    __int128 ns = (__int128)c->seg_ns + (d >> 32);
    return ns <= 0 ? 0 : (uint64_t)ns;
}

#endif
