/*
 * SASL (RFC 4422) through Cyrus SASL 2.1, verifying against users.db.
 *
 * Implementation notes
 * - Cyrus must never look at /etc/sasldb2, saslauthd or its own config
 *   files for our service: our SASL_CB_GETOPT answers mech_list,
 *   pwcheck_method and auxprop_plugin itself (the callback wins over
 *   /etc/sasl2/roost.conf), and the only auxprop plugin it may use is our
 *   in-process "roost" plugin, which provides no properties.
 * - Password mechanisms (PLAIN RFC 4616, LOGIN) call
 *   SASL_CB_SERVER_USERDB_CHECKPASS, which runs auth_verify().  When our
 *   callback says no, Cyrus falls back to pwcheck_method = auxprop, which
 *   finds nothing in our empty plugin and fails too.  Because the SASL
 *   result codes of that fallback say little, the outcome is decided by
 *   what our callback recorded: TEMP stays TEMP (database trouble must
 *   not look like a wrong password), and success needs our callback to
 *   have said yes for exactly the identity that Cyrus authenticated.
 * - Identities are canonicalised by SASL_CB_CANON_USER with
 *   auth_address_normalize(), so "U@Example.TEST" logs in as
 *   "u@example.test".  SASL_CB_PROXY_POLICY allows an authorization
 *   identity only when it is empty or the authentication identity itself
 *   (no proxy authentication, RFC 4616 §2).
 * - No security layer: max_ssf = 0 (POP3 and IMAP run over TLS instead).
 * - SCRAM-SHA-256 is not offered: Cyrus' scram plugin needs the per-user
 *   "authPassword" secret SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>
 *   (RFC 5802 §3, RFC 7677) from an auxprop plugin, and users.db keeps
 *   only an scrypt hash, from which those keys cannot be derived.
 */
#include <string.h>

#include <openssl/crypto.h>
#include <sasl/sasl.h>
#include <sasl/saslplug.h>

#include "auth/auth.h"

/* Mechanisms we can serve from users.db; a configured one that is not
 * here is silently not offered. */
static const char *const served_mechs[] = { "PLAIN", "LOGIN" };
#define SERVED_MECH_LIST "PLAIN LOGIN"
#define MECHS_MAX 128

struct auth_sasl {
	struct auth_db *db;
	sasl_conn_t *conn;
	sasl_callback_t callbacks[6];
	char mechs[MECHS_MAX];
	/* what the checkpass callback found */
	bool checked;
	enum auth_status status;
	char user[RB_ADDR_MAX + 1];
	bool done;
};

static bool initialized;

static int
cb_getopt(void *context, const char *plugin_name, const char *option,
	  const char **result, unsigned *len)
{
	const char *v = NULL;

	(void)context;
	(void)plugin_name;
	if (strcmp(option, "mech_list") == 0)
		v = SERVED_MECH_LIST;
	else if (strcmp(option, "pwcheck_method") == 0)
		v = "auxprop";
	else if (strcmp(option, "auxprop_plugin") == 0)
		v = "roost";
	else if (strcmp(option, "auto_transition") == 0)
		v = "no";
	if (v == NULL)
		return SASL_FAIL;
	*result = v;
	if (len != NULL)
		*len = (unsigned)strlen(v);
	return SASL_OK;
}

static int
cb_log(void *context, int level, const char *message)
{
	char esc[512];

	(void)context;
	/* TRACE and PASS may carry protocol data and passwords. */
	if (level == SASL_LOG_NONE || level >= SASL_LOG_TRACE ||
	    message == NULL)
		return SASL_OK;
	(void)rb_log_escape(message, strlen(message), esc, sizeof(esc));
	switch (level) {
	case SASL_LOG_ERR:
		log_error("sasl: %s", esc);
		break;
	case SASL_LOG_WARN:
		log_warning("sasl: %s", esc);
		break;
	case SASL_LOG_NOTE:
		log_info("sasl: %s", esc);
		break;
	default:
		/* FAIL too: the protocol logs each failed login itself,
		 * with the session and remote address */
		log_debug("sasl: %s", esc);
		break;
	}
	return SASL_OK;
}

static int
cb_canon_user(sasl_conn_t *conn, void *context, const char *in,
	      unsigned inlen, unsigned flags, const char *user_realm,
	      char *out, unsigned out_max, unsigned *out_len)
{
	struct auth_sasl *s = context;
	char raw[RB_ADDR_MAX + 1], canon[RB_ADDR_MAX + 1];
	const char *use = raw;
	size_t n;

	(void)conn;
	(void)flags;
	(void)user_realm;
	if (inlen == 0 && in != NULL)
		inlen = (unsigned)strlen(in);
	if (in == NULL || inlen > RB_ADDR_MAX ||
	    memchr(in, '\0', inlen) != NULL)
		return SASL_BADPROT;
	memcpy(raw, in, inlen);
	raw[inlen] = '\0';
	/* Not an address: keep it as is, auth_verify() will refuse it with
	 * the same cost and answer as an unknown user. */
	if (inlen > 0 &&
	    auth_address_normalize(s->db, raw, canon, sizeof(canon)) == 0)
		use = canon;
	n = strlen(use);
	if (n >= out_max)
		return SASL_BUFOVER;
	memcpy(out, use, n + 1);
	*out_len = (unsigned)n;
	return SASL_OK;
}

static int
cb_proxy_policy(sasl_conn_t *conn, void *context, const char *requested,
		unsigned rlen, const char *auth_identity, unsigned alen,
		const char *def_realm, unsigned urlen,
		struct propctx *propctx)
{
	(void)context;
	(void)def_realm;
	(void)urlen;
	(void)propctx;
	/* Both sides went through cb_canon_user already. */
	if (requested == NULL || rlen == 0)
		return SASL_OK;
	if (auth_identity != NULL && rlen == alen &&
	    memcmp(requested, auth_identity, rlen) == 0)
		return SASL_OK;
	sasl_seterror(conn, SASL_NOLOG,
		      "authorization identity differs from the "
		      "authentication identity");
	return SASL_NOAUTHZ;
}

static int
cb_checkpass(sasl_conn_t *conn, void *context, const char *user,
	     const char *pass, unsigned passlen, struct propctx *propctx)
{
	struct auth_sasl *s = context;
	char pw[RB_PASSWORD_MAX + 1];
	struct auth_user u;
	enum auth_status st;

	(void)conn;
	(void)propctx;
	s->checked = true;
	s->status = AUTH_FAILED;
	s->user[0] = '\0';
	if (passlen == 0 && pass != NULL)
		passlen = (unsigned)strlen(pass);
	if (user == NULL || pass == NULL || passlen == 0 ||
	    passlen > RB_PASSWORD_MAX || memchr(pass, '\0', passlen) != NULL)
		return SASL_BADAUTH;
	memcpy(pw, pass, passlen);
	pw[passlen] = '\0';
	st = auth_verify(s->db, user, pw, &u);
	OPENSSL_cleanse(pw, sizeof(pw));
	s->status = st;
	if (st == AUTH_OK) {
		(void)rb_strlcpy(s->user, u.address, sizeof(s->user));
		return SASL_OK;
	}
	return st == AUTH_TEMP ? SASL_TRYAGAIN : SASL_BADAUTH;
}

/* ---- the empty auxprop plugin ---- */

static int
auxprop_lookup(void *glob_context, sasl_server_params_t *sparams,
	       unsigned flags, const char *user, unsigned ulen)
{
	(void)glob_context;
	(void)sparams;
	(void)flags;
	(void)user;
	(void)ulen;
	/* Nothing to add: passwords are checked by cb_checkpass. */
	return SASL_OK;
}

static sasl_auxprop_plug_t auxprop_plug = {
	.auxprop_lookup = auxprop_lookup,
	.name = (char *)"roost",
};

static int
auxprop_init(const sasl_utils_t *utils, int max_version, int *out_version,
	     sasl_auxprop_plug_t **plug, const char *plugname)
{
	(void)utils;
	(void)plugname;
	if (max_version < SASL_AUXPROP_PLUG_VERSION)
		return SASL_BADVERS;
	*out_version = SASL_AUXPROP_PLUG_VERSION;
	*plug = &auxprop_plug;
	return SASL_OK;
}

int
auth_sasl_global_init(const char **error_r)
{
	static const sasl_callback_t callbacks[] = {
		{ SASL_CB_GETOPT, (sasl_callback_ft)(void (*)(void))cb_getopt,
		  NULL },
		{ SASL_CB_LOG, (sasl_callback_ft)(void (*)(void))cb_log,
		  NULL },
		{ SASL_CB_LIST_END, NULL, NULL },
	};
	int ret;

	if (initialized)
		return 0;
	ret = sasl_server_init(callbacks, "roost");
	if (ret != SASL_OK) {
		*error_r = sasl_errstring(ret, NULL, NULL);
		return -1;
	}
	ret = sasl_auxprop_add_plugin("roost", auxprop_init);
	if (ret != SASL_OK) {
		*error_r = sasl_errstring(ret, NULL, NULL);
		return -1;
	}
	initialized = true;
	return 0;
}

static bool
mech_in_list(const char *list, const char *mech, size_t len)
{
	const char *p = list;

	while (*p != '\0') {
		size_t n;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (n == len && n > 0 && rb_strncasecmp(p, mech, n) == 0)
			return true;
		p += n;
	}
	return false;
}

/* The configured mechanisms that we serve and Cyrus has loaded, in the
 * configured order. */
static void
offered_mechs(struct auth_sasl *s, const char *configured)
{
	const char *avail = NULL, *p = configured;
	unsigned alen = 0;
	int count = 0;
	size_t used = 0;

	s->mechs[0] = '\0';
	if (sasl_listmech(s->conn, NULL, "", " ", "", &avail, &alen,
			  &count) != SASL_OK || avail == NULL)
		return;
	while (*p != '\0') {
		bool served = false;
		size_t n;

		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		for (size_t i = 0; i < RB_N_ELEMENTS(served_mechs); i++) {
			if (strlen(served_mechs[i]) == n &&
			    rb_strncasecmp(p, served_mechs[i], n) == 0)
				served = true;
		}
		if (served && mech_in_list(avail, p, n) &&
		    !mech_in_list(s->mechs, p, n) &&
		    used + n + 2 <= sizeof(s->mechs)) {
			if (used > 0)
				s->mechs[used++] = ' ';
			for (size_t i = 0; i < n; i++) {
				char c = p[i];

				s->mechs[used++] = c >= 'a' && c <= 'z' ?
					(char)(c - 'a' + 'A') : c;
			}
			s->mechs[used] = '\0';
		}
		p += n;
	}
}

enum auth_status
auth_sasl_new(struct auth_db *db, const char *service, const char *mechanisms,
	      const char *local_ip, const char *remote_ip,
	      struct auth_sasl **sasl_r)
{
	struct auth_sasl *s;
	sasl_security_properties_t props;
	int ret;

	*sasl_r = NULL;
	if (!initialized)
		return AUTH_TEMP;
	s = rb_calloc(1, sizeof(*s));
	s->db = db;
	s->status = AUTH_FAILED;
	s->callbacks[0] = (sasl_callback_t){ SASL_CB_GETOPT,
		(sasl_callback_ft)(void (*)(void))cb_getopt, s };
	s->callbacks[1] = (sasl_callback_t){ SASL_CB_LOG,
		(sasl_callback_ft)(void (*)(void))cb_log, s };
	s->callbacks[2] = (sasl_callback_t){ SASL_CB_CANON_USER,
		(sasl_callback_ft)(void (*)(void))cb_canon_user, s };
	s->callbacks[3] = (sasl_callback_t){ SASL_CB_PROXY_POLICY,
		(sasl_callback_ft)(void (*)(void))cb_proxy_policy, s };
	s->callbacks[4] = (sasl_callback_t){ SASL_CB_SERVER_USERDB_CHECKPASS,
		(sasl_callback_ft)(void (*)(void))cb_checkpass, s };
	s->callbacks[5] = (sasl_callback_t){ SASL_CB_LIST_END, NULL, NULL };
	ret = sasl_server_new(service, NULL, NULL, local_ip, remote_ip,
			      s->callbacks, 0, &s->conn);
	if (ret != SASL_OK) {
		log_error("sasl_server_new failed: %s",
			  sasl_errstring(ret, NULL, NULL));
		free(s);
		return AUTH_TEMP;
	}
	memset(&props, 0, sizeof(props));
	props.min_ssf = 0;
	props.max_ssf = 0;	/* no SASL security layer */
	props.maxbufsize = 0;
	/* plaintext policy is the protocol's (allow_plaintext) */
	props.security_flags = 0;
	if (sasl_setprop(s->conn, SASL_SEC_PROPS, &props) != SASL_OK) {
		sasl_dispose(&s->conn);
		free(s);
		return AUTH_TEMP;
	}
	offered_mechs(s, mechanisms != NULL ? mechanisms : "");
	*sasl_r = s;
	return AUTH_OK;
}

void
auth_sasl_free(struct auth_sasl **sasl)
{
	struct auth_sasl *s = *sasl;

	if (s == NULL)
		return;
	if (s->conn != NULL)
		sasl_dispose(&s->conn);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	*sasl = NULL;
}

const char *
auth_sasl_mechanisms(const struct auth_sasl *sasl)
{
	return sasl->mechs;
}

static enum auth_sasl_result
map_result(struct auth_sasl *s, int ret, const char **out, unsigned outlen,
	   const void **out_r, size_t *outlen_r)
{
	*out_r = NULL;
	*outlen_r = 0;
	switch (ret) {
	case SASL_CONTINUE:
		*out_r = *out != NULL ? *out : "";
		*outlen_r = *out != NULL ? outlen : 0;
		return AUTH_SASL_CONTINUE;
	case SASL_OK: {
		const void *name = NULL;

		/* Fail closed: success only when our checkpass said yes, for
		 * the very identity Cyrus authenticated. */
		if (!s->checked || s->status != AUTH_OK || s->user[0] == '\0')
			return AUTH_SASL_FAILED;
		if (sasl_getprop(s->conn, SASL_USERNAME, &name) != SASL_OK ||
		    name == NULL || strcmp(name, s->user) != 0)
			return AUTH_SASL_FAILED;
		s->done = true;
		return AUTH_SASL_OK;
	}
	default:
		break;
	}
	if (s->checked) {
		if (s->status == AUTH_TEMP)
			return AUTH_SASL_TEMP;
		/* a password was checked: wrong, or right but authzid
		 * refused */
		return AUTH_SASL_FAILED;
	}
	switch (ret) {
	case SASL_BADPROT:
	case SASL_BADPARAM:
	case SASL_BUFOVER:
	case SASL_BADMAC:
		return AUTH_SASL_BAD;
	case SASL_NOMECH:
	case SASL_TOOWEAK:
	case SASL_ENCRYPT:
		return AUTH_SASL_NOMECH;
	case SASL_FAIL:
	case SASL_NOMEM:
	case SASL_TRYAGAIN:
	case SASL_UNAVAIL:
		return AUTH_SASL_TEMP;
	default:
		return AUTH_SASL_FAILED;
	}
}

enum auth_sasl_result
auth_sasl_start(struct auth_sasl *s, const char *mech, bool have_in,
		const void *in, size_t inlen, const void **out_r,
		size_t *outlen_r)
{
	const char *out = NULL;
	unsigned outlen = 0;
	int ret;

	*out_r = NULL;
	*outlen_r = 0;
	if (s->done || !mech_in_list(s->mechs, mech, strlen(mech)))
		return AUTH_SASL_NOMECH;
	if (inlen > UINT32_MAX / 2)
		return AUTH_SASL_BAD;
	s->checked = false;
	s->status = AUTH_FAILED;
	s->user[0] = '\0';
	/* Cyrus: NULL means no initial response, non-NULL with length 0 an
	 * empty one (RFC 4422 §5, "=" in RFC 5034). */
	ret = sasl_server_start(s->conn, mech,
				have_in ? (in != NULL ? in : "") : NULL,
				(unsigned)inlen, &out, &outlen);
	return map_result(s, ret, &out, outlen, out_r, outlen_r);
}

enum auth_sasl_result
auth_sasl_step(struct auth_sasl *s, const void *in, size_t inlen,
	       const void **out_r, size_t *outlen_r)
{
	const char *out = NULL;
	unsigned outlen = 0;
	int ret;

	*out_r = NULL;
	*outlen_r = 0;
	if (s->done)
		return AUTH_SASL_BAD;
	if (inlen > UINT32_MAX / 2)
		return AUTH_SASL_BAD;
	ret = sasl_server_step(s->conn, in != NULL ? in : "",
			       (unsigned)inlen, &out, &outlen);
	return map_result(s, ret, &out, outlen, out_r, outlen_r);
}

const char *
auth_sasl_user(const struct auth_sasl *sasl)
{
	return sasl->done ? sasl->user : NULL;
}
