/*
 * test_ctl.c - where control endpoints live (common/ctl.c): the directory
 * chosen from the environment, its privacy check (a directory others can
 * enter, or that is not a directory, is refused), and socket paths that
 * would not fit sun_path are refused rather than cut.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ctl.h"

static void test_dir_name(void **st)
{
    (void)st;
    char b[256];
    assert_int_equal(ht_ctl_dir_name(b, sizeof b, "/x/ht", "/run/user/5", 5), 0);
    assert_string_equal(b, "/x/ht"); /* HEAPTRACE_RUNTIME_DIR first */
    assert_int_equal(ht_ctl_dir_name(b, sizeof b, "", "/run/user/5", 5), 0);
    assert_string_equal(b, "/run/user/5/heaptrace");
    assert_int_equal(ht_ctl_dir_name(b, sizeof b, NULL, NULL, 1234), 0);
    assert_string_equal(b, "/tmp/heaptrace-1234");
    assert_int_equal(ht_ctl_dir_name(b, sizeof b, NULL, NULL, 0), 0);
    assert_string_equal(b, "/tmp/heaptrace-0");
    assert_int_equal(ht_ctl_dir_name(b, 10, NULL, "/run/user/5", 5), -ENAMETOOLONG);
}

static void test_sock_path(void **st)
{
    (void)st;
    char b[256], dir[200];
    assert_int_equal(ht_ctl_sock_path(b, sizeof b, "/tmp/heaptrace-0", 4242), 0);
    assert_string_equal(b, "/tmp/heaptrace-0/4242.sock");
    memset(dir, 'd', sizeof dir - 1);
    dir[0] = '/';
    dir[sizeof dir - 1] = 0;
    assert_int_equal(ht_ctl_sock_path(b, sizeof b, dir, 1), -ENAMETOOLONG); /* > sun_path */
}

static void test_dir_check(void **st)
{
    (void)st;
    char d[] = "/tmp/ht-ctl-test-XXXXXX";
    assert_non_null(mkdtemp(d));
    assert_int_equal(chmod(d, 0700), 0);
    assert_int_equal(ht_ctl_dir_check(d, geteuid()), 0);
    assert_int_equal(ht_ctl_dir_check(d, geteuid() + 1), -EPERM); /* someone else's */
    assert_int_equal(chmod(d, 0755), 0);
    assert_int_equal(ht_ctl_dir_check(d, geteuid()), -EPERM); /* others may enter */
    assert_int_equal(chmod(d, 0700), 0);
    char f[64];
    snprintf(f, sizeof f, "%s/file", d);
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(ht_ctl_dir_check(f, geteuid()), -EPERM); /* not a directory */
    assert_int_equal(ht_ctl_dir_check("/nonexistent/ht", geteuid()), -ENOENT);
    unlink(f);
    /* ht_ctl_dir creates it from HEAPTRACE_RUNTIME_DIR, private */
    char sub[64], got[256];
    snprintf(sub, sizeof sub, "%s/sub", d);
    setenv("HEAPTRACE_RUNTIME_DIR", sub, 1);
    assert_int_equal(ht_ctl_dir(got, sizeof got, 1), 0);
    assert_string_equal(got, sub);
    struct stat s;
    assert_int_equal(stat(sub, &s), 0);
    assert_int_equal(s.st_mode & 0777, 0700);
    chmod(sub, 0711);
    assert_int_equal(ht_ctl_dir(got, sizeof got, 1), -EPERM);
    rmdir(sub);
    rmdir(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dir_name),
        cmocka_unit_test(test_sock_path),
        cmocka_unit_test(test_dir_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
