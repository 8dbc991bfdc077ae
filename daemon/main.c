/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <glib-unix.h>
#include <gst/gst.h>
#include <systemd/sd-daemon.h>

#include "bus.h"
#include "config.h"
#include "log.h"
#include "media.h"
#include "phone.h"

/* bwcalld: start-up, configuration, the one GLib main loop, sd_notify READY/WATCHDOG. */

typedef struct Options {
        char *config_path;
        char *servers;
        char *domain;
        char *caller_id;
        char *display_name;
        char *token_endpoint;
        char *credentials_file;
        char *ca_file;
        char *token_mode;
        char *ice_addresses;
        char *log_level;
        char *linger_ms;
        bool no_auto_connect;
} Options;

static void options_clear(Options *o) {
        g_free(o->config_path);
        g_free(o->servers);
        g_free(o->domain);
        g_free(o->caller_id);
        g_free(o->display_name);
        g_free(o->token_endpoint);
        g_free(o->credentials_file);
        g_free(o->ca_file);
        g_free(o->token_mode);
        g_free(o->ice_addresses);
        g_free(o->log_level);
        g_free(o->linger_ms);
}

static void help(void) {
        printf("Usage: bwcalld [OPTIONS]\n\n"
               "Bandwidth In-App Calling daemon: publishes org.bwcall.Phone1 on the user bus.\n\n"
               "  -c --config=FILE           Configuration file (default $XDG_CONFIG_HOME/bwcall/bwcall.conf)\n"
               "     --server=URL[,URL...]   Gateway WebSocket URL(s) (wss://...)\n"
               "     --domain=DOMAIN         SIP domain\n"
               "     --caller-id=NUMBER      Our number (From), E.164\n"
               "     --display-name=NAME     From display name\n"
               "     --token-mode=MODE       client-credentials | external\n"
               "     --token-endpoint=URL    OAuth token endpoint\n"
               "     --credentials-file=FILE client_id=/client_secret= file (mode 0600)\n"
               "     --ca-file=PEM           Trust this CA for wss:// and https:// (tests)\n"
               "     --ice-address=ADDR[,..] Local addresses ICE may use (default: all)\n"
               "     --call-linger-ms=MS     Keep terminated calls on the bus this long\n"
               "     --no-auto-connect       Do not connect at start-up\n"
               "     --log-level=LEVEL       error|warning|notice|info|debug\n"
               "  -h --help                  Show this help\n"
               "     --version               Show the version\n\n"
               "Secrets are never taken from the command line: use systemd credentials\n"
               "(LoadCredential=client-id/client-secret) or the credentials file.\n");
}

enum {
        ARG_SERVER = 0x100,
        ARG_DOMAIN,
        ARG_CALLER_ID,
        ARG_DISPLAY_NAME,
        ARG_TOKEN_MODE,
        ARG_TOKEN_ENDPOINT,
        ARG_CREDENTIALS_FILE,
        ARG_CA_FILE,
        ARG_ICE_ADDRESS,
        ARG_LINGER,
        ARG_NO_AUTO_CONNECT,
        ARG_LOG_LEVEL,
        ARG_VERSION,
};

/* Returns 1 to go on, 0 to exit successfully, negative on bad usage. */
static int parse_argv(int argc, char *argv[], Options *o) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "server", required_argument, NULL, ARG_SERVER },
                { "domain", required_argument, NULL, ARG_DOMAIN },
                { "caller-id", required_argument, NULL, ARG_CALLER_ID },
                { "display-name", required_argument, NULL, ARG_DISPLAY_NAME },
                { "token-mode", required_argument, NULL, ARG_TOKEN_MODE },
                { "token-endpoint", required_argument, NULL, ARG_TOKEN_ENDPOINT },
                { "credentials-file", required_argument, NULL, ARG_CREDENTIALS_FILE },
                { "ca-file", required_argument, NULL, ARG_CA_FILE },
                { "ice-address", required_argument, NULL, ARG_ICE_ADDRESS },
                { "call-linger-ms", required_argument, NULL, ARG_LINGER },
                { "no-auto-connect", no_argument, NULL, ARG_NO_AUTO_CONNECT },
                { "log-level", required_argument, NULL, ARG_LOG_LEVEL },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {},
        };
        int c;

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
                char **target = NULL;

                switch (c) {
                case 'c': target = &o->config_path; break;
                case ARG_SERVER: target = &o->servers; break;
                case ARG_DOMAIN: target = &o->domain; break;
                case ARG_CALLER_ID: target = &o->caller_id; break;
                case ARG_DISPLAY_NAME: target = &o->display_name; break;
                case ARG_TOKEN_MODE: target = &o->token_mode; break;
                case ARG_TOKEN_ENDPOINT: target = &o->token_endpoint; break;
                case ARG_CREDENTIALS_FILE: target = &o->credentials_file; break;
                case ARG_CA_FILE: target = &o->ca_file; break;
                case ARG_ICE_ADDRESS: target = &o->ice_addresses; break;
                case ARG_LINGER: target = &o->linger_ms; break;
                case ARG_LOG_LEVEL: target = &o->log_level; break;
                case ARG_NO_AUTO_CONNECT:
                        o->no_auto_connect = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("bwcalld %s\n", BWCALL_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
                if (target) {
                        g_free(*target);
                        *target = g_strdup(optarg);
                }
        }
        if (optind < argc) {
                log_error("Unexpected argument '%s'. See --help.", argv[optind]);
                return -EINVAL;
        }
        return 1;
}

static void set_string(char **field, const char *value) {
        if (!value)
                return;
        g_free(*field);
        *field = g_strdup(value);
}

static void set_strv(char ***field, const char *csv) {
        if (!csv)
                return;
        g_strfreev(*field);
        *field = g_strsplit(csv, ",", -1);
        for (char **s = *field; *s; s++)
                g_strstrip(*s);
}

static int apply_options(Config *c, const Options *o) {
        set_strv(&c->servers, o->servers);
        set_string(&c->domain, o->domain);
        set_string(&c->caller_id, o->caller_id);
        set_string(&c->display_name, o->display_name);
        set_string(&c->token_endpoint, o->token_endpoint);
        set_string(&c->credentials_file, o->credentials_file);
        set_string(&c->ca_file, o->ca_file);
        set_strv(&c->ice_addresses, o->ice_addresses);
        if (o->token_mode) {
                int m = token_mode_from_string(o->token_mode);
                if (m < 0)
                        return log_error_errno(-EINVAL, "Unknown token mode '%s'.", o->token_mode);
                c->token_mode = (TokenMode) m;
        }
        if (o->linger_ms) {
                char *end;
                guint64 v = g_ascii_strtoull(o->linger_ms, &end, 10);
                if (*end || !*o->linger_ms || v > 3600000)
                        return log_error_errno(-EINVAL, "Invalid --call-linger-ms '%s'.", o->linger_ms);
                c->call_linger_ms = (unsigned) v;
        }
        if (o->no_auto_connect)
                c->auto_connect = false;
        return 0;
}

static gboolean on_quit_signal(gpointer userdata) {
        g_main_loop_quit(userdata);
        return G_SOURCE_CONTINUE;
}

static bool bus_lost;

static gboolean on_bus_lost(gpointer userdata) {
        bus_lost = true;
        g_main_loop_quit(userdata);
        return G_SOURCE_REMOVE;
}

static gboolean on_watchdog(gpointer userdata) {
        (void) sd_notify(false, "WATCHDOG=1");
        return G_SOURCE_CONTINUE;
}

static void on_startup_connect_done(Phone *p, int error, const char *message, void *userdata) {
        if (error < 0)
                log_warning("Start-up connection failed: %s", message);
}

static void on_startup_token(Token *t, int error, const char *message, void *userdata) {
        /* Prefetched so that the first Dial() does not wait for the token endpoint. */
        if (error < 0)
                log_warning("Could not prefetch an OAuth token: %s", message);
}

/* logind's PrepareForSleep(false): we just resumed; sockets and NAT bindings are likely gone. */
static int on_prepare_for_sleep(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        int sleeping = 0;

        if (sd_bus_message_read(m, "b", &sleeping) >= 0 && !sleeping)
                phone_network_changed(userdata, "resumed from suspend");
        return 0;
}

static gboolean on_system_bus_lost(gpointer userdata) {
        log_debug("Lost the system bus; no more resume notifications.");
        return G_SOURCE_REMOVE;
}

/* Optional: without a system bus (containers, tests) resume is just not noticed early. */
static GSource *watch_resume(Phone *phone, sd_bus **ret_bus) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        GSource *source;
        int r;

        r = sd_bus_open_system_with_description(&bus, "bwcalld-logind");
        if (r >= 0)
                r = sd_bus_match_signal(bus, NULL, "org.freedesktop.login1", "/org/freedesktop/login1",
                                        "org.freedesktop.login1.Manager", "PrepareForSleep",
                                        on_prepare_for_sleep, phone);
        if (r < 0) {
                log_debug_errno(r, "Not watching for resume from suspend (no system bus/logind): %m");
                return NULL;
        }
        source = bus_source_new(bus);
        g_source_set_callback(source, on_system_bus_lost, NULL, NULL);
        g_source_attach(source, NULL);
        *ret_bus = TAKE_PTR(bus);
        return source;
}

static int run(int argc, char *argv[]) {
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_(phone_freep) Phone *phone = NULL;
        g_autoptr(GMainLoop) loop = NULL;
        g_autofree char *default_path = NULL;
        Options o = {};
        sd_bus *bus = NULL, *system_bus = NULL;
        GSource *bus_source = NULL, *system_bus_source = NULL;
        BusContext ctx = {};
        uint64_t watchdog_usec = 0;
        int r;

        r = parse_argv(argc, argv, &o);
        if (r <= 0) {
                options_clear(&o);
                return r;
        }
        if (o.log_level) {
                int l = log_parse_level(o.log_level);
                if (l < 0) {
                        options_clear(&o);
                        return log_error_errno(-EINVAL, "Unknown log level '%s'.", o.log_level);
                }
                log_set_max_level(l);
        }

        config = config_new();
        default_path = config_default_path();
        r = config_load_file(config, o.config_path ? o.config_path : default_path, o.config_path != NULL);
        if (r >= 0)
                r = apply_options(config, &o);
        options_clear(&o);
        if (r < 0)
                return r;
        r = config_finalize(config);
        if (r < 0)
                return r;

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
                return log_error_errno(-EIO, "Failed to initialise libcurl.");
        gst_init(NULL, NULL);
        media_prewarm();

        phone = phone_new(TAKE_PTR(config));
        if (!phone)
                return log_error_errno(-EINVAL, "Failed to set up the phone.");

        r = sd_bus_open_user_with_description(&bus, "bwcalld");
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the user bus: %m");
        ctx.bus = bus;
        ctx.phone = phone;
        r = bus_phone_register(&ctx);
        if (r >= 0)
                r = bus_call_register(&ctx);
        if (r >= 0)
                r = bus_audio_register(&ctx);
        if (r < 0) {
                sd_bus_flush_close_unref(bus);
                return r;
        }
        r = sd_bus_request_name(bus, BUS_NAME, 0);
        if (r < 0) {
                sd_bus_flush_close_unref(bus);
                return log_error_errno(r, "Failed to acquire the bus name %s (is bwcalld already running?): %m",
                                       BUS_NAME);
        }

        loop = g_main_loop_new(NULL, FALSE);
        bus_source = bus_source_new(bus);
        g_source_set_callback(bus_source, on_bus_lost, loop, NULL);
        g_source_attach(bus_source, NULL);
        system_bus_source = watch_resume(phone, &system_bus);
        g_unix_signal_add(SIGTERM, on_quit_signal, loop);
        g_unix_signal_add(SIGINT, on_quit_signal, loop);
        if (sd_watchdog_enabled(false, &watchdog_usec) > 0 && watchdog_usec > 0)
                g_timeout_add((guint) (watchdog_usec / 2 / 1000), on_watchdog, NULL);

        /* Fetch ahead: the first Dial() should not wait for the token endpoint. */
        if (phone->config->token_mode != TOKEN_MODE_EXTERNAL)
                token_acquire(phone->token, on_startup_token, NULL);
        if (phone->config->auto_connect)
                phone_connect(phone, on_startup_connect_done, NULL);

        log_info("bwcalld %s ready on the user bus as %s.", BWCALL_VERSION, BUS_NAME);
        (void) sd_notify(false, "READY=1\nSTATUS=Serving org.bwcall.Phone1");
        g_main_loop_run(loop);

        (void) sd_notify(false, "STOPPING=1");
        log_info("Shutting down.");
        /* No new method calls from here on; the ones under way still get their replies. */
        (void) sd_bus_release_name(bus, BUS_NAME);
        phone_disconnect(phone);
        /* Let the BYEs/CANCELs and signals leave before the socket and bus close. */
        for (int i = 0; i < 50 && g_main_context_iteration(NULL, FALSE); i++)
                ;
        phone_set_observer(phone, NULL, NULL);
        g_source_destroy(bus_source);
        g_source_unref(bus_source);
        sd_bus_unref(bus);
        if (system_bus_source) {
                g_source_destroy(system_bus_source);
                g_source_unref(system_bus_source);
                sd_bus_flush_close_unref(system_bus);
        }
        return bus_lost ? -ENOTCONN : 0;
}

int main(int argc, char *argv[]) {
        int r;

        log_setup("bwcalld");
        r = run(argc, argv);
        media_prewarm_join(); /* on every way out of run() */
        return r < 0 ? 1 : 0;
}
