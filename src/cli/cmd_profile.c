/*
 * cmd_profile.c - `helix profile`. Not built yet: it says so and fails.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

int cmd_profile(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: helix profile ...\n\n'helix profile' is not implemented yet.\n");
        return CLI_EXIT_OK;
    }
    return cli_error("'helix profile' is not implemented yet");
}
