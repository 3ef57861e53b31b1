/*
 * serve_int.h - internal to src/cli: the HTTP front end glue of `helix serve` (cmd_serve.c),
 * shared with `helix run --local` (cmd_run.c).
 */
#ifndef HX_CLI_SERVE_INT_H
#define HX_CLI_SERVE_INT_H

struct coord;

/*
 * Serve the OpenAI API on listen ("HOST:PORT", port 0 = any free port) with coordinator c as
 * the backend until *stop becomes nonzero; on_ready(url, user) (may be NULL) is called once
 * the server listens. Returns a CLI exit code.
 */
int serve_http_run(struct coord *c, const char *listen, const char *api_key, volatile int *stop,
                   void (*on_ready)(const char *url, void *user), void *user);

#endif
