/* The spool: one message written once into data_dir/tmp/ and fsynced once,
 * then hard-linked into every recipient's Maildir (deliver.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage_int.h"

/* Attempts at a fresh name before giving up: a clash needs the same
 * second, microsecond, pid and counter, so one retry is already odd. */
#define SPOOL_NAME_TRIES 8

static enum storage_err
spool_fail(struct storage_spool *sp, const char *what)
{
	int saved = errno;

	/* Log text only; truncation is harmless here. */
	(void)snprintf(sp->error, sizeof(sp->error), "spool %s: %s", what,
		       strerror(saved));
	sp->failed = true;
	return STORAGE_ERR_TEMP;
}

enum storage_err
storage_spool_new(const char *data_dir, struct storage_spool **sp_r,
		  const char **error_r)
{
	static char errbuf[256];
	char dir[RB_PATH_MAX], base[STORAGE_NAME_MAX + 1];
	char path[RB_PATH_MAX];
	struct storage_spool *sp;
	int fd = -1;

	*sp_r = NULL;
	if (rb_snprintf(dir, sizeof(dir), "%s/tmp", data_dir) < 0) {
		*error_r = "spool path too long";
		return STORAGE_ERR_PARAMS;
	}
	if (rb_mkdir_p(dir, 0700) < 0)
		goto fail;
	for (int i = 0; i < SPOOL_NAME_TRIES && fd < 0; i++) {
		if (maildir_unique_base(base, sizeof(base)) < 0 ||
		    rb_snprintf(path, sizeof(path), "%s/%s", dir, base) < 0) {
			*error_r = "spool path too long";
			return STORAGE_ERR_PARAMS;
		}
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			  O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			goto fail;
	}
	if (fd < 0)
		goto fail;
	sp = rb_calloc(1, sizeof(*sp));
	sp->path = rb_strdup(path);
	sp->fd = fd;
	sp->buf = rb_malloc(STORAGE_SPOOL_BUF);
	*sp_r = sp;
	return STORAGE_OK;
fail:
	(void)rb_snprintf(errbuf, sizeof(errbuf), "spool create in %s: %s",
			  dir, strerror(errno));
	*error_r = errbuf;
	return STORAGE_ERR_TEMP;
}

static int
spool_flush(struct storage_spool *sp)
{
	if (sp->buf_len == 0)
		return 0;
	if (rb_fault("spool_write")) {
		errno = EIO;
		return -1;
	}
	if (rb_write_all(sp->fd, sp->buf, sp->buf_len) < 0)
		return -1;
	sp->buf_len = 0;
	return 0;
}

enum storage_err
storage_spool_write(struct storage_spool *sp, const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t lfs = 0;

	if (sp->failed)
		return STORAGE_ERR_TEMP;
	if (sp->finished) {
		(void)snprintf(sp->error, sizeof(sp->error),
			       "spool write after finish");
		return STORAGE_ERR_PARAMS;
	}
	/* W= counts what a CRLF reader adds: one CR per LF not already
	 * preceded by CR, the same rule as pop3d's output and
	 * maildir_file_vsize() for other tools' files. */
	for (size_t i = 0; i < len; i++)
		lfs += p[i] == '\n' && (i > 0 ? p[i - 1] : sp->last) != '\r';
	/* Counted before writing so the sizes never disagree with what is
	 * on disk; a u64 cannot realistically overflow but we check. */
	if (sp->size + len < sp->size || sp->vsize + len + lfs < sp->vsize) {
		errno = EFBIG;
		return spool_fail(sp, "size");
	}
	if (sp->buf_len + len > STORAGE_SPOOL_BUF) {
		if (spool_flush(sp) < 0)
			return spool_fail(sp, "write");
	}
	if (len >= STORAGE_SPOOL_BUF) {
		if (rb_fault("spool_write")) {
			errno = EIO;
			return spool_fail(sp, "write");
		}
		if (rb_write_all(sp->fd, p, len) < 0)
			return spool_fail(sp, "write");
	} else {
		memcpy(sp->buf + sp->buf_len, p, len);
		sp->buf_len += len;
	}
	sp->size += len;
	sp->vsize += len + lfs;
	if (len > 0)
		sp->last = p[len - 1];
	return STORAGE_OK;
}

enum storage_err
storage_spool_finish(struct storage_spool *sp)
{
	if (sp->failed)
		return STORAGE_ERR_TEMP;
	if (sp->finished)
		return STORAGE_OK;
	if (spool_flush(sp) < 0)
		return spool_fail(sp, "write");
	if (rb_fault("spool_fsync")) {
		errno = EIO;
		return spool_fail(sp, "fsync");
	}
	if (fsync(sp->fd) < 0)
		return spool_fail(sp, "fsync");
	/* close() can report a deferred write error (NFS). */
	if (close(sp->fd) < 0) {
		sp->fd = -1;
		return spool_fail(sp, "close");
	}
	sp->fd = -1;
	rb_free(&sp->buf);
	sp->finished = true;
	return STORAGE_OK;
}

uint64_t
storage_spool_size(const struct storage_spool *sp)
{
	return sp->size;
}

uint64_t
storage_spool_vsize(const struct storage_spool *sp)
{
	return sp->vsize;
}

const char *
storage_spool_error(const struct storage_spool *sp)
{
	return sp->error[0] != '\0' ? sp->error : "no error";
}

void
storage_spool_free(struct storage_spool **spp)
{
	struct storage_spool *sp = *spp;

	if (sp == NULL)
		return;
	if (sp->fd >= 0)
		close(sp->fd);
	if (sp->path != NULL)
		(void)unlink(sp->path);
	rb_free(&sp->path);
	rb_free(&sp->buf);
	rb_free(spp);
}

enum storage_err
storage_spool_cleanup(const char *data_dir, time_t max_age,
		      unsigned *removed_r, const char **error_r)
{
	static char errbuf[256];
	char dir[RB_PATH_MAX], path[RB_PATH_MAX];
	time_t cutoff = time(NULL) - max_age;
	struct dirent *de;
	DIR *d;

	*removed_r = 0;
	if (rb_snprintf(dir, sizeof(dir), "%s/tmp", data_dir) < 0) {
		*error_r = "spool path too long";
		return STORAGE_ERR_PARAMS;
	}
	if ((d = opendir(dir)) == NULL) {
		if (errno == ENOENT)
			return STORAGE_OK;
		goto fail;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		struct stat sb;

		/* Spool names never start with '.' (maildir_unique_base). */
		if (de->d_name[0] == '.' ||
		    rb_snprintf(path, sizeof(path), "%s/%s", dir,
				de->d_name) < 0 ||
		    lstat(path, &sb) < 0 || !S_ISREG(sb.st_mode) ||
		    sb.st_mtime > cutoff) {
			errno = 0;
			continue;
		}
		if (unlink(path) == 0)
			(*removed_r)++;
		errno = 0;
	}
	if (errno != 0) {
		int saved = errno;

		closedir(d);
		errno = saved;
		goto fail;
	}
	closedir(d);
	return STORAGE_OK;
fail:
	(void)rb_snprintf(errbuf, sizeof(errbuf), "spool cleanup in %s: %s",
			  dir, strerror(errno));
	*error_r = errbuf;
	return STORAGE_ERR_TEMP;
}
