/*
 * lda/: the LMTP command parser and the DATA/BDAT message parser.
 *
 * Every input is fed whole, one byte at a time and in 7-byte pieces
 * (Dovecot's trick), and all three must describe the same commands,
 * errors, lines and end of data.  Results are rendered as one text so a
 * failure shows the whole difference.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lda/lda.h"

/* ---- rendering ---- */

static void
put_escaped(struct rb_buf *out, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
			assert_int_equal(rb_buf_append(out, &p[i], 1), 0);
		} else {
			assert_int_equal(rb_buf_printf(out, "\\x%02x", p[i]),
					 0);
		}
	}
}

static const char *const perr_names[] = {
	"none", "too-long", "unknown", "syntax", "address", "param",
};

static void
render_cmd(struct rb_buf *out, int ret, const struct lmtp_cmd *cmd)
{
	if (ret < 0) {
		assert_non_null(cmd->error_text);
		assert_int_not_equal(cmd->error, LMTP_PERR_NONE);
		(void)rb_buf_printf(out, "ERR(%s,%s)",
				    perr_names[cmd->error],
				    lmtp_verb_name(cmd->verb));
	} else {
		assert_int_equal(cmd->error, LMTP_PERR_NONE);
		(void)rb_buf_printf(out, "%s", lmtp_verb_name(cmd->verb));
		if (cmd->arg[0] != '\0') {
			(void)rb_buf_append_str(out, " arg=");
			put_escaped(out, (const unsigned char *)cmd->arg,
				    strlen(cmd->arg));
		}
		if (cmd->verb == LMTP_VERB_MAIL ||
		    cmd->verb == LMTP_VERB_RCPT)
			(void)rb_buf_printf(out, " <%s>", cmd->address);
		if (cmd->has_size)
			(void)rb_buf_printf(out, " size=%llu",
					    (unsigned long long)cmd->size);
		if (cmd->body != LMTP_BODY_NONE)
			(void)rb_buf_printf(out, " body=%s",
					    cmd->body == LMTP_BODY_7BIT ?
					    "7bit" : "8bitmime");
		if (cmd->verb == LMTP_VERB_BDAT)
			(void)rb_buf_printf(out, " chunk=%llu%s",
					    (unsigned long long)cmd->chunk_size,
					    cmd->last ? " last" : "");
	}
	(void)rb_buf_append_str(out, ";");
}

/* Feeds input in pieces of `step` octets; renders every result. */
static char *
run_commands(const void *input, size_t len, size_t step, size_t max_line)
{
	struct lmtp_parser *parser = malloc(sizeof(*parser));
	const unsigned char *p = input;
	struct rb_buf out;
	size_t off = 0;

	assert_non_null(parser);
	rb_buf_init(&out, 1024 * 1024);
	lmtp_parser_init(parser, max_line);
	while (off < len) {
		size_t n = len - off < step ? len - off : step;
		size_t consumed;
		struct lmtp_cmd cmd;
		int ret;

		ret = lmtp_parse_command(parser, p + off, n, &consumed, &cmd);
		assert_true(consumed <= n);
		if (ret == 0)
			assert_int_equal(consumed, n);
		else
			render_cmd(&out, ret, &cmd);
		off += consumed;
	}
	if (parser->len > 0 || parser->too_long)
		(void)rb_buf_append_str(&out, "(partial)");
	lmtp_parser_free(parser);
	assert_null(parser->line);
	free(parser);
	(void)rb_buf_append_str(&out, "");
	return (char *)out.data;
}

static void
check_commands_max(const void *input, size_t len, size_t max_line,
		   const char *expected)
{
	static const size_t steps[] = { SIZE_MAX, 1, 7 };

	for (size_t i = 0; i < RB_N_ELEMENTS(steps); i++) {
		char *got = run_commands(input, len, steps[i], max_line);

		if (strcmp(got, expected) != 0)
			fail_msg("step %zu:\n got: %s\nwant: %s",
				 steps[i] == SIZE_MAX ? 0 : steps[i], got,
				 expected);
		free(got);
	}
}

#define check_commands(input, expected) \
	check_commands_max(input, sizeof(input) - 1, 0, expected)

/* Feeds message data; renders lines as [..] (split pieces as {..}), END
 * and what was consumed.  finish: BDAT LAST at the end of input. */
static char *
run_data(const void *input, size_t len, size_t step, bool stuffed,
	 bool finish)
{
	const unsigned char *p = input;
	struct lmtp_data data;
	struct lmtp_data_event ev;
	struct rb_buf out;
	size_t off = 0;
	bool ended = false;

	rb_buf_init(&out, 4 * 1024 * 1024);
	lmtp_data_init(&data, stuffed);
	while (off < len && !ended) {
		size_t n = len - off < step ? len - off : step;
		size_t consumed;
		int ret;

		ret = lmtp_data_parse(&data, p + off, n, &consumed, &ev);
		assert_true(consumed <= n);
		off += consumed;
		if (ret == 0) {
			assert_int_equal(consumed, n);
			continue;
		}
		assert_non_null(ev.line);
		if (ev.type == LMTP_DATA_END) {
			(void)rb_buf_append_str(&out, "END");
			ended = true;
			break;
		}
		(void)rb_buf_append_str(&out, ev.split ? "{" : "[");
		if (ev.len > 64) {
			/* long lines: length and edges only */
			(void)rb_buf_printf(&out, "%zu:", ev.len);
			put_escaped(&out, ev.line, 4);
			(void)rb_buf_append_str(&out, "..");
			put_escaped(&out, ev.line + ev.len - 4, 4);
		} else {
			put_escaped(&out, ev.line, ev.len);
		}
		(void)rb_buf_append_str(&out, ev.split ? "}" : "]");
	}
	if (finish && !ended) {
		while (lmtp_data_finish(&data, &ev) == 1) {
			if (ev.type == LMTP_DATA_END) {
				(void)rb_buf_append_str(&out, "END");
				ended = true;
				break;
			}
			(void)rb_buf_append_str(&out, "[");
			put_escaped(&out, ev.line, ev.len);
			(void)rb_buf_append_str(&out, "]");
		}
		assert_true(ended);
		assert_int_equal(lmtp_data_finish(&data, &ev), 0);
	}
	(void)rb_buf_printf(&out, " rest=%zu size=%llu", len - off,
			    (unsigned long long)data.size);
	lmtp_data_free(&data);
	return (char *)out.data;
}

static void
check_data_mode(const void *input, size_t len, bool stuffed, bool finish,
		const char *expected)
{
	static const size_t steps[] = { SIZE_MAX, 1, 7 };

	for (size_t i = 0; i < RB_N_ELEMENTS(steps); i++) {
		char *got = run_data(input, len, steps[i], stuffed, finish);

		if (strcmp(got, expected) != 0)
			fail_msg("step %zu:\n got: %s\nwant: %s",
				 steps[i] == SIZE_MAX ? 0 : steps[i], got,
				 expected);
		free(got);
	}
}

#define check_data(input, expected) \
	check_data_mode(input, sizeof(input) - 1, true, false, expected)
#define check_bdat(input, expected) \
	check_data_mode(input, sizeof(input) - 1, false, true, expected)

/* ---- commands ---- */

static void
test_simple_commands(void **state)
{
	(void)state;
	check_commands("LHLO mx.example.org\r\n",
		       "LHLO arg=mx.example.org;");
	check_commands("lhlo [127.0.0.1]\r\nnoop\r\nRsEt\r\nquit\r\n",
		       "LHLO arg=[127.0.0.1];NOOP;RSET;QUIT;");
	check_commands("NOOP hello there\r\nHELP\r\nHELP MAIL\r\n",
		       "NOOP arg=hello there;HELP;HELP arg=MAIL;");
	check_commands("VRFY joe\r\nVRFY\r\n",
		       "VRFY arg=joe;ERR(syntax,VRFY);");
	check_commands("DATA\r\nDATA now\r\nQUIT x\r\nRSET y\r\n",
		       "DATA;ERR(syntax,DATA);ERR(syntax,QUIT);"
		       "ERR(syntax,RSET);");
	check_commands("HELO a\r\nEHLO b\r\n", "HELO arg=a;EHLO arg=b;");
	check_commands("LHLO\r\nLHLO a\tb\r\n",
		       "ERR(syntax,LHLO);ERR(syntax,LHLO);");
	/* blanks at the end are cut */
	check_commands("QUIT  \t \r\nDATA \r\n", "QUIT;DATA;");
}

static void
test_unknown(void **state)
{
	(void)state;
	check_commands("XYZZY\r\nFOO\r\n\r\n HELO x\r\nMAILFROM:<a@b>\r\n",
		       "ERR(unknown,?);ERR(unknown,?);ERR(unknown,?);"
		       "ERR(unknown,?);ERR(unknown,?);");
	/* a lone CR is part of the line */
	check_commands("NO\rOP\r\nNOOP\r\r\n",
		       "ERR(unknown,?);ERR(unknown,?);");
}

static void
test_mail(void **state)
{
	(void)state;
	check_commands("MAIL FROM:<joe@example.org>\r\n",
		       "MAIL <joe@example.org>;");
	check_commands("MAIL FROM:<>\r\nmail from:<>\r\n",
		       "MAIL <>;MAIL <>;");
	check_commands("MAIL FROM: <joe@example.org>\r\n",
		       "MAIL <joe@example.org>;");
	check_commands("MAIL FROM:<joe@example.org> SIZE=1000 "
		       "BODY=8BITMIME\r\n",
		       "MAIL <joe@example.org> size=1000 body=8bitmime;");
	check_commands("MAIL FROM:<a@b> body=7bit  size=0\r\n",
		       "MAIL <a@b> size=0 body=7bit;");
	check_commands("MAIL FROM:<a@b> SIZE=99999999999999999999999\r\n",
		       "MAIL <a@b> size=18446744073709551615;");
	check_commands("MAIL FROM:<@r1.example,@r2.example:a@b.example>\r\n",
		       "MAIL <a@b.example>;");
	check_commands("MAIL FROM:<\"john doe\"@example.org>\r\n",
		       "MAIL <\"john doe\"@example.org>;");
	check_commands("MAIL FROM:<a@[192.0.2.1]>\r\n",
		       "MAIL <a@[192.0.2.1]>;");
	check_commands("MAIL FROM:<a@b> FOO=bar\r\n"
		       "MAIL FROM:<a@b> AUTH=<>\r\n",
		       "ERR(param,MAIL);ERR(param,MAIL);");
	check_commands("MAIL FROM:<a@b> SIZE=abc\r\n"
		       "MAIL FROM:<a@b> SIZE\r\n"
		       "MAIL FROM:<a@b> SIZE=1 SIZE=2\r\n"
		       "MAIL FROM:<a@b> BODY=BINARYMIME\r\n"
		       "MAIL FROM:<a@b>SIZE=1\r\n"
		       "MAIL FROM:<a@b> =x\r\n",
		       "ERR(syntax,MAIL);ERR(syntax,MAIL);ERR(syntax,MAIL);"
		       "ERR(syntax,MAIL);ERR(syntax,MAIL);ERR(syntax,MAIL);");
	check_commands("MAIL FROM:a@b\r\nMAIL TO:<a@b>\r\nMAIL\r\n"
		       "MAIL FROM:\r\n",
		       "ERR(syntax,MAIL);ERR(syntax,MAIL);ERR(syntax,MAIL);"
		       "ERR(syntax,MAIL);");
	check_commands("MAIL FROM:<a b@c>\r\nMAIL FROM:<a@>\r\n"
		       "MAIL FROM:<a@b\r\nMAIL FROM:<@x:>\r\n"
		       "MAIL FROM:<\"a@b>\r\nMAIL FROM:<a@[1.2>\r\n",
		       "ERR(address,MAIL);ERR(address,MAIL);"
		       "ERR(address,MAIL);ERR(address,MAIL);"
		       "ERR(address,MAIL);ERR(address,MAIL);");
}

static void
test_rcpt(void **state)
{
	(void)state;
	check_commands("RCPT TO:<joe@example.org>\r\nrcpt to:<A+b@X.org>\r\n",
		       "RCPT <joe@example.org>;RCPT <A+b@X.org>;");
	check_commands("RCPT TO:<Postmaster>\r\nRCPT TO:<joe>\r\n",
		       "RCPT <Postmaster>;ERR(address,RCPT);");
	check_commands("RCPT TO:<>\r\n", "ERR(address,RCPT);");
	check_commands("RCPT TO:<a@b> NOTIFY=NEVER\r\n"
		       "RCPT TO:<a@b> SIZE=10\r\n",
		       "ERR(param,RCPT);ERR(param,RCPT);");
	check_commands("RCPT FROM:<a@b>\r\n", "ERR(syntax,RCPT);");
}

static void
test_bdat(void **state)
{
	(void)state;
	check_commands("BDAT 100\r\nBDAT 0 LAST\r\nbdat 5 last\r\n",
		       "BDAT chunk=100;BDAT chunk=0 last;"
		       "BDAT chunk=5 last;");
	check_commands("BDAT\r\nBDAT x\r\nBDAT 10 FIRST\r\n"
		       "BDAT 99999999999999999999999\r\nBDAT -1\r\n",
		       "ERR(syntax,BDAT);ERR(syntax,BDAT);ERR(syntax,BDAT);"
		       "ERR(syntax,BDAT);ERR(syntax,BDAT);");
}

static void
test_line_endings(void **state)
{
	(void)state;
	/* bare LF ends a command line as CRLF does */
	check_commands("NOOP\nQUIT\n", "NOOP;QUIT;");
	check_commands("NOOP\r\nQUIT\nRSET\r\n", "NOOP;QUIT;RSET;");
	check_commands("NOOP\r\nQUI", "NOOP;(partial)");
}

static void
test_nul_and_8bit(void **state)
{
	(void)state;
	check_commands("NOOP\0\r\nMAIL FROM:<a\0b@c>\r\nNOOP x\0y\r\n",
		       "ERR(unknown,?);ERR(syntax,MAIL);ERR(syntax,NOOP);");
	check_commands("RCPT TO:<j\xc3\xb6@example.org>\r\n",
		       "ERR(address,RCPT);");
	check_commands("LHLO h\xc3\xb6st\r\nNOOP \xff\r\n",
		       "LHLO arg=h\\xc3\\xb6st;NOOP arg=\\xff;");
	check_commands("\xff\xfe\r\nNOOP\r\n", "ERR(unknown,?);NOOP;");
}

/* "NOOP arg=" + n times c + ";" + tail */
static char *
expect_noop(size_t n, char c, const char *tail)
{
	size_t tlen = strlen(tail);
	char *e = malloc(9 + n + 1 + tlen + 1);

	assert_non_null(e);
	memcpy(e, "NOOP arg=", 9);
	memset(e + 9, c, n);
	e[9 + n] = ';';
	memcpy(e + 10 + n, tail, tlen + 1);
	return e;
}

static void
test_line_length(void **state)
{
	char buf[4096];
	char *e;
	size_t n;

	(void)state;
	/* "NOOP " + 993 octets + CRLF = 1000: the limit itself is fine */
	memset(buf, 'x', sizeof(buf));
	memcpy(buf, "NOOP ", 5);
	memcpy(buf + 998, "\r\n", 2);
	e = expect_noop(993, 'x', "");
	check_commands_max(buf, 1000, 1000, e);
	/* one octet more is too long */
	memcpy(buf + 998, "x\r\nNOOP\r\n", 9);
	check_commands_max(buf, 1007, 1000, "ERR(too-long,?);NOOP;");
	/* the limit is on the octets before the terminator, so the same
	 * holds with a bare LF */
	memcpy(buf + 998, "x\nNOOP\n", 7);
	check_commands_max(buf, 1005, 1000, "ERR(too-long,?);NOOP;");
	memcpy(buf + 998, "\nNOOP\n", 6);
	free(e);
	e = expect_noop(993, 'x', "NOOP;");
	check_commands_max(buf, 1004, 1000, e);
	free(e);

	/* a much longer line is skipped without being stored, and the
	 * parser is in step again after it */
	memset(buf, 'A', sizeof(buf));
	n = sizeof(buf) - 16;
	memcpy(buf + n, "\r\nQUIT\r\n", 8);
	check_commands_max(buf, n + 8, 0, "ERR(too-long,?);QUIT;");

	/* a configured limit; below 512 (RFC 5321 §4.5.3.1.4) is raised */
	memset(buf, 'y', sizeof(buf));
	memcpy(buf, "NOOP ", 5);
	memcpy(buf + 600, "\r\n", 2);
	check_commands_max(buf, 602, 600, "ERR(too-long,?);");
	check_commands_max(buf, 602, 100, "ERR(too-long,?);");
	e = expect_noop(595, 'y', "");
	check_commands_max(buf, 602, 602, e);
	free(e);
	memcpy(buf + 510, "\r\n", 2);
	e = expect_noop(505, 'y', "");
	check_commands_max(buf, 512, 100, e);
	free(e);
	/* and above the default, up to the config ceiling */
	memset(buf, 'z', sizeof(buf));
	memcpy(buf, "NOOP ", 5);
	memcpy(buf + 3000, "\r\n", 2);
	e = expect_noop(2995, 'z', "");
	check_commands_max(buf, 3002, 3002, e);
	free(e);
	check_commands_max(buf, 3002, 3001, "ERR(too-long,?);");
}

static void
test_pipelined(void **state)
{
	(void)state;
	check_commands("LHLO x\r\nMAIL FROM:<a@b> SIZE=10\r\n"
		       "RCPT TO:<c@d>\r\nRCPT TO:<bad>\r\nRCPT TO:<e@f>\r\n"
		       "DATA\r\n",
		       "LHLO arg=x;MAIL <a@b> size=10;RCPT <c@d>;"
		       "ERR(address,RCPT);RCPT <e@f>;DATA;");
}

/* ---- message data ---- */

static void
test_data_basic(void **state)
{
	(void)state;
	check_data("Subject: hi\r\n\r\nbody\r\n.\r\n",
		   "[Subject: hi][][body]END rest=0 size=21");
	check_data(".\r\n", "END rest=0 size=0");
	check_data(".\r\nMAIL FROM:<a@b>\r\n", "END rest=17 size=0");
	check_data("a\r\n.\r\n.\r\n", "[a]END rest=3 size=3");
}

static void
test_data_dot_stuffing(void **state)
{
	(void)state;
	/* RFC 5321 §4.5.2: the first dot of a line is dropped */
	check_data("..\r\n...\r\n..x\r\n.x\r\n. \r\nx.\r\n.\r\n",
		   "[.][..][.x][x][ ][x.]END rest=0 size=21");
	/* ".\r" not followed by LF: the dot was stuffing, CR is text */
	check_data(".\rx\r\n.\r\n", "[\\x0dx]END rest=0 size=4");
	check_data(".\r\r\n.\r\n", "[\\x0d]END rest=0 size=3");
	/* a dot in the middle of a line is text */
	check_data("a.\r\nb\r\n.\r\n", "[a.][b]END rest=0 size=7");
	/* BDAT data is not stuffed */
	check_bdat("..x\r\n.\r\n", "[..x][.]END rest=0 size=8");
}

static void
test_data_line_endings(void **state)
{
	(void)state;
	check_data("a\nb\n.\n", "[a][b]END rest=0 size=6");
	check_data("a\r\nb\n.\r\n", "[a][b]END rest=0 size=6");
	check_data("a\n.\r\nrest", "[a]END rest=4 size=3");
	check_data("a\r\n.\nrest", "[a]END rest=4 size=3");
	/* a lone CR is text, CR CR LF is text CR + end of line */
	check_data("a\rb\r\r\n.\r\n", "[a\\x0db\\x0d]END rest=0 size=6");
	check_data("\r\n\n\r\n.\r\n", "[][][]END rest=0 size=6");
	/* the end of data split over reads is covered by the 1- and 7-byte
	 * feeds; here the "." line is the only content */
	check_data("\n.\n", "[]END rest=0 size=2");
	/* nothing is complete yet */
	check_data("a\r\n.", "[a] rest=0 size=3");
	check_data("a\r\n.\r", "[a] rest=0 size=3");
}

static void
test_data_binary(void **state)
{
	static const char input[] = "a\0b\xff\xfe\r\n\0\r\n\xc3\xa9t\xc3\xa9"
				    "\r\n.\r\n";

	(void)state;
	check_data_mode(input, sizeof(input) - 1, true, false,
			"[a\\x00b\\xff\\xfe][\\x00][\\xc3\\xa9t\\xc3\\xa9]END "
			"rest=0 size=17");
}

static void
test_data_long_line(void **state)
{
	size_t n = RB_LMTP_DATA_LINE_MAX + 10;
	char *buf = malloc(n + 16);
	char expected[256];

	(void)state;
	assert_non_null(buf);
	memset(buf, 'x', n);
	memcpy(buf + n, "\r\n.\r\n", 5);
	/* handed out in a piece of RB_LMTP_DATA_LINE_MAX and the rest */
	snprintf(expected, sizeof(expected),
		 "{%u:xxxx..xxxx}[xxxxxxxxxx]END rest=0 size=%zu",
		 (unsigned)RB_LMTP_DATA_LINE_MAX, n + 2);
	check_data_mode(buf, n + 5, true, false, expected);

	/* exactly RB_LMTP_DATA_LINE_MAX: one whole line, no split */
	memcpy(buf + RB_LMTP_DATA_LINE_MAX, "\r\n.\r\n", 5);
	snprintf(expected, sizeof(expected),
		 "[%u:xxxx..xxxx]END rest=0 size=%u",
		 (unsigned)RB_LMTP_DATA_LINE_MAX,
		 (unsigned)RB_LMTP_DATA_LINE_MAX + 2);
	check_data_mode(buf, RB_LMTP_DATA_LINE_MAX + 5, true, false, expected);

	/* a lone CR right at the limit */
	memcpy(buf + RB_LMTP_DATA_LINE_MAX, "\rz\r\n.\r\n", 7);
	snprintf(expected, sizeof(expected),
		 "{%u:xxxx..xxxx}[\\x0dz]END rest=0 size=%u",
		 (unsigned)RB_LMTP_DATA_LINE_MAX,
		 (unsigned)RB_LMTP_DATA_LINE_MAX + 4);
	check_data_mode(buf, RB_LMTP_DATA_LINE_MAX + 7, true, false, expected);
	free(buf);
}

static void
test_bdat_finish(void **state)
{
	(void)state;
	check_bdat("a\r\nb\r\n", "[a][b]END rest=0 size=6");
	check_bdat("a\r\nlast", "[a][last]END rest=0 size=9");
	check_bdat("a\r\nlast\r", "[a][last\\x0d]END rest=0 size=10");
	check_bdat("", "END rest=0 size=0");
	check_bdat(".", "[.]END rest=0 size=3");
	check_bdat("\n.\n", "[][.]END rest=0 size=5");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_commands),
		cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_bdat),
		cmocka_unit_test(test_line_endings),
		cmocka_unit_test(test_nul_and_8bit),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_data_basic),
		cmocka_unit_test(test_data_dot_stuffing),
		cmocka_unit_test(test_data_line_endings),
		cmocka_unit_test(test_data_binary),
		cmocka_unit_test(test_data_long_line),
		cmocka_unit_test(test_bdat_finish),
	};

	return cmocka_run_group_tests_name("lmtp_parse", tests, NULL, NULL);
}
