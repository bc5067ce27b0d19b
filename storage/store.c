/* A user's store as a whole: open/create, close, destroy, error text and
 * the path helpers the other files share. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "storage/storage_int.h"

const char *
storage_err_name(enum storage_err err)
{
	switch (err) {
	case STORAGE_OK:
		return "OK";
	case STORAGE_ERR_TEMP:
		return "TEMP";
	case STORAGE_ERR_NOTFOUND:
		return "NOTFOUND";
	case STORAGE_ERR_EXISTS:
		return "EXISTS";
	case STORAGE_ERR_QUOTA:
		return "QUOTA";
	case STORAGE_ERR_PERM:
		return "PERM";
	case STORAGE_ERR_PARAMS:
		return "PARAMS";
	}
	return "UNKNOWN";
}

static void
set_error_v(struct storage *st, bool with_errno, const char *fmt, va_list ap)
	RB_PRINTF(3, 0);

static void
set_error_v(struct storage *st, bool with_errno, const char *fmt, va_list ap)
{
	int saved = errno;
	int n;

	/* Error text is for logs: a truncated message is acceptable here,
	 * unlike a truncated path, so plain vsnprintf is fine. */
	n = vsnprintf(st->error, sizeof(st->error), fmt, ap);
	if (with_errno && n >= 0 && (size_t)n < sizeof(st->error))
		(void)snprintf(st->error + n, sizeof(st->error) - (size_t)n,
			       ": %s", strerror(saved));
	errno = saved;
}

void
storage_set_error(struct storage *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_error_v(st, false, fmt, ap);
	va_end(ap);
}

void
storage_set_errno(struct storage *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	set_error_v(st, true, fmt, ap);
	va_end(ap);
}

const char *
storage_error(const struct storage *st)
{
	return st->error[0] != '\0' ? st->error : "no error";
}

const char *
storage_path(const struct storage *st)
{
	return st->path;
}

int
storage_file_path(const struct storage *st, const char *rel,
		  enum maildir_sub sub, const char *name, char *buf,
		  size_t size)
{
	return rb_snprintf(buf, size, "%s/%s%s/%s", st->path, rel,
			   maildir_sub_name(sub), name);
}

int
storage_folder_path(const struct storage *st, const char *rel, char *buf,
		    size_t size)
{
	size_t len = strlen(rel);

	if (len == 0)
		return rb_strlcpy(buf, st->path, size);
	/* rel ends in '/'; the folder path does not. */
	return rb_snprintf(buf, size, "%s/%.*s", st->path, (int)(len - 1),
			   rel);
}

void
storage_guid_new(char guid[37])
{
	uuid_t uu;

	uuid_generate(uu);
	uuid_unparse_lower(uu, guid);
}

enum storage_err
storage_user_dir(const char *data_dir, const char *address, char *buf,
		 size_t size, const char **error_r)
{
	char local[RB_LOCALPART_MAX + 1], domain[RB_DOMAIN_MAX + 1];

	if (data_dir == NULL || data_dir[0] == '\0' ||
	    maildir_address_split(address, local, sizeof(local), domain,
				  sizeof(domain)) < 0) {
		*error_r = "invalid address";
		return STORAGE_ERR_PARAMS;
	}
	if (rb_snprintf(buf, size, "%s/mail/%s/%s", data_dir, domain,
			local) < 0) {
		*error_r = "path too long";
		return STORAGE_ERR_PARAMS;
	}
	return STORAGE_OK;
}

/* Makes the user dir with INBOX's cur/ new/ tmp/, and fsyncs the parents
 * so a delivery acknowledged right after cannot lose its directory. */
static int
store_create_dirs(const char *path)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	char sub[RB_PATH_MAX], parent[RB_PATH_MAX];
	char *slash;

	if (rb_mkdir_p(path, 0700) < 0)
		return -1;
	for (size_t i = 0; i < RB_N_ELEMENTS(subs); i++) {
		if (rb_snprintf(sub, sizeof(sub), "%s/%s", path, subs[i]) < 0)
			return -1;
		if (mkdir(sub, 0700) < 0 && errno != EEXIST)
			return -1;
	}
	if (rb_fsync_dir(path) < 0 ||
	    rb_strlcpy(parent, path, sizeof(parent)) < 0)
		return -1;
	/* The localpart's entry in the domain dir, and the domain's. */
	for (int i = 0; i < 2 && (slash = strrchr(parent, '/')) != NULL;
	     i++) {
		*slash = '\0';
		if (parent[0] != '\0' && rb_fsync_dir(parent) < 0)
			return -1;
	}
	return 0;
}

static const char sql_inbox_check[] =
	"SELECT 1 FROM mailboxes WHERE name = 'INBOX'";

/* The INBOX row exists in every index; a lost one is recreated. */
static enum storage_err
store_ensure_inbox(struct storage *st)
{
	sqlite3_stmt *stmt = idx_stmt(st, sql_inbox_check);
	enum storage_err err;
	int rc;

	if (stmt == NULL)
		return STORAGE_ERR_TEMP;
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc == SQLITE_ROW)
		return STORAGE_OK;
	if (rc != SQLITE_DONE)
		return idx_fail(st, "inbox lookup");
	if ((err = idx_begin(st)) != STORAGE_OK)
		return err;
	err = idx_mailbox_get(st, "INBOX", NULL, NULL, NULL);
	if (err == STORAGE_ERR_NOTFOUND)
		err = idx_mailbox_insert(st, "INBOX", NULL);
	if (err != STORAGE_OK) {
		idx_rollback(st);
		return err;
	}
	return idx_commit(st);
}

enum storage_err
storage_open(const char *data_dir, const char *address, bool create,
	     struct storage **st_r, const char **error_r)
{
	static char errbuf[512];
	char path[RB_PATH_MAX], dbpath[RB_PATH_MAX];
	struct storage *st;
	enum storage_err err;
	struct stat sb;
	sqlite3 *db;

	*st_r = NULL;
	err = storage_user_dir(data_dir, address, path, sizeof(path), error_r);
	if (err != STORAGE_OK)
		return err;
	if (rb_snprintf(dbpath, sizeof(dbpath), "%s/%s", path,
			STORAGE_INDEX_NAME) < 0) {
		*error_r = "path too long";
		return STORAGE_ERR_PARAMS;
	}
	if (stat(path, &sb) < 0) {
		if (errno != ENOENT) {
			*error_r = "cannot access the user directory";
			return STORAGE_ERR_TEMP;
		}
		if (!create) {
			*error_r = "no such store";
			return STORAGE_ERR_NOTFOUND;
		}
		if (store_create_dirs(path) < 0) {
			(void)rb_snprintf(errbuf, sizeof(errbuf),
					  "cannot create the store: %s",
					  strerror(errno));
			*error_r = errbuf;
			return STORAGE_ERR_TEMP;
		}
	} else if (!S_ISDIR(sb.st_mode)) {
		*error_r = "user directory is not a directory";
		return STORAGE_ERR_TEMP;
	}
	/* The index is a cache: a missing one is recreated and filled by
	 * the next sync, whether or not create was asked for. */
	if (idx_open(dbpath, true, &db, error_r) < 0)
		return STORAGE_ERR_TEMP;
	st = rb_calloc(1, sizeof(*st));
	st->data_dir = rb_strdup(data_dir);
	st->address = rb_strdup(address);
	st->path = rb_strdup(path);
	st->db = db;
	if (stat(dbpath, &sb) == 0) {
		st->db_dev = sb.st_dev;
		st->db_ino = sb.st_ino;
	}
	if ((err = store_ensure_inbox(st)) != STORAGE_OK) {
		(void)rb_strlcpy(errbuf, st->error, sizeof(errbuf));
		*error_r = errbuf;
		storage_close(&st);
		return err;
	}
	*st_r = st;
	return STORAGE_OK;
}

bool
storage_stale(const struct storage *st)
{
	char dbpath[RB_PATH_MAX];
	struct stat sb;

	if (rb_snprintf(dbpath, sizeof(dbpath), "%s/%s", st->path,
			STORAGE_INDEX_NAME) < 0 ||
	    stat(dbpath, &sb) < 0)
		return true;
	return sb.st_dev != st->db_dev || sb.st_ino != st->db_ino;
}

void
storage_close(struct storage **stp)
{
	struct storage *st = *stp;

	if (st == NULL)
		return;
	idx_rollback(st);
	idx_stmts_free(st);
	idx_close(st->db, st->path);
	rb_free(&st->data_dir);
	rb_free(&st->address);
	rb_free(&st->path);
	rb_free(stp);
}

enum storage_err
storage_destroy(const char *data_dir, const char *address,
		const char **error_r)
{
	static char errbuf[512];
	char path[RB_PATH_MAX], trash[RB_PATH_MAX];
	enum storage_err err;
	char *slash;

	err = storage_user_dir(data_dir, address, path, sizeof(path), error_r);
	if (err != STORAGE_OK)
		return err;
	/* Move the tree out of the way in one atomic step first, so no
	 * process ever opens a half-removed store; the trash name starts
	 * with '.', which no valid localpart does. */
	slash = strrchr(path, '/');
	if (rb_snprintf(trash, sizeof(trash), "%.*s/.deleted.%s.%ld.%lld",
			(int)(slash - path), path, slash + 1, (long)getpid(),
			(long long)time(NULL)) < 0) {
		*error_r = "path too long";
		return STORAGE_ERR_PARAMS;
	}
	if (rename(path, trash) < 0) {
		if (errno == ENOENT) {
			*error_r = "no such store";
			return STORAGE_ERR_NOTFOUND;
		}
		(void)rb_snprintf(errbuf, sizeof(errbuf),
				  "rename of the store failed: %s",
				  strerror(errno));
		*error_r = errbuf;
		return STORAGE_ERR_TEMP;
	}
	if (maildir_rmtree(trash) < 0) {
		(void)rb_snprintf(errbuf, sizeof(errbuf),
				  "removing %s failed: %s", trash,
				  strerror(errno));
		*error_r = errbuf;
		return STORAGE_ERR_TEMP;
	}
	return STORAGE_OK;
}
