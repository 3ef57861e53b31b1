/*
 * main.c - the `helix` binary: git-style dispatch from a commands[] table to cmd_<name>().
 * Only the CLI calls exit(); every library module reports errors through return codes.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

/*
 * OpenBLAS's own threads spin on idle cores; CBC (which links BLAS) then competes with its own
 * worker threads (deps.md). The CPU engine runs its own thread pool over single-threaded BLAS
 * calls, so one OpenBLAS thread is right for every subcommand.
 */
void openblas_set_num_threads(int num_threads);

struct command {
    const char *name;
    cmd_fn *fn;
    const char *summary;
};

static const struct command commands[] = {
    {"flow", cmd_flow, "score a placement: max-flow throughput, upper bound, bottleneck"},
    {"plan", cmd_plan, "place layers on a cluster to maximise throughput"},
    {"simulate", cmd_simulate, "discrete-event simulation of a placement under load"},
    {"generate", cmd_generate, "run the model in one process (or one layer range)"},
    {"serve", cmd_serve, "coordinator: OpenAI-compatible HTTP API over ZeroMQ workers"},
    {"worker", cmd_worker, "worker: run a layer range for a coordinator"},
    {"run", cmd_run, "start a local heterogeneous cluster serving the bundled model"},
    {"profile", cmd_profile,
     "measure this machine's per-layer times for a model (for the planner)"},
    {"keygen", cmd_keygen, "make a CURVE key pair (--key-file of serve and worker)"},
    {"version", cmd_version, "print the version"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out, "usage: helix <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\n'helix <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    openblas_set_num_threads(1);
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        return cmd_version(argc - 1, argv + 1);
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "hx: error: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
