/*
 * A stand-in for the small part of Criterion's API the runtime tests use,
 * for the ThreadSanitizer build only: Criterion 2.4 cannot set up its
 * shared-memory arena inside ThreadSanitizer's address layout, so under
 * TSan the same test sources are linked with this header and shim.c.
 *
 * Supported: Test(suite, name[, .timeout = s, .init = f, .fini = f,
 * .disabled = b]), TestSuite(suite[, .init = f, .fini = f]), cr_assert, cr_assert_{eq,neq,lt,leq,gt,geq},
 * cr_assert_{null,not_null}, cr_assert_str_{eq,neq,empty}, cr_assert_fail
 * and the cr_expect forms of each, and cr_skip_test (the test counts as
 * passing). Every test runs in its own forked
 * process; a failed assertion ends that process.
 */
#ifndef RILL_TEST_SHIM_CRITERION_H
#define RILL_TEST_SHIM_CRITERION_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct cr_shim_opts {
    int unused_; /* lets Test() without options expand to a valid initializer */
    double timeout;
    void (*init)(void);
    void (*fini)(void);
    bool disabled;
};

struct cr_shim_test {
    const char *suite;
    const char *name;
    void (*fn)(void);
    struct cr_shim_opts opts;
    struct cr_shim_test *next;
};

struct cr_shim_suite {
    const char *name;
    struct cr_shim_opts opts;
    struct cr_shim_suite *next;
};

void cr_shim_register(struct cr_shim_test *t);
void cr_shim_register_suite(struct cr_shim_suite *s);
void cr_shim_fail(int fatal, const char *file, int line, const char *expr, const char *fmt,
                  ...) __attribute__((format(printf, 5, 6)));
void cr_shim_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define Test(suite, name, ...)                                                         \
    static void cr_shim_fn_##suite##_##name(void);                                     \
    static struct cr_shim_test cr_shim_t_##suite##_##name = {                          \
        #suite, #name, cr_shim_fn_##suite##_##name, {.unused_ = 0, __VA_ARGS__}, NULL}; \
    __attribute__((constructor)) static void cr_shim_reg_##suite##_##name(void)        \
    {                                                                                  \
        cr_shim_register(&cr_shim_t_##suite##_##name);                                 \
    }                                                                                  \
    static void cr_shim_fn_##suite##_##name(void)

/* Suite options: .init and .fini run around every test of the suite. */
#define TestSuite(suite, ...)                                                    \
    static struct cr_shim_suite cr_shim_s_##suite = {                            \
        #suite, {.unused_ = 0, __VA_ARGS__}, NULL};                              \
    __attribute__((constructor)) static void cr_shim_sreg_##suite(void)          \
    {                                                                            \
        cr_shim_register_suite(&cr_shim_s_##suite);                              \
    }                                                                            \
    extern int cr_shim_suite_semicolon_ /* takes the ';' after TestSuite() */

#define cr_skip_test(...) cr_shim_skip(__VA_ARGS__)

#define CR_SHIM_CHECK(fatal, cond, expr, ...) \
    ((cond) ? (void)0 : cr_shim_fail(fatal, __FILE__, __LINE__, expr, "" __VA_ARGS__))

#define cr_assert(c, ...) CR_SHIM_CHECK(1, (c), #c, __VA_ARGS__)
#define cr_expect(c, ...) CR_SHIM_CHECK(0, (c), #c, __VA_ARGS__)
#define cr_assert_fail(...) CR_SHIM_CHECK(1, 0, "fail", __VA_ARGS__)
#define cr_expect_fail(...) CR_SHIM_CHECK(0, 0, "fail", __VA_ARGS__)

#define CR_SHIM_CMP(fatal, a, op, b, ...) \
    CR_SHIM_CHECK(fatal, (a)op(b), #a " " #op " " #b, __VA_ARGS__)
#define cr_assert_eq(a, b, ...) CR_SHIM_CMP(1, a, ==, b, __VA_ARGS__)
#define cr_assert_neq(a, b, ...) CR_SHIM_CMP(1, a, !=, b, __VA_ARGS__)
#define cr_assert_lt(a, b, ...) CR_SHIM_CMP(1, a, <, b, __VA_ARGS__)
#define cr_assert_leq(a, b, ...) CR_SHIM_CMP(1, a, <=, b, __VA_ARGS__)
#define cr_assert_gt(a, b, ...) CR_SHIM_CMP(1, a, >, b, __VA_ARGS__)
#define cr_assert_geq(a, b, ...) CR_SHIM_CMP(1, a, >=, b, __VA_ARGS__)
#define cr_expect_eq(a, b, ...) CR_SHIM_CMP(0, a, ==, b, __VA_ARGS__)
#define cr_expect_neq(a, b, ...) CR_SHIM_CMP(0, a, !=, b, __VA_ARGS__)
#define cr_expect_lt(a, b, ...) CR_SHIM_CMP(0, a, <, b, __VA_ARGS__)
#define cr_expect_leq(a, b, ...) CR_SHIM_CMP(0, a, <=, b, __VA_ARGS__)
#define cr_expect_gt(a, b, ...) CR_SHIM_CMP(0, a, >, b, __VA_ARGS__)
#define cr_expect_geq(a, b, ...) CR_SHIM_CMP(0, a, >=, b, __VA_ARGS__)

#define cr_assert_null(p, ...) CR_SHIM_CHECK(1, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_assert_not_null(p, ...) CR_SHIM_CHECK(1, (p) != NULL, #p " != NULL", __VA_ARGS__)
#define cr_expect_null(p, ...) CR_SHIM_CHECK(0, (p) == NULL, #p " == NULL", __VA_ARGS__)
#define cr_expect_not_null(p, ...) CR_SHIM_CHECK(0, (p) != NULL, #p " != NULL", __VA_ARGS__)

#define cr_assert_str_eq(a, b, ...) \
    CR_SHIM_CHECK(1, strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_assert_str_neq(a, b, ...) \
    CR_SHIM_CHECK(1, strcmp((a), (b)) != 0, #a " differs from " #b, __VA_ARGS__)
#define cr_assert_str_empty(a, ...) CR_SHIM_CHECK(1, (a)[0] == '\0', #a " is empty", __VA_ARGS__)
#define cr_expect_str_eq(a, b, ...) \
    CR_SHIM_CHECK(0, strcmp((a), (b)) == 0, #a " equals " #b, __VA_ARGS__)
#define cr_expect_str_empty(a, ...) CR_SHIM_CHECK(0, (a)[0] == '\0', #a " is empty", __VA_ARGS__)

#endif
