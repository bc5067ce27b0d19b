/*
 * The POP3 command parser: bytes in, one command (or a refusal) out.
 * Pure and resumable at any byte boundary, see pop3d.h.
 *
 * RFC 1939 §3: "Commands in the POP3 consist of a case-insensitive
 * keyword, possibly followed by one or more arguments.  All commands are
 * terminated by a CRLF pair.  Keywords and arguments consist of printable
 * ASCII characters.  Keywords and arguments are each separated by a
 * single SPACE character."  We accept runs of spaces between numeric
 * arguments (harmless, and some clients send them), but USER and PASS
 * take everything after the first space as their one argument (RFC 1939
 * §7, PASS: "a POP3 server may treat spaces in the argument as part of
 * the password").
 */
#include <string.h>

#include "pop3d/pop3d.h"

enum arg_kind {
	ARGS_NONE,	/* no arguments */
	ARGS_REST,	/* one argument: the rest of the line */
	ARGS_NUM,	/* message numbers: min..max of them */
	ARGS_WORDS,	/* space-separated words: min..max of them */
};

struct verb_spec {
	const char *name;
	enum pop3_verb verb;
	enum arg_kind kind;
	unsigned min, max;
	const char *usage;
};

static const struct verb_spec verbs[] = {
	{ "USER", POP3_VERB_USER, ARGS_REST, 1, 1, "Syntax: USER name" },
	{ "PASS", POP3_VERB_PASS, ARGS_REST, 1, 1, "Syntax: PASS password" },
	{ "APOP", POP3_VERB_APOP, ARGS_WORDS, 2, 2,
	  "Syntax: APOP name digest" },
	{ "AUTH", POP3_VERB_AUTH, ARGS_WORDS, 0, 2,
	  "Syntax: AUTH mechanism [initial-response]" },
	{ "STLS", POP3_VERB_STLS, ARGS_NONE, 0, 0, "Syntax: STLS" },
	{ "CAPA", POP3_VERB_CAPA, ARGS_NONE, 0, 0, "Syntax: CAPA" },
	{ "STAT", POP3_VERB_STAT, ARGS_NONE, 0, 0, "Syntax: STAT" },
	{ "LIST", POP3_VERB_LIST, ARGS_NUM, 0, 1, "Syntax: LIST [msg]" },
	{ "RETR", POP3_VERB_RETR, ARGS_NUM, 1, 1, "Syntax: RETR msg" },
	{ "DELE", POP3_VERB_DELE, ARGS_NUM, 1, 1, "Syntax: DELE msg" },
	{ "NOOP", POP3_VERB_NOOP, ARGS_NONE, 0, 0, "Syntax: NOOP" },
	{ "RSET", POP3_VERB_RSET, ARGS_NONE, 0, 0, "Syntax: RSET" },
	{ "QUIT", POP3_VERB_QUIT, ARGS_NONE, 0, 0, "Syntax: QUIT" },
	{ "TOP", POP3_VERB_TOP, ARGS_NUM, 2, 2, "Syntax: TOP msg n" },
	{ "UIDL", POP3_VERB_UIDL, ARGS_NUM, 0, 1, "Syntax: UIDL [msg]" },
};

const char *
pop3_verb_name(enum pop3_verb verb)
{
	if (verb == POP3_VERB_SASL_RESPONSE)
		return "(sasl)";
	for (size_t i = 0; i < RB_N_ELEMENTS(verbs); i++) {
		if (verbs[i].verb == verb)
			return verbs[i].name;
	}
	return "?";
}

void
pop3_parser_init(struct pop3_parser *parser)
{
	memset(parser, 0, sizeof(*parser));
}

void
pop3_parser_reset(struct pop3_parser *parser)
{
	parser->len = 0;
	parser->too_long = false;
}

void
pop3_parser_set_sasl(struct pop3_parser *parser, bool sasl)
{
	parser->sasl = sasl;
}

static int
refuse(struct pop3_cmd *cmd, enum pop3_perr error, const char *text)
{
	cmd->error = error;
	cmd->error_text = text;
	return -1;
}

/* Decimal digits only (no sign, no blanks), at most max. */
static bool
parse_number(const char *s, uint64_t max, uint64_t *value_r)
{
	uint64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		unsigned d;

		if (*s < '0' || *s > '9')
			return false;
		d = (unsigned)(*s - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*value_r = v;
	return true;
}

/* Splits line at runs of spaces into at most max words; more is an
 * error.  Returns the count or -1. */
static int
split_words(char *p, char **words, unsigned max)
{
	unsigned n = 0;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return (int)n;
		if (n == max)
			return -1;
		words[n++] = p;
		while (*p != '\0' && *p != ' ')
			p++;
		if (*p == ' ')
			*p++ = '\0';
	}
}

static int
parse_args(const struct verb_spec *v, char *rest, struct pop3_cmd *cmd)
{
	char *words[2];
	uint64_t n;
	int count;

	switch (v->kind) {
	case ARGS_NONE:
		while (*rest == ' ')
			rest++;
		if (*rest != '\0')
			return refuse(cmd, POP3_PERR_SYNTAX, v->usage);
		return 1;
	case ARGS_REST:
		if (*rest == '\0')
			return refuse(cmd, POP3_PERR_SYNTAX, v->usage);
		cmd->argc = 1;
		cmd->arg = rest;
		return 1;
	case ARGS_NUM:
		count = split_words(rest, words, v->max);
		if (count < 0 || (unsigned)count < v->min)
			return refuse(cmd, POP3_PERR_SYNTAX, v->usage);
		cmd->argc = (unsigned)count;
		if (count >= 1) {
			if (!parse_number(words[0], UINT32_MAX, &n))
				return refuse(cmd, POP3_PERR_SYNTAX,
					      "Invalid message number");
			cmd->msg = (uint32_t)n;
		}
		if (count == 2 &&
		    !parse_number(words[1], UINT64_MAX, &cmd->lines))
			return refuse(cmd, POP3_PERR_SYNTAX,
				      "Invalid number of lines");
		return 1;
	case ARGS_WORDS:
		count = split_words(rest, words, v->max);
		if (count < 0 || (unsigned)count < v->min)
			return refuse(cmd, POP3_PERR_SYNTAX, v->usage);
		cmd->argc = (unsigned)count;
		if (count >= 1)
			cmd->arg = words[0];
		if (count == 2)
			cmd->arg2 = words[1];
		if (count >= 1 && strlen(words[0]) > RB_POP3_ARG_MAX)
			return refuse(cmd, POP3_PERR_SYNTAX, v->usage);
		return 1;
	}
	return refuse(cmd, POP3_PERR_SYNTAX, v->usage);
}

int
pop3_parse_line(char *line, size_t len, struct pop3_cmd *cmd)
{
	const struct verb_spec *v = NULL;
	size_t vlen;
	char *rest;

	memset(cmd, 0, sizeof(*cmd));
	cmd->arg = "";
	line[len] = '\0';
	/* RFC 1939 §3: printable ASCII.  We let 8-bit octets through (UTF-8
	 * user names and passwords exist) but no control characters: a NUL
	 * would cut strings short, a CR would hide in logs. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)line[i];

		if (c < 0x20 || c == 0x7f)
			return refuse(cmd, POP3_PERR_SYNTAX,
				      "Invalid characters in command");
	}
	for (vlen = 0; vlen < len && line[vlen] != ' '; vlen++)
		;
	for (size_t i = 0; i < RB_N_ELEMENTS(verbs); i++) {
		if (strlen(verbs[i].name) == vlen &&
		    rb_strncasecmp(line, verbs[i].name, vlen) == 0) {
			v = &verbs[i];
			break;
		}
	}
	if (v == NULL)
		return refuse(cmd, POP3_PERR_UNKNOWN, "Unknown command");
	cmd->verb = v->verb;
	/* Exactly one space after the keyword (RFC 1939 §3): for USER/PASS
	 * the rest of the line is the argument, as is. */
	rest = line + vlen;
	if (*rest == ' ')
		rest++;
	return parse_args(v, rest, cmd);
}

/* Completes a line of n octets in parser->line (terminator removed). */
static int
finish_line(struct pop3_parser *parser, size_t max, struct pop3_cmd *cmd)
{
	size_t n = parser->len;
	bool too_long = parser->too_long;

	pop3_parser_reset(parser);
	if (!too_long && n > 0 && parser->line[n - 1] == '\r')
		n--;
	if (too_long || n > max) {
		memset(cmd, 0, sizeof(*cmd));
		cmd->arg = "";
		cmd->verb = parser->sasl ? POP3_VERB_SASL_RESPONSE :
			POP3_VERB_NONE;
		return refuse(cmd, POP3_PERR_TOO_LONG, parser->sasl ?
			      "Response line too long" : "Line too long");
	}
	if (!parser->sasl)
		return pop3_parse_line(parser->line, n, cmd);

	memset(cmd, 0, sizeof(*cmd));
	parser->line[n] = '\0';
	cmd->verb = POP3_VERB_SASL_RESPONSE;
	cmd->arg = parser->line;
	if (memchr(parser->line, '\0', n) != NULL ||
	    memchr(parser->line, '\r', n) != NULL)
		return refuse(cmd, POP3_PERR_SYNTAX,
			      "Invalid characters in response");
	cmd->argc = 1;
	return 1;
}

int
pop3_parse(struct pop3_parser *parser, const void *data, size_t len,
	   size_t *consumed_r, struct pop3_cmd *cmd_r)
{
	const unsigned char *p = data;
	const unsigned char *lf = memchr(p, '\n', len);
	size_t take = lf != NULL ? (size_t)(lf - p) : len;
	/* Octets before the terminator: the limit counts CRLF. */
	size_t max = (parser->sasl ? RB_POP3_SASL_LINE_MAX : RB_POP3_LINE_MAX) - 2;

	*consumed_r = lf != NULL ? take + 1 : len;
	if (!parser->too_long) {
		/* Keep max + 1 octets: the extra one may be the CR of CRLF.
		 * Past that the line is too long whatever follows. */
		if (take > max + 1 - parser->len) {
			parser->too_long = true;
			parser->len = 0;
		} else {
			memcpy(parser->line + parser->len, p, take);
			parser->len += take;
		}
	}
	if (lf == NULL)
		return 0;
	return finish_line(parser, max, cmd_r);
}
