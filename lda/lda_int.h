/*
 * lda/ private interface: the LMTP session and its command handlers,
 * shared by lmtp_session.c, lmtp_cmd.c and main.c.  Not for other folders.
 */
#ifndef ROOST_LDA_INT_H
#define ROOST_LDA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "lda/lda.h"
#include "mda/mda.h"

struct bufferevent;
struct event;
struct event_base;

/* One enum of session states (STYLE.md).  Transitions go through
 * lmtp_session_set_state() only. */
enum lmtp_state {
	LMTP_STATE_CONNECTED = 0,	/* greeting sent, no LHLO yet */
	LMTP_STATE_READY,		/* LHLO done, no transaction */
	LMTP_STATE_MAIL,		/* MAIL accepted, no recipient yet */
	LMTP_STATE_RCPT,		/* at least one recipient accepted */
	LMTP_STATE_DATA,		/* reading the message after DATA 354 */
	LMTP_STATE_CHUNK,		/* reading the octets of a BDAT chunk */
	LMTP_STATE_BDAT,		/* between BDAT chunks of a message */
	LMTP_STATE_CLOSING,		/* last reply queued; close once sent */
	LMTP_STATE_COUNT
};

#define LMTP_STATE_BIT(st) (1u << (st))
#define LMTP_STATES_ALL ((1u << LMTP_STATE_COUNT) - 1)

/* base32 of 60 random bits: short enough for every log line, unique
 * enough to grep one session out of a busy day's logs. */

/* One per worker process: what every session of the worker shares. */
struct lmtp_worker {
	const struct rb_config *cfg;
	struct mda *mda;	/* NULL until mda_open succeeds */
	struct event_base *base;
	struct lmtp_session *sessions;
	unsigned count;
};

struct lmtp_session {
	struct lmtp_session *prev, *next;
	struct lmtp_worker *worker;
	struct bufferevent *bev;
	struct event *ev_free;		/* deferred free, see session_close */
	enum lmtp_state state;
	bool lhlo_done;
	bool freeing;
	bool paused;			/* output over RB_OUTPUT_BUFFER_MAX */
	bool quit_after_txn;		/* SIGTERM arrived mid-message */
	char id[RB_SESSION_ID_LEN + 1];
	char remote[80];		/* "ip:port" or "unix", for logs */
	char client_addr[64];		/* "ip" or "" (unix socket) */
	char helo[RB_HOSTNAME_MAX + 1];	/* LHLO argument, cleaned */
	unsigned bad_commands;
	const char *close_reason;

	struct lmtp_parser parser;

	/* the transaction */
	struct mda_txn *txn;
	char sender[RB_ADDR_MAX + 1];
	char **rcpts;			/* accepted RCPT addresses, in order */
	size_t rcpt_count, rcpt_cap;
	struct lmtp_data data;		/* DATA / BDAT message parser */
	bool data_active;
	enum mda_status data_status;	/* first failure while streaming */
	uint64_t chunk_size;		/* BDAT: size of the current chunk */
	uint64_t chunk_left;		/* BDAT octets still to read */
	bool chunk_last;

	/* octets of a refused BDAT still to discard (RFC 3030 §2), and the
	 * reply to send once they are gone ("" for none) */
	uint64_t discard_left;
	char discard_reply[160];

	/* totals for the disconnect log line */
	unsigned transactions;
	unsigned delivered;
};


/* ---- lmtp_session.c ---- */

/* rb_server accept callback body: takes ownership of fd.  remote is
 * "ip:port" or "unix". */
void lmtp_session_accept(struct lmtp_worker *worker, int fd,
			 const char *remote);
/* SIGTERM: idle sessions get 421 and close; a session in the middle of a
 * message finishes that transaction first. */
void lmtp_worker_shutdown(struct lmtp_worker *worker);

/* Appends one reply line (CRLF added) to the output buffer. */
void lmtp_reply(struct lmtp_session *s, const char *fmt, ...) RB_PRINTF(2, 3);
void lmtp_session_set_state(struct lmtp_session *s, enum lmtp_state state);
/* Queues reply (if not NULL) and closes once the output is sent. */
void lmtp_session_close(struct lmtp_session *s, const char *reason,
			const char *reply);
const char *lmtp_state_name(enum lmtp_state state);

/* ---- lmtp_cmd.c ---- */

/* Runs one parsed command (parse result ret: 1 ok, -1 refused line). */
void lmtp_cmd_dispatch(struct lmtp_session *s, int ret,
		       const struct lmtp_cmd *cmd);
/* Hands one message line to the transaction. */
void lmtp_txn_data_line(struct lmtp_session *s, const struct lmtp_data_event *ev);
/* The message is complete (final "." or BDAT LAST): deliver and send one
 * reply per accepted recipient (RFC 2033 §4.2). */
void lmtp_txn_finish(struct lmtp_session *s);
/* The octets of an accepted BDAT chunk are all in (RFC 3030 §2). */
void lmtp_chunk_done(struct lmtp_session *s);
/* Drops the transaction (RSET, LHLO, failure, disconnect). */
void lmtp_txn_reset(struct lmtp_session *s);

#endif
