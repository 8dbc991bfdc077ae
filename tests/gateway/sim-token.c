/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "sim.h"

/* The OAuth client-credentials endpoint (gateway-protocol.md §9), the "customer token URL" (a
 * customer's own backend handing out tokens: GET, optional API key) and the JWTs both hand out:
 * HS256 with a key that lives only in this process, so a token is valid exactly when this sim
 * minted it and has not revoked it. Neither tokens, the client secret nor the customer key are
 * ever logged or written to events; a token's jti is the handle tests use instead.
 *
 * /control/token-faults can make both endpoints misbehave (an error status, a broken 200 body, a
 * late answer) so tests can drive bwcalld's token lifecycle through its failure paths. */

typedef enum TokenEndpoint {
        ENDPOINT_OAUTH,
        ENDPOINT_CUSTOMER,
} TokenEndpoint;

static const char *const endpoint_names[] = {
        [ENDPOINT_OAUTH] = "oauth",
        [ENDPOINT_CUSTOMER] = "customer",
};

static const char *const body_fault_names[_TOKEN_BODY_MAX] = {
        [TOKEN_BODY_NONE] = "none",
        [TOKEN_BODY_GARBAGE] = "garbage",
        [TOKEN_BODY_NOT_OBJECT] = "not-object",
        [TOKEN_BODY_NO_TOKEN] = "no-token",
        [TOKEN_BODY_BAD_EXPIRY] = "bad-expiry",
        [TOKEN_BODY_EMPTY] = "empty",
};

typedef struct Token {
        char *client_id;
        int64_t exp; /* seconds since the epoch */
        bool revoked;
} Token;

/* A token request held back by a delay fault. The handler has returned with the message paused;
 * the timer answers it and unpauses. We keep our own ref, as the message can outlive its
 * connection: libsoup drops the connection on shutdown ("disconnected": no I/O left, so no
 * unpausing). libsoup does not read a paused connection, so a client that gives up meanwhile
 * would only be noticed when the answer is written; the socket watch notices it at once instead,
 * so no token is minted for nobody and the event can say the client left. */
typedef struct TokenDelay {
        Sim *s;
        SoupServerMessage *msg;
        TokenEndpoint endpoint;
        TokenFault fault;
        int remaining; /* requests the fault still applies to after this one; -1 = until cleared */
        bool tls;
        guint timer;
        GSource *watch; /* readable client socket: it left (or, plain HTTP only, sent more) */
        gulong on_disconnected, on_finished;
} TokenDelay;

const char *token_body_fault_to_string(TokenBodyFault b) {
        if ((unsigned) b >= _TOKEN_BODY_MAX)
                return NULL;
        return body_fault_names[b];
}

int token_body_fault_from_string(const char *s, TokenBodyFault *ret) {
        for (TokenBodyFault b = TOKEN_BODY_NONE + 1; b < _TOKEN_BODY_MAX; b++)
                if (strcmp(s, body_fault_names[b]) == 0) {
                        *ret = b;
                        return 0;
                }
        return -EINVAL;
}

unsigned token_lifetime_now(Sim *s) {
        return s->token_expires_in > 0 ? s->token_expires_in : s->token_lifetime;
}

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

/* Mints a JWT for client_id valid for lifetime seconds and remembers its jti. */
static char *token_mint(Sim *s, const char *client_id, unsigned lifetime, char **ret_jti, int64_t *ret_exp) {
        static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
        g_autofree char *h = NULL, *p = NULL, *input = NULL, *sig = NULL;
        int64_t iat = (int64_t) now_realtime();
        char *jti = random_id();
        json_object *payload = json_object_new_object();
        const char *text;
        Token *t;

        json_object_object_add(payload, "iss", json_object_new_string(SIM_NAME));
        json_object_object_add(payload, "sub", json_object_new_string(client_id));
        json_object_object_add(payload, "scope", json_object_new_string(SIM_SCOPE));
        json_object_object_add(payload, "iat", json_object_new_int64(iat));
        json_object_object_add(payload, "exp", json_object_new_int64(iat + lifetime));
        json_object_object_add(payload, "jti", json_object_new_string(jti));
        text = json_object_to_json_string_ext(payload,
                                              JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);

        h = base64url_encode(header, strlen(header));
        p = base64url_encode(text, strlen(text));
        json_object_put(payload);
        input = g_strconcat(h, ".", p, NULL);
        sig = jwt_sign(s, input);

        t = g_new0(Token, 1);
        t->client_id = g_strdup(client_id);
        t->exp = iat + lifetime;
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
        /* A revoked token looks to the INVITE like one we never minted, as on a real gateway
         * whose token store forgot it. */
        if (!t || t->revoked)
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

bool token_is_revoked(Sim *s, const char *jti) {
        Token *t = jti ? g_hash_table_lookup(s->tokens, jti) : NULL;

        return t && t->revoked;
}

unsigned token_revoke_all(Sim *s) {
        GHashTableIter it;
        gpointer v;
        unsigned n = 0;

        /* Kept in the table rather than dropped, so an INVITE with an old token still reports its
         * jti (tests tell the old token from the new one by it). */
        g_hash_table_iter_init(&it, s->tokens);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                Token *t = v;

                if (!t->revoked) {
                        t->revoked = true;
                        n++;
                }
        }
        return n;
}

static void token_reply_text(SoupServerMessage *msg, guint status, const char *text) {
        SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);

        soup_server_message_set_status(msg, status, NULL);
        /* RFC 6749 §5.1: token responses must not be cached. */
        soup_message_headers_replace(h, "Cache-Control", "no-store");
        soup_message_headers_replace(h, "Pragma", "no-cache");
        soup_server_message_set_response(msg, "application/json", SOUP_MEMORY_COPY, text, strlen(text));
}

static void token_reply_json(SoupServerMessage *msg, guint status, json_object *o) {
        token_reply_text(msg, status,
                         json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* An error answer: {"error": ..., "error_description": ...} (no description when NULL). */
static void token_reject(SoupServerMessage *msg, TokenEndpoint ep, guint status, const char *error,
                         const char *description) {
        json_object *o = json_object_new_object();
        json_object *ev;

        json_object_object_add(o, "error", json_object_new_string(error));
        if (description)
                json_object_object_add(o, "error_description", json_object_new_string(description));
        if (status == SOUP_STATUS_UNAUTHORIZED)
                soup_message_headers_replace(soup_server_message_get_response_headers(msg),
                                             "WWW-Authenticate",
                                             ep == ENDPOINT_OAUTH ? "Basic realm=\"" SIM_NAME "\""
                                                                  : "Bearer realm=\"" SIM_NAME "\"");
        token_reply_json(msg, status, o);
        json_object_put(o);

        log_info("Token request (%s) rejected: %u %s (%s)", endpoint_names[ep], status, error,
                 description ? description : "-");
        ev = event_new("token-rejected");
        event_add_int(ev, "status", status);
        event_add_string(ev, "error", error);
        event_add_string(ev, "error_description", description);
        event_add_string(ev, "endpoint", endpoint_names[ep]);
        event_emit(ev);
}

static void token_minted_event(TokenEndpoint ep, const char *jti, const char *client_id, unsigned lifetime,
                               int64_t exp) {
        json_object *ev = event_new("token-minted");

        log_info("Minted token jti=%s for %s (%s), expires in %u s", jti, client_id, endpoint_names[ep],
                 lifetime);
        event_add_string(ev, "jti", jti);
        event_add_string(ev, "client_id", client_id);
        event_add_int(ev, "expires_in", lifetime);
        event_add_int(ev, "exp", exp);
        event_add_string(ev, "endpoint", endpoint_names[ep]);
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

/* The OAuth endpoint proper, once the method is known to be POST and no fault replaced it. */
static void oauth_answer(Sim *s, SoupServerMessage *msg) {
        SoupMessageHeaders *h = soup_server_message_get_request_headers(msg);
        const char *ctype, *grant, *scope;
        g_autoptr(GHashTable) form = NULL;
        g_autoptr(GBytes) body = NULL;
        g_autofree char *text = NULL, *jti = NULL, *token = NULL;
        unsigned lifetime;
        json_object *o;
        int64_t exp;

        if (!token_client_ok(s, soup_message_headers_get_one(h, "Authorization"))) {
                token_reject(msg, ENDPOINT_OAUTH, SOUP_STATUS_UNAUTHORIZED, "invalid_client",
                             s->client_id ? "client authentication failed (HTTP Basic id:secret)"
                                          : "no client credentials configured in " SIM_NAME);
                return;
        }
        ctype = soup_message_headers_get_content_type(h, NULL);
        if (!ctype || g_ascii_strcasecmp(ctype, "application/x-www-form-urlencoded") != 0) {
                token_reject(msg, ENDPOINT_OAUTH, SOUP_STATUS_BAD_REQUEST, "invalid_request",
                             "Content-Type must be application/x-www-form-urlencoded");
                return;
        }

        body = soup_message_body_flatten(soup_server_message_get_request_body(msg));
        text = g_strndup(g_bytes_get_data(body, NULL), g_bytes_get_size(body));
        form = soup_form_decode(text);
        grant = form ? g_hash_table_lookup(form, "grant_type") : NULL;
        scope = form ? g_hash_table_lookup(form, "scope") : NULL;
        if (!grant) {
                token_reject(msg, ENDPOINT_OAUTH, SOUP_STATUS_BAD_REQUEST, "invalid_request",
                             "grant_type is missing");
                return;
        }
        if (strcmp(grant, "client_credentials") != 0) {
                token_reject(msg, ENDPOINT_OAUTH, SOUP_STATUS_BAD_REQUEST, "unsupported_grant_type",
                             "only client_credentials is supported");
                return;
        }
        /* The US samples send no scope at all; the Global docs send voice.webrtc. */
        if (scope && strcmp(scope, SIM_SCOPE) != 0) {
                token_reject(msg, ENDPOINT_OAUTH, SOUP_STATUS_BAD_REQUEST, "invalid_scope",
                             "scope must be " SIM_SCOPE);
                return;
        }

        lifetime = token_lifetime_now(s);
        token = token_mint(s, s->client_id, lifetime, &jti, &exp);
        o = json_object_new_object();
        json_object_object_add(o, "access_token", json_object_new_string(token));
        /* The token id is the jti, so tests can match an INVITE's token_jti to this response. */
        json_object_object_add(o, "access_token_id", json_object_new_string(jti));
        json_object_object_add(o, "token_type", json_object_new_string("Bearer"));
        json_object_object_add(o, "expires_in", json_object_new_int64(lifetime));
        token_reply_json(msg, SOUP_STATUS_OK, o);
        json_object_put(o);
        explicit_bzero(token, strlen(token));

        token_minted_event(ENDPOINT_OAUTH, jti, s->client_id, lifetime, exp);
}

/* Either header may carry the key, as customers' backends differ; each is compared in full. */
static bool customer_key_ok(Sim *s, SoupMessageHeaders *h) {
        const char *authorization = soup_message_headers_get_one(h, "Authorization");
        const char *api_key = soup_message_headers_get_one(h, "X-Api-Key");
        bool ok = false;

        if (!s->customer_key)
                return true;
        if (authorization && g_ascii_strncasecmp(authorization, "Bearer ", 7) == 0) {
                char *k = g_strstrip(g_strdup(authorization + 7));

                ok = secure_streq(k, s->customer_key);
                explicit_bzero(k, strlen(k));
                g_free(k);
        }
        if (api_key)
                ok = secure_streq(api_key, s->customer_key) || ok;
        return ok;
}

/* The customer token URL proper, once the method is known to be GET and no fault replaced it. */
static void customer_answer(Sim *s, SoupServerMessage *msg) {
        g_autofree char *jti = NULL, *token = NULL;
        unsigned lifetime;
        json_object *o;
        int64_t exp;

        if (!customer_key_ok(s, soup_server_message_get_request_headers(msg))) {
                token_reject(msg, ENDPOINT_CUSTOMER, SOUP_STATUS_UNAUTHORIZED, "unauthorized", NULL);
                return;
        }

        lifetime = token_lifetime_now(s);
        token = token_mint(s, SIM_CUSTOMER_CLIENT_ID, lifetime, &jti, &exp);
        o = json_object_new_object();
        json_object_object_add(o, "access_token", json_object_new_string(token));
        json_object_object_add(o, "expires_in", json_object_new_int64(lifetime));
        token_reply_json(msg, SOUP_STATUS_OK, o);
        json_object_put(o);
        explicit_bzero(token, strlen(token));

        token_minted_event(ENDPOINT_CUSTOMER, jti, SIM_CUSTOMER_CLIENT_ID, lifetime, exp);
}

static bool token_fault_armed(const TokenFault *f) {
        return f->status > 0 || f->body != TOKEN_BODY_NONE || f->delay;
}

/* Hands the armed fault to one request and counts it; the fault clears itself after its last
 * request. *ret_remaining: how many requests it still applies to, -1 = until cleared. */
static bool token_fault_take(Sim *s, TokenFault *ret, int *ret_remaining) {
        TokenFault *f = &s->token_fault;

        if (!token_fault_armed(f))
                return false;
        *ret = *f;
        *ret_remaining = -1;
        if (f->count > 0) {
                f->count--;
                *ret_remaining = (int) f->count;
                if (f->count == 0) {
                        *f = (TokenFault) {};
                        log_info("Token fault used up; the token endpoints answer normally again.");
                }
        }
        return true;
}

static void token_fault_event(TokenEndpoint ep, const TokenFault *f, int remaining, const char *jti,
                              bool client_gone) {
        json_object *ev = event_new("token-fault");

        event_add_string(ev, "kind", f->status > 0 ? "status" : f->body != TOKEN_BODY_NONE ? "body" : "delay");
        event_add_string(ev, "endpoint", endpoint_names[ep]);
        if (f->status > 0)
                event_add_int(ev, "status", f->status);
        else if (f->body != TOKEN_BODY_NONE)
                event_add_int(ev, "status", SOUP_STATUS_OK);
        if (f->status == SIM_HTTP_TOO_MANY_REQUESTS)
                event_add_int(ev, "retry_after", f->retry_after);
        if (f->body != TOKEN_BODY_NONE)
                event_add_string(ev, "body", body_fault_names[f->body]);
        if (f->delay)
                event_add_int(ev, "delay_ms", f->delay_ms);
        if (remaining >= 0)
                event_add_int(ev, "remaining", remaining);
        else
                event_add_string(ev, "remaining", NULL);
        if (jti)
                event_add_string(ev, "jti", jti);
        if (client_gone)
                event_add_bool(ev, "client_gone", true);
        event_emit(ev);
}

static void token_answer_status(SoupServerMessage *msg, const TokenFault *f) {
        SoupMessageHeaders *h = soup_server_message_get_response_headers(msg);
        json_object *o = json_object_new_object();

        if (f->status == SOUP_STATUS_BAD_REQUEST || f->status == SOUP_STATUS_UNAUTHORIZED) {
                json_object_object_add(o, "error", json_object_new_string("invalid_client"));
                json_object_object_add(o, "error_description",
                                       json_object_new_string("Client authentication failed (injected)"));
                if (f->status == SOUP_STATUS_UNAUTHORIZED)
                        soup_message_headers_replace(h, "WWW-Authenticate", "Basic realm=\"" SIM_NAME "\"");
        } else if (f->status == SIM_HTTP_TOO_MANY_REQUESTS) {
                g_autofree char *retry = g_strdup_printf("%u", f->retry_after);

                json_object_object_add(o, "error", json_object_new_string("rate_limited"));
                soup_message_headers_replace(h, "Retry-After", retry);
        } else {
                json_object_object_add(o, "error", json_object_new_string("server_error"));
                json_object_object_add(o, "error_description", json_object_new_string("injected"));
        }
        token_reply_json(msg, f->status, o);
        json_object_put(o);
        /* libsoup has no phrase for 429 ("Unknown Error" otherwise); clients may log it. */
        if (f->status == SIM_HTTP_TOO_MANY_REQUESTS)
                soup_server_message_set_status(msg, f->status, "Too Many Requests");
}

/* A 200 whose body a client must refuse. Always labelled application/json, so it is the
 * client's JSON handling that gets tested, not its Content-Type check. Returns the jti of the
 * token bad-expiry really mints (valid for INVITEs, like any other), else NULL. */
static char *token_answer_body(Sim *s, SoupServerMessage *msg, TokenEndpoint ep, TokenBodyFault b) {
        g_autofree char *text = NULL, *token = NULL;
        char *jti = NULL;
        int64_t exp;

        switch (b) {
        case TOKEN_BODY_GARBAGE:
                text = g_strdup("<html>oops");
                break;
        case TOKEN_BODY_NOT_OBJECT:
                text = g_strdup("[1,2]");
                break;
        case TOKEN_BODY_NO_TOKEN:
                text = g_strdup_printf("{\"expires_in\":%u}", token_lifetime_now(s));
                break;
        case TOKEN_BODY_BAD_EXPIRY: {
                const char *client_id = ep == ENDPOINT_CUSTOMER ? SIM_CUSTOMER_CLIENT_ID
                                        : s->client_id           ? s->client_id
                                                                 : "unconfigured";

                token = token_mint(s, client_id, token_lifetime_now(s), &jti, &exp);
                text = g_strdup_printf("{\"access_token\":\"%s\",\"expires_in\":\"soon\"}", token);
                explicit_bzero(token, strlen(token));
                break;
        }
        case TOKEN_BODY_EMPTY:
        default:
                text = g_strdup("");
                break;
        }
        token_reply_text(msg, SOUP_STATUS_OK, text);
        explicit_bzero(text, strlen(text));
        return jti;
}

/* Answers one token request: with the fault it was given (NULL: none), else normally. */
static void token_answer(Sim *s, SoupServerMessage *msg, TokenEndpoint ep, const TokenFault *f, int remaining) {
        g_autofree char *jti = NULL;

        if (f && f->status > 0) {
                token_answer_status(msg, f);
                log_info("Token request (%s): injected %u", endpoint_names[ep], f->status);
                token_fault_event(ep, f, remaining, NULL, false);
                return;
        }
        if (f && f->body != TOKEN_BODY_NONE) {
                jti = token_answer_body(s, msg, ep, f->body);
                log_info("Token request (%s): injected 200 with body %s", endpoint_names[ep],
                         body_fault_names[f->body]);
                token_fault_event(ep, f, remaining, jti, false);
                return;
        }
        if (f) /* only a delay: say so, then the usual answer and its usual event */
                token_fault_event(ep, f, remaining, NULL, false);

        if (ep == ENDPOINT_OAUTH)
                oauth_answer(s, msg);
        else
                customer_answer(s, msg);
}

static void token_delay_free(TokenDelay *d) {
        if (!d)
                return;
        if (d->timer)
                g_source_remove(d->timer);
        if (d->watch) {
                g_source_destroy(d->watch);
                g_source_unref(d->watch);
        }
        g_clear_signal_handler(&d->on_disconnected, d->msg);
        g_clear_signal_handler(&d->on_finished, d->msg);
        g_object_unref(d->msg);
        g_free(d);
}

/* Ends the wait. client_left: the client closed its end, so nothing is minted; if the message
 * still has its I/O, a bare 503 goes out only so that libsoup finishes it and drops the
 * connection. io_gone: libsoup has no I/O for it any more, unpausing would be an error. */
static void token_delay_finish(TokenDelay *d, bool client_left, bool io_gone) {
        Sim *s = d->s;

        s->token_delayed = g_list_remove(s->token_delayed, d);
        if (client_left || io_gone) {
                log_info("A delayed token request (%s) went away before its answer.", endpoint_names[d->endpoint]);
                token_fault_event(d->endpoint, &d->fault, d->remaining, NULL, true);
                if (!io_gone) {
                        soup_server_message_set_status(d->msg, SOUP_STATUS_SERVICE_UNAVAILABLE, NULL);
                        soup_server_message_unpause(d->msg);
                }
        } else {
                token_answer(s, d->msg, d->endpoint, &d->fault, d->remaining);
                soup_server_message_unpause(d->msg);
        }
        token_delay_free(d);
}

static void token_delay_on_gone(SoupServerMessage *msg, gpointer userdata) {
        token_delay_finish(userdata, false, true);
}

static gboolean token_delay_on_timer(gpointer userdata) {
        TokenDelay *d = userdata;

        d->timer = 0;
        token_delay_finish(d, false, false);
        return G_SOURCE_REMOVE;
}

static gboolean token_delay_on_readable(GSocket *sock, GIOCondition cond, gpointer userdata) {
        TokenDelay *d = userdata;

        if (!(cond & (G_IO_HUP | G_IO_ERR))) {
                g_autoptr(GError) err = NULL;
                char c;
                GInputVector v = { &c, 1 };
                gint flags = G_SOCKET_MSG_PEEK;
                gssize n;

                n = g_socket_receive_message(sock, NULL, &v, 1, NULL, NULL, &flags, NULL, &err);
                if (n < 0 && g_error_matches(err, G_IO_ERROR, G_IO_ERROR_WOULD_BLOCK))
                        return G_SOURCE_CONTINUE;
                /* Plain HTTP: bytes are the client's next request, not a goodbye; leave them to
                 * libsoup. Over TLS a waiting client sends nothing but its close_notify. */
                if (n > 0 && !d->tls) {
                        g_clear_pointer(&d->watch, g_source_unref);
                        return G_SOURCE_REMOVE;
                }
        }
        token_delay_finish(d, true, false);
        return G_SOURCE_REMOVE;
}

/* Returns from the handler with the message paused; the main loop keeps serving everything else
 * meanwhile (SIP, control, other token requests). */
static void token_delay(Sim *s, SoupServerMessage *msg, TokenEndpoint ep, const TokenFault *f, int remaining) {
        TokenDelay *d = g_new0(TokenDelay, 1);
        GSocket *sock = soup_server_message_get_socket(msg);

        d->s = s;
        d->msg = g_object_ref(msg);
        d->endpoint = ep;
        d->fault = *f;
        d->remaining = remaining;
        d->tls = g_strcmp0(g_uri_get_scheme(soup_server_message_get_uri(msg)), "https") == 0;
        d->on_disconnected = g_signal_connect(msg, "disconnected", G_CALLBACK(token_delay_on_gone), d);
        d->on_finished = g_signal_connect(msg, "finished", G_CALLBACK(token_delay_on_gone), d);
        soup_server_message_pause(msg);
        d->timer = g_timeout_add(f->delay_ms, token_delay_on_timer, d);
        if (sock) {
                d->watch = g_socket_create_source(sock, G_IO_IN | G_IO_HUP | G_IO_ERR, NULL);
                g_source_set_callback(d->watch, G_SOURCE_FUNC(token_delay_on_readable), d, NULL);
                g_source_attach(d->watch, NULL);
        }
        s->token_delayed = g_list_prepend(s->token_delayed, d);
        log_info("Token request (%s): holding the answer back %u ms.", endpoint_names[ep], f->delay_ms);
}

static void token_handler(SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
                          gpointer userdata) {
        Sim *s = userdata;
        const char *method = soup_server_message_get_method(msg);
        TokenEndpoint ep;
        TokenFault f;
        int remaining;

        if (strcmp(path, SIM_TOKEN_PATH) == 0)
                ep = ENDPOINT_OAUTH;
        else if (strcmp(path, SIM_CUSTOMER_TOKEN_PATH) == 0)
                ep = ENDPOINT_CUSTOMER;
        else {
                soup_server_message_set_status(msg, SOUP_STATUS_NOT_FOUND, NULL);
                return;
        }
        /* OAuth is POST (RFC 6749 §4.4.2); a customer's token URL is fetched with GET. */
        if (strcmp(method, ep == ENDPOINT_OAUTH ? "POST" : "GET") != 0) {
                soup_message_headers_replace(soup_server_message_get_response_headers(msg), "Allow",
                                             ep == ENDPOINT_OAUTH ? "POST" : "GET");
                token_reject(msg, ep, SOUP_STATUS_METHOD_NOT_ALLOWED, "invalid_request",
                             ep == ENDPOINT_OAUTH ? "use POST" : "use GET");
                return;
        }

        /* An injected fault comes before the credentials are looked at: a broken token service is
         * broken for everybody. A delay alone still checks them, after the delay. */
        if (!token_fault_take(s, &f, &remaining))
                token_answer(s, msg, ep, NULL, -1);
        else if (f.delay)
                token_delay(s, msg, ep, &f, remaining);
        else
                token_answer(s, msg, ep, &f, remaining);
}

int token_setup(Sim *s) {
        ssize_t n;

        n = getrandom(s->jwt_key, sizeof s->jwt_key, 0);
        if (n != (ssize_t) sizeof s->jwt_key)
                return log_error_errno(n < 0 ? -errno : -EIO,
                                       "Failed to get random bytes for the JWT key: %m");
        s->tokens = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, token_free);
        soup_server_add_handler(s->server, SIM_TOKEN_PATH, token_handler, s, NULL);
        soup_server_add_handler(s->server, SIM_CUSTOMER_TOKEN_PATH, token_handler, s, NULL);
        return 0;
}

void token_teardown(Sim *s) {
        /* Requests still held back are dropped unanswered (normally their connections went with
         * the server, and with them the requests). */
        g_list_free_full(g_steal_pointer(&s->token_delayed), (GDestroyNotify) token_delay_free);
        explicit_bzero(s->jwt_key, sizeof s->jwt_key);
        if (s->tokens)
                g_hash_table_unref(s->tokens);
        s->tokens = NULL;
}
