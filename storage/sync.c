/* Sync: bring a mailbox's index rows in line with its new/ and cur/.
 *
 * Cheap when nothing changed: like Dovecot's maildir uidlist, the mtimes
 * of new/ and cur/ at the last full scan are kept in the index, and a
 * sync that finds both unchanged does nothing else.  A directory touched
 * less than a second before the scan is not trusted (a later change in
 * the same timestamp tick would leave the mtime as it was), so it is
 * stored as unknown and scanned again next time.
 *
 * A full scan runs in one IMMEDIATE transaction: files not indexed get
 * UIDs (by mtime, then name), renamed files update their row (flags set
 * by another tool), rows without a file go away.  readdir() may miss a
 * file that another process renames during the scan, so a row is only
 * dropped if a second listing also lacks it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

struct sync_row {
	uint32_t uid;
	char *base;
	enum maildir_sub sub;
	char *filename;
	uint32_t flags;
	uint64_t modseq;
};

struct sync_new {
	const struct maildir_file *file;
	int64_t mtime_ns;
	uint64_t size;
	uint64_t vsize;
};

struct sync_ctx {
	struct storage *st;
	int64_t mailbox_id;
	char folder[RB_PATH_MAX];
	struct sync_row *rows;
	size_t row_count;
	uint64_t modseq;	/* 0 until the first change bumps it */
};

static int64_t
mtime_ns(const struct stat *sb)
{
	return (int64_t)sb->st_mtim.tv_sec * 1000000000 + sb->st_mtim.tv_nsec;
}

/* Stats folder/new and folder/cur, making a missing one (another tool
 * may have removed an empty directory).  -1 for "do not trust". */
static int
sub_mtimes(const char *folder, int64_t mtimes_r[2])
{
	time_t now = time(NULL);

	for (int i = 0; i < 2; i++) {
		char path[RB_PATH_MAX];
		struct stat sb;

		if (rb_snprintf(path, sizeof(path), "%s/%s", folder,
				maildir_sub_name((enum maildir_sub)i)) < 0)
			return -1;
		if (stat(path, &sb) < 0) {
			if (errno != ENOENT ||
			    (mkdir(path, 0700) < 0 && errno != EEXIST) ||
			    stat(path, &sb) < 0)
				return -1;
		}
		mtimes_r[i] = sb.st_mtim.tv_sec >= now - 1 ? -1 : mtime_ns(&sb);
	}
	return 0;
}

static const char sql_mtimes_get[] =
	"SELECT new_mtime, cur_mtime FROM mailboxes WHERE id = ?";
static const char sql_mtimes_set[] =
	"UPDATE mailboxes SET new_mtime = ?, cur_mtime = ? WHERE id = ?";
static const char sql_rows[] =
	"SELECT uid, base, dir, filename, flags, modseq FROM messages"
	" WHERE mailbox_id = ?";
static const char sql_row_move[] =
	"UPDATE messages SET dir = ?, filename = ?, flags = ?, modseq = ?"
	" WHERE mailbox_id = ? AND uid = ?";
static const char sql_row_delete[] =
	"DELETE FROM messages WHERE mailbox_id = ? AND uid = ?";

static enum storage_err
sync_unchanged(struct storage *st, int64_t id, const int64_t mtimes[2],
	       bool *same_r)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql_mtimes_get);
	int rc;

	*same_r = false;
	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, id);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*same_r = mtimes[0] != -1 && mtimes[1] != -1 &&
			  sqlite3_column_int64(stmt, 0) == mtimes[0] &&
			  sqlite3_column_int64(stmt, 1) == mtimes[1];
	sqlite3_reset(stmt);
	if (rc == SQLITE_DONE) {
		storage_set_error(st, "no such mailbox");
		return STORAGE_ERR_NOTFOUND;
	}
	return rc == SQLITE_ROW ? STORAGE_OK : idx_fail(st, "sync state");
}

static void
rows_free(struct sync_ctx *ctx)
{
	for (size_t i = 0; i < ctx->row_count; i++) {
		rb_free(&ctx->rows[i].base);
		rb_free(&ctx->rows[i].filename);
	}
	rb_free(&ctx->rows);
	ctx->row_count = 0;
}

static enum storage_err
rows_read(struct sync_ctx *ctx)
{
	sqlite3_stmt *stmt = idx_stmt(ctx->st, sql_rows);
	size_t cap = 0;
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, ctx->mailbox_id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct sync_row *r;

		if (ctx->row_count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			ctx->rows = rb_realloc(ctx->rows,
					       cap * sizeof(*ctx->rows));
		}
		r = &ctx->rows[ctx->row_count++];
		r->uid = (uint32_t)sqlite3_column_int64(stmt, 0);
		r->base = rb_strdup((const char *)sqlite3_column_text(stmt, 1));
		r->sub = sqlite3_column_int(stmt, 2) == MAILDIR_CUR ?
				 MAILDIR_CUR : MAILDIR_NEW;
		r->filename = rb_strdup(
			(const char *)sqlite3_column_text(stmt, 3));
		r->flags = (uint32_t)sqlite3_column_int64(stmt, 4);
		r->modseq = (uint64_t)sqlite3_column_int64(stmt, 5);
	}
	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? STORAGE_OK : idx_fail(ctx->st, "sync read");
}

/* The modseq every change of this sync gets: one bump per sync. */
static enum storage_err
sync_modseq(struct sync_ctx *ctx, uint64_t *modseq_r)
{
	enum storage_err err;

	if (ctx->modseq == 0 &&
	    (err = idx_modseq_bump(ctx->st, ctx->mailbox_id, &ctx->modseq)) !=
		    STORAGE_OK)
		return err;
	*modseq_r = ctx->modseq;
	return STORAGE_OK;
}

static enum storage_err
row_moved(struct sync_ctx *ctx, const struct sync_row *r,
	  const struct maildir_file *f)
{
	sqlite3_stmt *stmt;
	uint64_t modseq = r->modseq;
	enum storage_err err;
	int rc;

	if (r->sub == f->sub && strcmp(r->filename, f->name) == 0)
		return STORAGE_OK;
	if (r->flags != f->flags &&
	    (err = sync_modseq(ctx, &modseq)) != STORAGE_OK)
		return err;
	if ((stmt = idx_stmt(ctx->st, sql_row_move)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int(stmt, 1, (int)f->sub);
	sqlite3_bind_text(stmt, 2, f->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, f->flags);
	sqlite3_bind_int64(stmt, 4, (int64_t)modseq);
	sqlite3_bind_int64(stmt, 5, ctx->mailbox_id);
	sqlite3_bind_int64(stmt, 6, r->uid);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? STORAGE_OK : idx_fail(ctx->st, "sync move");
}

static enum storage_err
row_delete(struct sync_ctx *ctx, const struct sync_row *r)
{
	sqlite3_stmt *stmt;
	enum storage_err err;
	uint64_t modseq;
	int rc;

	if ((err = sync_modseq(ctx, &modseq)) != STORAGE_OK)
		return err;
	if ((stmt = idx_stmt(ctx->st, sql_row_delete)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, ctx->mailbox_id);
	sqlite3_bind_int64(stmt, 2, r->uid);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? STORAGE_OK :
				   idx_fail(ctx->st, "sync delete");
}

/* Rows without a file in the first listing: look again before dropping
 * them (see the top of this file). */
static enum storage_err
sync_vanished(struct sync_ctx *ctx, const bool *missing)
{
	struct maildir_list again;
	enum storage_err err = STORAGE_OK;

	if (maildir_list_read(ctx->folder, &again) < 0) {
		storage_set_errno(ctx->st, "listing %s", ctx->folder);
		return STORAGE_ERR_TEMP;
	}
	for (size_t i = 0; i < ctx->row_count && err == STORAGE_OK; i++) {
		const struct maildir_file *f;

		if (!missing[i])
			continue;
		f = maildir_list_find(&again, ctx->rows[i].base);
		err = f != NULL ? row_moved(ctx, &ctx->rows[i], f) :
				  row_delete(ctx, &ctx->rows[i]);
	}
	maildir_list_free(&again);
	return err;
}

static int
new_cmp(const void *a, const void *b)
{
	const struct sync_new *na = a, *nb = b;

	if (na->mtime_ns != nb->mtime_ns)
		return na->mtime_ns < nb->mtime_ns ? -1 : 1;
	return strcmp(na->file->name, nb->file->name);
}

static enum storage_err
sync_add(struct sync_ctx *ctx, struct sync_new *news, size_t count)
{
	uint32_t uidnext;
	enum storage_err err;
	uint64_t modseq;
	int64_t id;

	if (count == 0)
		return STORAGE_OK;
	qsort(news, count, sizeof(*news), new_cmp);
	if ((err = sync_modseq(ctx, &modseq)) != STORAGE_OK)
		return err;
	if ((err = idx_mailbox_uidnext(ctx->st, ctx->mailbox_id, &uidnext)) !=
	    STORAGE_OK)
		return err;
	id = ctx->mailbox_id;
	for (size_t i = 0; i < count; i++) {
		char guid[37];
		struct idx_msg m;

		if (uidnext == 0 || uidnext == UINT32_MAX) {
			storage_set_error(ctx->st, "UID space exhausted");
			return STORAGE_ERR_TEMP;
		}
		memset(&m, 0, sizeof(m));
		storage_guid_new(guid);
		m.mailbox_id = id;
		m.uid = uidnext++;
		m.base = news[i].file->base;
		m.sub = news[i].file->sub;
		m.filename = news[i].file->name;
		m.flags = news[i].file->flags;
		m.size = news[i].size;
		m.vsize = news[i].vsize;
		m.internal_date = news[i].mtime_ns / 1000000000;
		m.modseq = modseq;
		m.guid = guid;
		if ((err = idx_message_insert(ctx->st, &m)) != STORAGE_OK)
			return err;
	}
	return idx_mailbox_counters(ctx->st, id, uidnext, modseq);
}

/* Matches the listing against the rows; collects files without a row. */
static enum storage_err
sync_match(struct sync_ctx *ctx, const struct maildir_list *list)
{
	struct sync_new *news = NULL;
	bool *matched, *missing;
	size_t news_count = 0, nmissing = 0;
	enum storage_err err = STORAGE_OK;

	matched = rb_calloc(list->count + 1, sizeof(*matched));
	missing = rb_calloc(ctx->row_count + 1, sizeof(*missing));
	for (size_t i = 0; i < ctx->row_count && err == STORAGE_OK; i++) {
		const struct maildir_file *f =
			maildir_list_find(list, ctx->rows[i].base);

		if (f == NULL) {
			missing[i] = true;
			nmissing++;
			continue;
		}
		matched[f - list->files] = true;
		err = row_moved(ctx, &ctx->rows[i], f);
	}
	if (err == STORAGE_OK && nmissing > 0)
		err = sync_vanished(ctx, missing);
	if (err == STORAGE_OK)
		news = rb_calloc(list->count + 1, sizeof(*news));
	for (size_t i = 0; i < list->count && err == STORAGE_OK; i++) {
		struct sync_new *n = &news[news_count];

		if (matched[i])
			continue;
		n->file = &list->files[i];
		if (maildir_file_info(ctx->folder, n->file, &n->mtime_ns,
				      &n->size, &n->vsize) == 0) {
			news_count++;
			continue;
		}
		/* Renamed or removed since the listing (the next sync
		 * sees it where it went), or not a regular file (a
		 * symlink could point outside the user's tree). */
		if (errno != ENOENT && errno != EINVAL && errno != ELOOP) {
			storage_set_errno(ctx->st, "reading %s",
					  n->file->name);
			err = STORAGE_ERR_TEMP;
		}
	}
	if (err == STORAGE_OK)
		err = sync_add(ctx, news, news_count);
	rb_free(&news);
	rb_free(&matched);
	rb_free(&missing);
	return err;
}

static enum storage_err
sync_full(struct sync_ctx *ctx, const int64_t mtimes[2])
{
	struct storage *st = ctx->st;
	struct maildir_list list;
	enum storage_err err;
	sqlite3_stmt *stmt;
	int rc;

	/* Listed before the lock: a directory read can be slow, and what
	 * changes meanwhile is caught by the re-listing and the mtimes. */
	if (maildir_list_read(ctx->folder, &list) < 0) {
		storage_set_errno(st, "listing %s", ctx->folder);
		return STORAGE_ERR_TEMP;
	}
	if ((err = idx_begin(st)) != STORAGE_OK) {
		maildir_list_free(&list);
		return err;
	}
	err = rows_read(ctx);
	if (err == STORAGE_OK)
		err = sync_match(ctx, &list);
	if (err == STORAGE_OK) {
		if ((stmt = idx_stmt(st, sql_mtimes_set)) == NULL) {
			err = STORAGE_ERR_TEMP;
		} else {
			sqlite3_bind_int64(stmt, 1, mtimes[0]);
			sqlite3_bind_int64(stmt, 2, mtimes[1]);
			sqlite3_bind_int64(stmt, 3, ctx->mailbox_id);
			rc = sqlite3_step(stmt);
			sqlite3_reset(stmt);
			if (rc != SQLITE_DONE)
				err = idx_fail(st, "sync state");
		}
	}
	rows_free(ctx);
	maildir_list_free(&list);
	if (err != STORAGE_OK) {
		idx_rollback(st);
		return err;
	}
	return idx_commit(st);
}

enum storage_err
sync_mailbox(struct storage *st, int64_t mailbox_id, const char *rel,
	     bool force)
{
	struct sync_ctx ctx;
	enum storage_err err;
	int64_t mtimes[2];
	struct stat sb;
	bool same;

	memset(&ctx, 0, sizeof(ctx));
	ctx.st = st;
	ctx.mailbox_id = mailbox_id;
	if (storage_folder_path(st, rel, ctx.folder, sizeof(ctx.folder)) < 0) {
		storage_set_error(st, "path too long");
		return STORAGE_ERR_PARAMS;
	}
	if (stat(ctx.folder, &sb) < 0) {
		storage_set_errno(st, "folder %s", ctx.folder);
		return errno == ENOENT ? STORAGE_ERR_NOTFOUND :
					 STORAGE_ERR_TEMP;
	}
	if (sub_mtimes(ctx.folder, mtimes) < 0) {
		storage_set_errno(st, "stat in %s", ctx.folder);
		return STORAGE_ERR_TEMP;
	}
	if (!force) {
		err = sync_unchanged(st, mailbox_id, mtimes, &same);
		if (err != STORAGE_OK || same)
			return err;
	}
	return sync_full(&ctx, mtimes);
}

/* ---- public ---- */

enum storage_err
storage_mailbox_open(struct storage *st, const char *name,
		     struct storage_mailbox **box_r)
{
	struct storage_mailbox *box;
	enum storage_err err;
	int64_t id;

	*box_r = NULL;
	if (!storage_mailbox_name_valid(name)) {
		storage_set_error(st, "invalid mailbox name");
		return STORAGE_ERR_PARAMS;
	}
	name = maildir_name_canon(name);
	if ((err = idx_mailbox_get(st, name, &id, NULL, NULL)) != STORAGE_OK)
		return err;
	box = rb_calloc(1, sizeof(*box));
	box->st = st;
	box->id = id;
	(void)rb_strlcpy(box->name, name, sizeof(box->name));
	(void)maildir_folder_rel(name, box->rel, sizeof(box->rel));
	if ((err = storage_mailbox_sync(box)) != STORAGE_OK) {
		rb_free(&box);
		return err;
	}
	*box_r = box;
	return STORAGE_OK;
}

void
storage_mailbox_close(struct storage_mailbox **box)
{
	rb_free(box);
}

enum storage_err
storage_mailbox_sync(struct storage_mailbox *box)
{
	return sync_mailbox(box->st, box->id, box->rel, false);
}
