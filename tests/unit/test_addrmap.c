/*
 * test_addrmap.c - the live-block table against a trivially correct
 * reference: a pool of distinct keys (sorted, found by binary search) with
 * a live flag and the data per key.
 *
 * Random put / overwrite / get / delete streams, with a large share of keys
 * chosen so that their home slots fall into a few narrow windows (one at
 * the very end of the table, so clusters wrap around to slot 0): this is
 * where linear probing with backward-shift deletion goes wrong if it is
 * going to.  After every operation the count must equal the reference's;
 * periodically every live key must be found with its data, dead and foreign
 * keys must not be found, and every used slot must hold a live key and be
 * the slot a lookup of that key returns (no orphaned or duplicated entries).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "analysis/addrmap.h"
#include "test_util.h"

/* ---- keys ---- */

/* A copy of addrmap.c's hash, used only to pick keys that collide.  If the
 * map's hash changes, test_hash_copy_matches fails: update this copy so
 * that the collision tests keep colliding. */
static uint64_t map_hash(uint32_t pid, uint32_t heap, uint64_t addr)
{
    uint64_t h = addr ^ ((uint64_t)pid << 32 | heap) * 0x9e3779b97f4a7c15ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

typedef struct key {
    uint32_t pid, heap;
    uint64_t addr;
} key;

static int key_cmp(const void *a, const void *b)
{
    const key *x = a, *y = b;
    if (x->pid != y->pid) return x->pid < y->pid ? -1 : 1;
    if (x->heap != y->heap) return x->heap < y->heap ? -1 : 1;
    if (x->addr != y->addr) return x->addr < y->addr ? -1 : 1;
    return 0;
}

/* A random key, with realistic and edge-case shapes mixed in. */
static key random_key(test_rng *rng)
{
    key k;
    k.pid = (uint32_t)(rng_one_in(rng, 4) ? rng_next(rng) : 100 + rng_below(rng, 3));
    k.heap = (uint32_t)(rng_one_in(rng, 4) ? rng_next(rng) : 1 + rng_below(rng, 3));
    switch (rng_below(rng, 4)) {
    case 0: k.addr = 0x7f0000000000ull + rng_below(rng, 1 << 20) * 16; break; /* heap-like */
    case 1: k.addr = rng_u64_edgy(rng); break;
    default: k.addr = rng_next(rng); break;
    }
    return k;
}

/* A key whose hash has its low 16 bits inside [lo, lo + width) (mod 2^16):
 * for every table capacity up to 64 Ki slots these keys share a small
 * window of home slots; lo near 0xffff puts the window at the end of the
 * table so that clusters wrap around to slot 0. */
static key colliding_key(test_rng *rng, uint32_t lo, uint32_t width)
{
    for (;;) {
        key k = {100 + (uint32_t)rng_below(rng, 3), 1 + (uint32_t)rng_below(rng, 2), rng_next(rng)};
        if (rng_one_in(rng, 8)) k.addr &= 0xfffffffffff0ull; /* heap-like */
        uint32_t low = (uint32_t)(map_hash(k.pid, k.heap, k.addr) & 0xffff);
        if (((low - lo) & 0xffff) < width) return k;
    }
}

/* ---- the reference ----
 * All keys of a run come from a pool of distinct keys, sorted so that any
 * key can be located by binary search.  The reference keeps, per pool
 * index, whether the key is live and its data, plus the list of live
 * indices (for picking a random live key to delete). */

typedef struct ref {
    key *pool;
    size_t n;          /* pool size */
    uint8_t *live;
    uint64_t *size, *ts;
    uint8_t *api;
    size_t *list, *pos; /* live indices; pos[i] = where i is in list */
    size_t nlive;
} ref;

/* Builds a reference over `n` keys (duplicates removed). */
static void ref_init(ref *r, key *keys, size_t n)
{
    memset(r, 0, sizeof *r);
    qsort(keys, n, sizeof *keys, key_cmp);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || key_cmp(&keys[u - 1], &keys[i]) != 0) keys[u++] = keys[i];
    r->pool = keys;
    r->n = u;
    r->live = calloc(u, 1);
    r->size = calloc(u, sizeof *r->size);
    r->ts = calloc(u, sizeof *r->ts);
    r->api = calloc(u, 1);
    r->list = calloc(u, sizeof *r->list);
    r->pos = calloc(u, sizeof *r->pos);
    assert_true(r->live && r->size && r->ts && r->api && r->list && r->pos);
}

static void ref_free(ref *r)
{
    free(r->live);
    free(r->size);
    free(r->ts);
    free(r->api);
    free(r->list);
    free(r->pos);
    memset(r, 0, sizeof *r);
}

/* Pool index of a key, or SIZE_MAX if it is not in the pool. */
static size_t ref_index(const ref *r, uint32_t pid, uint32_t heap, uint64_t addr)
{
    key k = {pid, heap, addr};
    const key *f = bsearch(&k, r->pool, r->n, sizeof k, key_cmp);
    return f ? (size_t)(f - r->pool) : SIZE_MAX;
}

/* ---- checks ---- */

static void check_full(ht_addrmap *m, const ref *r, test_rng *rng)
{
    assert_int_equal(m->count, r->nlive);
    for (size_t j = 0; j < r->nlive; j++) {
        size_t i = r->list[j];
        const key *k = &r->pool[i];
        ht_block *b = ht_addrmap_get(m, k->pid, k->heap, k->addr);
        assert_non_null(b);
        assert_true(b->used);
        assert_int_equal(b->pid, k->pid);
        assert_int_equal(b->heap, k->heap);
        assert_int_equal(b->addr, k->addr);
        assert_int_equal(b->size, r->size[i]);
        assert_int_equal(b->ts, r->ts[i]);
        assert_int_equal(b->api, r->api[i]);
    }
    /* every used slot holds a live key and is the one a lookup finds */
    size_t used = 0;
    for (size_t j = 0; j < m->cap; j++) {
        ht_block *b = &m->slots[j];
        if (!b->used) continue;
        used++;
        size_t i = ref_index(r, b->pid, b->heap, b->addr);
        assert_true(i != SIZE_MAX && r->live[i]);
        assert_ptr_equal(ht_addrmap_get(m, b->pid, b->heap, b->addr), b);
    }
    assert_int_equal(used, r->nlive);
    /* dead pool keys and foreign keys are absent */
    for (int x = 0; x < 64; x++) {
        size_t i = (size_t)rng_below(rng, r->n);
        if (!r->live[i]) assert_null(ht_addrmap_get(m, r->pool[i].pid, r->pool[i].heap, r->pool[i].addr));
        key k = random_key(rng);
        if (ref_index(r, k.pid, k.heap, k.addr) == SIZE_MAX)
            assert_null(ht_addrmap_get(m, k.pid, k.heap, k.addr));
    }
}

/* Put pool key i (new or overwrite) and give it fresh data. */
static void do_put(ht_addrmap *m, ref *r, size_t i, test_rng *rng)
{
    const key *k = &r->pool[i];
    int existed = -1;
    ht_block *b = ht_addrmap_put(m, k->pid, k->heap, k->addr, &existed);
    assert_non_null(b);
    assert_int_equal(existed, r->live[i]);
    assert_int_equal(b->pid, k->pid);
    assert_int_equal(b->heap, k->heap);
    assert_int_equal(b->addr, k->addr);
    if (r->live[i]) {
        /* an overwrite keeps the old data until the caller changes it */
        assert_int_equal(b->size, r->size[i]);
        assert_int_equal(b->ts, r->ts[i]);
        assert_int_equal(b->api, r->api[i]);
    } else {
        assert_int_equal(b->size, 0);
        assert_int_equal(b->ts, 0);
        r->live[i] = 1;
        r->pos[i] = r->nlive;
        r->list[r->nlive++] = i;
    }
    b->size = r->size[i] = rng_u64_edgy(rng);
    b->ts = r->ts[i] = rng_next(rng);
    b->api = r->api[i] = (uint8_t)rng_below(rng, 16);
    assert_int_equal(m->count, r->nlive);
}

/* Delete the j-th live key. */
static void do_del(ht_addrmap *m, ref *r, size_t j)
{
    size_t i = r->list[j];
    const key *k = &r->pool[i];
    ht_block *b = ht_addrmap_get(m, k->pid, k->heap, k->addr);
    assert_non_null(b);
    ht_block old = ht_addrmap_del(m, b);
    assert_int_equal(old.addr, k->addr);
    assert_int_equal(old.pid, k->pid);
    assert_int_equal(old.heap, k->heap);
    assert_int_equal(old.size, r->size[i]);
    assert_int_equal(old.ts, r->ts[i]);
    assert_int_equal(old.api, r->api[i]);
    r->live[i] = 0;
    size_t last = r->list[--r->nlive];
    r->list[j] = last;
    r->pos[last] = j;
    assert_int_equal(m->count, r->nlive);
    assert_null(ht_addrmap_get(m, k->pid, k->heap, k->addr));
}

/* ---- tests ---- */

static void test_hash_copy_matches(void **state)
{
    (void)state;
    test_rng rng = {test_seed("hash_copy_matches")};
    for (int i = 0; i < 200; i++) {
        ht_addrmap m;
        ht_addrmap_init(&m);
        key k = random_key(&rng);
        int existed;
        ht_block *b = ht_addrmap_put(&m, k.pid, k.heap, k.addr, &existed);
        assert_non_null(b);
        /* the first key of an empty table sits in its home slot */
        assert_int_equal((size_t)(b - m.slots), map_hash(k.pid, k.heap, k.addr) & (m.cap - 1));
        ht_addrmap_free(&m);
    }
}

static void test_empty(void **state)
{
    (void)state;
    ht_addrmap m;
    ht_addrmap_init(&m);
    assert_int_equal(m.count, 0);
    assert_null(ht_addrmap_get(&m, 1, 1, 0));
    assert_null(ht_addrmap_get(&m, 0, 0, UINT64_MAX));
    int existed = -1;
    ht_block *b = ht_addrmap_put(&m, 0, 0, 0, &existed);
    assert_non_null(b);
    assert_int_equal(existed, 0);
    assert_int_equal(m.count, 1);
    assert_ptr_equal(ht_addrmap_get(&m, 0, 0, 0), b);
    assert_null(ht_addrmap_get(&m, 0, 1, 0));
    assert_null(ht_addrmap_get(&m, 1, 0, 0));
    ht_addrmap_del(&m, b);
    assert_int_equal(m.count, 0);
    assert_null(ht_addrmap_get(&m, 0, 0, 0));
    ht_addrmap_free(&m);
}

/* Same address under different (pid, heap) are different blocks. */
static void test_key_parts(void **state)
{
    (void)state;
    ht_addrmap m;
    ht_addrmap_init(&m);
    int existed;
    for (uint32_t pid = 0; pid < 8; pid++)
        for (uint32_t heap = 0; heap < 8; heap++) {
            ht_block *b = ht_addrmap_put(&m, pid, heap, 0x1000, &existed);
            assert_non_null(b);
            assert_int_equal(existed, 0);
            b->size = pid * 8 + heap;
        }
    assert_int_equal(m.count, 64);
    for (uint32_t pid = 0; pid < 8; pid++)
        for (uint32_t heap = 0; heap < 8; heap++) {
            ht_block *b = ht_addrmap_get(&m, pid, heap, 0x1000);
            assert_non_null(b);
            assert_int_equal(b->size, pid * 8 + heap);
        }
    ht_addrmap_free(&m);
}

/* Random operations on a mix of random and colliding keys. */
static void run_random(uint64_t seed, size_t ops, size_t pool_n, unsigned collide_pct)
{
    test_rng rng = {seed};
    ht_addrmap m;
    ht_addrmap_init(&m);
    /* a fixed pool of keys so that puts, re-puts and deletes meet */
    key *pool = malloc(pool_n * sizeof *pool);
    assert_non_null(pool);
    static const uint32_t windows[] = {0xfff8, 0x0000, 0x0400, 0x8000};
    for (size_t i = 0; i < pool_n; i++) {
        if (rng_below(&rng, 100) < collide_pct)
            pool[i] = colliding_key(&rng, windows[rng_below(&rng, 4)], 16);
        else
            pool[i] = random_key(&rng);
    }
    ref r;
    ref_init(&r, pool, pool_n);
    /* phases: grow, churn, shrink (heavy deletion inside the clusters), regrow */
    size_t phase_len = ops / 4;
    for (size_t op = 0; op < ops; op++) {
        unsigned phase = (unsigned)(op / phase_len);
        unsigned put_pct = phase == 0 ? 80 : phase == 1 ? 50 : phase == 2 ? 20 : 65;
        unsigned pick = (unsigned)rng_below(&rng, 100);
        if (pick < put_pct || r.nlive == 0) {
            do_put(&m, &r, (size_t)rng_below(&rng, r.n), &rng);
        } else if (pick < put_pct + (100 - put_pct) * 3 / 4) {
            do_del(&m, &r, (size_t)rng_below(&rng, r.nlive));
        } else {
            /* lookups of pool keys, live or not */
            size_t i = (size_t)rng_below(&rng, r.n);
            ht_block *b = ht_addrmap_get(&m, pool[i].pid, pool[i].heap, pool[i].addr);
            if (r.live[i]) {
                assert_non_null(b);
                assert_int_equal(b->size, r.size[i]);
            } else {
                assert_null(b);
            }
        }
        if ((op & 4095) == 0) check_full(&m, &r, &rng);
    }
    check_full(&m, &r, &rng);
    /* delete everything, in random order */
    while (r.nlive) do_del(&m, &r, (size_t)rng_below(&rng, r.nlive));
    check_full(&m, &r, &rng);
    for (size_t j = 0; j < m.cap; j++) assert_false(m.slots[j].used);
    ref_free(&r);
    free(pool);
    ht_addrmap_free(&m);
}

static void test_random_mixed(void **state)
{
    (void)state;
    run_random(test_seed("random_mixed"), 400000, 20000, 10);
}

/* Almost every key collides: four long clusters, one wrapping around. */
static void test_random_clustered(void **state)
{
    (void)state;
    run_random(test_seed("random_clustered") ^ 0xc1, 150000, 4000, 95);
}

/* Deletion inside one dense cluster that wraps around the end of the
 * table, checking everything after every few steps. */
static void test_wrapping_cluster(void **state)
{
    (void)state;
    test_rng rng = {test_seed("wrapping_cluster") ^ 0x77};
    enum { POOL = 1400 };
    key *pool = malloc(POOL * sizeof *pool);
    assert_non_null(pool);
    /* homes in the last 8 and the first 8 slots of the table */
    for (int i = 0; i < POOL; i++) pool[i] = colliding_key(&rng, 0xfff8, 16);
    ref r;
    ref_init(&r, pool, POOL);
    assert_true(r.n > 600);
    for (int round = 0; round < 40; round++) {
        ht_addrmap m;
        ht_addrmap_init(&m);
        /* 600 keys into 1024 slots: one run of ~600 slots across the wrap */
        while (r.nlive < 600) do_put(&m, &r, (size_t)rng_below(&rng, r.n), &rng);
        assert_int_equal(m.cap, 1024);
        check_full(&m, &r, &rng);
        while (r.nlive > 0) {
            do_del(&m, &r, (size_t)rng_below(&rng, r.nlive));
            if (r.nlive % 7 == 0) check_full(&m, &r, &rng);
            if (rng_one_in(&rng, 3)) do_put(&m, &r, (size_t)rng_below(&rng, r.n), &rng);
            if (rng_one_in(&rng, 400)) break;
        }
        check_full(&m, &r, &rng);
        /* start the next round from an empty reference */
        while (r.nlive) {
            size_t i = r.list[--r.nlive];
            r.live[i] = 0;
        }
        ht_addrmap_free(&m);
    }
    ref_free(&r);
    free(pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_copy_matches),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_key_parts),
        cmocka_unit_test(test_random_mixed),
        cmocka_unit_test(test_random_clustered),
        cmocka_unit_test(test_wrapping_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
