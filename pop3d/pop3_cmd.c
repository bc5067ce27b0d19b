/*
 * POP3 command dispatch and the TRANSACTION-state commands (RFC 1939 §5,
 * §7): STAT, LIST, RETR, DELE, NOOP, RSET, QUIT, TOP, UIDL.
 *
 * State checks happen here in the dispatcher from the command table, not
 * in the handlers (STYLE.md).  Multi-line answers (RFC 1939 §3) are
 * produced by pop3_output_pump() a piece at a time so that neither a big
 * message nor a big maildrop's LIST ever sits in memory whole.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "pop3d/pop3d_int.h"

#define AUTHZ POP3_STATE_BIT(POP3_STATE_AUTHORIZATION)
#define TRANS POP3_STATE_BIT(POP3_STATE_TRANSACTION)
#define SASLX POP3_STATE_BIT(POP3_STATE_SASL)

/* The arguments may hold a password or SASL data: never log them. */
#define CMD_SECRET 0x1

struct cmd_def {
	enum pop3_verb verb;
	void (*run)(struct pop3_session *s, struct pop3_cmd *cmd);
	unsigned states;
	unsigned flags;
};

static void cmd_apop(struct pop3_session *s, struct pop3_cmd *cmd);
static void cmd_stat(struct pop3_session *s, struct pop3_cmd *cmd);
static void cmd_list(struct pop3_session *s, struct pop3_cmd *cmd);
static void cmd_retr(struct pop3_session *s, struct pop3_cmd *cmd);
static void cmd_dele(struct pop3_session *s, struct pop3_cmd *cmd);
static void cmd_noop(struct pop3_session *s, struct pop3_cmd *cmd);
static void cmd_rset(struct pop3_session *s, struct pop3_cmd *cmd);
static void cmd_quit(struct pop3_session *s, struct pop3_cmd *cmd);
static void cmd_top(struct pop3_session *s, struct pop3_cmd *cmd);
static void cmd_uidl(struct pop3_session *s, struct pop3_cmd *cmd);

static const struct cmd_def commands[] = {
	{ POP3_VERB_USER, pop3_cmd_user, AUTHZ, 0 },
	{ POP3_VERB_PASS, pop3_cmd_pass, AUTHZ, CMD_SECRET },
	{ POP3_VERB_APOP, cmd_apop, AUTHZ, CMD_SECRET },
	{ POP3_VERB_AUTH, pop3_cmd_auth, AUTHZ, CMD_SECRET },
	{ POP3_VERB_STLS, pop3_cmd_stls, AUTHZ, 0 },
	{ POP3_VERB_CAPA, pop3_cmd_capa, AUTHZ | TRANS, 0 },
	{ POP3_VERB_STAT, cmd_stat, TRANS, 0 },
	{ POP3_VERB_LIST, cmd_list, TRANS, 0 },
	{ POP3_VERB_RETR, cmd_retr, TRANS, 0 },
	{ POP3_VERB_DELE, cmd_dele, TRANS, 0 },
	{ POP3_VERB_NOOP, cmd_noop, TRANS, 0 },
	{ POP3_VERB_RSET, cmd_rset, TRANS, 0 },
	{ POP3_VERB_QUIT, cmd_quit, AUTHZ | TRANS, 0 },
	{ POP3_VERB_TOP, cmd_top, TRANS, 0 },
	{ POP3_VERB_UIDL, cmd_uidl, TRANS, 0 },
	{ POP3_VERB_SASL_RESPONSE, pop3_cmd_sasl_response, SASLX,
	  CMD_SECRET },
};

static const struct cmd_def *
find_command(enum pop3_verb verb)
{
	for (size_t i = 0; i < RB_N_ELEMENTS(commands); i++) {
		if (commands[i].verb == verb)
			return &commands[i];
	}
	return NULL;
}

static void
bad_command(struct pop3_session *s, const char *text)
{
	s->bad_commands++;
	if (s->bad_commands > RB_BAD_COMMANDS_MAX) {
		pop3_session_close(s, "bad-commands",
				   "-ERR Too many bad commands, closing");
		return;
	}
	pop3_reply(s, "-ERR %s", text);
}

void
pop3_cmd_dispatch(struct pop3_session *s, int ret, struct pop3_cmd *cmd)
{
	const struct cmd_def *def;

	if (s->state == POP3_STATE_SASL) {
		/* every line is a response to our challenge (RFC 5034 §4) */
		if (ret < 0) {
			pop3_sasl_end(s);
			bad_command(s, cmd->error_text);
			return;
		}
		pop3_cmd_sasl_response(s, cmd);
		return;
	}
	if (ret < 0) {
		SLOG_DEBUG(s, "command=%s error=\"%s\"",
			   pop3_verb_name(cmd->verb), cmd->error_text);
		bad_command(s, cmd->error_text);
		return;
	}
	def = find_command(cmd->verb);
	RB_CHECK(def != NULL);
	if (rb_log_enabled(RB_LOG_DEBUG)) {
		char esc[128];

		if ((def->flags & CMD_SECRET) != 0 || cmd->arg[0] == '\0')
			esc[0] = '\0';
		else
			(void)rb_log_escape(cmd->arg, strlen(cmd->arg), esc,
					    sizeof(esc));
		SLOG_DEBUG(s, "state=%s command=%s arg=\"%s\" msg=%u",
			   pop3_state_name(s->state),
			   pop3_verb_name(cmd->verb), esc, cmd->msg);
	}
	if ((def->states & POP3_STATE_BIT(s->state)) == 0) {
		bad_command(s, s->state == POP3_STATE_AUTHORIZATION ?
			    "Not logged in" :
			    "Command not valid in this state");
		return;
	}
	def->run(s, cmd);
}

/* ---- AUTHORIZATION ---- */

static void
cmd_apop(struct pop3_session *s, struct pop3_cmd *cmd)
{
	(void)cmd;
	/* RFC 1939 §7: APOP needs the shared secret in clear on the server;
	 * users.db holds only password hashes, so it is not offered */
	pop3_reply(s, "-ERR APOP not supported");
}

/* ---- TRANSACTION ---- */

/* Message number n (1-based, RFC 1939 §5) to its index; -ERR if there is
 * no such message or it is marked deleted. */
static bool
msg_index(struct pop3_session *s, uint32_t n, size_t *index_r)
{
	if (n == 0 || n > s->msg_count) {
		pop3_reply(s, "-ERR No such message");
		return false;
	}
	if (s->msgs[n - 1].deleted) {
		pop3_reply(s, "-ERR Message %u already deleted", n);
		return false;
	}
	*index_r = n - 1;
	return true;
}

static void
totals(const struct pop3_session *s, size_t *count_r, uint64_t *octets_r)
{
	size_t count = 0;
	uint64_t octets = 0;

	for (size_t i = 0; i < s->msg_count; i++) {
		if (s->msgs[i].deleted)
			continue;
		count++;
		octets += s->msgs[i].vsize;
	}
	*count_r = count;
	*octets_r = octets;
}

static void
cmd_stat(struct pop3_session *s, struct pop3_cmd *cmd)
{
	size_t count;
	uint64_t octets;

	(void)cmd;
	/* RFC 1939 §5 STAT: "+OK nn mm", deleted messages not counted */
	totals(s, &count, &octets);
	pop3_reply(s, "+OK %zu %llu", count, (unsigned long long)octets);
}

static void
start_output(struct pop3_session *s, enum pop3_output kind)
{
	s->out.kind = kind;
	s->out.cursor = 0;
	(void)pop3_output_pump(s);
}

static void
cmd_list(struct pop3_session *s, struct pop3_cmd *cmd)
{
	size_t i, count;
	uint64_t octets;

	if (cmd->argc == 1) {
		if (msg_index(s, cmd->msg, &i))
			pop3_reply(s, "+OK %u %llu", cmd->msg,
				   (unsigned long long)s->msgs[i].vsize);
		return;
	}
	totals(s, &count, &octets);
	pop3_reply(s, "+OK %zu messages (%llu octets)", count,
		   (unsigned long long)octets);
	start_output(s, POP3_OUTPUT_LIST);
}

static void
cmd_uidl(struct pop3_session *s, struct pop3_cmd *cmd)
{
	size_t i;

	if (cmd->argc == 1) {
		if (msg_index(s, cmd->msg, &i))
			pop3_reply(s, "+OK %u %s", cmd->msg,
				   pop3_msg_uidl(s, i));
		return;
	}
	pop3_reply(s, "+OK Unique-ID listing follows");
	start_output(s, POP3_OUTPUT_UIDL);
}

static void
start_message(struct pop3_session *s, size_t i, bool top, uint64_t lines)
{
	struct pop3_stream *o = &s->out;
	struct storage_mailbox *box = pop3_maildrop_box(s);
	enum storage_err err;
	int fd;

	if (box == NULL) {
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot read the message, try "
			   "again later");
		return;
	}
	err = storage_msg_open(box, s->msgs[i].uid, &fd);
	if (err == STORAGE_ERR_NOTFOUND) {
		/* removed by another client (IMAP) since our snapshot */
		pop3_reply(s, "-ERR Message %zu no longer exists", i + 1);
		return;
	}
	if (err != STORAGE_OK) {
		SLOG_ERROR(s, "user=%s uid=%u error=\"cannot open message: "
			   "%s\"", s->user, s->msgs[i].uid,
			   storage_error(s->st));
		pop3_reply(s, "-ERR [SYS/TEMP] Cannot read the message, try "
			   "again later");
		return;
	}
	memset(o, 0, sizeof(*o));
	o->fd = fd;
	o->index = i;
	o->top = top;
	o->lines_left = lines;
	o->bol = true;
	o->mark_seen = !top && s->worker->cfg->pop3.mark_seen_on_retr;
	if (top)
		pop3_reply(s, "+OK Top of message follows");
	else
		pop3_reply(s, "+OK %llu octets",
			   (unsigned long long)s->msgs[i].vsize);
	o->kind = POP3_OUTPUT_MESSAGE;
	(void)pop3_output_pump(s);
}

static void
cmd_retr(struct pop3_session *s, struct pop3_cmd *cmd)
{
	size_t i;

	if (msg_index(s, cmd->msg, &i))
		start_message(s, i, false, 0);
}

static void
cmd_top(struct pop3_session *s, struct pop3_cmd *cmd)
{
	size_t i;

	if (msg_index(s, cmd->msg, &i))
		start_message(s, i, true, cmd->lines);
}

static void
cmd_dele(struct pop3_session *s, struct pop3_cmd *cmd)
{
	size_t i;

	/* RFC 1939 §5 DELE: only marked; removed in UPDATE */
	if (!msg_index(s, cmd->msg, &i))
		return;
	s->msgs[i].deleted = true;
	pop3_reply(s, "+OK Message %u deleted", cmd->msg);
}

static void
cmd_noop(struct pop3_session *s, struct pop3_cmd *cmd)
{
	(void)cmd;
	pop3_reply(s, "+OK");
}

static void
cmd_rset(struct pop3_session *s, struct pop3_cmd *cmd)
{
	size_t count;
	uint64_t octets;

	(void)cmd;
	for (size_t i = 0; i < s->msg_count; i++)
		s->msgs[i].deleted = false;
	totals(s, &count, &octets);
	pop3_reply(s, "+OK Maildrop has %zu messages (%llu octets)", count,
		   (unsigned long long)octets);
}

static void
cmd_quit(struct pop3_session *s, struct pop3_cmd *cmd)
{
	unsigned removed = 0;

	(void)cmd;
	if (s->state == POP3_STATE_AUTHORIZATION) {
		/* RFC 1939 §4: QUIT here does not enter UPDATE */
		pop3_session_close(s, "quit", "+OK Bye");
		return;
	}
	/* RFC 1939 §6: remove the marked messages, and say +OK only once
	 * they are gone and the index is committed */
	pop3_session_set_state(s, POP3_STATE_UPDATE);
	if (pop3_maildrop_expunge(s, &removed) < 0) {
		pop3_session_close(s, "quit-failed", "-ERR [SYS/TEMP] Some "
				   "deleted messages not removed");
		return;
	}
	s->expunged = removed;
	if (removed > 0)
		SLOG_INFO(s, "event=expunge user=%s messages=%u", s->user,
			  removed);
	pop3_session_close(s, "quit", "+OK Bye");
}

/* ---- multi-line answers ---- */

void
pop3_output_abort(struct pop3_session *s)
{
	if (s->out.kind == POP3_OUTPUT_MESSAGE && s->out.fd >= 0)
		(void)close(s->out.fd);
	memset(&s->out, 0, sizeof(s->out));
	s->out.fd = -1;
}

/* End of a RETR/TOP answer. */
static void
message_done(struct pop3_session *s)
{
	struct pop3_stream *o = &s->out;
	struct pop3_msg *m = &s->msgs[o->index];

	if (!o->bol)
		pop3_write(s, "\r\n", 2);
	pop3_write(s, ".\r\n", 3);
	if (!o->top)
		s->retrieved++;
	if (o->mark_seen && (m->flags & STORAGE_FLAG_SEEN) == 0) {
		enum storage_err err;

		/* s->box is open: start_message opened it.  Only \Seen is
		 * added, to the flags as they are now: changes another
		 * client made since our login are kept. */
		err = storage_msg_add_flags(s->box, m->uid,
					    STORAGE_FLAG_SEEN, 0);
		if (err == STORAGE_OK)
			m->flags |= STORAGE_FLAG_SEEN;
		else
			SLOG_WARNING(s, "user=%s uid=%u error=\"cannot set "
				     "\\\\Seen: %s\"", s->user, m->uid,
				     storage_error(s->st));
	}
	pop3_output_abort(s);
}

/*
 * Sends the next chunk of a message file: LF becomes CRLF (an existing
 * CRLF stays), a line starting with "." gets another one (RFC 1939 §3
 * byte-stuffing), and TOP stops after the blank line ending the header
 * plus lines_left body lines (RFC 1939 §7).  Returns 1 when the message
 * is complete, 0 when there is more, -1 on a read error.
 */
static int
message_chunk(struct pop3_session *s)
{
	static unsigned char in[RB_POP3_READ_CHUNK];
	/* each input octet becomes at most two ("." -> "..", LF -> CRLF) */
	static unsigned char out[RB_POP3_READ_CHUNK * 2];
	struct pop3_stream *o = &s->out;
	size_t n = 0;
	ssize_t r;
	bool done = false;

	do
		r = read(o->fd, in, sizeof(in));
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r == 0) {
		message_done(s);
		return 1;
	}
	for (size_t i = 0; i < (size_t)r; i++) {
		unsigned char c = in[i];

		if (o->bol) {
			if (o->top && o->in_body && o->lines_left == 0) {
				done = true;
				break;
			}
			if (c == '.')
				out[n++] = '.';
			o->bol = false;
			o->line_blank = true;
		}
		if (c == '\n') {
			if (!o->prev_cr)
				out[n++] = '\r';
			out[n++] = '\n';
			o->bol = true;
			if (o->top) {
				if (o->in_body)
					o->lines_left--;
				else if (o->line_blank)
					o->in_body = true;
			}
		} else {
			out[n++] = c;
			if (c != '\r')
				o->line_blank = false;
		}
		o->prev_cr = c == '\r';
	}
	pop3_write(s, out, n);
	if (done) {
		message_done(s);
		return 1;
	}
	return 0;
}

int
pop3_output_pump(struct pop3_session *s)
{
	struct pop3_stream *o = &s->out;
	char line[RB_POP3_UIDL_MAX + 48];
	int ok;

	while (o->kind != POP3_OUTPUT_NONE) {
		if (pop3_output_pending(s) >= RB_OUTPUT_BUFFER_MAX)
			return 0;
		switch (o->kind) {
		case POP3_OUTPUT_MESSAGE:
			switch (message_chunk(s)) {
			case 1:
				return 1;
			case -1:
				/* the answer is half sent: there is no way
				 * to say -ERR now; closing without the final
				 * "." tells the client it failed */
				SLOG_ERROR(s, "user=%s uid=%u error=\"read "
					   "failed: %s\"", s->user,
					   s->msgs[o->index].uid,
					   strerror(errno));
				pop3_output_abort(s);
				pop3_session_close(s, "read-error", NULL);
				return 1;
			default:
				break;
			}
			break;
		case POP3_OUTPUT_LIST:
		case POP3_OUTPUT_UIDL:
			/* a batch of lines between buffer checks */
			for (int k = 0; k < 256; k++) {
				size_t i = o->cursor;

				if (i == s->msg_count) {
					pop3_write(s, ".\r\n", 3);
					pop3_output_abort(s);
					return 1;
				}
				o->cursor++;
				if (s->msgs[i].deleted)
					continue;
				if (o->kind == POP3_OUTPUT_LIST) {
					ok = rb_snprintf(line, sizeof(line),
							 "%zu %llu\r\n",
							 i + 1,
							 (unsigned long long)
							 s->msgs[i].vsize);
				} else {
					ok = rb_snprintf(line, sizeof(line),
							 "%zu %s\r\n", i + 1,
							 pop3_msg_uidl(s, i));
				}
				RB_CHECK(ok == 0);
				pop3_write(s, line, strlen(line));
			}
			break;
		case POP3_OUTPUT_NONE:
			break;
		}
	}
	return 1;
}
