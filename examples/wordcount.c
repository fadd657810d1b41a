/*
 * wordcount.c - count the words of a text file with rill.
 *
 *   wordcount [-p N] [FILE]
 *
 * Reads FILE, or standard input when FILE is missing or "-", and prints one
 * line "word count" per distinct word, sorted by word (byte order). A word
 * is a maximal run of ASCII letters and digits and of bytes >= 0x80 (so
 * UTF-8 text keeps its words whole); ASCII letters are lowercased.
 *
 * Shows:
 *  - rill_file_source: the lines of a file, split across N subtasks by
 *    byte range (standard input is read by one subtask);
 *  - rill_flat_map: zero or more records (words) per input record (line);
 *  - rill_key_by with a key function: every occurrence of a word reaches
 *    the same sink subtask, so counts need no locks while the job runs;
 *  - a sink with per-subtask state: rill_stream_set_lifecycle creates a
 *    hash table per subtask (rill_ctx_set_local) and, at close, hands its
 *    counts over to a shared table that main prints once the job is done;
 *  - error reporting with rill_env_errmsg (try a file that does not exist).
 *
 * -p N sets the parallelism of every operator (default 2).
 */
#include <rill.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------
 * A small hash table of counts keyed by words (open addressing)
 * --------------------------------------------------------------------- */

typedef struct entry {
    char *word; /* NUL-terminated, owned; NULL for an empty slot */
    size_t len;
    uint64_t hash;
    uint64_t count;
} entry;

typedef struct table {
    entry *slots;
    size_t cap; /* a power of two */
    size_t used;
} table;

static uint64_t hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */

    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static int table_init(table *t)
{
    t->cap = 1024;
    t->used = 0;
    t->slots = calloc(t->cap, sizeof *t->slots);
    return t->slots != NULL ? 0 : -1;
}

static void table_free(table *t)
{
    if (t->slots == NULL)
        return;
    for (size_t i = 0; i < t->cap; i++)
        free(t->slots[i].word);
    free(t->slots);
    t->slots = NULL;
}

static int table_grow(table *t)
{
    size_t cap = t->cap * 2;
    entry *slots = calloc(cap, sizeof *slots);

    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        size_t j;

        if (t->slots[i].word == NULL)
            continue;
        j = (size_t)t->slots[i].hash & (cap - 1);
        while (slots[j].word != NULL)
            j = (j + 1) & (cap - 1);
        slots[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* Add n to the count of word[0..len). 0, or -1 when out of memory. */
static int table_add(table *t, const char *word, size_t len, uint64_t n)
{
    uint64_t h = hash_bytes(word, len);
    size_t i;

    if ((t->used + 1) * 4 > t->cap * 3 && table_grow(t) != 0)
        return -1;
    i = (size_t)h & (t->cap - 1);
    while (t->slots[i].word != NULL) {
        entry *e = &t->slots[i];

        if (e->hash == h && e->len == len && memcmp(e->word, word, len) == 0) {
            e->count += n;
            return 0;
        }
        i = (i + 1) & (t->cap - 1);
    }
    t->slots[i].word = malloc(len + 1);
    if (t->slots[i].word == NULL)
        return -1;
    memcpy(t->slots[i].word, word, len);
    t->slots[i].word[len] = '\0';
    t->slots[i].len = len;
    t->slots[i].hash = h;
    t->slots[i].count = n;
    t->used++;
    return 0;
}

/* ---------------------------------------------------------------------
 * The job's callbacks
 * --------------------------------------------------------------------- */

static int is_word_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80;
}

/* flat_map: one line in, its words out (lowercased). */
static int split_words(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    const unsigned char *line = rec;
    char stack_buf[256];
    size_t i = 0;

    (void)user_data;
    while (i < len) {
        size_t start, n;
        char *word;
        int rc;

        while (i < len && !is_word_byte(line[i]))
            i++;
        if (i == len)
            break;
        start = i;
        while (i < len && is_word_byte(line[i]))
            i++;
        n = i - start;
        word = n <= sizeof stack_buf ? stack_buf : malloc(n);
        if (word == NULL) {
            rill_ctx_set_error(ctx, "out of memory for a %zu-byte word", n);
            return -1;
        }
        for (size_t k = 0; k < n; k++) {
            unsigned char c = line[start + k];
            word[k] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
        rc = rill_emit(ctx, word, n);
        if (word != stack_buf)
            free(word);
        if (rc != RILL_OK)
            return rc;
    }
    return 0;
}

/* key_by: the key of a word record is the word itself. */
static int word_key(const void *rec, size_t len, void *key, size_t *key_len,
                    void *user_data)
{
    (void)user_data;
    if (len <= *key_len)
        memcpy(key, rec, len);
    *key_len = len; /* when too long, rill calls again with room for it */
    return 0;
}

/* The counts of every sink subtask end up here. */
typedef struct result {
    pthread_mutex_t lock;
    table words;
    int failed;
} result;

static int count_open(rill_ctx *ctx, void *user_data)
{
    table *t = malloc(sizeof *t);

    (void)user_data;
    if (t == NULL || table_init(t) != 0) {
        free(t);
        rill_ctx_set_error(ctx, "out of memory");
        return -1;
    }
    rill_ctx_set_local(ctx, t);
    return 0;
}

static int count_word(rill_ctx *ctx, const void *rec, size_t len, void *user_data)
{
    table *t = rill_ctx_local(ctx);

    (void)user_data;
    if (table_add(t, rec, len, 1) != 0) {
        rill_ctx_set_error(ctx, "out of memory");
        return -1;
    }
    return 0;
}

static int count_close(rill_ctx *ctx, void *user_data)
{
    result *res = user_data;
    table *t = rill_ctx_local(ctx);
    int rc = 0;

    if (t == NULL)
        return 0;
    pthread_mutex_lock(&res->lock);
    for (size_t i = 0; i < t->cap && rc == 0; i++) {
        const entry *e = &t->slots[i];

        if (e->word != NULL)
            rc = table_add(&res->words, e->word, e->len, e->count);
    }
    if (rc != 0)
        res->failed = 1;
    pthread_mutex_unlock(&res->lock);
    table_free(t);
    free(t);
    rill_ctx_set_local(ctx, NULL);
    if (rc != 0)
        rill_ctx_set_error(ctx, "out of memory");
    return rc;
}

/* ---------------------------------------------------------------------
 * main
 * --------------------------------------------------------------------- */

static int cmp_entries(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a;
    const entry *y = *(const entry *const *)b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->word, y->word, n);

    if (c != 0)
        return c;
    return x->len < y->len ? -1 : (x->len > y->len);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: wordcount [-p N] [FILE]\n"
                 "Count the words of FILE (standard input when missing or \"-\").\n");
}

int main(int argc, char **argv)
{
    const char *path = "-";
    int parallelism = 2;
    int have_path = 0;
    result res;
    rill_env *env;
    rill_stream *s;
    entry **sorted;
    size_t n = 0;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strncmp(a, "-p", 2) == 0) {
            const char *v = a[2] != '\0' ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
            char *end;
            long p;

            if (v == NULL) {
                usage(stderr);
                return 2;
            }
            p = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || p < 1 || p > 1024) {
                fprintf(stderr, "wordcount: bad parallelism '%s' (1..1024)\n", v);
                return 2;
            }
            parallelism = (int)p;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "wordcount: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (have_path) {
            usage(stderr);
            return 2;
        } else {
            path = a;
            have_path = 1;
        }
    }

    if (pthread_mutex_init(&res.lock, NULL) != 0 || table_init(&res.words) != 0) {
        fprintf(stderr, "wordcount: out of memory\n");
        return 1;
    }
    res.failed = 0;

    env = rill_env_new();
    if (env == NULL) {
        fprintf(stderr, "wordcount: out of memory\n");
        return 1;
    }
    rill_env_set_parallelism(env, parallelism);

    s = rill_file_source(env, "lines", path);
    s = rill_stream_set_parallelism(s, parallelism);
    s = rill_flat_map(s, "split-words", split_words, NULL);
    s = rill_key_by(s, word_key, NULL);
    s = rill_sink(s, "count", count_word, &res);
    rill_stream_set_lifecycle(s, count_open, count_close);

    rc = rill_env_execute(env, "wordcount");
    if (rc != RILL_OK) {
        fprintf(stderr, "wordcount: %s\n", rill_env_errmsg(env));
        rill_env_free(env);
        table_free(&res.words);
        return 1;
    }
    rill_env_free(env);
    if (res.failed) {
        fprintf(stderr, "wordcount: out of memory\n");
        return 1;
    }

    /* Sort by word so the output is the same whatever the parallelism. */
    sorted = malloc((res.words.used ? res.words.used : 1) * sizeof *sorted);
    if (sorted == NULL) {
        fprintf(stderr, "wordcount: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < res.words.cap; i++)
        if (res.words.slots[i].word != NULL)
            sorted[n++] = &res.words.slots[i];
    qsort(sorted, n, sizeof *sorted, cmp_entries);
    for (size_t i = 0; i < n; i++) {
        fwrite(sorted[i]->word, 1, sorted[i]->len, stdout);
        printf(" %" PRIu64 "\n", sorted[i]->count);
    }
    free(sorted);
    table_free(&res.words);
    pthread_mutex_destroy(&res.lock);
    return fflush(stdout) == 0 ? 0 : 1;
}
