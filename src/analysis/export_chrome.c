/*
 * export_chrome.c - see export.h.
 *
 * The JSON object form of the Trace Event Format (read by Perfetto UI,
 * chrome://tracing, speedscope):
 *
 *   {"traceEvents":[
 *   {"name":"process_name","ph":"M","ts":0,"pid":P,"tid":0,"args":{"name":"CMD"}},
 *   {"name":"thread_name","ph":"M","ts":0,"pid":P,"tid":T,"args":{"name":"worker"}},
 *   {"name":"heap","ph":"C","ts":12.345,"pid":P,"tid":P,"args":{"live bytes":N}},
 *   {"name":"TEXT","cat":"marker","ph":"i","s":"t","ts":..,"pid":P,"tid":T},
 *   {"name":"peak","cat":"heap","ph":"i","s":"g","ts":..,"pid":P,"tid":0,"args":{"live bytes":N}}
 *   ],
 *   "displayTimeUnit":"ms",
 *   "metadata":{...}}
 *
 * Timestamps are microseconds since the trace's start, printed from the
 * integer nanoseconds (three exact decimals, no floating point rounding).
 * A counter is process-local in the format, so each process has its own
 * "heap" track: its series of live bytes (profile.h), which holds its peak.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "export.h"

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 when it
 * is not one; *bad gets how many bytes to replace then (the maximal prefix
 * of a valid sequence, at least 1, as Unicode recommends). */
static size_t utf8_len(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0) lo = 0xa0;      /* overlong */
        else if (c == 0xed) hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0) lo = 0x90;      /* overlong */
        else if (c == 0xf4) hi = 0x8f; /* above U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < len && i < n; i++) {
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xbf;
        if (s[i] < l || s[i] > h) break;
    }
    if (i == len) return len;
    *bad = i;
    return 0;
}

/* s[0..n) as a JSON string: quotes and backslashes escaped, control
 * characters as \u00XX, invalid UTF-8 replaced by U+FFFD, and U+2028/2029
 * escaped too (valid JSON, but line breaks to a JavaScript reader). */
static void put_json_strn(FILE *out, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    putc('"', out);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            putc('\\', out);
            putc(c, out);
            i++;
        } else if (c < 0x20) {
            fprintf(out, "\\u%04x", c);
            i++;
        } else if (c < 0x80) {
            putc(c, out);
            i++;
        } else {
            size_t bad = 1, l = utf8_len(s + i, n - i, &bad);
            if (!l) {
                fputs("\\ufffd", out);
                i += bad;
            } else if (l == 3 && c == 0xe2 && s[i + 1] == 0x80 && (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
                fprintf(out, "\\u%04x", 0x2000 + (s[i + 2] - 0x80));
                i += 3;
            } else {
                fwrite(s + i, 1, l, out);
                i += l;
            }
        }
    }
    putc('"', out);
}

static void put_json_str(FILE *out, const char *s)
{
    put_json_strn(out, s, strlen(s));
}

/* ns since the start as the format's microseconds. */
static void put_ts(FILE *out, uint64_t ns)
{
    fprintf(out, "%" PRIu64 ".%03u", ns / 1000, (unsigned)(ns % 1000));
}

/* Starts the next event of the array (comma-separated, one per line). */
static void next_event(FILE *out, int *first)
{
    fputs(*first ? "\n" : ",\n", out);
    *first = 0;
}

int ht_export_chrome(const ht_export_ctx *x, FILE *out)
{
    const ht_prof *p = x->prof;
    int first = 1;
    char num[32];
    fputs("{\"traceEvents\":[", out);

    /* names first: a viewer labels the tracks with them */
    for (size_t k = 0; k < p->nprocs; k++) {
        const ht_prof_proc *pr = &p->procs[k];
        next_event(out, &first);
        fprintf(out,
                "{\"name\":\"process_name\",\"ph\":\"M\",\"ts\":0,\"pid\":%" PRIu32
                ",\"tid\":0,\"args\":{\"name\":",
                pr->pid);
        if (pr->command) {
            put_json_str(out, pr->command);
        } else {
            snprintf(num, sizeof num, "pid %" PRIu32, pr->pid);
            put_json_str(out, num);
        }
        fputs("}}", out);
    }
    for (size_t i = 0; i < p->nthreads; i++) {
        const ht_prof_thread *t = &p->threads[i];
        size_t len = strnlen(t->name, sizeof t->name);
        if (!len) continue; /* unnamed: the viewer shows the tid */
        next_event(out, &first);
        fprintf(out,
                "{\"name\":\"thread_name\",\"ph\":\"M\",\"ts\":0,\"pid\":%" PRIu32 ",\"tid\":%" PRIu32
                ",\"args\":{\"name\":",
                t->pid, t->tid);
        put_json_strn(out, t->name, len);
        fputs("}}", out);
    }

    for (size_t k = 0; k < p->nprocs; k++) {
        const ht_prof_proc *pr = &p->procs[k];
        for (uint32_t i = 0; i < pr->nseries; i++) {
            next_event(out, &first);
            fputs("{\"name\":\"heap\",\"ph\":\"C\",\"ts\":", out);
            put_ts(out, pr->series[i].ts);
            fprintf(out, ",\"pid\":%" PRIu32 ",\"tid\":%" PRIu32 ",\"args\":{\"live bytes\":%" PRIu64 "}}", pr->pid,
                    pr->pid, pr->series[i].live);
        }
    }

    for (size_t i = 0; i < p->nmarkers; i++) {
        const ht_prof_marker *m = &p->markers[i];
        next_event(out, &first);
        fputs("{\"name\":", out);
        put_json_str(out, m->text ? m->text : "");
        fputs(",\"cat\":\"marker\",\"ph\":\"i\",\"s\":\"t\",\"ts\":", out);
        put_ts(out, m->ts);
        fprintf(out, ",\"pid\":%" PRIu32 ",\"tid\":%" PRIu32 "}", m->pid, m->tid);
    }

    /* The peak is of all processes together: a global instant. */
    if (p->peak_bytes) {
        next_event(out, &first);
        fputs("{\"name\":\"peak\",\"cat\":\"heap\",\"ph\":\"i\",\"s\":\"g\",\"ts\":", out);
        put_ts(out, p->peak_ts);
        fprintf(out, ",\"pid\":%" PRIu32 ",\"tid\":0,\"args\":{\"live bytes\":%" PRIu64 "}}",
                p->nprocs ? p->procs[0].pid : 0, p->peak_bytes);
    }

    fputs("\n],\n\"displayTimeUnit\":\"ms\",\n\"metadata\":{\"source\":\"heaptrace\",\"trace\":", out);
    put_json_str(out, x->trace_path ? x->trace_path : "");
    if (p->nprocs && p->procs[0].command) {
        fputs(",\"command\":", out);
        put_json_str(out, p->procs[0].command);
    }
    if (x->hdr) {
        fputs(",\"hostname\":", out);
        put_json_strn(out, x->hdr->hostname, strnlen(x->hdr->hostname, sizeof x->hdr->hostname));
        fprintf(out, ",\"start_realtime_ns\":%" PRIu64, x->hdr->start_real_ns);
    }
    fprintf(out, ",\"peak_bytes\":%" PRIu64 ",\"peak_ts_ns\":%" PRIu64 ",\"live_bytes_at_end\":%" PRIu64
                 ",\"markers\":%" PRIu64 ",\"markers_dropped\":%" PRIu64 ",\"events_lost\":%" PRIu64 "}}\n",
            p->peak_bytes, p->peak_ts, p->live_bytes, p->markers_total,
            p->markers_total > p->nmarkers ? p->markers_total - (uint64_t)p->nmarkers : 0, p->lost);
    return ferror(out) ? -EIO : 0;
}
