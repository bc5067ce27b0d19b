/*
 * admin/ private interface: the command table, the per-run context and
 * the output helpers (aligned tables, a small JSON writer).
 */
#ifndef ROOST_ADMIN_INT_H
#define ROOST_ADMIN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "admin/admin.h"
#include "auth/auth.h"
#include "common/common.h"
#include "storage/storage.h"

#define ADMIN_PROG "roostctl"

/* Positional arguments a command takes at most. */
#define ADMIN_POS_MAX 4
/* Nesting of the JSON we write (we need 3). */
#define ADMIN_JSON_DEPTH 8

/* Command options; a command lists the ones it accepts as a bit mask. */
enum admin_opt {
	ADMIN_OPT_PASSWORD_STDIN,
	ADMIN_OPT_HASH_STDIN,
	ADMIN_OPT_QUOTA,
	ADMIN_OPT_QUOTA_MESSAGES,
	ADMIN_OPT_KEEP_MAIL,
	ADMIN_OPT_ENABLE,
	ADMIN_OPT_DISABLE,
	ADMIN_OPT_COUNT
};
#define ADMIN_OPTBIT(o) (1u << (o))

struct admin_ctx;

/* What a command needs before it runs. */
#define ADMIN_NEED_DB 0x1	/* users.db, must exist (else empty) */
#define ADMIN_NEED_DB_CREATE 0x2 /* users.db, created if missing */

struct admin_cmd {
	const char *group;		/* "user" */
	const char *name;		/* "add" */
	const char *args;		/* synopsis after the name */
	const char *argnames[ADMIN_POS_MAX]; /* required ones, in order */
	unsigned min_args, max_args;
	unsigned opts;			/* ADMIN_OPTBIT mask */
	unsigned needs;			/* ADMIN_NEED_* */
	int (*run)(struct admin_ctx *ctx);
	const char *summary;		/* one line, for lists */
	const char *description;	/* pre-formatted, indented */
	const char *options;		/* pre-formatted, indented, or NULL */
	const char *examples;		/* pre-formatted, indented, or NULL */
};

struct admin_group {
	const char *name;
	const char *summary;
	const char *description;
};

struct admin_ctx {
	const struct admin_cmd *cmd;
	const char *config_path;
	bool json;
	bool verbose;
	const char *pos[ADMIN_POS_MAX];
	unsigned npos;
	bool opt_set[ADMIN_OPT_COUNT];
	const char *opt_value[ADMIN_OPT_COUNT];

	struct rb_config cfg;
	bool cfg_loaded;
	char users_db[RB_PATH_MAX];
	/* NULL for ADMIN_NEED_DB when users.db does not exist yet: read
	 * commands then see an empty database. */
	struct auth_db *db;
};

/* ---- admin_cmds.c ---- */

extern const struct admin_cmd admin_cmds[];
extern const size_t admin_cmd_count;
extern const struct admin_group admin_groups[];
extern const size_t admin_group_count;

/* ---- admin_main.c ---- */

/* "roostctl: <message>" on stderr; returns code. */
int admin_error(int code, const char *fmt, ...) RB_PRINTF(2, 3);
/* Exit code for an auth/storage status. */
int admin_exit_auth(enum auth_status st);
int admin_exit_storage(enum storage_err err);
/* Reports an auth failure: "roostctl: <what>: <db error>". */
int admin_fail_auth(struct admin_ctx *ctx, enum auth_status st,
		    const char *what);
int admin_fail_storage(enum storage_err err, const char *what,
		       const char *text);

/* Checks address syntax and writes the canonical form (exit code 2 with
 * a message when invalid; 0 otherwise). */
int admin_canon_address(struct admin_ctx *ctx, const char *address,
			char *canon, size_t size);
/* The user's store after checking the user exists in users.db; returns an
 * exit code (0 with *st_r set). */
int admin_user_store(struct admin_ctx *ctx, const char *address,
		     bool create, char *canon, size_t canon_size,
		     struct storage **st_r);

/* ---- admin_help.c ---- */

void admin_help_main(FILE *out);
void admin_help_group(FILE *out, const struct admin_group *group);
void admin_help_cmd(FILE *out, const struct admin_cmd *cmd);

/* ---- admin_out.c ---- */

/* JSON writer on a FILE: call in document order; commas and escaping are
 * handled here.  Strings are written as valid UTF-8 JSON: invalid bytes
 * become U+FFFD. */
struct admin_json {
	FILE *out;
	unsigned depth;
	unsigned count[ADMIN_JSON_DEPTH];
	bool after_key;
};

void admin_json_init(struct admin_json *j, FILE *out);
void admin_json_obj_begin(struct admin_json *j);
void admin_json_obj_end(struct admin_json *j);
void admin_json_arr_begin(struct admin_json *j);
void admin_json_arr_end(struct admin_json *j);
void admin_json_key(struct admin_json *j, const char *key);
void admin_json_str(struct admin_json *j, const char *s);
void admin_json_int(struct admin_json *j, int64_t v);
void admin_json_uint(struct admin_json *j, uint64_t v);
void admin_json_bool(struct admin_json *j, bool v);
void admin_json_null(struct admin_json *j);
/* Ends the document with a newline. */
void admin_json_finish(struct admin_json *j);
/* Writes s as a JSON string literal (with quotes). */
void admin_json_escape(FILE *out, const char *s);

/* An aligned text table: columns separated by two spaces, a header row,
 * the last column not padded.  Cells are copied; control characters are
 * shown as '?' so a file name cannot drive the terminal. */
struct admin_table {
	size_t ncols;
	const char *const *headers;
	char **cells;		/* nrows * ncols */
	size_t nrows, cap;
};

void admin_table_init(struct admin_table *t, const char *const *headers,
		      size_t ncols);
void admin_table_add(struct admin_table *t, const char *const *row);
void admin_table_print(const struct admin_table *t, FILE *out);
void admin_table_free(struct admin_table *t);

/* A mutation's result: text for people, or {"result": result, key:
 * value} with --json. */
void admin_print_done(struct admin_ctx *ctx, const char *result,
		      const char *key, const char *value, const char *text);
/* "key:   value" lines with the values aligned. */
void admin_kv(FILE *out, const char *key, const char *fmt, ...)
	RB_PRINTF(3, 4);
/* "2026-01-02 03:04:05Z" */
const char *admin_time(int64_t t, char *buf, size_t size);
/* Quota for humans: "default", "unlimited" or the number. */
const char *admin_quota_text(int64_t v, char *buf, size_t size);
/* Copy of s safe for a terminal (controls as '?'), truncated to fit. */
const char *admin_printable(const char *s, char *buf, size_t size);

/* ---- admin_user.c, admin_alias.c, admin_mailbox.c: handlers ---- */

int admin_cmd_user_add(struct admin_ctx *ctx);
int admin_cmd_user_del(struct admin_ctx *ctx);
int admin_cmd_user_passwd(struct admin_ctx *ctx);
int admin_cmd_user_import_hash(struct admin_ctx *ctx);
int admin_cmd_user_set(struct admin_ctx *ctx);
int admin_cmd_user_list(struct admin_ctx *ctx);
int admin_cmd_user_show(struct admin_ctx *ctx);
int admin_cmd_alias_add(struct admin_ctx *ctx);
int admin_cmd_alias_del(struct admin_ctx *ctx);
int admin_cmd_alias_list(struct admin_ctx *ctx);
int admin_cmd_domain_add(struct admin_ctx *ctx);
int admin_cmd_domain_del(struct admin_ctx *ctx);
int admin_cmd_domain_list(struct admin_ctx *ctx);
int admin_cmd_mailbox_list(struct admin_ctx *ctx);
int admin_cmd_mailbox_create(struct admin_ctx *ctx);
int admin_cmd_mailbox_delete(struct admin_ctx *ctx);
int admin_cmd_mailbox_rename(struct admin_ctx *ctx);
int admin_cmd_mailbox_status(struct admin_ctx *ctx);
int admin_cmd_index_check(struct admin_ctx *ctx);
int admin_cmd_index_rebuild(struct admin_ctx *ctx);
int admin_cmd_index_sync(struct admin_ctx *ctx);

#endif
