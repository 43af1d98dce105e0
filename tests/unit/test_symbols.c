/*
 * test_symbols.c - the offline symbolizer against fixture programs with
 * known call chains (tests/unit/symbols_fixture/), one and two levels of
 * inlining among them.
 *
 * The fixture runs, records return addresses from known calls (one inside
 * an always_inline helper, two inside a library it then dlclose's) and
 * prints its module records (exec mapping, load bias, build id).  The test
 * registers those modules and checks every lookup for the exact function,
 * file and line; lines are found by their LINE_MARK_x comments in the
 * fixture sources, so edits there do not silently break the test.  Variants:
 * PIE and non-PIE, two processes and a shifted copy, stripped copies with a
 * debug file found by build id or by .gnu_debuglink, stripped copies without
 * any (module+offset only, or a .dynsym name only where it covers the
 * address), a build-id mismatch, a missing file, a sysroot, overlapping
 * registrations.  Also prints the cost of uncached and cached lookups.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <link.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analysis/symbols.h"

/* ---- the fixture's output ---- */

typedef struct fx_mod {
    char path[PATH_MAX];
    uint64_t start, end, off, bias;
    uint8_t bid[64];
    size_t bid_len;
} fx_mod;

typedef struct fx_run {
    uint32_t pid;
    fx_mod exe, lib;
    uint64_t pc[5];
    uint64_t fn_outer, fn_lib_exported, fn_main;
    int unloaded;
} fx_run;

static fx_run run_pie, run_pie2, run_nopie;
static char tmpdir[64];

static void parse_bid(fx_mod *m, const char *hex)
{
    m->bid_len = 0;
    if (!strcmp(hex, "-")) return;
    for (size_t i = 0; hex[2 * i] && hex[2 * i + 1] && i < sizeof m->bid; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        m->bid[m->bid_len++] = (uint8_t)v;
    }
}

static int run_fixture(const char *exe, fx_run *r)
{
    char cmd[3 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "'%s' '%s'", exe, FX_LIB);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    memset(r, 0, sizeof *r);
    char line[2 * PATH_MAX], a[64], b[PATH_MAX], hex[160];
    unsigned long long v[4];
    int fields = 0;
    while (fgets(line, sizeof line, p)) {
        unsigned pid;
        int slot, u;
        if (sscanf(line, "pid %u", &pid) == 1) {
            r->pid = pid;
            fields++;
        } else if (sscanf(line, "module %63s %4095s %llx %llx %llx %llx %159s", a, b, &v[0], &v[1], &v[2], &v[3],
                          hex) == 7) {
            fx_mod *m = !strcmp(a, "exe") ? &r->exe : &r->lib;
            snprintf(m->path, sizeof m->path, "%s", b);
            m->start = v[0], m->end = v[1], m->off = v[2], m->bias = v[3];
            parse_bid(m, hex);
            fields++;
        } else if (sscanf(line, "pc %d %llx", &slot, &v[0]) == 2 && slot >= 0 && slot < 5) {
            r->pc[slot] = v[0];
            fields++;
        } else if (sscanf(line, "fn %63s %llx", a, &v[0]) == 2) {
            if (!strcmp(a, "fx_outer")) r->fn_outer = v[0];
            if (!strcmp(a, "fxlib_exported")) r->fn_lib_exported = v[0];
            if (!strcmp(a, "main")) r->fn_main = v[0];
            fields++;
        } else if (sscanf(line, "unloaded %d", &u) == 1) {
            r->unloaded = u;
            fields++;
        }
    }
    int st = pclose(p);
    return st == 0 && fields == 1 + 2 + 5 + 3 + 1 ? 0 : -1;
}

/* The line of the LINE_MARK_<name> comment in a fixture source. */
static int mark_line(const char *src, const char *name)
{
    char path[PATH_MAX], tag[128], line[1024];
    snprintf(path, sizeof path, "%s/%s", FX_SRC_DIR, src);
    snprintf(tag, sizeof tag, "/* LINE_MARK_%s */", name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        if (strstr(line, tag)) {
            found = n;
            break;
        }
    }
    fclose(f);
    assert_true(found > 0);
    return found;
}

static ht_module module_of(const fx_mod *m, const char *path)
{
    ht_module hm = {.start = m->start, .end = m->end, .file_offset = m->off, .load_bias = m->bias,
                    .path = path ? path : m->path, .build_id = m->bid_len ? m->bid : NULL,
                    .build_id_len = m->bid_len};
    return hm;
}

static const char *base(const char *p)
{
    const char *s = p ? strrchr(p, '/') : NULL;
    return s ? s + 1 : p;
}

static void expect_frame(const ht_frame_sym *f, const char *fn, const char *file, int line, int inlined)
{
    if (fn) {
        assert_non_null(f->function);
        assert_string_equal(f->function, fn);
    } else {
        assert_null(f->function);
    }
    if (file) {
        assert_non_null(f->file);
        assert_string_equal(base(f->file), file);
    } else {
        assert_null(f->file);
    }
    if (line >= 0) assert_int_equal(f->line, line);
    assert_int_equal(f->inlined, inlined);
}

/* The known chains of a run's executable, from module `exe_path`. */
static void check_exe_chains(ht_symbolizer *s, uint32_t pid, const fx_run *r, uint64_t shift, const char *exe_path)
{
    ht_frame_sym f[8];
    uint64_t a = r->pc[0] - 1 + shift;
    int n = ht_sym_lookup(s, pid, a, f, 8);
    assert_int_equal(n, 2);
    expect_frame(&f[0], "fx_helper", "fx_main.c", mark_line("fx_main.c", "helper_call"), 1);
    expect_frame(&f[1], "fx_outer", "fx_main.c", mark_line("fx_main.c", "outer_call"), 0);
    for (int i = 0; i < n; i++) {
        assert_string_equal(f[i].module, exe_path);
        assert_int_equal(f[i].module_offset, r->pc[0] - 1 - r->exe.bias);
    }
    n = ht_sym_lookup(s, pid, r->pc[4] - 1 + shift, f, 8);
    assert_int_equal(n, 3);
    expect_frame(&f[0], "fx_deep_inner", "fx_main.c", mark_line("fx_main.c", "deep_inner"), 1);
    expect_frame(&f[1], "fx_deep_middle", "fx_main.c", mark_line("fx_main.c", "deep_middle"), 1);
    expect_frame(&f[2], "fx_deep", "fx_main.c", mark_line("fx_main.c", "deep_outer"), 0);
    n = ht_sym_lookup(s, pid, r->pc[1] - 1 + shift, f, 8);
    assert_int_equal(n, 1);
    expect_frame(&f[0], "fx_outer", "fx_main.c", mark_line("fx_main.c", "outer_direct"), 0);
    n = ht_sym_lookup(s, pid, r->fn_outer + shift, f, 8);
    assert_int_equal(n, 1);
    expect_frame(&f[0], "fx_outer", "fx_main.c", -1, 0);
    assert_true(f[0].line > 0);
    n = ht_sym_lookup(s, pid, r->fn_main + shift, f, 8);
    assert_int_equal(n, 1);
    expect_frame(&f[0], "main", "fx_main.c", -1, 0);
    /* max smaller than the chain: the innermost frames */
    n = ht_sym_lookup(s, pid, a, f, 1);
    assert_int_equal(n, 1);
    expect_frame(&f[0], "fx_helper", "fx_main.c", mark_line("fx_main.c", "helper_call"), 1);
}

static void check_lib_chains(ht_symbolizer *s, uint32_t pid, const fx_run *r, const char *lib_path)
{
    ht_frame_sym f[8];
    int n = ht_sym_lookup(s, pid, r->pc[2] - 1, f, 8);
    assert_int_equal(n, 1);
    expect_frame(&f[0], "fxlib_exported", "fx_lib.c", mark_line("fx_lib.c", "lib_call"), 0);
    assert_string_equal(f[0].module, lib_path);
    assert_int_equal(f[0].module_offset, r->pc[2] - 1 - r->lib.bias);
    n = ht_sym_lookup(s, pid, r->pc[3] - 1, f, 8);
    assert_int_equal(n, 1);
    expect_frame(&f[0], "fxlib_hidden", "fx_lib.c", mark_line("fx_lib.c", "lib_hidden"), 0);
}

/* ---- setup ---- */

static int rm_tree(const char *path)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    return system(cmd);
}

static int group_setup(void **state)
{
    if (run_fixture(FX_PIE, &run_pie) || run_fixture(FX_PIE, &run_pie2) || run_fixture(FX_NOPIE, &run_nopie)) {
        fprintf(stderr, "fixture runs failed\n");
        return -1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ht_test_symbols.XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    return 0;
}

static int group_teardown(void **state)
{
    if (tmpdir[0]) rm_tree(tmpdir);
    return 0;
}

/* DIR/.build-id/xx/rest.debug -> target */
static void link_build_id(const char *dir, const fx_mod *m, const char *target)
{
    char p[PATH_MAX], hex[140];
    for (size_t i = 0; i < m->bid_len; i++) sprintf(hex + 2 * i, "%02x", m->bid[i]);
    snprintf(p, sizeof p, "%s/.build-id", dir);
    assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
    assert_true(mkdir(p, 0700) == 0 || errno == EEXIST);
    snprintf(p, sizeof p, "%s/.build-id/%.2s", dir, hex);
    assert_true(mkdir(p, 0700) == 0 || errno == EEXIST);
    snprintf(p, sizeof p, "%s/.build-id/%.2s/%s.debug", dir, hex, hex + 2);
    unlink(p);
    assert_int_equal(symlink(target, p), 0);
}

/* ---- tests ---- */

static void test_fixture_sane(void **state)
{
    assert_true(run_pie.exe.bias != 0);
    assert_int_equal(run_nopie.exe.bias, 0);
    assert_true(run_pie.exe.bid_len >= 16 && run_pie.lib.bid_len >= 16);
    assert_int_equal(run_pie.unloaded, 1);
    assert_true(run_pie.pid != run_pie2.pid);
    /* fxlib_hidden follows fxlib_exported, so the stripped-library test
     * below has a preceding exported symbol to be fooled by */
    assert_true(run_pie.pc[3] > run_pie.fn_lib_exported);
}

static void test_pie_inlined(void **state)
{
    ht_symbolizer *s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    ht_module m = module_of(&run_pie.exe, NULL);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    check_exe_chains(s, run_pie.pid, &run_pie, 0, run_pie.exe.path);
    /* not covered: before and after the module, another pid */
    ht_frame_sym f[4];
    assert_int_equal(ht_sym_lookup(s, run_pie.pid, run_pie.exe.start - 1, f, 4), 0);
    assert_int_equal(ht_sym_lookup(s, run_pie.pid, run_pie.exe.end, f, 4), 0);
    assert_int_equal(ht_sym_lookup(s, run_pie.pid + 1, run_pie.pc[0] - 1, f, 4), 0);
    assert_int_equal(ht_sym_lookup(s, run_pie.pid, run_pie.pc[0] - 1, f, 0), 0);
    ht_sym_free(s);
}

static void test_nopie(void **state)
{
    ht_symbolizer *s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    ht_module m = module_of(&run_nopie.exe, NULL);
    assert_int_equal(ht_sym_add_module(s, run_nopie.pid, &m), 0);
    check_exe_chains(s, run_nopie.pid, &run_nopie, 0, run_nopie.exe.path);
    ht_sym_free(s);
}

static void test_dlclosed_library(void **state)
{
    ht_symbolizer *s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    ht_module me = module_of(&run_pie.exe, NULL), ml = module_of(&run_pie.lib, NULL);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &me), 0);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &ml), 0);
    check_lib_chains(s, run_pie.pid, &run_pie, run_pie.lib.path);
    check_exe_chains(s, run_pie.pid, &run_pie, 0, run_pie.exe.path);
    ht_sym_free(s);
}

/* Same objects in two processes (and a third, synthetic one loaded 256 MiB
 * higher): independent maps, the same answers. */
static void test_processes(void **state)
{
    ht_symbolizer *s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    const uint64_t shift = 0x10000000;
    const uint32_t pid3 = 0x7fffffff;
    ht_module m;
    m = module_of(&run_pie.exe, NULL);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    m = module_of(&run_pie2.exe, NULL);
    assert_int_equal(ht_sym_add_module(s, run_pie2.pid, &m), 0);
    m = module_of(&run_pie.exe, NULL);
    m.start += shift, m.end += shift, m.load_bias += shift;
    assert_int_equal(ht_sym_add_module(s, pid3, &m), 0);
    m = module_of(&run_pie2.lib, NULL);
    assert_int_equal(ht_sym_add_module(s, run_pie2.pid, &m), 0);
    m = module_of(&run_pie.lib, NULL);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    for (int round = 0; round < 2; round++) { /* the second round is served by the cache */
        check_exe_chains(s, run_pie.pid, &run_pie, 0, run_pie.exe.path);
        check_exe_chains(s, run_pie2.pid, &run_pie2, 0, run_pie2.exe.path);
        check_exe_chains(s, pid3, &run_pie, shift, run_pie.exe.path);
        check_lib_chains(s, run_pie2.pid, &run_pie2, run_pie2.lib.path);
        check_lib_chains(s, run_pie.pid, &run_pie, run_pie.lib.path);
    }
    if (run_pie.exe.bias == run_pie2.exe.bias) printf("# note: ASLR is off, both runs share the load bias\n");
    ht_sym_free(s);
}

static void test_stripped_build_id(void **state)
{
    char dbgdir[128], stripped[PATH_MAX], dbg[PATH_MAX];
    snprintf(dbgdir, sizeof dbgdir, "%s/debug-bid", tmpdir);
    snprintf(stripped, sizeof stripped, "%s/symfx_pie.stripped", FX_DIR);
    snprintf(dbg, sizeof dbg, "%s/symfx_pie.dbg", FX_DIR);
    link_build_id(dbgdir, &run_pie.exe, dbg);

    ht_symbolizer *s = ht_sym_new(NULL, dbgdir);
    assert_non_null(s);
    ht_module m = module_of(&run_pie.exe, stripped);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    check_exe_chains(s, run_pie.pid, &run_pie, 0, stripped);
    ht_sym_free(s);

    /* without the debug directory: module+offset only */
    s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    ht_frame_sym f[4];
    const uint64_t addrs[] = {run_pie.pc[0] - 1, run_pie.pc[1] - 1, run_pie.fn_outer, run_pie.fn_main};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        assert_int_equal(ht_sym_lookup(s, run_pie.pid, addrs[i], f, 4), 1);
        expect_frame(&f[0], NULL, NULL, 0, 0);
        assert_string_equal(f[0].module, stripped);
        assert_int_equal(f[0].module_offset, addrs[i] - run_pie.exe.bias);
    }
    ht_sym_free(s);
}

static void test_stripped_debuglink(void **state)
{
    char linkdir[PATH_MAX], linked[PATH_MAX];
    snprintf(linkdir, sizeof linkdir, "%s/linkdir", FX_DIR);
    snprintf(linked, sizeof linked, "%s/libsymfx.linked.so", FX_DIR);
    ht_symbolizer *s = ht_sym_new(NULL, linkdir);
    assert_non_null(s);
    ht_module m = module_of(&run_pie.lib, linked);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    check_lib_chains(s, run_pie.pid, &run_pie, linked);
    ht_sym_free(s);
}

/* .dynsym only: the exported function is named where it covers the
 * address; the hidden one after it is not named at all. */
static void test_stripped_no_debug(void **state)
{
    char stripped[PATH_MAX];
    snprintf(stripped, sizeof stripped, "%s/libsymfx.stripped.so", FX_DIR);
    ht_symbolizer *s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    ht_module m = module_of(&run_pie.lib, stripped);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    ht_frame_sym f[4];
    assert_int_equal(ht_sym_lookup(s, run_pie.pid, run_pie.pc[2] - 1, f, 4), 1);
    expect_frame(&f[0], "fxlib_exported", NULL, 0, 0);
    assert_int_equal(ht_sym_lookup(s, run_pie.pid, run_pie.fn_lib_exported, f, 4), 1);
    expect_frame(&f[0], "fxlib_exported", NULL, 0, 0);
    assert_int_equal(ht_sym_lookup(s, run_pie.pid, run_pie.pc[3] - 1, f, 4), 1);
    expect_frame(&f[0], NULL, NULL, 0, 0);
    assert_string_equal(f[0].module, stripped);
    assert_int_equal(f[0].module_offset, run_pie.pc[3] - 1 - run_pie.lib.bias);
    ht_sym_free(s);
}

/* A file whose build id is not the module's, and a missing file. */
static void test_mismatch_and_missing(void **state)
{
    ht_symbolizer *s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    ht_module m = module_of(&run_pie.exe, NULL);
    m.build_id = run_pie.lib.bid; /* the library's id: not this file */
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    ht_frame_sym f[4];
    assert_int_equal(ht_sym_lookup(s, run_pie.pid, run_pie.pc[1] - 1, f, 4), 1);
    expect_frame(&f[0], NULL, NULL, 0, 0);
    assert_string_equal(f[0].module, run_pie.exe.path);

    m = module_of(&run_pie.lib, "/nonexistent/heaptrace/libgone.so");
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    assert_int_equal(ht_sym_lookup(s, run_pie.pid, run_pie.pc[2] - 1, f, 4), 1);
    expect_frame(&f[0], NULL, NULL, 0, 0);
    assert_string_equal(f[0].module, "/nonexistent/heaptrace/libgone.so");
    assert_int_equal(f[0].module_offset, run_pie.pc[2] - 1 - run_pie.lib.bias);

    m.path = NULL;
    assert_int_equal(ht_sym_add_module(s, 1, &m), -EINVAL);
    m.path = "x";
    m.end = m.start;
    assert_int_equal(ht_sym_add_module(s, 1, &m), -EINVAL);
    ht_sym_free(s);
}

/* The library's file is gone, but its debug file is in the debug directory
 * under its build id: it serves as the object. */
static void test_gone_but_debug_file(void **state)
{
    char dbgdir[128], dbg[PATH_MAX];
    snprintf(dbgdir, sizeof dbgdir, "%s/debug-lib", tmpdir);
    snprintf(dbg, sizeof dbg, "%s/linkdir/libsymfx-linked.debug", FX_DIR);
    link_build_id(dbgdir, &run_pie.lib, dbg);
    ht_symbolizer *s = ht_sym_new(NULL, dbgdir);
    assert_non_null(s);
    ht_module m = module_of(&run_pie.lib, "/nonexistent/heaptrace/libsymfx.so");
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    check_lib_chains(s, run_pie.pid, &run_pie, "/nonexistent/heaptrace/libsymfx.so");
    ht_sym_free(s);
}

static void test_sysroot(void **state)
{
    char root[128], p[PATH_MAX];
    snprintf(root, sizeof root, "%s/sysroot", tmpdir);
    const char *dirs[] = {"", "/opt", "/opt/fx"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", root, dirs[i]);
        assert_true(mkdir(p, 0700) == 0 || errno == EEXIST);
    }
    snprintf(p, sizeof p, "%s/opt/fx/libsymfx.so", root);
    unlink(p);
    assert_int_equal(symlink(FX_LIB, p), 0);

    ht_symbolizer *s = ht_sym_new(root, NULL);
    assert_non_null(s);
    ht_module m = module_of(&run_pie.lib, "/opt/fx/libsymfx.so");
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    check_lib_chains(s, run_pie.pid, &run_pie, "/opt/fx/libsymfx.so");
    ht_sym_free(s);

    /* a stripped library whose .gnu_debuglink file is where the other
     * machine keeps it: SYSROOT/usr/lib/debug/<the library's directory> */
    const char *ddirs[] = {"/usr", "/usr/lib", "/usr/lib/debug", "/usr/lib/debug/opt", "/usr/lib/debug/opt/fx"};
    for (size_t i = 0; i < sizeof ddirs / sizeof *ddirs; i++) {
        snprintf(p, sizeof p, "%s%s", root, ddirs[i]);
        assert_true(mkdir(p, 0700) == 0 || errno == EEXIST);
    }
    char target[PATH_MAX];
    snprintf(p, sizeof p, "%s/opt/fx/libsymfx.linked.so", root);
    snprintf(target, sizeof target, "%s/libsymfx.linked.so", FX_DIR);
    unlink(p);
    assert_int_equal(symlink(target, p), 0);
    snprintf(p, sizeof p, "%s/usr/lib/debug/opt/fx/libsymfx-linked.debug", root);
    snprintf(target, sizeof target, "%s/linkdir/libsymfx-linked.debug", FX_DIR);
    unlink(p);
    assert_int_equal(symlink(target, p), 0);
    s = ht_sym_new(root, NULL);
    assert_non_null(s);
    m = module_of(&run_pie.lib, "/opt/fx/libsymfx.linked.so");
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    check_lib_chains(s, run_pie.pid, &run_pie, "/opt/fx/libsymfx.linked.so");
    ht_sym_free(s);
}

/* A later module replaces the part of an earlier one it overlaps. */
static void test_overlap(void **state)
{
    ht_symbolizer *s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    const fx_mod *e = &run_pie.exe;
    ht_module old = {.start = e->start - 0x1000, .end = e->end + 0x1000, .path = "/nonexistent/old"};
    assert_int_equal(ht_sym_add_module(s, 7, &old), 0);
    ht_module m = module_of(e, NULL);
    assert_int_equal(ht_sym_add_module(s, 7, &m), 0);
    check_exe_chains(s, 7, &run_pie, 0, e->path);
    ht_frame_sym f[4];
    assert_int_equal(ht_sym_lookup(s, 7, e->start - 1, f, 4), 1);
    assert_string_equal(f[0].module, "/nonexistent/old");
    assert_int_equal(f[0].module_offset, e->start - 1);
    assert_int_equal(ht_sym_lookup(s, 7, e->end, f, 4), 1);
    assert_string_equal(f[0].module, "/nonexistent/old");
    assert_int_equal(ht_sym_lookup(s, 7, e->end + 0x1000, f, 4), 0);
    /* and one that covers several older ones entirely */
    ht_module big = {.start = e->start - 0x800, .end = e->end + 0x2000, .path = "/nonexistent/big"};
    assert_int_equal(ht_sym_add_module(s, 7, &big), 0);
    assert_int_equal(ht_sym_lookup(s, 7, run_pie.pc[0] - 1, f, 4), 1);
    assert_string_equal(f[0].module, "/nonexistent/big");
    assert_int_equal(ht_sym_lookup(s, 7, e->start - 0x801, f, 4), 1);
    assert_string_equal(f[0].module, "/nonexistent/old");
    assert_int_equal(ht_sym_lookup(s, 7, e->end + 0x1fff, f, 4), 1);
    assert_string_equal(f[0].module, "/nonexistent/big");
    ht_sym_free(s);
}

/* The test program itself, symbolized in-process. */
__attribute__((noinline)) static void *self_marker(void)
{
    return __builtin_return_address(0);
}

typedef struct self_info {
    uint64_t bias;
    uint64_t lo, hi;
} self_info;

static int self_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    self_info *si = arg;
    if (info->dlpi_name && info->dlpi_name[0]) return 0;
    si->bias = info->dlpi_addr;
    si->lo = UINT64_MAX;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uint64_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < si->lo) si->lo = a;
        if (a + ph->p_memsz > si->hi) si->hi = a + ph->p_memsz;
    }
    return 1;
}

static void test_self(void **state)
{
    self_info si = {0};
    dl_iterate_phdr(self_cb, &si);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(n > 0);
    exe[n] = 0;
    ht_symbolizer *s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    ht_module m = {.start = si.lo, .end = si.hi, .load_bias = si.bias, .path = exe};
    assert_int_equal(ht_sym_add_module(s, (uint32_t)getpid(), &m), 0);
    ht_frame_sym f[8];
    int k = ht_sym_lookup(s, (uint32_t)getpid(), (uint64_t)(uintptr_t)self_marker() - 1, f, 8);
    assert_true(k >= 1);
    /* the return address lies in test_self (or in what it was inlined into) */
    assert_non_null(f[k - 1].function);
    assert_string_equal(f[k - 1].function, "test_self");
    assert_non_null(f[0].file); /* needs -g: the build types but Release have it */
    assert_string_equal(base(f[0].file), "test_symbols.c");
    ht_sym_free(s);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Every 4th byte of the executable mapping, uncached then cached; the
 * answers must be the same (the same strings) both times. */
static void test_cache_cost(void **state)
{
    const fx_mod *e = &run_pie.exe;
    size_t count = (size_t)(e->end - e->start) / 4;
    ht_frame_sym(*first)[4] = calloc(count, sizeof *first);
    int *nfirst = calloc(count, sizeof *nfirst);
    assert_non_null(first);
    assert_non_null(nfirst);

    double t0 = now_us();
    ht_symbolizer *s = ht_sym_new(NULL, NULL);
    assert_non_null(s);
    ht_module m = module_of(e, NULL);
    assert_int_equal(ht_sym_add_module(s, run_pie.pid, &m), 0);
    ht_frame_sym f[4];
    assert_int_equal(ht_sym_lookup(s, run_pie.pid, run_pie.fn_main, f, 4), 1); /* opens the file */
    double t1 = now_us();
    size_t named = 0;
    for (size_t i = 0; i < count; i++) {
        nfirst[i] = ht_sym_lookup(s, run_pie.pid, e->start + 4 * i, first[i], 4);
        named += first[i][0].function != NULL;
    }
    double t2 = now_us();
    const int reps = 20;
    for (int r = 0; r < reps; r++)
        for (size_t i = 0; i < count; i++) {
            int k = ht_sym_lookup(s, run_pie.pid, e->start + 4 * i, f, 4);
            assert_int_equal(k, nfirst[i]);
            assert_true(k >= 1);
            assert_ptr_equal(f[0].function, first[i][0].function);
            assert_ptr_equal(f[0].file, first[i][0].file);
            assert_int_equal(f[0].line, first[i][0].line);
        }
    double t3 = now_us();
    printf("# symbolizer: first lookup (opens the file) %.0f us; %zu addresses (%zu named): "
           "uncached %.2f us/lookup, cached %.3f us/lookup\n",
           t1 - t0, count, named, (t2 - t1) / (double)count, (t3 - t2) / (double)(count * reps));
    assert_true(named > count / 4);
    ht_sym_free(s);
    free(first);
    free(nfirst);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_sane),
        cmocka_unit_test(test_pie_inlined),
        cmocka_unit_test(test_nopie),
        cmocka_unit_test(test_dlclosed_library),
        cmocka_unit_test(test_processes),
        cmocka_unit_test(test_stripped_build_id),
        cmocka_unit_test(test_stripped_debuglink),
        cmocka_unit_test(test_stripped_no_debug),
        cmocka_unit_test(test_mismatch_and_missing),
        cmocka_unit_test(test_gone_but_debug_file),
        cmocka_unit_test(test_sysroot),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_self),
        cmocka_unit_test(test_cache_cost),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
