/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Standard SIP reason phrases (RFC 3261 and later RFCs; the set JsSIP 3.10.0 knows, plus a few
 * newer codes), shared by bwcalld and bwgw-sim. Returns NULL for a code without a phrase. */
const char *sip_status_phrase(unsigned status);
