/*
 * fuzz_validate — differential: the allocation-free validator's verdict on
 * one event equals jansson's (json_loadb(buf, len, 0) succeeding with an
 * object root), on every input; and its "empty object" flag equals
 * json_object_size() == 0.  The input is the whole event, any bytes.
 */
#include <jansson.h>
#include <stdbool.h>

#include "fuzz.h"
#include "sluice/validate.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t err;
    bool empty = false;
    enum sl_validate_result r = sl_validate_object((const char *)data, size, &empty);
    json_t *root = json_loadb((const char *)data, size, 0, &err);
    bool want = root != NULL && json_is_object(root);

    fuzz_require((r == SL_VALID) == want, "validator says %s, jansson %s (%s) on %zu bytes",
                 sl_validate_reason(r), want ? "accepts" : "rejects",
                 root == NULL ? err.text : "parsed", size);
    if (want) {
        fuzz_require(empty == (json_object_size(root) == 0), "empty flag %d, jansson size %zu",
                     empty, json_object_size(root));
    } else {
        fuzz_require(!empty, "empty flag set on a rejected input");
    }
    json_decref(root);
    return 0;
}
