/*
 * LMTP commands: the dispatch table (verb -> handler, allowed states) and
 * the handlers.  State checks happen in lmtp_cmd_dispatch, not in the
 * handlers (STYLE.md), except BDAT: a refused BDAT still owns the octets
 * that follow it (RFC 3030 §2), so its handler decides how to refuse.
 *
 * Reply classes (STYLE.md, mox): peer syntax 500/501/555, refused 5xx/503,
 * server fault 4xx with a generic text (details only in the log).
 */
#include <stdlib.h>
#include <string.h>

#include "lda/lda_int.h"

typedef void lmtp_handler(struct lmtp_session *s, const struct lmtp_cmd *cmd);

struct lmtp_command {
	lmtp_handler *run;
	unsigned states;	/* LMTP_STATE_BIT mask where it may run */
};

#define ST(x) LMTP_STATE_BIT(LMTP_STATE_##x)
/* states in which command lines are read at all */
#define ST_CMD (ST(CONNECTED) | ST(READY) | ST(MAIL) | ST(RCPT) | ST(BDAT))

static lmtp_handler cmd_lhlo, cmd_helo, cmd_mail, cmd_rcpt, cmd_data,
	cmd_bdat, cmd_rset, cmd_noop, cmd_quit, cmd_vrfy, cmd_help;

static const struct lmtp_command commands[LMTP_VERB_COUNT] = {
	/* RFC 5321 §4.1.4: a later EHLO (here LHLO) resets like RSET */
	[LMTP_VERB_LHLO] = { cmd_lhlo, ST_CMD },
	[LMTP_VERB_HELO] = { cmd_helo, ST_CMD },
	[LMTP_VERB_EHLO] = { cmd_helo, ST_CMD },
	[LMTP_VERB_MAIL] = { cmd_mail, ST(READY) },
	[LMTP_VERB_RCPT] = { cmd_rcpt, ST(MAIL) | ST(RCPT) },
	/* RFC 2033 §4.2: no successful RCPT -> 503 */
	[LMTP_VERB_DATA] = { cmd_data, ST(RCPT) },
	[LMTP_VERB_BDAT] = { cmd_bdat, ST_CMD },
	[LMTP_VERB_RSET] = { cmd_rset, ST_CMD },
	[LMTP_VERB_NOOP] = { cmd_noop, ST_CMD },
	[LMTP_VERB_QUIT] = { cmd_quit, ST_CMD },
	[LMTP_VERB_VRFY] = { cmd_vrfy, ST_CMD },
	[LMTP_VERB_HELP] = { cmd_help, ST_CMD },
};

static const char *
hostname(const struct lmtp_session *s)
{
	return s->worker->cfg->general.hostname;
}

/* Text of a 503 for a command that came out of order. */
static const char *
sequence_text(const struct lmtp_session *s, enum lmtp_verb verb)
{
	if (!s->lhlo_done)
		return "Send LHLO first";
	if (s->state == LMTP_STATE_BDAT)
		/* RFC 3030 §2: DATA after BDAT and the like */
		return "BDAT transfer in progress, send BDAT LAST or RSET";
	switch (verb) {
	case LMTP_VERB_MAIL:
		return "Nested MAIL command";
	case LMTP_VERB_DATA:
		if (s->state == LMTP_STATE_MAIL)
			return "No valid recipients";
		return "Need MAIL and RCPT commands";
	default:
		return "Need MAIL command";
	}
}

static void
bad_command(struct lmtp_session *s)
{
	char reply[RB_HOSTNAME_MAX + 64];

	/* Sequence errors (503) do not count: a pipelining client whose
	 * MAIL failed legitimately gets one for each RCPT it sent. */
	if (++s->bad_commands < RB_BAD_COMMANDS_MAX)
		return;
	SLOG_WARNING(s, "event=too-many-errors count=%u", s->bad_commands);
	if (rb_snprintf(reply, sizeof(reply),
			"421 4.7.0 %s Too many errors, closing connection",
			hostname(s)) < 0)
		(void)rb_strlcpy(reply, "421 4.7.0 Too many errors",
				 sizeof(reply));
	lmtp_session_close(s, "too-many-errors", reply);
}

static void
reply_parse_error(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	const char *text = cmd->error_text != NULL ? cmd->error_text :
		"Syntax error";

	switch (cmd->error) {
	case LMTP_PERR_TOO_LONG:
		/* RFC 5321 §4.2.2: 500 includes "command line too long" */
		lmtp_reply(s, "500 5.5.2 %s", text);
		break;
	case LMTP_PERR_UNKNOWN:
		lmtp_reply(s, "500 5.5.2 %s", text);
		break;
	case LMTP_PERR_ADDRESS:
		/* RFC 3463 §3.2: X.1.7 sender, X.1.3 destination syntax */
		lmtp_reply(s, "501 %s %s",
			   cmd->verb == LMTP_VERB_MAIL ? "5.1.7" : "5.1.3",
			   text);
		break;
	case LMTP_PERR_PARAM:
		/* RFC 5321 §4.1.1.11 */
		lmtp_reply(s, "555 5.5.4 %s", text);
		break;
	case LMTP_PERR_SYNTAX:
	case LMTP_PERR_NONE:
		lmtp_reply(s, "501 5.5.4 %s", text);
		break;
	}
}

void
lmtp_cmd_dispatch(struct lmtp_session *s, int ret, const struct lmtp_cmd *cmd)
{
	const struct lmtp_command *c;

	if (ret < 0) {
		SLOG_DEBUG(s, "cmd=%s error=\"%s\"", lmtp_verb_name(cmd->verb),
			   cmd->error_text);
		reply_parse_error(s, cmd);
		if (cmd->verb == LMTP_VERB_BDAT) {
			/* Without a size we cannot tell the chunk's octets
			 * from commands: the framing is lost. */
			lmtp_session_close(s, "bdat-syntax", NULL);
			return;
		}
		bad_command(s);
		return;
	}
	RB_CHECK((unsigned)cmd->verb < LMTP_VERB_COUNT);
	c = &commands[cmd->verb];
	RB_CHECK(c->run != NULL);
	if ((c->states & LMTP_STATE_BIT(s->state)) == 0) {
		lmtp_reply(s, "503 5.5.1 %s", sequence_text(s, cmd->verb));
		return;
	}
	c->run(s, cmd);
}

/* ---- transaction helpers ---- */

void
lmtp_txn_reset(struct lmtp_session *s)
{
	mda_txn_free(&s->txn);
	for (size_t i = 0; i < s->rcpt_count; i++)
		free(s->rcpts[i]);
	s->rcpt_count = 0;
	if (s->data_active) {
		lmtp_data_free(&s->data);
		s->data_active = false;
	}
	s->data_status = MDA_OK;
	s->sender[0] = '\0';
	s->chunk_size = s->chunk_left = 0;
	s->chunk_last = false;
	if (s->state != LMTP_STATE_CLOSING)
		lmtp_session_set_state(s, s->lhlo_done ? LMTP_STATE_READY :
				       LMTP_STATE_CONNECTED);
}

/* After a transaction has ended: SIGTERM may be waiting for it. */
static void
txn_ended(struct lmtp_session *s)
{
	char reply[RB_HOSTNAME_MAX + 64];

	if (!s->quit_after_txn)
		return;
	if (rb_snprintf(reply, sizeof(reply),
			"421 4.3.2 %s Service shutting down",
			hostname(s)) < 0)
		(void)rb_strlcpy(reply, "421 4.3.2 Service shutting down",
				 sizeof(reply));
	lmtp_session_close(s, "shutdown", reply);
}

void
lmtp_txn_data_line(struct lmtp_session *s, const struct lmtp_data_event *ev)
{
	enum mda_status st;

	/* mda keeps a failure sticky and drops later lines, but we still
	 * read to the end of the data to stay in step with the client.  A
	 * piece of an over-long line (ev->split) continues in the next. */
	st = mda_txn_data_line(s->txn, (const char *)ev->line, ev->len,
			       ev->split);
	if (st != MDA_OK && s->data_status == MDA_OK) {
		s->data_status = st;
		SLOG_INFO(s, "event=data-failed status=%s",
			  st == MDA_TOO_BIG ? "too-big" : "temp");
	}
}

void
lmtp_txn_finish(struct lmtp_session *s)
{
	size_t n = mda_txn_rcpt_count(s->txn);
	enum mda_status *results;

	RB_CHECK(n == s->rcpt_count && n > 0);
	results = rb_calloc(n, sizeof(*results));
	/* mda logs the outcome of every recipient (one line each) */
	mda_txn_data_end(s->txn, results);
	/* RFC 2033 §4.2: one reply per successful RCPT, in RCPT order */
	for (size_t i = 0; i < n; i++) {
		struct mda_reply r;

		mda_reply(s->worker->mda, results[i], false, &r);
		lmtp_reply(s, "%u %s <%s> %s", r.code, r.enhanced,
			   s->rcpts[i], r.text);
		if (results[i] == MDA_OK)
			s->delivered++;
	}
	free(results);
	if (s->data.split_lines > 0)
		SLOG_INFO(s, "event=long-lines pieces=%llu max=%u",
			     (unsigned long long)s->data.split_lines,
			     (unsigned)RB_LMTP_DATA_LINE_MAX);
	s->transactions++;
	lmtp_txn_reset(s);
	txn_ended(s);
}

void
lmtp_chunk_done(struct lmtp_session *s)
{
	struct mda_reply r;

	if (s->chunk_last) {
		struct lmtp_data_event ev;

		while (lmtp_data_finish(&s->data, &ev) == 1) {
			if (ev.type == LMTP_DATA_END) {
				lmtp_txn_finish(s);
				return;
			}
			lmtp_txn_data_line(s, &ev);
		}
		log_fatal("BDAT LAST without end of data");
	}
	if (s->data_status != MDA_OK) {
		/* RFC 3030 §2: the transaction failed; the client must not
		 * send more chunks, and any pipelined ones get 503 and are
		 * discarded (state READY). */
		mda_reply(s->worker->mda, s->data_status, false, &r);
		lmtp_reply(s, "%u %s %s", r.code, r.enhanced, r.text);
		lmtp_txn_reset(s);
		txn_ended(s);
		return;
	}
	lmtp_reply(s, "250 2.0.0 %llu octets received",
		   (unsigned long long)s->chunk_size);
	lmtp_session_set_state(s, LMTP_STATE_BDAT);
}

/* ---- handlers ---- */

static void
cmd_lhlo(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	size_t n = strlen(cmd->arg);
	char esc[RB_HOSTNAME_MAX * 4 + 8];

	/* the parser refused control characters; cut to a host name */
	if (n > RB_HOSTNAME_MAX)
		n = RB_HOSTNAME_MAX;
	memcpy(s->helo, cmd->arg, n);
	s->helo[n] = '\0';
	s->lhlo_done = true;
	lmtp_txn_reset(s);
	SLOG_DEBUG(s, "lhlo=%s",
		   rb_log_escape(s->helo, n, esc, sizeof(esc)));
	/* RFC 2034 §4: no enhanced codes in the EHLO/LHLO reply */
	lmtp_reply(s, "250-%s", hostname(s));
	lmtp_reply(s, "250-PIPELINING");
	lmtp_reply(s, "250-ENHANCEDSTATUSCODES");
	lmtp_reply(s, "250-8BITMIME");
	lmtp_reply(s, "250-CHUNKING");
	lmtp_reply(s, "250 SIZE %llu",
		   (unsigned long long)s->worker->cfg->lmtp.max_message_size);
}

static void
cmd_helo(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	/* RFC 2033 §4.1: MUST NOT succeed; 500 is recommended */
	lmtp_reply(s, "500 5.5.1 This is an LMTP server: use LHLO");
	bad_command(s);
}

static void
cmd_mail(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	const struct rb_config *cfg = s->worker->cfg;
	struct mda_txn_params params;

	if (cmd->has_size && cmd->size > cfg->lmtp.max_message_size) {
		/* RFC 1870 §6.1 */
		lmtp_reply(s, "552 5.3.4 Message size exceeds fixed maximum "
			   "message size");
		return;
	}
	memset(&params, 0, sizeof(params));
	params.sender = cmd->address;
	params.size_hint = cmd->has_size ? cmd->size : 0;
	params.client_helo = s->helo;
	params.client_addr = s->client_addr[0] != '\0' ? s->client_addr :
		NULL;
	params.protocol = "LMTP";
	params.session_id = s->id;
	params.remote = s->remote;
	s->txn = mda_txn_new(s->worker->mda, &params);
	(void)rb_strlcpy(s->sender, cmd->address, sizeof(s->sender));
	lmtp_session_set_state(s, LMTP_STATE_MAIL);
	lmtp_reply(s, "250 2.1.0 Sender <%s> OK", cmd->address);
}

static void
cmd_rcpt(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	enum mda_status st;
	struct mda_reply r;

	/* mda logs a refusal, and past RB_LMTP_RCPT_MAX recipients answers
	 * MDA_TOO_MANY: 452 4.5.3 (RFC 5321 §4.5.3.1.10) */
	st = mda_txn_add_rcpt(s->txn, cmd->address, NULL);
	mda_reply(s->worker->mda, st, true, &r);
	if (st == MDA_OK) {
		if (s->rcpt_count == s->rcpt_cap) {
			s->rcpt_cap = s->rcpt_cap == 0 ? 8 : s->rcpt_cap * 2;
			s->rcpts = rb_realloc(s->rcpts, s->rcpt_cap *
					      sizeof(*s->rcpts));
		}
		s->rcpts[s->rcpt_count++] = rb_strdup(cmd->address);
		lmtp_session_set_state(s, LMTP_STATE_RCPT);
	}
	lmtp_reply(s, "%u %s <%s> %s", r.code, r.enhanced, cmd->address,
		   r.text);
}

static void
cmd_data(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	enum mda_status st;
	struct mda_reply r;

	(void)cmd;
	st = mda_txn_data_begin(s->txn);
	if (st != MDA_OK) {
		/* before 354 a single reply covers every recipient */
		mda_reply(s->worker->mda, st, false, &r);
		lmtp_reply(s, "%u %s %s", r.code, r.enhanced, r.text);
		return;
	}
	lmtp_data_init(&s->data, true);
	s->data_active = true;
	s->data_status = MDA_OK;
	lmtp_session_set_state(s, LMTP_STATE_DATA);
	lmtp_reply(s, "354 Start mail input; end with <CRLF>.<CRLF>");
}

/* Refuses a BDAT: its octets are read and dropped, then reply is sent
 * (RFC 3030 §2); reply NULL sends nothing. */
static void
bdat_discard(struct lmtp_session *s, uint64_t size, const char *reply)
{
	if (size == 0) {
		if (reply != NULL)
			lmtp_reply(s, "%s", reply);
		return;
	}
	s->discard_left = size;
	if (reply == NULL ||
	    rb_strlcpy(s->discard_reply, reply, sizeof(s->discard_reply)) < 0)
		s->discard_reply[0] = '\0';
}

static void
cmd_bdat(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	char reply[sizeof(s->discard_reply)];
	enum mda_status st;
	struct mda_reply r;

	switch (s->state) {
	case LMTP_STATE_RCPT:
		st = mda_txn_data_begin(s->txn);
		if (st != MDA_OK) {
			mda_reply(s->worker->mda, st, false, &r);
			if (rb_snprintf(reply, sizeof(reply), "%u %s %s",
					r.code, r.enhanced, r.text) < 0)
				(void)rb_strlcpy(reply, "451 4.3.0 Try again",
						 sizeof(reply));
			bdat_discard(s, cmd->chunk_size, reply);
			lmtp_txn_reset(s);
			return;
		}
		lmtp_data_init(&s->data, false);
		s->data_active = true;
		s->data_status = MDA_OK;
		/* FALLTHROUGH */
	case LMTP_STATE_BDAT:
		s->chunk_size = s->chunk_left = cmd->chunk_size;
		s->chunk_last = cmd->last;
		/* session_input reads the octets, then lmtp_chunk_done */
		lmtp_session_set_state(s, LMTP_STATE_CHUNK);
		return;
	case LMTP_STATE_MAIL:
		if (cmd->last) {
			/* RFC 2033 §4.3: with no successful RCPT, BDAT LAST
			 * returns zero replies; the transaction is over. */
			bdat_discard(s, cmd->chunk_size, NULL);
			lmtp_txn_reset(s);
			return;
		}
		bdat_discard(s, cmd->chunk_size, "503 5.5.1 No valid "
			     "recipients");
		return;
	default:
		if (rb_snprintf(reply, sizeof(reply), "503 5.5.1 %s",
				sequence_text(s, LMTP_VERB_BDAT)) < 0)
			(void)rb_strlcpy(reply, "503 5.5.1 Bad sequence",
					 sizeof(reply));
		bdat_discard(s, cmd->chunk_size, reply);
		return;
	}
}

static void
cmd_rset(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	lmtp_txn_reset(s);
	lmtp_reply(s, "250 2.0.0 OK");
}

static void
cmd_noop(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	lmtp_reply(s, "250 2.0.0 OK");
}

static void
cmd_quit(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	char reply[RB_HOSTNAME_MAX + 64];

	(void)cmd;
	if (rb_snprintf(reply, sizeof(reply), "221 2.0.0 %s closing "
			"connection", hostname(s)) < 0)
		(void)rb_strlcpy(reply, "221 2.0.0 Bye", sizeof(reply));
	lmtp_session_close(s, "quit", reply);
}

static void
cmd_vrfy(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	/* RFC 5321 §3.5.3: 252 when we will not verify but would accept */
	lmtp_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message "
		   "and attempt delivery");
}

static void
cmd_help(struct lmtp_session *s, const struct lmtp_cmd *cmd)
{
	(void)cmd;
	lmtp_reply(s, "214-2.0.0 roost LMTP server (RFC 2033). Commands:");
	lmtp_reply(s, "214-2.0.0   LHLO MAIL RCPT DATA BDAT RSET NOOP QUIT "
		   "VRFY HELP");
	lmtp_reply(s, "214 2.0.0 End of HELP info");
}
