/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "sim.h"

/* The OAuth client-credentials endpoint (gateway-protocol.md §9) and the JWTs it hands out:
 * HS256 with a key that lives only in this process, so a token is valid exactly when this sim
 * minted it. Neither tokens nor the client secret are ever logged or written to events; a
 * token's jti is the handle tests use instead. */

typedef struct Token {
        char *client_id;
        int64_t exp; /* seconds since the epoch */
} Token;

static void token_free(gpointer p) {
        Token *t = p;

        if (!t)
                return;
        g_free(t->client_id);
        g_free(t);
}

static char *base64url_encode(const void *data, size_t len) {
        char *s = g_base64_encode(data, len);
        size_t n;

        for (char *c = s; *c; c++)
                if (*c == '+')
                        *c = '-';
                else if (*c == '/')
                        *c = '_';
        n = strlen(s);
        while (n > 0 && s[n - 1] == '=')
                s[--n] = '\0';
        return s;
}

/* Returns NULL for input that is not base64url (no padding expected, but tolerated). */
static guchar *base64url_decode(const char *s, gsize *ret_len) {
        g_autoptr(GString) b = g_string_new(NULL);

        for (const char *c = s; *c; c++) {
                if (*c == '-')
                        g_string_append_c(b, '+');
                else if (*c == '_')
                        g_string_append_c(b, '/');
                else if (g_ascii_isalnum(*c))
                        g_string_append_c(b, *c);
                else if (*c == '=')
                        break;
                else
                        return NULL;
        }
        if (b->len % 4 == 1)
                return NULL;
        while (b->len % 4 != 0)
                g_string_append_c(b, '=');
        return g_base64_decode(b->str, ret_len);
}

/* Compares without an early exit, so the time taken says nothing about where they differ. */
static bool secure_streq(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);
        unsigned char d = la != lb;

        for (size_t i = 0; i < la && i < lb; i++)
                d |= (unsigned char) a[i] ^ (unsigned char) b[i];
        return d == 0;
}

static char *jwt_sign(Sim *s, const char *signing_input) {
        g_autoptr(GHmac) h = g_hmac_new(G_CHECKSUM_SHA256, s->jwt_key, sizeof s->jwt_key);
        guint8 digest[32];
        gsize len = sizeof digest;

        g_hmac_update(h, (const guchar *) signing_input, -1);
        g_hmac_get_digest(h, digest, &len);
        return base64url_encode(digest, len);
}

static char *random_id(void) {
        /* Version-4 UUID text: readable in events, and what the real endpoint's access_token_id
         * looks like. */
        return g_uuid_string_random();
}

static char *token_mint(Sim *s, char **ret_jti, int64_t *ret_exp) {
        static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
        g_autofree char *h = NULL, *p = NULL, *input = NULL, *sig = NULL;
        int64_t iat = (int64_t) now_realtime();
        char *jti = random_id();
        json_object *payload = json_object_new_object();
        const char *text;
        Token *t;

        json_object_object_add(payload, "iss", json_object_new_string(SIM_NAME));
        json_object_object_add(payload, "sub", json_object_new_string(s->client_id));
        json_object_object_add(payload, "scope", json_object_new_string(SIM_SCOPE));
        json_object_object_add(payload, "iat", json_object_new_int64(iat));
        json_object_object_add(payload, "exp", json_object_new_int64(iat + s->token_lifetime));
        json_object_object_add(payload, "jti", json_object_new_string(jti));
        text = json_object_to_json_string_ext(payload,
                                              JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        h = base64url_encode(header, strlen(header));
        p = base64url_encode(text, strlen(text));
        json_object_put(payload);
        input = g_strconcat(h, ".", p, NULL);
        sig = jwt_sign(s, input);

        t = g_new0(Token, 1);
        t->client_id = g_strdup(s->client_id);
        t->exp = iat + s->token_lifetime;
        g_hash_table_replace(s->tokens, g_strdup(jti), t);

        *ret_jti = jti;
        *ret_exp = t->exp;
        return g_strconcat(input, ".", sig, NULL);
}

int token_check_authorization(Sim *s, const char *value, char **ret_jti, const char **ret_error) {
        g_auto(GStrv) parts = NULL;
        g_autofree char *input = NULL, *sig = NULL, *tok = NULL;
        g_autofree guchar *payload = NULL;
        json_object *root = NULL, *jti = NULL, *exp = NULL;
        gsize len = 0;
        const char *error = NULL;
        Token *t;

        *ret_jti = NULL;
        /* "Bearer" and the token; the SDK sends a bare "Bearer" when it was given an empty token. */
        if (!value || g_ascii_strncasecmp(value, "Bearer", 6) != 0 ||
            (value[6] != '\0' && value[6] != ' ' && value[6] != '\t')) {
                *ret_error = "missing";
                return -EACCES;
        }
        tok = g_strstrip(g_strdup(value + 6));
        if (!*tok) {
                *ret_error = "missing";
                return -EACCES;
        }

        parts = g_strsplit(tok, ".", -1);
        if (g_strv_length(parts) != 3 || !*parts[0] || !*parts[1] || !*parts[2]) {
                *ret_error = "malformed";
                return -EACCES;
        }
        input = g_strconcat(parts[0], ".", parts[1], NULL);
        sig = jwt_sign(s, input);
        if (!secure_streq(sig, parts[2])) {
                *ret_error = "bad-signature";
                return -EACCES;
        }

        payload = base64url_decode(parts[1], &len);
        if (payload) {
                g_autofree char *text = g_strndup((const char *) payload, len);
                root = json_tokener_parse(text);
        }
        if (!root || !json_object_object_get_ex(root, "jti", &jti) ||
            !json_object_is_type(jti, json_type_string) ||
            !json_object_object_get_ex(root, "exp", &exp) || !json_object_is_type(exp, json_type_int)) {
                json_object_put(root);
                *ret_error = "malformed";
                return -EACCES;
        }

        t = g_hash_table_lookup(s->tokens, json_object_get_string(jti));
        if (!t)
                error = "unknown";
        else if (now_realtime() >= (double) t->exp)
                error = "expired";
        *ret_jti = g_strdup(json_object_get_string(jti));
        json_object_put(root);
        if (error) {
                *ret_error = error;
                return -EACCES;
        }
        *ret_error = NULL;
        return 0;
}

static void token_reply_json(SoupServerMessage *msg, guint status, json_object *o) {
        const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                     JSON_C_TO_STRING_NOSLASHESCAPE);
        SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);

        soup_server_message_set_status(msg, status, NULL);
        /* RFC 6749 §5.1: token responses must not be cached. */
        soup_message_headers_replace(h, "Cache-Control", "no-store");
        soup_message_headers_replace(h, "Pragma", "no-cache");
        soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_COPY, text, strlen(text));
}

static void token_reject(SoupServerMessage *msg, guint status, const char *error, const char *description) {
        json_object *o = json_object_new_object();
        json_object *ev;

        json_object_object_add(o, "error", json_object_new_string(error));
        json_object_object_add(o, "error_description", json_object_new_string(description));
        if (status == SOUP_STATUS_UNAUTHORIZED)
                soup_message_headers_replace(soup_server_message_get_response_headers(msg),
                                             "WWW-Authenticate", "Basic realm=\"" SIM_NAME "\"");
        token_reply_json(msg, status, o);
        json_object_put(o);

        log_info("Token request rejected: %u %s (%s)", status, error, description);
        ev = event_new("token-rejected");
        event_add_int(ev, "status", status);
        event_add_string(ev, "error", error);
        event_add_string(ev, "error_description", description);
        event_emit(ev);
}

/* Checks "Basic base64(id:secret)" against the configured client. */
static bool token_client_ok(Sim *s, const char *authorization) {
        g_autofree guchar *raw = NULL;
        g_autofree char *text = NULL;
        gsize len = 0;
        char *colon;
        bool ok;

        if (!s->client_id || !s->client_secret || !authorization)
                return false;
        if (g_ascii_strncasecmp(authorization, "Basic ", 6) != 0)
                return false;
        raw = g_base64_decode(authorization + 6, &len);
        if (!raw || len == 0)
                return false;
        text = g_strndup((const char *) raw, len);
        explicit_bzero(raw, len);
        if (strlen(text) != len)
                return false; /* embedded NUL */
        colon = strchr(text, ':');
        if (!colon)
                return false;
        *colon = '\0';
        /* Evaluate both halves so a wrong id costs the same time as a wrong secret. */
        ok = secure_streq(text, s->client_id);
        ok = secure_streq(colon + 1, s->client_secret) && ok;
        explicit_bzero(text, len);
        return ok;
}

static void token_handler(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                          gpointer userdata) {
        Sim *s = userdata;
        SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
        const char *ctype, *grant, *scope;
        g_autoptr(GHashTable) form = NULL;
        g_autoptr(GBytes) body = NULL;
        g_autofree char *text = NULL, *jti = NULL, *token = NULL, *token_id = NULL;
        json_object *o, *ev;
        int64_t exp;

        if (strcmp(path, SIM_TOKEN_PATH) != 0) {
                soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, NULL);
                return;
        }
        if (strcmp(soup_server_message_get_method(msg), "POST") != 0) {
                soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow", "POST");
                token_reject(msg, SOUP_STATUS_METHOD_NOT_ALLOWED, "invalid_request", "use POST");
                return;
        }
        if (!token_client_ok(s, soup_message_headers_get_one(h, "Authorization"))) {
                token_reject(msg, SOUP_STATUS_UNAUTHORIZED, "invalid_client",
                             s->client_id ? "client authentication failed (HTTP Basic id:secret)"
                                          : "no client credentials configured in " SIM_NAME);
                return;
        }
        ctype = soup_message_headers_get_content_type(h, NULL);
        if (!ctype || g_ascii_strcasecmp(ctype, "application/x-www-form-urlencoded") != 0) {
                token_reject(msg, SOUP_STATUS_BAD_REQUEST, "invalid_request",
                             "Content-Type must be application/x-www-form-urlencoded");
                return;
        }

        body = soup_message_body_flatten(soup_server_message_get_request_body(msg));
        text = g_strndup(g_bytes_get_data(body, NULL), g_bytes_get_size(body));
        form = soup_form_decode(text);
        grant = form ? g_hash_table_lookup(form, "grant_type") : NULL;
        scope = form ? g_hash_table_lookup(form, "scope") : NULL;
        if (!grant) {
                token_reject(msg, SOUP_STATUS_BAD_REQUEST, "invalid_request", "grant_type is missing");
                return;
        }
        if (strcmp(grant, "client_credentials") != 0) {
                token_reject(msg, SOUP_STATUS_BAD_REQUEST, "unsupported_grant_type",
                             "only client_credentials is supported");
                return;
        }
        /* The US samples send no scope at all; the Global docs send voice.webrtc. */
        if (scope && strcmp(scope, SIM_SCOPE) != 0) {
                token_reject(msg, SOUP_STATUS_BAD_REQUEST, "invalid_scope", "scope must be " SIM_SCOPE);
                return;
        }

        token = token_mint(s, &jti, &exp);
        o = json_object_new_object();
        json_object_object_add(o, "access_token", json_object_new_string(token));
        /* The token id is the jti, so tests can match an INVITE's token_jti to this response. */
        json_object_object_add(o, "access_token_id", json_object_new_string(jti));
        json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
        json_object_object_add(o, "expires_in", json_object_new_int64(s->token_lifetime));
        token_reply_json(msg, SOUP_STATUS_OK, o);
        json_object_put(o);
        explicit_bzero(token, strlen(token));

        log_info("Minted token jti=%s for client %s, expires in %u s", jti, s->client_id, s->token_lifetime);
        ev = event_new("token-minted");
        event_add_string(ev, "jti", jti);
        event_add_string(ev, "client_id", s->client_id);
        event_add_int(ev, "expires_in", s->token_lifetime);
        event_add_int(ev, "exp", exp);
        event_emit(ev);
}

int token_setup(Sim *s) {
        ssize_t n;

        n = getrandom(s->jwt_key, sizeof s->jwt_key, 0);
        if (n != (ssize_t) sizeof s->jwt_key)
                return log_error_errno(n < 0 ? -errno : -EIO,
                                       "Failed to get random bytes for the JWT key: %m");
        s->tokens = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, token_free);
        soup_server_add_handler(s->server, SIM_TOKEN_PATH, token_handler, s, NULL);
        return 0;
}

void token_teardown(Sim *s) {
        explicit_bzero(s->jwt_key, sizeof s->jwt_key);
        if (s->tokens)
                g_hash_table_unref(s->tokens);
        s->tokens = NULL;
}
