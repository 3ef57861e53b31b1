/*
 * cmd_version.c - `helix version`.
 */
#include <stdio.h>

#include "cli/cli.h"

#define HELIX_VERSION "0.1.0"

int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("helix %s\n", HELIX_VERSION);
    return CLI_EXIT_OK;
}
