/*
 * LMTP parsers: command lines and message data.  Pure functions over byte
 * buffers with all state in the structs (STYLE.md "Parsers"), resumable at
 * any byte boundary, so the unit tests can feed them one byte at a time
 * and the fuzzer can drive them directly.
 *
 * Command grammar: RFC 5321 §4.1.1 and §4.1.2, LHLO from RFC 2033 §4.1,
 * BDAT from RFC 3030 §2, SIZE= from RFC 1870 §3, BODY= from RFC 6152 §2.
 * Where real clients are known to stray from the grammar we accept it when
 * the meaning is unambiguous: verbs in any case, blanks at the end of a
 * line, and a space after "FROM:" / "TO:".
 */
#include <string.h>

#include "lda/lda.h"

static const char *const verb_names[LMTP_VERB_COUNT] = {
	[LMTP_VERB_NONE] = "?",
	[LMTP_VERB_LHLO] = "LHLO",
	[LMTP_VERB_HELO] = "HELO",
	[LMTP_VERB_EHLO] = "EHLO",
	[LMTP_VERB_MAIL] = "MAIL",
	[LMTP_VERB_RCPT] = "RCPT",
	[LMTP_VERB_DATA] = "DATA",
	[LMTP_VERB_BDAT] = "BDAT",
	[LMTP_VERB_RSET] = "RSET",
	[LMTP_VERB_NOOP] = "NOOP",
	[LMTP_VERB_QUIT] = "QUIT",
	[LMTP_VERB_VRFY] = "VRFY",
	[LMTP_VERB_HELP] = "HELP",
};

const char *
lmtp_verb_name(enum lmtp_verb verb)
{
	if ((unsigned)verb >= LMTP_VERB_COUNT)
		return "?";
	return verb_names[verb];
}

/* ---- command lines ---- */

void
lmtp_parser_init(struct lmtp_parser *parser, size_t max_line)
{
	memset(parser, 0, sizeof(*parser));
	if (max_line == 0)
		max_line = RB_LMTP_LINE_MAX;
	if (max_line > RB_LMTP_LINE_CEILING)
		max_line = RB_LMTP_LINE_CEILING;
	if (max_line < RB_LMTP_LINE_MIN)
		max_line = RB_LMTP_LINE_MIN;
	parser->max_line = max_line;
	/* max_line - 1 octets (the CR of CRLF included) and a NUL */
	parser->line = rb_malloc(max_line);
}

void
lmtp_parser_free(struct lmtp_parser *parser)
{
	rb_free(&parser->line);
}

void
lmtp_parser_reset(struct lmtp_parser *parser)
{
	parser->len = 0;
	parser->too_long = false;
}

static int
perr(struct lmtp_cmd *cmd, enum lmtp_perr error, const char *text)
{
	cmd->error = error;
	cmd->error_text = text;
	return -1;
}

int
lmtp_parse_command(struct lmtp_parser *parser, const void *data, size_t len,
		   size_t *consumed_r, struct lmtp_cmd *cmd_r)
{
	const unsigned char *nl = memchr(data, '\n', len);
	size_t n = nl != NULL ? (size_t)(nl - (const unsigned char *)data) :
		len;
	size_t line_len;

	/* Stored octets may include the CR of a CRLF, so they may reach
	 * max_line - 1; the length check proper is made at the LF. */
	if (!parser->too_long) {
		if (n > parser->max_line - 1 - parser->len) {
			parser->too_long = true;
			parser->len = 0;
		} else {
			memcpy(parser->line + parser->len, data, n);
			parser->len += n;
		}
	}
	if (nl == NULL) {
		*consumed_r = len;
		return 0;
	}
	*consumed_r = n + 1;

	line_len = parser->len;
	if (line_len > 0 && parser->line[line_len - 1] == '\r')
		line_len--;
	if (parser->too_long || line_len > parser->max_line - 2) {
		lmtp_parser_reset(parser);
		memset(cmd_r, 0, sizeof(*cmd_r));
		cmd_r->arg = "";
		return perr(cmd_r, LMTP_PERR_TOO_LONG, "Line too long");
	}
	lmtp_parser_reset(parser);
	return lmtp_parse_line(parser->line, line_len, cmd_r);
}

static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* RFC 5322 §3.2.3 atext. */
static bool
is_atext(unsigned char c)
{
	return is_alpha(c) || is_digit(c) ||
		(c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* sub-domain characters of RFC 5321 §4.1.2; the order of letters and
 * hyphens is not checked: the user lookup decides what exists. */
static bool
is_domain_char(unsigned char c)
{
	return is_alpha(c) || is_digit(c) || c == '-' || c == '.';
}

static bool
has_ctl(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

/*
 * Path = "<" [ A-d-l ":" ] Mailbox ">" (RFC 5321 §4.1.2).  The source
 * route is accepted and dropped (§4.1.1.3 "MUST BE accepted ... SHOULD be
 * ignored").  allow_null: "<>" (reverse-path).  allow_postmaster: a bare
 * "<Postmaster>" (§4.1.1.3).  The mailbox goes to out without the <>.
 */
static int
parse_path(const char **pp, const char *end, bool allow_null,
	   bool allow_postmaster, char *out, size_t outsize)
{
	const char *p = *pp, *start;
	size_t n;

	if (p == end || *p != '<')
		return -1;
	p++;
	if (allow_null && p < end && *p == '>') {
		out[0] = '\0';
		*pp = p + 1;
		return 0;
	}
	if (p < end && *p == '@') {
		/* A-d-l = At-domain *( "," At-domain ) */
		for (;;) {
			if (p == end || *p != '@')
				return -1;
			p++;
			start = p;
			while (p < end && is_domain_char((unsigned char)*p))
				p++;
			if (p == start)
				return -1;
			if (p < end && *p == ',') {
				p++;
				continue;
			}
			if (p < end && *p == ':') {
				p++;
				break;
			}
			return -1;
		}
	}

	start = p;
	if (p < end && *p == '"') {
		/* Quoted-string with qtextSMTP / quoted-pairSMTP; kept as
		 * written, the user lookup decides whether it exists. */
		p++;
		for (;;) {
			if (p == end)
				return -1;
			if (*p == '"')
				break;
			if (*p == '\\') {
				p++;
				if (p == end)
					return -1;
			}
			if ((unsigned char)*p < 32 || (unsigned char)*p > 126)
				return -1;
			p++;
		}
		p++;
	} else {
		while (p < end && (is_atext((unsigned char)*p) || *p == '.'))
			p++;
		if (p == start)
			return -1;
	}

	if (p < end && *p == '>' && allow_postmaster &&
	    p - start == 10 && rb_strncasecmp(start, "postmaster", 10) == 0)
		goto done;
	if (p == end || *p != '@')
		return -1;
	p++;
	if (p < end && *p == '[') {
		/* address-literal: dtext inside brackets (§4.1.3) */
		p++;
		while (p < end && *p != ']') {
			unsigned char c = (unsigned char)*p;
			if (c < 33 || c > 126 || c == '[' || c == '\\')
				return -1;
			p++;
		}
		if (p == end)
			return -1;
		p++;
	} else {
		const char *dom = p;
		while (p < end && is_domain_char((unsigned char)*p))
			p++;
		if (p == dom)
			return -1;
	}
done:
	if (p == end || *p != '>')
		return -1;
	n = (size_t)(p - start);
	if (n >= outsize)
		return -1;
	memcpy(out, start, n);
	out[n] = '\0';
	*pp = p + 1;
	return 0;
}

/* Digits into a uint64; saturates at UINT64_MAX so that a SIZE= larger
 * than we can count is still "too big" rather than a syntax error. */
static int
parse_number(const char *p, size_t n, uint64_t *value_r, bool *overflow_r)
{
	uint64_t v = 0;

	*overflow_r = false;
	if (n == 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (!is_digit((unsigned char)p[i]))
			return -1;
		d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10) {
			*overflow_r = true;
			v = UINT64_MAX;
		} else if (!*overflow_r) {
			v = v * 10 + d;
		}
	}
	*value_r = v;
	return 0;
}

/*
 * Mail-parameters / Rcpt-parameters (RFC 5321 §4.1.2):
 * esmtp-param *(SP esmtp-param).  We know SIZE (RFC 1870 §3) and BODY
 * (RFC 6152 §2) on MAIL only; anything else is 555 (§4.1.1.11).
 */
static int
parse_params(const char *p, const char *end, struct lmtp_cmd *cmd)
{
	bool is_mail = cmd->verb == LMTP_VERB_MAIL;

	while (p < end) {
		const char *key, *val = NULL;
		size_t klen, vlen = 0;

		if (*p != ' ')
			return perr(cmd, LMTP_PERR_SYNTAX,
				    "Syntax error in parameters");
		while (p < end && *p == ' ')
			p++;
		key = p;
		while (p < end && (is_alpha((unsigned char)*p) ||
				   is_digit((unsigned char)*p) ||
				   (*p == '-' && p != key)))
			p++;
		klen = (size_t)(p - key);
		if (klen == 0)
			return perr(cmd, LMTP_PERR_SYNTAX,
				    "Syntax error in parameters");
		if (p < end && *p == '=') {
			p++;
			val = p;
			while (p < end && (unsigned char)*p >= 33 &&
			       (unsigned char)*p <= 126 && *p != '=')
				p++;
			vlen = (size_t)(p - val);
			if (vlen == 0)
				return perr(cmd, LMTP_PERR_SYNTAX,
					    "Syntax error in parameters");
		}
		if (p < end && *p != ' ')
			return perr(cmd, LMTP_PERR_SYNTAX,
				    "Syntax error in parameters");

		if (is_mail && klen == 4 && rb_strncasecmp(key, "SIZE", 4) == 0) {
			bool overflow;

			if (cmd->has_size)
				return perr(cmd, LMTP_PERR_SYNTAX,
					    "Duplicate SIZE parameter");
			if (val == NULL ||
			    parse_number(val, vlen, &cmd->size, &overflow) < 0)
				return perr(cmd, LMTP_PERR_SYNTAX,
					    "Syntax: SIZE=<octets>");
			cmd->has_size = true;
		} else if (is_mail && klen == 4 &&
			   rb_strncasecmp(key, "BODY", 4) == 0) {
			if (cmd->body != LMTP_BODY_NONE)
				return perr(cmd, LMTP_PERR_SYNTAX,
					    "Duplicate BODY parameter");
			if (val != NULL && vlen == 4 &&
			    rb_strncasecmp(val, "7BIT", 4) == 0)
				cmd->body = LMTP_BODY_7BIT;
			else if (val != NULL && vlen == 8 &&
				 rb_strncasecmp(val, "8BITMIME", 8) == 0)
				cmd->body = LMTP_BODY_8BITMIME;
			else
				return perr(cmd, LMTP_PERR_SYNTAX,
					    "Syntax: BODY=7BIT|8BITMIME");
		} else {
			return perr(cmd, LMTP_PERR_PARAM,
				    "Unsupported parameter");
		}
	}
	return 1;
}

/* "FROM:" / "TO:" then the path, then parameters. */
static int
parse_mail_rcpt(const char *args, size_t len, struct lmtp_cmd *cmd)
{
	bool is_mail = cmd->verb == LMTP_VERB_MAIL;
	const char *prefix = is_mail ? "FROM:" : "TO:";
	const char *syntax = is_mail ? "Syntax: MAIL FROM:<address>" :
		"Syntax: RCPT TO:<address>";
	size_t plen = strlen(prefix);
	const char *p = args, *end = args + len;

	if (len < plen || rb_strncasecmp(args, prefix, plen) != 0)
		return perr(cmd, LMTP_PERR_SYNTAX, syntax);
	p += plen;
	/* RFC 5321 has no space here, but some clients send one. */
	while (p < end && *p == ' ')
		p++;
	if (p == end || *p != '<')
		return perr(cmd, LMTP_PERR_SYNTAX, syntax);
	if (parse_path(&p, end, is_mail, !is_mail, cmd->address,
		       sizeof(cmd->address)) < 0)
		return perr(cmd, LMTP_PERR_ADDRESS, is_mail ?
			    "Bad sender address syntax" :
			    "Bad recipient address syntax");
	return parse_params(p, end, cmd);
}

/* BDAT SP chunk-size [ SP end-marker ] (RFC 3030 §2) */
static int
parse_bdat(const char *args, size_t len, struct lmtp_cmd *cmd)
{
	const char *sp = memchr(args, ' ', len);
	size_t n = sp != NULL ? (size_t)(sp - args) : len;
	bool overflow;

	if (parse_number(args, n, &cmd->chunk_size, &overflow) < 0 ||
	    overflow)
		return perr(cmd, LMTP_PERR_SYNTAX,
			    "Syntax: BDAT <octets> [LAST]");
	if (sp != NULL) {
		const char *m = sp + 1;
		size_t mlen = len - n - 1;

		if (mlen != 4 || rb_strncasecmp(m, "LAST", 4) != 0)
			return perr(cmd, LMTP_PERR_SYNTAX,
				    "Syntax: BDAT <octets> [LAST]");
		cmd->last = true;
	}
	return 1;
}

int
lmtp_parse_line(char *line, size_t len, struct lmtp_cmd *cmd_r)
{
	size_t vlen = 0, alen;
	const char *args;

	memset(cmd_r, 0, sizeof(*cmd_r));
	cmd_r->arg = "";

	/* Blanks at the end of a command carry no meaning; some clients
	 * send them. */
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	line[len] = '\0';

	while (vlen < len && line[vlen] != ' ')
		vlen++;
	if (vlen == 4) {
		for (int v = LMTP_VERB_NONE + 1; v < LMTP_VERB_COUNT; v++) {
			if (rb_strncasecmp(line, verb_names[v], 4) == 0) {
				cmd_r->verb = (enum lmtp_verb)v;
				break;
			}
		}
	}
	if (cmd_r->verb == LMTP_VERB_NONE)
		return perr(cmd_r, LMTP_PERR_UNKNOWN, "Command unrecognized");

	args = line + vlen;
	alen = len - vlen;
	if (alen > 0) {
		args++;	/* the SP after the verb */
		alen--;
	}
	if (memchr(args, '\0', alen) != NULL)
		return perr(cmd_r, LMTP_PERR_SYNTAX, "NUL in command line");

	switch (cmd_r->verb) {
	case LMTP_VERB_LHLO:
		if (alen == 0 || has_ctl(args, alen))
			return perr(cmd_r, LMTP_PERR_SYNTAX,
				    "Syntax: LHLO hostname");
		cmd_r->arg = args;
		return 1;
	case LMTP_VERB_VRFY:
		if (alen == 0 || has_ctl(args, alen))
			return perr(cmd_r, LMTP_PERR_SYNTAX,
				    "Syntax: VRFY address");
		cmd_r->arg = args;
		return 1;
	case LMTP_VERB_HELO:
	case LMTP_VERB_EHLO:
	case LMTP_VERB_NOOP:
	case LMTP_VERB_HELP:
		/* NOOP [ SP String ] and HELP [ SP String ] (§4.1.1.8,
		 * §4.1.1.9): the argument has no effect. */
		cmd_r->arg = args;
		return 1;
	case LMTP_VERB_MAIL:
	case LMTP_VERB_RCPT:
		return parse_mail_rcpt(args, alen, cmd_r);
	case LMTP_VERB_BDAT:
		return parse_bdat(args, alen, cmd_r);
	case LMTP_VERB_DATA:
	case LMTP_VERB_RSET:
	case LMTP_VERB_QUIT:
		if (alen != 0)
			return perr(cmd_r, LMTP_PERR_SYNTAX,
				    "No parameters allowed");
		return 1;
	case LMTP_VERB_NONE:
	case LMTP_VERB_COUNT:
		break;
	}
	return perr(cmd_r, LMTP_PERR_UNKNOWN, "Command unrecognized");
}

/* ---- message data ---- */

void
lmtp_data_init(struct lmtp_data *data, bool dot_stuffed)
{
	memset(data, 0, sizeof(*data));
	data->dot_stuffed = dot_stuffed;
	rb_buf_init(&data->line, RB_LMTP_DATA_LINE_MAX);
}

void
lmtp_data_free(struct lmtp_data *data)
{
	rb_buf_free(&data->line);
	memset(data, 0, sizeof(*data));
}

static void
data_event(struct lmtp_data *data, struct lmtp_data_event *event_r,
	   bool split)
{
	event_r->type = LMTP_DATA_LINE;
	/* never NULL, so callers may hand it to memcpy */
	event_r->line = data->line.len > 0 ? data->line.data :
		(const unsigned char *)"";
	event_r->len = data->line.len;
	event_r->split = split;
	data->pending_reset = true;
	if (split) {
		data->size += data->line.len;
		data->split_lines++;
	} else {
		/* CRLF counted as two octets whatever the peer sent */
		data->size += data->line.len + 2;
		data->lines++;
	}
}

static void
data_end(struct lmtp_data *data, struct lmtp_data_event *event_r)
{
	memset(event_r, 0, sizeof(*event_r));
	event_r->type = LMTP_DATA_END;
	event_r->line = (const unsigned char *)"";
	data->state = LMTP_DATA_DONE;
}

static bool
line_full(const struct lmtp_data *data)
{
	return data->line.len >= RB_LMTP_DATA_LINE_MAX;
}

int
lmtp_data_parse(struct lmtp_data *data, const void *buf, size_t len,
		size_t *consumed_r, struct lmtp_data_event *event_r)
{
	const unsigned char *p = buf;
	size_t i = 0;

	if (data->pending_reset) {
		rb_buf_reset(&data->line);
		data->pending_reset = false;
	}
	while (i < len) {
		unsigned char c = p[i];

		switch (data->state) {
		case LMTP_DATA_BOL:
			/* RFC 5321 §4.5.2: a leading "." is either the end
			 * of data or stuffing; the next octet decides. */
			if (data->dot_stuffed && c == '.') {
				data->state = LMTP_DATA_DOT;
				i++;
			} else {
				data->state = LMTP_DATA_TEXT;
			}
			break;
		case LMTP_DATA_DOT:
			if (c == '\n') {
				*consumed_r = i + 1;
				data_end(data, event_r);
				return 1;
			}
			if (c == '\r') {
				data->state = LMTP_DATA_DOT_CR;
				i++;
			} else {
				/* stuffing: the dot is dropped */
				data->state = LMTP_DATA_TEXT;
			}
			break;
		case LMTP_DATA_DOT_CR:
			if (c == '\n') {
				*consumed_r = i + 1;
				data_end(data, event_r);
				return 1;
			}
			/* ".\r" + not LF: the dot was stuffing and the CR is
			 * text.  The line is empty, so the CR fits. */
			(void)rb_buf_append(&data->line, "\r", 1);
			data->state = LMTP_DATA_TEXT;
			break;
		case LMTP_DATA_TEXT: {
			size_t start = i, room;

			while (i < len && p[i] != '\r' && p[i] != '\n')
				i++;
			if (i > start) {
				room = RB_LMTP_DATA_LINE_MAX - data->line.len;
				if (room == 0) {
					i = start;
					*consumed_r = i;
					data_event(data, event_r, true);
					return 1;
				}
				if (i - start > room)
					i = start + room;
				RB_CHECK(rb_buf_append(&data->line, p + start,
						       i - start) == 0);
				break;
			}
			i++;
			if (c == '\n') {
				*consumed_r = i;
				data->state = LMTP_DATA_BOL;
				data_event(data, event_r, false);
				return 1;
			}
			data->state = LMTP_DATA_CR;
			break;
		}
		case LMTP_DATA_CR:
			if (c == '\n') {
				*consumed_r = i + 1;
				data->state = LMTP_DATA_BOL;
				data_event(data, event_r, false);
				return 1;
			}
			/* a lone CR is text (RFC 5321 §2.3.8 forbids it,
			 * but dropping octets would change the message) */
			if (line_full(data)) {
				*consumed_r = i;
				data_event(data, event_r, true);
				return 1;
			}
			(void)rb_buf_append(&data->line, "\r", 1);
			data->state = LMTP_DATA_TEXT;
			break;
		case LMTP_DATA_DONE:
			*consumed_r = i;
			return 0;
		}
	}
	*consumed_r = i;
	return 0;
}

int
lmtp_data_finish(struct lmtp_data *data, struct lmtp_data_event *event_r)
{
	if (data->state == LMTP_DATA_DONE)
		return 0;
	if (data->pending_reset) {
		rb_buf_reset(&data->line);
		data->pending_reset = false;
	}
	if (data->state == LMTP_DATA_CR || data->state == LMTP_DATA_DOT_CR) {
		if (line_full(data)) {
			data_event(data, event_r, true);
			return 1;
		}
		(void)rb_buf_append(&data->line, "\r", 1);
		data->state = LMTP_DATA_TEXT;
	}
	if (data->state == LMTP_DATA_DOT && data->line.len == 0) {
		/* a final "." without terminator: text in BDAT, and in
		 * DATA the connection ended anyway */
		(void)rb_buf_append(&data->line, ".", 1);
		data->state = LMTP_DATA_TEXT;
	}
	if (data->line.len > 0) {
		data->state = LMTP_DATA_BOL;
		data_event(data, event_r, false);
		return 1;
	}
	data_end(data, event_r);
	return 1;
}
