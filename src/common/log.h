/*
 * log.h - async-signal-safe diagnostics for code that lives inside other
 * processes: a fixed buffer, a tiny formatter (%s %d %u %lu %llu %x %p only)
 * and one write(2) to stderr.  errno is preserved.
 */
#ifndef HT_LOG_H
#define HT_LOG_H

void ht_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
