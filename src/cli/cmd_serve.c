/*
 * cmd_serve.c - `helix serve`. Not built yet: it says so and fails (issue #6).
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_serve(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: helix serve ...\n\n'helix serve' is not implemented yet (issue #6).\n");
        return CLI_EXIT_OK;
    }
    return cli_error("'helix serve' is not implemented yet (issue #6)");
}
