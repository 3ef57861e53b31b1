/*
 * fuzz_shape.c - libFuzzer target for the link shaper's file parser (src/runtime/shape.h).
 *
 * The input is parsed as a shape file. Invariants (abort if broken): parsing never crashes
 * or reads out of bounds; a failure leaves no table and says "shape:LINE: FIELD:"; every
 * parsed link is found again by its two names with a rate >= 0 and a latency in [0, 3600] s;
 * a shaper fed one message per link releases them all, each peer's in order, by the time the
 * slowest is due.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "runtime/shape.h"
#include "runtime/xport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hx_diag d = {0};
    struct xport_shape *s = NULL;
    int rc = xport_shape_parse((const char *)data, size, "shape", &s, &d);
    if (rc != HX_OK) {
        if (s || rc != HX_EPARSE || strncmp(d.msg, "shape:", 6) != 0) {
            abort();
        }
        return 0;
    }
    /* every link of the input ends at "b" or not; a ROUTER "b" shapes those that do */
    struct xport_shaper *sh = NULL;
    xport_shaper_new(s, "b", NULL, &sh);
    const char *names[] = {"a", "coordinator", "c", "b-1"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        double bw = -1;
        double lat = -1;
        int found = xport_shape_link(s, names[i], "b", &bw, &lat);
        if (bw < 0 || lat < 0 || lat > 3600 || (!found && (bw != 0 || lat != 0))) {
            abort();
        }
        if (sh) {
            for (uint32_t k = 0; k < 3; k++) {
                struct xport_msg m;
                memset(&m, 0, sizeof(m));
                m.hdr.type = PROTO_TYPE_PREFILL;
                m.hdr.seq = (uint32_t)i * 16 + k;
                memcpy(m.peer, names[i], strlen(names[i]) + 1);
                xport_shaper_push(sh, &m, size * 1000 + k, (int64_t)k * 1000);
            }
        }
    }
    if (sh) {
        int64_t last = xport_shaper_next_due(sh);
        uint32_t next_k[4] = {0, 0, 0, 0};
        struct xport_msg out;
        int64_t now = 0;
        while (xport_shaper_held(sh) > 0) {
            int64_t due = xport_shaper_next_due(sh);
            if (due < last) {
                abort(); /* due times come out in order */
            }
            last = due;
            now = due;
            if (!xport_shaper_pop(sh, now, &out)) {
                abort();
            }
            uint32_t p = out.hdr.seq / 16;
            if (p >= 4 || out.hdr.seq % 16 != next_k[p]++) {
                abort(); /* one peer's messages in order */
            }
            xport_msg_release(&out);
        }
        if (xport_shaper_pop(sh, INT64_MAX, &out)) {
            abort();
        }
    }
    xport_shaper_free(sh);
    xport_shape_free(s);
    return 0;
}
