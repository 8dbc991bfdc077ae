/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "config.h"
#include "log.h"

typedef struct NetworkPreset {
        const char *name;
        const char *server;
        const char *domain;
        const char *token_endpoint;
} NetworkPreset;

/* From dev.bandwidth.com (reference/gateway-protocol.md §1 and §9). */
static const NetworkPreset presets[] = {
        { "us", "wss://gw.webrtc-app.bandwidth.com:10081", "gw.webrtc-app.bandwidth.com",
          "https://id.bandwidth.com/api/v1/oauth2/token" },
        { "global", "wss://sbc.webrtc-app.bandwidth.com:10081", "sbc.webrtc-app.bandwidth.com",
          "https://id.voxbone.com/api/v1/oauth2/token" },
};

static const char *const token_mode_names[_TOKEN_MODE_MAX] = {
        [TOKEN_MODE_CLIENT_CREDENTIALS] = "client-credentials",
        [TOKEN_MODE_EXTERNAL] = "external",
        [TOKEN_MODE_TOKEN_URL] = "token-url",
};

static const char *const dtmf_method_names[_DTMF_METHOD_MAX] = {
        [DTMF_METHOD_RFC4733] = "rfc4733",
        [DTMF_METHOD_INFO] = "info",
};

const char *dtmf_method_to_string(DtmfMethod m) {
        return m >= 0 && m < _DTMF_METHOD_MAX ? dtmf_method_names[m] : NULL;
}

int dtmf_method_from_string(const char *s) {
        for (int i = 0; i < _DTMF_METHOD_MAX; i++)
                if (g_strcmp0(s, dtmf_method_names[i]) == 0)
                        return i;
        return -EINVAL;
}

const char *token_mode_to_string(TokenMode m) {
        return m >= 0 && m < _TOKEN_MODE_MAX ? token_mode_names[m] : NULL;
}

int token_mode_from_string(const char *s) {
        for (int i = 0; i < _TOKEN_MODE_MAX; i++)
                if (g_strcmp0(s, token_mode_names[i]) == 0)
                        return i;
        return -EINVAL;
}

Config *config_new(void) {
        Config *c = g_new0(Config, 1);

        c->display_name = g_strdup("");
        c->user_agent = g_strdup("JsSIP 3.10.0"); /* what the SDK sends (gateway-protocol.md §3) */
        c->token_mode = TOKEN_MODE_CLIENT_CREDENTIALS;
        c->token_timeout_ms = 10000;
        c->latency_ms = 40; /* platform-notes §1: 200 ms default adds to mouth-to-ear delay */
        c->auto_connect = true;
        c->call_linger_ms = 2000;
        c->dtmf_method = DTMF_METHOD_RFC4733;
        c->incoming_timeout_ms = 60000; /* the SDK's noAnswerTimeout */
        c->rtp_timeout_ms = 10000;      /* Vonage's media timeout; Chrome's SDK fix waits 13 s */
        c->connect_timeout_ms = 10000;
        c->reconnect_min_s = 2;
        c->reconnect_max_s = 30;
        /* The SDK's samples ping every 5 s; 15 s still finds a dead socket (and keeps NAT
         * bindings) well within the time a caller waits for an incoming call to ring. */
        c->keepalive_s = 15;
        c->keepalive_pong_timeout = true;
        c->tone_ringback = c->tone_ring = c->tone_call_waiting = c->tone_dtmf_feedback = true;
        c->echo_cancel = c->noise_suppression = c->gain_control = true;
        return c;
}

Config *config_free(Config *c) {
        if (!c)
                return NULL;
        g_free(c->network);
        g_strfreev(c->servers);
        g_free(c->server_weights);
        g_free(c->domain);
        g_free(c->caller_id);
        g_free(c->display_name);
        g_free(c->user_agent);
        g_free(c->ca_file);
        g_free(c->token_endpoint);
        g_free(c->token_url);
        g_free(c->credentials_file);
        g_strfreev(c->ice_addresses);
        g_strfreev(c->stun_servers);
        g_free(c->input);
        g_free(c->ringer);
        g_free(c->output);
        g_free(c);
        return NULL;
}

char *config_default_path(void) {
        return g_build_filename(g_get_user_config_dir(), "bwcall", "bwcall.conf", NULL);
}

/* One table drives both parsing and the unknown-key check. */
typedef enum ValueType { VT_STRING, VT_STRV, VT_BOOL, VT_UINT, VT_TOKEN_MODE, VT_DTMF_METHOD } ValueType;

typedef struct ConfigKey {
        const char *group;
        const char *key;
        ValueType type;
        size_t offset;
} ConfigKey;

static const ConfigKey config_keys[] = {
        { "Network", "Preset", VT_STRING, offsetof(Config, network) },
        { "Network", "Servers", VT_STRV, offsetof(Config, servers) },
        { "Network", "Domain", VT_STRING, offsetof(Config, domain) },
        { "Network", "CAFile", VT_STRING, offsetof(Config, ca_file) },
        { "Network", "UserAgent", VT_STRING, offsetof(Config, user_agent) },
        { "Network", "ConnectTimeoutMSec", VT_UINT, offsetof(Config, connect_timeout_ms) },
        { "Network", "AutoConnect", VT_BOOL, offsetof(Config, auto_connect) },
        { "Network", "ReconnectMinSec", VT_UINT, offsetof(Config, reconnect_min_s) },
        { "Network", "ReconnectMaxSec", VT_UINT, offsetof(Config, reconnect_max_s) },
        { "Network", "KeepAliveSec", VT_UINT, offsetof(Config, keepalive_s) },
        { "Network", "KeepAlivePongTimeout", VT_BOOL, offsetof(Config, keepalive_pong_timeout) },
        { "Account", "CallerId", VT_STRING, offsetof(Config, caller_id) },
        { "Account", "DisplayName", VT_STRING, offsetof(Config, display_name) },
        { "Token", "Mode", VT_TOKEN_MODE, offsetof(Config, token_mode) },
        { "Token", "Endpoint", VT_STRING, offsetof(Config, token_endpoint) },
        { "Token", "Url", VT_STRING, offsetof(Config, token_url) },
        { "Token", "CredentialsFile", VT_STRING, offsetof(Config, credentials_file) },
        { "Token", "TimeoutMSec", VT_UINT, offsetof(Config, token_timeout_ms) },
        { "Media", "IceAddresses", VT_STRV, offsetof(Config, ice_addresses) },
        { "Media", "UPnP", VT_BOOL, offsetof(Config, upnp) },
        { "Media", "StunServers", VT_STRV, offsetof(Config, stun_servers) },
        { "Media", "LatencyMSec", VT_UINT, offsetof(Config, latency_ms) },
        { "Media", "Input", VT_STRING, offsetof(Config, input) },
        { "Media", "Output", VT_STRING, offsetof(Config, output) },
        { "Media", "Ringer", VT_STRING, offsetof(Config, ringer) },
        { "Media", "EchoCancellation", VT_BOOL, offsetof(Config, echo_cancel) },
        { "Media", "NoiseSuppression", VT_BOOL, offsetof(Config, noise_suppression) },
        { "Media", "GainControl", VT_BOOL, offsetof(Config, gain_control) },
        { "Tones", "Ringback", VT_BOOL, offsetof(Config, tone_ringback) },
        { "Tones", "Ring", VT_BOOL, offsetof(Config, tone_ring) },
        { "Tones", "CallWaiting", VT_BOOL, offsetof(Config, tone_call_waiting) },
        { "Tones", "DtmfFeedback", VT_BOOL, offsetof(Config, tone_dtmf_feedback) },
        { "Calls", "LingerMSec", VT_UINT, offsetof(Config, call_linger_ms) },
        { "Calls", "DtmfMethod", VT_DTMF_METHOD, offsetof(Config, dtmf_method) },
        { "Calls", "IncomingTimeoutMSec", VT_UINT, offsetof(Config, incoming_timeout_ms) },
        { "Calls", "RtpTimeoutMSec", VT_UINT, offsetof(Config, rtp_timeout_ms) },
};

static const ConfigKey *config_key_find(const char *group, const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (strcmp(config_keys[i].group, group) == 0 && strcmp(config_keys[i].key, key) == 0)
                        return &config_keys[i];
        return NULL;
}

static int config_set_key(Config *c, GKeyFile *kf, const char *path, const ConfigKey *k) {
        g_autoptr(GError) error = NULL;
        void *field = (char *) c + k->offset;

        switch (k->type) {
        case VT_STRING: {
                char *v = g_key_file_get_string(kf, k->group, k->key, &error);
                if (!v)
                        break;
                g_strstrip(v);
                g_free(*(char **) field);
                *(char **) field = v;
                return 0;
        }
        case VT_STRV: {
                gsize n = 0;
                char **v = g_key_file_get_string_list(kf, k->group, k->key, &n, &error);
                if (!v)
                        break;
                for (gsize i = 0; i < n; i++)
                        g_strstrip(v[i]);
                g_strfreev(*(char ***) field);
                *(char ***) field = v;
                return 0;
        }
        case VT_BOOL: {
                gboolean v = g_key_file_get_boolean(kf, k->group, k->key, &error);
                if (error)
                        break;
                *(bool *) field = v;
                return 0;
        }
        case VT_UINT: {
                g_autofree char *s = g_key_file_get_string(kf, k->group, k->key, &error);
                char *end = NULL;
                guint64 v;

                if (!s)
                        break;
                errno = 0;
                v = g_ascii_strtoull(g_strstrip(s), &end, 10);
                if (errno != 0 || !end || *end || !*s || v > 3600000)
                        return log_error_errno(-EINVAL, "%s: [%s] %s=%s is not a number in 0…3600000.",
                                               path, k->group, k->key, s);
                *(unsigned *) field = (unsigned) v;
                return 0;
        }
        case VT_DTMF_METHOD: {
                g_autofree char *s = g_key_file_get_string(kf, k->group, k->key, &error);
                int m;

                if (!s)
                        break;
                m = dtmf_method_from_string(g_strstrip(s));
                if (m < 0)
                        return log_error_errno(-EINVAL, "%s: [%s] %s=%s: expected rfc4733 or info.", path,
                                               k->group, k->key, s);
                *(DtmfMethod *) field = (DtmfMethod) m;
                return 0;
        }
        case VT_TOKEN_MODE: {
                g_autofree char *s = g_key_file_get_string(kf, k->group, k->key, &error);
                int m;

                if (!s)
                        break;
                m = token_mode_from_string(g_strstrip(s));
                if (m < 0)
                        return log_error_errno(-EINVAL,
                                               "%s: [%s] %s=%s: expected client-credentials, token-url or external.",
                                               path, k->group, k->key, s);
                *(TokenMode *) field = (TokenMode) m;
                return 0;
        }
        }
        return log_error_errno(-EINVAL, "%s: [%s] %s: %s", path, k->group, k->key,
                               error ? error->message : "invalid value");
}

int config_load_file(Config *c, const char *path, bool required) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) error = NULL;
        g_auto(GStrv) groups = NULL;
        int r;

        if (!g_key_file_load_from_file(kf, path, G_KEY_FILE_NONE, &error)) {
                if (!required && g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
                        return 0;
                return log_error_errno(-EINVAL, "Failed to read configuration %s: %s", path, error->message);
        }

        groups = g_key_file_get_groups(kf, NULL);
        for (char **g = groups; *g; g++) {
                g_auto(GStrv) keys = g_key_file_get_keys(kf, *g, NULL, NULL);

                for (char **k = keys; k && *k; k++) {
                        const ConfigKey *ck = config_key_find(*g, *k);

                        if (!ck) {
                                /* Secrets must never live in the main config. */
                                if (g_str_has_prefix(*k, "Client"))
                                        return log_error_errno(-EINVAL,
                                                               "%s: [%s] %s: client credentials do not belong in the "
                                                               "configuration file; use CredentialsFile= or systemd "
                                                               "credentials.", path, *g, *k);
                                log_warning("%s: unknown setting [%s] %s, ignoring.", path, *g, *k);
                                continue;
                        }
                        r = config_set_key(c, kf, path, ck);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* Servers= entries are "URL" or "URL WEIGHT" (the SDK's [url, weight]; default weight 0). */
static int config_split_server_weights(Config *c) {
        size_t n = g_strv_length(c->servers);

        g_free(c->server_weights);
        c->server_weights = g_new0(unsigned, n);
        for (size_t i = 0; i < n; i++) {
                char *s = g_strstrip(c->servers[i]);
                char *space = strpbrk(s, " \t");

                if (space) {
                        char *end;
                        unsigned long w;

                        *space = '\0';
                        w = strtoul(g_strchug(space + 1), &end, 10);
                        if (end == space + 1 || *end || w > 1000000)
                                return log_error_errno(-EINVAL, "[Network] Servers=: '%s %s' is not \"URL\" or "
                                                       "\"URL WEIGHT\".", s, space + 1);
                        c->server_weights[i] = (unsigned) w;
                }
                if (!g_str_has_prefix(s, "wss://") && !g_str_has_prefix(s, "ws://"))
                        return log_error_errno(-EINVAL, "Gateway URL '%s' is not a ws:// or wss:// URL.", s);
        }
        return 0;
}

int config_finalize(Config *c) {
        const NetworkPreset *preset = NULL;
        int r;

        if (c->network && *c->network) {
                for (size_t i = 0; i < ELEMENTSOF(presets); i++)
                        if (strcmp(presets[i].name, c->network) == 0)
                                preset = &presets[i];
                if (!preset)
                        return log_error_errno(-EINVAL, "Unknown network preset '%s' (expected 'us' or 'global').",
                                               c->network);
                if (!c->servers || !c->servers[0]) {
                        g_strfreev(c->servers);
                        c->servers = g_new0(char *, 2);
                        c->servers[0] = g_strdup(preset->server);
                }
                if (!c->domain || !*c->domain) {
                        g_free(c->domain);
                        c->domain = g_strdup(preset->domain);
                }
                if (!c->token_endpoint || !*c->token_endpoint) {
                        g_free(c->token_endpoint);
                        c->token_endpoint = g_strdup(preset->token_endpoint);
                }
        }

        if (!c->servers || !c->servers[0])
                return log_error_errno(-EINVAL, "No gateway configured: set [Network] Preset= or Servers=.");
        r = config_split_server_weights(c);
        if (r < 0)
                return r;
        if (c->reconnect_min_s < 1 || c->reconnect_max_s < c->reconnect_min_s)
                return log_error_errno(-EINVAL, "[Network] ReconnectMinSec=%u/ReconnectMaxSec=%u: need 1 <= min <= max.",
                                       c->reconnect_min_s, c->reconnect_max_s);
        if (!c->domain || !*c->domain)
                return log_error_errno(-EINVAL, "No SIP domain configured: set [Network] Domain=.");
        if (!c->caller_id || !*c->caller_id)
                return log_error_errno(-EINVAL, "No caller id configured: set [Account] CallerId=.");
        if (c->token_mode == TOKEN_MODE_CLIENT_CREDENTIALS && (!c->token_endpoint || !*c->token_endpoint))
                return log_error_errno(-EINVAL, "Token mode client-credentials needs [Token] Endpoint=.");
        if (c->token_mode == TOKEN_MODE_CLIENT_CREDENTIALS && !g_str_has_prefix(c->token_endpoint, "https://"))
                return log_error_errno(-EINVAL,
                                       "Token endpoint '%s' is not https://: the client secret would travel in "
                                       "clear text.", c->token_endpoint);
        if (c->token_mode == TOKEN_MODE_TOKEN_URL && (!c->token_url || !*c->token_url))
                return log_error_errno(-EINVAL, "Token mode token-url needs [Token] Url=.");
        /* The backend's answer is a bearer token and the request may carry an API key. */
        if (c->token_mode == TOKEN_MODE_TOKEN_URL && !g_str_has_prefix(c->token_url, "https://"))
                return log_error_errno(-EINVAL, "Token URL '%s' is not https://: tokens and API keys would travel "
                                       "in clear text.", c->token_url);
        if (c->ca_file && *c->ca_file && !g_path_is_absolute(c->ca_file)) {
                /* glib-networking refuses relative anchor paths (platform-notes §5). */
                char *abs = g_canonicalize_filename(c->ca_file, NULL);
                g_free(c->ca_file);
                c->ca_file = abs;
        }
        return 0;
}

static void wipe_free(char *s) {
        if (s) {
                explicit_bzero(s, strlen(s));
                g_free(s);
        }
}

Credentials *credentials_free(Credentials *cr) {
        if (!cr)
                return NULL;
        wipe_free(cr->client_id);
        wipe_free(cr->client_secret);
        wipe_free(cr->token_url_header);
        g_free(cr);
        return NULL;
}

/* Reads a small secret file, checking ownership-independent permission bits on the open fd. */
static int read_secret_file(const char *path, bool check_mode, char **ret) {
        struct stat st;
        GString *buf;
        char chunk[4096];
        ssize_t n;
        int fd, r = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return log_error_errno(-errno, "Failed to open credentials %s: %m", path);
        /* Check and read the same open file, so the file checked is the file read. */
        if (fstat(fd, &st) < 0)
                r = log_error_errno(-errno, "Failed to stat credentials %s: %m", path);
        else if (!S_ISREG(st.st_mode))
                r = log_error_errno(-EINVAL, "Credentials %s is not a regular file.", path);
        else if (check_mode && (st.st_mode & 0077))
                r = log_error_errno(-EPERM,
                                    "Refusing credentials file %s: it is readable by group or others "
                                    "(mode %04o); run chmod 600 on it.", path, (unsigned) (st.st_mode & 07777));
        else if (st.st_size > 64 * 1024)
                r = log_error_errno(-EFBIG, "Credentials file %s is too large.", path);
        if (r < 0) {
                close(fd);
                return r;
        }

        buf = g_string_sized_new((gsize) st.st_size + 1);
        while ((n = read(fd, chunk, sizeof chunk)) > 0 && buf->len < 64 * 1024)
                g_string_append_len(buf, chunk, n);
        if (n < 0)
                r = log_error_errno(-errno, "Failed to read credentials %s: %m", path);
        explicit_bzero(chunk, sizeof chunk);
        close(fd);
        if (r < 0) {
                explicit_bzero(buf->str, buf->len);
                g_string_free(buf, TRUE);
                return r;
        }
        *ret = g_string_free(buf, FALSE);
        return 0;
}

static char *dup_trimmed(const char *s) {
        return g_strstrip(g_strdup(s));
}

/* One row per secret: its systemd credential name and its key in the credentials file. */
typedef struct SecretKey {
        const char *credential;
        const char *file_key;
        size_t offset;
} SecretKey;

static const SecretKey secret_keys[] = {
        { "client-id", "client_id", offsetof(Credentials, client_id) },
        { "client-secret", "client_secret", offsetof(Credentials, client_secret) },
        { "token-url-header", "token_url_header", offsetof(Credentials, token_url_header) },
};

static void credentials_set(Credentials *cr, const SecretKey *k, const char *value) {
        char **field = (char **) ((uint8_t *) cr + k->offset);

        wipe_free(*field);
        *field = dup_trimmed(value);
}

static int credentials_load_directory(Credentials *cr, const char *dir) {
        int r;

        for (size_t i = 0; i < ELEMENTSOF(secret_keys); i++) {
                g_autofree char *path = g_build_filename(dir, secret_keys[i].credential, NULL);
                char *value = NULL;

                if (!g_file_test(path, G_FILE_TEST_EXISTS))
                        continue;
                /* systemd already made these private to the service; no mode check. */
                r = read_secret_file(path, false, &value);
                if (r < 0)
                        return r;
                credentials_set(cr, &secret_keys[i], value);
                wipe_free(value);
        }
        return 0;
}

static int credentials_load_file(Credentials *cr, const char *path) {
        char *contents = NULL;
        g_auto(GStrv) lines = NULL;
        g_autofree size_t *line_lengths = NULL;
        int r;

        r = read_secret_file(path, true, &contents);
        if (r < 0)
                return r;
        lines = g_strsplit(contents, "\n", -1);
        wipe_free(contents);
        line_lengths = g_new0(size_t, g_strv_length(lines) + 1);
        for (char **l = lines; *l; l++) {
                char *eq;

                /* Remember the whole length: the '=' below is cut, and the secret after it must
                 * be wiped too. */
                line_lengths[l - lines] = strlen(*l);
                eq = strchr(*l, '=');
                if (!eq)
                        continue;
                *eq = '\0';
                g_strstrip(*l);
                for (size_t i = 0; i < ELEMENTSOF(secret_keys); i++)
                        if (strcmp(*l, secret_keys[i].file_key) == 0)
                                credentials_set(cr, &secret_keys[i], eq + 1);
        }
        for (char **l = lines; *l; l++)
                explicit_bzero(*l, line_lengths[l - lines]);
        return 0;
}

/* "Name: value" with a token name and no line breaks: it goes verbatim into an HTTP request. */
static bool header_line_ok(const char *h) {
        const char *colon = strchr(h, ':');

        if (!colon || colon == h || strpbrk(h, "\r\n"))
                return false;
        for (const char *c = h; c < colon; c++)
                if (!g_ascii_isalnum(*c) && *c != '-' && *c != '_')
                        return false;
        return true;
}

int credentials_load(const Config *c, Credentials **ret) {
        _cleanup_(credentials_freep) Credentials *cr = g_new0(Credentials, 1);
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        int r;

        if (dir && *dir) {
                r = credentials_load_directory(cr, dir);
                if (r < 0)
                        return r;
        }
        /* systemd credentials win; the file fills in only when they are absent. */
        if (!cr->client_id && !cr->token_url_header && c->credentials_file && *c->credentials_file) {
                r = credentials_load_file(cr, c->credentials_file);
                if (r < 0)
                        return r;
        }

        if (c->token_mode == TOKEN_MODE_CLIENT_CREDENTIALS &&
            (!cr->client_id || !*cr->client_id || !cr->client_secret || !*cr->client_secret))
                return log_error_errno(-ENOKEY,
                                       "No client credentials: provide client-id/client-secret via systemd "
                                       "LoadCredential= or [Token] CredentialsFile= with client_id= and "
                                       "client_secret= lines.");
        if (cr->token_url_header && (!*cr->token_url_header || !header_line_ok(cr->token_url_header)))
                /* Never echo the value: it is an API key. */
                return log_error_errno(-EINVAL, "The token-url-header credential is not a \"Name: value\" header "
                                       "line.");
        *ret = TAKE_PTR(cr);
        return 0;
}
