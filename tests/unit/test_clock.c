/*
 * test_clock.c - the collector's raw-to-ns conversion (ht_clock_conv_ns,
 * common/clock.h): its 64-bit fast path must give exactly what the general
 * 128-bit formula gives, for readings within 2^31 ticks of the segment's
 * start, after or before it (the fast path; records older than a rate update
 * come before it), far before it, far after it,
 * and for multipliers of clocks slower than 1 GHz (no fast path); results
 * below 0 clamp to 0.  A wrong bound on the fast path (a product that
 * overflows 64 bits) or an off-by-one in its shift changes timestamps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/clock.h"
#include "test_util.h"

/* The general formula, written out independently. */
static uint64_t ref_ns(const ht_clock_conv *c, uint64_t raw)
{
    __int128 d = (__int128)(int64_t)(raw - c->seg_raw) * (__int128)c->mult;
    __int128 ns = (__int128)c->seg_ns + (d >> 32);
    return ns <= 0 ? 0 : (uint64_t)ns;
}

static void check_conv(ht_clock_conv *c, test_rng *rng)
{
    static const uint64_t edge[] = {0, 1, (1ull << 31) - 1, 1ull << 31, (1ull << 31) + 1, 1ull << 32,
                                    (1ull << 40) + 3, UINT64_MAX, UINT64_MAX - (1ull << 31),
                                    /* just before the start: the fast path too */
                                    (uint64_t)-2, (uint64_t)-((1ll << 31) - 1), (uint64_t)-(1ll << 31),
                                    (uint64_t)-((1ll << 31) + 1)};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
        uint64_t raw = c->seg_raw + edge[i];
        assert_int_equal(ht_clock_conv_ns(c, raw), ref_ns(c, raw));
    }
    for (int i = 0; i < 200000; i++) {
        uint64_t delta;
        switch (rng_below(rng, 5)) {
        case 0: delta = rng_below(rng, 1ull << 31); break;              /* the fast path */
        case 4: delta = (uint64_t)-(int64_t)rng_below(rng, 1ull << 31); break; /* ... before the start */
        case 1: delta = (uint64_t)-(int64_t)rng_below(rng, 1ull << 40); break; /* older readings */
        case 2: delta = rng_below(rng, 1ull << 50); break;              /* far after */
        default: delta = rng_next(rng); break;
        }
        uint64_t raw = c->seg_raw + delta;
        uint64_t got = ht_clock_conv_ns(c, raw), want = ref_ns(c, raw);
        if (got != want)
            fail_msg("mult %llu seg_raw %llu seg_ns %llu delta %llu: got %llu, want %llu",
                     (unsigned long long)c->mult, (unsigned long long)c->seg_raw,
                     (unsigned long long)c->seg_ns, (unsigned long long)delta, (unsigned long long)got,
                     (unsigned long long)want);
    }
}

static void test_conv_matches_general_formula(void **state)
{
    (void)state;
    test_rng rng = {test_seed("clock_conv")};
    /* 3 GHz, 2.5 GHz, 1 GHz exactly (mult 2^32: not the fast path), a slow
     * 100 MHz clock, and the fastest a 32.32 multiplier can say */
    static const uint64_t mults[] = {1431655765ull, 1717986918ull, 1ull << 32, 42949672960ull, 1, 4294967295ull};
    for (size_t m = 0; m < sizeof mults / sizeof mults[0]; m++) {
        for (int k = 0; k < 5; k++) {
            ht_clock_conv c;
            memset(&c, 0, sizeof c);
            c.clock = HT_CLOCK_TSC;
            /* k 4: a segment start at or past 2^62 ns (no fast path) */
            uint64_t seg_ns = k == 1 ? 0 : k == 4 ? (1ull << 62) + rng_below(&rng, 1ull << 40)
                                                  : rng_below(&rng, 1ull << 62);
            ht_clock_conv_segment(&c, k == 0 ? 0 : rng_next(&rng), seg_ns, mults[m]);
            check_conv(&c, &rng);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_matches_general_formula),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
