/* tool_run.h - running the rill-snapshot tool from a test: the one built
 * next to the test binary (<build>/tools/rill-snapshot, found from
 * /proc/self/exe), else build/tools/rill-snapshot from the repository
 * root; its exit status, standard output and standard error. Include
 * after common.h (the output goes through files in tmpdir). Header only:
 * every helper is static inline. */
#ifndef RILL_TESTS_TOOL_RUN_H
#define RILL_TESTS_TOOL_RUN_H

#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

static inline const char *tool(void)
{
    static char path[4096];
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *d = dirname(dirname(exe)); /* <build>/tests/NAME -> <build> */
        int len = snprintf(path, sizeof path, "%s/tools/rill-snapshot", d);
        if (len > 0 && (size_t)len < sizeof path && access(path, X_OK) == 0)
            return path;
    }
    snprintf(path, sizeof path, "build/tools/rill-snapshot");
    cr_assert_eq(access(path, X_OK), 0, "%s not built (make)", path);
    return path;
}

typedef struct result {
    int status; /* exit status */
    char *out, *err;
} result;

static inline char *slurp_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "open %s", path);
    size_t cap = 4096, len = 0;
    char *b = malloc(cap);
    cr_assert_not_null(b);
    size_t got;
    while ((got = fread(b + len, 1, cap - len - 1, f)) > 0) {
        len += got;
        if (cap - len < 2) {
            cap *= 2;
            b = realloc(b, cap);
            cr_assert_not_null(b);
        }
    }
    fclose(f);
    b[len] = '\0';
    return b;
}

/* Run the tool with the arguments (NULL-terminated); stdout and stderr
 * are captured. */
static inline result run(const char *arg, ...)
{
    const char *argv[16];
    int argc = 0;
    argv[argc++] = tool();
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a; a = va_arg(ap, const char *)) {
        cr_assert_lt(argc, 15);
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    char out[256], err[256];
    tmp_path(out, sizeof out, "tool.out");
    tmp_path(err, sizeof err, "tool.err");
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(126);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "the tool died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    result r = {WEXITSTATUS(st), slurp_text(out), slurp_text(err)};
    return r;
}

static inline void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

#endif
