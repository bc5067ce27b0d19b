/* The per-user SQLite index: opening with our pragmas, the schema, cached
 * prepared statements, transactions and small shared queries.
 *
 * Schema (PRAGMA user_version = STORAGE_SCHEMA_VERSION):
 *   mailboxes  one row per folder; new_mtime/cur_mtime remember the
 *              directories' mtimes (ns) at the last full scan so an
 *              unchanged folder syncs with two stat() calls.
 *   messages   one row per file, keyed (mailbox_id, uid) and unique on
 *              (mailbox_id, base); dir 0 = new/, 1 = cur/; filename is
 *              the current name in that dir.
 *   usage      a single row kept by triggers: the quota check at every
 *              RCPT reads one row instead of summing all messages.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS mailboxes ("
	" id INTEGER PRIMARY KEY,"
	" name TEXT NOT NULL UNIQUE,"
	" uidvalidity INTEGER NOT NULL,"
	" uidnext INTEGER NOT NULL DEFAULT 1,"
	" highestmodseq INTEGER NOT NULL DEFAULT 1,"
	" special_use TEXT NOT NULL DEFAULT '',"
	" subscribed INTEGER NOT NULL DEFAULT 0,"
	" new_mtime INTEGER NOT NULL DEFAULT -1,"
	" cur_mtime INTEGER NOT NULL DEFAULT -1);"
	"CREATE TABLE IF NOT EXISTS messages ("
	" mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),"
	" uid INTEGER NOT NULL,"
	" base TEXT NOT NULL,"
	" dir INTEGER NOT NULL,"
	" filename TEXT NOT NULL,"
	" flags INTEGER NOT NULL DEFAULT 0,"
	" keywords TEXT,"
	" internal_date INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" vsize INTEGER NOT NULL,"
	" modseq INTEGER NOT NULL,"
	" guid TEXT NOT NULL,"
	" PRIMARY KEY (mailbox_id, uid),"
	" UNIQUE (mailbox_id, base)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS usage ("
	" id INTEGER PRIMARY KEY CHECK (id = 1),"
	" bytes INTEGER NOT NULL,"
	" messages INTEGER NOT NULL);"
	"INSERT OR IGNORE INTO usage VALUES (1, 0, 0);"
	"CREATE TRIGGER IF NOT EXISTS messages_usage_ins"
	" AFTER INSERT ON messages BEGIN"
	" UPDATE usage SET bytes = bytes + NEW.size,"
	" messages = messages + 1 WHERE id = 1; END;"
	"CREATE TRIGGER IF NOT EXISTS messages_usage_del"
	" AFTER DELETE ON messages BEGIN"
	" UPDATE usage SET bytes = bytes - OLD.size,"
	" messages = messages - 1 WHERE id = 1; END;"
	"CREATE TRIGGER IF NOT EXISTS messages_usage_upd"
	" AFTER UPDATE OF size ON messages BEGIN"
	" UPDATE usage SET bytes = bytes - OLD.size + NEW.size"
	" WHERE id = 1; END;";

static int
pragma_int(sqlite3 *db, const char *sql, int64_t *value_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*value_r = sqlite3_column_int64(stmt, 0);
	sqlite3_finalize(stmt);
	return rc == SQLITE_ROW ? 0 : -1;
}

int
idx_schema_create(sqlite3 *db)
{
	char sql[64];
	int64_t version;

	/* IMMEDIATE and a second look at user_version: two processes
	 * opening a new store at once must not both create it. */
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	if (pragma_int(db, "PRAGMA user_version", &version) < 0)
		goto fail;
	if (version == STORAGE_SCHEMA_VERSION) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return 0;
	}
	if (version != 0)
		goto fail;
	if (rb_snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
			STORAGE_SCHEMA_VERSION) < 0 ||
	    sqlite3_exec(db, schema_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return 0;
fail:
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

static const char *
open_error(sqlite3 *db, const char *what)
{
	static char buf[256];

	if (rb_snprintf(buf, sizeof(buf), "index %s: %s", what,
			db != NULL ? sqlite3_errmsg(db) : "out of memory") < 0)
		return "index open failed";
	return buf;
}

/* A fresh index file is made by us with mode 0600: SQLite would use the
 * umask, and gives -wal/-shm the mode of the database file.  A -wal or
 * -shm left next to a database that no longer exists belongs to that old
 * database and must not be replayed into the new one.  The check, the
 * cleanup and the creation happen under a lock on the user directory:
 * otherwise a second process creating the same store at the same moment
 * could have its fresh -wal removed under it. */
int
idx_lock_dir(const char *path)
{
	char dir[RB_PATH_MAX];
	char *slash;
	int dfd;

	if (rb_strlcpy(dir, path, sizeof(dir)) < 0 ||
	    (slash = strrchr(dir, '/')) == NULL) {
		errno = ENAMETOOLONG;
		return -1;
	}
	*slash = '\0';
	dfd = open(dir[0] != '\0' ? dir : "/",
		   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	if (flock(dfd, LOCK_EX) < 0) {
		int saved = errno;

		close(dfd);
		errno = saved;
		return -1;
	}
	return dfd;
}

static int
precreate(const char *path)
{
	char aux[RB_PATH_MAX];
	int dfd, fd, ret = 0;

	if (access(path, F_OK) == 0)
		return 0;
	if ((dfd = idx_lock_dir(path)) < 0)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd >= 0) {
		close(fd);
		if (rb_snprintf(aux, sizeof(aux), "%s-wal", path) == 0)
			(void)unlink(aux);
		if (rb_snprintf(aux, sizeof(aux), "%s-shm", path) == 0)
			(void)unlink(aux);
	} else if (errno != EEXIST) {
		ret = -1;
	}
	close(dfd);	/* releases the lock */
	return ret;
}

/*
 * Deliveries open the index, write a few pages and close it.  Without a
 * checkpoint at close (see idx_open) the WAL survives, but once the last
 * handle closes SQLite also forgets how much of it was already copied
 * back, so the WAL would never start over: it would grow by every
 * delivery and every open would re-read all of it.  So a handle that
 * closes while the WAL is large truncates it -- without waiting: if a
 * reader (a POP3 session) holds it, a later close will do it.
 */
void
idx_close(sqlite3 *db, const char *user_dir)
{
	char wal[RB_PATH_MAX];
	struct stat stbuf;

	if (db == NULL)
		return;
	if (rb_snprintf(wal, sizeof(wal), "%s/" STORAGE_INDEX_NAME "-wal",
			user_dir) == 0 &&
	    stat(wal, &stbuf) == 0 &&
	    stbuf.st_size > STORAGE_WAL_TRUNCATE_AT) {
		sqlite3_busy_timeout(db, 0);
		(void)sqlite3_wal_checkpoint_v2(db, NULL,
						SQLITE_CHECKPOINT_TRUNCATE, NULL,
						NULL);
	}
	sqlite3_close(db);
}

int
idx_open(const char *path, bool create, sqlite3 **db_r, const char **error_r)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW;
	sqlite3 *db = NULL;
	int64_t version;

	*db_r = NULL;
	if (create && precreate(path) < 0) {
		*error_r = "index create failed";
		return -1;
	}
	if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
		*error_r = open_error(db, "open");
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, STORAGE_BUSY_TIMEOUT_MS);
	sqlite3_extended_result_codes(db, 0);
	/* A delivery opens and closes the index; checkpointing the WAL (and
	 * deleting it) at every last close would cost two flushes per
	 * message.  So the WAL stays, and is folded in every
	 * STORAGE_WAL_PAGES pages (a few dozen deliveries) and then cut back
	 * to STORAGE_WAL_KEEP bytes: a mailbox costs little disk at rest. */
	(void)sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	(void)sqlite3_wal_autocheckpoint(db, STORAGE_WAL_PAGES);
	/* WAL lets LMTP write while IMAP/POP3 read; NORMAL syncs at
	 * checkpoints only, which is safe in WAL mode (the Maildir, not the
	 * index, is what must survive a power cut). */
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA journal_size_limit=" STORAGE_WAL_KEEP,
			 NULL, NULL, NULL) != SQLITE_OK ||
	    pragma_int(db, "PRAGMA user_version", &version) < 0) {
		*error_r = open_error(db, "setup");
		sqlite3_close(db);
		return -1;
	}
	if (version > STORAGE_SCHEMA_VERSION) {
		*error_r = "index is from a newer roost version";
		sqlite3_close(db);
		return -1;
	}
	if (version != STORAGE_SCHEMA_VERSION && idx_schema_create(db) < 0) {
		*error_r = open_error(db, "schema");
		sqlite3_close(db);
		return -1;
	}
	*db_r = db;
	return 0;
}

/* ---- statements ---- */

sqlite3_stmt *
idx_stmt(struct storage *st, const char *sql)
{
	struct storage_stmt *s;

	for (size_t i = 0; i < st->stmt_count; i++) {
		s = &st->stmts[i];
		if (s->sql == sql) {
			sqlite3_reset(s->stmt);
			sqlite3_clear_bindings(s->stmt);
			return s->stmt;
		}
	}
	/* Every SQL text is a static string in storage/, so the cache has a
	 * fixed number of entries; running out is a bug. */
	RB_CHECK(st->stmt_count < STORAGE_STMT_CACHE);
	s = &st->stmts[st->stmt_count];
	if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
			       &s->stmt, NULL) != SQLITE_OK) {
		(void)idx_fail(st, "prepare");
		sqlite3_finalize(s->stmt);
		s->stmt = NULL;
		return NULL;
	}
	s->sql = sql;
	st->stmt_count++;
	return s->stmt;
}

void
idx_stmts_free(struct storage *st)
{
	for (size_t i = 0; i < st->stmt_count; i++)
		sqlite3_finalize(st->stmts[i].stmt);
	st->stmt_count = 0;
}

enum storage_err
idx_fail(struct storage *st, const char *what)
{
	/* Every SQLite failure is ours, not the peer's: busy, locked, full,
	 * I/O error and even corruption are all "try again later", so mail
	 * is retried and never bounced. */
	storage_set_error(st, "index %s: %s", what, sqlite3_errmsg(st->db));
	return STORAGE_ERR_TEMP;
}

static const char sql_begin[] = "BEGIN IMMEDIATE";
static const char sql_commit[] = "COMMIT";
static const char sql_rollback[] = "ROLLBACK";

static int
exec_cached(struct storage *st, const char *sql)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql);
	int rc;

	if (stmt == NULL)
		return SQLITE_ERROR;
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

enum storage_err
idx_begin(struct storage *st)
{
	if (exec_cached(st, sql_begin) != SQLITE_OK)
		return idx_fail(st, "begin");
	return STORAGE_OK;
}

enum storage_err
idx_commit(struct storage *st)
{
	if (rb_fault("index_commit")) {
		idx_rollback(st);
		storage_set_error(st, "index commit: injected I/O error");
		return STORAGE_ERR_TEMP;
	}
	if (exec_cached(st, sql_commit) != SQLITE_OK) {
		enum storage_err err = idx_fail(st, "commit");

		idx_rollback(st);
		return err;
	}
	return STORAGE_OK;
}

void
idx_rollback(struct storage *st)
{
	if (!sqlite3_get_autocommit(st->db))
		(void)exec_cached(st, sql_rollback);
}

/* ---- shared queries ---- */

static const char sql_mailbox_get[] =
	"SELECT id, uidnext, highestmodseq FROM mailboxes WHERE name = ?";

enum storage_err
idx_mailbox_get(struct storage *st, const char *name, int64_t *id_r,
		uint32_t *uidnext_r, uint64_t *modseq_r)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql_mailbox_get);
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_text(stmt, 1, maildir_name_canon(name), -1,
			  SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		if (id_r != NULL)
			*id_r = sqlite3_column_int64(stmt, 0);
		if (uidnext_r != NULL)
			*uidnext_r = (uint32_t)sqlite3_column_int64(stmt, 1);
		if (modseq_r != NULL)
			*modseq_r = (uint64_t)sqlite3_column_int64(stmt, 2);
	}
	sqlite3_reset(stmt);
	if (rc == SQLITE_ROW)
		return STORAGE_OK;
	if (rc == SQLITE_DONE) {
		storage_set_error(st, "no such mailbox");
		return STORAGE_ERR_NOTFOUND;
	}
	return idx_fail(st, "mailbox lookup");
}

static const char sql_max_uidvalidity[] =
	"SELECT MAX(uidvalidity) FROM mailboxes";

enum storage_err
idx_new_uidvalidity(struct storage *st, uint32_t *uidv_r)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql_max_uidvalidity);
	int64_t max = 0, now = (int64_t)time(NULL);
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		max = sqlite3_column_int64(stmt, 0);
	sqlite3_reset(stmt);
	if (rc != SQLITE_ROW)
		return idx_fail(st, "uidvalidity");
	if (max >= now)
		now = max + 1;
	if (now <= 0 || now > (int64_t)UINT32_MAX) {
		storage_set_error(st, "UIDVALIDITY space exhausted");
		return STORAGE_ERR_TEMP;
	}
	*uidv_r = (uint32_t)now;
	return STORAGE_OK;
}

static const char sql_modseq_bump[] =
	"UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?";
static const char sql_modseq_get[] =
	"SELECT highestmodseq FROM mailboxes WHERE id = ?";

enum storage_err
idx_modseq_bump(struct storage *st, int64_t mailbox_id, uint64_t *modseq_r)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql_modseq_bump);
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return idx_fail(st, "modseq");
	if ((stmt = idx_stmt(st, sql_modseq_get)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*modseq_r = (uint64_t)sqlite3_column_int64(stmt, 0);
	sqlite3_reset(stmt);
	if (rc != SQLITE_ROW)
		return idx_fail(st, "modseq");
	return STORAGE_OK;
}

const char *
idx_special_use(const char *name)
{
	/* RFC 6154 attributes for the names clients create by default, so
	 * a fresh store needs no configuration to get them. */
	static const struct {
		const char *name, *use;
	} uses[] = {
		{ "Drafts", "\\Drafts" }, { "Sent", "\\Sent" },
		{ "Trash", "\\Trash" },	  { "Junk", "\\Junk" },
		{ "Archive", "\\Archive" },
	};

	for (size_t i = 0; i < RB_N_ELEMENTS(uses); i++) {
		if (strcmp(name, uses[i].name) == 0)
			return uses[i].use;
	}
	return "";
}

static const char sql_mailbox_insert[] =
	"INSERT INTO mailboxes (name, uidvalidity, special_use, subscribed)"
	" VALUES (?, ?, ?, ?)";

enum storage_err
idx_mailbox_insert(struct storage *st, const char *name, int64_t *id_r)
{
	sqlite3_stmt *stmt;
	enum storage_err err;
	uint32_t uidv;
	int rc;

	if ((err = idx_new_uidvalidity(st, &uidv)) != STORAGE_OK)
		return err;
	if ((stmt = idx_stmt(st, sql_mailbox_insert)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, uidv);
	sqlite3_bind_text(stmt, 3, idx_special_use(name), -1, SQLITE_STATIC);
	/* Only INBOX starts subscribed: clients SUBSCRIBE what they want
	 * to see in LSUB / LIST (SUBSCRIBED) themselves. */
	sqlite3_bind_int(stmt, 4, maildir_is_inbox(name) ? 1 : 0);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return idx_fail(st, "mailbox insert");
	if (id_r != NULL)
		*id_r = sqlite3_last_insert_rowid(st->db);
	return STORAGE_OK;
}

static const char sql_message_insert[] =
	"INSERT INTO messages (mailbox_id, uid, base, dir, filename, flags,"
	" keywords, internal_date, size, vsize, modseq, guid)"
	" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

enum storage_err
idx_message_insert(struct storage *st, const struct idx_msg *m)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql_message_insert);
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	/* SQLite integers are signed 64-bit: sizes and modseqs above
	 * INT64_MAX cannot occur (files are smaller than that). */
	sqlite3_bind_int64(stmt, 1, m->mailbox_id);
	sqlite3_bind_int64(stmt, 2, m->uid);
	sqlite3_bind_text(stmt, 3, m->base, -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 4, (int)m->sub);
	sqlite3_bind_text(stmt, 5, m->filename, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 6, m->flags);
	if (m->keywords != NULL && m->keywords[0] != '\0')
		sqlite3_bind_text(stmt, 7, m->keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 8, m->internal_date);
	sqlite3_bind_int64(stmt, 9, (int64_t)m->size);
	sqlite3_bind_int64(stmt, 10, (int64_t)m->vsize);
	sqlite3_bind_int64(stmt, 11, (int64_t)m->modseq);
	sqlite3_bind_text(stmt, 12, m->guid, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return idx_fail(st, "message insert");
	return STORAGE_OK;
}

static const char sql_mailbox_counters[] =
	"UPDATE mailboxes SET uidnext = MAX(uidnext, ?), highestmodseq = ?"
	" WHERE id = ?";

enum storage_err
idx_mailbox_counters(struct storage *st, int64_t mailbox_id, uint32_t uidnext,
		     uint64_t modseq)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql_mailbox_counters);
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, uidnext);
	sqlite3_bind_int64(stmt, 2, (int64_t)modseq);
	sqlite3_bind_int64(stmt, 3, mailbox_id);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return idx_fail(st, "mailbox update");
	return STORAGE_OK;
}

static const char sql_uidnext_get[] =
	"SELECT uidnext FROM mailboxes WHERE id = ?";

enum storage_err
idx_mailbox_uidnext(struct storage *st, int64_t mailbox_id,
		    uint32_t *uidnext_r)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql_uidnext_get);
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, mailbox_id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*uidnext_r = (uint32_t)sqlite3_column_int64(stmt, 0);
	sqlite3_reset(stmt);
	if (rc == SQLITE_ROW)
		return STORAGE_OK;
	if (rc == SQLITE_DONE) {
		storage_set_error(st, "no such mailbox");
		return STORAGE_ERR_NOTFOUND;
	}
	return idx_fail(st, "uidnext");
}
