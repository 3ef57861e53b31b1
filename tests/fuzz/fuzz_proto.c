/*
 * fuzz_proto.c - libFuzzer target for the wire format (src/runtime/proto.h).
 *
 * Input: byte 0 picks the mode, the rest is the payload.
 *  - even: the next PROTO_HEADER_BYTES bytes are a header frame and the remainder its payload
 *    frame, decoded with proto_msg_decode (body included);
 *  - odd: byte 1 picks a message type and the remainder is decoded as that type's body.
 * Invariants (abort if broken): decoding never crashes or reads out of bounds, and whatever
 * decodes re-encodes to exactly the same bytes (the encoding is canonical), so nothing a
 * decoder accepts can be misread by a peer.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"
#include "base/strbuf.h"
#include "runtime/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_body_reencodes(int type, const union proto_body *b, const uint8_t *bytes,
                                 size_t len)
{
    struct strbuf sb;
    strbuf_init(&sb);
    if (proto_body_encode(type, b, &sb, NULL) != HX_OK || sb.len != len ||
        (len && memcmp(sb.buf, bytes, len) != 0)) {
        abort();
    }
    strbuf_release(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t mode = data[0];
    data++;
    size--;
    struct hx_diag d = {0};
    if ((mode & 1) == 0) {
        size_t hl = size < PROTO_HEADER_BYTES ? size : PROTO_HEADER_BYTES;
        struct proto_header h;
        union proto_body b;
        if (proto_msg_decode(data, hl, data + hl, size - hl, &h, &b, &d) == HX_OK) {
            uint8_t again[PROTO_HEADER_BYTES];
            if (proto_header_encode(&h, again, NULL) != HX_OK ||
                memcmp(again, data, PROTO_HEADER_BYTES) != 0) {
                abort();
            }
            /* Advancing a valid forward header yields a valid header or fails cleanly. */
            struct proto_header next = h;
            uint32_t hidden = 1u + (uint32_t)(h.seed % 8192);
            if (proto_header_advance(&next, PROTO_DTYPE_F16, hidden, NULL) == HX_OK &&
                (proto_header_check(&next, NULL) != HX_OK || next.cur_hop != h.cur_hop + 1)) {
                abort();
            }
            if (proto_type_has_body(h.type)) {
                check_body_reencodes(h.type, &b, data + hl, size - hl);
                proto_body_release(h.type, &b);
            }
        } else if (d.msg[0] == '\0') {
            abort(); /* every failure explains itself */
        }
        return 0;
    }
    if (size < 1) {
        return 0;
    }
    int type = data[0] % 16;
    union proto_body b;
    if (proto_body_decode(type, data + 1, size - 1, &b, &d) == HX_OK) {
        check_body_reencodes(type, &b, data + 1, size - 1);
        proto_body_release(type, &b);
    } else if (d.msg[0] == '\0') {
        abort();
    }
    return 0;
}
