/*
 * storage/ private interface, shared by the .c files of storage/ only.
 *
 * Implementation notes (invariants every file relies on):
 * - Maildir is the truth, roost.db a cache.  Every index write happens in
 *   a BEGIN IMMEDIATE transaction (idx_begin/idx_commit), so writers from
 *   several processes are serialised by SQLite's lock, and the busy
 *   timeout turns short contention into waiting instead of errors.
 * - File operations that the index must reflect are done while holding
 *   that write transaction, and are undone (best effort) on rollback.
 *   Whatever is left over after a crash is repaired by the next sync.
 * - Cached statements are always reset before the function that stepped
 *   them returns: a stepped-but-not-reset SELECT keeps a read snapshot
 *   open, which would hide other processes' commits and block WAL
 *   checkpoints.
 * - Messages are matched between disk and index by their base name (the
 *   file name before ':'), never by the full name: other processes
 *   rename files to change flags.
 *
 * Fault-injection sites (rb_fault(), see common.h).  When a site fires
 * the code fails exactly as if the system call right after it had:
 *   "spool_write"        write() of spool data fails with EIO   spool.c
 *   "spool_fsync"        fsync() of the spool fails with EIO    spool.c
 *   "deliver_link"       link() into the Maildir fails, ENOSPC  deliver.c
 *   "deliver_fsync_dir"  fsync() of new/ (cur/) fails with EIO  deliver.c
 *   "index_commit"       COMMIT of any index write transaction
 *                        fails like SQLITE_IOERR                index.c
 */
#ifndef ROOST_STORAGE_INT_H
#define ROOST_STORAGE_INT_H

#include <sqlite3.h>
#include <stdarg.h>
#include <sys/types.h>

#include "storage/storage.h"

/* PRAGMA user_version of the index schema this code writes. */
#define STORAGE_SCHEMA_VERSION 1
#define STORAGE_INDEX_NAME "roost.db"
/* How long an index writer waits for another process's transaction. */
#define STORAGE_BUSY_TIMEOUT_MS 5000
/* WAL pages between automatic checkpoints (4 KB each), and the WAL size
 * kept after one (a string: it goes into a PRAGMA). */
#define STORAGE_WAL_PAGES 64
#define STORAGE_WAL_KEEP "131072"
/* A WAL larger than this is truncated when a handle closes (if nobody is
 * using the index at that moment): about a dozen deliveries. */
#define STORAGE_WAL_TRUNCATE_AT (256 * 1024)
/* One directory entry (Linux NAME_MAX). */
#define STORAGE_NAME_MAX 255
/* Host part of our file names, after escaping; longer names are cut so a
 * file name always fits in STORAGE_NAME_MAX. */
#define STORAGE_HOST_MAX 64
/* Cached prepared statements per store (one per distinct SQL text). */
#define STORAGE_STMT_CACHE 64
/* Keywords of one message, space separated. */
#define STORAGE_KEYWORDS_MAX 1024
/* Differences storage_index_check reports before it stops collecting. */
#define STORAGE_CHECK_ITEMS_MAX 10000
/* Files one folder listing may hold (about 200 bytes each in memory): a
 * folder past this fails with TEMP rather than exhausting memory. */
#define STORAGE_SYNC_FILES_MAX 2000000
/* Directory depth storage_destroy descends (user/.folder/cur/file). */
#define STORAGE_RMTREE_DEPTH_MAX 8

#if STORAGE_HOST_MAX + 120 > STORAGE_NAME_MAX
#error "file names could exceed NAME_MAX"
#endif

enum maildir_sub { MAILDIR_NEW = 0, MAILDIR_CUR = 1 };

struct storage_stmt {
	const char *sql;	/* identity: the address of a static string */
	sqlite3_stmt *stmt;
};

struct storage {
	char *data_dir;
	char *address;
	char *path;		/* data_dir/mail/<domain>/<localpart> */
	sqlite3 *db;
	dev_t db_dev;		/* roost.db when opened: storage_stale() */
	ino_t db_ino;
	struct storage_stmt stmts[STORAGE_STMT_CACHE];
	size_t stmt_count;
	char error[512];
};

struct storage_mailbox {
	struct storage *st;
	int64_t id;
	char name[RB_MAILBOX_NAME_MAX + 1];
	char rel[STORAGE_NAME_MAX + 2];	/* "" for INBOX, else ".Name/" */
};

/* Spool data is written through a buffer: callers write line by line. */
#define STORAGE_SPOOL_BUF 65536

struct storage_spool {
	char *path;		/* data_dir/tmp/<unique> */
	int fd;			/* -1 once finished */
	uint64_t size;
	uint64_t vsize;
	unsigned char last;	/* last byte written, for CR LF across writes */
	unsigned char *buf;
	size_t buf_len;
	bool finished;		/* fsynced, ready to link */
	bool failed;		/* a write failed: the spool is unusable */
	char error[256];
};

/* ---- maildir.c: names, flags, paths ---- */

/* Writes the on-disk folder of a mailbox relative to the user dir: "" for
 * INBOX, ".Enc.oded/" otherwise.  -1 if name is invalid. */
int maildir_folder_rel(const char *name, char *buf, size_t size);
/* Inverse for a directory entry of the user dir (".A%2Eb.c" -> "A.b/c").
 * Only canonical encodings are accepted (decode then encode must give the
 * entry back), so one folder maps to one name.  -1 if not a mailbox. */
int maildir_folder_decode(const char *entry, char *name_r, size_t size);
/* Canonical mailbox name: "INBOX" for any case of it, else name as is. */
const char *maildir_name_canon(const char *name);
bool maildir_is_inbox(const char *name);
/* Splits "local@domain" at the last '@' into bounded buffers. */
int maildir_address_split(const char *address, char *local_r,
			  size_t local_size, char *domain_r,
			  size_t domain_size);
/* A fresh unique base "<time>.M<usec>P<pid>Q<n>.<host>". */
int maildir_unique_base(char *buf, size_t size);
/* The system flags of a file name (0 without ":2,"). */
uint32_t maildir_name_flags(const char *name);
/* base + ":2," + flag letters, keeping any other letters found after
 * ":2," in old_name (other tools' keyword letters). */
int maildir_filename_make(const char *base, uint32_t flags,
			  const char *old_name, char *buf, size_t size);
const char *maildir_sub_name(enum maildir_sub sub);
/* Counts bytes with bare LFs counted twice (the CRLF size) by reading
 * the file; -1 on read error. */
int maildir_file_vsize(int fd, uint64_t *size_r, uint64_t *vsize_r);

/* ---- dirlist.c: listing a folder's new/ and cur/ ---- */

struct maildir_file {
	char *name;		/* as on disk */
	char *base;
	enum maildir_sub sub;
	uint32_t flags;
	uint64_t size;		/* S=, 0 when absent */
	uint64_t vsize;		/* W=, 0 when absent */
};

struct maildir_list {
	struct maildir_file *files;	/* sorted by base, bases unique */
	size_t count;
	size_t cap;
};

/* Lists folder/new and folder/cur (folder is absolute).  A missing
 * subdirectory lists as empty.  If a base occurs in both (a rename
 * new -> cur raced the scan) the cur/ entry wins.  -1 with errno. */
int maildir_list_read(const char *folder, struct maildir_list *list_r);
void maildir_list_free(struct maildir_list *list);
const struct maildir_file *maildir_list_find(const struct maildir_list *list,
					     const char *base);
/* Opens folder/<sub>/<name>: its mtime, and its sizes from S=/W= or, for
 * other tools' names without them, by reading it.  -1 with errno
 * (ENOENT: renamed or removed since the listing; EINVAL: not a file). */
int maildir_file_info(const char *folder, const struct maildir_file *f,
		      int64_t *mtime_ns_r, uint64_t *size_r,
		      uint64_t *vsize_r);
/* Looks for the current name of base in folder/new then folder/cur.
 * 1 found, 0 not there, -1 error. */
int maildir_find_base(const char *folder, const char *base,
		      enum maildir_sub *sub_r, char *name_r, size_t size);
/* Lists the mailbox folders in the user dir (canonical ones only, plus
 * INBOX first).  *names_r is an array of heap strings. */
int maildir_folders_read(const char *user_dir, char ***names_r,
			 size_t *count_r);
void maildir_folders_free(char ***names, size_t count);
/* rm -r of path without following symlinks. */
int maildir_rmtree(const char *path);

/* ---- index.c: SQLite helpers ---- */

/* Opens (creating when asked) the index file with our pragmas and schema;
 * used by storage_open and the rebuild. */
/* Closes an index opened by idx_open (user_dir: where roost.db is); see
 * index.c for why it may checkpoint first. */
void idx_close(sqlite3 *db, const char *user_dir);
int idx_open(const char *path, bool create, sqlite3 **db_r,
	     const char **error_r);
int idx_schema_create(sqlite3 *db);
/* flock()s the directory that holds path (the index file): serialises
 * creating or replacing roost.db against its -wal/-shm cleanup.  Returns
 * the fd to close(), which unlocks; -1 with errno. */
int idx_lock_dir(const char *path);
/* Returns the cached statement for sql (a static string), reset and with
 * bindings cleared; NULL on error (st->error set). */
sqlite3_stmt *idx_stmt(struct storage *st, const char *sql);
void idx_stmts_free(struct storage *st);
/* Maps SQLite failure to a storage error and records the text. */
enum storage_err idx_fail(struct storage *st, const char *what);
enum storage_err idx_begin(struct storage *st);
enum storage_err idx_commit(struct storage *st);
void idx_rollback(struct storage *st);
/* Mailbox row by name: id, and optionally uidnext and highestmodseq.
 * STORAGE_ERR_NOTFOUND when there is none. */
enum storage_err idx_mailbox_get(struct storage *st, const char *name,
				 int64_t *id_r, uint32_t *uidnext_r,
				 uint64_t *modseq_r);
/* A UIDVALIDITY for a new mailbox: the time, but above every existing one
 * so mailboxes never share one.  Call inside a write transaction. */
enum storage_err idx_new_uidvalidity(struct storage *st, uint32_t *uidv_r);
/* Bumps highestmodseq of a mailbox, returns the new value. */
enum storage_err idx_modseq_bump(struct storage *st, int64_t mailbox_id,
				 uint64_t *modseq_r);
/* Inserts a mailbox row. */
enum storage_err idx_mailbox_insert(struct storage *st, const char *name,
				    int64_t *id_r);
enum storage_err idx_mailbox_uidnext(struct storage *st, int64_t mailbox_id,
				     uint32_t *uidnext_r);
/* One messages row, for inserting. */
struct idx_msg {
	int64_t mailbox_id;
	uint32_t uid;
	const char *base;
	enum maildir_sub sub;
	const char *filename;
	uint32_t flags;
	const char *keywords;	/* NULL for none */
	int64_t internal_date;
	uint64_t size;
	uint64_t vsize;
	uint64_t modseq;
	const char *guid;
};
enum storage_err idx_message_insert(struct storage *st,
				    const struct idx_msg *m);
/* Sets uidnext (when non-zero) and highestmodseq of a mailbox. */
enum storage_err idx_mailbox_counters(struct storage *st, int64_t mailbox_id,
				      uint32_t uidnext, uint64_t modseq);
/* Special-use attribute given to well-known top-level names. */
const char *idx_special_use(const char *name);

/* ---- store.c ---- */

void storage_set_error(struct storage *st, const char *fmt, ...)
	RB_PRINTF(2, 3);
/* Same with ": strerror(errno)" appended. */
void storage_set_errno(struct storage *st, const char *fmt, ...)
	RB_PRINTF(2, 3);
/* Absolute path of a file in a mailbox folder ("" sub name allowed). */
int storage_file_path(const struct storage *st, const char *rel,
		      enum maildir_sub sub, const char *name, char *buf,
		      size_t size);
int storage_folder_path(const struct storage *st, const char *rel, char *buf,
			size_t size);
/* Fills a fresh GUID. */
void storage_guid_new(char guid[37]);
/* Builds data_dir/mail/<domain>/<localpart>; PARAMS on a bad address. */
enum storage_err storage_user_dir(const char *data_dir, const char *address,
				  char *buf, size_t size,
				  const char **error_r);

/* ---- mailbox.c ---- */

/* Makes an absolute folder path with cur/ new/ tmp/ and maildirfolder;
 * *created_r tells whether the folder directory itself was new. */
int mailbox_folder_make(const char *folder, bool *created_r);
/* Removes a folder made by mailbox_folder_make when created is true. */
void mailbox_folder_unmake(const char *folder, bool created);

/* ---- sync.c ---- */

/* Syncs one mailbox (rel as in struct storage_mailbox).  Without force
 * an unchanged folder (same new/ and cur/ mtimes as at the last scan)
 * costs two stat() calls.  Starts its own transaction. */
enum storage_err sync_mailbox(struct storage *st, int64_t mailbox_id,
			      const char *rel, bool force);

/* ---- rebuild.c, rebuild_old.c ---- */

struct old_msg {
	char *base;
	uint32_t uid;
	char guid[37];
	char *keywords;
	int64_t internal_date;
};

struct old_box {
	int64_t id;
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	char special_use[32];
	bool subscribed;
};

struct rebuild_ctx {
	char user_dir[RB_PATH_MAX];
	struct storage old;	/* old.db NULL: no usable old index */
	struct storage tmp;	/* the index being built */
	uint32_t uidv_floor;	/* fresh UIDVALIDITYs stay above this */
	bool old_corrupt;	/* reading the old index failed: move aside */
};

/* Opens the old index at dbpath and starts a read snapshot; on failure
 * ctx->old_corrupt tells "move it aside" from "try again later". */
enum storage_err rebuild_old_open(struct rebuild_ctx *ctx,
				  const char *dbpath);
/* Records a failed old-index read (rc) and classifies it. */
enum storage_err rebuild_old_fail(struct rebuild_ctx *ctx, int rc,
				  const char *what);
int rebuild_old_move_aside(const char *dbpath);
/* The old row of mailbox name: 1 found, 0 none, -1 error. */
int rebuild_old_box(struct rebuild_ctx *ctx, const char *name,
		    struct old_box *box);
/* Messages of an old mailbox, sorted by base for rebuild_old_msg_find. */
enum storage_err rebuild_old_msgs(struct rebuild_ctx *ctx, int64_t id,
				  struct old_msg **msgs_r, size_t *count_r);
const struct old_msg *rebuild_old_msg_find(const struct old_msg *msgs,
					   size_t count, const char *base);
void rebuild_old_msgs_free(struct old_msg *msgs, size_t count);
/* MAX(uidvalidity) of the old index (0 without one). */
enum storage_err rebuild_old_max_uidvalidity(struct rebuild_ctx *ctx,
					     uint32_t *max_r);
/* Closes a helper connection (finalizing its cached statements). */
void rebuild_db_close(struct storage *st);

#endif
