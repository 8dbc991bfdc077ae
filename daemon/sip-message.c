/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <glib.h>
#include <osipparser2/osip_parser.h>

#include "log.h"
#include "sip-message.h"
#include "sip-status.h"

/* Everything this file hands out (message text, dialog fields, string arrays) is allocated with
 * GLib. GLib has used the system malloc since 2.46, so g_free() and free() are both fine; callers
 * in call.c also g_strdup() into SipDialog fields, which sip_dialog_free() releases.
 *
 * Request layout, from JsSIP 3.10.0 OutgoingRequest (its header object is filled Route, Via,
 * Max-Forwards, To, From, Call-ID, CSeq; caller "extra headers" follow; then Allow, Supported,
 * User-Agent, Content-Length) as captured in gateway-protocol.md §3:
 *
 *   INVITE      Via, Max-Forwards, To, From, Call-ID, CSeq, [extra], [Authorization], Contact,
 *               Content-Type, Allow, Supported: ice,replaces,outbound, User-Agent, Content-Length
 *   ACK (2xx)   [Route...], Via (new branch), Max-Forwards, To;tag, From, Call-ID, CSeq <inv> ACK,
 *               Allow, Supported: outbound, User-Agent, Content-Length: 0
 *   ACK (3-6xx) Via (INVITE branch), Max-Forwards, To[;tag], From, Call-ID, CSeq <inv> ACK,
 *               Allow, Supported: outbound, User-Agent, Content-Length: 0
 *   CANCEL      Via (INVITE branch), Max-Forwards, To (no tag), From, Call-ID, CSeq <inv> CANCEL,
 *               Allow, Supported: outbound, User-Agent, Content-Length: 0
 *   BYE         [Route...], Via (new branch), Max-Forwards, To;tag, From, Call-ID,
 *               CSeq <++local> BYE, [Reason], Allow, Supported: outbound, User-Agent,
 *               Content-Length: 0
 *
 * The non-2xx ACK and the CANCEL belong to the INVITE transaction: JsSIP builds them from the
 * INVITE (same R-URI, Via and CSeq number) and never puts a Route on them since the initial
 * INVITE has none. */

#define SIP_MAX_FORWARDS 69
#define SIP_ALLOW "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY,SUBSCRIBE"
#define SIP_ACCEPT "application/sdp, application/dtmf-relay"
#define SIP_DEFAULT_USER_AGENT "JsSIP 3.10.0"

#define ALPHABET_BASE32 "0123456789abcdefghijklmnopqrstuv"
#define ALPHABET_BASE36 "0123456789abcdefghijklmnopqrstuvwxyz"

/* ---- input checks ---- */

/* Anything that lands on a header line: no CR/LF (header injection) and no other control
 * characters except HT. */
static bool header_value_ok(const char *s) {
        if (!s)
                return false;
        for (const unsigned char *p = (const unsigned char *) s; *p; p++)
                if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
                        return false;
        return true;
}

/* A URI placed between < and > or on the request line. */
static bool uri_ok(const char *s) {
        return s && *s && header_value_ok(s) && !strpbrk(s, " \t<>\"");
}

/* The user or host part of a URI we compose ourselves. */
static bool uri_part_ok(const char *s) {
        return uri_ok(s) && !strchr(s, '@');
}

static bool is_token_char(char c) {
        return g_ascii_isalnum(c) || (c != '\0' && strchr("-.!%*_+`'~", c));
}

static bool token_ok(const char *s) {
        if (!s || !*s)
                return false;
        for (const char *p = s; *p; p++)
                if (!is_token_char(*p))
                        return false;
        return true;
}

/* Call-ID: word ["@" word], no whitespace. */
static bool call_id_ok(const char *s) {
        return s && *s && header_value_ok(s) && !strpbrk(s, " \t");
}

static bool ua_ok(const SipUa *ua) {
        return ua && uri_part_ok(ua->user) && (!ua->display_name || header_value_ok(ua->display_name)) &&
                uri_part_ok(ua->domain) && uri_part_ok(ua->contact_host) && token_ok(ua->transport) &&
                (!ua->user_agent || header_value_ok(ua->user_agent));
}

static const char *ua_user_agent(const SipUa *ua) {
        return ua->user_agent && *ua->user_agent ? ua->user_agent : SIP_DEFAULT_USER_AGENT;
}

static bool dialog_ok(const SipDialog *d) {
        return d && call_id_ok(d->call_id) && token_ok(d->local_tag) && uri_ok(d->request_uri) &&
                (!d->remote_tag || token_ok(d->remote_tag));
}

/* Compact header forms (RFC 3261 7.3.3 and the IANA registry). */
static const struct {
        char compact;
        const char *name;
} compact_forms[] = {
        { 'a', "Accept-Contact" }, { 'b', "Referred-By" },       { 'c', "Content-Type" },
        { 'd', "Request-Disposition" }, { 'e', "Content-Encoding" }, { 'f', "From" },
        { 'i', "Call-ID" },        { 'j', "Reject-Contact" },    { 'k', "Supported" },
        { 'l', "Content-Length" }, { 'm', "Contact" },           { 'n', "Identity-Info" },
        { 'o', "Event" },          { 'r', "Refer-To" },          { 's', "Subject" },
        { 't', "To" },             { 'u', "Allow-Events" },      { 'v', "Via" },
        { 'x', "Session-Expires" }, { 'y', "Identity" },
};

/* The long form of a header name (compact letters expanded), compared case-insensitively. */
static const char *header_name_canonical(const char *name) {
        if (name[0] && !name[1]) {
                char c = g_ascii_tolower(name[0]);
                for (size_t i = 0; i < ELEMENTSOF(compact_forms); i++)
                        if (compact_forms[i].compact == c)
                                return compact_forms[i].name;
        }
        return name;
}

static bool header_name_eq(const char *a, const char *b) {
        return g_ascii_strcasecmp(header_name_canonical(a), header_name_canonical(b)) == 0;
}

/* Extra headers the caller may not supply: they would duplicate a header this module writes
 * and break framing (Content-Length), transaction/dialog identity or routing. JsSIP silently
 * drops such extras for most of them (OutgoingRequest.setHeader); we refuse the request. */
static const char *const reserved_extra_headers[] = {
        "Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq", "Route", "Contact",
        "Content-Type", "Content-Length", "Authorization",
};

/* Trims an extra header line and checks it is one "Name: value" line. Returns the trimmed
 * copy or NULL. */
static char *extra_header_normalize(const char *line) {
        g_autofree char *copy = NULL, *name = NULL;
        const char *colon;

        if (!header_value_ok(line))
                return NULL;
        copy = g_strstrip(g_strdup(line));
        colon = strchr(copy, ':');
        if (!colon)
                return NULL;
        name = g_strstrip(g_strndup(copy, colon - copy));
        if (!token_ok(name))
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(reserved_extra_headers); i++)
                if (header_name_eq(name, reserved_extra_headers[i]))
                        return NULL;
        return g_steal_pointer(&copy);
}

/* ---- random values (JsSIP createRandomToken and friends) ---- */

char *sip_random_token(size_t length, const char *alphabet) {
        size_t n;
        char *s;

        if (!alphabet || !*alphabet || length > 4096)
                return NULL;
        n = strlen(alphabet);
        if (n > G_MAXINT32)
                return NULL;
        s = g_malloc(length + 1);
        for (size_t i = 0; i < length; i++)
                s[i] = alphabet[g_random_int_range(0, (gint32) n)];
        s[length] = '\0';
        return s;
}

char *sip_contact_host_new(void) {
        g_autofree char *t = sip_random_token(12, ALPHABET_BASE36);

        return g_strconcat(t, ".invalid", NULL);
}

char *sip_branch_new(void) {
        return g_strdup_printf("z9hG4bK%" G_GINT32_FORMAT, g_random_int_range(0, 10000000));
}

/* ---- dialog ---- */

int sip_dialog_new_outgoing(const SipUa *ua, const char *number, SipDialog **ret) {
        SipDialog *d;

        if (!ua || !uri_part_ok(ua->domain) || !uri_part_ok(number) || !ret)
                return -EINVAL;

        d = g_new0(SipDialog, 1);
        d->call_id = sip_random_token(20, ALPHABET_BASE32);
        d->local_tag = sip_random_token(10, ALPHABET_BASE32);
        d->request_uri = g_strdup_printf("sip:%s@%s", number, ua->domain);
        d->local_cseq = d->invite_cseq = (uint32_t) g_random_int_range(0, 10000);
        *ret = d;
        return 0;
}

SipDialog *sip_dialog_free(SipDialog *d) {
        if (!d)
                return NULL;
        g_free(d->call_id);
        g_free(d->local_tag);
        g_free(d->remote_tag);
        g_free(d->request_uri);
        g_free(d->remote_target);
        g_strfreev(d->route_set);
        g_free(d->invite_branch);
        g_free(d->local_uri);
        g_free(d);
        return NULL;
}

/* ---- builders ---- */

static void append_name_addr(GString *s, const char *display_name, const char *uri, const char *tag) {
        if (display_name && *display_name) {
                g_string_append_c(s, '"');
                for (const char *p = display_name; *p; p++) {
                        if (*p == '"' || *p == '\\')
                                g_string_append_c(s, '\\');
                        g_string_append_c(s, *p);
                }
                g_string_append(s, "\" ");
        }
        g_string_append_printf(s, "<%s>", uri);
        if (tag)
                g_string_append_printf(s, ";tag=%s", tag);
}

/* Start line, [Route...], Via, Max-Forwards, To, From, Call-ID, CSeq. */
static GString *request_begin(const SipUa *ua, const SipDialog *d, const char *method, const char *ruri,
                              char *const *route_set, const char *branch, const char *to_tag,
                              uint32_t cseq) {
        GString *s = g_string_sized_new(1024);

        g_string_append_printf(s, "%s %s SIP/2.0\r\n", method, ruri);
        for (char *const *r = route_set; r && *r; r++) {
                /* Entries are URIs; tolerate a caller that kept the angle brackets. */
                if ((*r)[0] == '<')
                        g_string_append_printf(s, "Route: %s\r\n", *r);
                else
                        g_string_append_printf(s, "Route: <%s>\r\n", *r);
        }
        g_string_append_printf(s, "Via: SIP/2.0/%s %s;branch=%s\r\n", ua->transport, ua->contact_host,
                               branch);
        g_string_append_printf(s, "Max-Forwards: %d\r\n", SIP_MAX_FORWARDS);
        g_string_append(s, "To: ");
        append_name_addr(s, NULL, d->request_uri, to_tag);
        g_string_append(s, "\r\nFrom: ");
        {
                g_autofree char *from_uri = d->local_uri ? g_strdup(d->local_uri)
                                                         : g_strdup_printf("sip:%s@%s", ua->user, ua->domain);
                append_name_addr(s, ua->display_name, from_uri, d->local_tag);
        }
        g_string_append_printf(s, "\r\nCall-ID: %s\r\n", d->call_id);
        g_string_append_printf(s, "CSeq: %" PRIu32 " %s\r\n", cseq, method);
        return s;
}

/* Allow, Supported, User-Agent, Content-Length, blank line, body. */
static char *request_end(GString *s, const SipUa *ua, const char *supported, const char *body) {
        size_t body_len = body ? strlen(body) : 0;

        g_string_append(s, "Allow: " SIP_ALLOW "\r\n");
        g_string_append_printf(s, "Supported: %s\r\n", supported);
        g_string_append_printf(s, "User-Agent: %s\r\n", ua_user_agent(ua));
        g_string_append_printf(s, "Content-Length: %zu\r\n\r\n", body_len);
        if (body_len > 0)
                g_string_append_len(s, body, (gssize) body_len);
        return g_string_free(s, FALSE);
}

static bool route_set_ok(char *const *route_set) {
        for (char *const *r = route_set; r && *r; r++) {
                const char *u = *r;
                size_t n = strlen(u);

                if (u[0] == '<') {
                        g_autofree char *inner = NULL;

                        if (n < 3 || u[n - 1] != '>')
                                return false;
                        inner = g_strndup(u + 1, n - 2);
                        if (!uri_ok(inner))
                                return false;
                } else if (!uri_ok(u))
                        return false;
        }
        return true;
}

char *sip_build_invite(const SipUa *ua, SipDialog *dialog, const char *bearer_token,
                       const char *const *extra_headers, const char *sdp) {
        g_autofree char *branch = NULL;
        g_autofree char *contact_uri = NULL;
        GPtrArray *extras;
        GString *s;

        if (!ua_ok(ua) || !dialog_ok(dialog) || !sdp)
                return NULL;
        if (bearer_token && !header_value_ok(bearer_token))
                return NULL;

        extras = g_ptr_array_new_with_free_func(g_free);
        for (const char *const *h = extra_headers; h && *h; h++) {
                char *line = extra_header_normalize(*h);
                if (!line) {
                        g_ptr_array_unref(extras);
                        return NULL;
                }
                g_ptr_array_add(extras, line);
        }

        branch = sip_branch_new();
        s = request_begin(ua, dialog, "INVITE", dialog->request_uri, NULL, branch, NULL, dialog->local_cseq);
        for (guint i = 0; i < extras->len; i++)
                g_string_append_printf(s, "%s\r\n", (const char *) extras->pdata[i]);
        g_ptr_array_unref(extras);
        if (bearer_token) {
                /* JsSIP trims each extra header, so an empty token gives "Bearer" without the
                 * trailing space (gateway-protocol.md §3). */
                g_autofree char *auth = g_strdup_printf("Authorization: Bearer %s", bearer_token);
                g_string_append_printf(s, "%s\r\n", g_strstrip(auth));
        }
        contact_uri = g_strdup_printf("sip:%s@%s;transport=ws;ob", ua->user, ua->contact_host);
        g_string_append_printf(s, "Contact: <%s>\r\n", contact_uri);
        g_string_append(s, "Content-Type: application/sdp\r\n");

        g_free(dialog->invite_branch);
        dialog->invite_branch = g_steal_pointer(&branch);
        dialog->invite_cseq = dialog->local_cseq;
        return request_end(s, ua, "ice,replaces,outbound", sdp);
}

char *sip_build_ack_for(const SipUa *ua, const SipDialog *dialog, uint32_t cseq) {
        g_autofree char *branch = NULL;
        GString *s;

        if (!ua_ok(ua) || !dialog_ok(dialog) || !uri_ok(dialog->remote_target) ||
            !route_set_ok(dialog->route_set))
                return NULL;

        branch = sip_branch_new();
        s = request_begin(ua, dialog, "ACK", dialog->remote_target, dialog->route_set, branch,
                          dialog->remote_tag, cseq);
        return request_end(s, ua, "outbound", NULL);
}

char *sip_build_ack_2xx(const SipUa *ua, const SipDialog *dialog) {
        return dialog ? sip_build_ack_for(ua, dialog, dialog->invite_cseq) : NULL;
}

char *sip_build_request(const SipUa *ua, SipDialog *dialog, const char *method, const char *const *headers,
                        const char *content_type, const char *body, uint32_t *ret_cseq) {
        g_autofree char *branch = NULL;
        bool invite = g_strcmp0(method, "INVITE") == 0;
        uint32_t cseq;
        GString *s;

        if (!ua_ok(ua) || !dialog_ok(dialog) || !uri_ok(dialog->remote_target) ||
            !route_set_ok(dialog->route_set) || !token_ok(method) || g_strcmp0(method, "ACK") == 0 ||
            g_strcmp0(method, "CANCEL") == 0)
                return NULL;
        if ((body && *body && (!content_type || !header_value_ok(content_type))) ||
            (content_type && !header_value_ok(content_type)))
                return NULL;
        for (const char *const *h = headers; h && *h; h++) {
                const char *colon = strchr(*h, ':');
                if (!colon || colon == *h || !header_value_ok(*h))
                        return NULL;
        }

        cseq = dialog->local_cseq + 1;
        branch = sip_branch_new();
        s = request_begin(ua, dialog, method, dialog->remote_target, dialog->route_set, branch,
                          dialog->remote_tag, cseq);
        for (const char *const *h = headers; h && *h; h++)
                g_string_append_printf(s, "%s\r\n", *h);
        if (invite)
                g_string_append_printf(s, "Contact: <sip:%s@%s;transport=ws;ob>\r\n", ua->user, ua->contact_host);
        if (content_type)
                g_string_append_printf(s, "Content-Type: %s\r\n", content_type);
        dialog->local_cseq = cseq;
        if (ret_cseq)
                *ret_cseq = cseq;
        return request_end(s, ua, invite ? "ice,replaces,outbound" : "outbound", body);
}

char *sip_build_ack_non2xx(const SipUa *ua, const SipDialog *dialog, const char *to_tag) {
        GString *s;

        if (!ua_ok(ua) || !dialog_ok(dialog) || !token_ok(dialog->invite_branch) ||
            (to_tag && !token_ok(to_tag)))
                return NULL;

        s = request_begin(ua, dialog, "ACK", dialog->request_uri, NULL, dialog->invite_branch, to_tag,
                          dialog->invite_cseq);
        return request_end(s, ua, "outbound", NULL);
}

char *sip_build_cancel(const SipUa *ua, const SipDialog *dialog) {
        GString *s;

        if (!ua_ok(ua) || !dialog_ok(dialog) || !token_ok(dialog->invite_branch))
                return NULL;

        s = request_begin(ua, dialog, "CANCEL", dialog->request_uri, NULL, dialog->invite_branch, NULL,
                          dialog->invite_cseq);
        return request_end(s, ua, "outbound", NULL);
}

char *sip_build_bye(const SipUa *ua, SipDialog *dialog, const char *reason_header_value) {
        g_autofree char *branch = NULL;
        uint32_t cseq;
        GString *s;

        if (!ua_ok(ua) || !dialog_ok(dialog) || !uri_ok(dialog->remote_target) ||
            !route_set_ok(dialog->route_set))
                return NULL;
        if (reason_header_value && !header_value_ok(reason_header_value))
                return NULL;

        cseq = dialog->local_cseq + 1;
        branch = sip_branch_new();
        s = request_begin(ua, dialog, "BYE", dialog->remote_target, dialog->route_set, branch,
                          dialog->remote_tag, cseq);
        if (reason_header_value)
                g_string_append_printf(s, "Reason: %s\r\n", reason_header_value);
        dialog->local_cseq = cseq;
        return request_end(s, ua, "outbound", NULL);
}

/* ---- parsing ---- */

typedef struct SipHeader {
        char *name;  /* as received */
        char *value; /* continuation lines folded into one space, trimmed */
} SipHeader;

struct SipMessage {
        osip_message_t *osip;

        SipHeader *headers;
        size_t n_headers;

        const char *call_id; /* into headers */
        uint32_t cseq_number;
        char *content_type;
        char *contact_uri;
        char **record_routes; /* NULL if none */
        char *request_uri;    /* requests only */

        char *body;
        size_t body_length;
};

/* osip prints its parse errors straight to stdout, and some of them quote header values (which
 * could be an Authorization header when the test gateway parses our INVITE). Hostile input must
 * neither fill the journal nor leak a token: drop them; sip_message_parse() logs why it refused
 * a message at debug level itself. */
static void osip_trace_drop(const char *fi, int li, osip_trace_level_t level, const char *chfr, va_list ap) {
}

static gpointer osip_parser_init_once(gpointer data) {
        parser_init();
        osip_trace_initialize_func(END_TRACE_LEVEL, osip_trace_drop);
        return NULL;
}

static void sip_parser_init(void) {
        static GOnce once = G_ONCE_INIT;

        g_once(&once, osip_parser_init_once, NULL);
}

SipMessage *sip_message_free(SipMessage *m) {
        if (!m)
                return NULL;
        if (m->osip)
                osip_message_free(m->osip);
        for (size_t i = 0; i < m->n_headers; i++) {
                g_free(m->headers[i].name);
                g_free(m->headers[i].value);
        }
        g_free(m->headers);
        g_free(m->content_type);
        g_free(m->contact_uri);
        g_strfreev(m->record_routes);
        g_free(m->request_uri);
        g_free(m->body);
        g_free(m);
        return NULL;
}

static bool is_lws(char c) {
        return c == ' ' || c == '\t';
}

/* Next line of text[*pos..len): 1 and the line without its CRLF/LF, or 0 if the text ends
 * before a line feed, or -EBADMSG for a CR that does not end a line. */
static int next_line(const char *text, size_t len, size_t *pos, const char **ret_line, size_t *ret_len) {
        size_t start = *pos;

        for (size_t i = start; i < len; i++) {
                if (text[i] == '\n') {
                        *ret_line = text + start;
                        *ret_len = i - start;
                        *pos = i + 1;
                        return 1;
                }
                if (text[i] == '\r') {
                        if (i + 1 < len && text[i + 1] == '\n') {
                                *ret_line = text + start;
                                *ret_len = i - start;
                                *pos = i + 2;
                                return 1;
                        }
                        return -EBADMSG;
                }
        }
        return 0;
}

static char *strndup_trimmed(const char *p, size_t n) {
        while (n > 0 && is_lws(p[0])) {
                p++;
                n--;
        }
        while (n > 0 && is_lws(p[n - 1]))
                n--;
        return g_strndup(p, n);
}

/* Splits the header block into name/value pairs and finds the body. The start line is left to
 * osip. */
static int message_scan(SipMessage *m, const char *text, size_t len, size_t *ret_body_offset) {
        size_t pos = 0, allocated = 0, n;
        const char *line;
        int r;

        r = next_line(text, len, &pos, &line, &n);
        if (r <= 0 || n == 0)
                return -EBADMSG;

        for (;;) {
                const char *colon;
                SipHeader *h;

                r = next_line(text, len, &pos, &line, &n);
                if (r <= 0)
                        return -EBADMSG; /* truncated before the blank line, or a stray CR */
                if (n == 0)
                        break;

                if (is_lws(line[0])) {
                        /* Folded continuation of the previous header (RFC 3261 7.3.1). */
                        g_autofree char *more = strndup_trimmed(line, n);
                        char *joined;

                        if (m->n_headers == 0)
                                return -EBADMSG;
                        if (!*more)
                                continue;
                        h = &m->headers[m->n_headers - 1];
                        joined = *h->value ? g_strconcat(h->value, " ", more, NULL) : g_strdup(more);
                        g_free(h->value);
                        h->value = joined;
                        continue;
                }

                colon = memchr(line, ':', n);
                if (!colon)
                        return -EBADMSG;

                if (m->n_headers == allocated) {
                        allocated = allocated ? allocated * 2 : 16;
                        m->headers = g_renew(SipHeader, m->headers, allocated);
                }
                h = &m->headers[m->n_headers];
                h->name = strndup_trimmed(line, colon - line);
                h->value = strndup_trimmed(colon + 1, n - (colon + 1 - line));
                m->n_headers++;
                if (!token_ok(h->name))
                        return -EBADMSG;
        }

        *ret_body_offset = pos;
        return 0;
}

static size_t header_count(const SipMessage *m, const char *name) {
        size_t c = 0;

        for (size_t i = 0; i < m->n_headers; i++)
                if (header_name_eq(m->headers[i].name, name))
                        c++;
        return c;
}

/* One element of a Contact or Record-Route value starting at *p: the URI from "<uri>" (after an
 * optional display name) or from a bare addr-spec, and *p moved past the element's parameters
 * to the next top-level comma or the end. Returns NULL if the element is malformed. */
static char *name_addr_next(const char **p) {
        const char *s = *p, *uri_start, *uri_end;
        bool quoted = false;

        while (is_lws(*s))
                s++;
        if (*s == '"') {
                /* quoted display name */
                for (s++; *s && *s != '"'; s++)
                        if (*s == '\\' && s[1])
                                s++;
                if (*s != '"')
                        return NULL;
                s++;
                quoted = true;
        }
        /* Find '<' before the end of the element; a bare addr-spec has none. */
        {
                const char *q = s;
                while (*q && *q != '<' && *q != ',' && *q != ';' && *q != '"')
                        q++;
                if (*q == '<') {
                        uri_start = q + 1;
                        uri_end = strchr(uri_start, '>');
                        if (!uri_end)
                                return NULL;
                        s = uri_end + 1;
                } else {
                        if (quoted)
                                return NULL;
                        while (is_lws(*s))
                                s++;
                        uri_start = s;
                        while (*s && *s != ';' && *s != ',' && !is_lws(*s))
                                s++;
                        uri_end = s;
                }
        }
        /* Skip header parameters up to the next element, honouring quoted values. */
        while (*s && *s != ',') {
                if (*s == '"') {
                        for (s++; *s && *s != '"'; s++)
                                if (*s == '\\' && s[1])
                                        s++;
                        if (!*s)
                                return NULL;
                }
                s++;
        }
        if (*s == ',')
                s++;
        *p = s;

        {
                g_autofree char *uri = strndup_trimmed(uri_start, uri_end - uri_start);
                if (!uri_ok(uri) || !strchr(uri, ':'))
                        return NULL;
                return g_steal_pointer(&uri);
        }
}

static bool value_is_blank(const char *p) {
        while (is_lws(*p))
                p++;
        return *p == '\0';
}

static int message_parse_routes(SipMessage *m) {
        GPtrArray *rr = g_ptr_array_new_with_free_func(g_free);

        for (size_t i = 0; i < m->n_headers; i++) {
                const char *p = m->headers[i].value;

                if (!header_name_eq(m->headers[i].name, "Record-Route"))
                        continue;
                while (!value_is_blank(p)) {
                        char *uri = name_addr_next(&p);
                        if (!uri) {
                                g_ptr_array_unref(rr);
                                return -EBADMSG;
                        }
                        g_ptr_array_add(rr, uri);
                }
        }
        if (rr->len == 0) {
                g_ptr_array_unref(rr);
                return 0;
        }
        g_ptr_array_add(rr, NULL);
        m->record_routes = (char **) g_ptr_array_free(rr, FALSE);
        return 0;
}

static int message_parse_contact(SipMessage *m) {
        const char *v = sip_message_header(m, "Contact"), *p = v;

        if (!v)
                return 0;
        if (strcmp(v, "*") == 0)
                return 0; /* REGISTER wildcard: no URI */
        m->contact_uri = name_addr_next(&p);
        return m->contact_uri ? 0 : -EBADMSG;
}

static bool sip_version_ok(const char *v) {
        return v && g_ascii_strcasecmp(v, "SIP/2.0") == 0;
}

static int parse_uint32(const char *s, uint32_t *ret) {
        uint64_t v = 0;

        if (!s || !*s || strlen(s) > 10)
                return -EBADMSG;
        for (const char *p = s; *p; p++) {
                if (!g_ascii_isdigit(*p))
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (*p - '0');
        }
        if (v > UINT32_MAX)
                return -EBADMSG;
        *ret = (uint32_t) v;
        return 0;
}

static int message_check_osip(SipMessage *m) {
        osip_message_t *o = m->osip;
        osip_via_t *via;

        if (o->sip_method) {
                if (o->status_code != 0 || !token_ok(o->sip_method) || !o->req_uri)
                        return log_debug_errno(-EBADMSG, "SIP request without a valid request line.");
        } else if (o->status_code < 100 || o->status_code > 699)
                return log_debug_errno(-EBADMSG, "SIP response with invalid status %d.", o->status_code);
        if (!sip_version_ok(o->sip_version))
                return log_debug_errno(-EBADMSG, "Not a SIP/2.0 message.");

        via = osip_list_get(&o->vias, 0);
        if (!via || !via->host)
                return log_debug_errno(-EBADMSG, "SIP message without Via.");
        if (!o->from || !o->from->url)
                return log_debug_errno(-EBADMSG, "SIP message without From.");
        if (!o->to || !o->to->url)
                return log_debug_errno(-EBADMSG, "SIP message without To.");
        if (!o->call_id || !o->call_id->number)
                return log_debug_errno(-EBADMSG, "SIP message without Call-ID.");
        if (!o->cseq || !o->cseq->number || !token_ok(o->cseq->method))
                return log_debug_errno(-EBADMSG, "SIP message without a valid CSeq.");
        if (parse_uint32(o->cseq->number, &m->cseq_number) < 0)
                return log_debug_errno(-EBADMSG, "SIP message with an invalid CSeq number.");
        return 0;
}

static int message_check_headers(SipMessage *m) {
        static const char *const once[] = { "From", "To", "Call-ID", "CSeq" };
        static const char *const at_most_once[] = { "Content-Length", "Content-Type" };

        if (header_count(m, "Via") < 1)
                return log_debug_errno(-EBADMSG, "SIP message without Via.");
        for (size_t i = 0; i < ELEMENTSOF(once); i++)
                if (header_count(m, once[i]) != 1)
                        return log_debug_errno(-EBADMSG, "SIP message without exactly one %s.", once[i]);
        for (size_t i = 0; i < ELEMENTSOF(at_most_once); i++)
                if (header_count(m, at_most_once[i]) > 1)
                        return log_debug_errno(-EBADMSG, "SIP message with several %s.", at_most_once[i]);

        m->call_id = sip_message_header(m, "Call-ID");
        if (!call_id_ok(m->call_id))
                return log_debug_errno(-EBADMSG, "SIP message with an invalid Call-ID.");
        return 0;
}

int sip_message_parse(const char *text, size_t len, SipMessage **ret) {
        SipMessage *m = NULL;
        size_t body_offset = 0, available;
        const char *cl;
        int r;

        if (!text || !ret)
                return -EINVAL;
        if (len > 0 && text[len - 1] == '\0')
                len--;
        if (len == 0)
                return -EBADMSG;
        /* Embedded NULs would make osip (which works on C strings) and us see different
         * messages; SIP over WebSocket text frames never carry them. */
        if (memchr(text, '\0', len))
                return log_debug_errno(-EBADMSG, "SIP message with a NUL byte.");

        sip_parser_init();
        m = g_new0(SipMessage, 1);

        r = message_scan(m, text, len, &body_offset);
        if (r < 0) {
                log_debug_errno(r, "Malformed SIP header block.");
                goto fail;
        }
        r = message_check_headers(m);
        if (r < 0)
                goto fail;

        available = len - body_offset;
        cl = sip_message_header(m, "Content-Length");
        if (cl) {
                uint32_t n;

                if (parse_uint32(cl, &n) < 0) {
                        r = log_debug_errno(-EBADMSG, "SIP message with an invalid Content-Length.");
                        goto fail;
                }
                if (n > available) {
                        r = log_debug_errno(-EBADMSG,
                                            "Truncated SIP message body (%zu of %" PRIu32 " bytes).",
                                            available, n);
                        goto fail;
                }
                m->body_length = n;
        } else
                m->body_length = available; /* one message per WebSocket frame */
        m->body = g_strndup(text + body_offset, m->body_length);

        if (osip_message_init(&m->osip) != OSIP_SUCCESS) {
                r = -ENOMEM;
                goto fail;
        }
        if (osip_message_parse(m->osip, text, len) != OSIP_SUCCESS) {
                r = log_debug_errno(-EBADMSG, "osip could not parse the SIP message.");
                goto fail;
        }
        r = message_check_osip(m);
        if (r < 0)
                goto fail;

        if (m->osip->content_type && m->osip->content_type->type && m->osip->content_type->subtype) {
                m->content_type = g_strdup_printf("%s/%s", m->osip->content_type->type,
                                                  m->osip->content_type->subtype);
                for (char *p = m->content_type; *p; p++)
                        *p = g_ascii_tolower(*p);
        }

        r = message_parse_contact(m);
        if (r < 0) {
                log_debug_errno(r, "SIP message with an invalid Contact.");
                goto fail;
        }
        r = message_parse_routes(m);
        if (r < 0) {
                log_debug_errno(r, "SIP message with an invalid Record-Route.");
                goto fail;
        }
        if (MSG_IS_REQUEST(m->osip) && m->osip->req_uri) {
                char *uri = NULL;
                if (osip_uri_to_str(m->osip->req_uri, &uri) != OSIP_SUCCESS || !uri) {
                        log_debug("SIP request with an unprintable Request-URI.");
                        r = -EBADMSG;
                        goto fail;
                }
                m->request_uri = g_strdup(uri);
                osip_free(uri);
        }

        *ret = m;
        return 0;

fail:
        sip_message_free(m);
        return r;
}

bool sip_message_is_request(const SipMessage *m) {
        return m && m->osip->sip_method;
}

const char *sip_message_method(const SipMessage *m) {
        return m ? m->osip->sip_method : NULL;
}

unsigned sip_message_status(const SipMessage *m) {
        return m && !m->osip->sip_method ? (unsigned) m->osip->status_code : 0;
}

const char *sip_message_reason_phrase(const SipMessage *m) {
        if (!m || m->osip->sip_method)
                return NULL;
        return m->osip->reason_phrase ? m->osip->reason_phrase : "";
}

const char *sip_message_request_uri(const SipMessage *m) {
        return m ? m->request_uri : NULL;
}

const char *sip_message_call_id(const SipMessage *m) {
        return m ? m->call_id : NULL;
}

uint32_t sip_message_cseq_number(const SipMessage *m) {
        return m ? m->cseq_number : 0;
}

const char *sip_message_cseq_method(const SipMessage *m) {
        return m ? m->osip->cseq->method : NULL;
}

static const char *generic_param_value(osip_list_t *params, const char *name) {
        osip_generic_param_t *p = NULL;

        if (osip_generic_param_get_byname(params, (char *) name, &p) != OSIP_SUCCESS || !p)
                return NULL;
        return p->gvalue;
}

const char *sip_message_from_tag(const SipMessage *m) {
        return m ? generic_param_value(&m->osip->from->gen_params, "tag") : NULL;
}

const char *sip_message_to_tag(const SipMessage *m) {
        return m ? generic_param_value(&m->osip->to->gen_params, "tag") : NULL;
}

const char *sip_message_via_branch(const SipMessage *m) {
        osip_via_t *via;

        if (!m)
                return NULL;
        via = osip_list_get(&m->osip->vias, 0);
        return via ? generic_param_value(&via->via_params, "branch") : NULL;
}

const char *sip_message_contact_uri(const SipMessage *m) {
        return m ? m->contact_uri : NULL;
}

const char *sip_message_content_type(const SipMessage *m) {
        return m ? m->content_type : NULL;
}

const char *sip_message_body(const SipMessage *m) {
        return m && m->body ? m->body : "";
}

size_t sip_message_body_length(const SipMessage *m) {
        return m ? m->body_length : 0;
}

const char *sip_message_header(const SipMessage *m, const char *name) {
        if (!m || !name || !*name)
                return NULL;
        for (size_t i = 0; i < m->n_headers; i++)
                if (header_name_eq(m->headers[i].name, name))
                        return m->headers[i].value;
        return NULL;
}

char **sip_message_record_routes(const SipMessage *m) {
        return m && m->record_routes ? g_strdupv(m->record_routes) : NULL;
}

void sip_strv_free(char **v) {
        g_strfreev(v);
}

/* ---- responses ---- */

const char *sip_status_reason_phrase(unsigned status) {
        const char *p;

        /* JsSIP's own wording for 500, so our responses read like the SDK's. */
        if (status == 500)
                return "JsSIP Internal Error";
        p = sip_status_phrase(status);
        return p ? p : "Unknown";
}

const char *sip_status_to_cause(unsigned status) {
        switch (status) {
        case 0 ... 299:
                return NULL;
        case 486:
        case 600:
                return "Busy";
        case 403:
        case 603:
                return "Rejected";
        case 404:
        case 604:
                return "Not Found";
        case 480:
        case 410:
        case 408:
        case 430:
                return "Unavailable";
        case 484:
        case 424:
                return "Address Incomplete";
        case 488:
        case 606:
                return "Incompatible SDP";
        case 401:
        case 407:
                return "Authentication Error";
        case 300:
        case 301:
        case 302:
        case 305:
        case 380:
                return "Redirected";
        default:
                return "SIP Failure Code";
        }
}

/* A Contact we are given: a bare URI, or a complete "<uri>;params" value. */
static bool contact_value_ok(const char *c) {
        return uri_ok(c) || (c[0] == '<' && header_value_ok(c));
}

/* Layout of JsSIP 3.10.0 IncomingRequest.reply(): [Record-Route...] (INVITE, 101–200), every
 * Via as received, To (a tag added if it has none), From as received, Call-ID, CSeq <n> <method>,
 * extra headers (JsSIP passes Contact there), Allow/Accept for OPTIONS, 405 and 415, Supported,
 * [Content-Type], Content-Length. The 200 to a gateway BYE thus reads Via, To, From, Call-ID,
 * CSeq, Supported: outbound, Content-Length: 0 (gateway-protocol.md, "Later findings"). */
char *sip_build_response(const SipMessage *request, unsigned code, const char *reason_phrase,
                         const char *to_tag, const char *contact_uri, const char *content_type,
                         const char *body) {
        g_autofree char *generated_tag = NULL;
        const char *method, *to, *supported;
        size_t body_len = body ? strlen(body) : 0;
        GString *s;

        if (!request || !sip_message_is_request(request) || code < 100 || code > 699)
                return NULL;
        if (!reason_phrase)
                reason_phrase = code == 500 || sip_status_phrase(code) ? sip_status_reason_phrase(code) : "";
        if (!header_value_ok(reason_phrase) || (to_tag && !token_ok(to_tag)) ||
            (contact_uri && !contact_value_ok(contact_uri)) ||
            (content_type && !header_value_ok(content_type)) || (body_len > 0 && !content_type))
                return NULL;

        method = sip_message_method(request);
        to = sip_message_header(request, "To");

        s = g_string_sized_new(512);
        g_string_append_printf(s, "SIP/2.0 %u %s\r\n", code, reason_phrase);
        if (strcmp(method, "INVITE") == 0 && code > 100 && code <= 200)
                for (size_t i = 0; i < request->n_headers; i++)
                        if (header_name_eq(request->headers[i].name, "Record-Route"))
                                g_string_append_printf(s, "Record-Route: %s\r\n", request->headers[i].value);
        for (size_t i = 0; i < request->n_headers; i++)
                if (header_name_eq(request->headers[i].name, "Via"))
                        g_string_append_printf(s, "Via: %s\r\n", request->headers[i].value);

        g_string_append_printf(s, "To: %s", to);
        if (!sip_message_to_tag(request)) {
                /* JsSIP puts a fresh tag on every response but 100 to a request without one. */
                if (!to_tag && code > 100)
                        to_tag = generated_tag = sip_random_token(10, ALPHABET_BASE32);
                if (to_tag)
                        g_string_append_printf(s, ";tag=%s", to_tag);
        }
        g_string_append_printf(s, "\r\nFrom: %s\r\n", sip_message_header(request, "From"));
        g_string_append_printf(s, "Call-ID: %s\r\n", request->call_id);
        g_string_append_printf(s, "CSeq: %" PRIu32 " %s\r\n", request->cseq_number, method);

        if (contact_uri) {
                if (contact_uri[0] == '<')
                        g_string_append_printf(s, "Contact: %s\r\n", contact_uri);
                else
                        g_string_append_printf(s, "Contact: <%s>\r\n", contact_uri);
        }
        if (strcmp(method, "OPTIONS") == 0)
                g_string_append(s, "Allow: " SIP_ALLOW "\r\nAccept: " SIP_ACCEPT "\r\n");
        else if (code == 405)
                g_string_append(s, "Allow: " SIP_ALLOW "\r\n");
        else if (code == 415)
                g_string_append(s, "Accept: " SIP_ACCEPT "\r\n");

        if (strcmp(method, "INVITE") == 0)
                supported = "ice,replaces,outbound";
        else if (strcmp(method, "UPDATE") == 0)
                supported = body_len > 0 ? "ice,replaces,outbound" : "replaces,outbound";
        else
                supported = "outbound";
        g_string_append_printf(s, "Supported: %s\r\n", supported);

        if (body_len > 0)
                g_string_append_printf(s, "Content-Type: %s\r\n", content_type);
        g_string_append_printf(s, "Content-Length: %zu\r\n\r\n", body_len);
        if (body_len > 0)
                g_string_append_len(s, body, (gssize) body_len);
        return g_string_free(s, FALSE);
}
