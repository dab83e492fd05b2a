/*
 * fuzz_fcgiwire.c - libFuzzer target for the FastCGI head check
 * (src/fcgiwire.c): any bytes, scanned whole and as every prefix a peek
 * may return. Properties: no read outside the input (ASan), a verdict
 * that only moves forward as bytes arrive (a prefix of a complete head is
 * never bad; once bad, stays bad), and a reason with every BAD.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fcgiwire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fcgiwire_head h;
    unsigned char *copy = malloc(size ? size : 1); /* exact size: ASan sees overreads */
    int whole, prev = FCGIWIRE_INCOMPLETE;

    memcpy(copy, data, size);
    whole = fcgiwire_scan(copy, size, &h);
    if (whole == FCGIWIRE_BAD && h.why == NULL)
        abort();
    for (size_t n = 0; n <= size; n += 1 + n / 16) {
        int st = fcgiwire_scan(copy, n, &h);

        if (prev == FCGIWIRE_BAD && st != FCGIWIRE_BAD)
            abort();
        if (whole == FCGIWIRE_COMPLETE && st == FCGIWIRE_BAD)
            abort();
        prev = st;
    }
    free(copy);
    return 0;
}
