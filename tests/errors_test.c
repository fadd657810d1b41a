/* errors_test.c - error codes, their names and messages, and versions. */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "rill.h"

/* The published table, spelled out: codes are part of the ABI. */
typedef struct code_row {
    int code;
    const char *name;
    const char *msg;
} code_row;

static const code_row codes[] = {
    {0, "RILL_OK", "success"},
    {-1, "RILL_ENOMEM", "out of memory"},
    {-2, "RILL_EINVAL", "invalid argument"},
    {-3, "RILL_ESTATE", "operation not allowed in the current state"},
    {-4, "RILL_EIO", "input/output error"},
    {-5, "RILL_ECORRUPT", "corrupt or foreign data"},
    {-6, "RILL_ENOTFOUND", "not found"},
    {-7, "RILL_ECLOSED", "closed"},
    {-8, "RILL_ETIMEDOUT", "timed out"},
    {-9, "RILL_ECANCELED", "canceled"},
    {-10, "RILL_EUSER", "a user callback failed"},
};
#define N_CODES (sizeof codes / sizeof codes[0])

static const int unknown_codes[] = {1, 2, 42, -11, -12, -100, 1000, INT_MAX, INT_MIN};
#define N_UNKNOWN (sizeof unknown_codes / sizeof unknown_codes[0])

Test(errors, enum_values_are_fixed)
{
    cr_assert_eq(RILL_OK, 0);
    cr_assert_eq(RILL_ENOMEM, -1);
    cr_assert_eq(RILL_EINVAL, -2);
    cr_assert_eq(RILL_ESTATE, -3);
    cr_assert_eq(RILL_EIO, -4);
    cr_assert_eq(RILL_ECORRUPT, -5);
    cr_assert_eq(RILL_ENOTFOUND, -6);
    cr_assert_eq(RILL_ECLOSED, -7);
    cr_assert_eq(RILL_ETIMEDOUT, -8);
    cr_assert_eq(RILL_ECANCELED, -9);
    cr_assert_eq(RILL_EUSER, -10);
    cr_assert_eq(RILL_ERRNO_MIN_, -10);
}

Test(errors, strerror_of_every_code)
{
    for (size_t i = 0; i < N_CODES; i++) {
        const char *m = rill_strerror(codes[i].code);
        cr_assert_not_null(m, "rill_strerror(%d) is NULL", codes[i].code);
        cr_assert_str_eq(m, codes[i].msg, "rill_strerror(%d)", codes[i].code);
    }
}

Test(errors, err_name_of_every_code)
{
    for (size_t i = 0; i < N_CODES; i++) {
        const char *n = rill_err_name(codes[i].code);
        cr_assert_not_null(n, "rill_err_name(%d) is NULL", codes[i].code);
        cr_assert_str_eq(n, codes[i].name, "rill_err_name(%d)", codes[i].code);
    }
}

/* The X-macro table in the header agrees with the library. */
Test(errors, table_macro_matches_library)
{
    size_t rows = 0;
#define ROW_(name, value, msg)                                           \
    do {                                                                 \
        cr_assert_str_eq(rill_strerror(value), msg);                     \
        cr_assert_str_eq(rill_err_name(value), "RILL_" #name);           \
        rows++;                                                          \
    } while (0);
    RILL_ERRNO_MAP(ROW_)
#undef ROW_
    cr_assert_eq(rows, N_CODES);
}

Test(errors, strerror_of_unknown_codes)
{
    for (size_t i = 0; i < N_UNKNOWN; i++) {
        const char *m = rill_strerror(unknown_codes[i]);
        cr_assert_not_null(m, "rill_strerror(%d) is NULL", unknown_codes[i]);
        cr_assert_str_eq(m, "unknown error", "rill_strerror(%d)", unknown_codes[i]);
    }
}

Test(errors, err_name_of_unknown_codes_is_not_a_known_name)
{
    for (size_t i = 0; i < N_UNKNOWN; i++) {
        const char *n = rill_err_name(unknown_codes[i]);
        cr_assert_not_null(n, "rill_err_name(%d) is NULL", unknown_codes[i]);
        cr_assert_neq(n[0], '\0', "rill_err_name(%d) is empty", unknown_codes[i]);
        for (size_t k = 0; k < N_CODES; k++)
            cr_assert_str_neq(n, codes[k].name, "rill_err_name(%d) gives %s",
                              unknown_codes[i], codes[k].name);
    }
}

Test(errors, names_and_messages_are_distinct)
{
    for (size_t i = 0; i < N_CODES; i++)
        for (size_t k = i + 1; k < N_CODES; k++) {
            cr_assert_str_neq(rill_err_name(codes[i].code), rill_err_name(codes[k].code));
            cr_assert_str_neq(rill_strerror(codes[i].code), rill_strerror(codes[k].code));
        }
}

Test(version, number_matches_macros)
{
    cr_assert_eq(RILL_VERSION_HEX, 0x000100u);
    cr_assert_eq(rill_version(), (unsigned)RILL_VERSION_HEX);
    cr_assert_eq(rill_version() >> 16, (unsigned)RILL_VERSION_MAJOR);
    cr_assert_eq((rill_version() >> 8) & 0xffu, (unsigned)RILL_VERSION_MINOR);
    cr_assert_eq(rill_version() & 0xffu, (unsigned)RILL_VERSION_PATCH);
}

Test(version, string_matches_macros)
{
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", RILL_VERSION_MAJOR, RILL_VERSION_MINOR,
             RILL_VERSION_PATCH);
    const char *v = rill_version_string();
    cr_assert_not_null(v);
    cr_assert_str_eq(v, want);
    cr_assert_str_eq(v, "0.1.0");
}

Test(version, string_is_static_and_stable)
{
    const char *a = rill_version_string();
    const char *b = rill_version_string();
    cr_assert_not_null(a);
    cr_assert_str_eq(a, b);
}
