/*
 * secure.c - a program linked with libheaptrace.so (not preloaded: the
 * security test installs a setuid/setgid copy of it, and the dynamic loader
 * ignores LD_PRELOAD for those).  Writes "pid PID ruid R euid E" to stdout,
 * then allocates for SECONDS seconds and exits 0.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "heaptrace.h"

static void *volatile sink;

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    printf("pid %d ruid %d euid %d rgid %d egid %d runtime %s\n", (int)getpid(), (int)getuid(), (int)geteuid(),
           (int)getgid(), (int)getegid(), &ht__session_on ? "loaded" : "absent");
    fflush(stdout);
    struct timespec t0, t, d = {0, 1000000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        for (int i = 0; i < 10; i++) {
            void *p = malloc(64 + (size_t)i * 100);
            sink = p;
            free(p);
        }
        nanosleep(&d, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
    return 0;
}
