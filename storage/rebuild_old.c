/* storage_index_rebuild, part 1: the old index.  What it still knows
 * (UIDs, UIDVALIDITY, GUIDs, keywords, internal dates) is read in one
 * snapshot if it reads cleanly; a corrupt one is moved aside. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

/* Which SQLite failures on the old index mean "unusable, move it aside"
 * rather than "try again later". */
static bool
rc_means_corrupt(int rc)
{
	switch (rc) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_ERROR:	/* no such table/column: not our schema */
	case SQLITE_MISMATCH:
	case SQLITE_FORMAT:
	case SQLITE_SCHEMA:
		return true;
	default:
		return false;
	}
}

/* Maps a failed old-index read: corrupt (ctx->old_corrupt) or TEMP. */
enum storage_err
rebuild_old_fail(struct rebuild_ctx *ctx, int rc, const char *what)
{
	if (rc_means_corrupt(rc))
		ctx->old_corrupt = true;
	storage_set_error(&ctx->tmp, "old index %s: %s", what,
			  ctx->old.db != NULL ? sqlite3_errmsg(ctx->old.db) :
						"unreadable");
	return STORAGE_ERR_TEMP;
}

void
rebuild_db_close(struct storage *st)
{
	if (st->db == NULL)
		return;
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	idx_stmts_free(st);
	sqlite3_close(st->db);
	st->db = NULL;
}

enum storage_err
rebuild_old_open(struct rebuild_ctx *ctx, const char *dbpath)
{
	sqlite3_stmt *stmt = NULL;
	int64_t version = -1;
	const char *res;
	int rc;

	rc = sqlite3_open_v2(dbpath, &ctx->old.db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc != SQLITE_OK)
		return rebuild_old_fail(ctx, rc, "open");
	sqlite3_busy_timeout(ctx->old.db, STORAGE_BUSY_TIMEOUT_MS);
	/* "Reads cleanly": the b-trees are sound and it is our schema. */
	rc = sqlite3_prepare_v2(ctx->old.db, "PRAGMA quick_check", -1, &stmt,
				NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(stmt);
		res = rc == SQLITE_ROW ?
			      (const char *)sqlite3_column_text(stmt, 0) :
			      NULL;
		if (rc == SQLITE_ROW && (res == NULL || strcmp(res, "ok") != 0))
			rc = SQLITE_CORRUPT;
		else if (rc == SQLITE_ROW)
			rc = SQLITE_OK;
		sqlite3_finalize(stmt);
	}
	if (rc != SQLITE_OK)
		return rebuild_old_fail(ctx, rc, "check");
	rc = sqlite3_prepare_v2(ctx->old.db, "PRAGMA user_version", -1, &stmt,
				NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_ROW) {
			version = sqlite3_column_int64(stmt, 0);
			rc = SQLITE_OK;
		}
		sqlite3_finalize(stmt);
	}
	if (rc != SQLITE_OK)
		return rebuild_old_fail(ctx, rc, "version");
	if (version > STORAGE_SCHEMA_VERSION) {
		storage_set_error(&ctx->tmp,
				  "index is from a newer roost version");
		return STORAGE_ERR_TEMP;
	}
	if (version != STORAGE_SCHEMA_VERSION)
		return rebuild_old_fail(ctx, SQLITE_FORMAT, "version");
	/* One snapshot for everything we read from it. */
	if ((rc = sqlite3_exec(ctx->old.db, "BEGIN", NULL, NULL, NULL)) !=
	    SQLITE_OK)
		return rebuild_old_fail(ctx, rc, "begin");
	return STORAGE_OK;
}

/* roost.db -> roost.db.corrupt.<time> (its -wal goes along; -shm is only
 * a cache of the -wal and is dropped). */
int
rebuild_old_move_aside(const char *dbpath)
{
	char aside[RB_PATH_MAX], from[RB_PATH_MAX], to[RB_PATH_MAX];
	long long now = (long long)time(NULL);
	struct stat sb;
	int n = 0;

	do {
		if ((n == 0 ? rb_snprintf(aside, sizeof(aside),
					  "%s.corrupt.%lld", dbpath, now) :
			      rb_snprintf(aside, sizeof(aside),
					  "%s.corrupt.%lld.%d", dbpath, now,
					  n)) < 0)
			return -1;
	} while (lstat(aside, &sb) == 0 && ++n < 100);
	if (rename(dbpath, aside) < 0 && errno != ENOENT)
		return -1;
	if (rb_snprintf(from, sizeof(from), "%s-wal", dbpath) < 0 ||
	    rb_snprintf(to, sizeof(to), "%s-wal", aside) < 0)
		return -1;
	if (rename(from, to) < 0 && errno != ENOENT)
		return -1;
	if (rb_snprintf(from, sizeof(from), "%s-shm", dbpath) < 0)
		return -1;
	if (unlink(from) < 0 && errno != ENOENT)
		return -1;
	log_warning("storage: corrupt index moved aside as %s", aside);
	return 0;
}

void
rebuild_old_msgs_free(struct old_msg *msgs, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		rb_free(&msgs[i].base);
		rb_free(&msgs[i].keywords);
	}
	free(msgs);
}

static int
old_msg_cmp(const void *a, const void *b)
{
	return strcmp(((const struct old_msg *)a)->base,
		      ((const struct old_msg *)b)->base);
}

static const char sql_old_box[] =
	"SELECT id, uidvalidity, uidnext, highestmodseq, special_use,"
	" subscribed FROM mailboxes WHERE name = ?";
static const char sql_old_msgs[] =
	"SELECT uid, base, guid, keywords, internal_date FROM messages"
	" WHERE mailbox_id = ?";
static const char sql_old_max_uidv[] =
	"SELECT IFNULL(MAX(uidvalidity), 0) FROM mailboxes";

int
rebuild_old_box(struct rebuild_ctx *ctx, const char *name,
		struct old_box *box)
{
	sqlite3_stmt *stmt;
	int rc;

	if (ctx->old.db == NULL)
		return 0;
	if ((stmt = idx_stmt(&ctx->old, sql_old_box)) == NULL) {
		(void)rebuild_old_fail(ctx, sqlite3_errcode(ctx->old.db),
				       "read");
		return -1;
	}
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		const unsigned char *use = sqlite3_column_text(stmt, 4);

		box->id = sqlite3_column_int64(stmt, 0);
		box->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 1);
		box->uidnext = (uint32_t)sqlite3_column_int64(stmt, 2);
		box->highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 3);
		(void)rb_strlcpy(box->special_use,
				 use != NULL ? (const char *)use : "",
				 sizeof(box->special_use));
		box->subscribed = sqlite3_column_int(stmt, 5) != 0;
	}
	sqlite3_reset(stmt);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	(void)rebuild_old_fail(ctx, rc, "read");
	return -1;
}

enum storage_err
rebuild_old_msgs(struct rebuild_ctx *ctx, int64_t id,
		 struct old_msg **msgs_r, size_t *count_r)
{
	struct old_msg *msgs = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *stmt;
	int rc;

	*msgs_r = NULL;
	*count_r = 0;
	if ((stmt = idx_stmt(&ctx->old, sql_old_msgs)) == NULL)
		return rebuild_old_fail(ctx, sqlite3_errcode(ctx->old.db),
					"read");
	sqlite3_bind_int64(stmt, 1, id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const unsigned char *base = sqlite3_column_text(stmt, 1);
		const unsigned char *guid = sqlite3_column_text(stmt, 2);
		const unsigned char *kw = sqlite3_column_text(stmt, 3);
		int64_t uid = sqlite3_column_int64(stmt, 0);
		struct old_msg *m;

		/* A UID out of range cannot be kept; the file then counts
		 * as unknown and gets a new one. */
		if (base == NULL || uid <= 0 || uid >= (int64_t)UINT32_MAX)
			continue;
		if (count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			msgs = rb_realloc(msgs, cap * sizeof(*msgs));
		}
		m = &msgs[count++];
		memset(m, 0, sizeof(*m));
		m->base = rb_strdup((const char *)base);
		m->uid = (uint32_t)uid;
		if (guid != NULL)
			(void)rb_strlcpy(m->guid, (const char *)guid,
					 sizeof(m->guid));
		m->keywords = kw != NULL ? rb_strdup((const char *)kw) : NULL;
		m->internal_date = sqlite3_column_int64(stmt, 4);
	}
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE) {
		rebuild_old_msgs_free(msgs, count);
		return rebuild_old_fail(ctx, rc, "read");
	}
	if (count > 0)
		qsort(msgs, count, sizeof(*msgs), old_msg_cmp);
	*msgs_r = msgs;
	*count_r = count;
	return STORAGE_OK;
}

const struct old_msg *
rebuild_old_msg_find(const struct old_msg *msgs, size_t count,
		     const char *base)
{
	struct old_msg key = { .base = (char *)base };

	if (count == 0)
		return NULL;
	return bsearch(&key, msgs, count, sizeof(*msgs), old_msg_cmp);
}


enum storage_err
rebuild_old_max_uidvalidity(struct rebuild_ctx *ctx, uint32_t *max_r)
{
	sqlite3_stmt *stmt;
	int rc;

	*max_r = 0;
	if (ctx->old.db == NULL)
		return STORAGE_OK;
	if ((stmt = idx_stmt(&ctx->old, sql_old_max_uidv)) == NULL)
		return rebuild_old_fail(ctx, sqlite3_errcode(ctx->old.db),
					"read");
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*max_r = (uint32_t)sqlite3_column_int64(stmt, 0);
	sqlite3_reset(stmt);
	return rc == SQLITE_ROW ? STORAGE_OK :
				  rebuild_old_fail(ctx, rc, "read");
}
