/* Mailbox rename.  Maildir++ is flat: "a" and "a/x" are the sibling
 * folders ".a" and ".a.x", so renaming a parent renames each child folder
 * on its own.  Renaming INBOX moves its messages into a new mailbox and
 * leaves INBOX empty (RFC 9051 §6.3.6).  Disk renames happen under the
 * index write lock and are undone if anything fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/storage_int.h"

struct rn_item {
	int64_t id;
	char newname[RB_MAILBOX_NAME_MAX + 1];
	char from[RB_PATH_MAX];
	char to[RB_PATH_MAX];
	bool moved;
};

/* rename() silently replaces an empty directory; a folder on disk that
 * the index does not know must not be swallowed. */
static int
rename_noreplace(const char *from, const char *to)
{
	struct stat sb;

	if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	/* File system without RENAME_NOREPLACE: check, then rename (we hold
	 * the index lock, so only a foreign tool could race us). */
	if (lstat(to, &sb) == 0) {
		errno = EEXIST;
		return -1;
	}
	return rename(from, to);
}

static const char sql_tree[] =
	"SELECT id, name FROM mailboxes WHERE name = ?1"
	" OR substr(name, 1, length(?1) + 1) = ?1 || '/'";
static const char sql_set_name[] =
	"UPDATE mailboxes SET name = ? WHERE id = ?";

static enum storage_err
tree_collect(struct storage *st, const char *oldname, const char *newname,
	     struct rn_item **items_r, size_t *count_r)
{
	struct rn_item *items = NULL;
	size_t count = 0, cap = 0, oldlen = strlen(oldname);
	enum storage_err err = STORAGE_OK;
	sqlite3_stmt *stmt;
	int rc;

	if ((stmt = idx_stmt(st, sql_tree)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_text(stmt, 1, oldname, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 1);
		char rel[STORAGE_NAME_MAX + 2];
		struct rn_item *it;

		if (count == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			items = rb_realloc(items, cap * sizeof(*items));
		}
		it = &items[count++];
		memset(it, 0, sizeof(*it));
		it->id = sqlite3_column_int64(stmt, 0);
		if (name == NULL || strlen(name) < oldlen ||
		    rb_snprintf(it->newname, sizeof(it->newname), "%s%s",
				newname, name + oldlen) < 0 ||
		    !storage_mailbox_name_valid(it->newname) ||
		    maildir_folder_rel(name, rel, sizeof(rel)) < 0 ||
		    storage_folder_path(st, rel, it->from,
					sizeof(it->from)) < 0 ||
		    maildir_folder_rel(it->newname, rel, sizeof(rel)) < 0 ||
		    storage_folder_path(st, rel, it->to, sizeof(it->to)) < 0) {
			storage_set_error(st, "new name invalid or too long");
			err = STORAGE_ERR_PARAMS;
			break;
		}
	}
	sqlite3_reset(stmt);
	if (err == STORAGE_OK && rc != SQLITE_DONE)
		err = idx_fail(st, "rename lookup");
	for (size_t i = 0; i < count && err == STORAGE_OK; i++) {
		err = idx_mailbox_get(st, items[i].newname, NULL, NULL, NULL);
		if (err == STORAGE_OK) {
			storage_set_error(st, "mailbox %s exists",
					  items[i].newname);
			err = STORAGE_ERR_EXISTS;
		} else if (err == STORAGE_ERR_NOTFOUND) {
			err = STORAGE_OK;
		}
	}
	if (err != STORAGE_OK) {
		rb_free(&items);
		return err;
	}
	*items_r = items;
	*count_r = count;
	return STORAGE_OK;
}

static void
tree_undo(struct rn_item *items, size_t count)
{
	for (size_t i = count; i-- > 0;) {
		if (items[i].moved && rename(items[i].to, items[i].from) < 0)
			log_error("storage: cannot move %s back to %s: %s",
				  items[i].to, items[i].from, strerror(errno));
		items[i].moved = false;
	}
}

static enum storage_err
rename_tree(struct storage *st, const char *oldname, const char *newname)
{
	struct rn_item *items;
	enum storage_err err;
	size_t count;

	if ((err = tree_collect(st, oldname, newname, &items, &count)) !=
	    STORAGE_OK) {
		idx_rollback(st);
		return err;
	}
	for (size_t i = 0; i < count && err == STORAGE_OK; i++) {
		sqlite3_stmt *stmt;
		int rc;

		if (rename_noreplace(items[i].from, items[i].to) == 0) {
			items[i].moved = true;
		} else if (errno == EEXIST || errno == ENOTEMPTY) {
			storage_set_error(st, "folder %s exists", items[i].to);
			err = STORAGE_ERR_EXISTS;
			break;
		} else if (errno != ENOENT) {
			/* ENOENT: indexed but no folder; the row still
			 * moves to the new name. */
			storage_set_errno(st, "rename %s", items[i].from);
			err = STORAGE_ERR_TEMP;
			break;
		}
		if ((stmt = idx_stmt(st, sql_set_name)) == NULL) {
			err = STORAGE_ERR_TEMP;
			break;
		}
		sqlite3_bind_text(stmt, 1, items[i].newname, -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(stmt, 2, items[i].id);
		rc = sqlite3_step(stmt);
		sqlite3_reset(stmt);
		if (rc != SQLITE_DONE)
			err = idx_fail(st, "rename");
	}
	if (err == STORAGE_OK && rb_fsync_dir(st->path) < 0) {
		storage_set_errno(st, "fsync %s", st->path);
		err = STORAGE_ERR_TEMP;
	}
	if (err == STORAGE_OK)
		err = idx_commit(st);
	if (err != STORAGE_OK) {
		idx_rollback(st);
		tree_undo(items, count);
	}
	rb_free(&items);
	return err;
}

static const char sql_move_messages[] =
	"UPDATE messages SET mailbox_id = ? WHERE mailbox_id = ?";

static int
fsync_subs(const char *folder)
{
	char path[RB_PATH_MAX];

	for (int s = 0; s < 2; s++) {
		if (rb_snprintf(path, sizeof(path), "%s/%s", folder,
				maildir_sub_name((enum maildir_sub)s)) < 0 ||
		    rb_fsync_dir(path) < 0)
			return -1;
	}
	return 0;
}

/* Moves the files of INBOX into folder; moved[i] marks what to undo. */
static enum storage_err
inbox_move_files(struct storage *st, const struct maildir_list *list,
		 const char *folder, bool *moved)
{
	for (size_t i = 0; i < list->count; i++) {
		const struct maildir_file *f = &list->files[i];
		const char *sub = maildir_sub_name(f->sub);
		char from[RB_PATH_MAX], to[RB_PATH_MAX];

		if (rb_snprintf(from, sizeof(from), "%s/%s/%s", st->path, sub,
				f->name) < 0 ||
		    rb_snprintf(to, sizeof(to), "%s/%s/%s", folder, sub,
				f->name) < 0) {
			storage_set_error(st, "path too long");
			return STORAGE_ERR_TEMP;
		}
		if (rename(from, to) == 0)
			moved[i] = true;
		else if (errno != ENOENT) {
			storage_set_errno(st, "rename %s", from);
			return STORAGE_ERR_TEMP;
		}
	}
	if (fsync_subs(folder) < 0 || fsync_subs(st->path) < 0) {
		storage_set_errno(st, "fsync after moving INBOX");
		return STORAGE_ERR_TEMP;
	}
	return STORAGE_OK;
}

static void
inbox_undo_files(struct storage *st, const struct maildir_list *list,
		 const char *folder, const bool *moved)
{
	for (size_t i = 0; i < list->count; i++) {
		const struct maildir_file *f = &list->files[i];
		const char *sub = maildir_sub_name(f->sub);
		char from[RB_PATH_MAX], to[RB_PATH_MAX];

		if (!moved[i] ||
		    rb_snprintf(from, sizeof(from), "%s/%s/%s", folder, sub,
				f->name) < 0 ||
		    rb_snprintf(to, sizeof(to), "%s/%s/%s", st->path, sub,
				f->name) < 0)
			continue;
		if (rename(from, to) < 0)
			log_error("storage: cannot move %s back: %s", from,
				  strerror(errno));
	}
}

static enum storage_err
rename_inbox(struct storage *st, int64_t inbox_id, const char *newname)
{
	char rel[STORAGE_NAME_MAX + 2], folder[RB_PATH_MAX];
	struct maildir_list list;
	uint32_t uidnext;
	uint64_t modseq, inbox_modseq;
	enum storage_err err;
	sqlite3_stmt *stmt;
	bool created, *moved;
	int64_t new_id;
	int rc;

	if (maildir_folder_rel(newname, rel, sizeof(rel)) < 0 ||
	    storage_folder_path(st, rel, folder, sizeof(folder)) < 0) {
		storage_set_error(st, "mailbox path too long");
		return STORAGE_ERR_PARAMS;
	}
	if (mailbox_folder_make(folder, &created) < 0) {
		storage_set_errno(st, "creating %s", folder);
		mailbox_folder_unmake(folder, created);
		idx_rollback(st);
		return STORAGE_ERR_TEMP;
	}
	if (!created) {
		/* Not indexed but on disk: never mix INBOX into it. */
		storage_set_error(st, "folder %s exists", folder);
		idx_rollback(st);
		return STORAGE_ERR_EXISTS;
	}
	if (maildir_list_read(st->path, &list) < 0) {
		storage_set_errno(st, "listing INBOX");
		mailbox_folder_unmake(folder, created);
		idx_rollback(st);
		return STORAGE_ERR_TEMP;
	}
	moved = rb_calloc(list.count + 1, sizeof(*moved));
	err = idx_mailbox_get(st, "INBOX", NULL, &uidnext, &inbox_modseq);
	if (err == STORAGE_OK)
		err = idx_mailbox_insert(st, newname, &new_id);
	if (err == STORAGE_OK)
		err = inbox_move_files(st, &list, folder, moved);
	if (err == STORAGE_OK) {
		if ((stmt = idx_stmt(st, sql_move_messages)) == NULL) {
			err = STORAGE_ERR_TEMP;
		} else {
			sqlite3_bind_int64(stmt, 1, new_id);
			sqlite3_bind_int64(stmt, 2, inbox_id);
			rc = sqlite3_step(stmt);
			sqlite3_reset(stmt);
			if (rc != SQLITE_DONE)
				err = idx_fail(st, "move messages");
		}
	}
	/* The moved messages keep their UIDs under the new mailbox's fresh
	 * UIDVALIDITY; INBOX keeps its uidnext so no UID is reused. */
	if (err == STORAGE_OK)
		err = idx_mailbox_counters(st, new_id, uidnext,
					   inbox_modseq + 1);
	if (err == STORAGE_OK)
		err = idx_modseq_bump(st, inbox_id, &modseq);
	if (err == STORAGE_OK && rb_fsync_dir(st->path) < 0) {
		storage_set_errno(st, "fsync %s", st->path);
		err = STORAGE_ERR_TEMP;
	}
	if (err == STORAGE_OK)
		err = idx_commit(st);
	if (err != STORAGE_OK) {
		idx_rollback(st);
		inbox_undo_files(st, &list, folder, moved);
		mailbox_folder_unmake(folder, created);
	}
	rb_free(&moved);
	maildir_list_free(&list);
	return err;
}

enum storage_err
storage_mailbox_rename(struct storage *st, const char *oldname,
		       const char *newname)
{
	enum storage_err err;
	size_t oldlen;
	int64_t id;

	if (!storage_mailbox_name_valid(oldname) ||
	    !storage_mailbox_name_valid(newname)) {
		storage_set_error(st, "invalid mailbox name");
		return STORAGE_ERR_PARAMS;
	}
	oldname = maildir_name_canon(oldname);
	newname = maildir_name_canon(newname);
	if (maildir_is_inbox(newname) || strcmp(oldname, newname) == 0) {
		storage_set_error(st, "mailbox %s exists", newname);
		return STORAGE_ERR_EXISTS;
	}
	oldlen = strlen(oldname);
	if (!maildir_is_inbox(oldname) && strncmp(newname, oldname,
						  oldlen) == 0 &&
	    newname[oldlen] == '/') {
		storage_set_error(st, "cannot rename a mailbox under itself");
		return STORAGE_ERR_PARAMS;
	}
	if ((err = idx_begin(st)) != STORAGE_OK)
		return err;
	if ((err = idx_mailbox_get(st, oldname, &id, NULL, NULL)) !=
	    STORAGE_OK)
		goto fail;
	err = idx_mailbox_get(st, newname, NULL, NULL, NULL);
	if (err == STORAGE_OK) {
		storage_set_error(st, "mailbox %s exists", newname);
		err = STORAGE_ERR_EXISTS;
		goto fail;
	}
	if (err != STORAGE_ERR_NOTFOUND)
		goto fail;
	/* Both helpers commit or roll back themselves. */
	if (maildir_is_inbox(oldname))
		return rename_inbox(st, id, newname);
	return rename_tree(st, oldname, newname);
fail:
	idx_rollback(st);
	return err;
}
