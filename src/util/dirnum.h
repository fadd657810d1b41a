/* dirnum.h - numbered entries of a directory (chk-<n>, savepoint-<n>). */
#ifndef RILL_UTIL_DIRNUM_H
#define RILL_UTIL_DIRNUM_H

/* The largest n of the entries named <prefix><n> in dir (0 when there is
 * none, or dir cannot be read). */
long long rill__dir_largest(const char *dir, const char *prefix);

#endif
