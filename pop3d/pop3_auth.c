/*
 * POP3 AUTHORIZATION state: USER/PASS (RFC 1939 §7), AUTH (RFC 5034),
 * STLS (RFC 2595 §4) and CAPA (RFC 2449 §5).
 *
 * Implementation notes
 * - Plaintext passwords (USER/PASS, AUTH PLAIN/LOGIN) are accepted only
 *   where pop3_plaintext_ok() says so ([auth] allow_plaintext); CAPA then
 *   also stops listing USER and those SASL mechanisms (DESIGN.md).
 * - Every failed login is logged with the remote address (never the
 *   password) and answered after auth_throttle_failure() milliseconds,
 *   from a timer: the worker keeps serving everyone else.  The third
 *   failure closes the session; an address over [auth]
 *   max_failures_per_ip is refused before any password is checked.
 * - auth_verify() runs a KDF (tens of ms) synchronously in the worker;
 *   a login costs that much loop time whatever the outcome.
 */
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "pop3d/pop3d_int.h"

#define REPLY_PLAINTEXT "-ERR [AUTH] Plaintext authentication disallowed " \
	"on non-secure connections (use STLS)"
#define REPLY_AUTH_FAILED "-ERR [AUTH] Authentication failed"

static const char *
throttle_key(const struct pop3_session *s)
{
	/* unix-socket peers share one key */
	return s->client_addr[0] != '\0' ? s->client_addr : "local";
}

/* The users.db handle of the worker; opened on first use so that a
 * daemon started before the first `roostctl user add` still works. */
static struct auth_db *
worker_db(struct pop3_session *s)
{
	struct pop3_worker *w = s->worker;
	char path[RB_PATH_MAX];
	const char *error;

	if (w->db != NULL)
		return w->db;
	if (rb_snprintf(path, sizeof(path), "%s/users.db",
			w->cfg->general.data_dir) < 0) {
		SLOG_ERROR(s, "error=\"users.db path too long\"");
		return NULL;
	}
	if (auth_db_open(path, false, w->cfg->auth.localpart_case_sensitive,
			 &w->db, &error) != AUTH_OK) {
		SLOG_ERROR(s, "error=\"cannot open %s: %s\"", path, error);
		w->db = NULL;
	}
	return w->db;
}

/* Refuses before a password is even looked at when the address has
 * failed too often.  True when refused (and closing). */
static bool
throttled(struct pop3_session *s)
{
	if (!auth_throttle_blocked(s->worker->throttle, throttle_key(s),
				   time(NULL)))
		return false;
	SLOG_WARNING(s, "event=auth-blocked");
	pop3_session_close(s, "auth-blocked", "-ERR [SYS/TEMP] Too many "
			   "failed logins from your address, try again later");
	return true;
}

static void
login_failed(struct pop3_session *s, const char *user, const char *method)
{
	char esc[RB_ADDR_MAX + 16];
	unsigned ms;
	bool close;

	s->auth_failures++;
	(void)rb_log_escape(user, strlen(user), esc, sizeof(esc));
	ms = auth_throttle_failure(s->worker->throttle, throttle_key(s),
				   time(NULL));
	close = s->auth_failures >= RB_POP3_AUTH_FAILURES_MAX;
	SLOG_INFO(s, "event=auth-failed user=\"%s\" method=%s failures=%u "
		  "delay_ms=%u", esc, method, s->auth_failures, ms);
	pop3_session_delay_reply(s, ms, REPLY_AUTH_FAILED, close);
}

static void
login_temp(struct pop3_session *s)
{
	pop3_reply(s, "-ERR [SYS/TEMP] Temporary authentication failure, try "
		   "again later");
}

static void
login_ok(struct pop3_session *s, const char *address, const char *method)
{
	auth_throttle_success(s->worker->throttle, throttle_key(s));
	(void)rb_strlcpy(s->user, address, sizeof(s->user));
	if (pop3_maildrop_open(s, address) < 0)
		return;
	s->logged_in = true;
	pop3_session_set_state(s, POP3_STATE_TRANSACTION);
	pop3_session_timeouts(s);
	SLOG_INFO(s, "event=login user=%s method=%s messages=%zu tls=%s",
		  address, method, s->msg_count, s->tls ? "yes" : "no");
	pop3_reply(s, "+OK Logged in, %zu messages", s->msg_count);
}

/* ---- USER / PASS ---- */

void
pop3_cmd_user(struct pop3_session *s, struct pop3_cmd *cmd)
{
	if (!pop3_plaintext_ok(s)) {
		pop3_reply(s, "%s", REPLY_PLAINTEXT);
		return;
	}
	if (rb_strlcpy(s->user, cmd->arg, sizeof(s->user)) < 0) {
		s->have_user = false;
		pop3_reply(s, "-ERR [AUTH] User name too long");
		return;
	}
	s->have_user = true;
	pop3_reply(s, "+OK");
}

void
pop3_cmd_pass(struct pop3_session *s, struct pop3_cmd *cmd)
{
	struct auth_user u;
	struct auth_db *db;
	enum auth_status st;
	char user[RB_ADDR_MAX + 1];
	size_t pwlen = strlen(cmd->arg);

	if (!pop3_plaintext_ok(s)) {
		pop3_reply(s, "%s", REPLY_PLAINTEXT);
		goto wipe;
	}
	if (!s->have_user) {
		pop3_reply(s, "-ERR USER first");
		goto wipe;
	}
	/* RFC 1939 §7: after PASS, successful or not, USER starts over */
	s->have_user = false;
	(void)rb_strlcpy(user, s->user, sizeof(user));
	if (throttled(s))
		goto wipe;
	db = worker_db(s);
	if (db == NULL) {
		login_temp(s);
		goto wipe;
	}
	if (pwlen > RB_PASSWORD_MAX)
		st = AUTH_FAILED;
	else
		st = auth_verify(db, user, cmd->arg, &u);
	OPENSSL_cleanse((char *)cmd->arg, pwlen);
	switch (st) {
	case AUTH_OK:
		login_ok(s, u.address, "USER");
		return;
	case AUTH_TEMP:
		SLOG_ERROR(s, "event=auth-temp error=\"%s\"",
			   auth_db_error(db));
		login_temp(s);
		return;
	default:
		login_failed(s, user, "USER");
		return;
	}
wipe:
	OPENSSL_cleanse((char *)cmd->arg, pwlen);
}

/* ---- AUTH (RFC 5034) ---- */

void
pop3_sasl_end(struct pop3_session *s)
{
	auth_sasl_free(&s->sasl);
	s->sasl_mech[0] = '\0';
	if (s->state == POP3_STATE_SASL)
		pop3_session_set_state(s, POP3_STATE_AUTHORIZATION);
}

static bool
mech_offered(const char *list, const char *mech)
{
	size_t len = strlen(mech);
	const char *p = list;

	while (*p != '\0') {
		size_t n = strcspn(p, " ");

		if (n == len && rb_strncasecmp(p, mech, n) == 0)
			return true;
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

/* Acts on one SASL step's outcome. */
static void
sasl_result(struct pop3_session *s, enum auth_sasl_result r,
	    const void *out, size_t outlen)
{
	char b64[RB_POP3_SASL_LINE_MAX];
	char user[RB_ADDR_MAX + 1];
	char mech[RB_POP3_ARG_MAX + 1];

	switch (r) {
	case AUTH_SASL_CONTINUE:
		/* RFC 5034 §4: "+ " and the base64 challenge, "+ " alone
		 * for an empty one */
		if (outlen > (sizeof(b64) - 1) / 4 * 3) {
			SLOG_ERROR(s, "error=\"SASL challenge too long\"");
			pop3_sasl_end(s);
			login_temp(s);
			return;
		}
		(void)rb_base64_encode(out, outlen, b64, sizeof(b64));
		pop3_reply(s, "+ %s", b64);
		pop3_session_set_state(s, POP3_STATE_SASL);
		return;
	case AUTH_SASL_OK:
		(void)rb_strlcpy(user, auth_sasl_user(s->sasl), sizeof(user));
		(void)rb_strlcpy(mech, s->sasl_mech, sizeof(mech));
		pop3_sasl_end(s);
		login_ok(s, user, mech);
		return;
	case AUTH_SASL_TEMP:
		SLOG_ERROR(s, "event=auth-temp mech=%s", s->sasl_mech);
		pop3_sasl_end(s);
		login_temp(s);
		return;
	case AUTH_SASL_NOMECH:
		pop3_sasl_end(s);
		pop3_reply(s, "-ERR Unsupported authentication mechanism");
		return;
	case AUTH_SASL_BAD:
	case AUTH_SASL_FAILED:
	default:
		/* a malformed exchange counts as a failed login: it is one
		 * more guess as far as throttling is concerned */
		(void)rb_strlcpy(mech, s->sasl_mech, sizeof(mech));
		pop3_sasl_end(s);
		login_failed(s, "", mech);
		return;
	}
}

/* "AUTH" alone: the mechanism list, as many clients (Outlook) expect
 * from the pre-RFC 5034 draft; harmless and widely answered so. */
static void
list_mechanisms(struct pop3_session *s)
{
	const char *p = s->worker->mechs;

	pop3_reply(s, "+OK Supported mechanisms follow");
	if (pop3_plaintext_ok(s)) {
		while (*p != '\0') {
			size_t n = strcspn(p, " ");

			pop3_write(s, p, n);
			pop3_write(s, "\r\n", 2);
			p += n;
			while (*p == ' ')
				p++;
		}
	}
	pop3_write(s, ".\r\n", 3);
}

void
pop3_cmd_auth(struct pop3_session *s, struct pop3_cmd *cmd)
{
	unsigned char ir[RB_POP3_LINE_MAX];
	size_t irlen = 0;
	const void *out;
	size_t outlen;
	struct auth_db *db;
	enum auth_sasl_result r;

	if (cmd->argc == 0) {
		list_mechanisms(s);
		return;
	}
	if (!mech_offered(s->worker->mechs, cmd->arg)) {
		pop3_reply(s, "-ERR Unsupported authentication mechanism");
		return;
	}
	/* PLAIN and LOGIN, all we offer, carry the password in clear */
	if (!pop3_plaintext_ok(s)) {
		pop3_reply(s, "%s", REPLY_PLAINTEXT);
		return;
	}
	if (throttled(s))
		return;
	if (cmd->arg2 != NULL && strcmp(cmd->arg2, "=") != 0 &&
	    rb_base64_decode(cmd->arg2, strlen(cmd->arg2), ir, sizeof(ir),
			     &irlen) < 0) {
		/* RFC 5034 §4: undecodable base64 is an -ERR */
		pop3_reply(s, "-ERR Invalid base64 data");
		return;
	}
	db = worker_db(s);
	if (db == NULL ||
	    auth_sasl_new(db, "pop", s->worker->mechs, NULL, NULL,
			  &s->sasl) != AUTH_OK) {
		login_temp(s);
		return;
	}
	(void)rb_strlcpy(s->sasl_mech, cmd->arg, sizeof(s->sasl_mech));
	/* Cyrus names mechanisms in upper case */
	for (char *c = s->sasl_mech; *c != '\0'; c++)
		*c = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
	r = auth_sasl_start(s->sasl, s->sasl_mech, cmd->arg2 != NULL, ir,
			    irlen, &out, &outlen);
	OPENSSL_cleanse(ir, sizeof(ir));
	if (cmd->arg2 != NULL)
		OPENSSL_cleanse((char *)cmd->arg2, strlen(cmd->arg2));
	sasl_result(s, r, out, outlen);
}

void
pop3_cmd_sasl_response(struct pop3_session *s, struct pop3_cmd *cmd)
{
	unsigned char buf[RB_POP3_SASL_LINE_MAX];
	size_t len = 0, linelen = strlen(cmd->arg);
	const void *out;
	size_t outlen;
	enum auth_sasl_result r;

	if (strcmp(cmd->arg, "*") == 0) {
		/* RFC 5034 §4: the client cancels */
		pop3_sasl_end(s);
		pop3_reply(s, "-ERR Authentication cancelled");
		return;
	}
	if (rb_base64_decode(cmd->arg, linelen, buf, sizeof(buf), &len) < 0) {
		OPENSSL_cleanse((char *)cmd->arg, linelen);
		pop3_sasl_end(s);
		pop3_reply(s, "-ERR Invalid base64 data");
		return;
	}
	OPENSSL_cleanse((char *)cmd->arg, linelen);
	r = auth_sasl_step(s->sasl, buf, len, &out, &outlen);
	OPENSSL_cleanse(buf, len);
	sasl_result(s, r, out, outlen);
}

/* ---- STLS (RFC 2595 §4) ---- */

void
pop3_cmd_stls(struct pop3_session *s, struct pop3_cmd *cmd)
{
	(void)cmd;
	if (s->tls) {
		pop3_reply(s, "-ERR Command not permitted when TLS active");
		return;
	}
	if (s->worker->tls_ctx == NULL) {
		pop3_reply(s, "-ERR TLS not available");
		return;
	}
	pop3_reply(s, "+OK Begin TLS negotiation");
	/* session_input switches once this line is queued */
	s->starttls_pending = true;
}

/* ---- CAPA (RFC 2449 §5) ---- */

void
pop3_cmd_capa(struct pop3_session *s, struct pop3_cmd *cmd)
{
	const struct rb_config *cfg = s->worker->cfg;
	bool authz = s->state == POP3_STATE_AUTHORIZATION;

	(void)cmd;
	pop3_reply(s, "+OK Capability list follows");
	pop3_reply(s, "TOP");
	pop3_reply(s, "UIDL");
	pop3_reply(s, "RESP-CODES");
	pop3_reply(s, "AUTH-RESP-CODE");
	pop3_reply(s, "PIPELINING");
	/* only what can be used here and now (RFC 2449 §5) */
	if (authz && pop3_plaintext_ok(s)) {
		pop3_reply(s, "USER");
		if (s->worker->mechs[0] != '\0')
			pop3_reply(s, "SASL %s", s->worker->mechs);
	}
	if (authz && !s->tls && s->worker->tls_ctx != NULL)
		pop3_reply(s, "STLS");
	if (cfg->pop3.login_delay > 0)
		pop3_reply(s, "LOGIN-DELAY %u", cfg->pop3.login_delay);
	pop3_reply(s, "IMPLEMENTATION roost");
	pop3_write(s, ".\r\n", 3);
}
