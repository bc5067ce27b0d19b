/* Delivery of a finished spool into one mailbox: link (or copy) into the
 * Maildir, then fsync the directory and commit the index row.
 *
 * Order matters (DESIGN.md, Storage): the file is durable in new/ before
 * the index knows it, and the index row is committed before the caller
 * acknowledges.  A crash in between leaves a file the next sync indexes;
 * a failure in between unlinks the file, so nothing half-delivered ever
 * stays in new/ or cur/. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

/* Fresh names tried when link() says EEXIST. */
#define DELIVER_NAME_TRIES 8

struct storage_delivery {
	struct storage *st;
	int64_t mailbox_id;
	char mailbox[RB_MAILBOX_NAME_MAX + 1];
	char rel[STORAGE_NAME_MAX + 2];
	enum maildir_sub sub;
	char base[STORAGE_NAME_MAX + 1];
	char name[STORAGE_NAME_MAX + 1];
	char path[RB_PATH_MAX];
	uint32_t flags;
	time_t internal_date;
	uint64_t size;
	uint64_t vsize;
	char guid[37];
};

/* link() cannot be used across file systems (EXDEV), past the link count
 * limit (EMLINK), where hard links are protected or unsupported (EPERM,
 * EOPNOTSUPP): then the message is copied instead. */
static bool
link_needs_copy(int err)
{
	return err == EXDEV || err == EMLINK || err == EPERM ||
	       err == EOPNOTSUPP;
}

static int
copy_fd(int in, int out)
{
	unsigned char buf[65536];
	ssize_t r;

	for (;;) {
		r = read(in, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			return 0;
		if (rb_write_all(out, buf, (size_t)r) < 0)
			return -1;
	}
}

/* Copies the spool into the Maildir's tmp/, fsyncs it and renames it
 * into place: the slow path for when link() is impossible. */
static int
deliver_copy(struct storage_delivery *dlv, const char *spool_path)
{
	char folder[RB_PATH_MAX], tmp[RB_PATH_MAX];
	int in, out, saved;

	if (storage_folder_path(dlv->st, dlv->rel, folder,
				sizeof(folder)) < 0 ||
	    rb_snprintf(tmp, sizeof(tmp), "%s/tmp", folder) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -1;
	if (rb_snprintf(tmp, sizeof(tmp), "%s/tmp/%s", folder, dlv->base) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	in = open(spool_path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -1;
	out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		   0600);
	if (out < 0) {
		saved = errno;
		close(in);
		errno = saved;
		return -1;
	}
	if (copy_fd(in, out) < 0 || fsync(out) < 0) {
		saved = errno;
		close(in);
		close(out);
		(void)unlink(tmp);
		errno = saved;
		return -1;
	}
	close(in);
	if (close(out) < 0 || rename(tmp, dlv->path) < 0) {
		saved = errno;
		(void)unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

/* A folder whose cur/ new/ tmp/ were removed by hand (or by another
 * tool) is made whole again, as Dovecot does, instead of failing every
 * delivery until an administrator notices. */
static bool
deliver_heal(struct storage_delivery *dlv, bool *healed)
{
	char folder[RB_PATH_MAX];
	bool created;

	if (*healed || errno != ENOENT ||
	    storage_folder_path(dlv->st, dlv->rel, folder,
				sizeof(folder)) < 0)
		return false;
	*healed = true;
	if (mailbox_folder_make(folder, &created) < 0)
		return false;
	log_warning("storage: recreated missing directories of %s", folder);
	return true;
}

static int
deliver_place(struct storage_delivery *dlv, const char *spool_path)
{
	char unique[STORAGE_NAME_MAX + 1];
	bool healed = false;

	for (int i = 0; i < DELIVER_NAME_TRIES; i++) {
		if (maildir_unique_base(unique, sizeof(unique)) < 0 ||
		    rb_snprintf(dlv->base, sizeof(dlv->base),
				"%s,S=%llu,W=%llu", unique,
				(unsigned long long)dlv->size,
				(unsigned long long)dlv->vsize) < 0)
			goto toolong;
		if (dlv->sub == MAILDIR_NEW) {
			if (rb_strlcpy(dlv->name, dlv->base,
				       sizeof(dlv->name)) < 0)
				goto toolong;
		} else if (maildir_filename_make(dlv->base, dlv->flags, NULL,
						 dlv->name,
						 sizeof(dlv->name)) < 0) {
			goto toolong;
		}
		if (storage_file_path(dlv->st, dlv->rel, dlv->sub, dlv->name,
				      dlv->path, sizeof(dlv->path)) < 0)
			goto toolong;
		if (rb_fault("deliver_link")) {
			errno = ENOSPC;
			return -1;
		}
		if (link(spool_path, dlv->path) == 0)
			return 0;
		if (link_needs_copy(errno))
			return deliver_copy(dlv, spool_path);
		if (deliver_heal(dlv, &healed))
			continue;
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
toolong:
	errno = ENAMETOOLONG;
	return -1;
}

enum storage_err
storage_deliver_link(struct storage *st, const char *mailbox,
		     struct storage_spool *sp, uint32_t flags,
		     time_t internal_date, struct storage_delivery **dlv_r)
{
	struct storage_delivery *dlv;
	enum storage_err err;
	int64_t id;

	*dlv_r = NULL;
	if (!sp->finished) {
		storage_set_error(st, "spool not finished");
		return STORAGE_ERR_PARAMS;
	}
	if (!storage_mailbox_name_valid(mailbox)) {
		storage_set_error(st, "invalid mailbox name");
		return STORAGE_ERR_PARAMS;
	}
	mailbox = maildir_name_canon(mailbox);
	if ((err = idx_mailbox_get(st, mailbox, &id, NULL, NULL)) != STORAGE_OK)
		return err;
	dlv = rb_calloc(1, sizeof(*dlv));
	dlv->st = st;
	dlv->mailbox_id = id;
	(void)rb_strlcpy(dlv->mailbox, mailbox, sizeof(dlv->mailbox));
	(void)maildir_folder_rel(mailbox, dlv->rel, sizeof(dlv->rel));
	/* Maildir: new/ is for mail nobody has seen; a message that comes
	 * with flags (APPEND) goes straight to cur/ with its info. */
	dlv->flags = flags & STORAGE_FLAGS_ALL;
	dlv->sub = dlv->flags != 0 ? MAILDIR_CUR : MAILDIR_NEW;
	dlv->internal_date = internal_date != 0 ? internal_date : time(NULL);
	dlv->size = sp->size;
	dlv->vsize = sp->vsize;
	storage_guid_new(dlv->guid);
	if (deliver_place(dlv, sp->path) < 0) {
		storage_set_errno(st, "link into %s", dlv->mailbox);
		rb_free(&dlv);
		return STORAGE_ERR_TEMP;
	}
	/* An explicit date (IMAP APPEND) also becomes the file's mtime, as
	 * Dovecot does, so a rebuild without the old index recovers it.
	 * Best effort: the index has it anyway. */
	if (internal_date != 0) {
		struct timespec ts[2] = { { internal_date, 0 },
					  { internal_date, 0 } };

		(void)utimensat(AT_FDCWD, dlv->path, ts, 0);
	}
	*dlv_r = dlv;
	return STORAGE_OK;
}

static const char sql_base_uid[] =
	"SELECT uid FROM messages WHERE mailbox_id = ? AND base = ?";
static const char sql_usage[] =
	"SELECT bytes, messages FROM usage WHERE id = 1";

/* Inside the write transaction: the quota check and the UID assignment
 * see the same state, so concurrent deliveries cannot both squeeze in. */
static enum storage_err
deliver_index(struct storage_delivery *dlv, const struct storage_quota *quota,
	      uint32_t *uid_r)
{
	struct storage *st = dlv->st;
	uint32_t uidnext;
	uint64_t modseq, bytes = 0, msgs = 0;
	enum storage_err err;
	sqlite3_stmt *stmt;
	struct idx_msg m;
	int64_t id;
	int rc;

	err = idx_mailbox_get(st, dlv->mailbox, &id, &uidnext, &modseq);
	if (err != STORAGE_OK)
		return err;
	if (id != dlv->mailbox_id) {
		storage_set_error(st, "mailbox was deleted");
		return STORAGE_ERR_NOTFOUND;
	}
	/* A sync in another process may have indexed the file already. */
	if ((stmt = idx_stmt(st, sql_base_uid)) == NULL)
		return STORAGE_ERR_TEMP;
	sqlite3_bind_int64(stmt, 1, id);
	sqlite3_bind_text(stmt, 2, dlv->base, -1, SQLITE_STATIC);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*uid_r = (uint32_t)sqlite3_column_int64(stmt, 0);
	sqlite3_reset(stmt);
	if (rc == SQLITE_ROW)
		return STORAGE_OK;
	if (rc != SQLITE_DONE)
		return idx_fail(st, "base lookup");

	if (quota != NULL && (quota->bytes != 0 || quota->messages != 0)) {
		if ((stmt = idx_stmt(st, sql_usage)) == NULL)
			return STORAGE_ERR_TEMP;
		rc = sqlite3_step(stmt);
		if (rc == SQLITE_ROW) {
			bytes = (uint64_t)sqlite3_column_int64(stmt, 0);
			msgs = (uint64_t)sqlite3_column_int64(stmt, 1);
		}
		sqlite3_reset(stmt);
		if (rc != SQLITE_ROW)
			return idx_fail(st, "usage");
		if ((quota->bytes != 0 &&
		     (bytes + dlv->size < bytes ||
		      bytes + dlv->size > quota->bytes)) ||
		    (quota->messages != 0 && msgs + 1 > quota->messages)) {
			storage_set_error(st, "quota exceeded: %llu bytes %llu"
					  " messages in use",
					  (unsigned long long)bytes,
					  (unsigned long long)msgs);
			return STORAGE_ERR_QUOTA;
		}
	}
	if (uidnext == 0 || uidnext == UINT32_MAX) {
		storage_set_error(st, "UID space of %s exhausted",
				  dlv->mailbox);
		return STORAGE_ERR_TEMP;
	}
	memset(&m, 0, sizeof(m));
	m.mailbox_id = id;
	m.uid = uidnext;
	m.base = dlv->base;
	m.sub = dlv->sub;
	m.filename = dlv->name;
	m.flags = dlv->flags;
	m.internal_date = (int64_t)dlv->internal_date;
	m.size = dlv->size;
	m.vsize = dlv->vsize;
	m.modseq = modseq + 1;
	m.guid = dlv->guid;
	if ((err = idx_message_insert(st, &m)) != STORAGE_OK ||
	    (err = idx_mailbox_counters(st, id, uidnext + 1, modseq + 1)) !=
		    STORAGE_OK)
		return err;
	*uid_r = uidnext;
	return STORAGE_OK;
}

enum storage_err
storage_deliver_commit(struct storage_delivery **dlvp,
		       const struct storage_quota *quota, uint32_t *uid_r)
{
	struct storage_delivery *dlv = *dlvp;
	struct storage *st = dlv->st;
	char dir[RB_PATH_MAX];
	enum storage_err err;
	uint32_t uid = 0;

	*dlvp = NULL;
	if (storage_file_path(st, dlv->rel, dlv->sub, "", dir,
			      sizeof(dir)) < 0) {
		storage_set_error(st, "path too long");
		err = STORAGE_ERR_TEMP;
		goto fail;
	}
	if (rb_fault("deliver_fsync_dir")) {
		errno = EIO;
		storage_set_errno(st, "fsync %s", dir);
		err = STORAGE_ERR_TEMP;
		goto fail;
	}
	if (rb_fsync_dir(dir) < 0) {
		storage_set_errno(st, "fsync %s", dir);
		err = STORAGE_ERR_TEMP;
		goto fail;
	}
	if ((err = idx_begin(st)) != STORAGE_OK)
		goto fail;
	if ((err = deliver_index(dlv, quota, &uid)) != STORAGE_OK) {
		idx_rollback(st);
		goto fail;
	}
	if ((err = idx_commit(st)) != STORAGE_OK)
		goto fail;
	if (uid_r != NULL)
		*uid_r = uid;
	rb_free(&dlv);
	return STORAGE_OK;
fail:
	if (unlink(dlv->path) < 0 && errno != ENOENT)
		log_error("storage: unlink of undelivered %s failed: %s",
			  dlv->path, strerror(errno));
	rb_free(&dlv);
	return err;
}

void
storage_deliver_abort(struct storage_delivery **dlvp)
{
	struct storage_delivery *dlv = *dlvp;

	if (dlv == NULL)
		return;
	if (unlink(dlv->path) < 0 && errno != ENOENT)
		log_error("storage: unlink of aborted %s failed: %s",
			  dlv->path, strerror(errno));
	rb_free(dlvp);
}
