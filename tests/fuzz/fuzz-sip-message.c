/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hostile SIP text from the gateway: parse, read every accessor, answer requests and feed the
 * parsed values back into the builders (as call.c does with Contact, tags and Record-Route). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <glib.h>

#include "log.h"
#include "sip-message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t sink;

static void touch(const char *s) {
        /* Read the whole string so ASan sees any overread. */
        if (s)
                sink += strlen(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const names[] = {
                "Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m",
                "Content-Type", "c", "Content-Length", "l", "Record-Route", "Route", "Authorization",
                "Supported", "k", "Max-Forwards", "Reason", "X-Unknown", "",
        };
        _cleanup_(sip_message_freep) SipMessage *m = NULL;
        char **rr;

        log_set_max_level(LOG_CRIT); /* parse failures log at debug level; keep the run quiet */

        if (sip_message_parse((const char *) data, size, &m) < 0)
                return 0;

        touch(sip_message_method(m));
        sink += sip_message_status(m);
        touch(sip_message_reason_phrase(m));
        touch(sip_message_call_id(m));
        sink += sip_message_cseq_number(m);
        touch(sip_message_cseq_method(m));
        touch(sip_message_from_tag(m));
        touch(sip_message_to_tag(m));
        touch(sip_message_via_branch(m));
        touch(sip_message_contact_uri(m));
        touch(sip_message_content_type(m));
        touch(sip_message_body(m));
        sink += sip_message_body_length(m);
        for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
                touch(sip_message_header(m, names[i]));
        (void) sip_status_to_cause(sip_message_status(m));
        touch(sip_status_reason_phrase(sip_message_status(m)));

        rr = sip_message_record_routes(m);
        for (char **r = rr; r && *r; r++)
                touch(*r);

        if (sip_message_is_request(m)) {
                char *resp;

                resp = sip_build_response(m, 200, "OK", NULL, NULL, NULL, NULL);
                touch(resp);
                g_free(resp);
                resp = sip_build_response(m, 180, NULL, "fuzztag", "sip:u@h.invalid;transport=ws",
                                          "application/sdp", "v=0\r\n");
                touch(resp);
                g_free(resp);
                resp = sip_build_response(m, 405, NULL, sip_message_from_tag(m), NULL, NULL, NULL);
                touch(resp);
                g_free(resp);
        } else {
                /* Use the response the way call.c does: its tag, Contact and Record-Route enter a
                 * dialog and go back out in ACK/BYE. */
                const SipUa ua = {
                        .user = "+19195551234",
                        .domain = "gw.example.com",
                        .contact_host = "abcdefghijkl.invalid",
                        .transport = "WSS",
                };
                _cleanup_(sip_dialog_freep) SipDialog *d = NULL;

                if (sip_dialog_new_outgoing(&ua, "+15557654321", &d) == 0) {
                        char *out = sip_build_invite(&ua, d, "tok", NULL, "v=0\r\n");
                        g_free(out);
                        d->remote_tag = g_strdup(sip_message_to_tag(m));
                        d->remote_target = g_strdup(sip_message_contact_uri(m));
                        d->route_set = rr ? g_strdupv(rr) : NULL;
                        out = sip_build_ack_2xx(&ua, d);
                        touch(out);
                        g_free(out);
                        out = sip_build_ack_non2xx(&ua, d, sip_message_to_tag(m));
                        touch(out);
                        g_free(out);
                        out = sip_build_bye(&ua, d, sip_message_header(m, "Reason"));
                        touch(out);
                        g_free(out);
                }
        }
        sip_strv_free(rr);
        return 0;
}
