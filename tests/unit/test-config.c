/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "config.h"
#include "phone.h"

static char *write_file(const char *dir, const char *name, const char *text, mode_t mode) {
        char *path = g_build_filename(dir, name, NULL);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
        assert_int_equal(chmod(path, mode), 0);
        return path;
}

static void test_presets(void **state) {
        g_autofree char *dir = g_dir_make_tmp("bwcall-config-XXXXXX", NULL);
        g_autofree char *path = write_file(dir, "bwcall.conf",
                                           "[Network]\nPreset=global\n[Account]\nCallerId=+15551230000\n", 0644);
        Config *c = config_new();

        assert_int_equal(config_load_file(c, path, true), 0);
        assert_int_equal(config_finalize(c), 0);
        assert_string_equal(c->servers[0], "wss://sbc.webrtc-app.bandwidth.com:10081");
        assert_string_equal(c->domain, "sbc.webrtc-app.bandwidth.com");
        assert_string_equal(c->token_endpoint, "https://id.voxbone.com/api/v1/oauth2/token");
        config_free(c);

        /* Explicit values win over the preset. */
        c = config_new();
        g_free(path);
        path = write_file(dir, "bwcall.conf",
                          "[Network]\nPreset=us\nServers=wss://localhost:1/\nDomain=example.org\n"
                          "[Account]\nCallerId=+15551230000\n[Token]\nEndpoint=https://localhost:2/t\n", 0644);
        assert_int_equal(config_load_file(c, path, true), 0);
        assert_int_equal(config_finalize(c), 0);
        assert_string_equal(c->servers[0], "wss://localhost:1/");
        assert_string_equal(c->domain, "example.org");
        assert_string_equal(c->token_endpoint, "https://localhost:2/t");
        config_free(c);
        g_unlink(path);
        g_rmdir(dir);
}

static void test_server_weights(void **state) {
        g_autofree char *dir = g_dir_make_tmp("bwcall-config-XXXXXX", NULL);
        g_autofree char *path = write_file(dir, "bwcall.conf",
                                           "[Network]\nServers=wss://a:10081 10; wss://b:10081 ;ws://c:80\t5\n"
                                           "Domain=d\n[Account]\nCallerId=+15551230000\n[Token]\nMode=external\n", 0644);
        Config *c = config_new();

        assert_int_equal(config_load_file(c, path, true), 0);
        assert_int_equal(config_finalize(c), 0);
        assert_int_equal(g_strv_length(c->servers), 3);
        assert_string_equal(c->servers[0], "wss://a:10081");
        assert_string_equal(c->servers[1], "wss://b:10081");
        assert_string_equal(c->servers[2], "ws://c:80");
        assert_int_equal(c->server_weights[0], 10);
        assert_int_equal(c->server_weights[1], 0); /* the SDK's default weight */
        assert_int_equal(c->server_weights[2], 5);
        assert_int_equal(c->reconnect_min_s, 2);
        assert_int_equal(c->reconnect_max_s, 30);
        config_free(c);
        g_unlink(path);
        g_rmdir(dir);
}

static void test_bad_config(void **state) {
        g_autofree char *dir = g_dir_make_tmp("bwcall-config-XXXXXX", NULL);
        static const char *const bad[] = {
                "[Network]\nPreset=mars\n[Account]\nCallerId=+1555\n",           /* unknown preset */
                "[Network]\nServers=http://x/\nDomain=d\n[Account]\nCallerId=+1\n", /* not ws */
                "[Network]\nPreset=us\n",                                        /* no caller id */
                "[Network]\nPreset=us\n[Account]\nCallerId=+1\n[Token]\nMode=magic\n",
                "[Network]\nPreset=us\n[Account]\nCallerId=+1\n[Media]\nLatencyMSec=-5\n",
                "[Network]\nPreset=us\n[Account]\nCallerId=+1\n[Token]\nClientSecret=oops\n",
                "[Network]\nPreset=us\n[Account]\nCallerId=+1\n[Token]\nMode=token-url\n", /* no Url= */
                "[Network]\nPreset=us\n[Account]\nCallerId=+1\n[Token]\nMode=token-url\nUrl=http://x/t\n",
                "[Network]\nPreset=us\n[Account]\nCallerId=+1\n[Token]\nEndpoint=http://id/token\n",
                "[Network]\nServers=wss://a:1 heavy\nDomain=d\n[Account]\nCallerId=+1\n",  /* weight not a number */
                "[Network]\nServers=wss://a:1 1 2\nDomain=d\n[Account]\nCallerId=+1\n",
                "[Network]\nPreset=us\nReconnectMinSec=40\nReconnectMaxSec=30\n[Account]\nCallerId=+1\n",
                "this is not an ini file",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *path = write_file(dir, "bad.conf", bad[i], 0644);
                Config *c = config_new();
                int r = config_load_file(c, path, true);
                if (r >= 0)
                        r = config_finalize(c);
                assert_int_equal(r, -EINVAL);
                config_free(c);
                g_unlink(path);
        }
        /* A missing optional file is fine, a missing required one is not. */
        Config *c = config_new();
        assert_int_equal(config_load_file(c, "/nonexistent/bwcall.conf", false), 0);
        assert_int_equal(config_load_file(c, "/nonexistent/bwcall.conf", true), -EINVAL);
        config_free(c);
        g_rmdir(dir);
}

static void test_credentials(void **state) {
        g_autofree char *dir = g_dir_make_tmp("bwcall-cred-XXXXXX", NULL);
        g_autofree char *good = write_file(dir, "good", "client_id=abc\nclient_secret= s3cret \n", 0600);
        g_autofree char *open_file = write_file(dir, "open", "client_id=abc\nclient_secret=s3cret\n", 0644);
        g_autofree char *partial = write_file(dir, "partial", "client_id=abc\n", 0600);
        Config *c = config_new();
        Credentials *cr = NULL;

        unsetenv("CREDENTIALS_DIRECTORY");
        c->credentials_file = g_strdup(good);
        assert_int_equal(credentials_load(c, &cr), 0);
        assert_string_equal(cr->client_id, "abc");
        assert_string_equal(cr->client_secret, "s3cret");
        cr = credentials_free(cr);

        g_free(c->credentials_file);
        c->credentials_file = g_strdup(open_file);
        assert_int_equal(credentials_load(c, &cr), -EPERM); /* group/world readable: refused */
        assert_null(cr);

        g_free(c->credentials_file);
        c->credentials_file = g_strdup(partial);
        assert_int_equal(credentials_load(c, &cr), -ENOKEY);

        /* systemd credentials win. */
        {
                g_autofree char *id = write_file(dir, "client-id", "from-systemd\n", 0400);
                g_autofree char *secret = write_file(dir, "client-secret", "sd-secret", 0400);
                setenv("CREDENTIALS_DIRECTORY", dir, 1);
                assert_int_equal(credentials_load(c, &cr), 0);
                assert_string_equal(cr->client_id, "from-systemd");
                assert_string_equal(cr->client_secret, "sd-secret");
                cr = credentials_free(cr);
                unsetenv("CREDENTIALS_DIRECTORY");
                g_unlink(id);
                g_unlink(secret);
        }
        config_free(c);
        g_unlink(good);
        g_unlink(open_file);
        g_unlink(partial);
        g_rmdir(dir);
}

static void test_token_url_credentials(void **state) {
        g_autofree char *dir = g_dir_make_tmp("bwcall-cred-XXXXXX", NULL);
        g_autofree char *conf = write_file(dir, "bwcall.conf",
                                           "[Network]\nPreset=us\n[Account]\nCallerId=+15551230000\n[Token]\n"
                                           "Mode=token-url\nUrl=https://backend.example/token\n", 0644);
        g_autofree char *header = write_file(dir, "header", "token_url_header=X-Api-Key: k3y\n", 0600);
        g_autofree char *bad = write_file(dir, "bad", "token_url_header=X-Api-Key k3y\n", 0600);
        g_autofree char *crlf = write_file(dir, "crlf", "token_url_header=X-Api-Key: a\rInjected: b\n", 0600);
        Config *c = config_new();
        Credentials *cr = NULL;

        unsetenv("CREDENTIALS_DIRECTORY");
        assert_int_equal(config_load_file(c, conf, true), 0);
        assert_int_equal(config_finalize(c), 0);
        assert_int_equal(c->token_mode, TOKEN_MODE_TOKEN_URL);
        assert_string_equal(c->token_url, "https://backend.example/token");

        /* No secrets at all is fine in this mode: the backend may not need a key. */
        assert_int_equal(credentials_load(c, &cr), 0);
        assert_null(cr->token_url_header);
        cr = credentials_free(cr);

        c->credentials_file = g_strdup(header);
        assert_int_equal(credentials_load(c, &cr), 0);
        assert_string_equal(cr->token_url_header, "X-Api-Key: k3y");
        cr = credentials_free(cr);

        /* Not a header line, or one that would smuggle a second header: refused. */
        g_free(c->credentials_file);
        c->credentials_file = g_strdup(bad);
        assert_int_equal(credentials_load(c, &cr), -EINVAL);
        g_free(c->credentials_file);
        c->credentials_file = g_strdup(crlf);
        assert_int_equal(credentials_load(c, &cr), -EINVAL);

        /* From systemd credentials too. */
        {
                g_autofree char *sd = write_file(dir, "token-url-header", "Authorization: Bearer abc\n", 0400);
                setenv("CREDENTIALS_DIRECTORY", dir, 1);
                assert_int_equal(credentials_load(c, &cr), 0);
                assert_string_equal(cr->token_url_header, "Authorization: Bearer abc");
                cr = credentials_free(cr);
                unsetenv("CREDENTIALS_DIRECTORY");
                g_unlink(sd);
        }
        config_free(c);
        g_unlink(conf);
        g_unlink(header);
        g_unlink(bad);
        g_unlink(crlf);
        g_rmdir(dir);
}

static void test_number(void **state) {
        static const struct {
                const char *in, *out;
        } good[] = {
                { "+15550001000", "+15550001000" },
                { "15550001000", "+15550001000" }, /* the SDK's makeCall adds '+' */
                { "+1 (555) 000-1000", "+15550001000" },
                { "+1.555.000.1000", "+15550001000" },
                { "44", "+44" },
        };
        static const char *const bad[] = { "", "+", "abc", "+1555abc", "1234567890123456", "+1;x=y",
                                           "+1555000\n1000", "++15550001000", "1+5" };

        for (size_t i = 0; i < G_N_ELEMENTS(good); i++) {
                g_autofree char *out = NULL, *message = NULL;
                assert_int_equal(phone_normalize_number(good[i].in, &out, &message), 0);
                assert_string_equal(out, good[i].out);
        }
        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                g_autofree char *out = NULL, *message = NULL;
                assert_int_equal(phone_normalize_number(bad[i], &out, &message), -EINVAL);
                assert_non_null(message);
                assert_null(out);
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_presets),
                cmocka_unit_test(test_bad_config),
                cmocka_unit_test(test_server_weights),
                cmocka_unit_test(test_credentials),
                cmocka_unit_test(test_token_url_credentials),
                cmocka_unit_test(test_number),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
