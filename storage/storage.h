/*
 * storage/ — a user's mail: Maildir++ folders on disk (the source of
 * truth) and a per-user SQLite index (a cache of it, WAL mode).
 *
 * Layout (DESIGN.md): data_dir/mail/<domain>/<localpart>/ holds INBOX as
 * cur/ new/ tmp/, subfolders as .Name/ (hierarchy "Archive/2026" is
 * ".Archive.2026" on disk), and the index roost.db.  Within one component
 * of a mailbox name, the characters '.', '%' and '~' are written on disk
 * as %2E, %25 and %7E so that every IMAP name maps to exactly one folder.
 *
 * Message files are named
 *   <time>.M<usec>P<pid>Q<n>.<host>,S=<size>,W=<crlf-size>:2,<flags>
 * with flag letters in ASCII order: D draft, F flagged, P passed,
 * R replied (answered), S seen, T trashed (deleted).  Files are stored
 * with LF line endings; W= is the size with CRLF, which is what IMAP and
 * POP3 report, so no file is read to learn it.
 *
 * UIDs ascend strictly per mailbox and are never reused under one
 * UIDVALIDITY.  Every change bumps the mailbox's modseq (for CONDSTORE).
 *
 * Errors: functions return enum storage_err; storage_error(st) gives the
 * text of the last error on that store (for logs; never sent to peers).
 * STORAGE_ERR_TEMP means "try again later" (disk full, I/O error,
 * database locked) and must become a 4xx / EX_TEMPFAIL, never a 5xx.
 *
 * Several processes may open one user's store at once (LMTP delivering
 * while POP3/IMAP read); all index writes are in IMMEDIATE transactions
 * with a busy timeout.
 */
#ifndef ROOST_STORAGE_H
#define ROOST_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/common.h"

enum storage_err {
	STORAGE_OK = 0,
	STORAGE_ERR_TEMP,	/* try again later: disk, I/O, locked */
	STORAGE_ERR_NOTFOUND,	/* no such mailbox / message / user store */
	STORAGE_ERR_EXISTS,	/* mailbox already exists */
	STORAGE_ERR_QUOTA,	/* would exceed the quota */
	STORAGE_ERR_PERM,	/* not allowed (delete INBOX, ...) */
	STORAGE_ERR_PARAMS,	/* invalid name or argument */
};

/* Short constant name of an error ("TEMP", "NOTFOUND", ...). */
const char *storage_err_name(enum storage_err err);

/* System flags, as bits. */
#define STORAGE_FLAG_ANSWERED	(1u << 0)	/* R */
#define STORAGE_FLAG_FLAGGED	(1u << 1)	/* F */
#define STORAGE_FLAG_DELETED	(1u << 2)	/* T */
#define STORAGE_FLAG_SEEN	(1u << 3)	/* S */
#define STORAGE_FLAG_DRAFT	(1u << 4)	/* D */
#define STORAGE_FLAG_PASSED	(1u << 5)	/* P (no IMAP equivalent) */
#define STORAGE_FLAGS_ALL	0x3fu

/* Flags <-> the letters after ":2,".  Unknown letters are ignored by the
 * parser (other tools use lowercase keyword letters).  The formatter
 * writes letters in ASCII order into buf (at least 8 bytes). */
uint32_t storage_flags_parse(const char *letters);
const char *storage_flags_format(uint32_t flags, char *buf, size_t size);

/* Parses a Maildir file name: the base (everything before ":2,"), S= and
 * W= when present (0 when absent) and the flags.  Returns -1 if the name
 * is not a Maildir message name (dot files, no base). */
int storage_filename_parse(const char *name, char *base_r, size_t base_size,
			   uint64_t *size_r, uint64_t *vsize_r,
			   uint32_t *flags_r);

/* True when name is an acceptable mailbox name: UTF-8 or modified UTF-7,
 * 1..RB_MAILBOX_NAME_MAX bytes, components separated by '/', no empty
 * component, no "." or ".." component, no control characters or NUL, at
 * most RB_MAILBOX_DEPTH_MAX levels.  "INBOX" in any case means INBOX.
 * Bytes >= 0x80 must be well-formed UTF-8, and the folder name on disk
 * (".", plus the name with '%2E'-style escapes) must fit in 255 bytes. */
bool storage_mailbox_name_valid(const char *name);

/* True when local and domain are safe as path components. */
bool storage_address_valid(const char *address);

/* ---- a user's store ---- */

struct storage;

/* Opens (and with create, makes: directories, INBOX, index) the store of
 * address "local@domain" under data_dir.  Without create a missing store
 * is STORAGE_ERR_NOTFOUND.  On error *st_r is NULL and *error_r says why
 * (static or valid until the next call in this process). */
enum storage_err storage_open(const char *data_dir, const char *address,
			      bool create, struct storage **st_r,
			      const char **error_r);
void storage_close(struct storage **st);
/* True when the store was removed or its index replaced (a rebuild that
 * moved a corrupt one aside) since st was opened: a handle kept open
 * across deliveries must then be closed and opened again.  One stat(). */
bool storage_stale(const struct storage *st);
/* Text of the last error on st. */
const char *storage_error(const struct storage *st);
/* The user's directory (data_dir/mail/<domain>/<localpart>). */
const char *storage_path(const struct storage *st);

/* Removes the whole store of address (files and index): for user del. */
enum storage_err storage_destroy(const char *data_dir, const char *address,
				 const char **error_r);

/* ---- mailboxes ---- */

struct storage_mailbox_info {
	char name[RB_MAILBOX_NAME_MAX + 1];	/* "INBOX", "Archive/2026" */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
	uint32_t unseen;
	uint64_t bytes;		/* sum of sizes on disk */
	uint64_t vbytes;	/* sum of CRLF sizes */
	char special_use[32];	/* "\\Sent" etc., "" if none */
	bool subscribed;
};

/* All mailboxes, INBOX first then by name.  *list_r is heap-allocated,
 * free() it.  List and status read the index only (no directory scan);
 * open a mailbox to sync it. */
enum storage_err storage_mailbox_list(struct storage *st,
				      struct storage_mailbox_info **list_r,
				      size_t *count_r);
enum storage_err storage_mailbox_status(struct storage *st, const char *name,
					struct storage_mailbox_info *info_r);
/* Creates the folder and its index row with a fresh UIDVALIDITY. Parent
 * folders are not required to exist (Maildir++ is flat).  A folder that
 * exists on disk but not in the index is adopted with its files.  The
 * top-level names Drafts, Sent, Trash, Junk and Archive get the RFC 6154
 * special-use of the same name; new mailboxes start unsubscribed (INBOX
 * is subscribed). */
enum storage_err storage_mailbox_create(struct storage *st, const char *name);
/* Deleting INBOX is STORAGE_ERR_PERM. Removes the folder and its
 * messages. */
enum storage_err storage_mailbox_delete(struct storage *st, const char *name);
/* Renames the folder and its children ("a" -> "b" also moves "a/x").
 * Renaming INBOX moves its messages into the new mailbox and leaves an
 * empty INBOX (RFC 9051 §6.3.6). */
enum storage_err storage_mailbox_rename(struct storage *st,
					const char *oldname,
					const char *newname);
enum storage_err storage_mailbox_subscribe(struct storage *st,
					   const char *name, bool subscribed);

/* ---- quota ---- */

struct storage_usage {
	uint64_t bytes;		/* sum of on-disk sizes, all mailboxes */
	uint64_t messages;
};
enum storage_err storage_usage(struct storage *st, struct storage_usage *u_r);

/* ---- delivery ---- */

/*
 * A spool is one message written once for every recipient of a
 * transaction: data_dir/tmp/<unique>.  It is hard-linked into each
 * recipient's Maildir (copied, and the copy fsynced, where link() fails
 * with EXDEV).  The file is fsynced once at storage_spool_finish().
 *
 * Writes are raw message bytes with LF line endings (callers convert CRLF
 * to LF); the spool counts size and CRLF size (size + number of LFs not
 * preceded by CR: a stored CR LF already is a CRLF line end).
 */
struct storage_spool;

enum storage_err storage_spool_new(const char *data_dir,
				   struct storage_spool **sp_r,
				   const char **error_r);
enum storage_err storage_spool_write(struct storage_spool *sp,
				     const void *data, size_t len);
/* fsyncs the file (once, however many recipients follow). */
enum storage_err storage_spool_finish(struct storage_spool *sp);
uint64_t storage_spool_size(const struct storage_spool *sp);
uint64_t storage_spool_vsize(const struct storage_spool *sp);
const char *storage_spool_error(const struct storage_spool *sp);
/* Unlinks the spool file (the recipients' links remain) and frees;
 * sets *sp to NULL. */
void storage_spool_free(struct storage_spool **sp);

/* Removes spool files older than max_age seconds (by mtime) from
 * data_dir/tmp: those a process killed mid-transaction left behind.  A
 * missing directory is fine.  *removed_r counts the files removed. */
enum storage_err storage_spool_cleanup(const char *data_dir, time_t max_age,
				       unsigned *removed_r,
				       const char **error_r);

/*
 * Delivering one spool to one mailbox is two steps so that a transaction
 * with R recipients can do all the links first and all the flushes after,
 * letting one journal commit cover many (the fsyncs are batched):
 *
 *   storage_deliver_link()   link into <mailbox>/new/<unique name>
 *   storage_deliver_commit() fsync that new/ directory, then insert the
 *                            index row in one IMMEDIATE transaction
 *                            (assigns the UID) and return it.
 *
 * Quota: with quota limits non-zero, commit refuses with
 * STORAGE_ERR_QUOTA (and unlinks) when usage + this message would exceed
 * them.  A failed commit unlinks the file; any error is TEMP unless it is
 * QUOTA or NOTFOUND (no such mailbox).  If the process dies between link
 * and commit, the file is in new/ and the next sync indexes it: mail is
 * never lost, at worst it has not been acknowledged.
 */
struct storage_delivery;

struct storage_quota {
	uint64_t bytes;		/* 0 = unlimited */
	uint64_t messages;
};

/* The spool must be finished.  flags 0 links into new/; a message with
 * flags (APPEND) goes to cur/ with its info.  internal_date 0 means now;
 * an explicit one also becomes the file's mtime (so a rebuild without
 * the old index recovers it).  *dlv_r must go to commit or abort. */
enum storage_err storage_deliver_link(struct storage *st, const char *mailbox,
				      struct storage_spool *sp,
				      uint32_t flags, time_t internal_date,
				      struct storage_delivery **dlv_r);
/* Always consumes *dlv (sets it to NULL), whatever it returns.  quota and
 * uid_r may be NULL.  If a sync in another process indexed the linked
 * file first, that UID is returned and no second row is added. */
enum storage_err storage_deliver_commit(struct storage_delivery **dlv,
					const struct storage_quota *quota,
					uint32_t *uid_r);
/* Unlinks and frees an uncommitted delivery. */
void storage_deliver_abort(struct storage_delivery **dlv);

/* ---- messages in a mailbox ---- */

struct storage_msg {
	uint32_t uid;
	uint32_t flags;
	char *keywords;		/* space-separated, NULL if none */
	time_t internal_date;
	uint64_t size;		/* bytes on disk (S=) */
	uint64_t vsize;		/* bytes with CRLF line ends (W=) */
	uint64_t modseq;
	char guid[37];		/* stable id (UUID text), for UIDL/OBJECTID */
	char *path;		/* relative to the user dir: "cur/1700...:2,S",
				   ".Sent/new/1700..." */
};

struct storage_mailbox;

/* Opens a mailbox for reading and changes; syncs it first (picks up files
 * delivered or written by other tools and forgets vanished ones). */
enum storage_err storage_mailbox_open(struct storage *st, const char *name,
				      struct storage_mailbox **box_r);
/* Close every mailbox before storage_close() of its store. */
void storage_mailbox_close(struct storage_mailbox **box);
/* Re-reads the directories against the index: new files get UIDs
 * (ascending, in delivery-time order), vanished files lose their rows,
 * flag changes made by renames are taken into the index.  When new/ and
 * cur/ have the same mtimes as at the last scan it costs two stat()s. */
enum storage_err storage_mailbox_sync(struct storage_mailbox *box);
/* A snapshot of all messages ordered by UID.  Free with
 * storage_msg_list_free(). */
enum storage_err storage_msg_list(struct storage_mailbox *box,
				  struct storage_msg **msgs_r,
				  size_t *count_r);
void storage_msg_list_free(struct storage_msg **msgs, size_t count);
/* Opens the message file read-only (O_CLOEXEC). If the file was renamed by
 * another process (flag change), it is found again via the index. */
enum storage_err storage_msg_open(struct storage_mailbox *box, uint32_t uid,
				  int *fd_r);
/* Replaces the flags (and keywords when keywords != NULL) of a message:
 * renames the file to the new flag letters and bumps modseq. */
enum storage_err storage_msg_set_flags(struct storage_mailbox *box,
				       uint32_t uid, uint32_t flags,
				       const char *keywords);
/* Adds and removes flags relative to the message's current flags, read
 * inside the write transaction: a change another client made after our
 * snapshot survives (POP3's "RETR sets \\Seen" uses this). */
enum storage_err storage_msg_add_flags(struct storage_mailbox *box,
				       uint32_t uid, uint32_t add,
				       uint32_t remove);
/* Removes messages (missing UIDs are ignored) in one index transaction;
 * returns only after the files are unlinked, the directory fsynced and
 * the index committed. */
enum storage_err storage_msg_expunge(struct storage_mailbox *box,
				     const uint32_t *uids, size_t count);

/* ---- index maintenance ---- */

struct storage_check_item {
	char mailbox[RB_MAILBOX_NAME_MAX + 1];
	char what[24];		/* "file-not-indexed", "index-no-file",
				   "flags-differ", "size-differs",
				   "folder-not-indexed", "mailbox-no-folder" */
	char detail[512];	/* file name or uid */
};

/* Compares files and index without changing either.  *items_r is
 * heap-allocated (free()); count 0 means consistent. */
enum storage_err storage_index_check(struct storage *st,
				     struct storage_check_item **items_r,
				     size_t *count_r);
/* Recreates the index from the files alone.  UIDs (and UIDVALIDITY) that
 * the old index still knows for a file are kept; other files get new UIDs
 * above every known one.  Works when roost.db is missing or corrupt (a
 * corrupt one is moved aside as roost.db.corrupt.<time>).  It does not
 * need the store to open, so it takes the address, not a handle.  With a
 * healthy old index it may run while other processes have the store
 * open (they see the new index); a row committed by them during the
 * rebuild can lose its UID (the file is re-indexed with a new one). */
enum storage_err storage_index_rebuild(const char *data_dir,
				       const char *address,
				       const char **error_r);

#endif
