/*
 * fuzz_gguf.c - libFuzzer target for the GGUF parser (eng_gguf_parse), fed the whole input as a
 * file in memory, then the LLaMA configuration from its metadata (eng_gguf_config). Any input
 * must give HX_OK or a diagnosed error: never a crash, leak or out-of-bounds read. When the
 * file parses, every tensor's byte range is checked to lie inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/status.h"
#include "engine/engine_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hx_diag diag = {0};
    struct eng_gguf g;
    if (eng_gguf_parse(data, size, "fuzz.gguf", &g, &diag) == HX_OK) {
        for (int i = 0; i < g.st.n_tensors; i++) {
            const struct eng_st_tensor *t = &g.st.tensors[i];
            if (t->begin > t->end || t->end > size || t->begin < g.st.data_start) {
                abort();
            }
        }
        struct eng_config c;
        hx_diag_clear(&diag);
        if (eng_gguf_config(&g, "fuzz.gguf", &c, &diag) != HX_OK && diag.msg[0] == '\0') {
            abort();
        }
        eng_gguf_release(&g);
    } else if (diag.msg[0] == '\0') {
        abort(); /* every error carries a message */
    }
    return 0;
}
