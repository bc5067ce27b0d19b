/* storage_index_rebuild, part 2: a fresh index from the files alone,
 * keeping every UID (and UIDVALIDITY, GUID, keywords, internal date) that
 * the old index still knows for a file; other files get UIDs above
 * max(known UIDs, old uidnext - 1), in mtime order.
 *
 * The new index is built in a temporary database next to roost.db, then
 * installed:
 * - old index healthy: its pages are replaced through SQLite's backup API
 *   on our connection to it.  Renaming a file over a WAL database that
 *   other processes have open would pair their -wal/-shm with the new file
 *   and corrupt it; the backup API takes the proper locks, and they simply
 *   see the new content.  (A delivery committed between our read of the
 *   old index and the install loses only its row: its file gets a new UID
 *   at the next sync.)
 * - old index missing or corrupt (moved aside as roost.db.corrupt.<time>
 *   with its -wal): the temporary file is closed, which checkpoints and
 *   removes its own -wal, and renamed into place after any stale -wal/-shm
 *   are removed, so no old log is ever replayed into it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

struct rb_new {
	const struct maildir_file *file;
	int64_t mtime_ns;
	uint64_t size;
	uint64_t vsize;
};

static const char sql_box_insert[] =
	"INSERT INTO mailboxes (name, uidvalidity, uidnext, highestmodseq,"
	" special_use, subscribed) VALUES (?, ?, ?, ?, ?, ?)";

static enum storage_err
box_insert(struct rebuild_ctx *ctx, const char *name,
	   const struct old_box *old, uint64_t modseq, int64_t *id_r)
{
	struct storage *st = &ctx->tmp;
	enum storage_err err;
	sqlite3_stmt *stmt;
	uint32_t uidv;
	int rc;

	if (old != NULL) {
		uidv = old->uidvalidity;
	} else {
		if ((err = idx_new_uidvalidity(st, &uidv)) != STORAGE_OK)
			return err;
		/* Above every UIDVALIDITY the old index ever handed out,
		 * also those of mailboxes that are gone. */
		if (uidv <= ctx->uidv_floor) {
			if (ctx->uidv_floor == UINT32_MAX) {
				storage_set_error(st, "UIDVALIDITY exhausted");
				return STORAGE_ERR_TEMP;
			}
			uidv = ctx->uidv_floor + 1;
		}
		ctx->uidv_floor = uidv;
	}
	if ((stmt = idx_stmt(st, sql_box_insert)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(stmt, 2, uidv);
	sqlite3_bind_int64(stmt, 3, old != NULL && old->uidnext > 0 ?
					    old->uidnext :
					    1);
	sqlite3_bind_int64(stmt, 4, (int64_t)modseq);
	sqlite3_bind_text(stmt, 5,
			  old != NULL ? old->special_use :
					idx_special_use(name),
			  -1, SQLITE_STATIC);
	sqlite3_bind_int(stmt, 6,
			 old != NULL ? old->subscribed :
				       maildir_is_inbox(name));
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE)
		return idx_fail(st, "mailbox insert");
	*id_r = sqlite3_last_insert_rowid(st->db);
	return STORAGE_OK;
}

static int
new_cmp(const void *a, const void *b)
{
	const struct rb_new *na = a, *nb = b;

	if (na->mtime_ns != nb->mtime_ns)
		return na->mtime_ns < nb->mtime_ns ? -1 : 1;
	return strcmp(na->file->name, nb->file->name);
}

/* Inserts the files of one folder; known ones first, so the UIDs for the
 * unknown ones can start above every kept UID. */
static enum storage_err
box_files(struct rebuild_ctx *ctx, int64_t id, const char *folder,
	  const struct maildir_list *list, const struct old_msg *olds,
	  size_t nolds, uint32_t *uidnext_io, uint64_t modseq)
{
	struct rb_new *news = rb_calloc(list->count + 1, sizeof(*news));
	enum storage_err err = STORAGE_OK;
	size_t nnew = 0;
	uint32_t max_uid = 0, next;

	for (size_t i = 0; i < list->count && err == STORAGE_OK; i++) {
		const struct maildir_file *f = &list->files[i];
		const struct old_msg *o;
		struct rb_new *n = &news[nnew];
		char guid[37];
		struct idx_msg m;

		n->file = f;
		if (maildir_file_info(folder, f, &n->mtime_ns, &n->size,
				      &n->vsize) < 0) {
			if (errno == ENOENT || errno == EINVAL ||
			    errno == ELOOP)
				continue;
			storage_set_errno(&ctx->tmp, "reading %s", f->name);
			err = STORAGE_ERR_TEMP;
			break;
		}
		o = rebuild_old_msg_find(olds, nolds, f->base);
		if (o == NULL) {
			nnew++;
			continue;
		}
		memset(&m, 0, sizeof(m));
		if (o->guid[0] != '\0')
			memcpy(guid, o->guid, sizeof(guid));
		else
			storage_guid_new(guid);
		m.mailbox_id = id;
		m.uid = o->uid;
		m.base = f->base;
		m.sub = f->sub;
		m.filename = f->name;
		m.flags = f->flags;
		m.keywords = o->keywords;
		m.internal_date = o->internal_date;
		m.size = n->size;
		m.vsize = n->vsize;
		m.modseq = modseq;
		m.guid = guid;
		err = idx_message_insert(&ctx->tmp, &m);
		if (o->uid > max_uid)
			max_uid = o->uid;
	}
	if (nnew > 0)
		qsort(news, nnew, sizeof(*news), new_cmp);
	next = *uidnext_io > max_uid + 1 ? *uidnext_io : max_uid + 1;
	for (size_t i = 0; i < nnew && err == STORAGE_OK; i++) {
		char guid[37];
		struct idx_msg m;

		if (next == UINT32_MAX) {
			storage_set_error(&ctx->tmp, "UID space exhausted");
			err = STORAGE_ERR_TEMP;
			break;
		}
		storage_guid_new(guid);
		memset(&m, 0, sizeof(m));
		m.mailbox_id = id;
		m.uid = next++;
		m.base = news[i].file->base;
		m.sub = news[i].file->sub;
		m.filename = news[i].file->name;
		m.flags = news[i].file->flags;
		m.internal_date = news[i].mtime_ns / 1000000000;
		m.size = news[i].size;
		m.vsize = news[i].vsize;
		m.modseq = modseq;
		m.guid = guid;
		err = idx_message_insert(&ctx->tmp, &m);
	}
	rb_free(&news);
	*uidnext_io = next;
	return err;
}

static enum storage_err
build_box(struct rebuild_ctx *ctx, const char *name, const struct old_box *old)
{
	char rel[STORAGE_NAME_MAX + 2], folder[RB_PATH_MAX];
	struct old_msg *olds = NULL;
	struct maildir_list list;
	size_t nolds = 0;
	enum storage_err err;
	uint32_t uidnext;
	uint64_t modseq;
	int64_t id = 0;

	if (maildir_folder_rel(name, rel, sizeof(rel)) < 0 ||
	    storage_folder_path(&ctx->tmp, rel, folder, sizeof(folder)) < 0)
		return STORAGE_OK;	/* not a usable mailbox name */
	/* With the UIDVALIDITY kept, modseqs must not go backwards for
	 * CONDSTORE clients: everything restarts above the old highest. */
	modseq = old != NULL ? old->highestmodseq + 1 : 1;
	uidnext = old != NULL && old->uidnext > 0 ? old->uidnext : 1;
	if ((err = box_insert(ctx, name, old, modseq, &id)) != STORAGE_OK)
		return err;
	if (old != NULL &&
	    (err = rebuild_old_msgs(ctx, old->id, &olds, &nolds)) != STORAGE_OK)
		return err;
	if (maildir_list_read(folder, &list) < 0) {
		storage_set_errno(&ctx->tmp, "listing %s", folder);
		rebuild_old_msgs_free(olds, nolds);
		return STORAGE_ERR_TEMP;
	}
	err = box_files(ctx, id, folder, &list, olds, nolds, &uidnext, modseq);
	if (err == STORAGE_OK)
		err = idx_mailbox_counters(&ctx->tmp, id, uidnext, modseq);
	maildir_list_free(&list);
	rebuild_old_msgs_free(olds, nolds);
	return err;
}

/* Mailboxes the old index knows first (they keep their UIDVALIDITY), then
 * the new ones, whose fresh UIDVALIDITY must not collide with any kept. */
static enum storage_err
build_boxes(struct rebuild_ctx *ctx, char **folders, size_t nfolders)
{
	enum storage_err err = STORAGE_OK;

	for (int pass = 0; pass < 2 && err == STORAGE_OK; pass++) {
		for (size_t i = 0; i < nfolders && err == STORAGE_OK; i++) {
			struct old_box old;
			int r = rebuild_old_box(ctx, folders[i], &old);

			if (r < 0)
				return STORAGE_ERR_TEMP;
			if (r == 1 && old.uidvalidity > ctx->uidv_floor)
				ctx->uidv_floor = old.uidvalidity;
			if ((pass == 0) != (r == 1))
				continue;
			err = build_box(ctx, folders[i], r == 1 ? &old : NULL);
		}
	}
	return err;
}

static void
tmp_remove(const char *tmppath)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char path[RB_PATH_MAX];

	for (size_t i = 0; i < RB_N_ELEMENTS(sfx); i++) {
		if (rb_snprintf(path, sizeof(path), "%s%s", tmppath,
				sfx[i]) == 0)
			(void)unlink(path);
	}
}

static enum storage_err
build(struct rebuild_ctx *ctx, const char *tmppath)
{
	enum storage_err err;
	const char *error;
	char **folders;
	size_t nfolders;

	tmp_remove(tmppath);
	if (idx_open(tmppath, true, &ctx->tmp.db, &error) < 0) {
		storage_set_error(&ctx->tmp, "%s", error);
		return STORAGE_ERR_TEMP;
	}
	if (maildir_folders_read(ctx->user_dir, &folders, &nfolders) < 0) {
		storage_set_errno(&ctx->tmp, "listing %s", ctx->user_dir);
		return STORAGE_ERR_TEMP;
	}
	err = rebuild_old_max_uidvalidity(ctx, &ctx->uidv_floor);
	if (err == STORAGE_OK)
		err = idx_begin(&ctx->tmp);
	if (err == STORAGE_OK) {
		err = build_boxes(ctx, folders, nfolders);
		if (err == STORAGE_OK)
			err = idx_commit(&ctx->tmp);
		else
			idx_rollback(&ctx->tmp);
	}
	maildir_folders_free(&folders, nfolders);
	return err;
}

/* Backup steps that found the old index busy before we give up. */
#define REBUILD_BACKUP_TRIES 50

/* Copies the new index over the healthy old one (see the top). */
static enum storage_err
install_backup(struct rebuild_ctx *ctx)
{
	sqlite3_backup *bk;
	int rc, tries = 0;

	/* Our read snapshot must end before we can write. */
	if (!sqlite3_get_autocommit(ctx->old.db))
		sqlite3_exec(ctx->old.db, "ROLLBACK", NULL, NULL, NULL);
	bk = sqlite3_backup_init(ctx->old.db, "main", ctx->tmp.db, "main");
	if (bk == NULL) {
		storage_set_error(&ctx->tmp, "install: %s",
				  sqlite3_errmsg(ctx->old.db));
		return STORAGE_ERR_TEMP;
	}
	do {
		rc = sqlite3_backup_step(bk, -1);
		if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
			sqlite3_sleep(100);
	} while ((rc == SQLITE_OK || rc == SQLITE_BUSY ||
		  rc == SQLITE_LOCKED) &&
		 ++tries < REBUILD_BACKUP_TRIES);
	(void)sqlite3_backup_finish(bk);
	if (rc != SQLITE_DONE) {
		storage_set_error(&ctx->tmp, "install: %s",
				  sqlite3_errstr(rc));
		return STORAGE_ERR_TEMP;
	}
	return STORAGE_OK;
}

/* Renames the new index into place where there is no old one left. */
static enum storage_err
install_rename(struct rebuild_ctx *ctx, const char *tmppath,
	       const char *dbpath)
{
	char path[RB_PATH_MAX];
	struct stat sb;
	int lockfd;

	/* Back to a rollback journal so closing leaves no -wal of ours to
	 * carry along; the next storage_open switches to WAL again. */
	if (sqlite3_exec(ctx->tmp.db, "PRAGMA journal_mode=DELETE", NULL,
			 NULL, NULL) != SQLITE_OK) {
		(void)idx_fail(&ctx->tmp, "journal mode");
		return STORAGE_ERR_TEMP;
	}
	rebuild_db_close(&ctx->tmp);
	if (rb_snprintf(path, sizeof(path), "%s-wal", tmppath) < 0 ||
	    lstat(path, &sb) == 0) {
		storage_set_error(&ctx->tmp, "install: %s left behind", path);
		return STORAGE_ERR_TEMP;
	}
	/* A log left by the vanished old index must not be replayed into
	 * the new one; the lock keeps storage_open from creating a fresh
	 * index in between. */
	if ((lockfd = idx_lock_dir(dbpath)) < 0) {
		storage_set_errno(&ctx->tmp, "lock %s", ctx->user_dir);
		return STORAGE_ERR_TEMP;
	}
	if (rb_snprintf(path, sizeof(path), "%s-wal", dbpath) < 0 ||
	    (unlink(path) < 0 && errno != ENOENT) ||
	    rb_snprintf(path, sizeof(path), "%s-shm", dbpath) < 0 ||
	    (unlink(path) < 0 && errno != ENOENT) ||
	    rename(tmppath, dbpath) < 0 || rb_fsync_dir(ctx->user_dir) < 0) {
		storage_set_errno(&ctx->tmp, "install %s", dbpath);
		close(lockfd);
		return STORAGE_ERR_TEMP;
	}
	close(lockfd);
	return STORAGE_OK;
}

static enum storage_err
old_aside(struct rebuild_ctx *ctx, const char *dbpath)
{
	rebuild_db_close(&ctx->old);
	ctx->old_corrupt = false;
	ctx->uidv_floor = 0;
	if (rebuild_old_move_aside(dbpath) < 0) {
		storage_set_errno(&ctx->tmp, "moving %s aside", dbpath);
		return STORAGE_ERR_TEMP;
	}
	return STORAGE_OK;
}

static enum storage_err
rebuild_run(struct rebuild_ctx *ctx, const char *dbpath, const char *tmppath)
{
	enum storage_err err = STORAGE_OK;
	struct stat sb;

	if (lstat(dbpath, &sb) == 0) {
		err = rebuild_old_open(ctx, dbpath);
		if (err != STORAGE_OK && !ctx->old_corrupt)
			return err;
		if (err != STORAGE_OK && (err = old_aside(ctx, dbpath)) !=
						 STORAGE_OK)
			return err;
	} else if (errno != ENOENT) {
		storage_set_errno(&ctx->tmp, "stat %s", dbpath);
		return STORAGE_ERR_TEMP;
	}
	err = build(ctx, tmppath);
	if (err != STORAGE_OK && ctx->old_corrupt) {
		/* Corruption that quick_check missed showed up while
		 * reading: start over as if there were no old index. */
		rebuild_db_close(&ctx->tmp);
		if ((err = old_aside(ctx, dbpath)) != STORAGE_OK)
			return err;
		err = build(ctx, tmppath);
	}
	if (err != STORAGE_OK)
		return err;
	if (ctx->old.db != NULL)
		return install_backup(ctx);
	return install_rename(ctx, tmppath, dbpath);
}

enum storage_err
storage_index_rebuild(const char *data_dir, const char *address,
		      const char **error_r)
{
	static char errbuf[512];
	char dbpath[RB_PATH_MAX], tmppath[RB_PATH_MAX];
	struct rebuild_ctx *ctx;
	enum storage_err err;
	struct stat sb;

	ctx = rb_calloc(1, sizeof(*ctx));
	err = storage_user_dir(data_dir, address, ctx->user_dir,
			       sizeof(ctx->user_dir), error_r);
	if (err != STORAGE_OK) {
		rb_free(&ctx);
		return err;
	}
	if (stat(ctx->user_dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
		*error_r = "no such store";
		rb_free(&ctx);
		return STORAGE_ERR_NOTFOUND;
	}
	ctx->old.path = ctx->user_dir;
	ctx->tmp.path = ctx->user_dir;
	if (rb_snprintf(dbpath, sizeof(dbpath), "%s/%s", ctx->user_dir,
			STORAGE_INDEX_NAME) < 0 ||
	    rb_snprintf(tmppath, sizeof(tmppath), "%s.rebuild.%ld", dbpath,
			(long)getpid()) < 0) {
		*error_r = "path too long";
		rb_free(&ctx);
		return STORAGE_ERR_PARAMS;
	}
	err = rebuild_run(ctx, dbpath, tmppath);
	if (err != STORAGE_OK) {
		(void)rb_strlcpy(errbuf, storage_error(&ctx->tmp),
				 sizeof(errbuf));
		*error_r = errbuf;
	}
	rebuild_db_close(&ctx->old);
	rebuild_db_close(&ctx->tmp);
	tmp_remove(tmppath);
	rb_free(&ctx);
	return err;
}
