/*
 * common/ — the mail-free core: memory, bounded buffers, strings, logging,
 * configuration, file-system helpers, privilege drop, listeners and the
 * worker process model.  Nothing here knows about users or messages.
 *
 * Conventions (STYLE.md): int functions return 0 on success and -1 on
 * error; parsers and I/O steps return 1 done / 0 need more / -1 error;
 * results come back through *_r parameters, error text through
 * `const char **error_r` (static or owned by the object it came from).
 */
#ifndef ROOST_COMMON_H
#define ROOST_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/limits.h"

#define RB_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define RB_NORETURN __attribute__((noreturn))
#define RB_UNUSED __attribute__((unused))
#define RB_N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- memory: abort on failure (STYLE.md: workers can be restarted) ---- */

void *rb_malloc(size_t size);
/* Zeroed; nmemb * size is overflow-checked. */
void *rb_calloc(size_t nmemb, size_t size);
void *rb_realloc(void *p, size_t size);
char *rb_strdup(const char *s);
char *rb_strndup(const char *s, size_t n);
/* printf into a fresh heap string. */
char *rb_strdup_printf(const char *fmt, ...) RB_PRINTF(1, 2);
/* Frees *p and sets it to NULL. */
void rb_free(void *pp);

/* a + b into *sum_r; false on overflow. */
bool rb_add_overflows(size_t a, size_t b, size_t *sum_r);

/* ---- bounded byte buffer ---- */

/* Binary-safe growable buffer with a hard maximum: appending past `max`
 * fails instead of growing.  data is always NUL-terminated past len for
 * convenience, but the contents may contain NULs. */
struct rb_buf {
	unsigned char *data;
	size_t len;
	size_t cap;
	size_t max;
};

void rb_buf_init(struct rb_buf *buf, size_t max);
void rb_buf_free(struct rb_buf *buf);
/* Returns 0, or -1 (nothing appended) when len + n would exceed max. */
int rb_buf_append(struct rb_buf *buf, const void *p, size_t n);
int rb_buf_append_str(struct rb_buf *buf, const char *s);
int rb_buf_printf(struct rb_buf *buf, const char *fmt, ...) RB_PRINTF(2, 3);
int rb_buf_vprintf(struct rb_buf *buf, const char *fmt, va_list ap)
	RB_PRINTF(2, 0);
/* Drops the first n bytes. */
void rb_buf_consume(struct rb_buf *buf, size_t n);
void rb_buf_reset(struct rb_buf *buf);

/* ---- strings ---- */

/* snprintf that fails (-1) on truncation or encoding error. */
int rb_snprintf(char *dst, size_t size, const char *fmt, ...) RB_PRINTF(3, 4);
/* Copies src into dst; -1 if it would not fit (dst then holds ""). */
int rb_strlcpy(char *dst, const char *src, size_t size);
/* ASCII-only lowercase in place (locale independent). */
void rb_str_lower(char *s);
int rb_strcasecmp(const char *a, const char *b);
int rb_strncasecmp(const char *a, const char *b, size_t n);
/* Parses a decimal uint64 with an optional k/M/G suffix (1024-based);
 * -1 on junk or overflow. */
int rb_parse_size(const char *s, uint64_t *value_r);
/* Plain decimal, no suffix, within [min, max]. */
int rb_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *value_r);
/* yes/no/true/false/on/off/1/0. */
int rb_parse_bool(const char *s, bool *value_r);

/* ---- time ---- */
uint64_t rb_now_usec(void);

/* ---- programs and sessions ---- */

/* Prints "<program>: <message>" on stderr and returns code, for main()'s
 * "return rb_fail(EX_CONFIG, ...)". */
int rb_fail(int code, const char *fmt, ...) RB_PRINTF(2, 3);

/* Session ids for logs: RB_SESSION_ID_LEN lowercase base32 characters of
 * random bits (unique, not secret); out holds RB_SESSION_ID_LEN + 1. */
#define RB_SESSION_ID_LEN 12
void rb_session_id(char *out);

/* The address part of a remote name as rb_server reports it:
 * "1.2.3.4:25" -> "1.2.3.4", "[::1]:25" -> "::1", "unix" -> "". */
void rb_remote_ip(const char *remote, char *out, size_t size);

/* Log lines of a session: any struct with `id` and `remote` strings. */
#define SLOG_DEBUG(s, fmt, ...) \
	log_debug("session=%s remote=%s " fmt, (s)->id, (s)->remote, \
		  ##__VA_ARGS__)
#define SLOG_INFO(s, fmt, ...) \
	log_info("session=%s remote=%s " fmt, (s)->id, (s)->remote, \
		 ##__VA_ARGS__)
#define SLOG_WARNING(s, fmt, ...) \
	log_warning("session=%s remote=%s " fmt, (s)->id, (s)->remote, \
		    ##__VA_ARGS__)
#define SLOG_ERROR(s, fmt, ...) \
	log_error("session=%s remote=%s " fmt, (s)->id, (s)->remote, \
		  ##__VA_ARGS__)

/* ---- logging ---- */

enum rb_log_level { RB_LOG_DEBUG, RB_LOG_INFO, RB_LOG_WARNING, RB_LOG_ERROR };
enum rb_log_target { RB_LOG_STDERR, RB_LOG_SYSLOG };

void rb_log_init(const char *ident, enum rb_log_target target,
		 enum rb_log_level level);
bool rb_log_enabled(enum rb_log_level level);
/* Lines are key=value; callers put session=, user=, remote= first. */
void log_debug(const char *fmt, ...) RB_PRINTF(1, 2);
void log_info(const char *fmt, ...) RB_PRINTF(1, 2);
void log_warning(const char *fmt, ...) RB_PRINTF(1, 2);
void log_error(const char *fmt, ...) RB_PRINTF(1, 2);
/* A bug or an impossible state: logs and aborts. */
void log_fatal(const char *fmt, ...) RB_PRINTF(1, 2) RB_NORETURN;
/* Copies peer-supplied bytes into out as a printable, quoted-safe token:
 * non-printables, quotes and backslashes become \xNN, and the result is
 * truncated (with "...") to fit.  Returns out. */
const char *rb_log_escape(const void *p, size_t n, char *out, size_t outsize);

/* Always-on check for invariants whose violation would be a security
 * problem. */
#define RB_CHECK(cond)                                                       \
	do {                                                                 \
		if (!(cond))                                                 \
			log_fatal("check failed: %s at %s:%d", #cond,        \
				  __FILE__, __LINE__);                       \
	} while (0)

/* ---- configuration ---- */

enum rb_quota_full { RB_QUOTA_FULL_TEMPFAIL, RB_QUOTA_FULL_REJECT };
enum rb_plaintext { RB_PLAINTEXT_NO, RB_PLAINTEXT_YES, RB_PLAINTEXT_LOOPBACK };

struct rb_listen_addr {
	bool is_unix;
	char path[108];			/* unix: socket path */
	char host[RB_HOSTNAME_MAX + 1];	/* tcp: address or name */
	char port[16];
};

struct rb_listen_list {
	struct rb_listen_addr addr[RB_LISTEN_MAX];
	size_t count;
};

struct rb_config {
	char *path;
	struct {
		char *data_dir;
		char *mail_user;	/* NULL: not configured */
		char *hostname;
		enum rb_log_target log;
		enum rb_log_level log_level;
	} general;
	struct {
		char *cert;		/* NULL: not configured */
		char *key;
		char *min_version;	/* "1.2" or "1.3" */
		char *ciphers;		/* NULL: OpenSSL default */
	} tls;
	struct {
		struct rb_listen_list listen;
		uint64_t max_message_size;
		unsigned workers;
		unsigned idle_timeout;		/* seconds */
		unsigned max_line_length;
		unsigned max_connections;	/* per worker */
	} lmtp;
	struct {
		char recipient_delimiter[8];	/* "" = none */
		enum rb_quota_full quota_full;
		bool add_received;
	} delivery;
	struct {
		uint64_t default_bytes;		/* 0 = unlimited */
		uint64_t default_messages;
	} quota;
	struct {
		struct rb_listen_list listen;
		struct rb_listen_list listen_tls;
		unsigned workers;
		bool mark_seen_on_retr;
		unsigned idle_timeout;
		unsigned max_connections;	/* per worker */
		unsigned max_connections_per_ip;
		unsigned login_delay;		/* seconds; 0 = not announced */
	} pop3;
	struct {
		char *mechanisms;		/* space separated */
		enum rb_plaintext allow_plaintext;
		unsigned failure_delay;		/* seconds */
		unsigned max_failures_per_ip;	/* per minute */
		bool localpart_case_sensitive;
	} auth;
};

/* Fills cfg with the built-in defaults (no file read). */
void rb_config_defaults(struct rb_config *cfg);
/* Reads path over what cfg holds, so call rb_config_defaults() first.
 * An unknown section or key, a bad value, a
 * line too long or a missing file is an error; *error_r is a heap string
 * "FILE:LINE: key 'k' in [s]: reason" that the caller frees. */
int rb_config_load(const char *path, struct rb_config *cfg, char **error_r);
/* Parses an in-memory config (for tests and fuzzing); name is used in
 * messages. */
int rb_config_parse(const char *name, const char *text, size_t len,
		    struct rb_config *cfg, char **error_r);
void rb_config_free(struct rb_config *cfg);
/* "127.0.0.1:24, unix:/run/roost/lmtp.sock, [::1]:24" */
int rb_listen_parse(const char *value, struct rb_listen_list *list_r,
		    const char **error_r);
/* The default config file path. */
#define RB_CONFIG_DEFAULT "/etc/roost/roost.conf"

/* ---- files ---- */

/* write() until done, retrying EINTR; -1 with errno on failure. */
int rb_write_all(int fd, const void *p, size_t n);
/* read() up to n bytes, retrying EINTR and short reads until EOF. Returns
 * bytes read or -1. */
ssize_t rb_read_all(int fd, void *p, size_t n);
int rb_fsync_dir(const char *path);
/* mkdir -p: the last component gets mode, missing parents 0755;
 * existing directories are fine. */
int rb_mkdir_p(const char *path, mode_t mode);

/* Fault injection for tests (SQLite's faultsim): when the environment has
 * ROOST_FAULT="site:N[,site:N...]", the Nth call of rb_fault("site") (and
 * every later one) returns true, so the caller fails as if the system
 * call had.  Cheap when unset. */
bool rb_fault(const char *site);

/* ---- privileges ---- */

/* Looks up a user's uid/gid. */
int rb_user_ids(const char *user, uid_t *uid_r, gid_t *gid_r,
		const char **error_r);
/* When running as root: switch to mail_user for good (setgroups,
 * setresgid, setresuid, then verify root cannot be regained).  As root
 * with mail_user NULL it is an error.  As a normal user it does nothing. */
int rb_privdrop(const char *mail_user, const char **error_r);

/* ---- base64 (RFC 4648), for SASL exchanges ---- */

/* Encodes n bytes into out (size >= 4*((n+2)/3)+1); returns the length. */
size_t rb_base64_encode(const void *p, size_t n, char *out, size_t outsize);
/* Decodes text (no line breaks; '=' padding required) into out; -1 on
 * bad input or when out is too small.  *len_r is the decoded length. */
int rb_base64_decode(const char *text, size_t len, void *out, size_t outsize,
		     size_t *len_r);

/* ---- TLS (OpenSSL 3 over libevent bufferevents) ---- */

struct ssl_ctx_st;
struct bufferevent;
struct event_base;

/* A server context from cfg->tls: certificate chain, key (checked to
 * match), min_version (never below TLS 1.2), ciphers.  Load it as root,
 * before rb_privdrop, so the key file can stay root-only. */
int rb_tls_ctx_new(const struct rb_config *cfg, struct ssl_ctx_st **ctx_r,
		   const char **error_r);
void rb_tls_ctx_free(struct ssl_ctx_st **ctx);
/* Implicit TLS: a bufferevent doing the server handshake on fd (owned and
 * closed by the bufferevent).  NULL on failure (fd is closed). */
struct bufferevent *rb_tls_accept(struct event_base *base,
				  struct ssl_ctx_st *ctx, int fd);
/* STARTTLS/STLS: a TLS filter over an existing plain bufferevent, which it
 * takes over (freed with the returned one).  Call only when the plain
 * input buffer is empty (RFC 2595 §3.1: no pipelining past STLS). */
struct bufferevent *rb_tls_starttls(struct bufferevent *plain,
				    struct ssl_ctx_st *ctx);
/* True when bev is a TLS bufferevent; cipher/version text for logs. */
bool rb_tls_active(struct bufferevent *bev);
const char *rb_tls_describe(struct bufferevent *bev, char *buf, size_t size);

/* ---- listeners and workers ---- */

/* Opens a listening socket for one address (unix sockets: any stale file
 * is removed and the new one is mode 0666, chowned to owner when
 * owner_uid != (uid_t)-1). */
int rb_listen_open(const struct rb_listen_addr *addr, uid_t owner_uid,
		   gid_t owner_gid, int *fd_r, const char **error_r);
/* "127.0.0.1:24" / "unix:/path" for logs. */
const char *rb_listen_name(const struct rb_listen_addr *addr, char *buf,
			   size_t size);

struct event_base;

struct rb_server_listener {
	int fd;
	bool tls;	/* implicit TLS port */
};

struct rb_server_params {
	const char *name;		/* "lmtp", for logs */
	const struct rb_server_listener *listeners;
	size_t listener_count;
	unsigned workers;
	unsigned max_connections;	/* per worker; above it new ones wait */
	/* In each worker after fork, before accepting. */
	int (*worker_init)(struct event_base *base, void *arg);
	/* A new connection: the callback owns fd.  `remote` is "ip:port" or
	 * "unix". */
	void (*accept)(struct event_base *base, int fd, bool tls,
		       const char *remote, bool loopback, void *arg);
	/* SIGTERM in a worker: close idle sessions; busy ones finish their
	 * command first and then close. */
	void (*shutdown)(void *arg);
	/* In each worker after its loop ended, before it exits (may be
	 * NULL): close what worker_init opened. */
	void (*worker_exit)(void *arg);
	void *arg;
};

/* Runs the master: forks params->workers workers, restarts any that die
 * unexpectedly, stops them on SIGTERM/SIGINT and returns the exit code
 * for main().  Each worker runs its own libevent loop. */
int rb_server_run(const struct rb_server_params *params);
/* Sessions call these so a worker knows when it may exit after SIGTERM
 * and when it is full. */
void rb_server_conn_add(void);
void rb_server_conn_del(void);
bool rb_server_shutting_down(void);

#endif
