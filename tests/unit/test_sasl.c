/*
 * The Cyrus SASL glue (auth/auth_sasl.c): PLAIN (RFC 4616) and LOGIN
 * exchanges against a users.db in a temporary directory.  Base64 and the
 * "*" cancel belong to the protocols and are tested there.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "common/common.h"

struct fixture {
	char dir[64];
	char path[128];
	struct auth_db *db;
};

static int
setup(void **state)
{
	struct fixture *f = rb_calloc(1, sizeof(*f));
	const char *error;

	(void)rb_strlcpy(f->dir, "/tmp/roost-sasl-XXXXXX", sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(rb_snprintf(f->path, sizeof(f->path), "%s/users.db",
				     f->dir), 0);
	assert_int_equal(auth_db_open(f->path, true, false, &f->db, &error),
			 AUTH_OK);
	assert_int_equal(auth_user_add(f->db, "u@example.test", "secret pw",
				       AUTH_QUOTA_DEFAULT,
				       AUTH_QUOTA_DEFAULT), AUTH_OK);
	assert_int_equal(auth_user_add(f->db, "v@example.test", "other",
				       AUTH_QUOTA_DEFAULT,
				       AUTH_QUOTA_DEFAULT), AUTH_OK);
	assert_int_equal(auth_user_add(f->db, "off@example.test", "secret pw",
				       AUTH_QUOTA_DEFAULT,
				       AUTH_QUOTA_DEFAULT), AUTH_OK);
	assert_int_equal(auth_user_set_enabled(f->db, "off@example.test",
					       false), AUTH_OK);
	assert_int_equal(auth_sasl_global_init(&error), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	auth_db_close(&f->db);
	assert_int_equal(rb_snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir),
			 0);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct auth_sasl *
new_sasl(struct fixture *f, const char *mechs)
{
	struct auth_sasl *s;

	assert_int_equal(auth_sasl_new(f->db, "pop", mechs, "127.0.0.1;110",
				       "127.0.0.1;40000", &s), AUTH_OK);
	assert_non_null(s);
	return s;
}

/* authzid NUL authcid NUL passwd */
static enum auth_sasl_result
plain(struct fixture *f, const char *authz, const char *authc,
      const char *pw, const char **user_r)
{
	char msg[512];
	size_t n = 0;
	struct auth_sasl *s = new_sasl(f, "PLAIN LOGIN");
	enum auth_sasl_result r;
	const void *out;
	size_t outlen;
	static char user[RB_ADDR_MAX + 1];

	memcpy(msg + n, authz, strlen(authz));
	n += strlen(authz);
	msg[n++] = '\0';
	memcpy(msg + n, authc, strlen(authc));
	n += strlen(authc);
	msg[n++] = '\0';
	memcpy(msg + n, pw, strlen(pw));
	n += strlen(pw);
	r = auth_sasl_start(s, "PLAIN", true, msg, n, &out, &outlen);
	user[0] = '\0';
	if (r == AUTH_SASL_OK)
		(void)rb_strlcpy(user, auth_sasl_user(s), sizeof(user));
	else
		assert_null(auth_sasl_user(s));
	auth_sasl_free(&s);
	assert_null(s);
	if (user_r != NULL)
		*user_r = user;
	return r;
}

static void
test_mechanisms(void **state)
{
	struct fixture *f = *state;
	struct auth_sasl *s;

	s = new_sasl(f, "PLAIN LOGIN");
	assert_string_equal(auth_sasl_mechanisms(s), "PLAIN LOGIN");
	auth_sasl_free(&s);
	/* only what we can serve from users.db, in configured order */
	s = new_sasl(f, "login SCRAM-SHA-256 CRAM-MD5 plain DIGEST-MD5");
	assert_string_equal(auth_sasl_mechanisms(s), "LOGIN PLAIN");
	auth_sasl_free(&s);
	s = new_sasl(f, "LOGIN");
	assert_string_equal(auth_sasl_mechanisms(s), "LOGIN");
	{
		const void *out;
		size_t outlen;

		assert_int_equal(auth_sasl_start(s, "PLAIN", false, NULL, 0,
						 &out, &outlen),
				 AUTH_SASL_NOMECH);
		assert_int_equal(auth_sasl_start(s, "CRAM-MD5", false, NULL,
						 0, &out, &outlen),
				 AUTH_SASL_NOMECH);
	}
	auth_sasl_free(&s);
	s = new_sasl(f, "");
	assert_string_equal(auth_sasl_mechanisms(s), "");
	auth_sasl_free(&s);
}

static void
test_plain_ok(void **state)
{
	struct fixture *f = *state;
	const char *user;

	assert_int_equal(plain(f, "", "u@example.test", "secret pw", &user),
			 AUTH_SASL_OK);
	assert_string_equal(user, "u@example.test");
	/* canonical form of the address */
	assert_int_equal(plain(f, "", "U@Example.TEST", "secret pw", &user),
			 AUTH_SASL_OK);
	assert_string_equal(user, "u@example.test");
	/* authzid equal to authcid is fine */
	assert_int_equal(plain(f, "u@example.test", "u@example.test",
			       "secret pw", &user), AUTH_SASL_OK);
	assert_string_equal(user, "u@example.test");
	assert_int_equal(plain(f, "U@EXAMPLE.test", "u@example.test",
			       "secret pw", &user), AUTH_SASL_OK);
}

static void
test_plain_fail(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(plain(f, "", "u@example.test", "wrong", NULL),
			 AUTH_SASL_FAILED);
	assert_int_equal(plain(f, "", "u@example.test", "secret p", NULL),
			 AUTH_SASL_FAILED);
	assert_int_equal(plain(f, "", "nobody@example.test", "secret pw",
			       NULL), AUTH_SASL_FAILED);
	assert_int_equal(plain(f, "", "not an address", "secret pw", NULL),
			 AUTH_SASL_FAILED);
	assert_int_equal(plain(f, "", "off@example.test", "secret pw", NULL),
			 AUTH_SASL_FAILED);
	/* no proxy authentication, even with the right password */
	assert_int_equal(plain(f, "v@example.test", "u@example.test",
			       "secret pw", NULL), AUTH_SASL_FAILED);
}

static void
test_plain_malformed(void **state)
{
	struct fixture *f = *state;
	struct auth_sasl *s = new_sasl(f, "PLAIN");
	const void *out;
	size_t outlen;
	enum auth_sasl_result r;

	/* no NUL separators */
	r = auth_sasl_start(s, "PLAIN", true, "garbage", 7, &out, &outlen);
	assert_true(r == AUTH_SASL_BAD || r == AUTH_SASL_FAILED);
	auth_sasl_free(&s);
	/* empty initial response ("=") */
	s = new_sasl(f, "PLAIN");
	r = auth_sasl_start(s, "PLAIN", true, "", 0, &out, &outlen);
	assert_true(r != AUTH_SASL_OK);
	auth_sasl_free(&s);
	/* a password with a NUL in it */
	s = new_sasl(f, "PLAIN");
	r = auth_sasl_start(s, "PLAIN", true, "\0u@example.test\0se\0cret",
			    23, &out, &outlen);
	assert_true(r == AUTH_SASL_BAD || r == AUTH_SASL_FAILED);
	auth_sasl_free(&s);
}

static void
test_plain_challenge(void **state)
{
	struct fixture *f = *state;
	struct auth_sasl *s = new_sasl(f, "PLAIN LOGIN");
	static const char msg[] = "\0u@example.test\0secret pw";
	const void *out;
	size_t outlen;

	/* no initial response: an empty challenge first (RFC 4422 §5) */
	assert_int_equal(auth_sasl_start(s, "PLAIN", false, NULL, 0, &out,
					 &outlen), AUTH_SASL_CONTINUE);
	assert_int_equal(outlen, 0);
	assert_int_equal(auth_sasl_step(s, msg, sizeof(msg) - 1, &out,
					&outlen), AUTH_SASL_OK);
	assert_string_equal(auth_sasl_user(s), "u@example.test");
	auth_sasl_free(&s);
}

static enum auth_sasl_result
login(struct fixture *f, const char *user, const char *pw)
{
	struct auth_sasl *s = new_sasl(f, "PLAIN LOGIN");
	const void *out;
	size_t outlen;
	enum auth_sasl_result r;

	r = auth_sasl_start(s, "LOGIN", false, NULL, 0, &out, &outlen);
	assert_int_equal(r, AUTH_SASL_CONTINUE);
	assert_int_equal(outlen, 9);
	assert_memory_equal(out, "Username:", 9);
	r = auth_sasl_step(s, user, strlen(user), &out, &outlen);
	assert_int_equal(r, AUTH_SASL_CONTINUE);
	assert_int_equal(outlen, 9);
	assert_memory_equal(out, "Password:", 9);
	r = auth_sasl_step(s, pw, strlen(pw), &out, &outlen);
	if (r == AUTH_SASL_OK)
		assert_string_equal(auth_sasl_user(s), "u@example.test");
	auth_sasl_free(&s);
	return r;
}

static void
test_login(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(login(f, "u@example.test", "secret pw"),
			 AUTH_SASL_OK);
	assert_int_equal(login(f, "U@EXAMPLE.TEST", "secret pw"),
			 AUTH_SASL_OK);
	assert_int_equal(login(f, "u@example.test", "nope"),
			 AUTH_SASL_FAILED);
	assert_int_equal(login(f, "x@example.test", "secret pw"),
			 AUTH_SASL_FAILED);
}

static void
test_login_initial_response(void **state)
{
	struct fixture *f = *state;
	struct auth_sasl *s = new_sasl(f, "LOGIN");
	const void *out;
	size_t outlen;
	enum auth_sasl_result r;

	/* the user name as initial response: straight to Password: */
	r = auth_sasl_start(s, "LOGIN", true, "u@example.test", 14, &out,
			    &outlen);
	assert_int_equal(r, AUTH_SASL_CONTINUE);
	assert_memory_equal(out, "Password:", 9);
	r = auth_sasl_step(s, "secret pw", 9, &out, &outlen);
	assert_int_equal(r, AUTH_SASL_OK);
	/* no second authentication on one exchange */
	r = auth_sasl_start(s, "LOGIN", false, NULL, 0, &out, &outlen);
	assert_int_equal(r, AUTH_SASL_NOMECH);
	auth_sasl_free(&s);
}

static void
test_retry_after_failure(void **state)
{
	struct fixture *f = *state;
	struct auth_sasl *s = new_sasl(f, "PLAIN LOGIN");
	static const char bad[] = "\0u@example.test\0bad";
	static const char good[] = "\0u@example.test\0secret pw";
	const void *out;
	size_t outlen;

	/* RFC 5034 §4: after a failed AUTH the client may try again */
	assert_int_equal(auth_sasl_start(s, "PLAIN", true, bad,
					 sizeof(bad) - 1, &out, &outlen),
			 AUTH_SASL_FAILED);
	assert_int_equal(auth_sasl_start(s, "PLAIN", true, good,
					 sizeof(good) - 1, &out, &outlen),
			 AUTH_SASL_OK);
	auth_sasl_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mechanisms),
		cmocka_unit_test(test_plain_ok),
		cmocka_unit_test(test_plain_fail),
		cmocka_unit_test(test_plain_malformed),
		cmocka_unit_test(test_plain_challenge),
		cmocka_unit_test(test_login),
		cmocka_unit_test(test_login_initial_response),
		cmocka_unit_test(test_retry_after_failure),
	};

	rb_log_init("test_sasl", RB_LOG_STDERR, RB_LOG_WARNING);
	return cmocka_run_group_tests_name("sasl", tests, setup, teardown);
}
