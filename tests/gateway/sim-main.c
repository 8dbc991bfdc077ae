/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <glib-unix.h>
#include <gst/gst.h>
#include <osipparser2/osip_parser.h>

#include "log.h"
#include "sim-media.h"
#include "sim.h"

static const char number_plan_help[] =
        "Number plan (Request-URI user of the INVITE):\n"
        "  +15550001000  180 Ringing, then 200 OK after --ring-ms (1000); plays 880 Hz\n"
        "  +15550001001  200 OK at once; echoes the caller's audio back\n"
        "  +15550001002  180 Ringing, never answers (until CANCEL)\n"
        "  +15550001003  183 Session Progress with SDP (880 Hz early media), then 200 OK with the\n"
        "                same SDP after --answer-delay-ms (2000)\n"
        "  +15550001004  200 OK (880 Hz), then the gateway sends BYE after --hangup-ms (2000)\n"
        "  +15550001005  200 OK choosing PCMU only (880 Hz); 488 if PCMU is not offered\n"
        "  +15550001006  200 OK choosing PCMA only (880 Hz); 488 if PCMA is not offered\n"
        "  +15550001007  200 OK (880 Hz); 491 Request Pending to the first re-INVITE, 200 later\n"
        "  +15550001008  200 OK (880 Hz); 488 Not Acceptable Here to every re-INVITE\n"
        "  +15550001009  200 OK, then no media at all (silent far end: no RTP is sent)\n"
        "  +15550001010  302 Moved Temporarily, Contact: <sip:+15550001000@DOMAIN>\n"
        "  +15550001011  200 OK without SDP\n"
        "  +15550001012  200 OK with an SDP that is not usable WebRTC (no ICE, no fingerprint)\n"
        "  +1555000XXXX  XXXX in 0400-0699: that final response after 100 Trying\n"
        "                (+15550000486 -> 486 Busy Here, +15550000503 -> 503 Service Unavailable)\n"
        "  anything else 404 Not Found\n"
        "Every INVITE first gets 100 Trying. An initial INVITE without a valid\n"
        "\"Authorization: Bearer <token from this sim>\" gets 401 (unless --no-auth).\n"
        "Calls are not bound to a socket: in-dialog requests and late responses go over the\n"
        "newest open socket on which the client used the call's Contact (or Via) host; a\n"
        "socket closing ends only calls still in their INVITE transaction on it.\n"
        "A client re-INVITE gets 200 with the mirrored direction; while the client holds\n"
        "(sendonly/inactive) the sim sends nothing. A client REFER gets 202 and NOTIFYs:\n"
        "SIP/2.0 100 Trying, then 200 OK for a number above that answers, 480 for\n"
        "+15550001002, the code for +1555000XXXX (0400-0699), else 404 Not Found.\n"
        "\n"
        "Control (plain and TLS port; parameters in the query or a form body; JSON replies,\n"
        "{\"ok\":true,...} or 4xx {\"error\":...}):\n"
        "  POST /control/call?to=USER&from=E164[&conn=ID][&host=H][&codec=opus|pcmu|pcma]\n"
        "                    [&media=tone|echo|silent]   the gateway calls the client (880 Hz)\n"
        "  POST /control/cancel?call_id=ID               CANCEL our pending INVITE\n"
        "  POST /control/bye?call_id=ID                  BYE from the gateway\n"
        "  POST /control/hold?call_id=ID                 re-INVITE a=sendonly\n"
        "  POST /control/resume?call_id=ID               re-INVITE a=sendrecv\n"
        "  POST /control/dtmf?call_id=ID&digits=D[&method=rfc4733|info][&duration=MS]\n"
        "  POST /control/refer?call_id=ID&target=E164    REFER the client\n"
        "  POST /control/options?call_id=ID | ?to=USER[&conn=ID]   OPTIONS\n"
        "  POST /control/calls                           list calls (route_conn: the socket\n"
        "                    in-dialog requests would take now)\n"
        "  POST /control/conns                           list open sockets and the client hosts\n"
        "                    seen on each\n"
        "  POST /control/drop-socket[?conn=ID][&mode=drop|reset|close]   end one socket (no conn:\n"
        "                    all): drop = TCP FIN without a close frame (default), reset = TCP RST,\n"
        "                    close = close frame 1001; answered calls over it stay up\n"
        "  POST /control/pong[?mode=on|off]              answer CRLFCRLF keep-alives or not\n"
        "  POST /control/outage?ms=MS[&mode=drop|reset|close]   drop every socket and answer\n"
        "                    WebSocket upgrades with 503 for MS (ms=0: end it now)\n"
        "  POST /control/token-faults[?status=400..599[&retry_after=S]|body=garbage|not-object|\n"
        "                    no-token|bad-expiry|empty][&delay_ms=MS][&count=N][&expires_in=SEC]\n"
        "                    the token endpoints misbehave (no parameters: clear all)\n"
        "  POST /control/revoke-tokens                   every token minted so far stops working\n"
        "  POST /control/invite-auth?status=401|403[&count=N]   refuse the next N INVITEs\n"
        "                    (no parameters: clear)\n"
        "\n"
        "Token endpoints: POST /api/v1/oauth2/token (OAuth client credentials) and\n"
        "GET /customer/token (a customer's token URL; with --customer-key-file it needs\n"
        "\"Authorization: Bearer KEY\" or \"X-Api-Key: KEY\").\n"
        "\n"
        "Prints one line \"READY ws=... [wss=...] token=... customer=...\" on stdout when\n"
        "listening.\n"
        "--events FILE appends one JSON object per line; see tests/gateway/README.md.";

/* The first line of a file holding a secret (what: for messages). */
static int read_secret_file(const char *path, const char *what, char **ret) {
        g_autofree char *contents = NULL;
        g_autoptr(GError) err = NULL;
        gsize len = 0;
        char *nl;

        if (!g_file_get_contents(path, &contents, &len, &err))
                return log_error_errno(-ENOENT, "Failed to read the %s file %s: %s", what, path,
                                       err->message);
        nl = strpbrk(contents, "\r\n");
        if (nl)
                *nl = '\0';
        if (!*contents) {
                explicit_bzero(contents, len);
                return log_error_errno(-EINVAL, "The %s file %s has an empty first line.", what, path);
        }
        *ret = g_strdup(contents);
        explicit_bzero(contents, len);
        return 0;
}

static gboolean on_signal(gpointer userdata) {
        Sim *s = userdata;

        log_info("Signal received, exiting.");
        g_main_loop_quit(s->loop);
        return G_SOURCE_CONTINUE;
}

/* libosip2 prints its traces to stdout by default, which would corrupt our READY line, and a
 * trace may quote message text. Drop them; our own logs say what was wrong. */
static void osip_trace_sink(const char *fi, int li, osip_trace_level_t level, const char *chfr, va_list ap) {
}

static int sim_listen(Sim *s, guint port, bool tls, GError **error) {
        g_autoptr(GInetAddress) lo = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
        g_autoptr(GSocketAddress) addr = g_inet_socket_address_new(lo, (guint16) port);

        if (!soup_server_listen(s->server, addr, tls ? SOUP_SERVER_LISTEN_HTTPS : 0, error))
                return -EADDRINUSE;
        return 0;
}

static void sim_read_ports(Sim *s) {
        GSList *uris = soup_server_get_uris(s->server);

        for (GSList *l = uris; l; l = l->next) {
                GUri *u = l->data;

                if (g_strcmp0(g_uri_get_scheme(u), "https") == 0)
                        s->wss_port = (guint) g_uri_get_port(u);
                else
                        s->ws_port = (guint) g_uri_get_port(u);
        }
        g_slist_free_full(uris, (GDestroyNotify) g_uri_unref);
}

int main(int argc, char **argv) {
        Sim sim = { .pong = true, .require_auth = true };
        Sim *s = &sim;
        gint ws_port = 0, wss_port = -1, token_lifetime = 3600;
        gint ring_ms = 1000, answer_delay_ms = 2000, hangup_ms = 2000;
        g_autofree char *cert = NULL, *key = NULL, *client_id = NULL, *secret_file = NULL, *events = NULL,
                        *ice_address = NULL, *domain = NULL, *customer_key_file = NULL;
        gboolean no_pong = FALSE, no_auth = FALSE, verbose = FALSE;
        GOptionEntry entries[] = {
                { "ws-port", 0, 0, G_OPTION_ARG_INT, &ws_port, "Plain ws:// + http:// port (0 = any free)",
                  "N" },
                { "wss-port", 0, 0, G_OPTION_ARG_INT, &wss_port,
                  "TLS wss:// + https:// port (0 = any free; needs --cert/--key)", "N" },
                { "cert", 0, 0, G_OPTION_ARG_FILENAME, &cert, "Server certificate (PEM)", "PEM" },
                { "key", 0, 0, G_OPTION_ARG_FILENAME, &key, "Server private key (PEM)", "PEM" },
                { "client-id", 0, 0, G_OPTION_ARG_STRING, &client_id, "OAuth client id", "ID" },
                { "client-secret-file", 0, 0, G_OPTION_ARG_FILENAME, &secret_file,
                  "File whose first line is the OAuth client secret", "FILE" },
                { "token-lifetime", 0, 0, G_OPTION_ARG_INT, &token_lifetime, "Token expires_in (3600)",
                  "SEC" },
                { "customer-key-file", 0, 0, G_OPTION_ARG_FILENAME, &customer_key_file,
                  "File whose first line is the API key GET /customer/token requires (none: no key needed)",
                  "FILE" },
                { "events", 0, 0, G_OPTION_ARG_FILENAME, &events, "Append JSON-lines events to FILE",
                  "FILE" },
                { "ice-address", 0, 0, G_OPTION_ARG_STRING, &ice_address,
                  "Only local address for ICE (127.0.0.1)", "ADDR" },
                { "domain", 0, 0, G_OPTION_ARG_STRING, &domain,
                  "SIP domain of the gateway's URIs (gw.webrtc-app.bandwidth.com)", "DOMAIN" },
                { "ring-ms", 0, 0, G_OPTION_ARG_INT, &ring_ms, "+15550001000 rings this long (1000)", "MS" },
                { "answer-delay-ms", 0, 0, G_OPTION_ARG_INT, &answer_delay_ms,
                  "+15550001003 early media lasts this long (2000)", "MS" },
                { "hangup-ms", 0, 0, G_OPTION_ARG_INT, &hangup_ms,
                  "+15550001004 hangs up this long after answering (2000)", "MS" },
                { "no-pong", 0, 0, G_OPTION_ARG_NONE, &no_pong,
                  "Do not answer CRLFCRLF keep-alives (/control/pong switches it)", NULL },
                { "no-auth", 0, 0, G_OPTION_ARG_NONE, &no_auth,
                  "Accept INVITEs without a valid token (still reported)", NULL },
                { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
                  "Debug logging (SIP traces, tokens redacted)", NULL },
                {},
        };
        g_autoptr(GOptionContext) ctx = g_option_context_new("- test WebRTC gateway for bwcall");
        g_autoptr(GError) err = NULL;
        g_autoptr(GTlsCertificate) tls = NULL;
        json_object *ev;
        int r, ret = EXIT_FAILURE;

        log_setup(SIM_NAME);
        g_option_context_add_main_entries(ctx, entries, NULL);
        g_option_context_set_description(ctx, number_plan_help);
        if (!g_option_context_parse(ctx, &argc, &argv, &err)) {
                log_error("%s", err->message);
                return EXIT_FAILURE;
        }
        if (argc > 1) {
                log_error("Unexpected argument '%s'.", argv[1]);
                return EXIT_FAILURE;
        }
        if (verbose)
                log_set_max_level(LOG_DEBUG);
        if (ws_port < 0 || ws_port > 65535 || wss_port < -1 || wss_port > 65535) {
                log_error("Ports must be between 0 and 65535.");
                return EXIT_FAILURE;
        }
        if (!cert != !key) {
                log_error("--cert and --key go together.");
                return EXIT_FAILURE;
        }
        if (wss_port >= 0 && !cert) {
                log_error("--wss-port needs --cert and --key.");
                return EXIT_FAILURE;
        }
        if (!client_id != !secret_file) {
                log_error("--client-id and --client-secret-file go together.");
                return EXIT_FAILURE;
        }
        if (token_lifetime <= 0 || ring_ms < 0 || answer_delay_ms < 0 || hangup_ms < 0) {
                log_error("--token-lifetime must be positive and the delays not negative.");
                return EXIT_FAILURE;
        }

        if (domain && (!*domain || strspn(domain, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                   "0123456789.-") != strlen(domain))) {
                log_error("--domain must be a DNS name.");
                return EXIT_FAILURE;
        }

        s->client_id = TAKE_PTR(client_id);
        s->domain = domain ? TAKE_PTR(domain) : g_strdup(SIM_DEFAULT_DOMAIN);
        s->token_lifetime = (unsigned) token_lifetime;
        s->ice_address = ice_address ? TAKE_PTR(ice_address) : g_strdup("127.0.0.1");
        s->pong = !no_pong;
        s->require_auth = !no_auth;
        s->ring_ms = (unsigned) ring_ms;
        s->answer_delay_ms = (unsigned) answer_delay_ms;
        s->hangup_ms = (unsigned) hangup_ms;
        if (secret_file && read_secret_file(secret_file, "client secret", &s->client_secret) < 0)
                goto out;
        if (customer_key_file && read_secret_file(customer_key_file, "customer key", &s->customer_key) < 0)
                goto out;
        if (!s->client_id)
                log_warning("No --client-id/--client-secret-file: "
                            "the token endpoint will refuse every client.");

        gst_init(NULL, NULL);
        parser_init();
        osip_trace_initialize_func(TRACE_LEVEL0, osip_trace_sink);
        for (int l = TRACE_LEVEL0; l < END_TRACE_LEVEL; l++)
                osip_trace_disable_level((osip_trace_level_t) l);

        if (events_open(events) < 0)
                goto out;

        if (cert) {
                tls = g_tls_certificate_new_from_files(cert, key, &err);
                if (!tls) {
                        log_error("Failed to load %s / %s: %s", cert, key, err->message);
                        goto out;
                }
        }
        s->loop = g_main_loop_new(NULL, FALSE);
        s->server = soup_server_new("server-header", SIM_NAME " ", "tls-certificate", tls, NULL);
        r = token_setup(s);
        if (r < 0)
                goto out;
        sip_setup(s);
        control_setup(s);
        media_prewarm();

        if (sim_listen(s, (guint) ws_port, false, &err) < 0) {
                log_error("Failed to listen on 127.0.0.1:%d: %s", ws_port, err->message);
                goto out;
        }
        if (tls && sim_listen(s, (guint) MAX(wss_port, 0), true, &err) < 0) {
                log_error("Failed to listen (TLS) on 127.0.0.1:%d: %s", MAX(wss_port, 0), err->message);
                goto out;
        }
        sim_read_ports(s);
        s->ws_url = g_strdup_printf("ws://127.0.0.1:%u/", s->ws_port);
        if (tls) {
                s->wss_url = g_strdup_printf("wss://localhost:%u/", s->wss_port);
                s->token_url = g_strdup_printf("https://localhost:%u" SIM_TOKEN_PATH, s->wss_port);
                s->customer_url = g_strdup_printf("https://localhost:%u" SIM_CUSTOMER_TOKEN_PATH, s->wss_port);
        } else {
                s->token_url = g_strdup_printf("http://127.0.0.1:%u" SIM_TOKEN_PATH, s->ws_port);
                s->customer_url = g_strdup_printf("http://127.0.0.1:%u" SIM_CUSTOMER_TOKEN_PATH, s->ws_port);
        }

        g_unix_signal_add(SIGTERM, on_signal, s);
        g_unix_signal_add(SIGINT, on_signal, s);

        ev = event_new("listening");
        event_add_string(ev, "ws_url", s->ws_url);
        event_add_string(ev, "wss_url", s->wss_url);
        event_add_string(ev, "token_url", s->token_url);
        event_add_string(ev, "customer_url", s->customer_url);
        event_add_int(ev, "pid", getpid());
        event_emit(ev);
        log_info("Listening: %s%s%s, token endpoint %s, customer token URL %s%s", s->ws_url,
                 s->wss_url ? " " : "", s->wss_url ? s->wss_url : "", s->token_url, s->customer_url,
                 s->customer_key ? " (API key required)" : "");
        /* New fields go at the end: parsers split on spaces and may index the first ones. */
        if (s->wss_url)
                printf("READY ws=%s wss=%s token=%s customer=%s\n", s->ws_url, s->wss_url, s->token_url,
                       s->customer_url);
        else
                printf("READY ws=%s token=%s customer=%s\n", s->ws_url, s->token_url, s->customer_url);
        fflush(stdout);

        g_main_loop_run(s->loop);
        ret = EXIT_SUCCESS;

out:
        sip_shutdown(s);
        if (s->server) {
                soup_server_disconnect(s->server);
                g_object_unref(s->server);
        }
        token_teardown(s);
        events_close();
        if (s->client_secret) {
                explicit_bzero(s->client_secret, strlen(s->client_secret));
                g_free(s->client_secret);
        }
        if (s->customer_key) {
                explicit_bzero(s->customer_key, strlen(s->customer_key));
                g_free(s->customer_key);
        }
        g_free(s->client_id);
        g_free(s->ice_address);
        g_free(s->domain);
        g_free(s->ws_url);
        g_free(s->wss_url);
        g_free(s->token_url);
        g_free(s->customer_url);
        if (s->loop)
                g_main_loop_unref(s->loop);
        return ret;
}
