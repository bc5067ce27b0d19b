/*
 * users.db: opening, schema, prepared statements and the mapping of
 * SQLite failures onto auth_status.
 *
 * Implementation notes:
 * - Every statement is prepared once at open with bound parameters only;
 *   no SQL text is ever built from input.
 * - Writes run in BEGIN IMMEDIATE transactions so that two writers
 *   serialize on the busy timeout instead of failing at COMMIT with
 *   SQLITE_BUSY after doing their work.
 * - WAL lets deliveries (readers) go on while roostctl writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/auth_int.h"

static const char *const stmt_sql[AUTH_STMT_COUNT] = {
	[AUTH_STMT_BEGIN] = "BEGIN IMMEDIATE",
	[AUTH_STMT_COMMIT] = "COMMIT",
	[AUTH_STMT_ROLLBACK] = "ROLLBACK",
	[AUTH_STMT_USER_GET] =
		"SELECT address, password, quota_bytes, quota_messages,"
		" enabled, created FROM users WHERE address = ?1",
	[AUTH_STMT_USER_INSERT] =
		"INSERT INTO users (address, password, quota_bytes,"
		" quota_messages, enabled, created)"
		" VALUES (?1, ?2, ?3, ?4, 1, ?5)",
	[AUTH_STMT_USER_DELETE] = "DELETE FROM users WHERE address = ?1",
	[AUTH_STMT_USER_SET_PASSWORD] =
		"UPDATE users SET password = ?2 WHERE address = ?1",
	[AUTH_STMT_USER_SET_QUOTA] =
		"UPDATE users SET quota_bytes = ?2, quota_messages = ?3"
		" WHERE address = ?1",
	[AUTH_STMT_USER_SET_ENABLED] =
		"UPDATE users SET enabled = ?2 WHERE address = ?1",
	[AUTH_STMT_USER_LIST] =
		"SELECT address, password, quota_bytes, quota_messages,"
		" enabled, created FROM users ORDER BY address",
	[AUTH_STMT_ALIAS_EXISTS] =
		"SELECT 1 FROM aliases WHERE alias = ?1 LIMIT 1",
	[AUTH_STMT_ALIAS_COUNT] =
		"SELECT count(*) FROM aliases WHERE alias = ?1",
	[AUTH_STMT_ALIAS_INSERT] =
		"INSERT INTO aliases (alias, target) VALUES (?1, ?2)",
	[AUTH_STMT_ALIAS_DELETE_ONE] =
		"DELETE FROM aliases WHERE alias = ?1 AND target = ?2",
	[AUTH_STMT_ALIAS_DELETE_ALL] = "DELETE FROM aliases WHERE alias = ?1",
	[AUTH_STMT_ALIAS_DELETE_TARGET] =
		"DELETE FROM aliases WHERE target = ?1",
	[AUTH_STMT_ALIAS_TARGETS] =
		"SELECT a.target, u.enabled FROM aliases a"
		" JOIN users u ON u.address = a.target"
		" WHERE a.alias = ?1 ORDER BY a.id",
	[AUTH_STMT_ALIAS_LIST] =
		"SELECT alias, target FROM aliases ORDER BY alias, id",
	[AUTH_STMT_DOMAIN_GET] = "SELECT 1 FROM domains WHERE name = ?1",
	[AUTH_STMT_DOMAIN_INSERT] =
		"INSERT OR IGNORE INTO domains (name, created) VALUES (?1, ?2)",
	[AUTH_STMT_DOMAIN_DELETE] = "DELETE FROM domains WHERE name = ?1",
	[AUTH_STMT_DOMAIN_LIST] = "SELECT name FROM domains ORDER BY name",
	/* A scan, but domain deletion is a rare admin action; a domain
	 * column per row would be one more thing to keep consistent. */
	[AUTH_STMT_DOMAIN_IN_USE] =
		"SELECT 1 FROM users"
		" WHERE substr(address, instr(address, '@') + 1) = ?1"
		" UNION ALL SELECT 1 FROM aliases"
		" WHERE substr(alias, instr(alias, '@') + 1) = ?1 LIMIT 1",
};

/*
 * Version 1.  Aliases reference users (ON DELETE CASCADE as a second line
 * of defence; auth_user_del also deletes them explicitly), so an alias can
 * never point at a user that does not exist.  aliases.id keeps the order
 * in which targets were added, which is the order auth_resolve returns.
 */
static const char schema_v1[] =
	"CREATE TABLE users ("
	" address TEXT PRIMARY KEY NOT NULL,"
	" password TEXT,"
	" quota_bytes INTEGER NOT NULL DEFAULT -1,"
	" quota_messages INTEGER NOT NULL DEFAULT -1,"
	" enabled INTEGER NOT NULL DEFAULT 1,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE aliases ("
	" id INTEGER PRIMARY KEY,"
	" alias TEXT NOT NULL,"
	" target TEXT NOT NULL"
	"  REFERENCES users (address) ON DELETE CASCADE,"
	" UNIQUE (alias, target));"
	"CREATE INDEX aliases_target ON aliases (target);"
	"CREATE TABLE domains ("
	" name TEXT PRIMARY KEY NOT NULL,"
	" created INTEGER NOT NULL);"
	"PRAGMA user_version = 1;";

const char *
auth_status_name(enum auth_status status)
{
	switch (status) {
	case AUTH_OK:
		return "OK";
	case AUTH_NOTFOUND:
		return "NOTFOUND";
	case AUTH_EXISTS:
		return "EXISTS";
	case AUTH_FAILED:
		return "FAILED";
	case AUTH_TEMP:
		return "TEMP";
	case AUTH_PARAMS:
		return "PARAMS";
	}
	return "UNKNOWN";
}

enum auth_status
auth_db_set_error(struct auth_db *db, enum auth_status status,
		  const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(db->error, sizeof(db->error), fmt, ap);
	va_end(ap);
	/* A truncated error text is still useful; only a failure is not. */
	if (n < 0)
		rb_strlcpy(db->error, "error", sizeof(db->error));
	return status;
}

enum auth_status
auth_db_fail(struct auth_db *db, int rc, const char *what)
{
	const char *msg = db->sql != NULL ? sqlite3_errmsg(db->sql) :
		sqlite3_errstr(rc);

	auth_db_set_error(db, AUTH_TEMP, "%s: %s (%s)", what, msg,
			  sqlite3_errstr(rc));
	return AUTH_TEMP;
}

const char *
auth_db_error(const struct auth_db *db)
{
	if (db == NULL)
		return "no database";
	return db->error[0] != '\0' ? db->error : "no error";
}

sqlite3_stmt *
auth_db_stmt(struct auth_db *db, enum auth_stmt which)
{
	sqlite3_stmt *stmt = db->stmt[which];

	sqlite3_reset(stmt);
	sqlite3_clear_bindings(stmt);
	return stmt;
}

int
auth_db_bind_text(sqlite3_stmt *stmt, int idx, const char *text)
{
	if (text == NULL)
		return sqlite3_bind_null(stmt, idx);
	return sqlite3_bind_text(stmt, idx, text, -1, SQLITE_TRANSIENT);
}

int
auth_db_column_text(sqlite3_stmt *stmt, int col, char *out, size_t outsize)
{
	const unsigned char *p = sqlite3_column_text(stmt, col);
	int n = sqlite3_column_bytes(stmt, col);

	if (p == NULL || n < 0 || (size_t)n >= outsize) {
		if (outsize > 0)
			out[0] = '\0';
		return -1;
	}
	memcpy(out, p, (size_t)n);
	out[n] = '\0';
	return 0;
}

enum auth_status
auth_db_exec_stmt(struct auth_db *db, sqlite3_stmt *stmt, const char *what)
{
	int rc;

	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		enum auth_status st = auth_db_fail(db, rc, what);

		sqlite3_reset(stmt);
		return st;
	}
	sqlite3_reset(stmt);
	return AUTH_OK;
}

enum auth_status
auth_db_begin(struct auth_db *db)
{
	return auth_db_exec_stmt(db, auth_db_stmt(db, AUTH_STMT_BEGIN),
				 "begin");
}

enum auth_status
auth_db_commit(struct auth_db *db)
{
	enum auth_status st;

	st = auth_db_exec_stmt(db, auth_db_stmt(db, AUTH_STMT_COMMIT),
			       "commit");
	if (st != AUTH_OK)
		auth_db_rollback(db);
	return st;
}

void
auth_db_rollback(struct auth_db *db)
{
	/* Only when a transaction is open: after a failed COMMIT SQLite
	 * may already have rolled back on its own. */
	if (!sqlite3_get_autocommit(db->sql))
		(void)sqlite3_step(auth_db_stmt(db, AUTH_STMT_ROLLBACK));
	sqlite3_reset(db->stmt[AUTH_STMT_ROLLBACK]);
}

/* One-row pragma/query returning an integer. */
static int
query_int(sqlite3 *sql, const char *q, int64_t *value_r, int *rc_r)
{
	sqlite3_stmt *stmt;
	int rc;

	rc = sqlite3_prepare_v2(sql, q, -1, &stmt, NULL);
	if (rc != SQLITE_OK) {
		*rc_r = rc;
		return -1;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		*value_r = sqlite3_column_int64(stmt, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(stmt);
	*rc_r = rc;
	return rc == SQLITE_OK ? 0 : -1;
}

static int
query_text(sqlite3 *sql, const char *q, char *out, size_t outsize, int *rc_r)
{
	sqlite3_stmt *stmt;
	int rc;

	rc = sqlite3_prepare_v2(sql, q, -1, &stmt, NULL);
	if (rc != SQLITE_OK) {
		*rc_r = rc;
		return -1;
	}
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		if (auth_db_column_text(stmt, 0, out, outsize) < 0)
			out[0] = '\0';
		rc = SQLITE_OK;
	}
	sqlite3_finalize(stmt);
	*rc_r = rc;
	return rc == SQLITE_OK ? 0 : -1;
}

/* Creates the schema if user_version says there is none; refuses a
 * newer schema than this code knows. */
static enum auth_status
db_schema(struct auth_db *db, bool create)
{
	int64_t version = 0;
	char *errmsg = NULL;
	int rc;

	if (query_int(db->sql, "PRAGMA user_version", &version, &rc) < 0)
		return auth_db_fail(db, rc, "read schema version");
	if (version == AUTH_SCHEMA_VERSION)
		return AUTH_OK;
	if (version > AUTH_SCHEMA_VERSION) {
		return auth_db_set_error(db, AUTH_TEMP,
			"users.db schema version %lld is newer than this "
			"program (%d)", (long long)version,
			AUTH_SCHEMA_VERSION);
	}
	if (!create) {
		return auth_db_set_error(db, AUTH_NOTFOUND,
					 "users.db has no schema");
	}
	/* Two processes may create the db at once: take the write lock,
	 * then look again. */
	rc = sqlite3_exec(db->sql, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return auth_db_fail(db, rc, "create schema");
	if (query_int(db->sql, "PRAGMA user_version", &version, &rc) < 0) {
		sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
		return auth_db_fail(db, rc, "read schema version");
	}
	if (version == 0) {
		rc = sqlite3_exec(db->sql, schema_v1, NULL, NULL, &errmsg);
		if (rc != SQLITE_OK) {
			auth_db_set_error(db, AUTH_TEMP, "create schema: %s",
					  errmsg != NULL ? errmsg : "?");
			sqlite3_free(errmsg);
			sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
			return AUTH_TEMP;
		}
	}
	rc = sqlite3_exec(db->sql, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		enum auth_status st = auth_db_fail(db, rc, "create schema");

		sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
		return st;
	}
	return AUTH_OK;
}

static enum auth_status
db_configure(struct auth_db *db)
{
	char mode[16];
	int rc;

	rc = sqlite3_busy_timeout(db->sql, AUTH_BUSY_TIMEOUT_MS);
	if (rc != SQLITE_OK)
		return auth_db_fail(db, rc, "busy timeout");
	rc = sqlite3_exec(db->sql, "PRAGMA foreign_keys = ON", NULL, NULL,
			  NULL);
	if (rc != SQLITE_OK)
		return auth_db_fail(db, rc, "foreign keys");
	if (query_text(db->sql, "PRAGMA journal_mode = WAL", mode,
		       sizeof(mode), &rc) < 0)
		return auth_db_fail(db, rc, "journal mode");
	if (rb_strcasecmp(mode, "wal") != 0) {
		return auth_db_set_error(db, AUTH_TEMP,
					 "cannot switch users.db to WAL (%s)",
					 mode);
	}
	/* NORMAL is durable in WAL mode except for the last commits before
	 * a power cut, which for account changes an admin can redo. */
	rc = sqlite3_exec(db->sql, "PRAGMA synchronous = NORMAL", NULL, NULL,
			  NULL);
	if (rc != SQLITE_OK)
		return auth_db_fail(db, rc, "synchronous");
	return AUTH_OK;
}

static enum auth_status
db_prepare(struct auth_db *db)
{
	size_t i;
	int rc;

	for (i = 0; i < AUTH_STMT_COUNT; i++) {
		rc = sqlite3_prepare_v3(db->sql, stmt_sql[i], -1,
					SQLITE_PREPARE_PERSISTENT,
					&db->stmt[i], NULL);
		if (rc != SQLITE_OK)
			return auth_db_fail(db, rc, "prepare");
	}
	return AUTH_OK;
}

/*
 * The file holds password hashes: create it 0600 ourselves before SQLite
 * does (SQLite would use 0644 & ~umask).  SQLite gives the -wal and -shm
 * files the same mode as the database file.
 */
static int
db_precreate(const char *path, const char **error_r)
{
	int fd;

	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	close(fd);
	return 0;
}

/* Process-wide: the header promises the text stays valid until the next
 * call, and the db it belonged to is gone by then. */
static char open_error[512];

static const char *
open_error_set(const char *path, const char *what)
{
	/* Truncation is acceptable for an error text. */
	if (snprintf(open_error, sizeof(open_error), "%s: %s", path,
		     what) < 0)
		rb_strlcpy(open_error, what, sizeof(open_error));
	return open_error;
}

enum auth_status
auth_db_open(const char *path, bool create, bool localpart_case_sensitive,
	     struct auth_db **db_r, const char **error_r)
{
	struct auth_db *db;
	enum auth_status st;
	const char *err;
	struct stat sb;
	int rc;

	*db_r = NULL;
	if (path == NULL || path[0] == '\0') {
		*error_r = "no users.db path";
		return AUTH_PARAMS;
	}
	if (stat(path, &sb) < 0) {
		if (errno != ENOENT) {
			*error_r = open_error_set(path, strerror(errno));
			return AUTH_TEMP;
		}
		if (!create) {
			*error_r = open_error_set(path, "no such file");
			return AUTH_NOTFOUND;
		}
		if (db_precreate(path, &err) < 0) {
			*error_r = open_error_set(path, err);
			return AUTH_TEMP;
		}
	}

	db = rb_calloc(1, sizeof(*db));
	db->localpart_case_sensitive = localpart_case_sensitive;
	rc = sqlite3_open_v2(path, &db->sql,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc != SQLITE_OK) {
		st = auth_db_fail(db, rc, "open");
		goto fail;
	}
	sqlite3_extended_result_codes(db->sql, 1);
	if ((st = db_configure(db)) != AUTH_OK ||
	    (st = db_schema(db, create)) != AUTH_OK ||
	    (st = db_prepare(db)) != AUTH_OK)
		goto fail;
	*db_r = db;
	return AUTH_OK;
fail:
	*error_r = open_error_set(path, db->error);
	auth_db_close(&db);
	return st;
}

void
auth_db_close(struct auth_db **dbp)
{
	struct auth_db *db = *dbp;
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < AUTH_STMT_COUNT; i++)
		sqlite3_finalize(db->stmt[i]);
	if (db->sql != NULL)
		sqlite3_close(db->sql);
	free(db);
	*dbp = NULL;
}

enum auth_status
auth_db_list(struct auth_db *db, sqlite3_stmt *stmt, size_t elem_size,
	     void (*row)(sqlite3_stmt *stmt, void *elem), const char *what,
	     void **list_r, size_t *count_r)
{
	unsigned char *list = NULL;
	size_t count = 0, cap = 0;
	enum auth_status st;
	int rc;

	*list_r = NULL;
	*count_r = 0;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			list = rb_realloc(list, cap * elem_size);
		}
		memset(list + count * elem_size, 0, elem_size);
		row(stmt, list + count * elem_size);
		count++;
	}
	if (rc != SQLITE_DONE) {
		st = auth_db_fail(db, rc, what);
		sqlite3_reset(stmt);
		free(list);
		return st;
	}
	sqlite3_reset(stmt);
	*list_r = list;
	*count_r = count;
	return AUTH_OK;
}
