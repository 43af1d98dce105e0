/*
 * demo.c - the program the README's quick start records: a small but
 * realistic workload.  It generates a text corpus, has worker threads parse
 * it into words and count them in hash tables (strdup'ed keys, growing
 * arrays), merges the tables, sorts them and prints the top words.  It keeps
 * one deliberate leak (the "config" it parses at start) so the summary has
 * something to show.
 *
 * usage: demo [THREADS] [WORDS]
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *word;
    unsigned long count;
    struct entry *next;
} entry;

typedef struct table {
    entry **buckets;
    size_t nbuckets, size;
} table;

static unsigned long hash_str(const char *s)
{
    unsigned long h = 5381;
    while (*s) h = h * 33 + (unsigned char)*s++;
    return h;
}

static void table_init(table *t, size_t n)
{
    t->buckets = calloc(n, sizeof *t->buckets);
    t->nbuckets = n;
    t->size = 0;
}

static void table_grow(table *t)
{
    table n;
    table_init(&n, t->nbuckets * 2);
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t b = hash_str(e->word) % n.nbuckets;
            e->next = n.buckets[b];
            n.buckets[b] = e;
        }
    }
    free(t->buckets);
    t->buckets = n.buckets;
    t->nbuckets = n.nbuckets;
}

static void table_add(table *t, const char *w, unsigned long count)
{
    size_t b = hash_str(w) % t->nbuckets;
    for (entry *e = t->buckets[b]; e; e = e->next)
        if (strcmp(e->word, w) == 0) {
            e->count += count;
            return;
        }
    entry *e = malloc(sizeof *e);
    e->word = strdup(w);
    e->count = count;
    e->next = t->buckets[b];
    t->buckets[b] = e;
    if (++t->size > t->nbuckets * 2) table_grow(t);
}

static void table_free(table *t)
{
    for (size_t i = 0; i < t->nbuckets; i++)
        for (entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            free(e->word);
            free(e);
        }
    free(t->buckets);
}

/* ---- a corpus from a fixed vocabulary with a skewed distribution ---- */
static const char *const syllables[] = {"ka", "lo", "mi", "ner", "sto", "va", "qu", "ell",
                                        "ra", "tin", "po", "se", "dru", "an", "bel", "or"};

static char *make_corpus(size_t words, unsigned seed)
{
    size_t cap = 64, len = 0;
    char *text = malloc(cap);
    unsigned x = seed;
    for (size_t i = 0; i < words; i++) {
        char w[32];
        size_t wl = 0;
        x = x * 1103515245u + 12345u;
        unsigned n = 1 + (x >> 16) % 3;
        for (unsigned k = 0; k < n; k++) {
            x = x * 1103515245u + 12345u;
            unsigned r = (x >> 16) % 256;
            const char *s = syllables[(r * r) >> 12]; /* skewed towards the first ones */
            size_t sl = strlen(s);
            memcpy(w + wl, s, sl);
            wl += sl;
        }
        while (len + wl + 2 > cap) {
            cap *= 2;
            text = realloc(text, cap);
        }
        memcpy(text + len, w, wl);
        len += wl;
        text[len++] = (i % 13 == 12) ? '\n' : ' ';
    }
    text[len] = 0;
    return text;
}

typedef struct job {
    const char *begin, *end;
    table counts;
} job;

static void *worker(void *arg)
{
    job *j = arg;
    table_init(&j->counts, 64);
    const char *p = j->begin;
    while (p < j->end) {
        while (p < j->end && !isalpha((unsigned char)*p)) p++;
        const char *s = p;
        while (p < j->end && isalpha((unsigned char)*p)) p++;
        if (p > s) {
            char *w = strndup(s, (size_t)(p - s)); /* a short-lived copy per token */
            table_add(&j->counts, w, 1);
            free(w);
        }
    }
    return NULL;
}

static int by_count(const void *a, const void *b)
{
    const entry *x = *(entry *const *)a, *y = *(entry *const *)b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

/* "key=value;key=value" -> array of strings; kept for the whole run and
 * never freed: the demo's deliberate leak. */
static char **parse_config(const char *spec, size_t *n)
{
    char **kv = NULL;
    *n = 0;
    char *copy = strdup(spec), *save = NULL;
    for (char *tok = strtok_r(copy, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        kv = realloc(kv, (*n + 1) * sizeof *kv);
        kv[(*n)++] = strdup(tok);
    }
    free(copy);
    return kv;
}

int main(int argc, char **argv)
{
    int nthreads = argc > 1 ? atoi(argv[1]) : 4;
    size_t nwords = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
    if (nthreads < 1 || nthreads > 64 || nwords == 0) {
        fprintf(stderr, "usage: demo [THREADS 1..64] [WORDS]\n");
        return 2;
    }
    size_t nconf;
    char **conf = parse_config("top=10;corpus=synthetic;mode=threads", &nconf);

    char *text = make_corpus(nwords, 42);
    size_t len = strlen(text);
    job *jobs = calloc((size_t)nthreads, sizeof *jobs);
    pthread_t *tids = malloc((size_t)nthreads * sizeof *tids);
    for (int i = 0; i < nthreads; i++) {
        size_t a = len * (size_t)i / (size_t)nthreads, b = len * (size_t)(i + 1) / (size_t)nthreads;
        while (a > 0 && a < len && text[a - 1] != ' ' && text[a - 1] != '\n') a++;
        while (b < len && text[b - 1] != ' ' && text[b - 1] != '\n') b++;
        jobs[i].begin = text + a;
        jobs[i].end = text + b;
        pthread_create(&tids[i], NULL, worker, &jobs[i]);
    }
    table all;
    table_init(&all, 64);
    for (int i = 0; i < nthreads; i++) {
        pthread_join(tids[i], NULL);
        for (size_t b = 0; b < jobs[i].counts.nbuckets; b++)
            for (entry *e = jobs[i].counts.buckets[b]; e; e = e->next) table_add(&all, e->word, e->count);
        table_free(&jobs[i].counts);
    }
    entry **sorted = malloc(all.size * sizeof *sorted);
    size_t k = 0;
    for (size_t b = 0; b < all.nbuckets; b++)
        for (entry *e = all.buckets[b]; e; e = e->next) sorted[k++] = e;
    qsort(sorted, k, sizeof *sorted, by_count);
    printf("%zu words, %zu distinct, %d threads, config: %zu keys\n", nwords, k, nthreads, nconf);
    for (size_t i = 0; i < k && i < 10; i++) printf("%8lu  %s\n", sorted[i]->count, sorted[i]->word);
    free(sorted);
    table_free(&all);
    free(jobs);
    free(tids);
    free(text);
    (void)conf; /* leaked on purpose */
    return 0;
}
