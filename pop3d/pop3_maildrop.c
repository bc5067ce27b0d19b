/*
 * The maildrop of a POP3 session: INBOX, locked and snapshotted at login
 * (RFC 1939 §4: "the POP3 server then acquires an exclusive-access lock
 * on the maildrop"), changed only at QUIT (§6).
 *
 * Implementation notes
 * - The lock is an flock() on <user dir>/pop3.lock, taken without
 *   waiting: a second POP3 session gets [IN-USE] (RFC 2449 §8.1.2).  It
 *   does not stop delivery or IMAP, which never take it; messages
 *   delivered meanwhile are simply not in the snapshot.
 * - The snapshot keeps only uid, size, flags, DELE mark and UIDL per
 *   message; the store (SQLite connection, page cache) is closed right
 *   after it is taken and opened again by pop3_maildrop_box() for the
 *   first RETR/TOP/expunge, so an idle logged-in session costs little.
 *   The flock stays held throughout.
 * - Sizes are the W= CRLF sizes from the index: exactly the octets RETR
 *   sends before byte-stuffing, so LIST never reads a file.
 * - UIDL is the Maildir base name (the file name without ":2,<flags>"),
 *   which survives restarts, index rebuilds and even the loss of the
 *   index, because it lives in the file name.  A base name that is too
 *   long or has characters RFC 1939 §7 does not allow is replaced by the
 *   hex of the first 16 octets of its SHA-256, equally stable.
 * - [LOGIN-DELAY] (RFC 2449 §8.1.1): the lock file holds the time of the
 *   last login, so the delay survives restarts at no extra cost.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "pop3d/pop3d_int.h"

void
pop3_uidl(const char *path, char *out)
{
	const char *base = strrchr(path, '/');
	const char *colon;
	size_t n;
	bool ok = true;

	base = base != NULL ? base + 1 : path;
	colon = strchr(base, ':');
	n = colon != NULL ? (size_t)(colon - base) : strlen(base);
	if (n == 0 || n > RB_POP3_UIDL_MAX)
		ok = false;
	for (size_t i = 0; ok && i < n; i++) {
		unsigned char c = (unsigned char)base[i];

		if (c < 0x21 || c > 0x7e)
			ok = false;
	}
	if (ok) {
		memcpy(out, base, n);
		out[n] = '\0';
		return;
	}
	{
		static const char hex[] = "0123456789abcdef";
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned int mdlen = 0;

		if (EVP_Digest(base, n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
		    mdlen < 16)
			log_fatal("EVP_Digest(SHA-256) failed");
		for (size_t i = 0; i < 16; i++) {
			out[2 * i] = hex[md[i] >> 4];
			out[2 * i + 1] = hex[md[i] & 15];
		}
		out[32] = '\0';
	}
}

const char *
pop3_msg_uidl(const struct pop3_session *s, size_t i)
{
	return s->uidls + s->msgs[i].uidl;
}

/* Copies what POP3 needs out of the storage list: the full list (paths,
 * keywords, GUIDs) is several times bigger and would stay in memory for
 * the whole session. */
static void
take_snapshot(struct pop3_session *s, const struct storage_msg *list,
	      size_t count)
{
	char uidl[RB_POP3_UIDL_MAX + 1];
	size_t pool = 0, used = 0;

	/* each UIDL is at most RB_POP3_UIDL_MAX + 1 octets: no overflow
	 * for any count that fits in memory, but check anyway */
	RB_CHECK(count <= SIZE_MAX / (RB_POP3_UIDL_MAX + 1));
	RB_CHECK(count <= UINT32_MAX / (RB_POP3_UIDL_MAX + 1));
	for (size_t i = 0; i < count; i++) {
		pop3_uidl(list[i].path, uidl);
		pool += strlen(uidl) + 1;
	}
	s->msgs = rb_calloc(count > 0 ? count : 1, sizeof(*s->msgs));
	s->uidls = rb_malloc(pool > 0 ? pool : 1);
	for (size_t i = 0; i < count; i++) {
		size_t n;

		pop3_uidl(list[i].path, uidl);
		n = strlen(uidl) + 1;
		memcpy(s->uidls + used, uidl, n);
		s->msgs[i].uidl = (uint32_t)used;
		s->msgs[i].uid = list[i].uid;
		s->msgs[i].vsize = list[i].vsize;
		s->msgs[i].flags = list[i].flags;
		used += n;
	}
	s->msg_count = count;
}

/* [LOGIN-DELAY]: true when the last login was too recent. */
static bool
login_too_soon(struct pop3_session *s, time_t now)
{
	unsigned delay = s->worker->cfg->pop3.login_delay;
	char buf[32];
	ssize_t n;
	uint64_t last;

	if (delay == 0)
		return false;
	n = pread(s->lock_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	if (rb_parse_uint(buf, 0, UINT64_MAX, &last) < 0)
		return false;
	return (uint64_t)now >= last && (uint64_t)now - last < delay;
}

static void
record_login(struct pop3_session *s, time_t now)
{
	char buf[32];

	if (s->worker->cfg->pop3.login_delay == 0)
		return;
	if (rb_snprintf(buf, sizeof(buf), "%lld\n", (long long)now) < 0)
		return;
	if (pwrite(s->lock_fd, buf, strlen(buf), 0) < 0 ||
	    ftruncate(s->lock_fd, (off_t)strlen(buf)) < 0)
		SLOG_WARNING(s, "user=%s error=\"cannot record the login "
			     "time: %s\"", s->user, strerror(errno));
}

static int
take_lock(struct pop3_session *s)
{
	char path[RB_PATH_MAX];

	if (rb_snprintf(path, sizeof(path), "%s/pop3.lock",
			storage_path(s->st)) < 0) {
		SLOG_ERROR(s, "user=%s error=\"lock path too long\"", s->user);
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the maildrop");
		return -1;
	}
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
			  0600);
	if (s->lock_fd < 0) {
		SLOG_ERROR(s, "user=%s error=\"open %s: %s\"", s->user, path,
			   strerror(errno));
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the maildrop");
		return -1;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		(void)close(s->lock_fd);
		s->lock_fd = -1;
		if (err == EWOULDBLOCK) {
			SLOG_INFO(s, "event=in-use user=%s", s->user);
			pop3_reply(s, "-ERR [IN-USE] Mailbox is locked by "
				   "another POP3 session");
		} else {
			SLOG_ERROR(s, "user=%s error=\"flock %s: %s\"",
				   s->user, path, strerror(err));
			pop3_reply(s, "-ERR [SYS/TEMP] Cannot lock the "
				   "maildrop");
		}
		return -1;
	}
	return 0;
}

int
pop3_maildrop_open(struct pop3_session *s, const char *address)
{
	const struct rb_config *cfg = s->worker->cfg;
	struct storage_msg *list = NULL;
	size_t count = 0;
	const char *error;
	enum storage_err err;
	time_t now = time(NULL);

	/* create: a user who never received mail has an empty maildrop */
	err = storage_open(cfg->general.data_dir, address, true, &s->st,
			   &error);
	if (err != STORAGE_OK) {
		SLOG_ERROR(s, "user=%s error=\"cannot open the store: %s\"",
			   address, error);
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot open the maildrop");
		return -1;
	}
	if (take_lock(s) < 0)
		goto fail;
	if (login_too_soon(s, now)) {
		SLOG_INFO(s, "event=login-delay user=%s", address);
		pop3_reply(s, "-ERR [LOGIN-DELAY] Wait %u seconds between "
			   "logins", cfg->pop3.login_delay);
		goto fail;
	}
	err = storage_mailbox_open(s->st, "INBOX", &s->box);
	if (err == STORAGE_OK)
		err = storage_msg_list(s->box, &list, &count);
	if (err != STORAGE_OK) {
		SLOG_ERROR(s, "user=%s error=\"cannot read INBOX: %s\"",
			   address, storage_error(s->st));
		pop3_reply(s, err == STORAGE_ERR_TEMP ?
			   "-ERR [SYS/TEMP] Cannot read the maildrop" :
			   "-ERR [SYS/PERM] Cannot read the maildrop");
		goto fail;
	}
	take_snapshot(s, list, count);
	storage_msg_list_free(&list, count);
	record_login(s, now);
	/* An idle session keeps only the lock and the snapshot: the SQLite
	 * connection and its page cache (most of a session's memory) come
	 * back with pop3_maildrop_box() when a command needs them. */
	storage_mailbox_close(&s->box);
	storage_close(&s->st);
	return 0;
fail:
	pop3_maildrop_close(s);
	return -1;
}

void
pop3_maildrop_close(struct pop3_session *s)
{
	rb_free(&s->msgs);
	rb_free(&s->uidls);
	s->msg_count = 0;
	storage_mailbox_close(&s->box);
	storage_close(&s->st);
	if (s->lock_fd >= 0) {
		/* closing releases the flock */
		(void)close(s->lock_fd);
		s->lock_fd = -1;
	}
}

struct storage_mailbox *
pop3_maildrop_box(struct pop3_session *s)
{
	const char *error;
	enum storage_err err;

	if (s->box != NULL)
		return s->box;
	err = storage_open(s->worker->cfg->general.data_dir, s->user, false,
			   &s->st, &error);
	if (err != STORAGE_OK) {
		SLOG_ERROR(s, "user=%s error=\"cannot open the store: %s\"",
			   s->user, error);
		return NULL;
	}
	err = storage_mailbox_open(s->st, "INBOX", &s->box);
	if (err != STORAGE_OK) {
		SLOG_ERROR(s, "user=%s error=\"cannot open INBOX: %s\"",
			   s->user, storage_error(s->st));
		storage_close(&s->st);
		return NULL;
	}
	return s->box;
}

int
pop3_maildrop_expunge(struct pop3_session *s, unsigned *removed_r)
{
	struct storage_mailbox *box;
	uint32_t *uids;
	size_t n = 0;
	enum storage_err err;

	*removed_r = 0;
	for (size_t i = 0; i < s->msg_count; i++)
		n += s->msgs[i].deleted;
	if (n == 0)
		return 0;
	box = pop3_maildrop_box(s);
	if (box == NULL)
		return -1;
	uids = rb_calloc(n, sizeof(*uids));
	n = 0;
	for (size_t i = 0; i < s->msg_count; i++) {
		if (s->msgs[i].deleted)
			uids[n++] = s->msgs[i].uid;
	}
	/* returns after unlink, directory fsync and index commit */
	err = storage_msg_expunge(box, uids, n);
	free(uids);
	if (err != STORAGE_OK) {
		SLOG_ERROR(s, "user=%s error=\"expunge failed: %s\"", s->user,
			   storage_error(s->st));
		return -1;
	}
	*removed_r = (unsigned)n;
	return 0;
}
