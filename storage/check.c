/* storage_index_check: compare folders and files with the index, change
 * nothing.  It reads the index in one read transaction but the directories
 * as they are: a delivery running at the same time can show up as a
 * passing "file-not-indexed" (linked, not yet committed). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/storage_int.h"

struct check_ctx {
	struct storage *st;
	struct storage_check_item *items;
	size_t count;
	size_t cap;
};

static void
check_add(struct check_ctx *ctx, const char *mailbox, const char *what,
	  const char *fmt, ...) RB_PRINTF(4, 5);

static void
check_add(struct check_ctx *ctx, const char *mailbox, const char *what,
	  const char *fmt, ...)
{
	struct storage_check_item *it;
	va_list ap;

	if (ctx->count >= STORAGE_CHECK_ITEMS_MAX)
		return;
	if (ctx->count == ctx->cap) {
		ctx->cap = ctx->cap == 0 ? 16 : ctx->cap * 2;
		ctx->items = rb_realloc(ctx->items,
					ctx->cap * sizeof(*ctx->items));
	}
	it = &ctx->items[ctx->count++];
	memset(it, 0, sizeof(*it));
	(void)rb_strlcpy(it->mailbox, mailbox, sizeof(it->mailbox));
	(void)rb_strlcpy(it->what, what, sizeof(it->what));
	/* Report text: cutting a long file name short is acceptable. */
	va_start(ap, fmt);
	(void)vsnprintf(it->detail, sizeof(it->detail), fmt, ap);
	va_end(ap);
}

static const char sql_rows[] =
	"SELECT uid, base, flags, size FROM messages WHERE mailbox_id = ?"
	" ORDER BY uid";

/* Size of a file on disk: S= when its name has one, else stat(). */
static uint64_t
file_size(const char *folder, const struct maildir_file *f)
{
	char path[RB_PATH_MAX];
	struct stat sb;

	if (f->size != 0)
		return f->size;
	if (rb_snprintf(path, sizeof(path), "%s/%s/%s", folder,
			maildir_sub_name(f->sub), f->name) < 0 ||
	    stat(path, &sb) < 0)
		return 0;
	return (uint64_t)sb.st_size;
}

static enum storage_err
check_mailbox(struct check_ctx *ctx, int64_t id, const char *name)
{
	char rel[STORAGE_NAME_MAX + 2], folder[RB_PATH_MAX];
	struct storage *st = ctx->st;
	struct maildir_list list;
	sqlite3_stmt *stmt;
	bool *seen;
	int rc;

	if (maildir_folder_rel(name, rel, sizeof(rel)) < 0 ||
	    storage_folder_path(st, rel, folder, sizeof(folder)) < 0)
		return STORAGE_OK;	/* an invalid name cannot be in use */
	if (maildir_list_read(folder, &list) < 0) {
		storage_set_errno(st, "listing %s", folder);
		return STORAGE_ERR_TEMP;
	}
	seen = rb_calloc(list.count + 1, sizeof(*seen));
	if ((stmt = idx_stmt(st, sql_rows)) == NULL) {
		rb_free(&seen);
		maildir_list_free(&list);
		return STORAGE_ERR_TEMP;
	}
	sqlite3_bind_int64(stmt, 1, id);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		uint32_t uid = (uint32_t)sqlite3_column_int64(stmt, 0);
		const char *base = (const char *)sqlite3_column_text(stmt, 1);
		uint32_t flags = (uint32_t)sqlite3_column_int64(stmt, 2);
		uint64_t size = (uint64_t)sqlite3_column_int64(stmt, 3);
		const struct maildir_file *f;
		char fa[8];

		f = base != NULL ? maildir_list_find(&list, base) : NULL;
		if (f == NULL) {
			check_add(ctx, name, "index-no-file", "uid %u %s", uid,
				  base != NULL ? base : "");
			continue;
		}
		seen[f - list.files] = true;
		if (f->flags != flags)
			check_add(ctx, name, "flags-differ",
				  "uid %u index '%s' file %s/%s", uid,
				  storage_flags_format(flags, fa, sizeof(fa)),
				  maildir_sub_name(f->sub), f->name);
		if (file_size(folder, f) != size)
			check_add(ctx, name, "size-differs",
				  "uid %u index %llu file %s/%s", uid,
				  (unsigned long long)size,
				  maildir_sub_name(f->sub), f->name);
	}
	sqlite3_reset(stmt);
	for (size_t i = 0; i < list.count && rc == SQLITE_DONE; i++) {
		if (!seen[i])
			check_add(ctx, name, "file-not-indexed", "%s/%s",
				  maildir_sub_name(list.files[i].sub),
				  list.files[i].name);
	}
	rb_free(&seen);
	maildir_list_free(&list);
	return rc == SQLITE_DONE ? STORAGE_OK : idx_fail(st, "check read");
}

static bool
names_has(char **names, size_t count, const char *name)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(names[i], name) == 0)
			return true;
	}
	return false;
}

static const char sql_read_begin[] = "BEGIN DEFERRED";
static const char sql_mailboxes[] =
	"SELECT id, name FROM mailboxes ORDER BY name <> 'INBOX', name";

static enum storage_err
check_all(struct check_ctx *ctx, char **folders, size_t nfolders)
{
	struct storage *st = ctx->st;
	char **indexed = NULL;
	size_t nindexed = 0, cap = 0;
	enum storage_err err = STORAGE_OK;
	sqlite3_stmt *stmt;
	int rc;

	if ((stmt = idx_stmt(st, sql_mailboxes)) == NULL)
		return STORAGE_ERR_TEMP;
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(stmt, 1);
		int64_t id = sqlite3_column_int64(stmt, 0);

		if (name == NULL)
			continue;
		if (nindexed == cap) {
			cap = cap == 0 ? 16 : cap * 2;
			indexed = rb_realloc(indexed, cap * sizeof(*indexed));
		}
		indexed[nindexed++] = rb_strdup(name);
		if (!names_has(folders, nfolders, name)) {
			check_add(ctx, name, "mailbox-no-folder", "%s", name);
			continue;
		}
		/* A statement of the same connection may run while this
		 * one is stepping; it is a different cached statement. */
		if ((err = check_mailbox(ctx, id, name)) != STORAGE_OK)
			break;
	}
	sqlite3_reset(stmt);
	if (err == STORAGE_OK && rc != SQLITE_DONE)
		err = idx_fail(st, "check mailboxes");
	for (size_t i = 0; i < nfolders && err == STORAGE_OK; i++) {
		if (!names_has(indexed, nindexed, folders[i]))
			check_add(ctx, folders[i], "folder-not-indexed", "%s",
				  folders[i]);
	}
	maildir_folders_free(&indexed, nindexed);
	return err;
}

enum storage_err
storage_index_check(struct storage *st, struct storage_check_item **items_r,
		    size_t *count_r)
{
	struct check_ctx ctx;
	enum storage_err err;
	sqlite3_stmt *stmt;
	char **folders;
	size_t nfolders;
	int rc;

	*items_r = NULL;
	*count_r = 0;
	memset(&ctx, 0, sizeof(ctx));
	ctx.st = st;
	if (maildir_folders_read(st->path, &folders, &nfolders) < 0) {
		storage_set_errno(st, "listing %s", st->path);
		return STORAGE_ERR_TEMP;
	}
	/* One snapshot of the index for the whole comparison. */
	if ((stmt = idx_stmt(st, sql_read_begin)) == NULL) {
		maildir_folders_free(&folders, nfolders);
		return STORAGE_ERR_TEMP;
	}
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc != SQLITE_DONE) {
		maildir_folders_free(&folders, nfolders);
		return idx_fail(st, "begin");
	}
	err = check_all(&ctx, folders, nfolders);
	idx_rollback(st);
	maildir_folders_free(&folders, nfolders);
	if (err != STORAGE_OK) {
		rb_free(&ctx.items);
		return err;
	}
	*items_r = ctx.items;
	*count_r = ctx.count;
	return STORAGE_OK;
}
