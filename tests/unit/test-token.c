/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "token.h"

/* header {"alg":"HS256","typ":"JWT"}; payload {"sub":"x","exp":4102444800} (year 2100) */
#define JWT_FUTURE "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2ln"
/* payload {"sub":"x","exp":1000} */
#define JWT_PAST "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4IiwiZXhwIjoxMDAwfQ.c2ln"
/* payload {"sub":"x"} */
#define JWT_NO_EXP "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ4In0.c2ln"

static void test_jwt_exp(void **state) {
        int64_t exp = 0;

        assert_int_equal(jwt_get_exp(JWT_FUTURE, &exp), 0);
        assert_int_equal(exp, 4102444800);
        assert_int_equal(jwt_get_exp(JWT_PAST, &exp), 0);
        assert_int_equal(exp, 1000);
        assert_int_equal(jwt_get_exp(JWT_NO_EXP, &exp), -ENOENT);
        assert_int_equal(jwt_get_exp("", &exp), -EINVAL);
        assert_int_equal(jwt_get_exp("a.b", &exp), -EINVAL);
        assert_int_equal(jwt_get_exp("a.b.c.d", &exp), -EINVAL);
        assert_int_equal(jwt_get_exp("a+b.c.d", &exp), -EINVAL);
        assert_int_equal(jwt_get_exp("eyJ9.bm90IGpzb24.c2ln", &exp), -EINVAL); /* payload "not json" */
        assert_int_equal(jwt_get_exp(NULL, &exp), -EINVAL);
}

static void test_parse_response(void **state) {
        g_autofree char *token = NULL, *message = NULL;
        int64_t expires_in = 0;

        assert_int_equal(token_parse_response("{\"access_token\":\"abc.def.ghi\",\"access_token_id\":\"1\","
                                              "\"token_type\":\"Bearer\",\"expires_in\":3600}",
                                              &token, &expires_in, &message), 0);
        assert_string_equal(token, "abc.def.ghi");
        assert_int_equal(expires_in, 3600);
        g_clear_pointer(&token, g_free);

        /* Kotlin's sample declares expires_in as a String. */
        assert_int_equal(token_parse_response("{\"access_token\":\"t\",\"expires_in\":\"60\"}", &token, &expires_in,
                                              &message), 0);
        assert_int_equal(expires_in, 60);
        g_clear_pointer(&token, g_free);

        static const char *const bad[] = {
                "", "null", "[]", "{", "garbage", "{\"expires_in\":3600}", "{\"access_token\":\"\"}",
                "{\"access_token\":5}", "{\"access_token\":\"t\",\"expires_in\":-1}",
                "{\"access_token\":\"t\",\"expires_in\":\"soon\"}", "{\"access_token\":\"t\",\"expires_in\":[1]}",
                "{\"access_token\":\"a\\r\\nX-Injected: 1\"}",
        };
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_clear_pointer(&message, g_free);
                assert_int_equal(token_parse_response(bad[i], &token, &expires_in, &message), -EBADMSG);
                assert_non_null(message);
                assert_null(token);
        }
}

static void test_set_external(void **state) {
        Config *c = config_new();
        Token *t;
        g_autofree char *message = NULL;

        c->token_mode = TOKEN_MODE_EXTERNAL;
        t = token_new(c, NULL, NULL);
        assert_int_equal(token_get_state(t), TOKEN_STATE_NONE);
        assert_null(token_peek(t));

        assert_int_equal(token_set_external(t, "not-a-jwt", &message), -EINVAL);
        assert_non_null(strstr(message, "not a JWT"));
        g_clear_pointer(&message, g_free);
        assert_int_equal(token_set_external(t, JWT_PAST, &message), -EINVAL);
        assert_non_null(strstr(message, "past"));
        g_clear_pointer(&message, g_free);
        assert_int_equal(token_get_state(t), TOKEN_STATE_NONE);

        assert_int_equal(token_set_external(t, JWT_FUTURE, &message), 0);
        assert_int_equal(token_get_state(t), TOKEN_STATE_VALID);
        assert_string_equal(token_peek(t), JWT_FUTURE);
        assert_int_equal(token_get_expires_at(t), (uint64_t) 4102444800 * 1000000);

        token_free(t);
        config_free(c);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_jwt_exp),
                cmocka_unit_test(test_parse_response),
                cmocka_unit_test(test_set_external),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
