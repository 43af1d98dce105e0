/* clock.c - clock choice and raw-to-ns conversion (collector side). */
#include "clock.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

uint32_t ht_clock_pick(void)
{
    const char *force = getenv("HEAPTRACE_CLOCK");
    if (force && strcmp(force, "monotonic") == 0) return HT_CLOCK_MONOTONIC;
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(0x80000007, &a, &b, &c, &d) || !(d & (1u << 8)))
        return HT_CLOCK_MONOTONIC; /* no invariant TSC */
    /* Invariant TSC (CPUID 0x80000007 EDX[8]): constant rate, runs in every
     * C-state, synchronised across cores by the hardware.  The kernel may
     * still prefer another clocksource (VMs often boot with tsc=unstable
     * and kvm-clock, itself TSC-based); HEAPTRACE_CLOCK=monotonic is the
     * escape hatch if the TSCs of a machine are known to disagree. */
    return HT_CLOCK_TSC;
#else
    return HT_CLOCK_MONOTONIC;
#endif
}

/* One (raw, mono) pair read as close together as possible. */
static void sample(uint32_t clock, uint64_t *raw, uint64_t *mono)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t r0 = ht_clock_read(clock);
        uint64_t m = ht_mono_ns();
        uint64_t r1 = ht_clock_read(clock);
        if (r1 - r0 < best) {
            best = r1 - r0;
            *raw = r0 + (r1 - r0) / 2;
            *mono = m;
        }
    }
}

void ht_clock_conv_init(ht_clock_conv *c, uint32_t clock)
{
    memset(c, 0, sizeof *c);
    c->clock = clock;
    sample(clock, &c->start_raw, &c->start_mono);
    c->start_real = ht_real_ns();
    c->rate = 1.0;
    if (clock == HT_CLOCK_TSC) {
        /* first estimate over ~100 us (start-up cost matters); the collector
         * refines it every few milliseconds with ht_clock_conv_update */
        uint64_t raw, mono;
        do sample(clock, &raw, &mono);
        while (mono - c->start_mono < 100000);
        c->rate = (double)(mono - c->start_mono) / (double)(raw - c->start_raw);
    }
    ht_clock_conv_segment(c, c->start_raw, 0, (uint64_t)(c->rate * 4294967296.0));
}

void ht_clock_conv_update(ht_clock_conv *c)
{
    if (c->clock != HT_CLOCK_TSC) return;
    uint64_t raw, mono;
    sample(c->clock, &raw, &mono);
    if (raw <= c->seg_raw || mono <= c->start_mono) return;
    /* start a new segment at `raw`, continuous with the old one, whose slope
     * steers towards CLOCK_MONOTONIC over the whole session so far */
    uint64_t ns_now = ht_clock_conv_ns(c, raw);
    double whole = (double)(mono - c->start_mono) / (double)(raw - c->start_raw);
    c->rate = whole;
    ht_clock_conv_segment(c, raw, ns_now, (uint64_t)(whole * 4294967296.0));
}
