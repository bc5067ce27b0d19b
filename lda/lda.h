/*
 * lda/ — roost-lmtpd, the LMTP server (RFC 2033).  This header is the
 * folder's public interface: the pure, resumable LMTP parsers that the
 * session uses and that tests/unit and tests/fuzz drive directly.  They do
 * no I/O, no logging and no storage calls; all state is in the structs.
 *
 * Two parsers, one per input mode of a session:
 *
 *  - lmtp_parser: command lines.  Feed it bytes as they arrive; it returns
 *    one command per complete line.  A line ends at CRLF or at a bare LF
 *    (the same rule as in DATA, so both modes agree on where a line ends);
 *    a CR that is not followed by LF is part of the line.  The length limit
 *    counts the line with its CRLF, as RFC 5321 §4.5.3.1.4 does, so with
 *    max_line 1000 a command has at most 998 octets before the terminator
 *    whichever terminator it uses.  An over-long line is reported once, when
 *    its end arrives, and its bytes are skipped without being stored.
 *
 *  - lmtp_data: the message after DATA (dot-stuffed, RFC 5321 §4.5.2) or
 *    the octets of BDAT chunks (RFC 3030, no stuffing).  It returns message
 *    lines without their terminator, unstuffed, and the end of data (a
 *    line holding only "." before CRLF or bare LF).  Lines are copied into
 *    a buffer that grows up to RB_LMTP_DATA_LINE_MAX; a longer line is handed
 *    out in pieces of that size (the piece is flagged `split`), so memory
 *    per session stays bounded whatever the peer sends.
 */
#ifndef ROOST_LDA_H
#define ROOST_LDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"


enum lmtp_verb {
	LMTP_VERB_NONE = 0,	/* unknown verb (error LMTP_PERR_UNKNOWN) */
	LMTP_VERB_LHLO,
	LMTP_VERB_HELO,
	LMTP_VERB_EHLO,
	LMTP_VERB_MAIL,
	LMTP_VERB_RCPT,
	LMTP_VERB_DATA,
	LMTP_VERB_BDAT,
	LMTP_VERB_RSET,
	LMTP_VERB_NOOP,
	LMTP_VERB_QUIT,
	LMTP_VERB_VRFY,
	LMTP_VERB_HELP,
	LMTP_VERB_COUNT
};

/* Why a line was refused.  The session maps each to a reply. */
enum lmtp_perr {
	LMTP_PERR_NONE = 0,
	LMTP_PERR_TOO_LONG,	/* 500 5.5.2: line over max_line */
	LMTP_PERR_UNKNOWN,	/* 500 5.5.2: no such command */
	LMTP_PERR_SYNTAX,	/* 501 5.5.4: bad arguments */
	LMTP_PERR_ADDRESS,	/* 501 5.1.7 (MAIL) / 5.1.3 (RCPT) */
	LMTP_PERR_PARAM,	/* 555 5.5.4: unknown MAIL/RCPT parameter */
};

enum lmtp_body {
	LMTP_BODY_NONE = 0,	/* no BODY= given */
	LMTP_BODY_7BIT,
	LMTP_BODY_8BITMIME,	/* RFC 6152 */
};

struct lmtp_cmd {
	enum lmtp_verb verb;	/* also set when error is not NONE, if known */
	enum lmtp_perr error;
	/* Static text for the error reply ("Syntax: MAIL FROM:<address>"). */
	const char *error_text;
	/* LHLO domain, VRFY/HELP/NOOP argument: points into the parser's
	 * line, valid until the next parser call; "" when absent. */
	const char *arg;
	/* MAIL/RCPT: the mailbox without <> and without a source route;
	 * "" for the null reverse-path <>. */
	char address[RB_ADDR_MAX + 1];
	/* MAIL parameters (RFC 1870, RFC 6152). */
	bool has_size;
	uint64_t size;
	enum lmtp_body body;
	/* BDAT (RFC 3030): chunk size and LAST. */
	uint64_t chunk_size;
	bool last;
};

struct lmtp_parser {
	size_t max_line;	/* including CRLF */
	size_t len;		/* octets of the current line in line[] */
	bool too_long;		/* skipping the rest of an over-long line */
	char *line;		/* max_line octets */
};

/* max_line is the limit including CRLF ([lmtp] max_line_length); it is
 * clamped to [RB_LMTP_LINE_MIN, RB_LMTP_LINE_CEILING], 0 means RB_LMTP_LINE_MAX.
 * Allocates max_line octets; free with lmtp_parser_free. */
void lmtp_parser_init(struct lmtp_parser *parser, size_t max_line);
void lmtp_parser_free(struct lmtp_parser *parser);
/* Forgets a partial line (after a mode change the session resyncs). */
void lmtp_parser_reset(struct lmtp_parser *parser);
/*
 * Consumes bytes from data up to and including the end of one line.
 * Returns 1 with a command in *cmd_r, -1 with a refused line in *cmd_r
 * (cmd_r->error says why; the line is consumed and the parser is ready for
 * the next one), or 0 when all of data was consumed without completing a
 * line.  *consumed_r is always set.  Never fails in any other way.
 */
int lmtp_parse_command(struct lmtp_parser *parser, const void *data,
		       size_t len, size_t *consumed_r, struct lmtp_cmd *cmd_r);
/*
 * Parses one complete command line (without its terminator).  Returns 1
 * or -1 as lmtp_parse_command.  line[len] must be writable: trailing
 * blanks are cut off by writing a NUL, and cmd_r->arg points into line.
 */
int lmtp_parse_line(char *line, size_t len, struct lmtp_cmd *cmd_r);
/* "MAIL", "RCPT", ... or "?" for LMTP_VERB_NONE. */
const char *lmtp_verb_name(enum lmtp_verb verb);

enum lmtp_data_state {
	LMTP_DATA_BOL = 0,	/* at the beginning of a line */
	LMTP_DATA_DOT,		/* saw "." at the beginning of a line */
	LMTP_DATA_DOT_CR,	/* saw ".\r" at the beginning of a line */
	LMTP_DATA_TEXT,		/* inside a line */
	LMTP_DATA_CR,		/* inside a line, saw "\r" */
	LMTP_DATA_DONE,		/* the end of data was returned */
};

struct lmtp_data {
	enum lmtp_data_state state;
	bool dot_stuffed;	/* DATA: true; BDAT: false */
	bool pending_reset;	/* `line` was handed out: empty it first */
	struct rb_buf line;
	/* Message octets as received, unstuffed, with CRLF line ends: what
	 * RFC 1870 SIZE would count (for logs). */
	uint64_t size;
	uint64_t lines;
	uint64_t split_lines;	/* pieces of over-long lines handed out */
};

enum lmtp_data_event_type {
	LMTP_DATA_LINE,		/* a message line (or a piece of one) */
	LMTP_DATA_END,		/* end of data; nothing more follows */
};

struct lmtp_data_event {
	enum lmtp_data_event_type type;
	/* LMTP_DATA_LINE: the line without terminator, unstuffed; valid
	 * until the next call.  May contain NUL and 8-bit octets. */
	const unsigned char *line;
	size_t len;
	/* The line was longer than RB_LMTP_DATA_LINE_MAX: this is a piece of
	 * it and the rest follows. */
	bool split;
};

/* dot_stuffed: true for DATA, false for BDAT chunks. */
void lmtp_data_init(struct lmtp_data *data, bool dot_stuffed);
void lmtp_data_free(struct lmtp_data *data);
/*
 * Consumes message bytes.  Returns 1 with an event in *event_r (some bytes
 * may remain unconsumed: call again with the rest), or 0 when all of buf
 * was consumed and no event is ready.  After LMTP_DATA_END the parser
 * consumes nothing more and returns 0; bytes after the "." line belong to
 * the command parser.  *consumed_r is always set.
 */
int lmtp_data_parse(struct lmtp_data *data, const void *buf, size_t len,
		    size_t *consumed_r, struct lmtp_data_event *event_r);
/*
 * BDAT LAST: the message ends here even without a final line terminator.
 * Returns 1 with an event (the unterminated last line, then END on the
 * next call), or 0 once END was returned.
 */
int lmtp_data_finish(struct lmtp_data *data, struct lmtp_data_event *event_r);

#endif
