/* Mailboxes: list, status, create, delete, rename, subscribe, usage.
 *
 * Folder operations on disk happen while the index write transaction is
 * held, and are undone if the commit fails, so the index and the folders
 * agree whichever way it ends.  A crash in the middle leaves a difference
 * that storage_index_check reports and storage_index_rebuild repairs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

static const char sql_info[] =
	"SELECT m.name, m.uidvalidity, m.uidnext, m.highestmodseq,"
	" m.special_use, m.subscribed, COUNT(x.uid),"
	" IFNULL(SUM((x.flags & ?1) = 0), 0), IFNULL(SUM(x.size), 0),"
	" IFNULL(SUM(x.vsize), 0)"
	" FROM mailboxes m LEFT JOIN messages x ON x.mailbox_id = m.id"
	" WHERE ?2 IS NULL OR m.name = ?2"
	" GROUP BY m.id ORDER BY m.name <> 'INBOX', m.name";

static void
info_fill(sqlite3_stmt *stmt, struct storage_mailbox_info *info)
{
	const unsigned char *name = sqlite3_column_text(stmt, 0);
	const unsigned char *use = sqlite3_column_text(stmt, 4);

	memset(info, 0, sizeof(*info));
	(void)rb_strlcpy(info->name, name != NULL ? (const char *)name : "",
			 sizeof(info->name));
	info->uidvalidity = (uint32_t)sqlite3_column_int64(stmt, 1);
	info->uidnext = (uint32_t)sqlite3_column_int64(stmt, 2);
	info->highestmodseq = (uint64_t)sqlite3_column_int64(stmt, 3);
	(void)rb_strlcpy(info->special_use,
			 use != NULL ? (const char *)use : "",
			 sizeof(info->special_use));
	info->subscribed = sqlite3_column_int(stmt, 5) != 0;
	info->messages = (uint32_t)sqlite3_column_int64(stmt, 6);
	info->unseen = (uint32_t)sqlite3_column_int64(stmt, 7);
	info->bytes = (uint64_t)sqlite3_column_int64(stmt, 8);
	info->vbytes = (uint64_t)sqlite3_column_int64(stmt, 9);
}

enum storage_err
storage_mailbox_list(struct storage *st, struct storage_mailbox_info **list_r,
		     size_t *count_r)
{
	struct storage_mailbox_info *list = NULL;
	size_t count = 0, cap = 0;
	sqlite3_stmt *stmt;
	int rc;

	*list_r = NULL;
	*count_r = 0;
	if ((stmt = idx_stmt(st, sql_info)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, STORAGE_FLAG_SEEN);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		if (count == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			list = rb_realloc(list, cap * sizeof(*list));
		}
		info_fill(stmt, &list[count++]);
	}
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE) {
		rb_free(&list);
		return idx_fail(st, "mailbox list");
	}
	*list_r = list;
	*count_r = count;
	return STORAGE_OK;
}

enum storage_err
storage_mailbox_status(struct storage *st, const char *name,
		       struct storage_mailbox_info *info_r)
{
	sqlite3_stmt *stmt;
	int rc;

	if (!storage_mailbox_name_valid(name)) {
		storage_set_error(st, "invalid mailbox name");
		return STORAGE_ERR_PARAMS;
	}
	if ((stmt = idx_stmt(st, sql_info)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, STORAGE_FLAG_SEEN);
	sqlite3_bind_text(stmt, 2, maildir_name_canon(name), -1,
			  SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		info_fill(stmt, info_r);
	sqlite3_reset(stmt);
	if (rc == SQLITE_ROW)
		return STORAGE_OK;
	if (rc == SQLITE_DONE) {
		storage_set_error(st, "no such mailbox");
		return STORAGE_ERR_NOTFOUND;
	}
	return idx_fail(st, "mailbox status");
}

/* Makes folder/ with cur/ new/ tmp/ and the maildirfolder marker that
 * Maildir++ tools (Courier, Dovecot) expect.  *created_r tells whether
 * the folder itself is new, so a failure can remove only what we made. */
int
mailbox_folder_make(const char *folder, bool *created_r)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	char path[RB_PATH_MAX];
	int fd;

	*created_r = false;
	if (mkdir(folder, 0700) == 0)
		*created_r = true;
	else if (errno != EEXIST)
		return -1;
	for (size_t i = 0; i < RB_N_ELEMENTS(subs); i++) {
		if (rb_snprintf(path, sizeof(path), "%s/%s", folder,
				subs[i]) < 0)
			return -1;
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	if (rb_snprintf(path, sizeof(path), "%s/maildirfolder", folder) < 0)
		return -1;
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	close(fd);
	return rb_fsync_dir(folder);
}

void
mailbox_folder_unmake(const char *folder, bool created)
{
	if (created && maildir_rmtree(folder) < 0)
		log_warning("storage: removing %s failed: %s", folder,
			    strerror(errno));
}

enum storage_err
storage_mailbox_create(struct storage *st, const char *name)
{
	char rel[STORAGE_NAME_MAX + 2], folder[RB_PATH_MAX];
	enum storage_err err;
	bool created = false;

	if (!storage_mailbox_name_valid(name)) {
		storage_set_error(st, "invalid mailbox name");
		return STORAGE_ERR_PARAMS;
	}
	name = maildir_name_canon(name);
	if (maildir_is_inbox(name)) {
		storage_set_error(st, "INBOX always exists");
		return STORAGE_ERR_EXISTS;
	}
	if (maildir_folder_rel(name, rel, sizeof(rel)) < 0 ||
	    storage_folder_path(st, rel, folder, sizeof(folder)) < 0) {
		storage_set_error(st, "mailbox path too long");
		return STORAGE_ERR_PARAMS;
	}
	if ((err = idx_begin(st)) != STORAGE_OK)
		return err;
	err = idx_mailbox_get(st, name, NULL, NULL, NULL);
	if (err == STORAGE_OK) {
		storage_set_error(st, "mailbox exists");
		err = STORAGE_ERR_EXISTS;
		goto fail;
	}
	if (err != STORAGE_ERR_NOTFOUND)
		goto fail;
	/* A folder that is on disk but not indexed (made by another tool,
	 * or an index lost) is adopted with its files: the next sync
	 * indexes them. */
	if (mailbox_folder_make(folder, &created) < 0 ||
	    rb_fsync_dir(st->path) < 0) {
		storage_set_errno(st, "creating %s", folder);
		err = STORAGE_ERR_TEMP;
		goto fail;
	}
	if ((err = idx_mailbox_insert(st, name, NULL)) != STORAGE_OK)
		goto fail;
	if ((err = idx_commit(st)) != STORAGE_OK) {
		mailbox_folder_unmake(folder, created);
		return err;
	}
	return STORAGE_OK;
fail:
	idx_rollback(st);
	mailbox_folder_unmake(folder, created);
	return err;
}

/* A name in the user dir for a folder on its way out: it starts with
 * "..", which never decodes to a mailbox name. */
static int
trash_path(const struct storage *st, char *buf, size_t size)
{
	static unsigned long counter;

	return rb_snprintf(buf, size, "%s/..deleted.%lld.%ld.%lu", st->path,
			   (long long)time(NULL), (long)getpid(), ++counter);
}

static const char sql_delete_messages[] =
	"DELETE FROM messages WHERE mailbox_id = ?";
static const char sql_delete_mailbox[] = "DELETE FROM mailboxes WHERE id = ?";

static enum storage_err
exec_id(struct storage *st, const char *sql, int64_t id)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql);
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, id);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	return rc == SQLITE_DONE ? STORAGE_OK : idx_fail(st, "delete");
}

enum storage_err
storage_mailbox_delete(struct storage *st, const char *name)
{
	char rel[STORAGE_NAME_MAX + 2], folder[RB_PATH_MAX];
	char trash[RB_PATH_MAX];
	enum storage_err err;
	bool moved = false;
	int64_t id;

	if (!storage_mailbox_name_valid(name)) {
		storage_set_error(st, "invalid mailbox name");
		return STORAGE_ERR_PARAMS;
	}
	if (maildir_is_inbox(name)) {
		storage_set_error(st, "INBOX cannot be deleted");
		return STORAGE_ERR_PERM;
	}
	if (maildir_folder_rel(name, rel, sizeof(rel)) < 0 ||
	    storage_folder_path(st, rel, folder, sizeof(folder)) < 0 ||
	    trash_path(st, trash, sizeof(trash)) < 0) {
		storage_set_error(st, "mailbox path too long");
		return STORAGE_ERR_PARAMS;
	}
	if ((err = idx_begin(st)) != STORAGE_OK)
		return err;
	if ((err = idx_mailbox_get(st, name, &id, NULL, NULL)) != STORAGE_OK)
		goto fail;
	/* One rename takes the whole folder away atomically; the slow
	 * removal of its files happens after the commit. */
	if (rename(folder, trash) == 0) {
		moved = true;
	} else if (errno != ENOENT) {
		storage_set_errno(st, "rename %s", folder);
		err = STORAGE_ERR_TEMP;
		goto fail;
	}
	if ((err = exec_id(st, sql_delete_messages, id)) != STORAGE_OK ||
	    (err = exec_id(st, sql_delete_mailbox, id)) != STORAGE_OK ||
	    (err = idx_commit(st)) != STORAGE_OK) {
		if (moved && rename(trash, folder) < 0)
			log_error("storage: cannot restore %s from %s: %s",
				  folder, trash, strerror(errno));
		goto fail;
	}
	if (moved && maildir_rmtree(trash) < 0)
		log_warning("storage: removing %s failed: %s", trash,
			    strerror(errno));
	(void)rb_fsync_dir(st->path);
	return STORAGE_OK;
fail:
	idx_rollback(st);
	return err;
}

static const char sql_subscribe[] =
	"UPDATE mailboxes SET subscribed = ? WHERE name = ?";

enum storage_err
storage_mailbox_subscribe(struct storage *st, const char *name,
			  bool subscribed)
{
	sqlite3_stmt *stmt;
	enum storage_err err;
	int rc;

	if (!storage_mailbox_name_valid(name)) {
		storage_set_error(st, "invalid mailbox name");
		return STORAGE_ERR_PARAMS;
	}
	if ((err = idx_begin(st)) != STORAGE_OK)
		return err;
	if ((stmt = idx_stmt(st, sql_subscribe)) == NULL) {
		idx_rollback(st);
		return STORAGE_ERR_TEMP;
	}
	sqlite3_bind_int(stmt, 1, subscribed ? 1 : 0);
	sqlite3_bind_text(stmt, 2, maildir_name_canon(name), -1,
			  SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE) {
		err = idx_fail(st, "subscribe");
		idx_rollback(st);
		return err;
	}
	if (sqlite3_changes(st->db) == 0) {
		idx_rollback(st);
		storage_set_error(st, "no such mailbox");
		return STORAGE_ERR_NOTFOUND;
	}
	return idx_commit(st);
}

static const char sql_usage[] =
	"SELECT bytes, messages FROM usage WHERE id = 1";

enum storage_err
storage_usage(struct storage *st, struct storage_usage *u_r)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql_usage);
	int rc;

	memset(u_r, 0, sizeof(*u_r));
	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW) {
		u_r->bytes = (uint64_t)sqlite3_column_int64(stmt, 0);
		u_r->messages = (uint64_t)sqlite3_column_int64(stmt, 1);
	}
	sqlite3_reset(stmt);
	return rc == SQLITE_ROW ? STORAGE_OK : idx_fail(st, "usage");
}
