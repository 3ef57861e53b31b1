/*
 * cmd_generate.c - `helix generate`. Not built yet: it says so and fails (issue #5).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_generate(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf(
            "usage: helix generate ...\n\n'helix generate' is not implemented yet (issue #5).\n");
        return CLI_EXIT_OK;
    }
    return cli_error("'helix generate' is not implemented yet (issue #5)");
}
