/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "phone.h"
#include "token.h"

/* Everything bwcalld parses from the token endpoint or from D-Bus callers before it touches
 * the network: the token endpoint's JSON body, a JWT's payload (SetOAuthToken and fetched
 * tokens) and the number given to Dial(). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        g_autofree char *text = g_strndup((const char *) data, size);
        g_autofree char *token = NULL, *message = NULL, *number = NULL, *number_message = NULL;
        int64_t expires_in = 0, exp = 0;

        if (token_parse_response(text, &token, &expires_in, &message) == 0) {
                /* A parsed token is non-empty and has no whitespace (it goes into a SIP header). */
                if (!token || !*token || strpbrk(token, "\r\n \t"))
                        __builtin_trap();
        }
        (void) jwt_get_exp(text, &exp);
        if (phone_normalize_number(text, &number, &number_message) == 0) {
                size_t n = strlen(number);
                if (n < 3 || n > 16 || number[0] != '+' || strspn(number + 1, "0123456789") != n - 1)
                        __builtin_trap();
        }
        return 0;
}
