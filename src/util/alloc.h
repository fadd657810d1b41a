/* alloc.h - the allocator every rill allocation goes through. */
#ifndef RILL_UTIL_ALLOC_H
#define RILL_UTIL_ALLOC_H

#include <stddef.h>

void *rill__malloc(size_t size);
void *rill__calloc(size_t count, size_t size);
void *rill__realloc(void *ptr, size_t size);
void rill__free(void *ptr);
/* A copy of s (NULL on allocation failure or when s is NULL). */
char *rill__strdup(const char *s);
/* Grow *arr (element size elem) so that it holds at least need elements;
 * *cap is updated. RILL_OK or RILL_ENOMEM (then *arr is unchanged). */
int rill__grow(void **arr, size_t *cap, size_t need, size_t elem);

#endif
