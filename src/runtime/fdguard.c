/*
 * fdguard.c - keeps the runtime's file descriptors (control socket,
 * eventfd) alive and out of the program's way.
 *
 * Daemons close every descriptor they did not open (close loops,
 * closefrom, close_range) and dup2 onto numbers of their choosing.  Were the
 * runtime's descriptors closed, the collector would lose the process and a
 * reused number could even receive the runtime's eventfd kicks.  So, as
 * LTTng-UST does: our descriptors live at high numbers, and close, dup2,
 * dup3, close_range and closefrom are interposed to leave them alone (close
 * of one of ours reports success; a dup2 onto one moves ours away first).
 * Each wrapper costs one compare while the runtime holds no descriptor.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "rt.h"

#define EXPORT HT_EXPORT

/* ours: the session connection, the collector's eventfd, the endpoint */
#define NOURS 3
static int *const ours[NOURS] = {&ht__sess.sock_fd, &ht__sess.event_fd, &ht__ctl_fd};

static inline int is_ours(int fd)
{
    return fd >= 0 && (fd == ht__sess.sock_fd || fd == ht__sess.event_fd || fd == ht__ctl_fd);
}

/* Move `fd` to a high number (close-on-exec); returns the new fd. */
int ht__fd_hide(int fd)
{
    if (fd < 0) return fd;
    struct rlimit rl;
    long base = 512;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur > 128)
        base = (long)rl.rlim_cur - 64;
    if (base > 65536) base = 65536;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, (int)base);
    if (nfd < 0) nfd = fcntl(fd, F_DUPFD_CLOEXEC, 64);
    if (nfd < 0) return fd;
    syscall(SYS_close, fd);
    return nfd;
}

/* Close one of our descriptors for real (fork child, session end). */
void ht__fd_close(int fd)
{
    if (fd >= 0) syscall(SYS_close, fd);
}

/* The real functions (glibc's: cancellation points, errno handling), found
 * on first use; the raw system call if the C library has none. */
static int close_resolve(int fd);
static int (*real_close)(int) = close_resolve;
static int close_resolve(int fd)
{
    int (*f)(int) = (int (*)(int))dlsym(RTLD_NEXT, "close");
    if (!f) return (int)syscall(SYS_close, fd);
    real_close = f;
    return f(fd);
}

static int dup3_resolve(int a, int b, int fl);
static int (*real_dup3)(int, int, int) = dup3_resolve;
static int dup3_resolve(int a, int b, int fl)
{
    int (*f)(int, int, int) = (int (*)(int, int, int))dlsym(RTLD_NEXT, "dup3");
    if (!f) return (int)syscall(SYS_dup3, a, b, fl);
    real_dup3 = f;
    return f(a, b, fl);
}

static int dup2_resolve(int a, int b);
static int (*real_dup2)(int, int) = dup2_resolve;
static int dup2_resolve(int a, int b)
{
    int (*f)(int, int) = (int (*)(int, int))dlsym(RTLD_NEXT, "dup2");
    if (!f) return a == b ? b : (int)syscall(SYS_dup3, a, b, 0);
    real_dup2 = f;
    return f(a, b);
}

EXPORT int close(int fd)
{
    if (HT_UNLIKELY(is_ours(fd))) return 0; /* stays open; the program thinks it closed */
    return real_close(fd);
}

static int relocate_if_ours(int fd)
{
    for (int i = 0; i < NOURS; i++) {
        if (fd != *ours[i]) continue;
        int n = fcntl(fd, F_DUPFD_CLOEXEC, fd + 1);
        if (n < 0) return -1;
        *ours[i] = n;
    }
    return 0;
}

EXPORT int dup2(int oldfd, int newfd)
{
    if (HT_UNLIKELY(is_ours(newfd)) && oldfd != newfd && relocate_if_ours(newfd) < 0) {
        errno = EBUSY;
        return -1;
    }
    return real_dup2(oldfd, newfd);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
    if (HT_UNLIKELY(is_ours(newfd)) && oldfd != newfd && relocate_if_ours(newfd) < 0) {
        errno = EBUSY;
        return -1;
    }
    return real_dup3(oldfd, newfd, flags);
}

static int close_range_sys(unsigned first, unsigned last, int flags)
{
#ifdef SYS_close_range
    return (int)syscall(SYS_close_range, first, last, flags);
#else
    errno = ENOSYS;
    return -1;
#endif
}

/* close_range over [first, last] minus our descriptors. */
EXPORT int close_range(unsigned first, unsigned last, int flags)
{
    int keep[NOURS];
    for (int i = 0; i < NOURS; i++) {
        int v = *ours[i], j = i;
        for (; j > 0 && keep[j - 1] > v; j--) keep[j] = keep[j - 1];
        keep[j] = v;
    }
    unsigned lo = first;
    for (int i = 0; i < NOURS; i++) {
        if (keep[i] < 0 || (unsigned)keep[i] < lo || (unsigned)keep[i] > last) continue;
        if ((unsigned)keep[i] > lo && close_range_sys(lo, (unsigned)keep[i] - 1, flags) < 0) return -1;
        lo = (unsigned)keep[i] + 1;
    }
    if (lo > last || lo == 0) return 0;
    return close_range_sys(lo, last, flags);
}

EXPORT void closefrom(int lowfd)
{
    if (lowfd < 0) lowfd = 0;
    if (close_range((unsigned)lowfd, ~0u, 0) == 0) return;
    /* no close_range: close what /proc says is open would need opendir
     * (malloc); fall back to a bounded loop like glibc's */
    struct rlimit rl;
    long max = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? (long)rl.rlim_cur : 65536;
    for (long fd = lowfd; fd < max; fd++)
        if (!is_ours((int)fd)) syscall(SYS_close, (int)fd);
}
