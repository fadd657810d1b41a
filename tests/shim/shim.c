/* shim.c - the runner behind tests/shim/criterion/criterion.h: runs every
 * registered test in a forked process (with its timeout) and prints the
 * same "Synthesis" line as Criterion, which scripts/run-tests.sh reads. */
#include "criterion/criterion.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static struct cr_shim_test *tests, **tail = &tests;
static struct cr_shim_suite *suites;
static int expect_failed;

void cr_shim_register(struct cr_shim_test *t)
{
    *tail = t;
    tail = &t->next;
}

void cr_shim_fail(int fatal, const char *file, int line, const char *expr, const char *fmt, ...)
{
    fprintf(stderr, "[----] %s:%d: Assertion Failed\n[----]   ", file, line);
    if (fmt[0]) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    } else {
        fputs(expr, stderr);
    }
    fputc('\n', stderr);
    fflush(stderr);
    if (fatal)
        _exit(1);
    expect_failed = 1;
}

void cr_shim_skip(const char *fmt, ...)
{
    fputs("[SKIP] ", stderr);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(0); /* counts as passing */
}

void cr_shim_register_suite(struct cr_shim_suite *s)
{
    s->next = suites;
    suites = s;
}

static const struct cr_shim_suite *suite_of(const struct cr_shim_test *t)
{
    for (const struct cr_shim_suite *s = suites; s; s = s->next)
        if (strcmp(s->name, t->suite) == 0)
            return s;
    return NULL;
}

int main(void)
{
    int tested = 0, passing = 0, failing = 0, crashing = 0;
    for (struct cr_shim_test *t = tests; t; t = t->next) {
        if (t->opts.disabled)
            continue;
        tested++;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            alarm((unsigned)(t->opts.timeout > 0 ? t->opts.timeout : 300));
            const struct cr_shim_suite *s = suite_of(t);
            if (s && s->opts.init)
                s->opts.init();
            if (t->opts.init)
                t->opts.init();
            t->fn();
            if (t->opts.fini)
                t->opts.fini();
            if (s && s->opts.fini)
                s->opts.fini();
            fflush(NULL);
            _exit(expect_failed);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0)
            ;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            passing++;
        } else if (WIFEXITED(st)) {
            failing++;
            printf("[FAIL] %s::%s (exit status %d)\n", t->suite, t->name, WEXITSTATUS(st));
        } else {
            crashing++;
            printf("[FAIL] %s::%s: CRASH (signal %d)\n", t->suite, t->name, WTERMSIG(st));
        }
        fflush(stdout);
    }
    printf("[====] Synthesis: Tested: %d | Passing: %d | Failing: %d | Crashing: %d \n", tested,
           passing, failing + crashing, crashing);
    return failing + crashing ? 1 : 0;
}
