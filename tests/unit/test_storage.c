/* Unit tests for storage/: names and flags, delivery, UIDs, sync of files
 * written by other tools, mailboxes, quota, index check and rebuild,
 * concurrency and fault injection.  Every test works in its own mkdtemp()
 * data_dir that is removed at the end.
 *
 * Fault-injection tests run in a re-executed copy of this binary
 * ("--fault-child"): rb_fault() reads ROOST_FAULT once per process, and a
 * forked child would inherit the parent's already-parsed state. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage.h"

#define ADDR "alice@example.org"

struct fx {
	char dir[64];
	char user[512];
	struct storage *st;
};

static int
rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_rf(const char *path)
{
	(void)nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	const char *error = NULL;

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/roost-storage-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->user, sizeof(fx->user), "%s/mail/example.org/alice",
		 fx->dir);
	if (storage_open(fx->dir, ADDR, true, &fx->st, &error) != STORAGE_OK) {
		fprintf(stderr, "storage_open: %s\n", error);
		return -1;
	}
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;

	storage_close(&fx->st);
	rm_rf(fx->dir);
	free(fx);
	return 0;
}

static void
reopen(struct fx *fx)
{
	const char *error = NULL;

	storage_close(&fx->st);
	assert_int_equal(storage_open(fx->dir, ADDR, false, &fx->st, &error),
			 STORAGE_OK);
}

/* Delivers body into mailbox; returns the UID. */
static uint32_t
deliver(struct storage *st, const char *data_dir, const char *mailbox,
	const char *body, uint32_t flags)
{
	struct storage_spool *sp = NULL;
	struct storage_delivery *dlv = NULL;
	const char *error = NULL;
	uint32_t uid = 0;

	assert_int_equal(storage_spool_new(data_dir, &sp, &error),
			 STORAGE_OK);
	assert_int_equal(storage_spool_write(sp, body, strlen(body)),
			 STORAGE_OK);
	assert_int_equal(storage_spool_finish(sp), STORAGE_OK);
	assert_int_equal(storage_deliver_link(st, mailbox, sp, flags, 0,
					      &dlv),
			 STORAGE_OK);
	assert_int_equal(storage_deliver_commit(&dlv, NULL, &uid),
			 STORAGE_OK);
	assert_null(dlv);
	storage_spool_free(&sp);
	assert_null(sp);
	return uid;
}

static size_t
count_entries(const char *dir)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] != '.')
			n++;
	}
	closedir(d);
	return n;
}

static size_t
count_sub(const struct fx *fx, const char *folder, const char *sub)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s%s", fx->user, folder, sub);
	return count_entries(path);
}

static bool
has_prefix_entry(const char *dir, const char *prefix)
{
	struct dirent *de;
	bool found = false;
	DIR *d = opendir(dir);

	if (d == NULL)
		return false;
	while ((de = readdir(d)) != NULL)
		found |= strncmp(de->d_name, prefix, strlen(prefix)) == 0;
	closedir(d);
	return found;
}

static void
write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)),
			 (ssize_t)strlen(content));
	close(fd);
}

static void
set_mtime(const char *path, time_t t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };

	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static bool
is_dir(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static struct storage_msg *
list_box(struct storage *st, const char *name, size_t *count_r)
{
	struct storage_mailbox *box = NULL;
	struct storage_msg *msgs = NULL;

	assert_int_equal(storage_mailbox_open(st, name, &box), STORAGE_OK);
	assert_int_equal(storage_msg_list(box, &msgs, count_r), STORAGE_OK);
	storage_mailbox_close(&box);
	assert_null(box);
	return msgs;
}

static size_t
check_count(struct storage *st, const char *what)
{
	struct storage_check_item *items = NULL;
	size_t count = 0, n = 0;

	assert_int_equal(storage_index_check(st, &items, &count), STORAGE_OK);
	for (size_t i = 0; i < count; i++) {
		if (what == NULL || strcmp(items[i].what, what) == 0)
			n++;
		if (what == NULL)
			fprintf(stderr, "check: %s %s %s\n", items[i].mailbox,
				items[i].what, items[i].detail);
	}
	free(items);
	return n;
}

/* ---- names and flags ---- */

static void
test_flags_roundtrip(void **state)
{
	char buf[8];

	(void)state;
	for (uint32_t f = 0; f <= STORAGE_FLAGS_ALL; f++) {
		const char *s = storage_flags_format(f, buf, sizeof(buf));

		assert_int_equal(storage_flags_parse(s), f);
		for (size_t i = 1; s[0] != '\0' && s[i] != '\0'; i++)
			assert_true(s[i - 1] < s[i]);
	}
	assert_string_equal(storage_flags_format(STORAGE_FLAGS_ALL, buf,
						 sizeof(buf)),
			    "DFPRST");
	assert_int_equal(storage_flags_parse("Sab"), STORAGE_FLAG_SEEN);
	assert_int_equal(storage_flags_parse("RT"),
			 STORAGE_FLAG_ANSWERED | STORAGE_FLAG_DELETED);
	assert_int_equal(storage_flags_parse("xyz,1"), 0);
}

static void
test_filename_parse(void **state)
{
	char base[256], small[8];
	uint64_t size = 9, vsize = 9;
	uint32_t flags = 9;

	(void)state;
	assert_int_equal(storage_filename_parse(
				 "1700000000.M123456P42Q1.mx,S=1234,W=1260"
				 ":2,FS",
				 base, sizeof(base), &size, &vsize, &flags),
			 0);
	assert_string_equal(base, "1700000000.M123456P42Q1.mx,S=1234,W=1260");
	assert_int_equal(size, 1234);
	assert_int_equal(vsize, 1260);
	assert_int_equal(flags, STORAGE_FLAG_FLAGGED | STORAGE_FLAG_SEEN);

	/* mutt/qmail: no sizes, no info (new/). */
	assert_int_equal(storage_filename_parse("1700000000.12345_1.host",
						base, sizeof(base), &size,
						&vsize, &flags),
			 0);
	assert_string_equal(base, "1700000000.12345_1.host");
	assert_int_equal(size, 0);
	assert_int_equal(vsize, 0);
	assert_int_equal(flags, 0);

	/* Dovecot with keyword letters; fields in another order. */
	assert_int_equal(storage_filename_parse(
				 "1.M2P3.host,W=12,S=10:2,RSab", base,
				 sizeof(base), &size, &vsize, &flags),
			 0);
	assert_int_equal(size, 10);
	assert_int_equal(vsize, 12);
	assert_int_equal(flags, STORAGE_FLAG_ANSWERED | STORAGE_FLAG_SEEN);

	/* Malformed size fields are ignored, not half-trusted. */
	assert_int_equal(storage_filename_parse("1.x.h,S=12a,W=7:2,", base,
						sizeof(base), &size, &vsize,
						&flags),
			 0);
	assert_int_equal(size, 0);
	assert_int_equal(vsize, 7);
	assert_int_equal(flags, 0);
	/* ":1," carries no flags. */
	assert_int_equal(storage_filename_parse("1.x.h:1,S", base,
						sizeof(base), NULL, NULL,
						&flags),
			 0);
	assert_string_equal(base, "1.x.h");
	assert_int_equal(flags, 0);

	assert_int_equal(storage_filename_parse(".hidden", base, sizeof(base),
						&size, &vsize, &flags),
			 -1);
	assert_int_equal(storage_filename_parse("", base, sizeof(base), &size,
						&vsize, &flags),
			 -1);
	assert_int_equal(storage_filename_parse(":2,S", base, sizeof(base),
						&size, &vsize, &flags),
			 -1);
	assert_int_equal(storage_filename_parse("a/b", base, sizeof(base),
						&size, &vsize, &flags),
			 -1);
	assert_int_equal(storage_filename_parse("1234567890.x", small,
						sizeof(small), &size, &vsize,
						&flags),
			 -1);
}

static void
test_mailbox_name_valid(void **state)
{
	static const char *const good[] = {
		"INBOX", "inbox", "Sent", "Archive/2026", "a.b", "100%",
		"~x", "a b", "\xc3\x9c\x62\x65r", "&AOQ-bc", "INBOX/sub",
	};
	static const char *const evil[] = {
		"", ".", "..", "a/../b", "a/./b", "a//b", "/a", "a/", "..a/..",
		"../x", "a/..", "\x01", "a\x1f\x62", "a\x7f", "\xff",
		"\xc0\xaf", "\xed\xa0\x80", "a\nb",
	};
	char name[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!storage_mailbox_name_valid(good[i]))
			fail_msg("refused good name '%s'", good[i]);
	}
	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		if (storage_mailbox_name_valid(evil[i]))
			fail_msg("accepted evil name '%s'", evil[i]);
	}
	assert_false(storage_mailbox_name_valid(NULL));
	/* ".." inside a longer component is fine ("a..b"), as a whole not. */
	assert_true(storage_mailbox_name_valid("a..b"));

	/* Length: 255 bytes fit, 256 do not; escaping counts on disk. */
	memset(name, 'x', 255);
	name[255] = '\0';
	assert_false(storage_mailbox_name_valid(name));	/* '.' + 255 */
	name[254] = '\0';
	assert_true(storage_mailbox_name_valid(name));
	memset(name, 'x', 256);
	name[256] = '\0';
	assert_false(storage_mailbox_name_valid(name));
	memset(name, '.', 100);
	name[100] = '\0';
	assert_false(storage_mailbox_name_valid(name));	/* %2E x 100 */

	/* Depth: 32 levels fit, 33 do not. */
	for (int i = 0; i < 33; i++) {
		name[2 * i] = 'a';
		name[2 * i + 1] = '/';
	}
	name[2 * 32 - 1] = '\0';	/* a/a/.../a: 32 levels */
	assert_true(storage_mailbox_name_valid(name));
	name[2 * 32 - 1] = '/';
	name[2 * 33 - 1] = '\0';	/* 33 levels */
	assert_false(storage_mailbox_name_valid(name));
}

static void
test_address_valid(void **state)
{
	static const char *const good[] = {
		"alice@example.org", "a@b", "Mixed.Case@Example.COM",
		"first.last+tag@sub.example.org", "x@y@z",
	};
	static const char *const evil[] = {
		"noat", "@example.org", "alice@", ".alice@example.org",
		"..@example.org", "alice@.example.org", "alice@..",
		"a/b@example.org", "alice@exa/mple.org", "al\x01ice@x.org",
		"alice@ex\x7f.org", "alice@x.org\n",
	};
	char addr[512];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!storage_address_valid(good[i]))
			fail_msg("refused good address '%s'", good[i]);
	}
	for (size_t i = 0; i < sizeof(evil) / sizeof(evil[0]); i++) {
		if (storage_address_valid(evil[i]))
			fail_msg("accepted evil address '%s'", evil[i]);
	}
	memset(addr, 'l', 65);
	snprintf(addr + 65, sizeof(addr) - 65, "@example.org");
	assert_false(storage_address_valid(addr));
	snprintf(addr + 64, sizeof(addr) - 64, "@example.org");
	assert_true(storage_address_valid(addr));
	assert_false(storage_address_valid(NULL));
}

/* ---- delivery and UIDs ---- */

/* Spools a killed process left in data_dir/tmp go; a live one and files
 * that are not spools stay. */
static void
test_spool_cleanup(void **state)
{
	struct fx *fx = *state;
	struct storage_spool *sp = NULL;
	const char *error = NULL;
	char stale[256], dot[256], missing[256];
	struct timespec old[2];
	unsigned removed = 99;
	int fd;

	assert_int_equal(storage_spool_new(fx->dir, &sp, &error), STORAGE_OK);
	assert_int_equal(storage_spool_write(sp, "live\n", 5), STORAGE_OK);
	snprintf(stale, sizeof(stale), "%s/tmp/1700000000.M1P1Q1.host",
		 fx->dir);
	snprintf(dot, sizeof(dot), "%s/tmp/.keep", fx->dir);
	old[0].tv_sec = old[1].tv_sec = time(NULL) - RB_SPOOL_STALE_SECONDS -
					60;
	old[0].tv_nsec = old[1].tv_nsec = 0;
	for (int i = 0; i < 2; i++) {
		const char *path = i == 0 ? stale : dot;

		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	}
	assert_int_equal(storage_spool_cleanup(fx->dir, RB_SPOOL_STALE_SECONDS,
					       &removed, &error), STORAGE_OK);
	assert_int_equal(removed, 1);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(dot, F_OK), 0);
	/* the live spool is untouched and still finishes */
	assert_int_equal(storage_spool_finish(sp), STORAGE_OK);
	storage_spool_free(&sp);
	unlink(dot);
	/* no tmp/ yet (a fresh data_dir) is not an error */
	snprintf(missing, sizeof(missing), "%s/none", fx->dir);
	assert_int_equal(storage_spool_cleanup(missing, 1, &removed, &error),
			 STORAGE_OK);
	assert_int_equal(removed, 0);
}

static void
test_spool_sizes(void **state)
{
	struct fx *fx = *state;
	struct storage_spool *sp = NULL;
	const char *error = NULL;
	char big[70000];

	assert_int_equal(storage_spool_new(fx->dir, &sp, &error), STORAGE_OK);
	assert_int_equal(storage_spool_write(sp, "a\n", 2), STORAGE_OK);
	assert_int_equal(storage_spool_write(sp, "b", 1), STORAGE_OK);
	assert_int_equal(storage_spool_write(sp, "\n", 1), STORAGE_OK);
	memset(big, 'z', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	assert_int_equal(storage_spool_write(sp, big, sizeof(big)),
			 STORAGE_OK);
	assert_int_equal(storage_spool_finish(sp), STORAGE_OK);
	assert_int_equal(storage_spool_size(sp), 4 + sizeof(big));
	assert_int_equal(storage_spool_vsize(sp), 4 + 2 + sizeof(big) + 1);
	assert_int_equal(storage_spool_write(sp, "x", 1), STORAGE_ERR_PARAMS);
	storage_spool_free(&sp);
	/* The spool file itself is gone after free. */
	{
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "%s/tmp", fx->dir);
		assert_int_equal(count_entries(tmp), 0);
	}
}

static void
test_uid_no_reuse(void **state)
{
	struct fx *fx = *state;
	struct storage_mailbox *box = NULL;
	struct storage_mailbox_info info;
	struct storage_msg *msgs;
	size_t count;
	uint32_t uid;

	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "1\n", 0), 1);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "2\n", 0), 2);
	assert_int_equal(deliver(fx->st, fx->dir, "inbox", "3\n", 0), 3);

	assert_int_equal(storage_mailbox_open(fx->st, "INBOX", &box),
			 STORAGE_OK);
	uid = 3;
	assert_int_equal(storage_msg_expunge(box, &uid, 1), STORAGE_OK);
	storage_mailbox_close(&box);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "4\n", 0), 4);

	reopen(fx);
	assert_int_equal(storage_mailbox_open(fx->st, "INBOX", &box),
			 STORAGE_OK);
	uid = 2;
	assert_int_equal(storage_msg_expunge(box, &uid, 1), STORAGE_OK);
	/* Missing UIDs are ignored. */
	uid = 99;
	assert_int_equal(storage_msg_expunge(box, &uid, 1), STORAGE_OK);
	storage_mailbox_close(&box);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "5\n", 0), 5);

	msgs = list_box(fx->st, "INBOX", &count);
	assert_int_equal(count, 3);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(msgs[1].uid, 4);
	assert_int_equal(msgs[2].uid, 5);
	assert_int_equal(msgs[0].size, 2);
	assert_int_equal(msgs[0].vsize, 3);
	assert_int_equal(strlen(msgs[0].guid), 36);
	assert_string_not_equal(msgs[0].guid, msgs[1].guid);
	assert_true(msgs[2].modseq > msgs[1].modseq);
	assert_int_equal(strncmp(msgs[0].path, "new/", 4), 0);
	storage_msg_list_free(&msgs, count);
	assert_null(msgs);

	assert_int_equal(storage_mailbox_status(fx->st, "INBOX", &info),
			 STORAGE_OK);
	assert_int_equal(info.uidnext, 6);
	assert_int_equal(info.messages, 3);
	assert_int_equal(info.unseen, 3);
	assert_int_equal(info.bytes, 6);
	assert_int_equal(info.vbytes, 9);
	assert_int_equal(check_count(fx->st, NULL), 0);
}

static void
test_deliver_modes_and_flags(void **state)
{
	struct fx *fx = *state;
	struct storage_msg *msgs;
	char path[1024];
	struct stat sb;
	size_t count;

	deliver(fx->st, fx->dir, "INBOX", "hello\n",
		STORAGE_FLAG_SEEN | STORAGE_FLAG_DRAFT);
	msgs = list_box(fx->st, "INBOX", &count);
	assert_int_equal(count, 1);
	/* Delivered with flags: straight to cur/ with its info. */
	assert_int_equal(strncmp(msgs[0].path, "cur/", 4), 0);
	assert_non_null(strstr(msgs[0].path, ",S=6,W=7:2,DS"));
	assert_int_equal(msgs[0].flags,
			 STORAGE_FLAG_SEEN | STORAGE_FLAG_DRAFT);
	snprintf(path, sizeof(path), "%s/%s", storage_path(fx->st),
		 msgs[0].path);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	storage_msg_list_free(&msgs, count);

	assert_int_equal(stat(fx->user, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	snprintf(path, sizeof(path), "%s/roost.db", fx->user);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	snprintf(path, sizeof(path), "%s/tmp", fx->dir);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0700);
	assert_string_equal(storage_path(fx->st), fx->user);
}

static void
test_set_flags_and_open(void **state)
{
	struct fx *fx = *state;
	struct storage_mailbox *box = NULL;
	struct storage_msg *msgs;
	char path[1024], path2[1024], buf[64];
	uint64_t modseq;
	size_t count;
	ssize_t n;
	int fd;

	deliver(fx->st, fx->dir, "INBOX", "body\n", 0);
	msgs = list_box(fx->st, "INBOX", &count);
	modseq = msgs[0].modseq;
	storage_msg_list_free(&msgs, count);

	assert_int_equal(storage_mailbox_open(fx->st, "INBOX", &box),
			 STORAGE_OK);
	assert_int_equal(storage_msg_set_flags(box, 1,
					       STORAGE_FLAG_SEEN |
						       STORAGE_FLAG_FLAGGED,
					       "$Label1 work"),
			 STORAGE_OK);
	assert_int_equal(storage_msg_set_flags(box, 7, 0, NULL),
			 STORAGE_ERR_NOTFOUND);
	assert_int_equal(storage_msg_set_flags(box, 1, 0, "bad\x01kw"),
			 STORAGE_ERR_PARAMS);
	assert_int_equal(storage_msg_list(box, &msgs, &count), STORAGE_OK);
	assert_int_equal(count, 1);
	assert_int_equal(msgs[0].flags,
			 STORAGE_FLAG_SEEN | STORAGE_FLAG_FLAGGED);
	assert_string_equal(msgs[0].keywords, "$Label1 work");
	assert_true(msgs[0].modseq > modseq);
	modseq = msgs[0].modseq;
	/* new/ -> cur/ with the flag letters in order. */
	assert_int_equal(strncmp(msgs[0].path, "cur/", 4), 0);
	assert_non_null(strstr(msgs[0].path, ":2,FS"));
	assert_int_equal(count_sub(fx, "", "new"), 0);
	snprintf(path, sizeof(path), "%s/%s", fx->user, msgs[0].path);
	storage_msg_list_free(&msgs, count);

	/* Another tool renames it (flags R S, keeps its keyword letter). */
	snprintf(path2, sizeof(path2), "%.*s:2,RSa",
		 (int)(strstr(path, ":2,") - path), path);
	assert_int_equal(rename(path, path2), 0);
	/* msg_open finds it again without a sync. */
	assert_int_equal(storage_msg_open(box, 1, &fd), STORAGE_OK);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, 5);
	assert_memory_equal(buf, "body\n", 5);
	assert_int_equal(storage_msg_list(box, &msgs, &count), STORAGE_OK);
	assert_int_equal(msgs[0].flags,
			 STORAGE_FLAG_ANSWERED | STORAGE_FLAG_SEEN);
	assert_true(msgs[0].modseq > modseq);
	storage_msg_list_free(&msgs, count);

	/* Our next flag change keeps the foreign keyword letter. */
	assert_int_equal(storage_msg_set_flags(box, 1, STORAGE_FLAG_DELETED,
					       NULL),
			 STORAGE_OK);
	assert_int_equal(storage_msg_list(box, &msgs, &count), STORAGE_OK);
	assert_non_null(strstr(msgs[0].path, ":2,Ta"));
	assert_string_equal(msgs[0].keywords, "$Label1 work");
	storage_msg_list_free(&msgs, count);

	assert_int_equal(storage_msg_open(box, 42, &fd),
			 STORAGE_ERR_NOTFOUND);
	storage_mailbox_close(&box);
	assert_int_equal(check_count(fx->st, NULL), 0);
}

/* The spool on another file system: link() fails with EXDEV and the
 * message is copied into the Maildir's tmp/, fsynced and renamed. */
static void
test_deliver_exdev_copy(void **state)
{
	struct fx *fx = *state;
	struct storage_msg *msgs;
	char shm[] = "/dev/shm/roost-spool-XXXXXX";
	char link_path[256], path[1024], buf[64];
	struct stat a, b;
	size_t count;
	ssize_t n;
	int fd;

	if (stat("/dev/shm", &a) < 0 || stat(fx->dir, &b) < 0 ||
	    a.st_dev == b.st_dev || mkdtemp(shm) == NULL) {
		skip();
		return;
	}
	snprintf(link_path, sizeof(link_path), "%s/tmp", fx->dir);
	assert_int_equal(symlink(shm, link_path), 0);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "copied\n", 0), 1);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "again\n",
				 STORAGE_FLAG_SEEN),
			 2);
	msgs = list_box(fx->st, "INBOX", &count);
	assert_int_equal(count, 2);
	snprintf(path, sizeof(path), "%s/%s", fx->user, msgs[0].path);
	assert_int_equal(stat(path, &b), 0);
	assert_int_equal(b.st_mode & 0777, 0600);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "copied\n", 7);
	assert_non_null(strstr(msgs[1].path, ":2,S"));
	storage_msg_list_free(&msgs, count);
	assert_int_equal(count_sub(fx, "", "tmp"), 0);
	assert_int_equal(count_entries(shm), 0);
	assert_int_equal(check_count(fx->st, NULL), 0);
	assert_int_equal(unlink(link_path), 0);
	assert_int_equal(rmdir(shm), 0);
}

/* ---- files from other tools ---- */

static void
test_external_pickup(void **state)
{
	struct fx *fx = *state;
	struct storage_mailbox *box = NULL;
	struct storage_mailbox_info info;
	struct storage_msg *msgs;
	char path[1024];
	uint64_t hms;
	size_t count;

	deliver(fx->st, fx->dir, "INBOX", "ours\n", 0);
	/* mutt: LF file in new/, no sizes; CRLF file in cur/ with flags. */
	snprintf(path, sizeof(path), "%s/new/1700000100.123_4.mutthost",
		 fx->user);
	write_file(path, "a\nb\n");
	set_mtime(path, 1700000100);
	snprintf(path, sizeof(path), "%s/cur/1700000050.5_6.mutthost:2,S",
		 fx->user);
	write_file(path, "a\r\nb\r\n");
	set_mtime(path, 1700000050);
	/* Another tool's name with sizes: trusted without reading. */
	snprintf(path, sizeof(path), "%s/new/1700000200.M1P1.other,S=5,W=7",
		 fx->user);
	write_file(path, "12\n4\n");
	set_mtime(path, 1700000200);
	/* Junk that is not a message. */
	snprintf(path, sizeof(path), "%s/new/.dotfile", fx->user);
	write_file(path, "x");
	snprintf(path, sizeof(path), "%s/cur/subdir", fx->user);
	assert_int_equal(mkdir(path, 0700), 0);

	msgs = list_box(fx->st, "INBOX", &count);
	assert_int_equal(count, 4);
	assert_int_equal(msgs[0].uid, 1);
	/* The rest in mtime order. */
	assert_int_equal(msgs[1].uid, 2);
	assert_non_null(strstr(msgs[1].path, "1700000050.5_6"));
	assert_int_equal(msgs[1].flags, STORAGE_FLAG_SEEN);
	assert_int_equal(msgs[1].size, 6);
	assert_int_equal(msgs[1].vsize, 6);
	assert_int_equal(msgs[1].internal_date, 1700000050);
	assert_int_equal(msgs[2].uid, 3);
	assert_non_null(strstr(msgs[2].path, "1700000100.123_4"));
	assert_int_equal(msgs[2].size, 4);
	assert_int_equal(msgs[2].vsize, 6);
	assert_int_equal(msgs[2].flags, 0);
	assert_int_equal(msgs[3].uid, 4);
	assert_int_equal(msgs[3].size, 5);
	assert_int_equal(msgs[3].vsize, 7);
	storage_msg_list_free(&msgs, count);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "x\n", 0), 5);

	/* A file removed behind our back loses its row and bumps modseq. */
	assert_int_equal(storage_mailbox_status(fx->st, "INBOX", &info),
			 STORAGE_OK);
	hms = info.highestmodseq;
	snprintf(path, sizeof(path), "%s/new/1700000100.123_4.mutthost",
		 fx->user);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(storage_mailbox_open(fx->st, "INBOX", &box),
			 STORAGE_OK);
	assert_int_equal(storage_msg_list(box, &msgs, &count), STORAGE_OK);
	assert_int_equal(count, 4);
	assert_int_equal(msgs[2].uid, 4);
	storage_msg_list_free(&msgs, count);
	storage_mailbox_close(&box);
	assert_int_equal(storage_mailbox_status(fx->st, "INBOX", &info),
			 STORAGE_OK);
	assert_true(info.highestmodseq > hms);
	assert_int_equal(check_count(fx->st, NULL), 0);
}

/* An unchanged folder is not rescanned: with new/ and cur/ mtimes equal
 * to the stored ones, a file slipped in is not seen until a directory
 * changes. */
static void
test_sync_cheap(void **state)
{
	struct fx *fx = *state;
	struct storage_mailbox *box = NULL;
	struct storage_msg *msgs;
	char newdir[1024], curdir[1024], path[2048];
	size_t count;

	snprintf(newdir, sizeof(newdir), "%s/new", fx->user);
	snprintf(curdir, sizeof(curdir), "%s/cur", fx->user);
	set_mtime(newdir, 1600000000);
	set_mtime(curdir, 1600000000);
	assert_int_equal(storage_mailbox_open(fx->st, "INBOX", &box),
			 STORAGE_OK);

	snprintf(path, sizeof(path), "%s/1600000001.1_1.sneaky", newdir);
	write_file(path, "x\n");
	set_mtime(newdir, 1600000000);
	assert_int_equal(storage_mailbox_sync(box), STORAGE_OK);
	assert_int_equal(storage_msg_list(box, &msgs, &count), STORAGE_OK);
	assert_int_equal(count, 0);
	storage_msg_list_free(&msgs, count);

	set_mtime(newdir, 1600000005);
	assert_int_equal(storage_mailbox_sync(box), STORAGE_OK);
	assert_int_equal(storage_msg_list(box, &msgs, &count), STORAGE_OK);
	assert_int_equal(count, 1);
	storage_msg_list_free(&msgs, count);
	storage_mailbox_close(&box);
}

/* ---- mailboxes ---- */

static void
test_mailbox_ops(void **state)
{
	struct fx *fx = *state;
	struct storage_mailbox_info *list = NULL, info;
	struct storage_msg *msgs;
	char path[1024];
	uint32_t uidv_archive;
	size_t count;

	assert_int_equal(storage_mailbox_create(fx->st, "Archive"),
			 STORAGE_OK);
	assert_int_equal(storage_mailbox_create(fx->st, "Archive/2026"),
			 STORAGE_OK);
	assert_int_equal(storage_mailbox_create(fx->st, "a.b%c~"), STORAGE_OK);
	assert_int_equal(storage_mailbox_create(fx->st, "Sent"), STORAGE_OK);
	assert_int_equal(storage_mailbox_create(fx->st, "Archive"),
			 STORAGE_ERR_EXISTS);
	assert_int_equal(storage_mailbox_create(fx->st, "inbox"),
			 STORAGE_ERR_EXISTS);
	assert_int_equal(storage_mailbox_create(fx->st, "a/../b"),
			 STORAGE_ERR_PARAMS);
	assert_int_equal(storage_mailbox_create(fx->st, "/etc"),
			 STORAGE_ERR_PARAMS);

	snprintf(path, sizeof(path), "%s/.Archive/cur", fx->user);
	assert_true(is_dir(path));
	snprintf(path, sizeof(path), "%s/.Archive.2026/tmp", fx->user);
	assert_true(is_dir(path));
	snprintf(path, sizeof(path), "%s/.Archive.2026/maildirfolder",
		 fx->user);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/.a%%2Eb%%25c%%7E/new", fx->user);
	assert_true(is_dir(path));

	assert_int_equal(storage_mailbox_list(fx->st, &list, &count),
			 STORAGE_OK);
	assert_int_equal(count, 5);
	assert_string_equal(list[0].name, "INBOX");
	assert_string_equal(list[1].name, "Archive");
	assert_string_equal(list[2].name, "Archive/2026");
	assert_string_equal(list[3].name, "Sent");
	assert_string_equal(list[3].special_use, "\\Sent");
	assert_string_equal(list[4].name, "a.b%c~");
	for (size_t i = 0; i < count; i++) {
		for (size_t j = i + 1; j < count; j++)
			assert_int_not_equal(list[i].uidvalidity,
					     list[j].uidvalidity);
	}
	assert_true(list[0].subscribed);
	assert_false(list[1].subscribed);
	free(list);

	assert_int_equal(storage_mailbox_subscribe(fx->st, "Archive", true),
			 STORAGE_OK);
	assert_int_equal(storage_mailbox_subscribe(fx->st, "Nope", true),
			 STORAGE_ERR_NOTFOUND);
	assert_int_equal(storage_mailbox_status(fx->st, "Archive", &info),
			 STORAGE_OK);
	assert_true(info.subscribed);
	uidv_archive = info.uidvalidity;

	assert_int_equal(deliver(fx->st, fx->dir, "Archive/2026", "old\n", 0),
			 1);
	/* Renaming the parent renames the child. */
	assert_int_equal(storage_mailbox_rename(fx->st, "Archive", "Old"),
			 STORAGE_OK);
	snprintf(path, sizeof(path), "%s/.Old.2026/new", fx->user);
	assert_true(is_dir(path));
	snprintf(path, sizeof(path), "%s/.Archive", fx->user);
	assert_false(is_dir(path));
	snprintf(path, sizeof(path), "%s/.Archive.2026", fx->user);
	assert_false(is_dir(path));
	assert_int_equal(storage_mailbox_status(fx->st, "Old", &info),
			 STORAGE_OK);
	assert_int_equal(info.uidvalidity, uidv_archive);
	assert_int_equal(storage_mailbox_status(fx->st, "Archive", &info),
			 STORAGE_ERR_NOTFOUND);
	msgs = list_box(fx->st, "Old/2026", &count);
	assert_int_equal(count, 1);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(strncmp(msgs[0].path, ".Old.2026/new/", 14), 0);
	snprintf(path, sizeof(path), "%s/%s", fx->user, msgs[0].path);
	assert_int_equal(access(path, R_OK), 0);
	storage_msg_list_free(&msgs, count);

	assert_int_equal(storage_mailbox_rename(fx->st, "Old", "Sent"),
			 STORAGE_ERR_EXISTS);
	assert_int_equal(storage_mailbox_rename(fx->st, "Nope", "X"),
			 STORAGE_ERR_NOTFOUND);
	assert_int_equal(storage_mailbox_rename(fx->st, "Old", "Old/x"),
			 STORAGE_ERR_PARAMS);
	assert_int_equal(storage_mailbox_rename(fx->st, "Old", "INBOX"),
			 STORAGE_ERR_EXISTS);
	/* A folder on disk that the index does not know is not replaced. */
	snprintf(path, sizeof(path), "%s/.Taken", fx->user);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(storage_mailbox_rename(fx->st, "Sent", "Taken"),
			 STORAGE_ERR_EXISTS);
	snprintf(path, sizeof(path), "%s/.Sent/cur", fx->user);
	assert_true(is_dir(path));
	snprintf(path, sizeof(path), "%s/.Taken", fx->user);
	assert_int_equal(rmdir(path), 0);

	/* Delete leaves children (Maildir++ is flat). */
	assert_int_equal(storage_mailbox_delete(fx->st, "Old"), STORAGE_OK);
	snprintf(path, sizeof(path), "%s/.Old", fx->user);
	assert_false(is_dir(path));
	snprintf(path, sizeof(path), "%s/.Old.2026", fx->user);
	assert_true(is_dir(path));
	assert_int_equal(storage_mailbox_delete(fx->st, "Old"),
			 STORAGE_ERR_NOTFOUND);
	assert_int_equal(storage_mailbox_delete(fx->st, "INBOX"),
			 STORAGE_ERR_PERM);
	assert_int_equal(storage_mailbox_delete(fx->st, "Old/2026"),
			 STORAGE_OK);
	assert_int_equal(storage_mailbox_delete(fx->st, "a.b%c~"), STORAGE_OK);
	snprintf(path, sizeof(path), "%s/.a%%2Eb%%25c%%7E", fx->user);
	assert_false(is_dir(path));
	/* On-disk length limit exactly: '.' + 84 * "%7E" + "xx" is 255. */
	{
		char name[128];

		memset(name, '~', 84);
		snprintf(name + 84, sizeof(name) - 84, "xx");
		assert_int_equal(storage_mailbox_create(fx->st, name),
				 STORAGE_OK);
		snprintf(name + 84, sizeof(name) - 84, "xxx");
		assert_int_equal(storage_mailbox_create(fx->st, name),
				 STORAGE_ERR_PARAMS);
		name[86] = '\0';
		assert_int_equal(storage_mailbox_delete(fx->st, name),
				 STORAGE_OK);
	}
	/* A recreated mailbox gets a new UIDVALIDITY. */
	assert_int_equal(storage_mailbox_create(fx->st, "Archive"),
			 STORAGE_OK);
	assert_int_equal(storage_mailbox_status(fx->st, "Archive", &info),
			 STORAGE_OK);
	assert_int_not_equal(info.uidvalidity, uidv_archive);
	/* No trash left in the user dir. */
	assert_false(has_prefix_entry(fx->user, "..deleted"));
	assert_int_equal(check_count(fx->st, NULL), 0);
}

static void
test_rename_inbox(void **state)
{
	struct fx *fx = *state;
	struct storage_mailbox_info info;
	struct storage_msg *msgs;
	size_t count;

	deliver(fx->st, fx->dir, "INBOX", "one\n", 0);
	deliver(fx->st, fx->dir, "INBOX", "two\n", STORAGE_FLAG_SEEN);
	assert_int_equal(storage_mailbox_rename(fx->st, "INBOX", "Saved"),
			 STORAGE_OK);
	msgs = list_box(fx->st, "Saved", &count);
	assert_int_equal(count, 2);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(msgs[1].uid, 2);
	assert_int_equal(msgs[1].flags, STORAGE_FLAG_SEEN);
	storage_msg_list_free(&msgs, count);
	msgs = list_box(fx->st, "INBOX", &count);
	assert_int_equal(count, 0);
	storage_msg_list_free(&msgs, count);
	assert_int_equal(count_sub(fx, "", "new"), 0);
	assert_int_equal(count_sub(fx, "", "cur"), 0);
	assert_int_equal(count_sub(fx, ".Saved/", "new"), 1);
	assert_int_equal(count_sub(fx, ".Saved/", "cur"), 1);
	/* INBOX does not reuse the UIDs that moved away. */
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "three\n", 0), 3);
	assert_int_equal(storage_mailbox_status(fx->st, "Saved", &info),
			 STORAGE_OK);
	assert_int_equal(info.uidnext, 3);
	assert_int_equal(check_count(fx->st, NULL), 0);
}

/* ---- quota ---- */

static void
test_quota(void **state)
{
	struct fx *fx = *state;
	struct storage_quota q = { .bytes = 0, .messages = 2 };
	struct storage_spool *sp = NULL;
	struct storage_delivery *dlv = NULL;
	struct storage_usage u;
	const char *error;
	uint32_t uid = 0;

	deliver(fx->st, fx->dir, "INBOX", "12345\n", 0);
	assert_int_equal(storage_mailbox_create(fx->st, "Other"), STORAGE_OK);
	deliver(fx->st, fx->dir, "Other", "123\n", 0);
	assert_int_equal(storage_usage(fx->st, &u), STORAGE_OK);
	assert_int_equal(u.bytes, 10);
	assert_int_equal(u.messages, 2);

	assert_int_equal(storage_spool_new(fx->dir, &sp, &error), STORAGE_OK);
	assert_int_equal(storage_spool_write(sp, "abc\n", 4), STORAGE_OK);
	assert_int_equal(storage_spool_finish(sp), STORAGE_OK);
	assert_int_equal(storage_deliver_link(fx->st, "INBOX", sp, 0, 0, &dlv),
			 STORAGE_OK);
	assert_int_equal(count_sub(fx, "", "new"), 2);
	assert_int_equal(storage_deliver_commit(&dlv, &q, &uid),
			 STORAGE_ERR_QUOTA);
	assert_null(dlv);
	assert_int_equal(count_sub(fx, "", "new"), 1);

	q.messages = 0;
	q.bytes = 13;
	assert_int_equal(storage_deliver_link(fx->st, "INBOX", sp, 0, 0, &dlv),
			 STORAGE_OK);
	assert_int_equal(storage_deliver_commit(&dlv, &q, &uid),
			 STORAGE_ERR_QUOTA);
	q.bytes = 14;
	assert_int_equal(storage_deliver_link(fx->st, "INBOX", sp, 0, 0, &dlv),
			 STORAGE_OK);
	assert_int_equal(storage_deliver_commit(&dlv, &q, &uid), STORAGE_OK);
	assert_int_equal(uid, 2);
	/* Abort unlinks. */
	assert_int_equal(storage_deliver_link(fx->st, "INBOX", sp, 0, 0, &dlv),
			 STORAGE_OK);
	storage_deliver_abort(&dlv);
	assert_null(dlv);
	assert_int_equal(count_sub(fx, "", "new"), 2);
	/* A folder whose new/ was removed by hand heals itself. */
	{
		char path[1024];

		assert_int_equal(storage_mailbox_create(fx->st, "Heal"),
				 STORAGE_OK);
		snprintf(path, sizeof(path), "%s/.Heal/new", fx->user);
		assert_int_equal(rmdir(path), 0);
		assert_int_equal(storage_deliver_link(fx->st, "Heal", sp, 0, 0,
						      &dlv),
				 STORAGE_OK);
		assert_int_equal(storage_deliver_commit(&dlv, NULL, &uid),
				 STORAGE_OK);
		assert_int_equal(uid, 1);
		assert_int_equal(count_sub(fx, ".Heal/", "new"), 1);
	}
	/* Unknown mailbox. */
	assert_int_equal(storage_deliver_link(fx->st, "Nope", sp, 0, 0, &dlv),
			 STORAGE_ERR_NOTFOUND);
	assert_int_equal(storage_deliver_link(fx->st, "../x", sp, 0, 0, &dlv),
			 STORAGE_ERR_PARAMS);
	storage_spool_free(&sp);

	assert_int_equal(storage_usage(fx->st, &u), STORAGE_OK);
	assert_int_equal(u.bytes, 18);
	assert_int_equal(u.messages, 4);
}

/* A sync in another session may index a file between link and commit:
 * the commit then reports that UID instead of adding a second row. */
static void
test_sync_between_link_and_commit(void **state)
{
	struct fx *fx = *state;
	struct storage_spool *sp = NULL;
	struct storage_delivery *dlv = NULL;
	struct storage_msg *msgs;
	const char *error;
	size_t count;
	uint32_t uid = 0;

	assert_int_equal(storage_spool_new(fx->dir, &sp, &error), STORAGE_OK);
	assert_int_equal(storage_spool_write(sp, "race\n", 5), STORAGE_OK);
	assert_int_equal(storage_spool_finish(sp), STORAGE_OK);
	assert_int_equal(storage_deliver_link(fx->st, "INBOX", sp, 0, 0, &dlv),
			 STORAGE_OK);
	msgs = list_box(fx->st, "INBOX", &count);
	assert_int_equal(count, 1);
	assert_int_equal(msgs[0].uid, 1);
	assert_int_equal(msgs[0].size, 5);
	assert_int_equal(msgs[0].vsize, 6);
	storage_msg_list_free(&msgs, count);
	assert_int_equal(storage_deliver_commit(&dlv, NULL, &uid), STORAGE_OK);
	assert_int_equal(uid, 1);
	storage_spool_free(&sp);
	msgs = list_box(fx->st, "INBOX", &count);
	assert_int_equal(count, 1);
	storage_msg_list_free(&msgs, count);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "next\n", 0), 2);
	assert_int_equal(check_count(fx->st, NULL), 0);
}

/* ---- index check and rebuild ---- */

static void
test_index_check(void **state)
{
	struct fx *fx = *state;
	struct storage_msg *msgs;
	char path[1024], path2[1024];
	size_t count;

	deliver(fx->st, fx->dir, "INBOX", "one\n", 0);
	deliver(fx->st, fx->dir, "INBOX", "two\n", 0);
	deliver(fx->st, fx->dir, "INBOX", "three\n", 0);
	assert_int_equal(storage_mailbox_create(fx->st, "Gone"), STORAGE_OK);
	assert_int_equal(check_count(fx->st, NULL), 0);
	msgs = list_box(fx->st, "INBOX", &count);

	/* Behind the index's back: a new file, a removed file, a rename,
	 * a folder made by hand, a folder removed by hand. */
	snprintf(path, sizeof(path), "%s/new/1700000000.1_1.sneaky",
		 fx->user);
	write_file(path, "x\n");
	snprintf(path, sizeof(path), "%s/%s", fx->user, msgs[0].path);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/%s", fx->user, msgs[1].path);
	snprintf(path2, sizeof(path2), "%s/cur/%s:2,S", fx->user,
		 msgs[1].path + 4);
	assert_int_equal(rename(path, path2), 0);
	snprintf(path, sizeof(path), "%s/.Handmade", fx->user);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.Handmade/cur", fx->user);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.Gone/cur", fx->user);
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/.Gone/new", fx->user);
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/.Gone/tmp", fx->user);
	assert_int_equal(rmdir(path), 0);
	snprintf(path, sizeof(path), "%s/.Gone/maildirfolder", fx->user);
	assert_int_equal(unlink(path), 0);
	snprintf(path, sizeof(path), "%s/.Gone", fx->user);
	assert_int_equal(rmdir(path), 0);
	storage_msg_list_free(&msgs, count);

	assert_int_equal(check_count(fx->st, "file-not-indexed"), 1);
	assert_int_equal(check_count(fx->st, "index-no-file"), 1);
	assert_int_equal(check_count(fx->st, "flags-differ"), 1);
	assert_int_equal(check_count(fx->st, "folder-not-indexed"), 1);
	assert_int_equal(check_count(fx->st, "mailbox-no-folder"), 1);
	assert_int_equal(check_count(fx->st, "size-differs"), 0);
	/* The check changed nothing: same result again. */
	assert_int_equal(check_count(fx->st, "file-not-indexed"), 1);

	/* Rebuild repairs all of it. */
	{
		const char *error = NULL;

		storage_close(&fx->st);
		assert_int_equal(storage_index_rebuild(fx->dir, ADDR, &error),
				 STORAGE_OK);
		reopen(fx);
	}
	assert_int_equal(check_count(fx->st, NULL), 0);
}

struct snap {
	uint32_t uid;
	char guid[37];
	char base[256];
	uint32_t flags;
};

static size_t
snapshot(struct storage *st, struct snap *out, size_t max)
{
	struct storage_msg *msgs;
	size_t count;

	msgs = list_box(st, "INBOX", &count);
	assert_true(count <= max);
	for (size_t i = 0; i < count; i++) {
		const char *name = strchr(msgs[i].path, '/') + 1;

		out[i].uid = msgs[i].uid;
		out[i].flags = msgs[i].flags;
		memcpy(out[i].guid, msgs[i].guid, sizeof(out[i].guid));
		assert_int_equal(storage_filename_parse(name, out[i].base,
							sizeof(out[i].base),
							NULL, NULL, NULL),
				 0);
	}
	storage_msg_list_free(&msgs, count);
	return count;
}

static void
test_rebuild_keeps_uids(void **state)
{
	struct fx *fx = *state;
	struct storage_mailbox *box = NULL;
	struct storage_mailbox_info info;
	struct snap before[8], after[8];
	const char *error = NULL;
	uint32_t uidv, uid = 3;
	char path[1024];
	size_t n1, n2;

	for (int i = 0; i < 5; i++)
		deliver(fx->st, fx->dir, "INBOX", "msg\n", 0);
	assert_int_equal(storage_mailbox_open(fx->st, "INBOX", &box),
			 STORAGE_OK);
	assert_int_equal(storage_msg_expunge(box, &uid, 1), STORAGE_OK);
	assert_int_equal(storage_msg_set_flags(box, 4, STORAGE_FLAG_SEEN,
					       "kw"),
			 STORAGE_OK);
	storage_mailbox_close(&box);
	assert_int_equal(storage_mailbox_create(fx->st, "Sub"), STORAGE_OK);
	n1 = snapshot(fx->st, before, 8);
	assert_int_equal(n1, 4);
	assert_int_equal(storage_mailbox_status(fx->st, "INBOX", &info),
			 STORAGE_OK);
	uidv = info.uidvalidity;
	/* A file no index knows yet. */
	snprintf(path, sizeof(path), "%s/new/1600000000.9_9.elsewhere",
		 fx->user);
	write_file(path, "late\n");

	storage_close(&fx->st);
	assert_int_equal(storage_index_rebuild(fx->dir, ADDR, &error),
			 STORAGE_OK);
	reopen(fx);
	assert_int_equal(storage_mailbox_status(fx->st, "INBOX", &info),
			 STORAGE_OK);
	assert_int_equal(info.uidvalidity, uidv);
	assert_int_equal(info.uidnext, 7);
	n2 = snapshot(fx->st, after, 8);
	assert_int_equal(n2, 5);
	for (size_t i = 0; i < n1; i++) {
		assert_int_equal(after[i].uid, before[i].uid);
		assert_string_equal(after[i].guid, before[i].guid);
		assert_string_equal(after[i].base, before[i].base);
		assert_int_equal(after[i].flags, before[i].flags);
	}
	/* Unknown file: above max(known, old uidnext - 1) although its
	 * mtime is older than everything else. */
	assert_int_equal(after[4].uid, 6);
	assert_string_equal(after[4].base, "1600000000.9_9.elsewhere");
	assert_int_equal(storage_mailbox_status(fx->st, "Sub", &info),
			 STORAGE_OK);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "new\n", 0), 7);
	{
		struct storage_msg *msgs;
		size_t count;

		msgs = list_box(fx->st, "INBOX", &count);
		assert_string_equal(msgs[2].keywords, "kw");
		storage_msg_list_free(&msgs, count);
	}
	assert_int_equal(check_count(fx->st, NULL), 0);

	/* Twice in a row, and with the store open in this process. */
	assert_int_equal(storage_index_rebuild(fx->dir, ADDR, &error),
			 STORAGE_OK);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "n\n", 0), 8);
	assert_int_equal(check_count(fx->st, NULL), 0);
}

static void
unlink_db(const struct fx *fx)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	char path[1024];

	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/roost.db%s", fx->user,
			 sfx[i]);
		(void)unlink(path);
	}
}

static void
test_rebuild_without_db(void **state)
{
	struct fx *fx = *state;
	struct snap after[8];
	const char *error = NULL;
	char path[1024];
	size_t n;

	for (int i = 0; i < 3; i++)
		deliver(fx->st, fx->dir, "INBOX", "m\n", 0);
	assert_int_equal(storage_mailbox_create(fx->st, "Keep/Me"),
			 STORAGE_OK);
	{
		/* APPEND with an explicit internal date. */
		struct storage_spool *sp = NULL;
		struct storage_delivery *dlv = NULL;

		assert_int_equal(storage_spool_new(fx->dir, &sp, &error),
				 STORAGE_OK);
		assert_int_equal(storage_spool_write(sp, "k\n", 2),
				 STORAGE_OK);
		assert_int_equal(storage_spool_finish(sp), STORAGE_OK);
		assert_int_equal(storage_deliver_link(fx->st, "Keep/Me", sp,
						      STORAGE_FLAG_SEEN,
						      1500000000, &dlv),
				 STORAGE_OK);
		assert_int_equal(storage_deliver_commit(&dlv, NULL, NULL),
				 STORAGE_OK);
		storage_spool_free(&sp);
	}
	storage_close(&fx->st);
	unlink_db(fx);
	/* A stale log of the vanished index must not be replayed. */
	snprintf(path, sizeof(path), "%s/roost.db-wal", fx->user);
	write_file(path, "this is not a wal file at all");

	assert_int_equal(storage_index_rebuild(fx->dir, ADDR, &error),
			 STORAGE_OK);
	assert_int_equal(access(path, F_OK), -1);
	reopen(fx);
	n = snapshot(fx->st, after, 8);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(after[i].uid, i + 1);
	{
		struct storage_msg *msgs;
		size_t count;

		msgs = list_box(fx->st, "Keep/Me", &count);
		assert_int_equal(count, 1);
		assert_int_equal(msgs[0].internal_date, 1500000000);
		assert_int_equal(msgs[0].flags, STORAGE_FLAG_SEEN);
		storage_msg_list_free(&msgs, count);
	}
	assert_int_equal(check_count(fx->st, NULL), 0);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "m\n", 0), 4);
}

static void
test_rebuild_corrupt_db(void **state)
{
	struct fx *fx = *state;
	struct snap after[8];
	const char *error = NULL;
	char path[1024], junk[8192];
	size_t n;

	for (int i = 0; i < 3; i++)
		deliver(fx->st, fx->dir, "INBOX", "m\n", 0);
	storage_close(&fx->st);
	/* The WAL outlives a close (no checkpoint on close) and would still
	 * hold good pages: corrupt the index as a whole. */
	snprintf(path, sizeof(path), "%s/roost.db-wal", fx->user);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/roost.db-shm", fx->user);
	(void)unlink(path);
	snprintf(path, sizeof(path), "%s/roost.db", fx->user);
	memset(junk, 0xa5, sizeof(junk));
	{
		int fd = open(path, O_WRONLY);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, junk, sizeof(junk)),
				 (ssize_t)sizeof(junk));
		close(fd);
	}
	/* Opening fails with a temporary error, never crashes. */
	assert_int_equal(storage_open(fx->dir, ADDR, false, &fx->st, &error),
			 STORAGE_ERR_TEMP);
	assert_null(fx->st);

	assert_int_equal(storage_index_rebuild(fx->dir, ADDR, &error),
			 STORAGE_OK);
	assert_true(has_prefix_entry(fx->user, "roost.db.corrupt."));
	reopen(fx);
	n = snapshot(fx->st, after, 8);
	assert_int_equal(n, 3);
	assert_int_equal(check_count(fx->st, NULL), 0);
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "m\n", 0), 4);

	assert_int_equal(storage_index_rebuild(fx->dir, "nobody@example.org",
					       &error),
			 STORAGE_ERR_NOTFOUND);
	assert_int_equal(storage_index_rebuild(fx->dir, "../x@y", &error),
			 STORAGE_ERR_PARAMS);
}

/* ---- concurrency ---- */

#define CONC_PER_CHILD 50

static void
concurrent_child(const char *dir)
{
	struct storage *st = NULL;
	const char *error = NULL;
	int bad = 0;

	if (storage_open(dir, ADDR, false, &st, &error) != STORAGE_OK)
		_exit(2);
	for (int i = 0; i < CONC_PER_CHILD; i++) {
		struct storage_spool *sp = NULL;
		struct storage_delivery *dlv = NULL;
		uint32_t uid;

		if (storage_spool_new(dir, &sp, &error) != STORAGE_OK ||
		    storage_spool_write(sp, "c\n", 2) != STORAGE_OK ||
		    storage_spool_finish(sp) != STORAGE_OK ||
		    storage_deliver_link(st, "INBOX", sp, 0, 0, &dlv) !=
			    STORAGE_OK ||
		    storage_deliver_commit(&dlv, NULL, &uid) != STORAGE_OK) {
			fprintf(stderr, "child: %s\n", storage_error(st));
			bad++;
		}
		storage_spool_free(&sp);
		/* A reader syncing between the writes. */
		if (i % 10 == 0) {
			struct storage_mailbox *box = NULL;

			if (storage_mailbox_open(st, "INBOX", &box) !=
			    STORAGE_OK)
				bad++;
			storage_mailbox_close(&box);
		}
	}
	storage_close(&st);
	_exit(bad == 0 ? 0 : 1);
}

static void
test_concurrent_delivery(void **state)
{
	struct fx *fx = *state;
	struct storage_msg *msgs;
	pid_t pids[2];
	size_t count;

	/* No SQLite connection may cross a fork(). */
	storage_close(&fx->st);
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0)
			concurrent_child(fx->dir);
	}
	for (int i = 0; i < 2; i++) {
		int status;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	reopen(fx);
	msgs = list_box(fx->st, "INBOX", &count);
	assert_int_equal(count, 2 * CONC_PER_CHILD);
	for (size_t i = 0; i < count; i++)
		assert_int_equal(msgs[i].uid, i + 1);
	storage_msg_list_free(&msgs, count);
	assert_int_equal(check_count(fx->st, NULL), 0);
}

/* ---- fault injection ---- */

/* In the re-executed child: one delivery with ROOST_FAULT set; the step
 * that hits the fault must fail with TEMP and leave nothing behind. */
static int
fault_child(const char *dir, const char *site)
{
	struct storage *st = NULL;
	struct storage_spool *sp = NULL;
	struct storage_delivery *dlv = NULL;
	const char *error = NULL;
	enum storage_err err;
	uint32_t uid = 0;

	if (storage_open(dir, ADDR, false, &st, &error) != STORAGE_OK)
		return 10;
	if (storage_spool_new(dir, &sp, &error) != STORAGE_OK)
		return 11;
	err = storage_spool_write(sp, "faulty\n", 7);
	if (err == STORAGE_OK)
		err = storage_spool_finish(sp);
	if (strcmp(site, "spool_write") == 0 ||
	    strcmp(site, "spool_fsync") == 0) {
		storage_spool_free(&sp);
		storage_close(&st);
		return err == STORAGE_ERR_TEMP ? 0 : 12;
	}
	if (err != STORAGE_OK)
		return 13;
	err = storage_deliver_link(st, "INBOX", sp, 0, 0, &dlv);
	if (strcmp(site, "deliver_link") == 0) {
		storage_spool_free(&sp);
		storage_close(&st);
		return err == STORAGE_ERR_TEMP && dlv == NULL ? 0 : 14;
	}
	if (err != STORAGE_OK)
		return 15;
	err = storage_deliver_commit(&dlv, NULL, &uid);
	storage_spool_free(&sp);
	storage_close(&st);
	return err == STORAGE_ERR_TEMP && dlv == NULL ? 0 : 16;
}

static char self_exe[4096];

static void
run_fault(struct fx *fx, const char *site)
{
	char fault[64];
	struct storage_msg *msgs;
	char tmp[1024];
	size_t count;
	int status;
	pid_t pid;

	snprintf(fault, sizeof(fault), "%s:1", site);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		setenv("ROOST_FAULT", fault, 1);
		execl(self_exe, self_exe, "--fault-child", fx->dir, site,
		      (char *)NULL);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) != 0)
		fail_msg("fault %s: child exit %d", site, WEXITSTATUS(status));
	/* Nothing half-delivered, no spool left over. */
	assert_int_equal(count_sub(fx, "", "new"), 0);
	assert_int_equal(count_sub(fx, "", "cur"), 0);
	snprintf(tmp, sizeof(tmp), "%s/tmp", fx->dir);
	assert_int_equal(count_entries(tmp), 0);
	msgs = list_box(fx->st, "INBOX", &count);
	assert_int_equal(count, 0);
	storage_msg_list_free(&msgs, count);
	assert_int_equal(check_count(fx->st, NULL), 0);
}

static void
test_fault_injection(void **state)
{
	static const char *const sites[] = {
		"deliver_fsync_dir", "index_commit", "deliver_link",
		"spool_write", "spool_fsync",
	};
	struct fx *fx = *state;

	for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++)
		run_fault(fx, sites[i]);
	/* And the store still works normally afterwards. */
	assert_int_equal(deliver(fx->st, fx->dir, "INBOX", "ok\n", 0), 1);
}

/* ---- whole store ---- */

static void
test_open_destroy(void **state)
{
	struct fx *fx = *state;
	struct storage *st = NULL;
	const char *error = NULL;

	assert_int_equal(storage_open(fx->dir, "bob@example.org", false, &st,
				      &error),
			 STORAGE_ERR_NOTFOUND);
	assert_null(st);
	assert_int_equal(storage_open(fx->dir, "../evil@example.org", true,
				      &st, &error),
			 STORAGE_ERR_PARAMS);
	assert_int_equal(storage_open(fx->dir, "bob@example.org", true, &st,
				      &error),
			 STORAGE_OK);
	deliver(st, fx->dir, "INBOX", "bye\n", 0);
	storage_close(&st);
	assert_null(st);
	assert_int_equal(storage_destroy(fx->dir, "bob@example.org", &error),
			 STORAGE_OK);
	assert_int_equal(storage_open(fx->dir, "bob@example.org", false, &st,
				      &error),
			 STORAGE_ERR_NOTFOUND);
	assert_int_equal(storage_destroy(fx->dir, "bob@example.org", &error),
			 STORAGE_ERR_NOTFOUND);
	{
		char path[1024];

		snprintf(path, sizeof(path), "%s/mail/example.org", fx->dir);
		assert_int_equal(count_entries(path), 1);	/* alice */
	}
	assert_string_equal(storage_err_name(STORAGE_ERR_QUOTA), "QUOTA");
	assert_string_equal(storage_err_name(STORAGE_OK), "OK");
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flags_roundtrip),
		cmocka_unit_test(test_filename_parse),
		cmocka_unit_test(test_mailbox_name_valid),
		cmocka_unit_test(test_address_valid),
		cmocka_unit_test_setup_teardown(test_spool_cleanup, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_spool_sizes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_uid_no_reuse, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deliver_modes_and_flags,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_flags_and_open, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_deliver_exdev_copy, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_external_pickup, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_sync_cheap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_ops, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rename_inbox, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_quota, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_sync_between_link_and_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_check, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rebuild_keeps_uids, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rebuild_without_db, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rebuild_corrupt_db, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_delivery,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_fault_injection, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_open_destroy, setup,
						teardown),
	};
	ssize_t n;

	if (argc == 4 && strcmp(argv[1], "--fault-child") == 0)
		return fault_child(argv[2], argv[3]);
	n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0)
		return 1;
	self_exe[n] = '\0';
	return cmocka_run_group_tests(tests, NULL, NULL);
}
