/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <curl/curl.h>
#include <gio/gio.h>
#include <json-c/json.h>

#include "log.h"
#include "token.h"

/* Refresh this long before expiry, but never later than 10 s before it (the seed's margin). */
#define TOKEN_REFRESH_MARGIN_USEC (30 * USEC_PER_SEC)
#define TOKEN_MIN_MARGIN_USEC (10 * USEC_PER_SEC)

typedef struct TokenWaiter {
        TokenReadyFunc ready;
        void *userdata;
} TokenWaiter;

struct Token {
        const Config *config;
        TokenChangedFunc changed;
        void *userdata;

        TokenState state;
        char *token; /* secret: never logged */
        uint64_t expires_at;
        char *error;

        GArray *waiters; /* TokenWaiter */
        GCancellable *fetch;
        guint refresh_source;
        guint expiry_source;
        guint flush_source;      /* answers waiters from the main loop, never synchronously */
        int flush_error;
        char *flush_message;
        uint64_t retry_usec;     /* back-off for a failed refresh while the old token still works */
};

#define TOKEN_RETRY_MIN_USEC (2 * USEC_PER_SEC)
#define TOKEN_RETRY_MAX_USEC (30 * USEC_PER_SEC)
/* A JWT exp beyond this is nonsense (and would overflow µs arithmetic). */
#define TOKEN_EXP_MAX ((int64_t) 253402300799) /* 9999-12-31 */

static const char *const token_state_names[_TOKEN_STATE_MAX] = {
        [TOKEN_STATE_NONE] = "none",         [TOKEN_STATE_VALID] = "valid",
        [TOKEN_STATE_REFRESHING] = "refreshing", [TOKEN_STATE_EXPIRED] = "expired",
        [TOKEN_STATE_ERROR] = "error",
};

const char *token_state_to_string(TokenState s) {
        return s >= 0 && s < _TOKEN_STATE_MAX ? token_state_names[s] : "none";
}

static void secret_free(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                g_free(s);
        }
}

static uint64_t now_realtime(void) {
        return (uint64_t) g_get_real_time();
}

Token *token_new(const Config *config, TokenChangedFunc changed, void *userdata) {
        Token *t = g_new0(Token, 1);

        t->config = config;
        t->changed = changed;
        t->userdata = userdata;
        t->waiters = g_array_new(FALSE, FALSE, sizeof(TokenWaiter));
        return t;
}

static void token_flush_waiters(Token *t, int error, const char *message);

Token *token_free(Token *t) {
        if (!t)
                return NULL;
        /* Waiters (deferred D-Bus replies behind them) get an answer, not silence. */
        g_clear_handle_id(&t->flush_source, g_source_remove);
        token_flush_waiters(t, -ECANCELED, "bwcalld is shutting down");
        g_free(t->flush_message);
        if (t->fetch) {
                g_cancellable_cancel(t->fetch);
                g_clear_object(&t->fetch);
        }
        g_clear_handle_id(&t->refresh_source, g_source_remove);
        g_clear_handle_id(&t->expiry_source, g_source_remove);
        secret_free(t->token);
        g_free(t->error);
        g_array_unref(t->waiters);
        g_free(t);
        return NULL;
}

TokenState token_get_state(const Token *t) {
        return t->state;
}

uint64_t token_get_expires_at(const Token *t) {
        return t->expires_at;
}

const char *token_get_error(const Token *t) {
        return t->error;
}

const char *token_peek(const Token *t) {
        if (!t->token)
                return NULL;
        if (t->expires_at != 0 && t->expires_at <= now_realtime())
                return NULL;
        return t->token;
}

static void token_notify(Token *t) {
        if (t->changed)
                t->changed(t, t->userdata);
}

static void token_set_state(Token *t, TokenState s, const char *error) {
        bool changed = t->state != s || g_strcmp0(t->error, error) != 0;

        t->state = s;
        g_free(t->error);
        t->error = g_strdup(error);
        if (changed)
                token_notify(t);
}

static void token_flush_waiters(Token *t, int error, const char *message) {
        /* Swap the list first: a callback may call token_acquire() again. */
        g_autoptr(GArray) waiters = t->waiters;

        t->waiters = g_array_new(FALSE, FALSE, sizeof(TokenWaiter));
        for (guint i = 0; i < waiters->len; i++) {
                TokenWaiter *w = &g_array_index(waiters, TokenWaiter, i);
                w->ready(t, error, message, w->userdata);
        }
}

static void token_fetch_start(Token *t);

static gboolean on_flush_later(gpointer userdata) {
        Token *t = userdata;
        g_autofree char *message = g_steal_pointer(&t->flush_message);

        t->flush_source = 0;
        token_flush_waiters(t, t->flush_error, message);
        return G_SOURCE_REMOVE;
}

/* token_acquire() promises its callback runs later from the main loop; failures noticed
 * inside it go through here. */
static void token_flush_waiters_later(Token *t, int error, const char *message) {
        g_free(t->flush_message);
        t->flush_message = g_strdup(message);
        t->flush_error = error;
        if (!t->flush_source)
                t->flush_source = g_idle_add(on_flush_later, t);
}

static gboolean on_refresh_due(gpointer userdata) {
        Token *t = userdata;

        t->refresh_source = 0;
        log_debug("Token is due for refresh.");
        token_fetch_start(t);
        return G_SOURCE_REMOVE;
}

static gboolean on_expired(gpointer userdata) {
        Token *t = userdata;

        t->expiry_source = 0;
        if (t->state == TOKEN_STATE_VALID || t->state == TOKEN_STATE_REFRESHING) {
                log_info("OAuth token expired.");
                secret_free(TAKE_PTR(t->token));
                token_set_state(t, TOKEN_STATE_EXPIRED, "the token expired");
        }
        return G_SOURCE_REMOVE;
}

static guint timeout_add_usec(uint64_t delay_usec, GSourceFunc f, void *userdata) {
        return g_timeout_add_full(G_PRIORITY_DEFAULT, (guint) MIN(delay_usec / 1000, (uint64_t) G_MAXUINT),
                                  f, userdata, NULL);
}

/* Takes ownership of token. */
static void token_install(Token *t, char *token, uint64_t expires_at) {
        uint64_t now = now_realtime();

        secret_free(t->token);
        t->token = token;
        t->expires_at = expires_at;
        t->retry_usec = TOKEN_RETRY_MIN_USEC;
        g_clear_handle_id(&t->refresh_source, g_source_remove);
        g_clear_handle_id(&t->expiry_source, g_source_remove);

        if (expires_at > now) {
                uint64_t lifetime = expires_at - now;
                uint64_t margin = MIN(TOKEN_REFRESH_MARGIN_USEC, lifetime / 2);

                /* Short-lived tokens: refresh at half-life, but keep the 10 s guard when possible. */
                if (margin < TOKEN_MIN_MARGIN_USEC && lifetime > 2 * TOKEN_MIN_MARGIN_USEC)
                        margin = TOKEN_MIN_MARGIN_USEC;
                t->expiry_source = timeout_add_usec(lifetime, on_expired, t);
                if (t->config->token_mode == TOKEN_MODE_CLIENT_CREDENTIALS)
                        t->refresh_source = timeout_add_usec(lifetime - margin, on_refresh_due, t);
        }
        token_set_state(t, TOKEN_STATE_VALID, NULL);
        token_notify(t); /* expiry changes even when the state stays "valid" */
}

/* ---- fetching (client-credentials) ---- */

typedef struct FetchJob {
        char *url;
        char *ca_file;
        char *client_id;
        char *client_secret;
        long timeout_ms;
        /* results */
        long http_status;
        GString *body;
        char curl_error[CURL_ERROR_SIZE];
        CURLcode curl_code;
} FetchJob;

static void fetch_job_free(FetchJob *j) {
        if (!j)
                return;
        g_free(j->url);
        g_free(j->ca_file);
        secret_free(j->client_id);
        secret_free(j->client_secret);
        if (j->body) {
                explicit_bzero(j->body->str, j->body->len);
                g_string_free(j->body, TRUE);
        }
        g_free(j);
}

static size_t fetch_write(char *data, size_t size, size_t nmemb, void *userdata) {
        GString *body = userdata;
        size_t n = size * nmemb;

        if (body->len + n > 256 * 1024)
                return 0; /* a token response is small; refuse floods */
        g_string_append_len(body, data, (gssize) n);
        return n;
}

static int fetch_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                          curl_off_t ulnow) {
        return g_cancellable_is_cancelled(userdata) ? 1 : 0;
}

/* Runs in a GTask worker thread: touches nothing but the job. */
static void fetch_thread(GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable) {
        FetchJob *j = task_data;
        CURL *e = curl_easy_init();
        struct curl_slist *headers = NULL;

        if (!e) {
                j->curl_code = CURLE_OUT_OF_MEMORY;
                g_task_return_boolean(task, FALSE);
                return;
        }
        headers = curl_slist_append(headers, "Accept: application/json");
        curl_easy_setopt(e, CURLOPT_URL, j->url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "grant_type=client_credentials&scope=voice.webrtc");
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERNAME, j->client_id);
        curl_easy_setopt(e, CURLOPT_PASSWORD, j->client_secret);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, j->body);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->curl_error);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, j->timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        /* Basic auth carries the client secret: never over cleartext. */
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, fetch_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, cancellable);
        /* Verification stays on; tests add their CA instead of turning it off. */
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
        if (j->ca_file)
                curl_easy_setopt(e, CURLOPT_CAINFO, j->ca_file);
        /* CURLOPT_VERBOSE stays off: its trace would print the Basic credentials. */

        j->curl_code = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &j->http_status);
        curl_slist_free_all(headers);
        curl_easy_cleanup(e);
        g_task_return_boolean(task, TRUE);
}

static char *describe_error_body(const char *body) {
        json_object *root = json_tokener_parse(body);
        json_object *v;
        char *s = NULL;

        if (root && json_object_is_type(root, json_type_object)) {
                const char *err = json_object_object_get_ex(root, "error", &v) ? json_object_get_string(v) : NULL;
                const char *desc = json_object_object_get_ex(root, "error_description", &v)
                                           ? json_object_get_string(v) : NULL;
                if (err)
                        s = g_strdup_printf("%s%s%s", err, desc ? ": " : "", desc ? desc : "");
        }
        json_object_put(root);
        return s;
}

static void fetch_done(GObject *source, GAsyncResult *res, gpointer userdata) {
        Token *t = userdata;
        FetchJob *j = g_task_get_task_data(G_TASK(res));
        g_autofree char *message = NULL;
        char *token = NULL;
        int64_t expires_in = 0;
        int r;

        if (g_task_had_error(G_TASK(res)) || g_cancellable_is_cancelled(g_task_get_cancellable(G_TASK(res))))
                return; /* token_free() cancelled us; t may be gone */
        g_clear_object(&t->fetch);

        if (j->curl_code != CURLE_OK)
                message = g_strdup_printf("token endpoint unreachable: %s",
                                          *j->curl_error ? j->curl_error : curl_easy_strerror(j->curl_code));
        else if (j->http_status != 200) {
                g_autofree char *detail = describe_error_body(j->body->str);
                message = g_strdup_printf("token endpoint answered HTTP %ld%s%s", j->http_status,
                                          detail ? ": " : "", detail ? detail : "");
        } else {
                r = token_parse_response(j->body->str, &token, &expires_in, &message);
                if (r >= 0) {
                        int64_t exp = 0;
                        uint64_t expires_at = now_realtime() + (uint64_t) expires_in * USEC_PER_SEC;

                        /* The JWT's own exp wins when it is earlier. */
                        if (jwt_get_exp(token, &exp) >= 0 && exp > 0 && exp < TOKEN_EXP_MAX &&
                            (uint64_t) exp * USEC_PER_SEC < expires_at)
                                expires_at = (uint64_t) exp * USEC_PER_SEC;
                        log_info("Got an OAuth token, valid for %" PRIi64 " s.", expires_in);
                        token_install(t, token, expires_at);
                        token_flush_waiters(t, 0, NULL);
                        return;
                }
        }

        log_warning("Failed to get an OAuth token: %s", message);
        /* Keep a still-valid older token: it may carry us until the endpoint is back; try again
         * with a growing delay, but well before it expires. */
        if (token_peek(t)) {
                uint64_t left = t->expires_at - MIN(t->expires_at, now_realtime());
                uint64_t delay = MIN(t->retry_usec ? t->retry_usec : TOKEN_RETRY_MIN_USEC, left / 2);

                t->retry_usec = MIN((t->retry_usec ? t->retry_usec : TOKEN_RETRY_MIN_USEC) * 2, TOKEN_RETRY_MAX_USEC);
                g_clear_handle_id(&t->refresh_source, g_source_remove);
                t->refresh_source = timeout_add_usec(delay, on_refresh_due, t);
                token_set_state(t, TOKEN_STATE_VALID, message);
                token_flush_waiters(t, 0, NULL);
        } else {
                token_set_state(t, TOKEN_STATE_ERROR, message);
                token_flush_waiters(t, -ENOKEY, message);
        }
}

static void token_fetch_start(Token *t) {
        _cleanup_(credentials_freep) Credentials *cr = NULL;
        g_autoptr(GTask) task = NULL;
        FetchJob *j;
        int r;

        if (t->fetch)
                return; /* one request at a time; waiters share its outcome */

        r = credentials_load(t->config, &cr);
        if (r < 0) {
                token_set_state(t, TOKEN_STATE_ERROR, "no client credentials (see the log)");
                token_flush_waiters_later(t, -ENOKEY, "no client credentials are configured or readable");
                return;
        }

        j = g_new0(FetchJob, 1);
        j->url = g_strdup(t->config->token_endpoint);
        j->ca_file = g_strdup(t->config->ca_file);
        j->client_id = TAKE_PTR(cr->client_id);
        j->client_secret = TAKE_PTR(cr->client_secret);
        j->timeout_ms = t->config->token_timeout_ms ? (long) t->config->token_timeout_ms : 10000L;
        j->body = g_string_new(NULL);

        t->fetch = g_cancellable_new();
        task = g_task_new(NULL, t->fetch, fetch_done, t);
        g_task_set_task_data(task, j, (GDestroyNotify) fetch_job_free);
        token_set_state(t, TOKEN_STATE_REFRESHING, NULL);
        log_debug("Fetching an OAuth token from %s.", t->config->token_endpoint);
        g_task_run_in_thread(task, fetch_thread);
}

typedef struct ReadyLater {
        Token *token;
        TokenReadyFunc ready;
        void *userdata;
} ReadyLater;

static gboolean on_ready_later(gpointer userdata) {
        ReadyLater *l = userdata;

        l->ready(l->token, 0, NULL, l->userdata);
        g_free(l);
        return G_SOURCE_REMOVE;
}

void token_acquire(Token *t, TokenReadyFunc ready, void *userdata) {
        TokenWaiter w = { ready, userdata };

        if (token_peek(t)) {
                ReadyLater *l = g_new(ReadyLater, 1);
                *l = (ReadyLater) { t, ready, userdata };
                g_idle_add(on_ready_later, l);
                return;
        }
        g_array_append_val(t->waiters, w);
        if (t->config->token_mode == TOKEN_MODE_CLIENT_CREDENTIALS)
                token_fetch_start(t);
        else
                token_flush_waiters_later(t, -ENOKEY,
                                          t->state == TOKEN_STATE_EXPIRED
                                                  ? "the OAuth token set with SetOAuthToken expired; set a new one"
                                                  : "no OAuth token: set one with SetOAuthToken (bwcall token set)");
}

/* ---- JWT and response parsing ---- */

static bool is_base64url(const char *s, size_t n) {
        if (n == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!g_ascii_isalnum(s[i]) && s[i] != '-' && s[i] != '_')
                        return false;
        return true;
}

static json_object *jwt_payload(const char *jwt) {
        const char *dot1, *dot2;
        g_autofree char *b64 = NULL;
        g_autofree guchar *raw = NULL;
        gsize raw_len = 0, n;
        json_object *root;

        if (!jwt)
                return NULL;
        dot1 = strchr(jwt, '.');
        if (!dot1)
                return NULL;
        dot2 = strchr(dot1 + 1, '.');
        if (!dot2 || strchr(dot2 + 1, '.'))
                return NULL;
        if (!is_base64url(jwt, dot1 - jwt) || !is_base64url(dot1 + 1, dot2 - dot1 - 1) ||
            !is_base64url(dot2 + 1, strlen(dot2 + 1)))
                return NULL;

        n = dot2 - dot1 - 1;
        if (n > 16384)
                return NULL;
        b64 = g_malloc(n + 4);
        for (gsize i = 0; i < n; i++) {
                char c = dot1[1 + i];
                b64[i] = c == '-' ? '+' : c == '_' ? '/' : c;
        }
        while (n % 4)
                b64[n++] = '=';
        b64[n] = '\0';
        raw = g_base64_decode(b64, &raw_len);
        if (!raw)
                return NULL;
        {
                g_autofree char *text = g_strndup((const char *) raw, raw_len);
                root = json_tokener_parse(text);
        }
        return root;
}

int jwt_get_exp(const char *jwt, int64_t *ret_exp) {
        json_object *root = jwt_payload(jwt), *exp;
        int r = 0;

        if (!root || !json_object_is_type(root, json_type_object))
                r = -EINVAL;
        else if (!json_object_object_get_ex(root, "exp", &exp) ||
                 (!json_object_is_type(exp, json_type_int) && !json_object_is_type(exp, json_type_double)))
                r = -ENOENT;
        else
                *ret_exp = json_object_get_int64(exp);
        json_object_put(root);
        return r;
}

int token_parse_response(const char *body, char **ret_token, int64_t *ret_expires_in, char **ret_message) {
        json_object *root, *v;
        enum json_tokener_error jerr = json_tokener_success;
        int64_t expires_in = 3600;
        int r = -EBADMSG;

        root = json_tokener_parse_verbose(body ? body : "", &jerr);
        if (!root || !json_object_is_type(root, json_type_object)) {
                *ret_message = g_strdup("token endpoint answered something that is not a JSON object");
                goto out;
        }
        if (!json_object_object_get_ex(root, "access_token", &v) || !json_object_is_type(v, json_type_string) ||
            json_object_get_string_len(v) == 0) {
                *ret_message = g_strdup("token endpoint response has no access_token");
                goto out;
        }
        if (strpbrk(json_object_get_string(v), "\r\n \t")) {
                *ret_message = g_strdup("token endpoint returned an access_token with whitespace in it");
                goto out;
        }
        if (json_object_object_get_ex(root, "expires_in", &v)) {
                /* Kotlin's sample models it as a String; accept both. */
                if (json_object_is_type(v, json_type_int))
                        expires_in = json_object_get_int64(v);
                else if (json_object_is_type(v, json_type_string)) {
                        char *end;
                        expires_in = g_ascii_strtoll(json_object_get_string(v), &end, 10);
                        if (*end)
                                expires_in = -1;
                } else
                        expires_in = -1;
                if (expires_in <= 0 || expires_in > 366 * 24 * 3600) {
                        *ret_message = g_strdup("token endpoint response has an invalid expires_in");
                        goto out;
                }
        }
        json_object_object_get_ex(root, "access_token", &v);
        *ret_token = g_strdup(json_object_get_string(v));
        *ret_expires_in = expires_in;
        r = 0;
out:
        json_object_put(root);
        return r;
}

int token_set_external(Token *t, const char *jwt, char **ret_message) {
        json_object *root;
        int64_t exp = 0;
        int r;

        root = jwt_payload(jwt);
        if (!root || !json_object_is_type(root, json_type_object)) {
                json_object_put(root);
                *ret_message = g_strdup("not a JWT: expected three base64url parts with a JSON payload");
                return -EINVAL;
        }
        json_object_put(root);

        r = jwt_get_exp(jwt, &exp);
        if (r == 0 && (exp <= 0 || exp >= TOKEN_EXP_MAX)) {
                *ret_message = g_strdup("the token's exp claim is not a plausible time");
                return -EINVAL;
        }
        if (r == 0 && (uint64_t) exp * USEC_PER_SEC <= now_realtime()) {
                *ret_message = g_strdup("the token's exp claim is in the past");
                return -EINVAL;
        }

        log_info("OAuth token set over D-Bus%s.", r == 0 ? "" : " (no exp claim)");
        token_install(t, g_strdup(jwt), r == 0 ? (uint64_t) exp * USEC_PER_SEC : 0);
        token_flush_waiters(t, 0, NULL);
        return 0;
}
