/* ctl.c - see ctl.h.  No stdio, no heap: the runtime uses it. */
#include "ctl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int put(char *out, size_t len, size_t *n, const char *s)
{
    size_t k = strlen(s);
    if (*n + k >= len) return -ENAMETOOLONG;
    memcpy(out + *n, s, k + 1);
    *n += k;
    return 0;
}

static int put_u(char *out, size_t len, size_t *n, unsigned long v)
{
    char tmp[24];
    size_t k = sizeof tmp;
    tmp[--k] = 0;
    do tmp[--k] = (char)('0' + v % 10), v /= 10;
    while (v && k);
    return put(out, len, n, tmp + k);
}

int ht_ctl_dir_name(char *out, size_t len, const char *ht_dir, const char *xdg, uid_t uid)
{
    size_t n = 0;
    if (len) out[0] = 0;
    if (ht_dir && *ht_dir) return put(out, len, &n, ht_dir);
    if (xdg && *xdg) return put(out, len, &n, xdg) ? -ENAMETOOLONG : put(out, len, &n, "/heaptrace");
    if (put(out, len, &n, "/tmp/heaptrace-")) return -ENAMETOOLONG;
    return put_u(out, len, &n, (unsigned long)uid);
}

int ht_ctl_dir_check(const char *dir, uid_t uid)
{
    struct stat st;
    if (lstat(dir, &st) < 0) return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != uid || (st.st_mode & 077)) return -EPERM;
    return 0;
}

int ht_ctl_dir(char *out, size_t len, int create)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (xdg && access(xdg, W_OK) != 0) xdg = NULL; /* e.g. after su: not ours */
    int rc = ht_ctl_dir_name(out, len, getenv("HEAPTRACE_RUNTIME_DIR"), xdg, geteuid());
    if (rc < 0) return rc;
    if (create && mkdir(out, 0700) < 0 && errno != EEXIST) return -errno;
    return ht_ctl_dir_check(out, geteuid());
}

int ht_ctl_sock_path(char *out, size_t len, const char *dir, uint32_t pid)
{
    size_t n = 0;
    if (len) out[0] = 0;
    if (len > 108) len = 108;
    if (put(out, len, &n, dir) || put(out, len, &n, "/") || put_u(out, len, &n, pid) ||
        put(out, len, &n, ".sock"))
        return -ENAMETOOLONG;
    return 0;
}
