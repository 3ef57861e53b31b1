/*
 * cmd_keygen.c - `helix keygen --out FILE`: make a CURVE key pair for `helix serve
 * --key-file` / `helix worker --key-file`. The secret key goes into FILE (created with mode
 * 0600, never overwritten); the public key is printed on stdout, for --coordinator-key or a
 * line of the coordinator's --worker-keys file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/status.h"
#include "cli/cli.h"
#include "runtime/xsec.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: helix keygen --out FILE\n"
               "\n"
               "Make a ZeroMQ CURVE key pair. The secret key is written to FILE (mode 0600;\n"
               "an existing FILE is left alone and is an error), the public key (Z85, 40\n"
               "characters) is printed on stdout.\n"
               "\n"
               "  coordinator: helix serve --key-file FILE; workers get --coordinator-key PUBLIC\n"
               "  worker:      helix worker --key-file FILE; the coordinator's --worker-keys\n"
               "               file gets the line 'NAME PUBLIC'\n");
}

int cmd_keygen(int argc, char **argv)
{
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else {
            return cli_usage_error("keygen", "unknown or incomplete option '%s'", argv[i]);
        }
    }
    if (!out) {
        return cli_usage_error("keygen", "--out FILE is required");
    }
    struct xsec_keypair kp;
    struct hx_diag d = {0};
    if (xsec_keypair_new(&kp, &d) != 0) {
        return cli_error("%s", d.msg);
    }
    int fd = open(out, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        memset(&kp, 0, sizeof(kp));
        return cli_error("%s: %s", out, strerror(errno));
    }
    char line[128];
    int n = snprintf(line, sizeof(line), "# helix CURVE secret key; public key %s\n%s\n",
                     kp.public_key, kp.secret_key);
    int ok = write(fd, line, (size_t)n) == (ssize_t)n;
    ok &= close(fd) == 0;
    memset(line, 0, sizeof(line));
    memset(kp.secret_key, 0, sizeof(kp.secret_key));
    if (!ok) {
        return cli_error("%s: write failed", out);
    }
    printf("%s\n", kp.public_key);
    return CLI_EXIT_OK;
}
