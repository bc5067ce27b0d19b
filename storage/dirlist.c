/* Reading Maildir directories: the files of a folder's new/ and cur/, the
 * folders of a user, finding a renamed file by its base, removing trees. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage_int.h"

static int
list_add(struct maildir_list *list, const char *name, const char *base,
	 enum maildir_sub sub, uint64_t size, uint64_t vsize, uint32_t flags)
{
	struct maildir_file *f;

	if (list->count == list->cap) {
		size_t cap = list->cap == 0 ? 64 : list->cap * 2;

		if (cap > STORAGE_SYNC_FILES_MAX) {
			errno = EMFILE;
			return -1;
		}
		list->files = rb_realloc(list->files, cap * sizeof(*f));
		list->cap = cap;
	}
	f = &list->files[list->count++];
	f->name = rb_strdup(name);
	f->base = rb_strdup(base);
	f->sub = sub;
	f->size = size;
	f->vsize = vsize;
	f->flags = flags;
	return 0;
}

static int
file_cmp(const void *a, const void *b)
{
	const struct maildir_file *fa = a, *fb = b;
	int r = strcmp(fa->base, fb->base);

	if (r != 0)
		return r;
	/* cur/ first, so dropping later duplicates keeps the cur/ one. */
	return (int)fb->sub - (int)fa->sub;
}

static int
list_sub(const char *folder, enum maildir_sub sub, struct maildir_list *list)
{
	char path[RB_PATH_MAX], base[STORAGE_NAME_MAX + 1];
	struct dirent *de;
	DIR *dir;
	int ret = 0;

	if (rb_snprintf(path, sizeof(path), "%s/%s", folder,
			maildir_sub_name(sub)) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	dir = opendir(path);
	if (dir == NULL)
		return errno == ENOENT ? 0 : -1;
	errno = 0;
	while ((de = readdir(dir)) != NULL) {
		uint64_t size, vsize;
		uint32_t flags;

		if (de->d_type == DT_DIR)
			continue;
		if (storage_filename_parse(de->d_name, base, sizeof(base),
					   &size, &vsize, &flags) < 0)
			continue;
		if (list_add(list, de->d_name, base, sub, size, vsize,
			     flags) < 0) {
			ret = -1;
			break;
		}
		errno = 0;
	}
	if (ret == 0 && errno != 0)
		ret = -1;
	closedir(dir);
	return ret;
}

int
maildir_list_read(const char *folder, struct maildir_list *list_r)
{
	size_t out = 0;

	memset(list_r, 0, sizeof(*list_r));
	if (list_sub(folder, MAILDIR_NEW, list_r) < 0 ||
	    list_sub(folder, MAILDIR_CUR, list_r) < 0) {
		int saved = errno;

		maildir_list_free(list_r);
		errno = saved;
		return -1;
	}
	if (list_r->count == 0)
		return 0;
	qsort(list_r->files, list_r->count, sizeof(list_r->files[0]),
	      file_cmp);
	for (size_t i = 0; i < list_r->count; i++) {
		struct maildir_file *f = &list_r->files[i];

		if (out > 0 && strcmp(list_r->files[out - 1].base,
				      f->base) == 0) {
			rb_free(&f->name);
			rb_free(&f->base);
			continue;
		}
		list_r->files[out++] = *f;
	}
	list_r->count = out;
	return 0;
}

void
maildir_list_free(struct maildir_list *list)
{
	for (size_t i = 0; i < list->count; i++) {
		rb_free(&list->files[i].name);
		rb_free(&list->files[i].base);
	}
	rb_free(&list->files);
	list->count = list->cap = 0;
}

const struct maildir_file *
maildir_list_find(const struct maildir_list *list, const char *base)
{
	size_t lo = 0, hi = list->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int r = strcmp(base, list->files[mid].base);

		if (r == 0)
			return &list->files[mid];
		if (r < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

int
maildir_find_base(const char *folder, const char *base,
		  enum maildir_sub *sub_r, char *name_r, size_t size)
{
	/* new/ before cur/: files only ever move new -> cur, so a file
	 * moving while we look is still found in cur/. */
	static const enum maildir_sub order[] = { MAILDIR_NEW, MAILDIR_CUR };
	size_t blen = strlen(base);

	for (size_t i = 0; i < RB_N_ELEMENTS(order); i++) {
		char path[RB_PATH_MAX];
		struct dirent *de;
		DIR *dir;

		if (rb_snprintf(path, sizeof(path), "%s/%s", folder,
				maildir_sub_name(order[i])) < 0)
			return -1;
		dir = opendir(path);
		if (dir == NULL) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		while ((de = readdir(dir)) != NULL) {
			if (strncmp(de->d_name, base, blen) != 0 ||
			    (de->d_name[blen] != '\0' &&
			     de->d_name[blen] != ':'))
				continue;
			*sub_r = order[i];
			if (rb_strlcpy(name_r, de->d_name, size) < 0) {
				closedir(dir);
				return -1;
			}
			closedir(dir);
			return 1;
		}
		closedir(dir);
	}
	return 0;
}

int
maildir_file_info(const char *folder, const struct maildir_file *f,
		  int64_t *mtime_ns_r, uint64_t *size_r, uint64_t *vsize_r)
{
	char path[RB_PATH_MAX];
	uint64_t size, vsize;
	struct stat sb;
	int fd, ret;

	if (rb_snprintf(path, sizeof(path), "%s/%s/%s", folder,
			maildir_sub_name(f->sub), f->name) < 0) {
		errno = ENAMETOOLONG;
		return -1;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		errno = EINVAL;
		return -1;
	}
	*mtime_ns_r = (int64_t)sb.st_mtim.tv_sec * 1000000000 +
		      sb.st_mtim.tv_nsec;
	*size_r = f->size != 0 ? f->size : (uint64_t)sb.st_size;
	*vsize_r = f->vsize;
	ret = 0;
	/* Only names from other tools lack W=; then the file is read. */
	if (f->vsize == 0 && sb.st_size > 0) {
		ret = maildir_file_vsize(fd, &size, &vsize);
		if (ret == 0) {
			*vsize_r = vsize;
			if (f->size == 0)
				*size_r = size;
		}
	}
	close(fd);
	return ret;
}

/* ---- folders ---- */

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
maildir_folders_read(const char *user_dir, char ***names_r, size_t *count_r)
{
	char name[RB_MAILBOX_NAME_MAX + 1];
	char **names = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	DIR *dir;
	int dfd;

	dir = opendir(user_dir);
	if (dir == NULL)
		return -1;
	dfd = dirfd(dir);
	names = rb_calloc(cap = 16, sizeof(*names));
	names[count++] = rb_strdup("INBOX");
	while ((de = readdir(dir)) != NULL) {
		char cur[STORAGE_NAME_MAX + 8];
		struct stat sb;

		if (maildir_folder_decode(de->d_name, name, sizeof(name)) < 0)
			continue;
		/* A Maildir++ folder is a real directory with cur/ in it;
		 * symlinks could lead out of the user's tree. */
		if (fstatat(dfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(sb.st_mode))
			continue;
		if (rb_snprintf(cur, sizeof(cur), "%s/cur", de->d_name) < 0 ||
		    fstatat(dfd, cur, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(sb.st_mode))
			continue;
		if (count == cap)
			names = rb_realloc(names, (cap *= 2) * sizeof(*names));
		names[count++] = rb_strdup(name);
	}
	closedir(dir);
	qsort(names + 1, count - 1, sizeof(*names), str_cmp);
	*names_r = names;
	*count_r = count;
	return 0;
}

void
maildir_folders_free(char ***names, size_t count)
{
	if (*names == NULL)
		return;
	for (size_t i = 0; i < count; i++)
		rb_free(&(*names)[i]);
	rb_free(names);
}

/* ---- removal ---- */

static int
rm_at(int dfd, const char *name, unsigned depth)
{
	struct dirent *de;
	DIR *dir;
	int fd, ret = 0;

	if (unlinkat(dfd, name, 0) == 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -1;
	if (depth >= STORAGE_RMTREE_DEPTH_MAX) {
		errno = ELOOP;
		return -1;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0)
		return -1;
	dir = fdopendir(fd);
	if (dir == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (rm_at(fd, de->d_name, depth + 1) < 0) {
			ret = -1;
			break;
		}
	}
	closedir(dir);
	if (ret == 0 && unlinkat(dfd, name, AT_REMOVEDIR) < 0 &&
	    errno != ENOENT)
		ret = -1;
	return ret;
}

int
maildir_rmtree(const char *path)
{
	return rm_at(AT_FDCWD, path, 0);
}
