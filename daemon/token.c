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
        bool want_new; /* RefreshToken(): an older token that still works is not an answer */
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
        uint64_t retry_usec;     /* next back-off step after a transient failure */
};

/* Transient failures (unreachable, timeout, 429, 5xx, a garbled answer) are retried with
 * exponential back-off and ±20 % jitter, so that many clients do not retry in lock-step;
 * permanent ones (the endpoint refusing our credentials) are not retried until asked. */
#define TOKEN_RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define TOKEN_RETRY_MAX_USEC (60 * USEC_PER_SEC)
#define TOKEN_RETRY_AFTER_MAX_USEC (300 * USEC_PER_SEC)
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

static void token_notify(Token *t, bool new_token) {
        if (t->changed)
                t->changed(t, new_token, t->userdata);
}

static bool token_mode_fetches(const Token *t) {
        return t->config->token_mode != TOKEN_MODE_EXTERNAL;
}

const char *token_get_mode(const Token *t) {
        return token_mode_to_string(t->config->token_mode);
}

static void token_set_state(Token *t, TokenState s, const char *error) {
        bool changed = t->state != s || g_strcmp0(t->error, error) != 0;

        t->state = s;
        g_free(t->error);
        t->error = g_strdup(error);
        if (changed)
                token_notify(t, false);
}

/* error 0 with a message: the fetch failed but an older token still works, which is enough
 * for everyone except RefreshToken(). */
static void token_flush_waiters(Token *t, int error, const char *message) {
        /* Swap the list first: a callback may call token_acquire() again. */
        g_autoptr(GArray) waiters = t->waiters;

        t->waiters = g_array_new(FALSE, FALSE, sizeof(TokenWaiter));
        for (guint i = 0; i < waiters->len; i++) {
                TokenWaiter *w = &g_array_index(waiters, TokenWaiter, i);

                if (error == 0 && message && w->want_new)
                        w->ready(t, -ENOKEY, message, w->userdata);
                else
                        w->ready(t, error, error < 0 ? message : NULL, w->userdata);
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
        t->retry_usec = 0;
        g_clear_handle_id(&t->refresh_source, g_source_remove);
        g_clear_handle_id(&t->expiry_source, g_source_remove);

        if (expires_at > now) {
                uint64_t lifetime = expires_at - now;
                uint64_t margin = MIN(TOKEN_REFRESH_MARGIN_USEC, lifetime / 2);

                /* Short-lived tokens: refresh at half-life, but keep the 10 s guard when possible. */
                if (margin < TOKEN_MIN_MARGIN_USEC && lifetime > 2 * TOKEN_MIN_MARGIN_USEC)
                        margin = TOKEN_MIN_MARGIN_USEC;
                t->expiry_source = timeout_add_usec(lifetime, on_expired, t);
                if (token_mode_fetches(t))
                        t->refresh_source = timeout_add_usec(lifetime - margin, on_refresh_due, t);
        }
        /* One notification, even when the state stays "valid": the expiry changed. */
        t->state = TOKEN_STATE_VALID;
        g_clear_pointer(&t->error, g_free);
        token_notify(t, true);
}

void token_reject(Token *t, const char *reason) {
        if (!t->token)
                return;
        log_warning("The OAuth token was refused: %s.", reason);
        secret_free(TAKE_PTR(t->token));
        t->expires_at = 0;
        g_clear_handle_id(&t->refresh_source, g_source_remove);
        g_clear_handle_id(&t->expiry_source, g_source_remove);
        /* The error text always changes here, so this notifies (expiry included) once. */
        token_set_state(t, TOKEN_STATE_EXPIRED, reason);
}

/* ---- fetching (client-credentials, token-url) ---- */

typedef struct FetchJob {
        char *url;
        char *ca_file;
        bool customer_backend;   /* token-url: GET with the optional header instead of the OAuth POST */
        char *client_id;
        char *client_secret;
        char *header;            /* token-url: "Name: value", secret */
        long timeout_ms;
        /* results */
        long http_status;
        curl_off_t retry_after;  /* seconds, from a 429/503's Retry-After; 0 if none */
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
        secret_free(j->header);
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
        if (j->customer_backend) {
                if (j->header)
                        headers = curl_slist_append(headers, j->header);
        } else {
                curl_easy_setopt(e, CURLOPT_POSTFIELDS, "grant_type=client_credentials&scope=voice.webrtc");
                curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
                curl_easy_setopt(e, CURLOPT_USERNAME, j->client_id);
                curl_easy_setopt(e, CURLOPT_PASSWORD, j->client_secret);
        }
        curl_easy_setopt(e, CURLOPT_URL, j->url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, fetch_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, j->body);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, j->curl_error);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, j->timeout_ms);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        /* Basic auth carries the client secret, the header an API key: never over cleartext. */
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
        curl_easy_getinfo(e, CURLINFO_RETRY_AFTER, &j->retry_after);
        /* The list holds a copy of the API key header. */
        for (struct curl_slist *h = headers; h; h = h->next)
                explicit_bzero(h->data, strlen(h->data));
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

/* 400/401/403: the endpoint refuses who we are (invalid_client, a wrong API key). Asking again
 * changes nothing until someone fixes the credentials, so it is not retried on its own. */
static bool http_status_is_permanent(long status) {
        return status == 400 || status == 401 || status == 403;
}

static uint64_t token_next_retry_usec(Token *t, uint64_t retry_after_usec) {
        uint64_t step = t->retry_usec ? t->retry_usec : TOKEN_RETRY_MIN_USEC;
        uint64_t delay = (uint64_t) ((double) step * g_random_double_range(0.8, 1.2));

        t->retry_usec = MIN(step * 2, TOKEN_RETRY_MAX_USEC);
        if (retry_after_usec > delay)
                delay = MIN(retry_after_usec, TOKEN_RETRY_AFTER_MAX_USEC);
        return delay;
}

static void fetch_done(GObject *source, GAsyncResult *res, gpointer userdata) {
        Token *t = userdata;
        FetchJob *j = g_task_get_task_data(G_TASK(res));
        g_autofree char *message = NULL;
        char *token = NULL;
        int64_t expires_in = 0;
        bool permanent = false;
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
                permanent = http_status_is_permanent(j->http_status);
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

        g_clear_handle_id(&t->refresh_source, g_source_remove);
        if (permanent)
                log_warning("Failed to get an OAuth token: %s. Not retrying until the next call or "
                            "RefreshToken().", message);
        else {
                uint64_t delay = token_next_retry_usec(t, (uint64_t) j->retry_after * USEC_PER_SEC);

                /* A still-valid older token may carry us until the endpoint is back: retry well
                 * before it expires. */
                if (token_peek(t))
                        delay = MIN(delay, (t->expires_at - MIN(t->expires_at, now_realtime())) / 2);
                log_warning("Failed to get an OAuth token: %s. Retrying in %.1f s.", message,
                            (double) delay / USEC_PER_SEC);
                t->refresh_source = timeout_add_usec(delay, on_refresh_due, t);
        }
        if (token_peek(t)) {
                token_set_state(t, TOKEN_STATE_VALID, message);
                token_flush_waiters(t, 0, message);
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
                token_set_state(t, TOKEN_STATE_ERROR, "no usable credentials (see the log)");
                token_flush_waiters_later(t, -ENOKEY, "no usable credentials are configured or readable");
                return;
        }

        j = g_new0(FetchJob, 1);
        j->customer_backend = t->config->token_mode == TOKEN_MODE_TOKEN_URL;
        j->url = g_strdup(j->customer_backend ? t->config->token_url : t->config->token_endpoint);
        j->ca_file = g_strdup(t->config->ca_file);
        j->client_id = TAKE_PTR(cr->client_id);
        j->client_secret = TAKE_PTR(cr->client_secret);
        j->header = TAKE_PTR(cr->token_url_header);
        j->timeout_ms = t->config->token_timeout_ms ? (long) t->config->token_timeout_ms : 10000L;
        j->body = g_string_new(NULL);

        t->fetch = g_cancellable_new();
        task = g_task_new(NULL, t->fetch, fetch_done, t);
        g_task_set_task_data(task, j, (GDestroyNotify) fetch_job_free);
        token_set_state(t, TOKEN_STATE_REFRESHING, NULL);
        log_debug("Fetching an OAuth token from %s.", j->url);
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
        if (token_mode_fetches(t))
                token_fetch_start(t);
        else
                token_flush_waiters_later(t, -ENOKEY,
                                          t->state == TOKEN_STATE_EXPIRED
                                                  ? "the OAuth token set with SetOAuthToken expired; set a new one"
                                                  : "no OAuth token: set one with SetOAuthToken (bwcall token set)");
}

int token_refresh(Token *t, TokenReadyFunc ready, void *userdata) {
        TokenWaiter w = { ready, userdata, .want_new = true };

        if (!token_mode_fetches(t))
                return -EOPNOTSUPP;
        g_array_append_val(t->waiters, w);
        /* The current token stays in use until the new one is here; a fetch already under way
         * answers this waiter too. A user asking is also the way out of a permanent failure and
         * of a long back-off, so the back-off starts over. */
        t->retry_usec = 0;
        token_fetch_start(t);
        return 0;
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
