/*
 * cmd_plan.c - `helix plan`. Not built yet: it says so and fails (issue #3).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_plan(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: helix plan ...\n\n'helix plan' is not implemented yet (issue #3).\n");
        return CLI_EXIT_OK;
    }
    return cli_error("'helix plan' is not implemented yet (issue #3)");
}
