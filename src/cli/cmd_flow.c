/*
 * cmd_flow.c - `helix flow`. Not built yet: it says so and fails (issue #2).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_flow(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: helix flow ...\n\n'helix flow' is not implemented yet (issue #2).\n");
        return CLI_EXIT_OK;
    }
    return cli_error("'helix flow' is not implemented yet (issue #2)");
}
