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

/* ICE restart without webrtcbin's help (webrtcbin 1.22 keeps its ufrag/pwd in re-offers and
 * re-answers and never gathers again; measured recipe in HACKING.md, "ICE restart"): restarts
 * the libnice stream of a bundled one-m-line webrtcbin and sets fresh local credentials, which
 * are returned (ufrag 8, pwd 24 ice-chars) for the new SDP. The local candidates stay valid.
 * Returns 0 or a negative errno (-ENOTSUP: no libnice agent or stream). */
int ice_restart_local(GstElement *webrtcbin, char **ret_ufrag, char **ret_pwd);

/* The local address of the candidate pair ICE selected (the media flows from there), or NULL
 * while there is none. */
char *ice_selected_local_address(GstElement *webrtcbin);

/* The peer's side of a restart: its a=ice-ufrag/a=ice-pwd and a=candidate lines from an SDP
 * (session or first media level) go straight to libnice, which starts checking. Returns the
 * number of candidates set, or a negative errno (-EBADMSG: no credentials in the SDP). */
int ice_set_remote_from_sdp(GstElement *webrtcbin, const char *sdp_text);

/* The a=ice-ufrag of an SDP text (session or first media level), newly allocated, or NULL. */
char *ice_sdp_ufrag(const char *sdp_text);

/* SDP text with a=ice-ufrag/a=ice-pwd replaced and the o= session version incremented (a new
 * offer or answer, RFC 3264 §8). NULL if the text is not SDP. */
char *ice_sdp_with_credentials(const char *sdp_text, const char *ufrag, const char *pwd);

/* Removes every a=candidate line from an SDP media section except UDP host candidates on the
 * given addresses, keeping at most max_candidates of them. bwgw-sim uses it to answer with
 * one candidate, like an ICE-Lite SBC. Returns the number of candidates kept. */
int ice_sdp_keep_udp_candidates(void *gst_sdp_media, guint max_candidates);
