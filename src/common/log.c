/* log.c - see log.h */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static size_t put_u(char *b, size_t n, size_t cap, unsigned long long v, unsigned base)
{
    char tmp[24];
    size_t k = 0;
    do {
        tmp[k++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v && k < sizeof tmp);
    while (k && n < cap) b[n++] = tmp[--k];
    return n;
}

void ht_log(const char *fmt, ...)
{
    int saved = errno;
    char b[512];
    size_t n = 0, cap = sizeof b - 1;
    const char *pre = "heaptrace: ";
    while (*pre && n < cap) b[n++] = *pre++;
    va_list ap;
    va_start(ap, fmt);
    for (const char *f = fmt; *f && n < cap; f++) {
        if (*f != '%') {
            b[n++] = *f;
            continue;
        }
        f++;
        int l = 0;
        while (*f == 'l') l++, f++;
        switch (*f) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s) s = "(null)";
            while (*s && n < cap) b[n++] = *s++;
            break;
        }
        case 'd': {
            long long v = l >= 2 ? va_arg(ap, long long) : l ? va_arg(ap, long) : va_arg(ap, int);
            if (v < 0 && n < cap) b[n++] = '-', v = -v;
            n = put_u(b, n, cap, (unsigned long long)v, 10);
            break;
        }
        case 'u':
        case 'x': {
            unsigned long long v = l >= 2 ? va_arg(ap, unsigned long long)
                                   : l    ? va_arg(ap, unsigned long)
                                          : va_arg(ap, unsigned);
            n = put_u(b, n, cap, v, *f == 'x' ? 16 : 10);
            break;
        }
        case 'p':
            if (n + 2 < cap) b[n++] = '0', b[n++] = 'x';
            n = put_u(b, n, cap, (uintptr_t)va_arg(ap, void *), 16);
            break;
        case '%': b[n++] = '%'; break;
        default: break;
        }
        if (!*f) break;
    }
    va_end(ap);
    b[n++] = '\n';
    ssize_t w = write(2, b, n);
    (void)w;
    errno = saved;
}
