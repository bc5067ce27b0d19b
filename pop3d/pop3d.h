/*
 * pop3d/ — roost-pop3d, the POP3 server (RFC 1939, 2449, 2595, 5034).
 * This header is the folder's public interface: the pure, resumable
 * command parser that the session uses and that tests/unit and
 * tests/fuzz drive directly.  It does no I/O, no logging and no storage
 * calls; all its state is in struct pop3_parser.
 *
 * Lines end at CRLF or at a bare LF (clients that send bare LF exist; a
 * CR not followed by LF is part of the line and makes it invalid).  The
 * length limit counts the line with its CRLF, as RFC 2449 §4 does: a
 * command line is at most 255 octets.  An over-long line is reported
 * once, when its end arrives, and its bytes are skipped, not stored.
 *
 * During a SASL exchange (RFC 5034 §4) the session switches the parser
 * to response mode: each line is then handed back whole as a
 * POP3_VERB_SASL_RESPONSE, up to RB_POP3_SASL_LINE_MAX octets, because the
 * 255-octet limit applies to commands, not to client responses.
 */
#ifndef ROOST_POP3D_H
#define ROOST_POP3D_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"


enum pop3_verb {
	POP3_VERB_NONE = 0,	/* unknown verb (error POP3_PERR_UNKNOWN) */
	POP3_VERB_USER,
	POP3_VERB_PASS,
	POP3_VERB_APOP,
	POP3_VERB_AUTH,
	POP3_VERB_STLS,
	POP3_VERB_CAPA,
	POP3_VERB_STAT,
	POP3_VERB_LIST,
	POP3_VERB_RETR,
	POP3_VERB_DELE,
	POP3_VERB_NOOP,
	POP3_VERB_RSET,
	POP3_VERB_QUIT,
	POP3_VERB_TOP,
	POP3_VERB_UIDL,
	POP3_VERB_SASL_RESPONSE,	/* a line in SASL response mode */
	POP3_VERB_COUNT
};

/* Why a line was refused.  All of them are "-ERR" (RFC 1939 §3); the
 * session counts them as bad commands. */
enum pop3_perr {
	POP3_PERR_NONE = 0,
	POP3_PERR_TOO_LONG,	/* over the line limit */
	POP3_PERR_UNKNOWN,	/* no such command */
	POP3_PERR_SYNTAX,	/* bad or missing arguments */
};

struct pop3_cmd {
	enum pop3_verb verb;	/* also set when error != NONE, if known */
	enum pop3_perr error;
	/* Static text for the -ERR reply. */
	const char *error_text;
	/* Number of arguments given (0-2). */
	unsigned argc;
	/* USER, PASS: the whole rest of the line after one space (RFC 1939
	 * §7: a password may contain spaces).  AUTH: mechanism.  APOP:
	 * name.  SASL response: the line.  Points into the parser's line,
	 * valid until the next parser call; "" when absent. */
	const char *arg;
	/* AUTH: the initial response ("=" for an empty one), NULL when
	 * absent.  APOP: the digest. */
	const char *arg2;
	/* LIST, RETR, DELE, TOP, UIDL: message number (argc >= 1), and
	 * TOP: number of body lines. */
	uint32_t msg;
	uint64_t lines;
};

struct pop3_parser {
	size_t len;		/* octets of the current line in line[] */
	bool too_long;		/* skipping the rest of an over-long line */
	bool sasl;		/* lines are SASL responses, not commands */
	char line[RB_POP3_SASL_LINE_MAX + 1];
};

void pop3_parser_init(struct pop3_parser *parser);
/* Switches between command and SASL response mode.  Only call it at a
 * line boundary, i.e. after a command was returned. */
void pop3_parser_set_sasl(struct pop3_parser *parser, bool sasl);
/* Forgets a partial line (STLS: nothing sent before the handshake may be
 * used after it, RFC 2595 §4 and CVE-2011-0411). */
void pop3_parser_reset(struct pop3_parser *parser);
/*
 * Consumes bytes from data up to and including the end of one line.
 * Returns 1 with a command in *cmd_r, -1 with a refused line in *cmd_r
 * (cmd_r->error says why; the line is consumed and the parser is ready
 * for the next one), or 0 when all of data was consumed without
 * completing a line.  *consumed_r is always set.
 */
int pop3_parse(struct pop3_parser *parser, const void *data, size_t len,
	       size_t *consumed_r, struct pop3_cmd *cmd_r);
/*
 * Parses one complete command line (without its terminator).  Returns 1
 * or -1 as pop3_parse.  line[len] must be writable (a NUL is written
 * there and after the verb); cmd_r's strings point into line.
 */
int pop3_parse_line(char *line, size_t len, struct pop3_cmd *cmd_r);
/* "USER", "RETR", ... or "?" for POP3_VERB_NONE. */
const char *pop3_verb_name(enum pop3_verb verb);

#endif
