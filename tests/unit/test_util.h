/*
 * test_util.h - small helpers shared by the unit tests: a seeded PRNG
 * (splitmix64) so that every random test is reproducible, and the seed
 * policy: HT_TEST_SEED=<n> in the environment replays a run; otherwise a
 * fixed seed is used so CI runs are deterministic.  The seed in use is
 * printed so that a failure can be replayed.
 */
#ifndef HT_TEST_UTIL_H
#define HT_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct test_rng {
    uint64_t s;
} test_rng;

static inline uint64_t rng_next(test_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t rng_below(test_rng *r, uint64_t n) { return rng_next(r) % n; }

/* True with probability 1/n. */
static inline int rng_one_in(test_rng *r, uint64_t n) { return rng_below(r, n) == 0; }

static inline uint64_t test_seed(const char *test)
{
    const char *s = getenv("HT_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : 0x5eed0001ull;
    printf("# %s: seed %#llx (replay with HT_TEST_SEED=%#llx)\n", test,
           (unsigned long long)seed, (unsigned long long)seed);
    return seed;
}

/* A "nasty" 64-bit value: edges of the range, powers of two, small numbers,
 * or anything at all. */
static inline uint64_t rng_u64_edgy(test_rng *r)
{
    switch (rng_below(r, 8)) {
    case 0: return 0;
    case 1: return UINT64_MAX - rng_below(r, 3);
    case 2: return (uint64_t)1 << rng_below(r, 64);
    case 3: return ((uint64_t)1 << rng_below(r, 64)) - 1;
    case 4: return rng_below(r, 256);
    case 5: return (uint64_t)INT64_MAX + rng_below(r, 3) - 1;
    default: return rng_next(r);
    }
}

#endif
