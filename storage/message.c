/* Messages of an open mailbox: listing, opening, flag changes, expunge.
 *
 * Other processes (and other Maildir tools) rename files to change flags
 * at any time, so every file operation that gets ENOENT looks the file up
 * again by its base name before concluding that it is gone. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/storage_int.h"

/* Times a file operation chases a file that keeps being renamed. */
#define MSG_RENAME_TRIES 4

struct msg_row {
	enum maildir_sub sub;
	char filename[STORAGE_NAME_MAX + 1];
	char base[STORAGE_NAME_MAX + 1];
	uint32_t flags;
	uint64_t modseq;
	char keywords[STORAGE_KEYWORDS_MAX + 1];
};

static const char sql_list[] =
	"SELECT uid, flags, keywords, internal_date, size, vsize, modseq,"
	" guid, dir, filename FROM messages WHERE mailbox_id = ?"
	" ORDER BY uid";
static const char sql_row[] =
	"SELECT dir, filename, base, flags, keywords, modseq FROM messages"
	" WHERE mailbox_id = ? AND uid = ?";
static const char sql_update[] =
	"UPDATE messages SET dir = ?, filename = ?, flags = ?, keywords = ?,"
	" modseq = ? WHERE mailbox_id = ? AND uid = ?";
static const char sql_delete[] =
	"DELETE FROM messages WHERE mailbox_id = ? AND uid = ?";

static const char *
col_text(sqlite3_stmt *stmt, int col)
{
	const unsigned char *s = sqlite3_column_text(stmt, col);

	return s != NULL ? (const char *)s : "";
}

enum storage_err
storage_msg_list(struct storage_mailbox *box, struct storage_msg **msgs_r,
		 size_t *count_r)
{
	struct storage *st = box->st;
	struct storage_msg *msgs = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *stmt;
	int rc;

	*msgs_r = NULL;
	*count_r = 0;
	if ((stmt = idx_stmt(st, sql_list)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, box->id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		struct storage_msg *m;
		const char *kw = col_text(stmt, 2);

		if (count == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			msgs = rb_realloc(msgs, cap * sizeof(*msgs));
		}
		m = &msgs[count++];
		memset(m, 0, sizeof(*m));
		m->uid = (uint32_t)sqlite3_column_int64(stmt, 0);
		m->flags = (uint32_t)sqlite3_column_int64(stmt, 1);
		m->keywords = kw[0] != '\0' ? rb_strdup(kw) : NULL;
		m->internal_date = (time_t)sqlite3_column_int64(stmt, 3);
		m->size = (uint64_t)sqlite3_column_int64(stmt, 4);
		m->vsize = (uint64_t)sqlite3_column_int64(stmt, 5);
		m->modseq = (uint64_t)sqlite3_column_int64(stmt, 6);
		(void)rb_strlcpy(m->guid, col_text(stmt, 7), sizeof(m->guid));
		m->path = rb_strdup_printf(
			"%s%s/%s", box->rel,
			maildir_sub_name((enum maildir_sub)(
				sqlite3_column_int(stmt, 8) == MAILDIR_CUR)),
			col_text(stmt, 9));
	}
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE) {
		storage_msg_list_free(&msgs, count);
		return idx_fail(st, "message list");
	}
	*msgs_r = msgs;
	*count_r = count;
	return STORAGE_OK;
}

void
storage_msg_list_free(struct storage_msg **msgs, size_t count)
{
	if (*msgs == NULL)
		return;
	for (size_t i = 0; i < count; i++) {
		rb_free(&(*msgs)[i].keywords);
		rb_free(&(*msgs)[i].path);
	}
	rb_free(msgs);
}

static enum storage_err
row_get(struct storage_mailbox *box, uint32_t uid, struct msg_row *row)
{
	struct storage *st = box->st;
	sqlite3_stmt *stmt = idx_stmt(st, sql_row);
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, box->id);
	sqlite3_bind_int64(stmt, 2, uid);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		row->sub = sqlite3_column_int(stmt, 0) == MAILDIR_CUR ?
				   MAILDIR_CUR : MAILDIR_NEW;
		if (rb_strlcpy(row->filename, col_text(stmt, 1),
			       sizeof(row->filename)) < 0 ||
		    rb_strlcpy(row->base, col_text(stmt, 2),
			       sizeof(row->base)) < 0 ||
		    rb_strlcpy(row->keywords, col_text(stmt, 4),
			       sizeof(row->keywords)) < 0)
			rc = SQLITE_CORRUPT;
		row->flags = (uint32_t)sqlite3_column_int64(stmt, 3);
		row->modseq = (uint64_t)sqlite3_column_int64(stmt, 5);
	}
	sqlite3_reset(stmt);
	if (rc == SQLITE_ROW)
		return STORAGE_OK;
	if (rc == SQLITE_DONE) {
		storage_set_error(st, "no such message: uid %u", uid);
		return STORAGE_ERR_NOTFOUND;
	}
	if (rc == SQLITE_CORRUPT) {
		storage_set_error(st, "oversized index row: uid %u", uid);
		return STORAGE_ERR_TEMP;
	}
	return idx_fail(st, "message lookup");
}

static int
row_path(struct storage_mailbox *box, const struct msg_row *row, char *buf,
	 size_t size)
{
	return storage_file_path(box->st, box->rel, row->sub, row->filename,
				 buf, size);
}

/* After ENOENT: finds where the file of row went and updates row (not the
 * index).  NOTFOUND when it is gone for good. */
static enum storage_err
row_relocate(struct storage_mailbox *box, struct msg_row *row)
{
	char folder[RB_PATH_MAX];
	int r;

	if (storage_folder_path(box->st, box->rel, folder,
				sizeof(folder)) < 0)
		return STORAGE_ERR_TEMP;
	r = maildir_find_base(folder, row->base, &row->sub, row->filename,
			      sizeof(row->filename));
	if (r < 0) {
		storage_set_errno(box->st, "searching %s", folder);
		return STORAGE_ERR_TEMP;
	}
	if (r == 0) {
		storage_set_error(box->st, "message file is gone");
		return STORAGE_ERR_NOTFOUND;
	}
	return STORAGE_OK;
}

static enum storage_err
row_update(struct storage_mailbox *box, uint32_t uid,
	   const struct msg_row *row, uint64_t modseq)
{
	struct storage *st = box->st;
	sqlite3_stmt *stmt = idx_stmt(st, sql_update);
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int(stmt, 1, (int)row->sub);
	sqlite3_bind_text(stmt, 2, row->filename, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 3, row->flags);
	if (row->keywords[0] != '\0')
		sqlite3_bind_text(stmt, 4, row->keywords, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 5, (int64_t)modseq);
	sqlite3_bind_int64(stmt, 6, box->id);
	sqlite3_bind_int64(stmt, 7, uid);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? STORAGE_OK : idx_fail(st, "message update");
}

/* Takes a rename seen by msg_open into the index, as a sync would. */
static void
row_note_move(struct storage_mailbox *box, uint32_t uid,
	      const struct msg_row *found)
{
	struct storage *st = box->st;
	struct msg_row old;
	uint64_t modseq;

	/* Best effort: the file was opened, which is what the caller
	 * wanted; a failed update is redone by the next sync. */
	if (idx_begin(st) != STORAGE_OK)
		return;
	if (row_get(box, uid, &old) == STORAGE_OK) {
		struct msg_row now = old;

		now.sub = found->sub;
		memcpy(now.filename, found->filename, sizeof(now.filename));
		now.flags = maildir_name_flags(found->filename);
		modseq = old.modseq;
		if ((now.flags == old.flags ||
		     idx_modseq_bump(st, box->id, &modseq) == STORAGE_OK) &&
		    row_update(box, uid, &now, modseq) == STORAGE_OK) {
			(void)idx_commit(st);
			return;
		}
	}
	idx_rollback(st);
}

enum storage_err
storage_msg_open(struct storage_mailbox *box, uint32_t uid, int *fd_r)
{
	char path[RB_PATH_MAX];
	enum storage_err err;
	struct msg_row row;

	*fd_r = -1;
	if ((err = row_get(box, uid, &row)) != STORAGE_OK)
		return err;
	for (int i = 0; i < MSG_RENAME_TRIES; i++) {
		int fd;

		if (row_path(box, &row, path, sizeof(path)) < 0) {
			storage_set_error(box->st, "path too long");
			return STORAGE_ERR_TEMP;
		}
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			if (i > 0)
				row_note_move(box, uid, &row);
			*fd_r = fd;
			return STORAGE_OK;
		}
		if (errno != ENOENT) {
			storage_set_errno(box->st, "open %s", path);
			return STORAGE_ERR_TEMP;
		}
		if ((err = row_relocate(box, &row)) != STORAGE_OK)
			return err;
	}
	storage_set_error(box->st, "message file keeps moving: uid %u", uid);
	return STORAGE_ERR_TEMP;
}

/* Keywords are IMAP atoms separated by spaces. */
static bool
keywords_valid(const char *kw)
{
	size_t len = strlen(kw);

	if (len > STORAGE_KEYWORDS_MAX)
		return false;
	for (const char *p = kw; *p != '\0'; p++) {
		if (*p != ' ' && (*p < 0x21 || *p > 0x7e))
			return false;
	}
	return true;
}

/* Renames the file of row to carry flags, in cur/; row follows it. */
static enum storage_err
flags_rename(struct storage_mailbox *box, struct msg_row *row, uint32_t flags)
{
	char from[RB_PATH_MAX], to[RB_PATH_MAX];
	char name[STORAGE_NAME_MAX + 1];
	enum storage_err err;

	for (int i = 0; i < MSG_RENAME_TRIES; i++) {
		if (maildir_filename_make(row->base, flags, row->filename,
					  name, sizeof(name)) < 0 ||
		    row_path(box, row, from, sizeof(from)) < 0 ||
		    storage_file_path(box->st, box->rel, MAILDIR_CUR, name, to,
				      sizeof(to)) < 0) {
			storage_set_error(box->st, "path too long");
			return STORAGE_ERR_TEMP;
		}
		/* No fsync: a flag rename lost in a crash is only a stale
		 * flag, and the index (also not fsynced in WAL NORMAL mode)
		 * would lose it just the same. */
		if (rename(from, to) == 0) {
			row->sub = MAILDIR_CUR;
			memcpy(row->filename, name, sizeof(row->filename));
			return STORAGE_OK;
		}
		if (errno != ENOENT) {
			storage_set_errno(box->st, "rename %s", from);
			return STORAGE_ERR_TEMP;
		}
		if ((err = row_relocate(box, row)) != STORAGE_OK)
			return err;
	}
	storage_set_error(box->st, "message file keeps moving");
	return STORAGE_ERR_TEMP;
}

static enum storage_err change_flags(struct storage_mailbox *box,
				     uint32_t uid, bool replace, uint32_t set,
				     uint32_t clear, const char *keywords);

enum storage_err
storage_msg_set_flags(struct storage_mailbox *box, uint32_t uid,
		      uint32_t flags, const char *keywords)
{
	return change_flags(box, uid, true, flags, 0, keywords);
}

enum storage_err
storage_msg_add_flags(struct storage_mailbox *box, uint32_t uid,
		      uint32_t add, uint32_t remove)
{
	return change_flags(box, uid, false, add, remove, NULL);
}

/* replace: flags become `set`; else they become (current | set) & ~clear,
 * computed inside the write transaction so that a change another process
 * made since our snapshot is kept. */
static enum storage_err
change_flags(struct storage_mailbox *box, uint32_t uid, bool replace,
	     uint32_t set, uint32_t clear, const char *keywords)
{
	struct storage *st = box->st;
	struct msg_row row, old;
	enum storage_err err;
	uint64_t modseq;
	uint32_t flags;

	if (keywords != NULL && !keywords_valid(keywords)) {
		storage_set_error(st, "invalid keywords");
		return STORAGE_ERR_PARAMS;
	}
	if ((err = idx_begin(st)) != STORAGE_OK)
		return err;
	if ((err = row_get(box, uid, &row)) != STORAGE_OK)
		goto fail;
	old = row;
	flags = (replace ? set : ((row.flags | set) & ~clear)) &
		STORAGE_FLAGS_ALL;
	if (keywords != NULL)
		(void)rb_strlcpy(row.keywords, keywords, sizeof(row.keywords));
	if (flags == row.flags && strcmp(row.keywords, old.keywords) == 0) {
		idx_rollback(st);
		return STORAGE_OK;
	}
	if (flags != row.flags &&
	    (err = flags_rename(box, &row, flags)) != STORAGE_OK)
		goto fail;
	row.flags = flags;
	if ((err = idx_modseq_bump(st, box->id, &modseq)) != STORAGE_OK ||
	    (err = row_update(box, uid, &row, modseq)) != STORAGE_OK ||
	    (err = idx_commit(st)) != STORAGE_OK)
		goto undo;
	return STORAGE_OK;
undo:
	if (flags != old.flags) {
		char from[RB_PATH_MAX], to[RB_PATH_MAX];

		/* Put the old name back so file and index agree again; if
		 * that fails too, the next sync takes the file's flags. */
		if (row_path(box, &row, from, sizeof(from)) == 0 &&
		    row_path(box, &old, to, sizeof(to)) == 0)
			(void)rename(from, to);
	}
fail:
	idx_rollback(st);
	return err;
}

/* Unlinks the file of a row, chasing renames; a file already gone is
 * fine.  row->sub then tells which directory to fsync. */
static enum storage_err
expunge_file(struct storage_mailbox *box, struct msg_row *row)
{
	char path[RB_PATH_MAX];
	enum storage_err err;

	for (int i = 0; i < MSG_RENAME_TRIES; i++) {
		if (row_path(box, row, path, sizeof(path)) < 0) {
			storage_set_error(box->st, "path too long");
			return STORAGE_ERR_TEMP;
		}
		if (unlink(path) == 0)
			return STORAGE_OK;
		if (errno != ENOENT) {
			storage_set_errno(box->st, "unlink %s", path);
			return STORAGE_ERR_TEMP;
		}
		err = row_relocate(box, row);
		if (err == STORAGE_ERR_NOTFOUND)
			return STORAGE_OK;
		if (err != STORAGE_OK)
			return err;
	}
	storage_set_error(box->st, "message file keeps moving");
	return STORAGE_ERR_TEMP;
}

enum storage_err
storage_msg_expunge(struct storage_mailbox *box, const uint32_t *uids,
		    size_t count)
{
	struct storage *st = box->st;
	bool touched[2] = { false, false };
	enum storage_err err;
	size_t deleted = 0;
	uint64_t modseq;

	if (count == 0)
		return STORAGE_OK;
	if ((err = idx_begin(st)) != STORAGE_OK)
		return err;
	for (size_t i = 0; i < count; i++) {
		struct msg_row row;
		sqlite3_stmt *stmt;
		int rc;

		err = row_get(box, uids[i], &row);
		if (err == STORAGE_ERR_NOTFOUND)
			continue;
		if (err != STORAGE_OK ||
		    (err = expunge_file(box, &row)) != STORAGE_OK)
			goto fail;
		touched[row.sub] = true;
		if ((stmt = idx_stmt(st, sql_delete)) == NULL) {
			err = STORAGE_ERR_TEMP;
			goto fail;
		}
		sqlite3_bind_int64(stmt, 1, box->id);
		sqlite3_bind_int64(stmt, 2, uids[i]);
		rc = sqlite3_step(stmt);
		sqlite3_reset(stmt);
		if (rc != SQLITE_DONE) {
			err = idx_fail(st, "expunge");
			goto fail;
		}
		deleted++;
	}
	if (deleted == 0) {
		idx_rollback(st);
		return STORAGE_OK;
	}
	/* The unlinks must be durable before the index forgets the rows:
	 * the other order could bring an expunged message back as new. */
	for (int s = 0; s < 2; s++) {
		char dir[RB_PATH_MAX];

		if (!touched[s])
			continue;
		if (storage_file_path(st, box->rel, (enum maildir_sub)s, "",
				      dir, sizeof(dir)) < 0 ||
		    rb_fsync_dir(dir) < 0) {
			storage_set_errno(st, "fsync %s", dir);
			err = STORAGE_ERR_TEMP;
			goto fail;
		}
	}
	if ((err = idx_modseq_bump(st, box->id, &modseq)) != STORAGE_OK)
		goto fail;
	return idx_commit(st);
fail:
	/* Files already unlinked lose their rows at the next sync. */
	idx_rollback(st);
	return err;
}
