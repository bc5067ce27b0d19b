/*
 * roostctl user commands.
 *
 * Secrets read from stdin live in one stack buffer per command and are
 * wiped as soon as auth/ has hashed them; stdio is not used for them so
 * no copy stays behind in a FILE buffer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "admin/admin_int.h"

/* ---- helpers ---- */

/*
 * Reads the first line of stdin into buf (at most size - 1 bytes), strips
 * the line end (LF, CRLF) and refuses an empty line, NUL bytes or a line
 * that does not fit.  On a terminal it prompts on stderr with echo off.
 * Returns an exit code.
 */
static int
read_stdin_line(const char *what, char *buf, size_t size)
{
	struct termios saved, quiet;
	bool tty = isatty(STDIN_FILENO) == 1, echo_off = false;
	bool too_long = false, nul = false;
	size_t len = 0;
	ssize_t n = 0;
	char c;

	if (tty) {
		fprintf(stderr, "%s: ", what);
		fflush(stderr);
		if (tcgetattr(STDIN_FILENO, &saved) == 0) {
			quiet = saved;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			echo_off = tcsetattr(STDIN_FILENO, TCSAFLUSH,
					     &quiet) == 0;
		}
	}
	/* One byte at a time: a few hundred bytes at most, and nothing past
	 * the first line is consumed. */
	for (;;) {
		n = read(STDIN_FILENO, &c, 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == '\n')
			break;
		if (c == '\0')
			nul = true;
		if (len + 1 >= size) {
			too_long = true;
			continue;
		}
		buf[len++] = c;
	}
	if (echo_off) {
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fputc('\n', stderr);
	}
	if (n < 0) {
		OPENSSL_cleanse(buf, size);
		return admin_error(ADMIN_EXIT_FAIL, "reading %s: %s", what,
				   strerror(errno));
	}
	while (len > 0 && buf[len - 1] == '\r')
		len--;
	buf[len] = '\0';
	if (too_long || nul) {
		OPENSSL_cleanse(buf, size);
		return admin_error(ADMIN_EXIT_FAIL, "%s on standard input is "
				   "%s", what, too_long ? "too long" :
				   "not text (NUL byte)");
	}
	if (len == 0)
		return admin_error(ADMIN_EXIT_FAIL, "empty %s on standard "
				   "input", what);
	return ADMIN_EXIT_OK;
}

/* --quota / --quota-messages values: a number (with k/M/G for bytes),
 * "unlimited" (0) or "default" (-1). */
static int
parse_quota(const char *opt, const char *value, bool bytes, int64_t *v_r)
{
	uint64_t v;
	char shown[64];

	if (strcmp(value, "default") == 0 || strcmp(value, "-1") == 0) {
		*v_r = AUTH_QUOTA_DEFAULT;
		return ADMIN_EXIT_OK;
	}
	if (strcmp(value, "unlimited") == 0 || strcmp(value, "none") == 0) {
		*v_r = 0;
		return ADMIN_EXIT_OK;
	}
	if ((bytes ? rb_parse_size(value, &v) :
	     rb_parse_uint(value, 0, UINT64_MAX, &v)) < 0 ||
	    v > (uint64_t)INT64_MAX) {
		return admin_error(ADMIN_EXIT_USAGE,
				   "--%s: invalid value '%s' (a number%s, "
				   "'unlimited' or 'default')", opt,
				   admin_printable(value, shown,
						   sizeof(shown)),
				   bytes ? " with optional k/M/G" : "");
	}
	*v_r = (int64_t)v;
	return ADMIN_EXIT_OK;
}

static int
quota_options(struct admin_ctx *ctx, int64_t *bytes_r, int64_t *messages_r)
{
	int rc;

	if (ctx->opt_set[ADMIN_OPT_QUOTA] &&
	    (rc = parse_quota("quota", ctx->opt_value[ADMIN_OPT_QUOTA], true,
			      bytes_r)) != 0)
		return rc;
	if (ctx->opt_set[ADMIN_OPT_QUOTA_MESSAGES] &&
	    (rc = parse_quota("quota-messages",
			      ctx->opt_value[ADMIN_OPT_QUOTA_MESSAGES], false,
			      messages_r)) != 0)
		return rc;
	return ADMIN_EXIT_OK;
}

/* The quota that applies: the user's own or the config default. */
static uint64_t
effective_quota(int64_t v, uint64_t dflt)
{
	return v == AUTH_QUOTA_DEFAULT ? dflt : (uint64_t)v;
}

static void
json_user_fields(struct admin_ctx *ctx, struct admin_json *j,
		 const struct auth_user *u)
{
	admin_json_key(j, "address");
	admin_json_str(j, u->address);
	admin_json_key(j, "enabled");
	admin_json_bool(j, u->enabled);
	admin_json_key(j, "has_password");
	admin_json_bool(j, u->has_password);
	admin_json_key(j, "quota_bytes");
	admin_json_int(j, u->quota_bytes);
	admin_json_key(j, "quota_messages");
	admin_json_int(j, u->quota_messages);
	admin_json_key(j, "effective_quota_bytes");
	admin_json_uint(j, effective_quota(u->quota_bytes,
					   ctx->cfg.quota.default_bytes));
	admin_json_key(j, "effective_quota_messages");
	admin_json_uint(j, effective_quota(u->quota_messages,
					   ctx->cfg.quota.default_messages));
	admin_json_key(j, "created");
	admin_json_int(j, u->created);
}

static int
no_db_user(const char *canon)
{
	return admin_error(ADMIN_EXIT_FAIL, "%s: no such user", canon);
}

/* ---- user ---- */

int
admin_cmd_user_add(struct admin_ctx *ctx)
{
	char canon[RB_ADDR_MAX + 1], pw[RB_PASSWORD_MAX + 1];
	int64_t qbytes = AUTH_QUOTA_DEFAULT, qmsgs = AUTH_QUOTA_DEFAULT;
	bool with_pw = ctx->opt_set[ADMIN_OPT_PASSWORD_STDIN];
	struct storage *store;
	struct auth_user user;
	struct admin_json j;
	enum storage_err err;
	enum auth_status st;
	const char *error;
	int rc;

	if ((rc = admin_canon_address(ctx, ctx->pos[0], canon,
				      sizeof(canon))) != 0 ||
	    (rc = quota_options(ctx, &qbytes, &qmsgs)) != 0)
		return rc;
	if (with_pw && (rc = read_stdin_line("password", pw, sizeof(pw))) != 0)
		return rc;
	st = auth_user_add(ctx->db, canon, with_pw ? pw : NULL, qbytes, qmsgs);
	OPENSSL_cleanse(pw, sizeof(pw));
	if (st != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);

	/* The store now, so INBOX exists before the first delivery and a
	 * broken data_dir shows up here rather than at the first mail. */
	err = storage_open(ctx->cfg.general.data_dir, canon, true, &store,
			   &error);
	if (err != STORAGE_OK) {
		rc = admin_fail_storage(err, canon, error);
		/* Leave nothing half-made: a retry should start clean. */
		if (auth_user_del(ctx->db, canon) != AUTH_OK) {
			admin_error(rc, "%s: could not undo the user entry: %s",
				    canon, auth_db_error(ctx->db));
		}
		return rc;
	}
	storage_close(&store);

	if (!ctx->json) {
		printf("user %s added%s\n", canon,
		       with_pw ? "" : " (no password: cannot log in)");
		return ADMIN_EXIT_OK;
	}
	if ((st = auth_user_lookup(ctx->db, canon, &user)) != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	admin_json_init(&j, stdout);
	admin_json_obj_begin(&j);
	admin_json_key(&j, "result");
	admin_json_str(&j, "added");
	json_user_fields(ctx, &j, &user);
	admin_json_obj_end(&j);
	admin_json_finish(&j);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_user_del(struct admin_ctx *ctx)
{
	bool keep = ctx->opt_set[ADMIN_OPT_KEEP_MAIL], removed = false;
	char canon[RB_ADDR_MAX + 1];
	struct admin_json j;
	enum storage_err err;
	enum auth_status st;
	const char *error;
	int rc;

	if ((rc = admin_canon_address(ctx, ctx->pos[0], canon,
				      sizeof(canon))) != 0)
		return rc;
	if (ctx->db == NULL)
		return no_db_user(canon);
	/* users.db first: from this moment no delivery accepts mail for
	 * the user, so nothing new lands in the store we remove next. */
	if ((st = auth_user_del(ctx->db, canon)) != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	if (!keep) {
		err = storage_destroy(ctx->cfg.general.data_dir, canon, &error);
		if (err != STORAGE_OK && err != STORAGE_ERR_NOTFOUND) {
			return admin_error(admin_exit_storage(err),
					   "%s: user deleted, but removing the "
					   "mail store failed: %s", canon,
					   error);
		}
		removed = err == STORAGE_OK;
	}
	if (!ctx->json) {
		printf("user %s deleted%s\n", canon, keep ?
		       "; mail store kept" : removed ?
		       " with its mail store" : "");
		return ADMIN_EXIT_OK;
	}
	admin_json_init(&j, stdout);
	admin_json_obj_begin(&j);
	admin_json_key(&j, "result");
	admin_json_str(&j, "deleted");
	admin_json_key(&j, "address");
	admin_json_str(&j, canon);
	admin_json_key(&j, "mail_removed");
	admin_json_bool(&j, removed);
	admin_json_obj_end(&j);
	admin_json_finish(&j);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_user_passwd(struct admin_ctx *ctx)
{
	char canon[RB_ADDR_MAX + 1], pw[RB_PASSWORD_MAX + 1];
	enum auth_status st;
	int rc;

	if ((rc = admin_canon_address(ctx, ctx->pos[0], canon,
				      sizeof(canon))) != 0)
		return rc;
	if (!ctx->opt_set[ADMIN_OPT_PASSWORD_STDIN]) {
		return admin_error(ADMIN_EXIT_USAGE,
				   "user passwd: --password-stdin is "
				   "required (the password is never taken "
				   "from the command line)");
	}
	if (ctx->db == NULL)
		return no_db_user(canon);
	if ((rc = read_stdin_line("password", pw, sizeof(pw))) != 0)
		return rc;
	st = auth_user_set_password(ctx->db, canon, pw);
	OPENSSL_cleanse(pw, sizeof(pw));
	if (st != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	admin_print_done(ctx, "password-set", "address", canon,
		   "password changed");
	return ADMIN_EXIT_OK;
}

int
admin_cmd_user_import_hash(struct admin_ctx *ctx)
{
	char canon[RB_ADDR_MAX + 1], hash[RB_HASH_MAX + 1];
	enum auth_status st;
	int rc;

	if ((rc = admin_canon_address(ctx, ctx->pos[0], canon,
				      sizeof(canon))) != 0)
		return rc;
	if (!ctx->opt_set[ADMIN_OPT_HASH_STDIN]) {
		return admin_error(ADMIN_EXIT_USAGE,
				   "user import-hash: --hash-stdin is "
				   "required");
	}
	if (ctx->db == NULL)
		return no_db_user(canon);
	if ((rc = read_stdin_line("hash", hash, sizeof(hash))) != 0)
		return rc;
	st = auth_user_set_password_hash(ctx->db, canon, hash);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (st != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	admin_print_done(ctx, "password-set", "address", canon,
		   "password hash imported");
	return ADMIN_EXIT_OK;
}

int
admin_cmd_user_set(struct admin_ctx *ctx)
{
	char canon[RB_ADDR_MAX + 1];
	bool quota = ctx->opt_set[ADMIN_OPT_QUOTA] ||
		ctx->opt_set[ADMIN_OPT_QUOTA_MESSAGES];
	bool enable = ctx->opt_set[ADMIN_OPT_ENABLE];
	bool disable = ctx->opt_set[ADMIN_OPT_DISABLE];
	int64_t qbytes, qmsgs;
	struct auth_user user;
	enum auth_status st;
	int rc;

	if ((rc = admin_canon_address(ctx, ctx->pos[0], canon,
				      sizeof(canon))) != 0)
		return rc;
	if (enable && disable) {
		return admin_error(ADMIN_EXIT_USAGE,
				   "user set: --enable and --disable "
				   "exclude each other");
	}
	if (!quota && !enable && !disable) {
		return admin_error(ADMIN_EXIT_USAGE,
				   "user set: nothing to change (give "
				   "--quota, --quota-messages, --enable or "
				   "--disable)");
	}
	if (ctx->db == NULL)
		return no_db_user(canon);
	if ((st = auth_user_lookup(ctx->db, canon, &user)) != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	qbytes = user.quota_bytes;
	qmsgs = user.quota_messages;
	if ((rc = quota_options(ctx, &qbytes, &qmsgs)) != 0)
		return rc;
	if (quota &&
	    (st = auth_user_set_quota(ctx->db, canon, qbytes, qmsgs)) !=
	    AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	if ((enable || disable) &&
	    (st = auth_user_set_enabled(ctx->db, canon, enable)) != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	admin_print_done(ctx, "changed", "address", canon, "user changed");
	return ADMIN_EXIT_OK;
}

int
admin_cmd_user_list(struct admin_ctx *ctx)
{
	static const char *const headers[] = {
		"ADDRESS", "ENABLED", "PASSWORD", "QUOTA", "MSG-QUOTA",
		"CREATED",
	};
	struct auth_user *users = NULL;
	char qb[32], qm[32], created[32];
	struct admin_table t;
	struct admin_json j;
	enum auth_status st;
	size_t count = 0, i;

	if (ctx->db != NULL &&
	    (st = auth_user_list(ctx->db, &users, &count)) != AUTH_OK)
		return admin_fail_auth(ctx, st, "user list");
	if (ctx->json) {
		admin_json_init(&j, stdout);
		admin_json_arr_begin(&j);
		for (i = 0; i < count; i++) {
			admin_json_obj_begin(&j);
			json_user_fields(ctx, &j, &users[i]);
			admin_json_obj_end(&j);
		}
		admin_json_arr_end(&j);
		admin_json_finish(&j);
		free(users);
		return ADMIN_EXIT_OK;
	}
	admin_table_init(&t, headers, RB_N_ELEMENTS(headers));
	for (i = 0; i < count; i++) {
		const char *row[] = {
			users[i].address,
			users[i].enabled ? "yes" : "no",
			users[i].has_password ? "yes" : "no",
			admin_quota_text(users[i].quota_bytes, qb, sizeof(qb)),
			admin_quota_text(users[i].quota_messages, qm,
					 sizeof(qm)),
			admin_time(users[i].created, created, sizeof(created)),
		};
		admin_table_add(&t, row);
	}
	if (count > 0)
		admin_table_print(&t, stdout);
	else
		printf("no users\n");
	admin_table_free(&t);
	free(users);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_user_show(struct admin_ctx *ctx)
{
	char canon[RB_ADDR_MAX + 1], buf[32], created[32];
	struct storage_usage usage;
	struct storage *store = NULL;
	struct auth_user user;
	struct admin_json j;
	enum storage_err err;
	enum auth_status st;
	const char *error;
	bool have_usage = false;
	int rc;

	if ((rc = admin_canon_address(ctx, ctx->pos[0], canon,
				      sizeof(canon))) != 0)
		return rc;
	if (ctx->db == NULL)
		return no_db_user(canon);
	if ((st = auth_user_lookup(ctx->db, canon, &user)) != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	err = storage_open(ctx->cfg.general.data_dir, canon, false, &store,
			   &error);
	if (err == STORAGE_OK) {
		err = storage_usage(store, &usage);
		if (err != STORAGE_OK) {
			rc = admin_fail_storage(err, canon,
						storage_error(store));
			storage_close(&store);
			return rc;
		}
		have_usage = true;
		storage_close(&store);
	} else if (err != STORAGE_ERR_NOTFOUND) {
		return admin_fail_storage(err, canon, error);
	}

	if (ctx->json) {
		admin_json_init(&j, stdout);
		admin_json_obj_begin(&j);
		json_user_fields(ctx, &j, &user);
		admin_json_key(&j, "usage");
		if (have_usage) {
			admin_json_obj_begin(&j);
			admin_json_key(&j, "bytes");
			admin_json_uint(&j, usage.bytes);
			admin_json_key(&j, "messages");
			admin_json_uint(&j, usage.messages);
			admin_json_obj_end(&j);
		} else {
			admin_json_null(&j);
		}
		admin_json_obj_end(&j);
		admin_json_finish(&j);
		return ADMIN_EXIT_OK;
	}
	admin_kv(stdout, "address", "%s", user.address);
	admin_kv(stdout, "enabled", "%s", user.enabled ? "yes" : "no");
	admin_kv(stdout, "password", "%s", user.has_password ? "set" :
		 "none (cannot log in)");
	admin_kv(stdout, "created", "%s",
		 admin_time(user.created, created, sizeof(created)));
	admin_kv(stdout, "quota bytes", "%s (in effect: %" PRIu64 "%s)",
		 admin_quota_text(user.quota_bytes, buf, sizeof(buf)),
		 effective_quota(user.quota_bytes, ctx->cfg.quota.default_bytes),
		 effective_quota(user.quota_bytes,
				 ctx->cfg.quota.default_bytes) == 0 ?
		 " = unlimited" : "");
	admin_kv(stdout, "quota messages", "%s (in effect: %" PRIu64 "%s)",
		 admin_quota_text(user.quota_messages, buf, sizeof(buf)),
		 effective_quota(user.quota_messages,
				 ctx->cfg.quota.default_messages),
		 effective_quota(user.quota_messages,
				 ctx->cfg.quota.default_messages) == 0 ?
		 " = unlimited" : "");
	if (have_usage) {
		admin_kv(stdout, "usage bytes", "%" PRIu64, usage.bytes);
		admin_kv(stdout, "usage messages", "%" PRIu64, usage.messages);
	} else {
		admin_kv(stdout, "usage", "no mail store yet");
	}
	return ADMIN_EXIT_OK;
}
