/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors header parser (eng_st_parse), fed
 * the whole input as a file in memory, and for the config.json parser on the same bytes. Any
 * input must give HX_OK or a diagnosed error: never a crash, leak or out-of-bounds read.
 * When the header parses, every tensor's byte range is checked to lie inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/status.h"
#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hx_diag diag = {0};
    struct eng_st_file f;
    if (eng_st_parse(data, size, "fuzz", &f, &diag) == HX_OK) {
        for (int i = 0; i < f.n_tensors; i++) {
            const struct eng_st_tensor *t = &f.tensors[i];
            if (t->begin > t->end || t->end > size || t->begin < f.data_start) {
                abort();
            }
            if (eng_st_find(&f, t->name) == NULL) {
                abort();
            }
        }
        eng_st_release(&f);
    } else if (diag.msg[0] == '\0') {
        abort(); /* every error carries a message */
    }
    struct eng_config c;
    hx_diag_clear(&diag);
    (void)eng_config_parse((const char *)data, size, "fuzz.json", &c, &diag);
    return 0;
}
