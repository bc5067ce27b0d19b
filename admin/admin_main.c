/*
 * roostctl: command table, argument parsing and the run context.
 *
 * Implementation notes:
 * - Everything on the command line is parsed and checked (including
 *   --help) before the config is read, so help and usage errors work
 *   without a config and without privileges.
 * - Run as root, we read the config, create data_dir if it is missing
 *   (owned by mail_user, so a fresh install works), then drop to
 *   mail_user for good before opening any file under data_dir: every file
 *   roostctl creates belongs to the user the daemons run as.
 * - Exit codes follow sysexits where one fits: 75 for "try again" (a
 *   locked database), 78 for config trouble; 1 and 2 are the usual
 *   failure / usage split of command line tools.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin_int.h"

static const struct {
	const char *name;
	enum admin_opt opt;
	bool has_arg;
} opt_table[] = {
	{ "password-stdin", ADMIN_OPT_PASSWORD_STDIN, false },
	{ "hash-stdin", ADMIN_OPT_HASH_STDIN, false },
	{ "quota", ADMIN_OPT_QUOTA, true },
	{ "quota-messages", ADMIN_OPT_QUOTA_MESSAGES, true },
	{ "keep-mail", ADMIN_OPT_KEEP_MAIL, false },
	{ "enable", ADMIN_OPT_ENABLE, false },
	{ "disable", ADMIN_OPT_DISABLE, false },
};


/* ---- errors ---- */

int
admin_error(int code, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs(ADMIN_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

static int
usage_error(const struct admin_cmd *cmd, const char *group, const char *fmt,
	    ...) RB_PRINTF(3, 4);

static int
usage_error(const struct admin_cmd *cmd, const char *group, const char *fmt,
	    ...)
{
	va_list ap;

	fputs(ADMIN_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (cmd != NULL) {
		fprintf(stderr, "usage: %s %s %s %s\n", ADMIN_PROG, cmd->group,
			cmd->name, cmd->args);
		fprintf(stderr, "Try '%s %s %s --help'.\n", ADMIN_PROG,
			cmd->group, cmd->name);
	} else if (group != NULL) {
		fprintf(stderr, "Try '%s %s --help'.\n", ADMIN_PROG, group);
	} else {
		fprintf(stderr, "Try '%s --help'.\n", ADMIN_PROG);
	}
	return ADMIN_EXIT_USAGE;
}

int
admin_exit_auth(enum auth_status st)
{
	switch (st) {
	case AUTH_OK:
		return ADMIN_EXIT_OK;
	case AUTH_TEMP:
		return ADMIN_EXIT_TEMP;
	case AUTH_NOTFOUND:
	case AUTH_EXISTS:
	case AUTH_FAILED:
	case AUTH_PARAMS:
		break;
	}
	return ADMIN_EXIT_FAIL;
}

int
admin_exit_storage(enum storage_err err)
{
	switch (err) {
	case STORAGE_OK:
		return ADMIN_EXIT_OK;
	case STORAGE_ERR_TEMP:
		return ADMIN_EXIT_TEMP;
	default:
		return ADMIN_EXIT_FAIL;
	}
}

int
admin_fail_auth(struct admin_ctx *ctx, enum auth_status st, const char *what)
{
	const char *text = ctx->db != NULL ? auth_db_error(ctx->db) :
		auth_status_name(st);

	if (st == AUTH_TEMP) {
		return admin_error(ADMIN_EXIT_TEMP,
				   "%s: %s (temporary failure, try again)",
				   what, text);
	}
	return admin_error(admin_exit_auth(st), "%s: %s", what, text);
}

int
admin_fail_storage(enum storage_err err, const char *what, const char *text)
{
	if (text == NULL || text[0] == '\0')
		text = storage_err_name(err);
	if (err == STORAGE_ERR_TEMP) {
		return admin_error(ADMIN_EXIT_TEMP,
				   "%s: %s (temporary failure, try again)",
				   what, text);
	}
	return admin_error(admin_exit_storage(err), "%s: %s", what, text);
}

int
admin_canon_address(struct admin_ctx *ctx, const char *address, char *canon,
		    size_t size)
{
	char shown[RB_ADDR_MAX + 1], *at;
	int ret;

	if (ctx->db != NULL) {
		ret = auth_address_normalize(ctx->db, address, canon, size);
	} else if (!auth_address_valid(address) ||
		   rb_strlcpy(canon, address, size) < 0) {
		ret = -1;
	} else {
		/* No users.db yet: the same rule auth/ applies. */
		at = strchr(canon, '@');
		rb_str_lower(at + 1);
		if (!ctx->cfg.auth.localpart_case_sensitive) {
			*at = '\0';
			rb_str_lower(canon);
			*at = '@';
		}
		ret = 0;
	}
	if (ret < 0) {
		return admin_error(ADMIN_EXIT_USAGE,
				   "invalid address '%s' (expected "
				   "local@domain)",
				   admin_printable(address, shown,
						   sizeof(shown)));
	}
	return ADMIN_EXIT_OK;
}

int
admin_user_store(struct admin_ctx *ctx, const char *address, bool create,
		 char *canon, size_t canon_size, struct storage **st_r)
{
	struct auth_user user;
	enum storage_err err;
	enum auth_status st;
	const char *error;
	int rc;

	*st_r = NULL;
	if ((rc = admin_canon_address(ctx, address, canon, canon_size)) != 0)
		return rc;
	if (ctx->db == NULL)
		return admin_error(ADMIN_EXIT_FAIL, "%s: no such user", canon);
	st = auth_user_lookup(ctx->db, canon, &user);
	if (st != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	err = storage_open(ctx->cfg.general.data_dir, canon, create, st_r,
			   &error);
	if (err == STORAGE_ERR_NOTFOUND && !create) {
		return admin_error(ADMIN_EXIT_FAIL,
				   "%s: the user has no mail store yet",
				   canon);
	}
	if (err != STORAGE_OK)
		return admin_fail_storage(err, canon, error);
	return ADMIN_EXIT_OK;
}

/* ---- command line ---- */

static const struct admin_group *
find_group(const char *name)
{
	size_t i;

	for (i = 0; i < admin_group_count; i++) {
		if (strcmp(admin_groups[i].name, name) == 0)
			return &admin_groups[i];
	}
	return NULL;
}

static const struct admin_cmd *
find_cmd(const char *group, const char *name)
{
	size_t i;

	for (i = 0; i < admin_cmd_count; i++) {
		if (strcmp(admin_cmds[i].group, group) == 0 &&
		    strcmp(admin_cmds[i].name, name) == 0)
			return &admin_cmds[i];
	}
	return NULL;
}

static bool
is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/*
 * Parses a command's arguments: options may come before, between or
 * after the positional ones (as admins type them); "--" ends options, so
 * a mailbox called "--x" can still be named.  Returns an exit code, or
 * -1 when --help was asked for.
 */
static int
parse_cmd_args(struct admin_ctx *ctx, int argc, char **argv)
{
	const struct admin_cmd *cmd = ctx->cmd;
	bool only_pos = false;
	const char *arg, *eq, *value;
	char shown[64];
	size_t i, nlen;
	int a;

	for (a = 0; a < argc; a++) {
		arg = argv[a];
		if (only_pos || arg[0] != '-' || arg[1] == '\0') {
			if (ctx->npos == cmd->max_args) {
				return usage_error(cmd, NULL,
					"%s %s: too many arguments ('%s')",
					cmd->group, cmd->name,
					admin_printable(arg, shown,
							sizeof(shown)));
			}
			ctx->pos[ctx->npos++] = arg;
			continue;
		}
		if (strcmp(arg, "--") == 0) {
			only_pos = true;
			continue;
		}
		if (is_help(arg))
			return -1;
		if (strcmp(arg, "--json") == 0) {
			ctx->json = true;
			continue;
		}
		if (arg[1] != '-')
			goto unknown;
		eq = strchr(arg + 2, '=');
		nlen = eq != NULL ? (size_t)(eq - arg - 2) : strlen(arg + 2);
		for (i = 0; i < RB_N_ELEMENTS(opt_table); i++) {
			if (strlen(opt_table[i].name) == nlen &&
			    strncmp(opt_table[i].name, arg + 2, nlen) == 0)
				break;
		}
		if (i == RB_N_ELEMENTS(opt_table) ||
		    (cmd->opts & ADMIN_OPTBIT(opt_table[i].opt)) == 0)
			goto unknown;
		if (!opt_table[i].has_arg) {
			if (eq != NULL) {
				return usage_error(cmd, NULL,
					"option --%s takes no value",
					opt_table[i].name);
			}
			value = NULL;
		} else if (eq != NULL) {
			value = eq + 1;
		} else if (a + 1 < argc) {
			value = argv[++a];
		} else {
			return usage_error(cmd, NULL,
					   "option --%s needs a value",
					   opt_table[i].name);
		}
		if (ctx->opt_set[opt_table[i].opt]) {
			return usage_error(cmd, NULL, "option --%s given twice",
					   opt_table[i].name);
		}
		ctx->opt_set[opt_table[i].opt] = true;
		ctx->opt_value[opt_table[i].opt] = value;
	}
	if (ctx->npos < cmd->min_args) {
		return usage_error(cmd, NULL, "%s %s: missing %s", cmd->group,
				   cmd->name, cmd->argnames[ctx->npos]);
	}
	return ADMIN_EXIT_OK;
unknown:
	return usage_error(cmd, NULL, "%s %s: unknown option '%s'",
			   cmd->group, cmd->name,
			   admin_printable(arg, shown, sizeof(shown)));
}

/* ---- run context ---- */

/*
 * Creates a missing data_dir: parents 0755 (they may be shared, like
 * /var/lib, and mail_user must be able to pass through them), data_dir
 * itself 0750, owned by uid/gid when chown_it.  An existing one is left
 * as it is.
 */
static int
create_data_dir(const char *path, bool chown_it, uid_t uid, gid_t gid)
{
	struct stat sb;

	if (stat(path, &sb) == 0 || errno != ENOENT)
		return 0;
	if (rb_mkdir_p(path, 0755) < 0 || chmod(path, 0750) < 0 ||
	    (chown_it && chown(path, uid, gid) < 0))
		return admin_error(ADMIN_EXIT_TEMP, "cannot create %s: %s",
				   path, strerror(errno));
	return 0;
}

/*
 * Root: create data_dir for mail_user if missing, then drop to mail_user.
 * Not root: nothing to drop; data_dir is made on demand by the commands
 * that write.
 */
static int
prepare_privileges(struct admin_ctx *ctx)
{
	const char *mail_user = ctx->cfg.general.mail_user;
	const char *data_dir = ctx->cfg.general.data_dir;
	const char *error;
	uid_t uid;
	gid_t gid;
	int rc;

	if (geteuid() == 0 && mail_user != NULL) {
		if (rb_user_ids(mail_user, &uid, &gid, &error) < 0) {
			return admin_error(ADMIN_EXIT_CONFIG,
					   "%s: [general] mail_user '%s': %s",
					   ctx->config_path, mail_user, error);
		}
		if ((rc = create_data_dir(data_dir, true, uid, gid)) != 0)
			return rc;
	}
	if (rb_privdrop(mail_user, &error) < 0)
		return admin_error(ADMIN_EXIT_CONFIG, "%s: %s",
				   ctx->config_path, error);
	return ADMIN_EXIT_OK;
}

static int
open_users_db(struct admin_ctx *ctx)
{
	bool create = (ctx->cmd->needs & ADMIN_NEED_DB_CREATE) != 0;
	const char *data_dir = ctx->cfg.general.data_dir;
	enum auth_status st;
	const char *error;
	int rc;

	if (rb_snprintf(ctx->users_db, sizeof(ctx->users_db), "%s/users.db",
			data_dir) < 0)
		return admin_error(ADMIN_EXIT_CONFIG, "data_dir too long");
	if (create && (rc = create_data_dir(data_dir, false, 0, 0)) != 0)
		return rc;
	/* SQLite needs to create users.db-wal/-shm next to users.db even to
	 * read.  Say plainly that this is an ownership problem: otherwise
	 * it surfaces as a "temporary" database failure. */
	if (access(data_dir, W_OK | X_OK) < 0 && errno == EACCES) {
		return admin_error(ADMIN_EXIT_CONFIG,
				   "%s: permission denied for uid %u; data_dir "
				   "must belong to [general] mail_user",
				   data_dir, (unsigned)geteuid());
	}
	st = auth_db_open(ctx->users_db, create,
			  ctx->cfg.auth.localpart_case_sensitive, &ctx->db,
			  &error);
	/* No users.db yet: read commands see an empty database rather than
	 * failing on a fresh install. */
	if (st == AUTH_NOTFOUND && !create)
		return ADMIN_EXIT_OK;
	if (st != AUTH_OK) {
		if (st == AUTH_TEMP) {
			return admin_error(ADMIN_EXIT_TEMP,
					   "%s (temporary failure, try again)",
					   error);
		}
		return admin_error(admin_exit_auth(st), "%s", error);
	}
	return ADMIN_EXIT_OK;
}

static int
run_cmd(struct admin_ctx *ctx)
{
	char *error = NULL;
	int rc;

	/* rb_config_load reads the file over what cfg holds. */
	rb_config_defaults(&ctx->cfg);
	ctx->cfg_loaded = true;
	if (rb_config_load(ctx->config_path, &ctx->cfg, &error) < 0) {
		rc = admin_error(ADMIN_EXIT_CONFIG, "%s", error);
		free(error);
		return rc;
	}
	if ((rc = prepare_privileges(ctx)) != ADMIN_EXIT_OK)
		return rc;
	if (ctx->cmd->needs & (ADMIN_NEED_DB | ADMIN_NEED_DB_CREATE)) {
		if ((rc = open_users_db(ctx)) != ADMIN_EXIT_OK)
			return rc;
	}
	rc = ctx->cmd->run(ctx);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		return admin_error(rc != 0 ? rc : ADMIN_EXIT_FAIL,
				   "writing output: %s", strerror(errno));
	}
	return rc;
}

/* "roostctl help [GROUP [COMMAND]]" */
static int
run_help(int argc, char **argv)
{
	const struct admin_group *group;
	const struct admin_cmd *cmd;

	if (argc == 0) {
		admin_help_main(stdout);
		return ADMIN_EXIT_OK;
	}
	if ((group = find_group(argv[0])) == NULL)
		return usage_error(NULL, NULL, "unknown command '%s'", argv[0]);
	if (argc == 1) {
		admin_help_group(stdout, group);
		return ADMIN_EXIT_OK;
	}
	if ((cmd = find_cmd(argv[0], argv[1])) == NULL) {
		return usage_error(NULL, group->name, "unknown command '%s %s'",
				   argv[0], argv[1]);
	}
	admin_help_cmd(stdout, cmd);
	return ADMIN_EXIT_OK;
}

int
admin_main(int argc, char **argv)
{
	const struct admin_group *group;
	struct admin_ctx ctx;
	char shown[64];
	int a = 1, rc;

	memset(&ctx, 0, sizeof(ctx));
	ctx.config_path = RB_CONFIG_DEFAULT;

	/* Global options, up to the command word. */
	for (; a < argc && argv[a][0] == '-'; a++) {
		const char *arg = argv[a];

		if (is_help(arg)) {
			admin_help_main(stdout);
			return ADMIN_EXIT_OK;
		} else if (strcmp(arg, "--json") == 0) {
			ctx.json = true;
		} else if (strcmp(arg, "-v") == 0 ||
			   strcmp(arg, "--verbose") == 0) {
			ctx.verbose = true;
		} else if (strcmp(arg, "-c") == 0 ||
			   strcmp(arg, "--config") == 0) {
			if (++a == argc)
				return usage_error(NULL, NULL,
						   "option %s needs a FILE",
						   arg);
			ctx.config_path = argv[a];
		} else if (strncmp(arg, "--config=", 9) == 0) {
			ctx.config_path = arg + 9;
		} else if (strncmp(arg, "-c", 2) == 0) {
			ctx.config_path = arg + 2;
		} else {
			return usage_error(NULL, NULL, "unknown option '%s'",
					   admin_printable(arg, shown,
							   sizeof(shown)));
		}
	}
	if (a == argc)
		return usage_error(NULL, NULL, "missing command");
	if (strcmp(argv[a], "help") == 0)
		return run_help(argc - a - 1, argv + a + 1);
	if ((group = find_group(argv[a])) == NULL) {
		return usage_error(NULL, NULL, "unknown command '%s'",
				   admin_printable(argv[a], shown,
						   sizeof(shown)));
	}
	if (++a == argc) {
		return usage_error(NULL, group->name, "%s: missing subcommand",
				   group->name);
	}
	if (is_help(argv[a])) {
		admin_help_group(stdout, group);
		return ADMIN_EXIT_OK;
	}
	if ((ctx.cmd = find_cmd(group->name, argv[a])) == NULL) {
		return usage_error(NULL, group->name,
				   "unknown command '%s %s'", group->name,
				   admin_printable(argv[a], shown,
						   sizeof(shown)));
	}
	rc = parse_cmd_args(&ctx, argc - a - 1, argv + a + 1);
	if (rc < 0) {
		admin_help_cmd(stdout, ctx.cmd);
		return ADMIN_EXIT_OK;
	}
	if (rc != ADMIN_EXIT_OK)
		return rc;

	rb_log_init(ADMIN_PROG, RB_LOG_STDERR,
		    ctx.verbose ? RB_LOG_DEBUG : RB_LOG_WARNING);
	rc = run_cmd(&ctx);
	auth_db_close(&ctx.db);
	if (ctx.cfg_loaded)
		rb_config_free(&ctx.cfg);
	return rc;
}
