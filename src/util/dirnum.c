/* dirnum.c - numbered entries of a directory. */
#include "util/dirnum.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>

long long rill__dir_largest(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t len = strlen(prefix);
    long long best = 0, n;
    char tail;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strncmp(e->d_name, prefix, len) == 0 &&
            sscanf(e->d_name + len, "%lld%c", &n, &tail) == 1 && n > best)
            best = n;
    closedir(d);
    return best;
}
