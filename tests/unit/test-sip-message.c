/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIP builders and parser against reference/gateway-protocol.md §3/§5 (byte layout of the SDK's
 * messages) and hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "sip-message.h"

#define BASE32 "0123456789abcdefghijklmnopqrstuv"
#define BASE36 "0123456789abcdefghijklmnopqrstuvwxyz"
#define DOMAIN "gw.webrtc-app.bandwidth.com"
#define ALLOW "INVITE,ACK,CANCEL,BYE,UPDATE,MESSAGE,OPTIONS,REFER,INFO,NOTIFY,SUBSCRIBE"

static const SipUa test_ua = {
        .user = "+19195551234",
        .display_name = "In-App Calling Sample",
        .domain = DOMAIN,
        .contact_host = "k2j8x0w3m1qa.invalid",
        .transport = "WSS",
        .user_agent = "JsSIP 3.10.0",
};

/* ---- helpers ---- */

static bool in_alphabet(const char *s, const char *alphabet) {
        return strspn(s, alphabet) == strlen(s);
}

/* Header names of a message, in order, up to the blank line. */
static char **header_names(const char *msg) {
        g_auto(GStrv) lines = NULL;
        GPtrArray *a = g_ptr_array_new();
        const char *end = strstr(msg, "\r\n\r\n");

        assert_non_null(end);
        {
                g_autofree char *head = g_strndup(msg, end - msg);
                lines = g_strsplit(head, "\r\n", -1);
        }
        for (size_t i = 1; lines[i]; i++) {
                const char *colon = strchr(lines[i], ':');
                assert_non_null(colon);
                g_ptr_array_add(a, g_strndup(lines[i], colon - lines[i]));
        }
        g_ptr_array_add(a, NULL);
        return (char **) g_ptr_array_free(a, FALSE);
}

static void assert_header_order(const char *msg, const char *const *expected) {
        g_auto(GStrv) names = header_names(msg);
        size_t i;

        for (i = 0; expected[i] && names[i]; i++)
                assert_string_equal(names[i], expected[i]);
        assert_null(expected[i]);
        assert_null(names[i]);
}

static bool has_line(const char *msg, const char *line) {
        g_autofree char *needle = g_strdup_printf("\r\n%s\r\n", line);
        return strstr(msg, needle) != NULL;
}

static SipDialog *new_dialog(void) {
        SipDialog *d = NULL;

        assert_int_equal(sip_dialog_new_outgoing(&test_ua, "+15557654321", &d), 0);
        assert_non_null(d);
        return d;
}

/* A dialog as after a 200 with Contact and Record-Route. */
static SipDialog *confirmed_dialog(void) {
        SipDialog *d = new_dialog();

        g_free(sip_build_invite(&test_ua, d, "tok", NULL, "v=0\r\n"));
        d->remote_tag = g_strdup("gw7tag");
        d->remote_target = g_strdup("sip:gw@198.51.100.7:5060;transport=ws");
        return d;
}

static SipMessage *parse_ok(const char *text) {
        SipMessage *m = NULL;

        assert_int_equal(sip_message_parse(text, strlen(text), &m), 0);
        assert_non_null(m);
        return m;
}

static void assert_bad(const char *text, size_t len) {
        SipMessage *m = (SipMessage *) 0x1;

        assert_int_equal(sip_message_parse(text, len, &m), -EBADMSG);
        assert_ptr_equal(m, (SipMessage *) 0x1); /* untouched on failure */
}

#define assert_bad_str(text) assert_bad((text), strlen(text))

/* ---- random values ---- */

static void test_random_tokens(void **state) {
        for (int i = 0; i < 200; i++) {
                g_autofree char *t = sip_random_token(20, BASE32);
                g_autofree char *h = sip_contact_host_new();
                g_autofree char *b = sip_branch_new();
                char *end;
                unsigned long v;

                assert_int_equal(strlen(t), 20);
                assert_true(in_alphabet(t, BASE32));

                assert_int_equal(strlen(h), 12 + strlen(".invalid"));
                assert_true(g_str_has_suffix(h, ".invalid"));
                h[12] = '\0';
                assert_true(in_alphabet(h, BASE36));

                assert_true(g_str_has_prefix(b, "z9hG4bK"));
                assert_true(strlen(b) > 7 && strlen(b) <= 7 + 7);
                assert_true(in_alphabet(b + 7, "0123456789"));
                v = strtoul(b + 7, &end, 10);
                assert_true(*end == '\0' && v < 10000000UL);
                assert_true(b[7] != '0' || b[8] == '\0'); /* plain decimal, no leading zeros */
        }
        {
                g_autofree char *e = sip_random_token(0, BASE32);
                assert_string_equal(e, "");
        }
        assert_null(sip_random_token(5, NULL));
        assert_null(sip_random_token(5, ""));
}

static void test_random_tokens_spread(void **state) {
        /* Every character of the alphabet shows up: the whole base-32 range is used. */
        g_autofree char *t = sip_random_token(4000, BASE32);
        for (const char *c = BASE32; *c; c++)
                assert_non_null(strchr(t, *c));
        {
                g_autofree char *a = sip_random_token(20, BASE32);
                g_autofree char *b = sip_random_token(20, BASE32);
                assert_string_not_equal(a, b);
        }
}

static void test_dialog_new(void **state) {
        for (int i = 0; i < 100; i++) {
                _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();

                assert_int_equal(strlen(d->call_id), 20);
                assert_true(in_alphabet(d->call_id, BASE32));
                assert_int_equal(strlen(d->local_tag), 10);
                assert_true(in_alphabet(d->local_tag, BASE32));
                assert_string_equal(d->request_uri, "sip:+15557654321@" DOMAIN);
                assert_true(d->local_cseq <= 9999);
                assert_int_equal(d->invite_cseq, d->local_cseq);
                assert_null(d->remote_tag);
                assert_null(d->remote_target);
                assert_null(d->route_set);
                assert_null(d->invite_branch);
        }
}

static void test_dialog_new_invalid(void **state) {
        SipDialog *d = (SipDialog *) 0x1;
        SipUa ua = test_ua;

        assert_int_equal(sip_dialog_new_outgoing(&test_ua, NULL, &d), -EINVAL);
        assert_int_equal(sip_dialog_new_outgoing(&test_ua, "", &d), -EINVAL);
        assert_int_equal(sip_dialog_new_outgoing(&test_ua, "+1555\r\nVia: x", &d), -EINVAL);
        assert_int_equal(sip_dialog_new_outgoing(&test_ua, "+1555@evil", &d), -EINVAL);
        assert_int_equal(sip_dialog_new_outgoing(&test_ua, "+1555 1", &d), -EINVAL);
        assert_int_equal(sip_dialog_new_outgoing(NULL, "+1555", &d), -EINVAL);
        ua.domain = NULL;
        assert_int_equal(sip_dialog_new_outgoing(&ua, "+1555", &d), -EINVAL);
        ua.domain = "x\n";
        assert_int_equal(sip_dialog_new_outgoing(&ua, "+1555", &d), -EINVAL);
        assert_ptr_equal(d, (SipDialog *) 0x1);
        assert_null(sip_dialog_free(NULL));
}

/* ---- INVITE ---- */

static void test_invite_exact(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        const char *extra[] = { "User-to-User:aGVsbG8;encoding=base64", NULL };
        const char *sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n";
        g_autofree char *msg = NULL, *expected = NULL;
        uint32_t cseq = d->local_cseq;

        msg = sip_build_invite(&test_ua, d, "eyJ.abc.def", extra, sdp);
        assert_non_null(msg);
        assert_non_null(d->invite_branch);
        assert_int_equal(d->invite_cseq, cseq);
        assert_int_equal(d->local_cseq, cseq);

        expected = g_strdup_printf(
                "INVITE sip:+15557654321@" DOMAIN " SIP/2.0\r\n"
                "Via: SIP/2.0/WSS k2j8x0w3m1qa.invalid;branch=%s\r\n"
                "Max-Forwards: 69\r\n"
                "To: <sip:+15557654321@" DOMAIN ">\r\n"
                "From: \"In-App Calling Sample\" <sip:+19195551234@" DOMAIN ">;tag=%s\r\n"
                "Call-ID: %s\r\n"
                "CSeq: %u INVITE\r\n"
                "User-to-User:aGVsbG8;encoding=base64\r\n"
                "Authorization: Bearer eyJ.abc.def\r\n"
                "Contact: <sip:+19195551234@k2j8x0w3m1qa.invalid;transport=ws;ob>\r\n"
                "Content-Type: application/sdp\r\n"
                "Allow: " ALLOW "\r\n"
                "Supported: ice,replaces,outbound\r\n"
                "User-Agent: JsSIP 3.10.0\r\n"
                "Content-Length: %zu\r\n"
                "\r\n"
                "%s",
                d->invite_branch, d->local_tag, d->call_id, cseq, strlen(sdp), sdp);
        assert_string_equal(msg, expected);
}

static void test_invite_header_order(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        const char *extra[] = { "X-A: 1", "X-B: 2", NULL };
        g_autofree char *msg = sip_build_invite(&test_ua, d, "tok", extra, "v=0\r\n");
        static const char *const order[] = {
                "Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq", "X-A", "X-B", "Authorization",
                "Contact", "Content-Type", "Allow", "Supported", "User-Agent", "Content-Length", NULL,
        };

        assert_non_null(msg);
        assert_header_order(msg, order);
}

static void test_invite_branch_and_transport(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        SipUa ua = test_ua;
        g_autofree char *msg = NULL, *via = NULL;
        char *first_branch;

        ua.transport = "WS";
        msg = sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n");
        assert_non_null(msg);
        via = g_strdup_printf("Via: SIP/2.0/WS k2j8x0w3m1qa.invalid;branch=%s", d->invite_branch);
        assert_true(has_line(msg, via));
        first_branch = g_strdup(d->invite_branch);
        g_free(msg);
        /* Building again makes a new transaction. */
        msg = sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n");
        assert_non_null(msg);
        assert_true(g_str_has_prefix(d->invite_branch, "z9hG4bK"));
        g_free(first_branch);
}

static void test_invite_without_display_name(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        SipUa ua = test_ua;
        g_autofree char *msg = NULL, *from = NULL;

        from = g_strdup_printf("From: <sip:+19195551234@" DOMAIN ">;tag=%s", d->local_tag);
        ua.display_name = NULL;
        msg = sip_build_invite(&ua, d, "t", NULL, "v=0\r\n");
        assert_true(has_line(msg, from));
        g_free(msg);
        ua.display_name = "";
        msg = sip_build_invite(&ua, d, "t", NULL, "v=0\r\n");
        assert_true(has_line(msg, from));
        assert_null(strstr(msg, "\"\""));
}

static void test_invite_display_name_escaped(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        SipUa ua = test_ua;
        g_autofree char *msg = NULL, *from = NULL;

        ua.display_name = "Joe \"The\" \\Boss";
        from = g_strdup_printf("From: \"Joe \\\"The\\\" \\\\Boss\" <sip:+19195551234@" DOMAIN ">;tag=%s",
                               d->local_tag);
        msg = sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n");
        assert_true(has_line(msg, from));
}

static void test_invite_authorization(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        g_autofree char *none = sip_build_invite(&test_ua, d, NULL, NULL, "v=0\r\n");
        g_autofree char *empty = sip_build_invite(&test_ua, d, "", NULL, "v=0\r\n");
        g_autofree char *tok = sip_build_invite(&test_ua, d, "a.b.c", NULL, "v=0\r\n");

        assert_null(strstr(none, "Authorization"));
        /* SDK quirk: an empty token still gives the line, trimmed (gateway-protocol.md §3). */
        assert_true(has_line(empty, "Authorization: Bearer"));
        assert_true(has_line(tok, "Authorization: Bearer a.b.c"));
}

static void test_invite_extra_headers(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        const char *extra[] = { "  User-to-User:aGVsbG8;encoding=base64 \t", "X-Empty:", NULL };
        g_autofree char *msg = sip_build_invite(&test_ua, d, "tok", extra, "v=0\r\n");
        const char *uu, *xe, *auth;

        assert_non_null(msg);
        uu = strstr(msg, "\r\nUser-to-User:aGVsbG8;encoding=base64\r\n");
        xe = strstr(msg, "\r\nX-Empty:\r\n");
        auth = strstr(msg, "\r\nAuthorization: Bearer tok\r\n");
        assert_non_null(uu);
        assert_non_null(xe);
        assert_non_null(auth);
        assert_true(uu < xe && xe < auth);
        assert_true(strstr(msg, "\r\nCSeq: ") < uu);
}

static void test_invite_extra_headers_rejected(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        static const char *const bad[] = {
                "X-A: 1\r\nVia: SIP/2.0/WSS evil",
                "X-A: 1\nX-B: 2",
                "X-A: 1\r",
                "",
                "   ",
                "NoColonHere",
                ": no name",
                "Bad Name: x",
                "Content-Length: 0",
                "l: 0",
                "Via: SIP/2.0/WSS x;branch=z9hG4bK1",
                "call-id: x",
                "CSeq: 1 INVITE",
                "Authorization: Bearer other",
                "X-Ctl: a\001b",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                const char *extra[] = { "X-Good: 1", bad[i], NULL };
                char *msg = sip_build_invite(&test_ua, d, "tok", extra, "v=0\r\n");
                if (msg)
                        fail_msg("extra header %zu accepted: %s", i, bad[i]);
        }
        assert_null(d->invite_branch); /* untouched on failure */
}

static void test_invite_content_length_multibyte(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        /* "é" is 2 bytes, "€" 3, "😀" 4 in UTF-8. */
        const char *sdp = "v=0\r\ns=Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\r\n";
        g_autofree char *msg = sip_build_invite(&test_ua, d, NULL, NULL, sdp);
        g_autofree char *cl = g_strdup_printf("Content-Length: %zu", strlen(sdp));
        const char *body;

        assert_int_equal(strlen(sdp), 23);
        assert_true(has_line(msg, cl));
        body = strstr(msg, "\r\n\r\n");
        assert_non_null(body);
        assert_string_equal(body + 4, sdp);
}

static void test_invite_invalid_arguments(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        SipUa ua;

        assert_null(sip_build_invite(NULL, d, NULL, NULL, "v=0\r\n"));
        assert_null(sip_build_invite(&test_ua, NULL, NULL, NULL, "v=0\r\n"));
        assert_null(sip_build_invite(&test_ua, d, NULL, NULL, NULL));
        assert_null(sip_build_invite(&test_ua, d, "tok\r\nVia: x", NULL, "v=0\r\n"));
        assert_null(sip_build_invite(&test_ua, d, "tok\n", NULL, "v=0\r\n"));
        assert_null(sip_build_invite(&test_ua, d, "tok\r", NULL, "v=0\r\n"));

        ua = test_ua;
        ua.user = NULL;
        assert_null(sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n"));
        ua = test_ua;
        ua.user = "+1919\r\nVia: x";
        assert_null(sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n"));
        ua = test_ua;
        ua.display_name = "Evil\r\nVia: SIP/2.0/WSS x";
        assert_null(sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n"));
        ua = test_ua;
        ua.domain = "example.com\r\n";
        assert_null(sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n"));
        ua = test_ua;
        ua.contact_host = NULL;
        assert_null(sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n"));
        ua = test_ua;
        ua.contact_host = "a b.invalid";
        assert_null(sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n"));
        ua = test_ua;
        ua.transport = NULL;
        assert_null(sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n"));
        ua = test_ua;
        ua.transport = "WSS\r\n";
        assert_null(sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n"));
        ua = test_ua;
        ua.user_agent = "JsSIP\r\nX: y";
        assert_null(sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n"));
        assert_null(d->invite_branch);

        /* The default User-Agent when none is configured. */
        ua = test_ua;
        ua.user_agent = NULL;
        {
                g_autofree char *msg = sip_build_invite(&ua, d, NULL, NULL, "v=0\r\n");
                assert_true(has_line(msg, "User-Agent: JsSIP 3.10.0"));
        }

        g_free(d->call_id);
        d->call_id = g_strdup("abc\r\nVia: x");
        assert_null(sip_build_invite(&test_ua, d, NULL, NULL, "v=0\r\n"));
}

/* ---- ACK, CANCEL, BYE ---- */

static void test_ack_2xx_exact(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = confirmed_dialog();
        g_autofree char *msg = NULL, *expected = NULL, *branch = NULL;
        const char *b, *e;

        msg = sip_build_ack_2xx(&test_ua, d);
        assert_non_null(msg);
        b = strstr(msg, ";branch=");
        assert_non_null(b);
        b += strlen(";branch=");
        e = strstr(b, "\r\n");
        branch = g_strndup(b, e - b);
        assert_string_not_equal(branch, d->invite_branch);

        expected = g_strdup_printf(
                "ACK sip:gw@198.51.100.7:5060;transport=ws SIP/2.0\r\n"
                "Via: SIP/2.0/WSS k2j8x0w3m1qa.invalid;branch=%s\r\n"
                "Max-Forwards: 69\r\n"
                "To: <sip:+15557654321@" DOMAIN ">;tag=gw7tag\r\n"
                "From: \"In-App Calling Sample\" <sip:+19195551234@" DOMAIN ">;tag=%s\r\n"
                "Call-ID: %s\r\n"
                "CSeq: %u ACK\r\n"
                "Allow: " ALLOW "\r\n"
                "Supported: outbound\r\n"
                "User-Agent: JsSIP 3.10.0\r\n"
                "Content-Length: 0\r\n"
                "\r\n",
                branch, d->local_tag, d->call_id, d->invite_cseq);
        assert_string_equal(msg, expected);
}

static void test_ack_2xx_route_set(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = confirmed_dialog();
        g_autofree char *msg = NULL;
        static const char *const order[] = {
                "Route", "Route", "Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq", "Allow",
                "Supported", "User-Agent", "Content-Length", NULL,
        };

        d->route_set = g_new0(char *, 3);
        d->route_set[0] = g_strdup("sip:p2.example.com;lr");
        d->route_set[1] = g_strdup("<sip:p1.example.com;transport=ws;lr>");
        msg = sip_build_ack_2xx(&test_ua, d);
        assert_non_null(msg);
        assert_header_order(msg, order);
        assert_true(g_str_has_prefix(msg, "ACK sip:gw@198.51.100.7:5060;transport=ws SIP/2.0\r\n"
                                          "Route: <sip:p2.example.com;lr>\r\n"
                                          "Route: <sip:p1.example.com;transport=ws;lr>\r\n"
                                          "Via: "));

        g_free(d->route_set[1]);
        d->route_set[1] = g_strdup("sip:p1\r\nX: y");
        assert_null(sip_build_ack_2xx(&test_ua, d));
        g_free(d->route_set[1]);
        d->route_set[1] = g_strdup("<sip:p1");
        assert_null(sip_build_ack_2xx(&test_ua, d));
}

static void test_ack_2xx_invalid(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = confirmed_dialog();

        g_free(d->remote_target);
        d->remote_target = NULL;
        assert_null(sip_build_ack_2xx(&test_ua, d));
        assert_null(sip_build_bye(&test_ua, d, NULL));
        d->remote_target = g_strdup("sip:gw@x\r\nVia: y");
        assert_null(sip_build_ack_2xx(&test_ua, d));
        g_free(d->remote_target);
        d->remote_target = g_strdup("sip:gw@x");
        g_free(d->remote_tag);
        d->remote_tag = g_strdup("t\r\nX: y");
        assert_null(sip_build_ack_2xx(&test_ua, d));
}

static void test_ack_non2xx_exact(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        g_autofree char *msg = NULL, *expected = NULL, *notag = NULL;

        g_free(sip_build_invite(&test_ua, d, "tok", NULL, "v=0\r\n"));

        msg = sip_build_ack_non2xx(&test_ua, d, "busy99");
        expected = g_strdup_printf(
                "ACK sip:+15557654321@" DOMAIN " SIP/2.0\r\n"
                "Via: SIP/2.0/WSS k2j8x0w3m1qa.invalid;branch=%s\r\n"
                "Max-Forwards: 69\r\n"
                "To: <sip:+15557654321@" DOMAIN ">;tag=busy99\r\n"
                "From: \"In-App Calling Sample\" <sip:+19195551234@" DOMAIN ">;tag=%s\r\n"
                "Call-ID: %s\r\n"
                "CSeq: %u ACK\r\n"
                "Allow: " ALLOW "\r\n"
                "Supported: outbound\r\n"
                "User-Agent: JsSIP 3.10.0\r\n"
                "Content-Length: 0\r\n"
                "\r\n",
                d->invite_branch, d->local_tag, d->call_id, d->invite_cseq);
        assert_string_equal(msg, expected);

        notag = sip_build_ack_non2xx(&test_ua, d, NULL);
        assert_true(has_line(notag, "To: <sip:+15557654321@" DOMAIN ">"));
        assert_null(sip_build_ack_non2xx(&test_ua, d, "x\r\nVia: y"));
}

static void test_ack_non2xx_needs_invite(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();

        assert_null(sip_build_ack_non2xx(&test_ua, d, "t"));
        assert_null(sip_build_cancel(&test_ua, d));
}

static void test_cancel_exact(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        g_autofree char *msg = NULL, *expected = NULL;
        uint32_t local = d->local_cseq;

        g_free(sip_build_invite(&test_ua, d, "tok", NULL, "v=0\r\n"));

        d->remote_tag = g_strdup("ring1"); /* a 180 arrived: the CANCEL still has no To tag */
        msg = sip_build_cancel(&test_ua, d);
        expected = g_strdup_printf(
                "CANCEL sip:+15557654321@" DOMAIN " SIP/2.0\r\n"
                "Via: SIP/2.0/WSS k2j8x0w3m1qa.invalid;branch=%s\r\n"
                "Max-Forwards: 69\r\n"
                "To: <sip:+15557654321@" DOMAIN ">\r\n"
                "From: \"In-App Calling Sample\" <sip:+19195551234@" DOMAIN ">;tag=%s\r\n"
                "Call-ID: %s\r\n"
                "CSeq: %u CANCEL\r\n"
                "Allow: " ALLOW "\r\n"
                "Supported: outbound\r\n"
                "User-Agent: JsSIP 3.10.0\r\n"
                "Content-Length: 0\r\n"
                "\r\n",
                d->invite_branch, d->local_tag, d->call_id, d->invite_cseq);
        assert_string_equal(msg, expected);
        assert_null(strstr(msg, "Authorization"));
        assert_null(strstr(msg, "Reason"));
        assert_int_equal(d->local_cseq, local);
}

static void test_bye_exact(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = confirmed_dialog();
        g_autofree char *msg = NULL, *expected = NULL, *branch = NULL;
        uint32_t invite_cseq = d->invite_cseq;
        const char *b, *e;

        msg = sip_build_bye(&test_ua, d, NULL);
        assert_non_null(msg);
        assert_int_equal(d->local_cseq, invite_cseq + 1);
        b = strstr(msg, ";branch=") + strlen(";branch=");
        e = strstr(b, "\r\n");
        branch = g_strndup(b, e - b);
        expected = g_strdup_printf(
                "BYE sip:gw@198.51.100.7:5060;transport=ws SIP/2.0\r\n"
                "Via: SIP/2.0/WSS k2j8x0w3m1qa.invalid;branch=%s\r\n"
                "Max-Forwards: 69\r\n"
                "To: <sip:+15557654321@" DOMAIN ">;tag=gw7tag\r\n"
                "From: \"In-App Calling Sample\" <sip:+19195551234@" DOMAIN ">;tag=%s\r\n"
                "Call-ID: %s\r\n"
                "CSeq: %u BYE\r\n"
                "Allow: " ALLOW "\r\n"
                "Supported: outbound\r\n"
                "User-Agent: JsSIP 3.10.0\r\n"
                "Content-Length: 0\r\n"
                "\r\n",
                branch, d->local_tag, d->call_id, invite_cseq + 1);
        assert_string_equal(msg, expected);
        assert_string_not_equal(branch, d->invite_branch);
}

static void test_bye_reason_and_cseq(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = confirmed_dialog();
        g_autofree char *first = NULL, *second = NULL, *line = NULL;
        uint32_t invite_cseq = d->invite_cseq;
        static const char *const order[] = {
                "Route", "Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq", "Reason", "Allow",
                "Supported", "User-Agent", "Content-Length", NULL,
        };

        d->route_set = g_new0(char *, 2);
        d->route_set[0] = g_strdup("sip:proxy.example.com;lr");
        first = sip_build_bye(&test_ua, d, "SIP ;cause=408; text=\"RTP Timeout\"");
        assert_non_null(first);
        assert_header_order(first, order);
        assert_true(has_line(first, "Reason: SIP ;cause=408; text=\"RTP Timeout\""));
        line = g_strdup_printf("CSeq: %u BYE", invite_cseq + 1);
        assert_true(has_line(first, line));

        /* Invalid reason: NULL and the CSeq is not consumed. */
        assert_null(sip_build_bye(&test_ua, d, "SIP ;cause=1\r\nVia: x"));
        assert_int_equal(d->local_cseq, invite_cseq + 1);

        second = sip_build_bye(&test_ua, d, NULL);
        g_free(line);
        line = g_strdup_printf("CSeq: %u BYE", invite_cseq + 2);
        assert_true(has_line(second, line));
        assert_null(strstr(second, "Reason"));

        /* ACK and CANCEL keep the INVITE's number whatever BYEs did. */
        {
                g_autofree char *ack = sip_build_ack_2xx(&test_ua, d);
                g_autofree char *cancel = sip_build_cancel(&test_ua, d);
                g_autofree char *ack_line = g_strdup_printf("CSeq: %u ACK", invite_cseq);
                g_autofree char *cancel_line = g_strdup_printf("CSeq: %u CANCEL", invite_cseq);
                assert_true(has_line(ack, ack_line));
                assert_true(has_line(cancel, cancel_line));
        }
}

static void test_reinvite_and_info(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = confirmed_dialog();
        g_autofree char *reinvite = NULL, *info = NULL, *ack = NULL, *line = NULL;
        uint32_t invite_cseq = d->invite_cseq, cseq = 0;
        static const char *const reinvite_order[] = {
                "Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq", "Contact", "Content-Type", "Allow",
                "Supported", "User-Agent", "Content-Length", NULL,
        };
        static const char *const info_order[] = {
                "Via", "Max-Forwards", "To", "From", "Call-ID", "CSeq", "Content-Type", "Allow", "Supported",
                "User-Agent", "Content-Length", NULL,
        };
        static const char *const refer_headers[] = { "Refer-To: <sip:+15550001001@gw.example.com>", NULL };

        /* Hold re-INVITE (gateway-protocol.md §6): Contact with ;ob, no Authorization. */
        reinvite = sip_build_request(&test_ua, d, "INVITE", NULL, "application/sdp", "v=0\r\na=sendonly\r\n", &cseq);
        assert_non_null(reinvite);
        assert_int_equal(cseq, invite_cseq + 1);
        assert_header_order(reinvite, reinvite_order);
        assert_true(g_str_has_prefix(reinvite, "INVITE sip:gw@198.51.100.7:5060;transport=ws SIP/2.0\r\n"));
        assert_true(has_line(reinvite, "Supported: ice,replaces,outbound"));
        assert_null(strstr(reinvite, "Authorization"));
        assert_non_null(strstr(reinvite, ";tag=gw7tag"));
        line = g_strdup_printf("CSeq: %u INVITE", invite_cseq + 1);
        assert_true(has_line(reinvite, line));

        /* Its ACK carries the re-INVITE's number. */
        ack = sip_build_ack_for(&test_ua, d, cseq);
        g_free(line);
        line = g_strdup_printf("CSeq: %u ACK", cseq);
        assert_true(has_line(ack, line));

        /* INFO dtmf-relay as captured: body without trailing CRLF. */
        info = sip_build_request(&test_ua, d, "INFO", NULL, "application/dtmf-relay", "Signal=1\r\nDuration=250",
                                 NULL);
        assert_header_order(info, info_order);
        assert_true(has_line(info, "Content-Length: 22"));
        assert_true(has_line(info, "Supported: outbound"));
        assert_true(g_str_has_suffix(info, "\r\n\r\nSignal=1\r\nDuration=250"));
        assert_int_equal(d->local_cseq, invite_cseq + 2);

        {
                g_autofree char *refer = sip_build_request(&test_ua, d, "REFER", refer_headers, NULL, NULL, NULL);
                assert_non_null(refer);
                assert_true(has_line(refer, "Refer-To: <sip:+15550001001@gw.example.com>"));
        }

        /* Refused: ACK/CANCEL (own builders), body without type, injected header lines. */
        {
                static const char *const injected[] = { "Refer-To: <sip:x@y>\r\nVia: evil", NULL };
                static const char *const nameless[] = { "no colon here", NULL };
                uint32_t before = d->local_cseq;

                assert_null(sip_build_request(&test_ua, d, "ACK", NULL, NULL, NULL, NULL));
                assert_null(sip_build_request(&test_ua, d, "CANCEL", NULL, NULL, NULL, NULL));
                assert_null(sip_build_request(&test_ua, d, "INFO", NULL, NULL, "Signal=1", NULL));
                assert_null(sip_build_request(&test_ua, d, "REFER", injected, NULL, NULL, NULL));
                assert_null(sip_build_request(&test_ua, d, "REFER", nameless, NULL, NULL, NULL));
                assert_null(sip_build_request(&test_ua, d, "IN VITE", NULL, NULL, NULL, NULL));
                assert_int_equal(d->local_cseq, before);
        }
}

static void test_no_authorization_outside_invite(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = confirmed_dialog();
        g_autofree char *ack = sip_build_ack_2xx(&test_ua, d);
        g_autofree char *nack = sip_build_ack_non2xx(&test_ua, d, "x");
        g_autofree char *cancel = sip_build_cancel(&test_ua, d);
        g_autofree char *bye = sip_build_bye(&test_ua, d, NULL);

        assert_null(strstr(ack, "Authorization"));
        assert_null(strstr(nack, "Authorization"));
        assert_null(strstr(cancel, "Authorization"));
        assert_null(strstr(bye, "Authorization"));
        assert_null(strstr(bye, "Contact"));
}

/* Our own requests parse back to what we put in. */
static void test_builders_parse_back(void **state) {
        _cleanup_(sip_dialog_freep) SipDialog *d = new_dialog();
        const char *sdp = "v=0\r\ns=-\r\n";
        g_autofree char *invite = sip_build_invite(&test_ua, d, "tok", NULL, sdp);
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(invite);

        assert_true(sip_message_is_request(m));
        assert_string_equal(sip_message_method(m), "INVITE");
        assert_int_equal(sip_message_status(m), 0);
        assert_null(sip_message_reason_phrase(m));
        assert_string_equal(sip_message_call_id(m), d->call_id);
        assert_int_equal(sip_message_cseq_number(m), d->invite_cseq);
        assert_string_equal(sip_message_cseq_method(m), "INVITE");
        assert_string_equal(sip_message_from_tag(m), d->local_tag);
        assert_null(sip_message_to_tag(m));
        assert_string_equal(sip_message_via_branch(m), d->invite_branch);
        assert_string_equal(sip_message_contact_uri(m),
                            "sip:+19195551234@k2j8x0w3m1qa.invalid;transport=ws;ob");
        assert_string_equal(sip_message_content_type(m), "application/sdp");
        assert_string_equal(sip_message_body(m), sdp);
        assert_int_equal(sip_message_body_length(m), strlen(sdp));
        assert_string_equal(sip_message_header(m, "authorization"), "Bearer tok");
        assert_string_equal(sip_message_header(m, "Max-Forwards"), "69");
}

/* ---- parsing ---- */

#define VIA_GW "SIP/2.0/WSS k2j8x0w3m1qa.invalid;branch=z9hG4bK4821937"

static const char resp_180[] =
        "SIP/2.0 180 Ringing\r\n"
        "Via: " VIA_GW "\r\n"
        "To: <sip:+15557654321@" DOMAIN ">;tag=as5f8e21\r\n"
        "From: \"In-App Calling Sample\" <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5\r\n"
        "Call-ID: 7f3kqb9v2m0c8d1n4p6r\r\n"
        "CSeq: 5120 INVITE\r\n"
        "Contact: <sip:gw@198.51.100.7:10081;transport=wss>\r\n"
        "Content-Length: 0\r\n"
        "\r\n";

static void test_parse_180(void **state) {
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(resp_180);

        assert_false(sip_message_is_request(m));
        assert_null(sip_message_method(m));
        assert_int_equal(sip_message_status(m), 180);
        assert_string_equal(sip_message_reason_phrase(m), "Ringing");
        assert_string_equal(sip_message_call_id(m), "7f3kqb9v2m0c8d1n4p6r");
        assert_int_equal(sip_message_cseq_number(m), 5120);
        assert_string_equal(sip_message_cseq_method(m), "INVITE");
        assert_string_equal(sip_message_to_tag(m), "as5f8e21");
        assert_string_equal(sip_message_from_tag(m), "a1b2c3d4e5");
        assert_string_equal(sip_message_via_branch(m), "z9hG4bK4821937");
        assert_string_equal(sip_message_contact_uri(m), "sip:gw@198.51.100.7:10081;transport=wss");
        assert_null(sip_message_content_type(m));
        assert_string_equal(sip_message_body(m), "");
        assert_int_equal(sip_message_body_length(m), 0);
        assert_null(sip_message_record_routes(m));
        assert_string_equal(sip_message_header(m, "via"), VIA_GW);
        assert_null(sip_message_header(m, "X-Missing"));
        assert_null(sip_message_header(m, ""));
        assert_null(sip_message_header(m, NULL));
}

static const char sdp_answer[] =
        "v=0\r\n"
        "o=- 1 1 IN IP4 198.51.100.7\r\n"
        "s=Caf\xc3\xa9\r\n"
        "t=0 0\r\n"
        "m=audio 40000 UDP/TLS/RTP/SAVPF 0\r\n"
        "a=ice-lite\r\n";

static void test_parse_200_sdp_record_route(void **state) {
        g_autofree char *text = g_strdup_printf(
                "SIP/2.0 200 OK\r\n"
                "Via: " VIA_GW "\r\n"
                "Record-Route: <sip:p1.example.com;transport=ws;r2=on;lr>, <sip:p2.example.com;lr=on>\r\n"
                "Record-Route: \"Proxy, 3\" <sip:p3.example.com;lr>;x=\"a,b\"\r\n"
                "To: <sip:+15557654321@" DOMAIN ">;tag=gw7tag\r\n"
                "From: <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5\r\n"
                "Call-ID: 7f3kqb9v2m0c8d1n4p6r\r\n"
                "CSeq: 5120 INVITE\r\n"
                "Contact: \"GW\" <sip:gw@198.51.100.7:10081;transport=wss>;expires=60\r\n"
                "Content-Type: Application/SDP; charset=utf-8\r\n"
                "Content-Length: %zu\r\n"
                "\r\n"
                "%s",
                strlen(sdp_answer), sdp_answer);
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(text);
        char **rr;

        assert_int_equal(sip_message_status(m), 200);
        assert_string_equal(sip_message_reason_phrase(m), "OK");
        assert_string_equal(sip_message_to_tag(m), "gw7tag");
        assert_string_equal(sip_message_contact_uri(m), "sip:gw@198.51.100.7:10081;transport=wss");
        assert_string_equal(sip_message_content_type(m), "application/sdp");
        assert_string_equal(sip_message_body(m), sdp_answer);
        assert_int_equal(sip_message_body_length(m), strlen(sdp_answer));

        rr = sip_message_record_routes(m);
        assert_non_null(rr);
        assert_string_equal(rr[0], "sip:p1.example.com;transport=ws;r2=on;lr");
        assert_string_equal(rr[1], "sip:p2.example.com;lr=on");
        assert_string_equal(rr[2], "sip:p3.example.com;lr");
        assert_null(rr[3]);
        sip_strv_free(rr);
        sip_strv_free(NULL);
        assert_string_equal(sip_message_header(m, "record-route"),
                            "<sip:p1.example.com;transport=ws;r2=on;lr>, <sip:p2.example.com;lr=on>");
}

static void test_parse_body_content_length(void **state) {
        /* The body is cut at Content-Length; bytes after it are ignored. */
        const char *text =
                "SIP/2.0 200 OK\r\n"
                "Via: " VIA_GW "\r\n"
                "To: <sip:a@b>;tag=1\r\n"
                "From: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\n"
                "CSeq: 1 INVITE\r\n"
                "Content-Type: application/sdp\r\n"
                "Content-Length: 5\r\n"
                "\r\n"
                "v=0\r\nEXTRA";
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(text);

        assert_int_equal(sip_message_body_length(m), 5);
        assert_string_equal(sip_message_body(m), "v=0\r\n");
}

static void test_parse_486(void **state) {
        const char *text =
                "SIP/2.0 486 Busy Here\r\n"
                "Via: " VIA_GW "\r\n"
                "To: <sip:+15557654321@" DOMAIN ">;tag=busy1\r\n"
                "From: <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5\r\n"
                "Call-ID: 7f3kqb9v2m0c8d1n4p6r\r\n"
                "CSeq: 5120 INVITE\r\n"
                "Content-Length: 0\r\n"
                "\r\n";
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(text);

        assert_int_equal(sip_message_status(m), 486);
        assert_string_equal(sip_message_reason_phrase(m), "Busy Here");
        assert_string_equal(sip_status_to_cause(sip_message_status(m)), "Busy");
        assert_string_equal(sip_message_to_tag(m), "busy1");
        assert_null(sip_message_contact_uri(m));
}

static void test_parse_100_without_to_tag(void **state) {
        const char *text =
                "SIP/2.0 100 Trying\r\n"
                "Via: " VIA_GW "\r\n"
                "To: <sip:+15557654321@" DOMAIN ">\r\n"
                "From: <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5\r\n"
                "Call-ID: 7f3kqb9v2m0c8d1n4p6r\r\n"
                "CSeq: 5120 INVITE\r\n"
                "\r\n";
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(text);

        assert_int_equal(sip_message_status(m), 100);
        assert_null(sip_message_to_tag(m));
        assert_string_equal(sip_message_from_tag(m), "a1b2c3d4e5");
        assert_string_equal(sip_message_body(m), "");
}

static const char bye_request[] =
        "BYE sip:+19195551234@k2j8x0w3m1qa.invalid;transport=ws SIP/2.0\r\n"
        "Via:  SIP/2.0/WSS 198.51.100.7:10081 ;branch=z9hG4bKgw.Bye-1;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:+15557654321@" DOMAIN ">;tag=gw7tag\r\n"
        "To: \"In-App Calling Sample\" <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5\r\n"
        "Call-ID: 7f3kqb9v2m0c8d1n4p6r\r\n"
        "CSeq: 7 BYE\r\n"
        "Content-Length: 0\r\n"
        "\r\n";

static void test_parse_bye_request(void **state) {
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(bye_request);

        assert_true(sip_message_is_request(m));
        assert_string_equal(sip_message_method(m), "BYE");
        assert_int_equal(sip_message_status(m), 0);
        assert_null(sip_message_reason_phrase(m));
        assert_int_equal(sip_message_cseq_number(m), 7);
        assert_string_equal(sip_message_cseq_method(m), "BYE");
        assert_string_equal(sip_message_from_tag(m), "gw7tag");
        assert_string_equal(sip_message_to_tag(m), "a1b2c3d4e5");
        assert_string_equal(sip_message_via_branch(m), "z9hG4bKgw.Bye-1");
        assert_string_equal(sip_message_header(m, "Via"),
                            "SIP/2.0/WSS 198.51.100.7:10081 ;branch=z9hG4bKgw.Bye-1;rport");
}

static void test_parse_compact_forms(void **state) {
        const char *text =
                "SIP/2.0 183 Session Progress\r\n"
                "v: " VIA_GW "\r\n"
                "t: <sip:+15557654321@" DOMAIN ">;tag=cmp1\r\n"
                "f: <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5\r\n"
                "i: compactcallid@host\r\n"
                "CSeq: 5120 INVITE\r\n"
                "m: <sip:gw@198.51.100.7>\r\n"
                "k: outbound\r\n"
                "s: hello\r\n"
                "c: application/sdp\r\n"
                "l: 4\r\n"
                "\r\n"
                "v=0\n";
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(text);

        assert_int_equal(sip_message_status(m), 183);
        assert_string_equal(sip_message_call_id(m), "compactcallid@host");
        assert_string_equal(sip_message_to_tag(m), "cmp1");
        assert_string_equal(sip_message_from_tag(m), "a1b2c3d4e5");
        assert_string_equal(sip_message_via_branch(m), "z9hG4bK4821937");
        assert_string_equal(sip_message_contact_uri(m), "sip:gw@198.51.100.7");
        assert_string_equal(sip_message_content_type(m), "application/sdp");
        assert_string_equal(sip_message_body(m), "v=0\n");
        /* Long and compact names find each other, in any case. */
        assert_string_equal(sip_message_header(m, "Call-ID"), "compactcallid@host");
        assert_string_equal(sip_message_header(m, "CALL-id"), "compactcallid@host");
        assert_string_equal(sip_message_header(m, "i"), "compactcallid@host");
        assert_string_equal(sip_message_header(m, "Supported"), "outbound");
        assert_string_equal(sip_message_header(m, "Subject"), "hello");
        assert_string_equal(sip_message_header(m, "Content-Length"), "4");
        assert_string_equal(sip_message_header(m, "contact"), "<sip:gw@198.51.100.7>");
        assert_string_equal(sip_message_header(m, "V"), VIA_GW);
        assert_string_equal(sip_message_header(m, "cseq"), "5120 INVITE");
}

static void test_parse_lenient_forms(void **state) {
        /* LF-only line ends, folded header, trailing NUL counted in len, no Content-Length. */
        const char text[] =
                "SIP/2.0 200 OK\n"
                "Via: " VIA_GW "\n"
                "To: <sip:a@b>;tag=1\n"
                "From: <sip:c@d>;tag=2\n"
                "Call-ID: lf-only\n"
                "CSeq: 4294967295 BYE\n"
                "X-Folded: one\n"
                "  two\n"
                "\tthree\n"
                "\n"
                "body";
        _cleanup_(sip_message_freep) SipMessage *m = NULL;

        assert_int_equal(sip_message_parse(text, sizeof(text), &m), 0);
        assert_string_equal(sip_message_call_id(m), "lf-only");
        assert_int_equal(sip_message_cseq_number(m), 4294967295U);
        assert_string_equal(sip_message_header(m, "x-folded"), "one two three");
        assert_string_equal(sip_message_body(m), "body");
        assert_int_equal(sip_message_body_length(m), 4);
}

static void test_parse_malformed(void **state) {
        static const char *const bad[] = {
                "",
                "\r\n",
                "\r\n\r\n",
                "garbage",
                "SIP/2.0 200 OK\r\n",
                /* no Call-ID */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "CSeq: 1 INVITE\r\n\r\n",
                /* no From */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nCall-ID: x\r\n"
                "CSeq: 1 INVITE\r\n\r\n",
                /* no To */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nFrom: <sip:c@d>;tag=2\r\nCall-ID: x\r\n"
                "CSeq: 1 INVITE\r\n\r\n",
                /* no Via */
                "SIP/2.0 200 OK\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\nCall-ID: x\r\n"
                "CSeq: 1 INVITE\r\n\r\n",
                /* no CSeq */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\n\r\n",
                /* status out of range */
                "SIP/2.0 99 Low\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
                "SIP/2.0 700 High\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
                "SIP/2.0 abc OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
                "SIP/3.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
                /* truncated in the header block */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INV",
                /* truncated body */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 100\r\n\r\nv=0\r\n",
                /* bad Content-Length */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: -1\r\n\r\n",
                /* two Content-Length */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\nl: 0\r\n\r\n",
                /* two Call-IDs */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\ni: y\r\nCSeq: 1 INVITE\r\n\r\n",
                /* CSeq number not a number / too large */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: x1 INVITE\r\n\r\n",
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 4294967296 INVITE\r\n\r\n",
                /* header line without colon, continuation without a header, stray CR */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\nNoColon\r\n\r\n",
                "SIP/2.0 200 OK\r\n continued\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\n"
                "From: <sip:c@d>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\rX: y\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\n\r\n",
                /* bad Contact / Record-Route */
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\nContact: <sip:gw@x\r\n\r\n",
                "SIP/2.0 200 OK\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 INVITE\r\nRecord-Route: <sip:p1;lr>, <>\r\n\r\n",
                /* request line problems */
                "BYE\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 BYE\r\n\r\n",
                "B(E sip:a@b SIP/2.0\r\nVia: " VIA_GW "\r\nTo: <sip:a@b>;tag=1\r\nFrom: <sip:c@d>;tag=2\r\n"
                "Call-ID: x\r\nCSeq: 1 BYE\r\n\r\n",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
                SipMessage *m = NULL;
                int r = sip_message_parse(bad[i], strlen(bad[i]), &m);
                if (r != -EBADMSG)
                        fail_msg("malformed input %zu gave %d, not -EBADMSG", i, r);
                assert_null(m);
        }
}

static void test_parse_binary_junk(void **state) {
        uint8_t junk[512];
        GRand *rand = g_rand_new_with_seed(42);

        assert_bad("\0\0\0\0", 4);
        assert_bad("\xff\xfe\x00\x01SIP/2.0 200 OK\r\n\r\n", 20);
        /* Embedded NUL in an otherwise valid message. */
        {
                char text[sizeof(resp_180)];
                memcpy(text, resp_180, sizeof(resp_180));
                text[40] = '\0';
                assert_bad(text, sizeof(resp_180) - 1);
        }
        for (int round = 0; round < 200; round++) {
                SipMessage *m = NULL;
                for (size_t i = 0; i < sizeof(junk); i++)
                        junk[i] = (uint8_t) g_rand_int(rand);
                assert_int_equal(sip_message_parse((const char *) junk, sizeof(junk), &m), -EBADMSG);
        }
        /* Every truncation of a valid message either parses or fails cleanly. */
        for (size_t n = 0; n < strlen(resp_180); n++) {
                SipMessage *m = NULL;
                int r = sip_message_parse(resp_180, n, &m);
                assert_true(r == 0 || r == -EBADMSG);
                assert_true((r == 0) == (m != NULL));
                sip_message_free(m);
        }
        g_rand_free(rand);
        assert_int_equal(sip_message_parse(NULL, 0, NULL), -EINVAL);
        assert_null(sip_message_free(NULL));
}

/* ---- responses we send ---- */

static void test_response_to_bye(void **state) {
        _cleanup_(sip_message_freep) SipMessage *bye = parse_ok(bye_request);
        g_autofree char *resp = sip_build_response(bye, 200, "OK", NULL, NULL, NULL, NULL);
        static const char *const order[] = {
                "Via", "To", "From", "Call-ID", "CSeq", "Supported", "Content-Length", NULL,
        };

        assert_non_null(resp);
        assert_header_order(resp, order);
        assert_string_equal(resp,
                            "SIP/2.0 200 OK\r\n"
                            "Via: SIP/2.0/WSS 198.51.100.7:10081 ;branch=z9hG4bKgw.Bye-1;rport\r\n"
                            "To: \"In-App Calling Sample\" <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5\r\n"
                            "From: <sip:+15557654321@" DOMAIN ">;tag=gw7tag\r\n"
                            "Call-ID: 7f3kqb9v2m0c8d1n4p6r\r\n"
                            "CSeq: 7 BYE\r\n"
                            "Supported: outbound\r\n"
                            "Content-Length: 0\r\n"
                            "\r\n");
        /* Our own response parses. */
        {
                _cleanup_(sip_message_freep) SipMessage *m = parse_ok(resp);
                assert_int_equal(sip_message_status(m), 200);
                assert_string_equal(sip_message_via_branch(m), "z9hG4bKgw.Bye-1");
        }
        /* Default reason phrase. */
        {
                g_autofree char *r2 = sip_build_response(bye, 200, NULL, NULL, NULL, NULL, NULL);
                assert_true(g_str_has_prefix(r2, "SIP/2.0 200 OK\r\n"));
        }
}

static void test_response_echoes_every_via(void **state) {
        const char *text =
                "BYE sip:u@h.invalid SIP/2.0\r\n"
                "Via: SIP/2.0/WSS proxy.example.com;branch=z9hG4bKp1, "
                "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
                "v: SIP/2.0/TCP 10.0.0.2:5060;branch=z9hG4bKy;received=1.2.3.4\r\n"
                "To: <sip:u@d>;tag=t1\r\n"
                "From: <sip:g@d>;tag=f1\r\n"
                "Call-ID: multi-via\r\n"
                "CSeq: 9 BYE\r\n"
                "\r\n";
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(text);
        g_autofree char *resp = sip_build_response(m, 200, "OK", NULL, NULL, NULL, NULL);

        assert_string_equal(sip_message_via_branch(m), "z9hG4bKp1");
        assert_true(g_str_has_prefix(
                resp, "SIP/2.0 200 OK\r\n"
                      "Via: SIP/2.0/WSS proxy.example.com;branch=z9hG4bKp1, "
                      "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n"
                      "Via: SIP/2.0/TCP 10.0.0.2:5060;branch=z9hG4bKy;received=1.2.3.4\r\n"
                      "To: <sip:u@d>;tag=t1\r\n"));
}

static const char options_request[] =
        "OPTIONS sip:+19195551234@k2j8x0w3m1qa.invalid SIP/2.0\r\n"
        "Via: SIP/2.0/WSS 198.51.100.7;branch=z9hG4bKopt\r\n"
        "To: <sip:+19195551234@k2j8x0w3m1qa.invalid>\r\n"
        "From: <sip:gw@" DOMAIN ">;tag=o1\r\n"
        "Call-ID: opt-1\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n"
        "\r\n";

static void test_response_to_tag(void **state) {
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(options_request);
        g_autofree char *given = sip_build_response(m, 200, "OK", "mytag", NULL, NULL, NULL);
        g_autofree char *generated = sip_build_response(m, 200, "OK", NULL, NULL, NULL, NULL);
        g_autofree char *trying = sip_build_response(m, 100, "Trying", NULL, NULL, NULL, NULL);
        _cleanup_(sip_message_freep) SipMessage *g = NULL;
        _cleanup_(sip_message_freep) SipMessage *bye = parse_ok(bye_request);
        g_autofree char *bye_resp = sip_build_response(bye, 200, "OK", "ignored", NULL, NULL, NULL);

        assert_true(has_line(given, "To: <sip:+19195551234@k2j8x0w3m1qa.invalid>;tag=mytag"));
        /* OPTIONS: Allow and Accept, as JsSIP. */
        assert_true(has_line(given, "Allow: " ALLOW));
        assert_true(has_line(given, "Accept: application/sdp, application/dtmf-relay"));

        g = parse_ok(generated);
        assert_non_null(sip_message_to_tag(g));
        assert_int_equal(strlen(sip_message_to_tag(g)), 10);
        assert_true(in_alphabet(sip_message_to_tag(g), BASE32));

        assert_true(has_line(trying, "To: <sip:+19195551234@k2j8x0w3m1qa.invalid>"));

        /* The To already has a tag: kept as is. */
        assert_true(has_line(bye_resp,
                             "To: \"In-App Calling Sample\" <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5"));
        assert_null(strstr(bye_resp, "ignored"));
}

static void test_response_with_body(void **state) {
        const char *text =
                "INVITE sip:+19195551234@k2j8x0w3m1qa.invalid SIP/2.0\r\n"
                "Record-Route: <sip:p1.example.com;lr>\r\n"
                "Via: SIP/2.0/WSS 198.51.100.7;branch=z9hG4bKreinv\r\n"
                "To: <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5\r\n"
                "From: <sip:+15557654321@" DOMAIN ">;tag=gw7tag\r\n"
                "Call-ID: reinvite-1\r\n"
                "CSeq: 8 INVITE\r\n"
                "Contact: <sip:gw@198.51.100.7>\r\n"
                "Content-Type: application/sdp\r\n"
                "Content-Length: 4\r\n"
                "\r\n"
                "v=0\n";
        _cleanup_(sip_message_freep) SipMessage *m = parse_ok(text);
        const char *body = "v=0\r\ns=\xc3\xa9\r\n";
        g_autofree char *resp = sip_build_response(m, 200, "OK", NULL,
                                                   "sip:+19195551234@k2j8x0w3m1qa.invalid;transport=ws",
                                                   "application/sdp", body);
        g_autofree char *expected = g_strdup_printf(
                "SIP/2.0 200 OK\r\n"
                "Record-Route: <sip:p1.example.com;lr>\r\n"
                "Via: SIP/2.0/WSS 198.51.100.7;branch=z9hG4bKreinv\r\n"
                "To: <sip:+19195551234@" DOMAIN ">;tag=a1b2c3d4e5\r\n"
                "From: <sip:+15557654321@" DOMAIN ">;tag=gw7tag\r\n"
                "Call-ID: reinvite-1\r\n"
                "CSeq: 8 INVITE\r\n"
                "Contact: <sip:+19195551234@k2j8x0w3m1qa.invalid;transport=ws>\r\n"
                "Supported: ice,replaces,outbound\r\n"
                "Content-Type: application/sdp\r\n"
                "Content-Length: %zu\r\n"
                "\r\n"
                "%s",
                strlen(body), body);

        assert_string_equal(resp, expected);
        {
                g_autofree char *r488 = sip_build_response(m, 488, NULL, NULL, NULL, NULL, NULL);
                assert_true(g_str_has_prefix(r488, "SIP/2.0 488 Not Acceptable Here\r\nVia: "));
                assert_null(strstr(r488, "Record-Route"));
        }
}

static void test_response_invalid(void **state) {
        _cleanup_(sip_message_freep) SipMessage *req = parse_ok(bye_request);
        _cleanup_(sip_message_freep) SipMessage *resp = parse_ok(resp_180);
        g_autofree char *r405 = sip_build_response(req, 405, NULL, NULL, NULL, NULL, NULL);

        assert_true(has_line(r405, "Allow: " ALLOW));
        assert_true(g_str_has_prefix(r405, "SIP/2.0 405 Method Not Allowed\r\n"));
        assert_null(sip_build_response(NULL, 200, "OK", NULL, NULL, NULL, NULL));
        assert_null(sip_build_response(resp, 200, "OK", NULL, NULL, NULL, NULL));
        assert_null(sip_build_response(req, 99, "OK", NULL, NULL, NULL, NULL));
        assert_null(sip_build_response(req, 700, "OK", NULL, NULL, NULL, NULL));
        assert_null(sip_build_response(req, 200, "OK\r\nVia: x", NULL, NULL, NULL, NULL));
        assert_null(sip_build_response(req, 200, "OK", "t\r\nX: y", NULL, NULL, NULL));
        assert_null(sip_build_response(req, 200, "OK", NULL, "sip:x\r\nX: y", NULL, NULL));
        assert_null(sip_build_response(req, 200, "OK", NULL, NULL, "application/sdp\r\nX: y", "v=0"));
        assert_null(sip_build_response(req, 200, "OK", NULL, NULL, NULL, "body without type"));
}

/* ---- tables ---- */

static void test_status_to_cause(void **state) {
        static const struct {
                unsigned status;
                const char *cause;
        } table[] = {
                { 100, NULL }, { 180, NULL }, { 200, NULL }, { 299, NULL },
                { 486, "Busy" }, { 600, "Busy" },
                { 403, "Rejected" }, { 603, "Rejected" },
                { 404, "Not Found" }, { 604, "Not Found" },
                { 480, "Unavailable" }, { 410, "Unavailable" },
                { 408, "Unavailable" }, { 430, "Unavailable" },
                { 484, "Address Incomplete" }, { 424, "Address Incomplete" },
                { 488, "Incompatible SDP" }, { 606, "Incompatible SDP" },
                { 401, "Authentication Error" }, { 407, "Authentication Error" },
                { 300, "Redirected" }, { 301, "Redirected" }, { 302, "Redirected" }, { 305, "Redirected" },
                { 380, "Redirected" },
                { 303, "SIP Failure Code" }, { 400, "SIP Failure Code" }, { 487, "SIP Failure Code" },
                { 500, "SIP Failure Code" }, { 503, "SIP Failure Code" }, { 699, "SIP Failure Code" },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(table); i++) {
                const char *c = sip_status_to_cause(table[i].status);
                if (!table[i].cause)
                        assert_null(c);
                else {
                        assert_non_null(c);
                        assert_string_equal(c, table[i].cause);
                }
        }
}

static void test_reason_phrases(void **state) {
        assert_string_equal(sip_status_reason_phrase(100), "Trying");
        assert_string_equal(sip_status_reason_phrase(180), "Ringing");
        assert_string_equal(sip_status_reason_phrase(183), "Session Progress");
        assert_string_equal(sip_status_reason_phrase(200), "OK");
        assert_string_equal(sip_status_reason_phrase(405), "Method Not Allowed");
        assert_string_equal(sip_status_reason_phrase(481), "Call/Transaction Does Not Exist");
        assert_string_equal(sip_status_reason_phrase(486), "Busy Here");
        assert_string_equal(sip_status_reason_phrase(487), "Request Terminated");
        assert_string_equal(sip_status_reason_phrase(488), "Not Acceptable Here");
        assert_string_equal(sip_status_reason_phrase(603), "Decline");
        assert_string_equal(sip_status_reason_phrase(299), "Unknown");
        assert_string_equal(sip_status_reason_phrase(0), "Unknown");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_random_tokens),
                cmocka_unit_test(test_reinvite_and_info),
                cmocka_unit_test(test_random_tokens_spread),
                cmocka_unit_test(test_dialog_new),
                cmocka_unit_test(test_dialog_new_invalid),
                cmocka_unit_test(test_invite_exact),
                cmocka_unit_test(test_invite_header_order),
                cmocka_unit_test(test_invite_branch_and_transport),
                cmocka_unit_test(test_invite_without_display_name),
                cmocka_unit_test(test_invite_display_name_escaped),
                cmocka_unit_test(test_invite_authorization),
                cmocka_unit_test(test_invite_extra_headers),
                cmocka_unit_test(test_invite_extra_headers_rejected),
                cmocka_unit_test(test_invite_content_length_multibyte),
                cmocka_unit_test(test_invite_invalid_arguments),
                cmocka_unit_test(test_ack_2xx_exact),
                cmocka_unit_test(test_ack_2xx_route_set),
                cmocka_unit_test(test_ack_2xx_invalid),
                cmocka_unit_test(test_ack_non2xx_exact),
                cmocka_unit_test(test_ack_non2xx_needs_invite),
                cmocka_unit_test(test_cancel_exact),
                cmocka_unit_test(test_bye_exact),
                cmocka_unit_test(test_bye_reason_and_cseq),
                cmocka_unit_test(test_no_authorization_outside_invite),
                cmocka_unit_test(test_builders_parse_back),
                cmocka_unit_test(test_parse_180),
                cmocka_unit_test(test_parse_200_sdp_record_route),
                cmocka_unit_test(test_parse_body_content_length),
                cmocka_unit_test(test_parse_486),
                cmocka_unit_test(test_parse_100_without_to_tag),
                cmocka_unit_test(test_parse_bye_request),
                cmocka_unit_test(test_parse_compact_forms),
                cmocka_unit_test(test_parse_lenient_forms),
                cmocka_unit_test(test_parse_malformed),
                cmocka_unit_test(test_parse_binary_junk),
                cmocka_unit_test(test_response_to_bye),
                cmocka_unit_test(test_response_echoes_every_via),
                cmocka_unit_test(test_response_to_tag),
                cmocka_unit_test(test_response_with_body),
                cmocka_unit_test(test_response_invalid),
                cmocka_unit_test(test_status_to_cause),
                cmocka_unit_test(test_reason_phrases),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
