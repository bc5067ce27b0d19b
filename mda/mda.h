/*
 * mda/ — the delivery pipeline shared by roost-lmtpd and roost-deliver:
 * recipient lookup (users, aliases, +detail), quota policy, trace headers
 * (Return-Path, Delivered-To, Received) and the storage calls.
 *
 * One transaction = one envelope: a sender, recipients checked as they
 * are added (so LMTP can answer RCPT at once), then the message lines,
 * written once to a spool and hard-linked to every recipient.  After
 * mda_txn_data_end() each recipient has a status: MDA_OK only when the
 * message is on disk, fsynced, and indexed.
 */
#ifndef ROOST_MDA_H
#define ROOST_MDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

enum mda_status {
	MDA_OK = 0,
	MDA_NO_USER,		/* unknown or disabled recipient */
	MDA_OVER_QUOTA,		/* recipient over quota */
	MDA_TOO_BIG,		/* message over max_message_size */
	MDA_TEMP,		/* disk, I/O, database busy: retry later */
	MDA_BAD_INPUT,		/* bad address syntax, unreadable input */
	MDA_TOO_MANY,		/* too many recipients in one transaction */
};

/* What to answer the MTA for a status. */
struct mda_reply {
	unsigned code;		/* SMTP/LMTP reply code: 250, 452, 550, ... */
	const char *enhanced;	/* "2.1.5", "5.1.1", ... (RFC 3463) */
	const char *text;	/* human text without the codes */
	int exit_code;		/* for roost-deliver, from <sysexits.h> */
};

struct mda;

/* Opens users.db and keeps the config (which must outlive mda).  Runs as
 * whatever user the caller already is (privileges are dropped before). */
int mda_open(const struct rb_config *cfg, struct mda **mda_r,
	     const char **error_r);
void mda_close(struct mda **mda);

/* The reply for a status.  at_rcpt: answering RCPT (2.1.5) rather than
 * the end of DATA (2.0.0).  Over-quota follows [delivery] quota_full. */
void mda_reply(const struct mda *mda, enum mda_status status, bool at_rcpt,
	       struct mda_reply *reply_r);

struct mda_txn_params {
	const char *sender;	 /* reverse-path without <>, "" for null */
	const char *client_helo; /* LHLO argument, NULL for the pipe */
	const char *client_addr; /* "127.0.0.1", NULL for unix/pipe */
	const char *protocol;	 /* "LMTP" or "local" */
	const char *session_id;	 /* for logs and the Received id */
	const char *remote;	 /* for logs: "ip:port" or "unix"; NULL for
				    the pipe */
	uint64_t size_hint;	 /* SIZE= of MAIL FROM (RFC 1870), 0 if none:
				    a recipient it would put over quota is
				    refused at RCPT already */
};

struct mda_txn;

struct mda_txn *mda_txn_new(struct mda *mda,
			    const struct mda_txn_params *params);
/* Checks and adds a recipient.  mailbox: deliver into this folder (it must
 * exist, else INBOX) or NULL for the +detail folder when it exists, else
 * INBOX.  MDA_OVER_QUOTA when the user is full, or when params.size_hint
 * would not fit.  Only MDA_OK adds the recipient; the index of an added recipient
 * is the count before the call.  The bare "Postmaster" (any case, RFC 5321
 * §4.5.1) is accepted: see postmaster_resolve() in mda.c.  A refused
 * recipient is logged here (one line), an accepted one at data_end. */
enum mda_status mda_txn_add_rcpt(struct mda_txn *txn, const char *address,
				 const char *mailbox);
size_t mda_txn_rcpt_count(const struct mda_txn *txn);
/* Replaces the sender (roost-deliver learns it from an mbox "From "
 * line); only before mda_txn_data_begin(). */
void mda_txn_set_sender(struct mda_txn *txn, const char *sender);
/* Starts the message: creates the spool and writes the trace headers.
 * Call after at least one recipient was added. */
enum mda_status mda_txn_data_begin(struct mda_txn *txn);
/* One line of the message without its line terminator (already
 * dot-unstuffed).  With more = true it is only a piece of a line too long
 * to hold: no line end is written and the next call continues it.  Returns MDA_TOO_BIG once the message passes
 * max_message_size (later lines are dropped, keep calling until the end)
 * or MDA_TEMP on a write error; the status sticks for data_end. */
enum mda_status mda_txn_data_line(struct mda_txn *txn, const char *line,
				  size_t len, bool more);
/* Finishes: flushes the spool once, links it into every recipient, then
 * commits each.  results[i] receives the status of recipient i (the array
 * holds mda_txn_rcpt_count() entries).  Logs one line per delivery (per
 * user an alias reached), with user, mailbox, uid and the reply: callers
 * do not log recipients again. */
void mda_txn_data_end(struct mda_txn *txn, enum mda_status *results);
void mda_txn_free(struct mda_txn **txn);

#endif
