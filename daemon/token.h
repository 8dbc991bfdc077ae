/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "macro.h"

/* The OAuth token lifecycle. In client-credentials mode bwcalld fetches the token itself
 * (POST to the token endpoint with Basic auth, grant_type=client_credentials,
 * scope=voice.webrtc; reference/gateway-protocol.md §9), in token-url mode it GETs one from the
 * customer's backend (same {access_token, expires_in} answer, optional API-key header); both
 * refresh ahead of expiry and retry failures with back-off. In external mode it only holds what
 * SetOAuthToken() gave it. The token text never leaves this
 * module except through token_peek(), whose only caller puts it into an INVITE. */

typedef enum TokenState {
        TOKEN_STATE_NONE,
        TOKEN_STATE_VALID,
        TOKEN_STATE_REFRESHING,
        TOKEN_STATE_EXPIRED,
        TOKEN_STATE_ERROR,
        _TOKEN_STATE_MAX,
} TokenState;

typedef struct Token Token;

/* State, expiry or error text changed; new_token when a new token was installed. */
typedef void (*TokenChangedFunc)(Token *t, bool new_token, void *userdata);
/* Outcome of token_acquire(): error 0, or negative errno with a readable message. */
typedef void (*TokenReadyFunc)(Token *t, int error, const char *message, void *userdata);

Token *token_new(const Config *config, TokenChangedFunc changed, void *userdata);
Token *token_free(Token *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Token *, token_free);

TokenState token_get_state(const Token *t);
const char *token_state_to_string(TokenState s);
uint64_t token_get_expires_at(const Token *t); /* CLOCK_REALTIME µs, 0 if unknown */
const char *token_get_error(const Token *t);   /* last failure, human-readable, or NULL */
const char *token_get_mode(const Token *t);    /* "client-credentials", "token-url" or "external" */

/* The current token when it is valid, else NULL. Only for the INVITE's Authorization header:
 * never log it or send it anywhere else. */
const char *token_peek(const Token *t);

/* Makes sure a valid token is at hand, fetching one when the mode allows. ready is always
 * called later from the main loop, never from inside this call. */
void token_acquire(Token *t, TokenReadyFunc ready, void *userdata);

/* RefreshToken(): fetches a new token now (the current one stays in use until it arrives);
 * ready as for token_acquire(). -EOPNOTSUPP in external mode, where nothing can be fetched. */
int token_refresh(Token *t, TokenReadyFunc ready, void *userdata);

/* The gateway refused the current token (401/403 to an INVITE): forget it, so that the next
 * token_acquire() fetches a new one. */
void token_reject(Token *t, const char *reason);

/* SetOAuthToken(): checks the JWT shape (three base64url parts, a JSON payload) and that an
 * "exp" claim, when present, is in the future. -EINVAL with *ret_message set otherwise. */
int token_set_external(Token *t, const char *jwt, char **ret_message);

/* Reads the "exp" claim of a JWT (seconds since the epoch). -EINVAL if the text is not a JWT
 * with a JSON payload, -ENOENT if it has no numeric exp. */
int jwt_get_exp(const char *jwt, int64_t *ret_exp);

/* Parses a token endpoint response body: {"access_token": "...", "expires_in": N or "N", ...}.
 * Returns 0, or -EBADMSG with *ret_message saying what was wrong. */
int token_parse_response(const char *body, char **ret_token, int64_t *ret_expires_in, char **ret_message);
