/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <string.h>

#include <osipparser2/osip_parser.h>

#include "log.h"
#include "sim-sipmsg.h"
#include "sip-status.h"
#include "sim.h"

#define SIP_MAX_MESSAGE (256 * 1024)

static void sipheader_free(gpointer p) {
        SipHeader *h = p;

        if (!h)
                return;
        g_free(h->name);
        g_free(h->value);
        g_free(h);
}

SipMsg *sipmsg_free(SipMsg *m) {
        if (!m)
                return NULL;
        g_free(m->start_line);
        if (m->headers)
                g_ptr_array_unref(m->headers);
        g_free(m->body);
        g_free(m->method);
        g_free(m->request_uri);
        g_free(m->ruri_user);
        g_free(m->reason);
        g_free(m->call_id);
        g_free(m->cseq_method);
        g_free(m->from_tag);
        g_free(m->to_tag);
        g_free(m->via_branch);
        g_free(m->via_host);
        g_free(m->contact_uri);
        g_free(m->contact_host);
        g_free(m);
        return NULL;
}

static const struct {
        const char *compact, *full;
} compact_forms[] = {
        { "i", "Call-ID" }, { "f", "From" },           { "t", "To" },           { "v", "Via" },
        { "m", "Contact" }, { "l", "Content-Length" }, { "c", "Content-Type" }, { "k", "Supported" },
};

static bool header_name_is(const char *wire, const char *name) {
        if (g_ascii_strcasecmp(wire, name) == 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(compact_forms); i++)
                if (g_ascii_strcasecmp(name, compact_forms[i].full) == 0 &&
                    g_ascii_strcasecmp(wire, compact_forms[i].compact) == 0)
                        return true;
        return false;
}

const char *sipmsg_header(const SipMsg *m, const char *name) {
        for (guint i = 0; i < m->headers->len; i++) {
                const SipHeader *h = g_ptr_array_index(m->headers, i);
                if (header_name_is(h->name, name))
                        return h->value;
        }
        return NULL;
}

bool sipmsg_can_respond(const SipMsg *m) {
        return sipmsg_header(m, "Via") && sipmsg_header(m, "From") && sipmsg_header(m, "To") &&
               sipmsg_header(m, "Call-ID") && sipmsg_header(m, "CSeq");
}

/* Splits the header block into (name, value) pairs, joining folded lines. */
static int sipmsg_parse_headers(SipMsg *m, const char *block) {
        g_auto(GStrv) lines = g_strsplit(block, "\r\n", -1);
        SipHeader *last = NULL;

        for (char **l = lines; *l; l++) {
                SipHeader *h;
                char *colon;

                if (**l == '\0')
                        continue;
                if (**l == ' ' || **l == '\t') {
                        g_autofree char *joined = NULL;

                        if (!last)
                                return -EBADMSG;
                        joined = g_strconcat(last->value, " ", g_strstrip(*l), NULL);
                        g_free(last->value);
                        last->value = g_strstrip(TAKE_PTR(joined));
                        continue;
                }
                colon = strchr(*l, ':');
                if (!colon || colon == *l)
                        return -EBADMSG;
                h = g_new0(SipHeader, 1);
                h->name = g_strstrip(g_strndup(*l, colon - *l));
                h->value = g_strstrip(g_strdup(colon + 1));
                if (!*h->name || strpbrk(h->name, " \t")) {
                        sipheader_free(h);
                        return -EBADMSG;
                }
                g_ptr_array_add(m->headers, h);
                last = h;
        }
        return 0;
}

static char *uri_param(const osip_uri_param_t *p) {
        return p && p->gvalue ? g_strdup(p->gvalue) : NULL;
}

/* The URI between < and > of a Contact value, or the addr-spec up to the first ';'. */
static char *contact_uri_from_value(const char *v) {
        const char *lt = strchr(v, '<'), *gt;

        if (lt) {
                gt = strchr(lt, '>');
                return gt ? g_strndup(lt + 1, gt - lt - 1) : NULL;
        }
        gt = strchr(v, ';');
        return g_strstrip(gt ? g_strndup(v, gt - v) : g_strdup(v));
}

/* Fills the parsed fields from libosip2; leaves m->valid false when something is missing. */
static void sipmsg_parse_osip(SipMsg *m, const char *data, size_t len) {
        osip_message_t *o = NULL;
        osip_via_t *via = NULL;
        osip_contact_t *contact = NULL;
        osip_uri_param_t *p = NULL;
        const char *v;

        if (osip_message_init(&o) != 0)
                return;
        if (osip_message_parse(o, data, len) != 0)
                goto out;
        if (!o->call_id || !o->cseq || !o->cseq->number || !o->cseq->method || !o->from || !o->to ||
            osip_message_get_via(o, 0, &via) < 0 || !via || !via->host)
                goto out;

        m->is_request = MSG_IS_REQUEST(o);
        if (m->is_request) {
                g_auto(GStrv) f = g_strsplit(m->start_line, " ", 3);

                if (!o->sip_method || !o->req_uri || g_strv_length(f) != 3)
                        goto out;
                m->method = g_strdup(o->sip_method);
                m->request_uri = g_strdup(f[1]);
                m->ruri_user = g_strdup(o->req_uri->username);
        } else {
                m->status = o->status_code;
                m->reason = g_strdup(o->reason_phrase);
                if (m->status < 100 || m->status > 699)
                        goto out;
        }

        v = sipmsg_header(m, "Call-ID");
        m->call_id = g_strdup(v);
        {
                char *end = NULL;
                guint64 n;

                errno = 0;
                n = g_ascii_strtoull(o->cseq->number, &end, 10);
                if (errno != 0 || !end || *end || n > UINT32_MAX)
                        goto out;
                m->cseq = (uint32_t) n;
        }
        m->cseq_method = g_strdup(o->cseq->method);
        if (osip_from_get_tag(o->from, &p) == 0)
                m->from_tag = uri_param(p);
        p = NULL;
        if (osip_to_get_tag(o->to, &p) == 0)
                m->to_tag = uri_param(p);
        p = NULL;
        if (osip_via_param_get_byname(via, (char *) "branch", &p) == 0)
                m->via_branch = uri_param(p);
        m->via_host = g_ascii_strdown(via->host, -1);
        if (osip_message_get_contact(o, 0, &contact) >= 0 && contact && contact->url && contact->url->host) {
                v = sipmsg_header(m, "Contact");
                m->contact_uri = v ? contact_uri_from_value(v) : NULL;
                m->contact_host = g_ascii_strdown(contact->url->host, -1);
        }
        m->valid = m->call_id != NULL;
out:
        osip_message_free(o);
}

int sipmsg_parse(const char *data, size_t len, SipMsg **ret) {
        _cleanup_(sipmsg_freep) SipMsg *m = NULL;
        const char *end, *eol;
        g_autofree char *block = NULL;
        const char *cl;
        size_t avail;
        int r;

        if (!data || len == 0 || len > SIP_MAX_MESSAGE || memchr(data, '\0', len))
                return -EBADMSG;
        end = g_strstr_len(data, len, "\r\n\r\n");
        if (!end)
                return -EBADMSG;
        eol = g_strstr_len(data, end - data + 2, "\r\n");
        if (!eol || eol == data)
                return -EBADMSG;

        m = g_new0(SipMsg, 1);
        m->headers = g_ptr_array_new_with_free_func(sipheader_free);
        m->start_line = g_strndup(data, eol - data);
        /* "INVITE\r\n\r\n": the start line's CRLF is the first half of the blank line. */
        block = eol + 2 <= end ? g_strndup(eol + 2, end - (eol + 2)) : g_strdup("");
        r = sipmsg_parse_headers(m, block);
        if (r < 0)
                return r;

        avail = len - (size_t) (end + 4 - data);
        m->body_len = avail;
        cl = sipmsg_header(m, "Content-Length");
        if (cl) {
                char *e = NULL;
                guint64 n = g_ascii_strtoull(cl, &e, 10);

                if (!e || *e || n > avail)
                        /* Not a hard error: osip decides about validity below. */
                        m->body_len = avail;
                else
                        m->body_len = (size_t) n;
        }
        m->body = g_strndup(end + 4, m->body_len);

        sipmsg_parse_osip(m, data, len);
        *ret = TAKE_PTR(m);
        return 0;
}

char *sip_redact_authorization(const char *value) {
        size_t scheme;
        const char *rest;

        if (!value)
                return NULL;
        scheme = strcspn(value, " \t");
        rest = value + scheme;
        while (*rest == ' ' || *rest == '\t')
                rest++;
        if (!*rest) {
                /* A lone word: keep it only if it is a bare scheme name (the SDK sends a bare
                 * "Bearer" for an empty token); anything else might be a credential. */
                if (g_ascii_strcasecmp(value, "Bearer") == 0 || g_ascii_strcasecmp(value, "Basic") == 0 ||
                    g_ascii_strcasecmp(value, "Digest") == 0 || !*value)
                        return g_strdup(value);
                return g_strdup("<redacted>");
        }
        return g_strdup_printf("%.*s <redacted>", (int) scheme, value);
}

static bool header_is_credential(const char *name) {
        return g_ascii_strcasecmp(name, "Authorization") == 0 ||
               g_ascii_strcasecmp(name, "Proxy-Authorization") == 0;
}

json_object *sipmsg_headers_json(const SipMsg *m) {
        json_object *a = json_object_new_array();

        for (guint i = 0; i < m->headers->len; i++) {
                const SipHeader *h = g_ptr_array_index(m->headers, i);
                json_object *pair = json_object_new_array();
                g_autofree char *redacted = NULL;

                if (header_is_credential(h->name))
                        redacted = sip_redact_authorization(h->value);
                json_object_array_add(pair, json_object_new_string(h->name));
                json_object_array_add(pair, json_object_new_string(redacted ? redacted : h->value));
                json_object_array_add(a, pair);
        }
        return a;
}

char *sipmsg_to_log_text(const SipMsg *m) {
        GString *s = g_string_new(m->start_line);

        g_string_append(s, "\r\n");
        for (guint i = 0; i < m->headers->len; i++) {
                const SipHeader *h = g_ptr_array_index(m->headers, i);
                g_autofree char *redacted = NULL;

                if (header_is_credential(h->name))
                        redacted = sip_redact_authorization(h->value);
                g_string_append_printf(s, "%s: %s\r\n", h->name, redacted ? redacted : h->value);
        }
        g_string_append(s, "\r\n");
        g_string_append_len(s, m->body, (gssize) m->body_len);
        return g_string_free(s, FALSE);
}

const char *sip_reason_phrase(int code) {
        const char *p = code > 0 ? sip_status_phrase((unsigned) code) : NULL;

        return p ? p : "Unknown";
}

char *sip_build_response(const SipMsg *req, int code, const char *to_tag, const char *extra_headers,
                         const char *content_type, const char *body) {
        GString *s = g_string_new(NULL);
        size_t body_len = body ? strlen(body) : 0;

        g_string_append_printf(s, "SIP/2.0 %d %s\r\n", code, sip_reason_phrase(code));
        /* Every Via, in order, exactly as received (one, from the SDK). */
        for (guint i = 0; i < req->headers->len; i++) {
                const SipHeader *h = g_ptr_array_index(req->headers, i);
                if (header_name_is(h->name, "Via"))
                        g_string_append_printf(s, "Via: %s\r\n", h->value);
        }
        g_string_append_printf(s, "To: %s", sipmsg_header(req, "To"));
        if (code > 100 && !req->to_tag && to_tag)
                g_string_append_printf(s, ";tag=%s", to_tag);
        g_string_append(s, "\r\n");
        g_string_append_printf(s, "From: %s\r\n", sipmsg_header(req, "From"));
        g_string_append_printf(s, "Call-ID: %s\r\n", sipmsg_header(req, "Call-ID"));
        g_string_append_printf(s, "CSeq: %s\r\n", sipmsg_header(req, "CSeq"));
        if (extra_headers)
                g_string_append(s, extra_headers);
        if (code > 100)
                g_string_append(s, "Allow: " SIM_ALLOW "\r\n");
        g_string_append(s, "Server: " SIM_NAME "/" BWCALL_VERSION "\r\n");
        if (body_len > 0 && content_type)
                g_string_append_printf(s, "Content-Type: %s\r\n", content_type);
        g_string_append_printf(s, "Content-Length: %zu\r\n\r\n", body_len);
        if (body_len > 0)
                g_string_append_len(s, body, (gssize) body_len);
        return g_string_free(s, FALSE);
}

char *sip_random_token(size_t n) {
        static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
        char *s = g_malloc(n + 1);

        for (size_t i = 0; i < n; i++)
                s[i] = alphabet[g_random_int_range(0, (gint32) (sizeof alphabet - 1))];
        s[n] = '\0';
        return s;
}
