/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <glib.h>

#include "ice.h"
#include "sdp.h"

static const char offer[] = "v=0\r\n"
                            "o=- 4611731400430051336 2 IN IP4 127.0.0.1\r\n"
                            "s=-\r\n"
                            "t=0 0\r\n"
                            "a=group:BUNDLE 0\r\n"
                            "m=audio 9 UDP/TLS/RTP/SAVPF 111 101\r\n"
                            "c=IN IP4 0.0.0.0\r\n"
                            "a=rtpmap:111 opus/48000/2\r\n"
                            "a=sendrecv\r\n"
                            "a=mid:0\r\n";

static void test_direction_roundtrip(void **state) {
        SdpDirection d = _SDP_DIRECTION_MAX;

        assert_int_equal(sdp_get_direction(offer, &d), 0);
        assert_int_equal(d, SDP_DIRECTION_SENDRECV);

        for (int want = 0; want < _SDP_DIRECTION_MAX; want++) {
                g_autofree char *edited = sdp_with_direction(offer, (SdpDirection) want);
                assert_non_null(edited);
                assert_int_equal(sdp_get_direction(edited, &d), 0);
                assert_int_equal(d, want);
                /* Exactly one direction attribute, the version bumped, the rest kept. */
                assert_non_null(strstr(edited, "o=- 4611731400430051336 3 IN IP4 127.0.0.1"));
                assert_non_null(strstr(edited, "a=rtpmap:111 opus/48000/2"));
                assert_non_null(strstr(edited, "a=mid:0"));
                assert_int_equal(strstr(edited, "a=sendrecv") != NULL, want == SDP_DIRECTION_SENDRECV);
        }
}

static void test_session_level_and_default(void **state) {
        SdpDirection d;
        const char *session_level = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=inactive\r\n"
                                    "m=audio 9 RTP/AVP 0\r\n";
        const char *none = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n";

        assert_int_equal(sdp_get_direction(session_level, &d), 0);
        assert_int_equal(d, SDP_DIRECTION_INACTIVE);
        assert_true(sdp_is_hold(d));
        assert_int_equal(sdp_get_direction(none, &d), 0);
        assert_int_equal(d, SDP_DIRECTION_SENDRECV);
        assert_false(sdp_is_hold(d));
        assert_false(sdp_is_hold(SDP_DIRECTION_RECVONLY)); /* recvonly from the far end is not hold */
        assert_int_equal(sdp_direction_answer(SDP_DIRECTION_SENDONLY), SDP_DIRECTION_RECVONLY);
        assert_int_equal(sdp_direction_answer(SDP_DIRECTION_INACTIVE), SDP_DIRECTION_INACTIVE);
}

/* The ICE restart offer/answer text: new credentials, o= version + 1, everything else as is. */
static void test_ice_credentials(void **state) {
        static const char sdp[] = "v=0\r\no=- 4242 7 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
                                  "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
                                  "a=ice-ufrag:oldufrag\r\na=ice-pwd:oldpasswordoldpassword12\r\n"
                                  "a=candidate:1 1 UDP 2015363327 127.0.0.1 40000 typ host\r\na=sendrecv\r\n";
        g_autofree char *out = ice_sdp_with_credentials(sdp, "NEWUFRAG", "newpasswordnewpassword99");
        g_autofree char *ufrag = NULL;

        assert_non_null(out);
        assert_non_null(strstr(out, "o=- 4242 8 IN IP4 0.0.0.0\r\n"));
        assert_non_null(strstr(out, "a=ice-ufrag:NEWUFRAG\r\n"));
        assert_non_null(strstr(out, "a=ice-pwd:newpasswordnewpassword99\r\n"));
        assert_null(strstr(out, "oldufrag"));
        assert_non_null(strstr(out, "a=candidate:1 1 UDP 2015363327 127.0.0.1 40000 typ host\r\na=sendrecv\r\n"));
        assert_true(g_str_has_suffix(out, "a=sendrecv\r\n") && !g_str_has_suffix(out, "\r\n\r\n"));
        ufrag = ice_sdp_ufrag(out);
        assert_string_equal(ufrag, "NEWUFRAG");
        assert_null(ice_sdp_with_credentials("not sdp", "a", "b"));
        assert_null(ice_sdp_ufrag("garbage"));
}

static void test_bad_sdp(void **state) {
        SdpDirection d;

        assert_int_equal(sdp_get_direction(NULL, &d), -EBADMSG);
        assert_int_equal(sdp_get_direction("v=0\r\nm=video 9 RTP/AVP 96\r\n", &d), -EBADMSG);
        assert_null(sdp_with_direction("", SDP_DIRECTION_SENDONLY));
        assert_null(sdp_with_direction(offer, _SDP_DIRECTION_MAX));
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_direction_roundtrip),
                cmocka_unit_test(test_session_level_and_default),
                cmocka_unit_test(test_bad_sdp),
                cmocka_unit_test(test_ice_credentials),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
