/*
 * cmd_simulate.c - `helix simulate`. Not built yet: it says so and fails (issue #4).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_simulate(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf(
            "usage: helix simulate ...\n\n'helix simulate' is not implemented yet (issue #4).\n");
        return CLI_EXIT_OK;
    }
    return cli_error("'helix simulate' is not implemented yet (issue #4)");
}
