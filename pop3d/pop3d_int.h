/*
 * pop3d/ private interface: the POP3 session, its maildrop snapshot and
 * the command handlers, shared by pop3_session.c, pop3_cmd.c,
 * pop3_auth.c, pop3_maildrop.c and main.c.  Not for other folders.
 */
#ifndef ROOST_POP3D_INT_H
#define ROOST_POP3D_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth/auth.h"
#include "common/common.h"
#include "pop3d/pop3d.h"
#include "storage/storage.h"

struct bufferevent;
struct event;
struct event_base;
struct ssl_ctx_st;

/* RFC 1939 §3 states plus our own bookkeeping, in one enum (STYLE.md).
 * Transitions go through pop3_session_set_state() only. */
enum pop3_state {
	POP3_STATE_AUTHORIZATION = 0,	/* RFC 1939 §4 */
	POP3_STATE_SASL,		/* inside an AUTH exchange (RFC 5034) */
	POP3_STATE_TRANSACTION,		/* RFC 1939 §5 */
	POP3_STATE_UPDATE,		/* QUIT: removing marked messages */
	POP3_STATE_CLOSING,		/* last reply queued; close once sent */
	POP3_STATE_COUNT
};

#define POP3_STATE_BIT(st) (1u << (st))



/* One per worker process: what every session of the worker shares. */
struct pop3_worker {
	const struct rb_config *cfg;
	struct event_base *base;
	struct ssl_ctx_st *tls_ctx;	/* NULL: no [tls] configured */
	struct auth_db *db;		/* NULL until opened */
	struct auth_throttle *throttle;
	/* SASL mechanisms offered: [auth] mechanisms that auth_sasl can
	 * serve, space separated ("" for none) */
	char mechs[128];
	struct pop3_session *sessions;
	unsigned count;
};

/* What RETR/TOP/LIST/UIDL are producing while the output drains. */
enum pop3_output {
	POP3_OUTPUT_NONE = 0,
	POP3_OUTPUT_MESSAGE,	/* RETR / TOP: a message file */
	POP3_OUTPUT_LIST,	/* LIST without argument */
	POP3_OUTPUT_UIDL,	/* UIDL without argument */
};

struct pop3_stream {
	enum pop3_output kind;
	size_t cursor;		/* LIST/UIDL: next message index */
	/* RETR/TOP */
	int fd;
	size_t index;		/* message index in the snapshot */
	bool top;
	bool bol;		/* at the beginning of a line */
	bool line_blank;	/* the line so far holds only CRs */
	bool prev_cr;		/* the last octet sent was CR */
	bool in_body;		/* TOP: past the header/body blank line */
	uint64_t lines_left;	/* TOP: body lines still to send */
	bool mark_seen;		/* RETR with mark_seen_on_retr */
};

/* One message of the snapshot: only what POP3 needs, so that a big
 * maildrop costs about 24 octets plus its UIDL per message. */
struct pop3_msg {
	uint64_t vsize;			/* octets RETR sends (W=) */
	uint32_t uid;
	uint32_t uidl;			/* offset of its UIDL in uidls */
	uint32_t flags;			/* STORAGE_FLAG_* at login */
	bool deleted;			/* DELE mark */
};

struct pop3_session {
	struct pop3_session *prev, *next;
	struct pop3_worker *worker;
	struct bufferevent *bev;
	struct event *ev_free;		/* deferred free, see session_close */
	struct event *ev_delay;		/* answer of a failed login */
	enum pop3_state state;
	bool freeing;
	bool tls;			/* TLS is active on this connection */
	bool loopback;
	bool paused;			/* output over RB_OUTPUT_BUFFER_MAX */
	bool delaying;			/* ev_delay pending: input waits */
	bool starttls_pending;		/* STLS answered: switch after it */
	bool quit_after_command;	/* SIGTERM while busy */
	char id[RB_SESSION_ID_LEN + 1];
	char remote[80];		/* "ip:port" or "unix", for logs */
	char client_addr[64];		/* "ip" or "" (unix socket) */
	unsigned bad_commands;
	unsigned auth_failures;
	const char *close_reason;

	struct pop3_parser parser;

	/* AUTHORIZATION */
	char user[RB_ADDR_MAX + 1];	/* USER argument, then the login */
	bool have_user;
	bool logged_in;			/* user is the authenticated login */
	struct auth_sasl *sasl;		/* AUTH exchange in progress */
	char sasl_mech[RB_POP3_ARG_MAX + 1];
	char delayed_reply[128];	/* sent when ev_delay fires */
	bool close_after_delay;

	/* TRANSACTION: the maildrop snapshot taken at login.  The store
	 * is closed once the snapshot is taken (an idle session keeps no
	 * SQLite connection or page cache) and opened again by
	 * pop3_maildrop_box() for the first RETR, TOP or QUIT that needs
	 * it. */
	struct storage *st;
	struct storage_mailbox *box;
	struct pop3_msg *msgs;
	size_t msg_count;
	char *uidls;			/* every UIDL, NUL-separated */
	int lock_fd;			/* flock on pop3.lock, -1 if none */

	struct pop3_stream out;

	/* totals for the disconnect log line */
	unsigned retrieved;
	unsigned expunged;
};


/* ---- pop3_session.c ---- */

/* rb_server accept callback body: takes ownership of fd. */
void pop3_session_accept(struct pop3_worker *worker, int fd, bool tls,
			 const char *remote, bool loopback);
/* SIGTERM: idle sessions are closed; a session busy with a command
 * (RETR streaming, QUIT's expunge) finishes it first. */
void pop3_worker_shutdown(struct pop3_worker *worker);

/* Appends one reply line (CRLF added) to the output buffer. */
void pop3_reply(struct pop3_session *s, const char *fmt, ...) RB_PRINTF(2, 3);
/* Appends raw octets (multi-line responses). */
void pop3_write(struct pop3_session *s, const void *p, size_t n);
size_t pop3_output_pending(struct pop3_session *s);
void pop3_session_set_state(struct pop3_session *s, enum pop3_state state);
/* Queues reply (if not NULL) and closes once the output is sent. */
void pop3_session_close(struct pop3_session *s, const char *reason,
			const char *reply);
const char *pop3_state_name(enum pop3_state state);
/* Sets the idle timeout for the session's state. */
void pop3_session_timeouts(struct pop3_session *s);
/* Answers a failed login after delay_ms (without blocking the loop) and
 * closes the session afterwards when close is set. */
void pop3_session_delay_reply(struct pop3_session *s, unsigned delay_ms,
			      const char *reply, bool close);
/* True when plaintext passwords may be sent on this connection. */
bool pop3_plaintext_ok(const struct pop3_session *s);

/* ---- pop3_cmd.c ---- */

/* Runs one parsed command (parse result ret: 1 ok, -1 refused line). */
void pop3_cmd_dispatch(struct pop3_session *s, int ret,
		       struct pop3_cmd *cmd);
/* Produces more of a multi-line answer (RETR/TOP/LIST/UIDL) until the
 * output is full.  Returns 1 when the answer is complete, 0 when more
 * is to come (call again from the write callback). */
int pop3_output_pump(struct pop3_session *s);
/* Aborts a multi-line answer (disconnect). */
void pop3_output_abort(struct pop3_session *s);

/* ---- pop3_auth.c ---- */

void pop3_cmd_user(struct pop3_session *s, struct pop3_cmd *cmd);
void pop3_cmd_pass(struct pop3_session *s, struct pop3_cmd *cmd);
void pop3_cmd_auth(struct pop3_session *s, struct pop3_cmd *cmd);
void pop3_cmd_sasl_response(struct pop3_session *s, struct pop3_cmd *cmd);
void pop3_cmd_stls(struct pop3_session *s, struct pop3_cmd *cmd);
void pop3_cmd_capa(struct pop3_session *s, struct pop3_cmd *cmd);
/* Ends an AUTH exchange (cancel, failure, disconnect). */
void pop3_sasl_end(struct pop3_session *s);

/* ---- pop3_maildrop.c ---- */

/* After authentication: lock the maildrop and take the snapshot.  On
 * failure the -ERR reply has been sent. */
int pop3_maildrop_open(struct pop3_session *s, const char *address);
/* Releases the snapshot, the index and the lock (idempotent). */
void pop3_maildrop_close(struct pop3_session *s);
/* The user's INBOX for RETR/TOP/QUIT, opened again if the snapshot
 * closed it; NULL (logged) when it cannot be opened. */
struct storage_mailbox *pop3_maildrop_box(struct pop3_session *s);
/* QUIT in TRANSACTION: removes the marked messages.  0 on success. */
int pop3_maildrop_expunge(struct pop3_session *s, unsigned *removed_r);
/* The UIDL of message index i (RFC 1939 §7). */
const char *pop3_msg_uidl(const struct pop3_session *s, size_t i);
/* The UIDL of a message file path (at most RB_POP3_UIDL_MAX
 * characters): out holds RB_POP3_UIDL_MAX + 1. */
void pop3_uidl(const char *path, char *out);

#endif
