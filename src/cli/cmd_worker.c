/*
 * cmd_worker.c - `helix worker`. Not built yet: it says so and fails (issue #6).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_worker(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: helix worker ...\n\n'helix worker' is not implemented yet (issue #6).\n");
        return CLI_EXIT_OK;
    }
    return cli_error("'helix worker' is not implemented yet (issue #6)");
}
