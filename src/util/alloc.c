/* alloc.c - replaceable allocator (rill_replace_allocator). */
#include "util/alloc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rill.h"

static rill_malloc_fn a_malloc = malloc;
static rill_realloc_fn a_realloc = realloc;
static rill_calloc_fn a_calloc = calloc;
static rill_free_fn a_free = free;

RILL_API int rill_replace_allocator(rill_malloc_fn malloc_fn, rill_realloc_fn realloc_fn,
                                    rill_calloc_fn calloc_fn, rill_free_fn free_fn)
{
    if (!malloc_fn || !realloc_fn || !calloc_fn || !free_fn)
        return RILL_EINVAL;
    a_malloc = malloc_fn;
    a_realloc = realloc_fn;
    a_calloc = calloc_fn;
    a_free = free_fn;
    return RILL_OK;
}

void *rill__malloc(size_t size) { return a_malloc(size ? size : 1); }
void *rill__calloc(size_t count, size_t size)
{
    return a_calloc(count ? count : 1, size ? size : 1);
}
void *rill__realloc(void *ptr, size_t size) { return a_realloc(ptr, size ? size : 1); }
void rill__free(void *ptr)
{
    if (ptr)
        a_free(ptr);
}

char *rill__strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *c = rill__malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

int rill__grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return RILL_OK;
    size_t ncap = *cap ? *cap : 4;
    while (ncap < need)
        ncap *= 2;
    if (ncap > SIZE_MAX / elem)
        return RILL_ENOMEM;
    void *p = rill__realloc(*arr, ncap * elem);
    if (!p)
        return RILL_ENOMEM;
    *arr = p;
    *cap = ncap;
    return RILL_OK;
}
