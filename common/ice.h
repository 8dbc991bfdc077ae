/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <gst/gst.h>

/* Restrict the libnice agent inside a webrtcbin to the given local addresses and switch UPnP
 * off (platform-notes §1: libnice ignores loopback while any other interface exists, and its
 * UPnP-IGD probe costs 200 ms per gathering and sends SSDP multicast). Must be called before
 * set-local-description / set-remote-description. addresses may be NULL or empty: then libnice
 * gathers on every interface as usual and only UPnP is turned off.
 * Returns 0 or a negative errno (-EINVAL for an unparsable address, -ENOTSUP when the
 * webrtcbin has no libnice agent). */
int ice_restrict_webrtcbin(GstElement *webrtcbin, const char *const *addresses, gboolean upnp);

/* Removes every a=candidate line from an SDP media section except UDP host candidates on the
 * given addresses, keeping at most max_candidates of them. bwgw-sim uses it to answer with
 * one candidate, like an ICE-Lite SBC. Returns the number of candidates kept. */
int ice_sdp_keep_udp_candidates(void *gst_sdp_media, guint max_candidates);
