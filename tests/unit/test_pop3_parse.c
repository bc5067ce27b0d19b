/*
 * The POP3 command parser.  Every input is fed whole and one byte at a
 * time (and in two arbitrary halves), and each way must give the same
 * results (Dovecot's trick, STYLE.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "pop3d/pop3d.h"

#define OUT_MAX 8192

/* One line per result: "ret VERB err argc arg|arg2|msg|lines". */
static void
describe(int ret, const struct pop3_cmd *cmd, struct rb_buf *out)
{
	assert_int_equal(rb_buf_printf(out, "%d %s %d %u %s|%s|%u|%llu\n",
				       ret, pop3_verb_name(cmd->verb),
				       (int)cmd->error, cmd->argc, cmd->arg,
				       cmd->arg2 != NULL ? cmd->arg2 : "-",
				       cmd->msg,
				       (unsigned long long)cmd->lines), 0);
	if (ret < 0)
		assert_non_null(cmd->error_text);
}

/* Feeds data in pieces of at most step octets (0: whole). */
static void
feed(const char *data, size_t len, size_t step, bool sasl,
     struct rb_buf *out)
{
	struct pop3_parser *p = rb_calloc(1, sizeof(*p));
	size_t off = 0;

	pop3_parser_init(p);
	pop3_parser_set_sasl(p, sasl);
	while (off < len) {
		size_t n = step == 0 || len - off < step ? len - off : step;
		/* copy so that ASan sees reads past the piece */
		char *piece = rb_malloc(n);

		memcpy(piece, data + off, n);
		while (n > 0) {
			struct pop3_cmd cmd;
			size_t consumed;
			int ret;

			ret = pop3_parse(p, piece, n, &consumed, &cmd);
			assert_true(consumed <= n);
			if (ret != 0) {
				describe(ret, &cmd, out);
			} else {
				assert_int_equal(consumed, n);
			}
			memmove(piece, piece + consumed, n - consumed);
			n -= consumed;
			off += consumed;
		}
		free(piece);
	}
	free(p);
}

static void
check_len(const char *in, size_t len, bool sasl, const char *expected)
{
	struct rb_buf whole, bytes, halves;

	rb_buf_init(&whole, 1 << 20);
	rb_buf_init(&bytes, 1 << 20);
	rb_buf_init(&halves, 1 << 20);
	feed(in, len, 0, sasl, &whole);
	feed(in, len, 1, sasl, &bytes);
	feed(in, len, len / 2 + 1, sasl, &halves);
	assert_string_equal((const char *)bytes.data == NULL ? "" :
			    (const char *)bytes.data,
			    whole.data == NULL ? "" :
			    (const char *)whole.data);
	assert_string_equal(halves.data == NULL ? "" :
			    (const char *)halves.data,
			    whole.data == NULL ? "" :
			    (const char *)whole.data);
	if (expected != NULL)
		assert_string_equal(whole.data == NULL ? "" :
				    (const char *)whole.data, expected);
	rb_buf_free(&whole);
	rb_buf_free(&bytes);
	rb_buf_free(&halves);
}

static void
check(const char *in, const char *expected)
{
	check_len(in, strlen(in), false, expected);
}

static void
test_simple(void **state)
{
	(void)state;
	check("STAT\r\n", "1 STAT 0 0 |-|0|0\n");
	check("stat\r\n", "1 STAT 0 0 |-|0|0\n");
	check("NoOp\n", "1 NOOP 0 0 |-|0|0\n");
	check("QUIT\r\nRSET\r\nCAPA\r\nSTLS\r\n",
	      "1 QUIT 0 0 |-|0|0\n1 RSET 0 0 |-|0|0\n"
	      "1 CAPA 0 0 |-|0|0\n1 STLS 0 0 |-|0|0\n");
	/* no input, partial input: nothing yet */
	check("", "");
	check("STA", "");
}

static void
test_numbers(void **state)
{
	(void)state;
	check("LIST\r\n", "1 LIST 0 0 |-|0|0\n");
	check("LIST 1\r\n", "1 LIST 0 1 |-|1|0\n");
	check("list  42 \r\n", "1 LIST 0 1 |-|42|0\n");
	check("RETR 4294967295\r\n", "1 RETR 0 1 |-|4294967295|0\n");
	check("RETR 4294967296\r\n", "-1 RETR 3 1 |-|0|0\n");
	check("RETR\r\n", "-1 RETR 3 0 |-|0|0\n");
	check("RETR 1 2\r\n", "-1 RETR 3 0 |-|0|0\n");
	check("RETR -1\r\n", "-1 RETR 3 1 |-|0|0\n");
	check("RETR +1\r\n", "-1 RETR 3 1 |-|0|0\n");
	check("RETR 1x\r\n", "-1 RETR 3 1 |-|0|0\n");
	check("DELE 0\r\n", "1 DELE 0 1 |-|0|0\n");
	check("TOP 3 10\r\n", "1 TOP 0 2 |-|3|10\n");
	check("TOP 3 18446744073709551615\r\n",
	      "1 TOP 0 2 |-|3|18446744073709551615\n");
	check("TOP 3 18446744073709551616\r\n", "-1 TOP 3 2 |-|3|0\n");
	check("TOP 3\r\n", "-1 TOP 3 0 |-|0|0\n");
	check("UIDL\r\nUIDL 7\r\n",
	      "1 UIDL 0 0 |-|0|0\n1 UIDL 0 1 |-|7|0\n");
	check("STAT 1\r\n", "-1 STAT 3 0 |-|0|0\n");
}

static void
test_user_pass(void **state)
{
	(void)state;
	check("USER u@example.test\r\n", "1 USER 0 1 u@example.test|-|0|0\n");
	check("PASS pass word \r\n", "1 PASS 0 1 pass word |-|0|0\n");
	check("PASS  lead\r\n", "1 PASS 0 1  lead|-|0|0\n");
	check("PASS\r\n", "-1 PASS 3 0 |-|0|0\n");
	check("PASS \r\n", "-1 PASS 3 0 |-|0|0\n");
	check("USER\r\n", "-1 USER 3 0 |-|0|0\n");
	check("APOP u 0123\r\n", "1 APOP 0 2 u|0123|0|0\n");
}

static void
test_auth(void **state)
{
	(void)state;
	check("AUTH\r\n", "1 AUTH 0 0 |-|0|0\n");
	check("AUTH PLAIN\r\n", "1 AUTH 0 1 PLAIN|-|0|0\n");
	check("AUTH PLAIN =\r\n", "1 AUTH 0 2 PLAIN|=|0|0\n");
	check("AUTH PLAIN AGEAYg==\r\n", "1 AUTH 0 2 PLAIN|AGEAYg==|0|0\n");
	check("AUTH PLAIN a b\r\n", "-1 AUTH 3 0 |-|0|0\n");
	check("AUTH 0123456789012345678901234567890123456789X\r\n",
	      "-1 AUTH 3 1 0123456789012345678901234567890123456789X|-|0|0\n");
}

static void
test_errors(void **state)
{
	(void)state;
	check("\r\n", "-1 ? 2 0 |-|0|0\n");
	check("FOO\r\n", "-1 ? 2 0 |-|0|0\n");
	check("STATS\r\n", "-1 ? 2 0 |-|0|0\n");
	check(" STAT\r\n", "-1 ? 2 0 |-|0|0\n");
	check("ST\rAT\r\n", "-1 ? 3 0 |-|0|0\n");
	check("STAT\r\r\n", "-1 ? 3 0 |-|0|0\n");
	check_len("US\0ER x\r\nNOOP\r\n", 15, false,
		  "-1 ? 3 0 |-|0|0\n1 NOOP 0 0 |-|0|0\n");
	/* the parser recovers after each error */
	check("FOO\r\nSTAT\r\n", "-1 ? 2 0 |-|0|0\n1 STAT 0 0 |-|0|0\n");
}

static void
test_line_length(void **state)
{
	char line[1200];

	(void)state;
	/* 253 octets + CRLF = 255: the longest line allowed */
	memset(line, 'x', sizeof(line));
	memcpy(line, "PASS ", 5);
	memcpy(line + 253, "\r\n", 3);
	check_len(line, 255, false, NULL);
	{
		struct pop3_parser p;
		struct pop3_cmd cmd;
		size_t consumed;

		pop3_parser_init(&p);
		assert_int_equal(pop3_parse(&p, line, 255, &consumed, &cmd),
				 1);
		assert_int_equal(consumed, 255);
		assert_int_equal(strlen(cmd.arg), 248);
		/* bare LF: 253 octets + LF is fine, 254 is not */
		memcpy(line + 253, "\n", 1);
		assert_int_equal(pop3_parse(&p, line, 254, &consumed, &cmd),
				 1);
		line[253] = 'x';
		line[254] = '\n';
		assert_int_equal(pop3_parse(&p, line, 255, &consumed, &cmd),
				 -1);
		assert_int_equal(cmd.error, POP3_PERR_TOO_LONG);
	}
	/* 254 octets + CRLF: too long, and the next line still works */
	memset(line, 'x', sizeof(line));
	memcpy(line, "PASS ", 5);
	memcpy(line + 254, "\r\nNOOP\r\n", 8);
	check_len(line, 262, false, "-1 ? 1 0 |-|0|0\n1 NOOP 0 0 |-|0|0\n");
	/* much longer */
	memset(line, 'x', sizeof(line));
	memcpy(line + 1100, "\r\nSTAT\r\n", 8);
	check_len(line, 1108, false, "-1 ? 1 0 |-|0|0\n1 STAT 0 0 |-|0|0\n");
}

static void
test_sasl_mode(void **state)
{
	char line[RB_POP3_SASL_LINE_MAX + 16];

	(void)state;
	check_len("AGEAYg==\r\n", 10, true,
		  "1 (sasl) 0 1 AGEAYg==|-|0|0\n");
	check_len("*\r\n", 3, true, "1 (sasl) 0 1 *|-|0|0\n");
	check_len("\r\n", 2, true, "1 (sasl) 0 1 |-|0|0\n");
	check_len("a\0b\r\n", 5, true, "-1 (sasl) 3 0 a|-|0|0\n");
	/* responses may be longer than commands */
	memset(line, 'A', sizeof(line));
	memcpy(line + RB_POP3_SASL_LINE_MAX - 2, "\r\n", 2);
	check_len(line, RB_POP3_SASL_LINE_MAX, true, NULL);
	memcpy(line + RB_POP3_SASL_LINE_MAX - 2, "A\r\n", 3);
	check_len(line, RB_POP3_SASL_LINE_MAX + 1, true,
		  "-1 (sasl) 1 0 |-|0|0\n");
}

static void
test_mode_switch(void **state)
{
	struct pop3_parser p;
	struct pop3_cmd cmd;
	const char *in = "AUTH PLAIN\r\nAGEAYg==\r\nSTAT\r\n";
	size_t consumed, off = 0, len = strlen(in);

	(void)state;
	pop3_parser_init(&p);
	assert_int_equal(pop3_parse(&p, in, len, &consumed, &cmd), 1);
	assert_int_equal(cmd.verb, POP3_VERB_AUTH);
	off += consumed;
	pop3_parser_set_sasl(&p, true);
	assert_int_equal(pop3_parse(&p, in + off, len - off, &consumed, &cmd),
			 1);
	assert_int_equal(cmd.verb, POP3_VERB_SASL_RESPONSE);
	assert_string_equal(cmd.arg, "AGEAYg==");
	off += consumed;
	pop3_parser_set_sasl(&p, false);
	assert_int_equal(pop3_parse(&p, in + off, len - off, &consumed, &cmd),
			 1);
	assert_int_equal(cmd.verb, POP3_VERB_STAT);
	assert_int_equal(off + consumed, len);
	/* reset drops a partial line */
	assert_int_equal(pop3_parse(&p, "NO", 2, &consumed, &cmd), 0);
	pop3_parser_reset(&p);
	assert_int_equal(pop3_parse(&p, "STAT\r\n", 6, &consumed, &cmd), 1);
	assert_int_equal(cmd.verb, POP3_VERB_STAT);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_user_pass),
		cmocka_unit_test(test_auth),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_sasl_mode),
		cmocka_unit_test(test_mode_switch),
	};

	return cmocka_run_group_tests_name("pop3_parse", tests, NULL, NULL);
}
