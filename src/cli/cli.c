/*
 * cli.c - helpers shared by the subcommands (errors, bundled-data lookup, number parsing).
 */
#define _GNU_SOURCE
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/status.h"
#include "engine/engine.h"
#include "runtime/cpus.h"
#ifdef HX_HAVE_CUDA
#include "engine/cuda/cuda.h"
#endif

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hx: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nsee 'helix %s --help'\n", cmd);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "hx: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return CLI_EXIT_RUNTIME;
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int cli_home_dir(char *out, size_t n)
{
    const char *env = getenv("HELIX_HOME");
    if (env && *env) {
        return snprintf(out, n, "%s", env) < (int)n ? 0 : -1;
    }
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (len > 0) {
        exe[len] = '\0';
        /* <root>/build/<variant>/helix -> <root> */
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash) {
                break;
            }
            *slash = '\0';
            char probe[PATH_MAX + 16];
            snprintf(probe, sizeof(probe), "%s/data", exe);
            if (up > 0 && is_dir(probe)) {
                return snprintf(out, n, "%s", exe) < (int)n ? 0 : -1;
            }
        }
    }
    return snprintf(out, n, ".") < (int)n ? 0 : -1;
}

int cli_resolve_data(const char *path_or_rel, char *out, size_t n)
{
    if (is_file(path_or_rel) || is_dir(path_or_rel)) {
        return snprintf(out, n, "%s", path_or_rel) < (int)n ? 0 : -1;
    }
    char home[PATH_MAX];
    if (cli_home_dir(home, sizeof(home)) != 0) {
        return -1;
    }
    snprintf(out, n, "%s/%s", home, path_or_rel);
    return (is_file(out) || is_dir(out)) ? 0 : -1;
}

int cli_resolve_model_profile(const char *name, char *out, size_t n)
{
    if (strchr(name, '/') || strstr(name, ".ini")) {
        snprintf(out, n, "%s", name);
        return is_file(name) ? 0 : -1;
    }
    char rel[PATH_MAX];
    snprintf(rel, sizeof(rel), "data/models/%s.ini", name);
    return cli_resolve_data(rel, out, n);
}

int cli_parse_double(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_long(const char *s, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

int cli_backend_open(const char *device, int threads, struct eng_backend **out, char *desc,
                     size_t desc_n, char *name, size_t name_n)
{
    struct hx_diag d;
    int is_cuda = 0;
    int index = 0;
    *out = NULL;
    if (eng_device_parse(device, &is_cuda, &index, &d) != HX_OK ||
        eng_backend_open(device, threads, out, &d) != HX_OK) {
        /* no GPU, no such GPU, or a binary without CUDA: the work cannot be done here */
        fprintf(stderr, "hx: error: %s\n", d.msg);
        return CLI_EXIT_USAGE;
    }
    const char *hw = "cpu";
#ifdef HX_HAVE_CUDA
    if (is_cuda) {
        hw = eng_cuda_device_name(*out);
        hw = hw && hw[0] ? hw : "unknown GPU";
    }
#endif
    if (is_cuda) {
        snprintf(desc, desc_n, "cuda:%d %s", index, hw);
    } else {
        snprintf(desc, desc_n, "cpu");
    }
    snprintf(name, name_n, "%s", hw);
    return 0;
}

int cli_cpus_pin(const char *cmd, const char *list, int *n_cpus, char *canon, size_t canon_n)
{
    struct rt_cpus c;
    struct hx_diag d = {0};
    if (rt_cpus_parse(list, &c, &d) != HX_OK) {
        return cli_usage_error(cmd, "--cpus: %s", d.msg);
    }
    int rc = rt_cpus_pin(&c, &d);
    if (rc == HX_EINVAL) {
        return cli_usage_error(cmd, "--cpus %s: %s", list, d.msg);
    }
    if (rc != HX_OK) {
        return cli_error("--cpus %s: %s", list, d.msg);
    }
    *n_cpus = rt_cpus_count(&c);
    rt_cpus_format(&c, canon, canon_n);
    return 0;
}
