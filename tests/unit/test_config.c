/* Config parsing: values, defaults, and errors naming file, line and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"

static int
parse(const char *text, struct rb_config *cfg, char **err)
{
	rb_config_defaults(cfg);
	*err = NULL;
	return rb_config_parse("t.conf", text, strlen(text), cfg, err);
}

static void
test_defaults(void **state)
{
	struct rb_config cfg;
	char *err;

	(void)state;
	assert_int_equal(parse("", &cfg, &err), 0);
	assert_string_equal(cfg.general.data_dir, "/var/lib/roost");
	assert_null(cfg.general.mail_user);
	assert_int_equal(cfg.lmtp.listen.count, 1);
	assert_string_equal(cfg.lmtp.listen.addr[0].port, "24");
	assert_true(cfg.delivery.add_received);
	assert_string_equal(cfg.delivery.recipient_delimiter, "+");
	assert_int_equal(cfg.delivery.quota_full, RB_QUOTA_FULL_TEMPFAIL);
	rb_config_free(&cfg);
}

static void
test_values(void **state)
{
	struct rb_config cfg;
	char *err;
	const char *text =
		"# comment\n"
		"; another\n"
		"[general]\n"
		"  data_dir =  /srv/mail  # where mail lives\n"
		"mail_user=vmail\r\n"
		"log = syslog\n"
		"log_level = debug\n"
		"\n"
		"[lmtp]\n"
		"listen = 127.0.0.1:2024, unix:/run/roost/lmtp.sock, [::1]:24\n"
		"max_message_size = 10M\n"
		"workers = 4\n"
		"[delivery]\n"
		"recipient_delimiter = +-\t# two\n"
		"quota_full = reject\n"
		"add_received = no\n"
		"[quota]\n"
		"default_bytes = 1G\n"
		"default_messages = 1000\n"
		"[auth]\n"
		"localpart_case = sensitive\n"
		"allow_plaintext = loopback\n";

	(void)state;
	assert_int_equal(parse(text, &cfg, &err), 0);
	assert_string_equal(cfg.general.data_dir, "/srv/mail");
	assert_string_equal(cfg.general.mail_user, "vmail");
	assert_int_equal(cfg.general.log, RB_LOG_SYSLOG);
	assert_int_equal(cfg.general.log_level, RB_LOG_DEBUG);
	assert_int_equal(cfg.lmtp.listen.count, 3);
	assert_false(cfg.lmtp.listen.addr[0].is_unix);
	assert_string_equal(cfg.lmtp.listen.addr[0].host, "127.0.0.1");
	assert_string_equal(cfg.lmtp.listen.addr[0].port, "2024");
	assert_true(cfg.lmtp.listen.addr[1].is_unix);
	assert_string_equal(cfg.lmtp.listen.addr[1].path,
			    "/run/roost/lmtp.sock");
	assert_string_equal(cfg.lmtp.listen.addr[2].host, "::1");
	assert_int_equal(cfg.lmtp.max_message_size, 10 * 1024 * 1024);
	assert_int_equal(cfg.lmtp.workers, 4);
	assert_string_equal(cfg.delivery.recipient_delimiter, "+-");
	assert_int_equal(cfg.delivery.quota_full, RB_QUOTA_FULL_REJECT);
	assert_false(cfg.delivery.add_received);
	assert_int_equal(cfg.quota.default_bytes, 1024ULL * 1024 * 1024);
	assert_int_equal(cfg.quota.default_messages, 1000);
	assert_true(cfg.auth.localpart_case_sensitive);
	assert_int_equal(cfg.auth.allow_plaintext, RB_PLAINTEXT_LOOPBACK);
	rb_config_free(&cfg);
}

/* Each bad input must fail and the message must contain `want`. */
static void
expect_error(const char *text, const char *want)
{
	struct rb_config cfg;
	char *err;

	assert_int_equal(parse(text, &cfg, &err), -1);
	assert_non_null(err);
	if (strstr(err, want) == NULL)
		fail_msg("error '%s' does not contain '%s'", err, want);
	free(err);
	rb_config_free(&cfg);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("[general]\nbogus = 1\n",
		     "t.conf:2: unknown key 'bogus' in [general]");
	expect_error("\n\n[nosuch]\n", "t.conf:3: unknown section [nosuch]");
	expect_error("data_dir = /x\n", "t.conf:1: key 'data_dir' outside");
	expect_error("[lmtp]\nworkers = many\n",
		     "t.conf:2: bad value for 'workers' in [lmtp]");
	expect_error("[lmtp]\nworkers = 0\n", "t.conf:2: bad value");
	expect_error("[lmtp]\n\n\nmax_message_size = 12Q\n",
		     "t.conf:4: bad value for 'max_message_size'");
	expect_error("[lmtp]\nlisten = 127.0.0.1\n",
		     "t.conf:2: bad value for 'listen'");
	expect_error("[lmtp]\nlisten = 127.0.0.1:99999\n", "port");
	expect_error("[delivery]\nquota_full = maybe\n",
		     "must be tempfail or reject");
	expect_error("[delivery]\nadd_received = perhaps\n", "yes or no");
	expect_error("[general]\njunk line\n", "t.conf:2: expected");
	expect_error("[general\n", "t.conf:1: malformed section");
	expect_error("[general]\ndata_dir =\n", "empty value");
	expect_error("[tls]\nmin_version = 1.0\n", "1.2 or 1.3");
}

static void
test_long_line(void **state)
{
	size_t n = RB_CONFIG_LINE_MAX + 10;
	char *text = malloc(n + 32);

	(void)state;
	strcpy(text, "[general]\nhostname = ");
	memset(text + strlen(text), 'a', n);
	text[21 + n] = '\0';
	expect_error(text, "t.conf:2: line longer");
	free(text);
}

static void
test_missing_file(void **state)
{
	struct rb_config cfg;
	char *err = NULL;

	(void)state;
	rb_config_defaults(&cfg);
	assert_int_equal(rb_config_load("/nonexistent/roost.conf", &cfg,
					&err), -1);
	assert_non_null(strstr(err, "/nonexistent/roost.conf"));
	free(err);
	rb_config_free(&cfg);
}

static void
test_load_file(void **state)
{
	char path[] = "/tmp/roost-conf-XXXXXX";
	int fd = mkstemp(path);
	const char *text = "[general]\nhostname = mx.example\n[lmtp]\nx = 1\n";
	struct rb_config cfg;
	char *err = NULL;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (int)strlen(text));
	close(fd);
	rb_config_defaults(&cfg);
	assert_int_equal(rb_config_load(path, &cfg, &err), -1);
	char want[128];
	snprintf(want, sizeof(want), "%s:4: unknown key 'x' in [lmtp]", path);
	assert_string_equal(err, want);
	free(err);
	rb_config_free(&cfg);
	unlink(path);
}

static void
test_buf_limit(void **state)
{
	struct rb_buf b;

	(void)state;
	rb_buf_init(&b, 8);
	assert_int_equal(rb_buf_append(&b, "12345", 5), 0);
	assert_int_equal(rb_buf_append(&b, "6789", 4), -1);
	assert_int_equal(b.len, 5);
	assert_int_equal(rb_buf_printf(&b, "%d", 678), 0);
	assert_memory_equal(b.data, "12345678", 8);
	assert_int_equal(rb_buf_printf(&b, "x"), -1);
	rb_buf_consume(&b, 3);
	assert_memory_equal(b.data, "45678", 5);
	rb_buf_free(&b);
}

static void
test_escape(void **state)
{
	char out[16];

	(void)state;
	assert_string_equal(rb_log_escape("a\r\nb", 4, out, sizeof(out)),
			    "a\\x0d\\x0ab");
	assert_string_equal(rb_log_escape("abcdefghijklmnopq", 17, out,
					  sizeof(out)), "abcdefghijkl...");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_line),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_buf_limit),
		cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
