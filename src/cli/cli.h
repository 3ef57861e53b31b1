/*
 * cli.h - shared helpers for the `helix` subcommands: the command table entry type, usage
 * errors (exit 2), runtime errors (exit 1), and locating bundled data (data/, models/)
 * relative to the binary so a fresh clone works from any directory.
 */
#ifndef HX_CLI_CLI_H
#define HX_CLI_CLI_H

#include <stddef.h>

/* Exit codes (style.md §10). */
#define CLI_EXIT_OK 0
#define CLI_EXIT_RUNTIME 1
#define CLI_EXIT_USAGE 2

/* Every subcommand: argv[0] is the subcommand name. Returns the process exit code. */
typedef int cmd_fn(int argc, char **argv);

int cmd_flow(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_simulate(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_worker(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_profile(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_keygen(int argc, char **argv);

/* Print "hx: error: <msg>" and "see 'helix <cmd> --help'" to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "hx: error: <msg>" to stderr; returns CLI_EXIT_RUNTIME. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Root of the bundled files (the directory holding data/ and models/): $HELIX_HOME if set,
 * else the repository the binary was built in (binary at <root>/build/<variant>/helix),
 * else the current directory. Writes into out; returns 0 or -1 if it does not fit.
 */
int cli_home_dir(char *out, size_t n);

/*
 * Resolve a model profile: a path to an existing file is used as is; a bare name such as
 * "llama2_70b" becomes <home>/data/models/<name>.ini. Returns 0, or -1 (out holds the
 * path that was tried, for the error message).
 */
int cli_resolve_model_profile(const char *name, char *out, size_t n);

/* Resolve a bundled file: an existing path as is, else <home>/<rel>. Returns 0 or -1. */
int cli_resolve_data(const char *path_or_rel, char *out, size_t n);

struct eng_backend;

/*
 * Open the backend a --device value names (cpu, cuda, cuda:N; threads: the CPU backend's,
 * 0 = all CPUs), as `helix generate` does. On success *out is the backend (free with
 * eng_backend_free), desc gets the device in words for REGISTER and the logs ("cpu",
 * "cuda:0 NVIDIA H100 80GB HBM3") and name the hardware alone ("cpu", "NVIDIA H100 80GB
 * HBM3"); returns 0. When it cannot be opened (a binary without CUDA, no usable GPU, no such
 * GPU) prints "hx: error: <why>" and returns CLI_EXIT_USAGE.
 */
int cli_backend_open(const char *device, int threads, struct eng_backend **out, char *desc,
                     size_t desc_n, char *name, size_t name_n);

/*
 * `--cpus LIST` of `helix worker` / `helix profile`: parse LIST (Linux cpulist syntax,
 * "0-3,8,10-11"), check that its CPUs are online and allowed, and pin every thread of the
 * process to them (runtime/cpus.h); call it before starting the engine's threads. On success
 * *n_cpus is the number of CPUs and canon the list in canonical form; returns 0. A bad list
 * or a CPU that is not online / not allowed prints the usage error and returns
 * CLI_EXIT_USAGE; a failed system call prints the error and returns CLI_EXIT_RUNTIME.
 */
int cli_cpus_pin(const char *cmd, const char *list, int *n_cpus, char *canon, size_t canon_n);

/* Parse a strictly positive/non-negative number option; return 0 or -1 on junk. */
int cli_parse_double(const char *s, double *out);
int cli_parse_long(const char *s, long *out);

#endif
