/*
 * auth/: password formats, users, aliases, domains, resolution.
 *
 * Every test gets a fresh users.db in its own temporary directory.  Hash
 * vectors for the imported crypt formats are made here with libcrypt and
 * fixed or freshly generated settings, so the test does not depend on
 * hashes copied from elsewhere.
 */
#include <crypt.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "auth/auth_int.h"

struct fixture {
	char dir[64];
	char path[128];
	struct auth_db *db;
};

static int
remove_tree(const char *dir)
{
	static const char *const names[] = {
		"users.db", "users.db-wal", "users.db-shm", "cs.db",
		"cs.db-wal", "cs.db-shm", "raw.db", "raw.db-wal", "raw.db-shm",
	};
	char path[160];
	size_t i;

	for (i = 0; i < RB_N_ELEMENTS(names); i++) {
		if (rb_snprintf(path, sizeof(path), "%s/%s", dir, names[i]) == 0)
			(void)unlink(path);
	}
	return rmdir(dir);
}

static int
setup(void **state)
{
	struct fixture *f = rb_calloc(1, sizeof(*f));
	const char *error;

	rb_strlcpy(f->dir, "/tmp/roost-test-auth-XXXXXX", sizeof(f->dir));
	if (mkdtemp(f->dir) == NULL)
		return -1;
	rb_snprintf(f->path, sizeof(f->path), "%s/users.db", f->dir);
	if (auth_db_open(f->path, true, false, &f->db, &error) != AUTH_OK) {
		fprintf(stderr, "open: %s\n", error);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	auth_db_close(&f->db);
	remove_tree(f->dir);
	free(f);
	return 0;
}

static double
elapsed_ms(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 +
		(double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static double
min_ms(double a, double b)
{
	return a < b ? a : b;
}

/* ---- passwords ---- */

static void
test_hash_roundtrip(void **state)
{
	char *h1, *h2;

	(void)state;
	assert_int_equal(auth_password_hash("correct horse", &h1), 0);
	assert_non_null(h1);
	assert_true(strncmp(h1, "$scrypt$ln=14,r=8,p=1$", 22) == 0);
	assert_true(auth_password_hash_valid(h1));
	assert_true(auth_password_verify(h1, "correct horse"));
	assert_false(auth_password_verify(h1, "correct horsf"));
	assert_false(auth_password_verify(h1, "correct hors"));
	assert_false(auth_password_verify(h1, "correct horse "));
	assert_false(auth_password_verify(h1, "Correct horse"));
	/* A fresh salt every time. */
	assert_int_equal(auth_password_hash("correct horse", &h2), 0);
	assert_string_not_equal(h1, h2);
	assert_true(auth_password_verify(h2, "correct horse"));
	free(h1);
	free(h2);
}

static void
test_hash_utf8_and_long(void **state)
{
	char pw[RB_PASSWORD_MAX + 1];
	char *h;

	(void)state;
	assert_int_equal(auth_password_hash("p\xc3\xa4ssw\xc3\xb6rd", &h), 0);
	assert_true(auth_password_verify(h, "p\xc3\xa4ssw\xc3\xb6rd"));
	assert_false(auth_password_verify(h, "passw\xc3\xb6rd"));
	free(h);

	memset(pw, 'a', RB_PASSWORD_MAX);
	pw[RB_PASSWORD_MAX] = '\0';
	assert_int_equal(auth_password_hash(pw, &h), 0);
	assert_true(auth_password_verify(h, pw));
	pw[RB_PASSWORD_MAX - 1] = 'b';
	assert_false(auth_password_verify(h, pw));
	free(h);
}

/* Makes crypt(pw, setting) and checks it verifies, and that a wrong
 * password and each Dovecot prefix in prefixes behave. */
static void
check_crypt_vector(const char *setting, const char *pw,
		   const char *const *prefixes, size_t nprefixes)
{
	struct crypt_data *cd = rb_calloc(1, sizeof(*cd));
	char with[RB_HASH_MAX + 1];
	const char *hash;
	size_t i;

	hash = crypt_r(pw, setting, cd);
	assert_non_null(hash);
	assert_true(hash[0] == '$');
	assert_true(auth_password_hash_valid(hash));
	assert_true(auth_password_verify(hash, pw));
	assert_false(auth_password_verify(hash, "wrong"));
	assert_false(auth_password_verify(hash, ""));

	for (i = 0; i < nprefixes; i++) {
		assert_int_equal(rb_snprintf(with, sizeof(with), "%s%s",
					     prefixes[i], hash), 0);
		assert_true(auth_password_hash_valid(with));
		assert_true(auth_password_verify(with, pw));
		assert_false(auth_password_verify(with, "wrong"));
	}
	free(cd);
}

static void
test_crypt_sha512(void **state)
{
	static const char *const pfx[] = {
		"{SHA512-CRYPT}", "{sha512-crypt}", "{CRYPT}",
	};

	(void)state;
	check_crypt_vector("$6$saltsalt$", "s3cret", pfx, RB_N_ELEMENTS(pfx));
	check_crypt_vector("$6$rounds=6000$saltsaltsaltsalt$", "s3cret", pfx,
			   RB_N_ELEMENTS(pfx));
}

static void
test_crypt_sha256(void **state)
{
	static const char *const pfx[] = { "{SHA256-CRYPT}", "{CRYPT}" };

	(void)state;
	check_crypt_vector("$5$saltsalt$", "s3cret", pfx, RB_N_ELEMENTS(pfx));
}

static void
test_crypt_bcrypt(void **state)
{
	static const char *const pfx[] = { "{BLF-CRYPT}", "{CRYPT}" };
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	(void)state;
	assert_non_null(crypt_gensalt_rn("$2b$", 5, NULL, 0, setting,
					 sizeof(setting)));
	check_crypt_vector(setting, "s3cret", pfx, RB_N_ELEMENTS(pfx));
	assert_non_null(crypt_gensalt_rn("$2y$", 5, NULL, 0, setting,
					 sizeof(setting)));
	assert_true(strncmp(setting, "$2y$05$", 7) == 0);
	check_crypt_vector(setting, "s3cret", pfx, RB_N_ELEMENTS(pfx));
}

static void
test_crypt_yescrypt(void **state)
{
	static const char *const pfx[] = { "{CRYPT}" };
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	(void)state;
	assert_non_null(crypt_gensalt_rn("$y$", 0, NULL, 0, setting,
					 sizeof(setting)));
	check_crypt_vector(setting, "s3cret", pfx, RB_N_ELEMENTS(pfx));
}

static void
test_malformed_hashes(void **state)
{
	struct crypt_data *cd = rb_calloc(1, sizeof(*cd));
	char good6[CRYPT_OUTPUT_SIZE], buf[RB_HASH_MAX + 64];
	char *scrypt;
	size_t i, len;
	const char *bad[] = {
		"",
		"secret",
		"{PLAIN}secret",
		"{CLEARTEXT}secret",
		"{plain}secret",
		"{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69",
		"{SSHA}aGVsbG8=",
		"{UNKNOWN}$6$saltsalt$x",
		"{SHA512-CRYPT",
		"abJnggxhB/yWI",		/* DES crypt */
		"$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", /* MD5-crypt */
		"$scrypt$",
		"$scrypt$ln=14,r=8,p=1$",
		"$scrypt$ln=14,r=8,p=1$c2FsdHNhbHQ$",
		"$scrypt$ln=14,r=8$c2FsdHNhbHRzYWx0$"
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$scrypt$ln=40,r=8,p=1$c2FsdHNhbHRzYWx0$"
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$scrypt$ln=16,r=8,p=1$c2FsdHNhbHRzYWx0$"
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$scrypt$ln=014,r=8,p=1$c2FsdHNhbHRzYWx0$"
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$scrypt$ln=14,r=8,p=1$c2FsdHNhbHRzYWx0==$"
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$scrypt$ln=14,r=8,p=1$c2FsdHNhbHRzYWx0$"
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$x",
		"$scrypt$ln=14,r=8,p=1$c2FsdHNh bHRzYWx0$"
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"$2b$31$abcdefghijklmnopqrstuuHGaJvFfb8Fm1X8NxnEQyZtdQyFNHUse",
		"$6$rounds=999999999$saltsalt$x",
		"$7$CU..../....",
	};

	(void)state;
	for (i = 0; i < RB_N_ELEMENTS(bad); i++) {
		if (auth_password_hash_valid(bad[i]))
			fail_msg("accepted as valid: \"%s\"", bad[i]);
		assert_false(auth_password_verify(bad[i], "secret"));
	}
	assert_false(auth_password_hash_valid(NULL));

	/* A good $6$ hash, then damaged ways. */
	rb_strlcpy(good6, crypt_r("secret", "$6$saltsalt$", cd),
		   sizeof(good6));
	assert_true(auth_password_verify(good6, "secret"));
	len = strlen(good6);

	memcpy(buf, good6, len - 1);		/* truncated */
	buf[len - 1] = '\0';
	assert_false(auth_password_hash_valid(buf));
	assert_false(auth_password_verify(buf, "secret"));

	rb_snprintf(buf, sizeof(buf), "%sA", good6);	/* too long */
	assert_false(auth_password_hash_valid(buf));
	assert_false(auth_password_verify(buf, "secret"));

	rb_snprintf(buf, sizeof(buf), "%s\n", good6);	/* trailing LF */
	assert_false(auth_password_hash_valid(buf));
	assert_false(auth_password_verify(buf, "secret"));

	rb_snprintf(buf, sizeof(buf), "%s\r\n", good6);
	assert_false(auth_password_hash_valid(buf));

	rb_snprintf(buf, sizeof(buf), " %s", good6);	/* leading space */
	assert_false(auth_password_hash_valid(buf));

	/* Scheme and method must agree. */
	rb_snprintf(buf, sizeof(buf), "{SHA256-CRYPT}%s", good6);
	assert_false(auth_password_hash_valid(buf));
	assert_false(auth_password_verify(buf, "secret"));
	rb_snprintf(buf, sizeof(buf), "{BLF-CRYPT}%s", good6);
	assert_false(auth_password_hash_valid(buf));

	/* A damaged scrypt hash: one character of the key changed. */
	assert_int_equal(auth_password_hash("secret", &scrypt), 0);
	len = strlen(scrypt);
	scrypt[len - 2] = scrypt[len - 2] == 'A' ? 'B' : 'A';
	assert_true(auth_password_hash_valid(scrypt));
	assert_false(auth_password_verify(scrypt, "secret"));
	/* Non-canonical base64 is refused: 32 bytes end in a character
	 * whose two low bits are unused and must be zero; 'B' is 1. */
	scrypt[len - 1] = 'B';
	assert_false(auth_password_hash_valid(scrypt));
	free(scrypt);
	free(cd);
}

static void
test_password_crlf(void **state)
{
	struct fixture *f = *state;
	char longpw[RB_PASSWORD_MAX + 2];
	struct auth_user u;
	char *h;

	assert_int_equal(auth_user_add(f->db, "a@example.com", "pw\r\n", -1,
				       -1), AUTH_PARAMS);
	assert_int_equal(auth_user_add(f->db, "a@example.com", "pw\n", -1,
				       -1), AUTH_PARAMS);
	assert_int_equal(auth_user_add(f->db, "a@example.com", "p\rw", -1,
				       -1), AUTH_PARAMS);
	assert_int_equal(auth_user_add(f->db, "a@example.com", "", -1, -1),
			 AUTH_PARAMS);
	memset(longpw, 'x', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	assert_int_equal(auth_user_add(f->db, "a@example.com", longpw, -1,
				       -1), AUTH_PARAMS);
	/* None of them left a user behind. */
	assert_int_equal(auth_user_lookup(f->db, "a@example.com", &u),
			 AUTH_NOTFOUND);

	assert_int_equal(auth_user_add(f->db, "a@example.com", "pw", -1, -1),
			 AUTH_OK);
	assert_int_equal(auth_verify(f->db, "a@example.com", "pw\n", &u),
			 AUTH_FAILED);
	assert_int_equal(auth_verify(f->db, "a@example.com", "pw\r\n", &u),
			 AUTH_FAILED);
	assert_int_equal(auth_verify(f->db, "a@example.com", "pw", &u),
			 AUTH_OK);
	assert_int_equal(auth_user_set_password(f->db, "a@example.com",
						"new\npw"), AUTH_PARAMS);
	assert_int_equal(auth_verify(f->db, "a@example.com", "pw", &u),
			 AUTH_OK);

	/* A hash with CR/LF cannot be imported. */
	assert_int_equal(auth_password_hash("pw", &h), 0);
	h = rb_realloc(h, strlen(h) + 3);
	memcpy(h + strlen(h), "\r\n", 3);
	assert_int_equal(auth_user_set_password_hash(f->db, "a@example.com",
						     h), AUTH_PARAMS);
	free(h);
}

/* ---- addresses ---- */

static void
test_address_syntax(void **state)
{
	static const char *const good[] = {
		"a@b", "alice@example.com", "a.b@example.com",
		"a+b@example.com", "o'hara@example.com", "x_y-z@sub.ex-ample.org",
		"\xc3\xa9t\xc3\xa9@exampl\xc3\xa9.fr", "1@2.3",
		"!#$%&'*+-=?^_`{|}~@example.com",
	};
	static const char *const bad[] = {
		"", "@", "a@", "@b", "ab", "a@@b", "a@b@c", ".a@b", "a.@b",
		"a..b@c", "a@.b", "a@b.", "a@b..c", "a/b@c", "a@b/c",
		"a b@c", "a@b c", "\"a b\"@c", "a@[127.0.0.1]", "a\tb@c",
		"a\x7f@c", "a\r\n@c", "a@b_c", "a\\b@c", "a<b@c", "a,b@c",
		"\xc3@b", "\xc0\xaf@b", "\xed\xa0\x80@b", "a@\xff",
		"a@b\xe2\x82",
	};
	char longlocal[RB_LOCALPART_MAX + 32], longdom[RB_DOMAIN_MAX + 32];
	size_t i;

	(void)state;
	for (i = 0; i < RB_N_ELEMENTS(good); i++) {
		if (!auth_address_valid(good[i]))
			fail_msg("refused: \"%s\"", good[i]);
	}
	for (i = 0; i < RB_N_ELEMENTS(bad); i++) {
		if (auth_address_valid(bad[i]))
			fail_msg("accepted: \"%s\"", bad[i]);
	}
	assert_false(auth_address_valid(NULL));

	memset(longlocal, 'a', RB_LOCALPART_MAX);
	rb_strlcpy(longlocal + RB_LOCALPART_MAX, "@b", 3);
	assert_true(auth_address_valid(longlocal));
	memset(longlocal, 'a', RB_LOCALPART_MAX + 1);
	rb_strlcpy(longlocal + RB_LOCALPART_MAX + 1, "@b", 3);
	assert_false(auth_address_valid(longlocal));

	longdom[0] = 'a';
	longdom[1] = '@';
	memset(longdom + 2, 'b', RB_DOMAIN_MAX);
	longdom[RB_DOMAIN_MAX + 2] = '\0';
	assert_true(auth_address_valid(longdom));
	longdom[RB_DOMAIN_MAX + 2] = 'b';
	longdom[RB_DOMAIN_MAX + 3] = '\0';
	assert_false(auth_address_valid(longdom));
}

static void
test_normalize(void **state)
{
	struct fixture *f = *state;
	char out[RB_ADDR_MAX + 1], tiny[8];

	assert_int_equal(auth_address_normalize(f->db, "Alice.X@Example.COM",
						out, sizeof(out)), 0);
	assert_string_equal(out, "alice.x@example.com");
	assert_int_equal(auth_address_canon(true, "Alice.X@Example.COM", out,
					    sizeof(out)), 0);
	assert_string_equal(out, "Alice.X@example.com");
	/* Non-ASCII is left alone. */
	assert_int_equal(auth_address_normalize(f->db, "\xc3\x89T\xc3\x89@A.B",
						out, sizeof(out)), 0);
	assert_string_equal(out, "\xc3\x89t\xc3\x89@a.b");
	assert_int_equal(auth_address_normalize(f->db, "bad", out,
						sizeof(out)), -1);
	assert_int_equal(auth_address_normalize(f->db, "alice@example.com",
						tiny, sizeof(tiny)), -1);
}

/* ---- users ---- */

static void
test_user_add_del_list(void **state)
{
	struct fixture *f = *state;
	struct auth_user u, *users;
	size_t count;

	assert_int_equal(auth_user_add(f->db, "carol@example.com", NULL, -1,
				       -1), AUTH_OK);
	assert_int_equal(auth_user_add(f->db, "alice@example.com", "pw", -1,
				       -1), AUTH_OK);
	assert_int_equal(auth_user_add(f->db, "bob@example.org", NULL, -1,
				       -1), AUTH_OK);
	assert_int_equal(auth_user_add(f->db, "alice@example.com", NULL, -1,
				       -1), AUTH_EXISTS);
	assert_int_equal(auth_user_add(f->db, "ALICE@EXAMPLE.COM", NULL, -1,
				       -1), AUTH_EXISTS);
	assert_int_equal(auth_user_add(f->db, "not an address", NULL, -1,
				       -1), AUTH_PARAMS);
	assert_int_equal(auth_user_add(f->db, "x@example.com", NULL, -2, -1),
			 AUTH_PARAMS);

	assert_int_equal(auth_user_list(f->db, &users, &count), AUTH_OK);
	assert_int_equal(count, 3);
	assert_string_equal(users[0].address, "alice@example.com");
	assert_string_equal(users[1].address, "bob@example.org");
	assert_string_equal(users[2].address, "carol@example.com");
	assert_true(users[0].has_password);
	assert_false(users[1].has_password);
	assert_true(users[0].enabled);
	assert_true(users[0].created > 0 &&
		    users[0].created <= (int64_t)time(NULL));
	free(users);

	assert_int_equal(auth_user_lookup(f->db, "Bob@Example.ORG", &u),
			 AUTH_OK);
	assert_string_equal(u.address, "bob@example.org");

	assert_int_equal(auth_user_del(f->db, "BOB@example.org"), AUTH_OK);
	assert_int_equal(auth_user_del(f->db, "bob@example.org"),
			 AUTH_NOTFOUND);
	assert_int_equal(auth_user_lookup(f->db, "bob@example.org", &u),
			 AUTH_NOTFOUND);
	assert_int_equal(auth_user_del(f->db, "bad"), AUTH_PARAMS);

	assert_int_equal(auth_user_list(f->db, &users, &count), AUTH_OK);
	assert_int_equal(count, 2);
	free(users);

	assert_int_equal(auth_user_set_enabled(f->db, "carol@example.com",
					       false), AUTH_OK);
	assert_int_equal(auth_user_lookup(f->db, "carol@example.com", &u),
			 AUTH_OK);
	assert_false(u.enabled);
	assert_int_equal(auth_user_set_enabled(f->db, "nobody@example.com",
					       false), AUTH_NOTFOUND);
	assert_int_equal(auth_user_set_password(f->db, "nobody@example.com",
						"pw"), AUTH_NOTFOUND);
}

static void
test_user_empty_list(void **state)
{
	struct fixture *f = *state;
	struct auth_user *users;
	struct auth_alias *aliases;
	struct auth_domain *domains;
	size_t count = 99;

	assert_int_equal(auth_user_list(f->db, &users, &count), AUTH_OK);
	assert_int_equal(count, 0);
	free(users);
	assert_int_equal(auth_alias_list(f->db, &aliases, &count), AUTH_OK);
	assert_int_equal(count, 0);
	free(aliases);
	assert_int_equal(auth_domain_list(f->db, &domains, &count), AUTH_OK);
	assert_int_equal(count, 0);
	free(domains);
}

static void
test_case_sensitive_localpart(void **state)
{
	struct fixture *f = *state;
	struct auth_db *cs;
	struct auth_user u;
	const char *error;
	char path[160];

	/* Default db: local part folded. */
	assert_int_equal(auth_user_add(f->db, "Alice@Example.COM", NULL, -1,
				       -1), AUTH_OK);
	assert_int_equal(auth_user_lookup(f->db, "alice@example.com", &u),
			 AUTH_OK);
	assert_string_equal(u.address, "alice@example.com");
	assert_int_equal(auth_user_lookup(f->db, "ALICE@example.com", &u),
			 AUTH_OK);

	rb_snprintf(path, sizeof(path), "%s/cs.db", f->dir);
	assert_int_equal(auth_db_open(path, true, true, &cs, &error),
			 AUTH_OK);
	assert_int_equal(auth_user_add(cs, "Bob@Example.COM", NULL, -1, -1),
			 AUTH_OK);
	assert_int_equal(auth_user_lookup(cs, "Bob@example.com", &u),
			 AUTH_OK);
	assert_string_equal(u.address, "Bob@example.com");
	/* Domain still folds, local part does not. */
	assert_int_equal(auth_user_lookup(cs, "Bob@EXAMPLE.com", &u),
			 AUTH_OK);
	assert_int_equal(auth_user_lookup(cs, "bob@example.com", &u),
			 AUTH_NOTFOUND);
	/* So "bob" is a different user. */
	assert_int_equal(auth_user_add(cs, "bob@example.com", NULL, -1, -1),
			 AUTH_OK);
	auth_db_close(&cs);
	assert_null(cs);
}

static void
test_quota(void **state)
{
	struct fixture *f = *state;
	struct auth_user u;

	assert_int_equal(auth_user_add(f->db, "q@example.com", NULL,
				       AUTH_QUOTA_DEFAULT, AUTH_QUOTA_DEFAULT),
			 AUTH_OK);
	assert_int_equal(auth_user_lookup(f->db, "q@example.com", &u),
			 AUTH_OK);
	assert_int_equal(u.quota_bytes, AUTH_QUOTA_DEFAULT);
	assert_int_equal(u.quota_messages, AUTH_QUOTA_DEFAULT);

	assert_int_equal(auth_user_add(f->db, "r@example.com", NULL,
				       1048576, 0), AUTH_OK);
	assert_int_equal(auth_user_lookup(f->db, "r@example.com", &u),
			 AUTH_OK);
	assert_int_equal(u.quota_bytes, 1048576);
	assert_int_equal(u.quota_messages, 0);

	assert_int_equal(auth_user_set_quota(f->db, "q@example.com",
					     INT64_C(5000000000), 100),
			 AUTH_OK);
	assert_int_equal(auth_user_lookup(f->db, "q@example.com", &u),
			 AUTH_OK);
	assert_int_equal(u.quota_bytes, INT64_C(5000000000));
	assert_int_equal(u.quota_messages, 100);
	assert_int_equal(auth_user_set_quota(f->db, "q@example.com", -1, -1),
			 AUTH_OK);
	assert_int_equal(auth_user_lookup(f->db, "q@example.com", &u),
			 AUTH_OK);
	assert_int_equal(u.quota_bytes, -1);

	assert_int_equal(auth_user_set_quota(f->db, "q@example.com", -2, 0),
			 AUTH_PARAMS);
	assert_int_equal(auth_user_set_quota(f->db, "q@example.com", 0, -5),
			 AUTH_PARAMS);
	assert_int_equal(auth_user_set_quota(f->db, "none@example.com", 0, 0),
			 AUTH_NOTFOUND);
}

static void
test_verify(void **state)
{
	struct fixture *f = *state;
	struct timespec t0, t1, t2, t3;
	double known, unknown, refused;
	struct auth_user u;
	int i;

	assert_int_equal(auth_user_add(f->db, "v@example.com", "hunter2", -1,
				       -1), AUTH_OK);
	assert_int_equal(auth_user_add(f->db, "nopw@example.com", NULL, -1,
				       -1), AUTH_OK);

	assert_int_equal(auth_verify(f->db, "v@example.com", "hunter2", &u),
			 AUTH_OK);
	assert_string_equal(u.address, "v@example.com");
	assert_true(u.enabled);
	assert_int_equal(auth_verify(f->db, "V@EXAMPLE.com", "hunter2", &u),
			 AUTH_OK);
	assert_int_equal(auth_verify(f->db, "v@example.com", "hunter3", &u),
			 AUTH_FAILED);
	assert_string_equal(u.address, "");
	assert_int_equal(auth_verify(f->db, "v@example.com", "", &u),
			 AUTH_FAILED);
	assert_int_equal(auth_verify(f->db, "nopw@example.com", "", &u),
			 AUTH_FAILED);
	assert_int_equal(auth_verify(f->db, "nopw@example.com", "x", &u),
			 AUTH_FAILED);
	assert_int_equal(auth_verify(f->db, "ghost@example.com", "x", &u),
			 AUTH_FAILED);
	assert_int_equal(auth_verify(f->db, "not an address", "x", &u),
			 AUTH_FAILED);

	/* Disabled: refused even with the right password. */
	assert_int_equal(auth_user_set_enabled(f->db, "v@example.com", false),
			 AUTH_OK);
	assert_int_equal(auth_verify(f->db, "v@example.com", "hunter2", &u),
			 AUTH_FAILED);
	assert_int_equal(auth_user_set_enabled(f->db, "v@example.com", true),
			 AUTH_OK);

	/* Password change takes effect. */
	assert_int_equal(auth_user_set_password(f->db, "v@example.com",
						"hunter3"), AUTH_OK);
	assert_int_equal(auth_verify(f->db, "v@example.com", "hunter2", &u),
			 AUTH_FAILED);
	assert_int_equal(auth_verify(f->db, "v@example.com", "hunter3", &u),
			 AUTH_OK);

	/* An unknown user costs a KDF run like a known one.  Generous
	 * bound, best of three (a loaded machine only makes runs slower):
	 * it must be the same order, not within a few percent. */
	known = unknown = refused = 1e9;
	for (i = 0; i < 3; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t0);
		(void)auth_verify(f->db, "v@example.com", "wrong", &u);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		(void)auth_verify(f->db, "ghost@example.com", "wrong", &u);
		clock_gettime(CLOCK_MONOTONIC, &t2);
		(void)auth_verify(f->db, "v@example.com", "wrong\n", &u);
		clock_gettime(CLOCK_MONOTONIC, &t3);
		known = min_ms(known, elapsed_ms(&t0, &t1));
		unknown = min_ms(unknown, elapsed_ms(&t1, &t2));
		refused = min_ms(refused, elapsed_ms(&t2, &t3));
	}
	if (unknown < known / 4)
		fail_msg("unknown user %.1f ms vs known %.1f ms", unknown,
			 known);
	if (refused < known / 4)
		fail_msg("refused password %.1f ms vs known %.1f ms", refused,
			 known);
}

static void
test_import_hash(void **state)
{
	struct fixture *f = *state;
	struct crypt_data *cd = rb_calloc(1, sizeof(*cd));
	char hash[RB_HASH_MAX + 1];
	struct auth_user u;

	assert_int_equal(auth_user_add(f->db, "imp@example.com", NULL, -1,
				       -1), AUTH_OK);
	rb_snprintf(hash, sizeof(hash), "{SHA512-CRYPT}%s",
		    crypt_r("imported", "$6$abcdefgh$", cd));
	assert_int_equal(auth_user_set_password_hash(f->db, "imp@example.com",
						     hash), AUTH_OK);
	assert_int_equal(auth_verify(f->db, "imp@example.com", "imported",
				     &u), AUTH_OK);
	assert_true(u.has_password);
	assert_int_equal(auth_verify(f->db, "imp@example.com", "other", &u),
			 AUTH_FAILED);
	assert_int_equal(auth_user_set_password_hash(f->db, "imp@example.com",
						     "{PLAIN}imported"),
			 AUTH_PARAMS);
	assert_int_equal(auth_user_set_password_hash(f->db,
						     "ghost@example.com",
						     hash), AUTH_NOTFOUND);
	/* The failed import kept the old hash. */
	assert_int_equal(auth_verify(f->db, "imp@example.com", "imported",
				     &u), AUTH_OK);
	free(cd);
}

/* ---- aliases ---- */

static void
add_users(struct auth_db *db, const char *const *addrs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		assert_int_equal(auth_user_add(db, addrs[i], NULL, -1, -1),
				 AUTH_OK);
}

static size_t
alias_rows(struct auth_db *db, const char *alias)
{
	struct auth_alias *list;
	size_t count, i, n = 0;

	assert_int_equal(auth_alias_list(db, &list, &count), AUTH_OK);
	for (i = 0; i < count; i++) {
		if (strcmp(list[i].alias, alias) == 0)
			n++;
	}
	free(list);
	return n;
}

static void
test_aliases(void **state)
{
	static const char *const users[] = {
		"u1@example.com", "u2@example.com", "u3@example.com",
	};
	struct fixture *f = *state;
	struct auth_alias *list;
	size_t count;

	add_users(f->db, users, RB_N_ELEMENTS(users));
	assert_int_equal(auth_alias_add(f->db, "team@example.com",
					"u1@example.com"), AUTH_OK);
	assert_int_equal(auth_alias_add(f->db, "Team@Example.com",
					"U2@example.com"), AUTH_OK);
	assert_int_equal(auth_alias_add(f->db, "team@example.com",
					"u3@example.com"), AUTH_OK);
	assert_int_equal(auth_alias_add(f->db, "team@example.com",
					"u3@example.com"), AUTH_EXISTS);
	assert_int_equal(alias_rows(f->db, "team@example.com"), 3);

	/* Targets are users only. */
	assert_int_equal(auth_alias_add(f->db, "x@example.com",
					"ghost@example.com"), AUTH_NOTFOUND);
	assert_int_equal(auth_alias_add(f->db, "x@example.com",
					"team@example.com"), AUTH_NOTFOUND);
	/* Names do not collide with users, either way. */
	assert_int_equal(auth_alias_add(f->db, "u1@example.com",
					"u2@example.com"), AUTH_EXISTS);
	assert_int_equal(auth_user_add(f->db, "team@example.com", NULL, -1,
				       -1), AUTH_EXISTS);
	assert_int_equal(auth_alias_add(f->db, "self@example.com",
					"SELF@example.com"), AUTH_PARAMS);
	assert_int_equal(auth_alias_add(f->db, "bad", "u1@example.com"),
			 AUTH_PARAMS);
	assert_int_equal(auth_alias_add(f->db, "y@example.com", "bad"),
			 AUTH_PARAMS);

	assert_int_equal(auth_alias_list(f->db, &list, &count), AUTH_OK);
	assert_int_equal(count, 3);
	assert_string_equal(list[0].target, "u1@example.com");
	assert_string_equal(list[1].target, "u2@example.com");
	assert_string_equal(list[2].target, "u3@example.com");
	free(list);

	/* Deleting a user cascades to the aliases pointing at it. */
	assert_int_equal(auth_user_del(f->db, "u2@example.com"), AUTH_OK);
	assert_int_equal(alias_rows(f->db, "team@example.com"), 2);

	assert_int_equal(auth_alias_del(f->db, "team@example.com",
					"u1@example.com"), AUTH_OK);
	assert_int_equal(auth_alias_del(f->db, "team@example.com",
					"u1@example.com"), AUTH_NOTFOUND);
	assert_int_equal(alias_rows(f->db, "team@example.com"), 1);
	assert_int_equal(auth_alias_add(f->db, "team@example.com",
					"u1@example.com"), AUTH_OK);
	assert_int_equal(auth_alias_del(f->db, "TEAM@example.com", NULL),
			 AUTH_OK);
	assert_int_equal(alias_rows(f->db, "team@example.com"), 0);
	assert_int_equal(auth_alias_del(f->db, "team@example.com", NULL),
			 AUTH_NOTFOUND);
	/* The name is free for a user now. */
	assert_int_equal(auth_user_add(f->db, "team@example.com", NULL, -1,
				       -1), AUTH_OK);
}

static void
test_alias_target_cap(void **state)
{
	struct fixture *f = *state;
	char addr[64];
	int i;

	for (i = 0; i <= RB_ALIAS_TARGETS_MAX; i++) {
		rb_snprintf(addr, sizeof(addr), "t%d@example.com", i);
		assert_int_equal(auth_user_add(f->db, addr, NULL, -1, -1),
				 AUTH_OK);
		assert_int_equal(auth_alias_add(f->db, "all@example.com",
						addr),
				 i < RB_ALIAS_TARGETS_MAX ? AUTH_OK :
				 AUTH_PARAMS);
	}
}

/* ---- domains ---- */

static void
test_domains(void **state)
{
	struct fixture *f = *state;
	struct auth_domain *list;
	size_t count;

	assert_int_equal(auth_user_add(f->db, "a@Example.COM", NULL, -1, -1),
			 AUTH_OK);
	assert_int_equal(auth_user_add(f->db, "b@example.com", NULL, -1, -1),
			 AUTH_OK);
	assert_int_equal(auth_domain_add(f->db, "Other.ORG"), AUTH_OK);
	assert_int_equal(auth_domain_add(f->db, "other.org"), AUTH_EXISTS);
	assert_int_equal(auth_domain_add(f->db, "example.com"), AUTH_EXISTS);
	assert_int_equal(auth_domain_add(f->db, "bad domain"), AUTH_PARAMS);
	assert_int_equal(auth_domain_add(f->db, "a@b"), AUTH_PARAMS);

	assert_int_equal(auth_domain_list(f->db, &list, &count), AUTH_OK);
	assert_int_equal(count, 2);
	assert_string_equal(list[0].name, "example.com");
	assert_string_equal(list[1].name, "other.org");
	free(list);

	assert_int_equal(auth_domain_del(f->db, "example.com"), AUTH_EXISTS);
	assert_int_equal(auth_domain_del(f->db, "OTHER.org"), AUTH_OK);
	assert_int_equal(auth_domain_del(f->db, "other.org"), AUTH_NOTFOUND);
	assert_int_equal(auth_user_del(f->db, "a@example.com"), AUTH_OK);
	assert_int_equal(auth_user_del(f->db, "b@example.com"), AUTH_OK);
	assert_int_equal(auth_domain_del(f->db, "example.com"), AUTH_OK);
}

/* ---- resolution ---- */

static void
assert_resolves(struct auth_db *db, const char *address,
		const char *delims, const char *detail, size_t n, ...)
{
	struct auth_resolved r;
	va_list ap;
	size_t i;

	assert_int_equal(auth_resolve(db, address, delims, &r), AUTH_OK);
	assert_int_equal(r.count, n);
	assert_string_equal(r.detail, detail);
	va_start(ap, n);
	for (i = 0; i < n; i++)
		assert_string_equal(r.users[i], va_arg(ap, const char *));
	va_end(ap);
}

static void
test_resolve(void **state)
{
	static const char *const users[] = {
		"alice@example.com", "bob@example.com", "carol@example.com",
		"x+y@example.com",
	};
	struct fixture *f = *state;
	struct auth_resolved r;

	add_users(f->db, users, RB_N_ELEMENTS(users));
	assert_int_equal(auth_alias_add(f->db, "team@example.com",
					"carol@example.com"), AUTH_OK);
	assert_int_equal(auth_alias_add(f->db, "team@example.com",
					"alice@example.com"), AUTH_OK);
	assert_int_equal(auth_alias_add(f->db, "team@example.com",
					"bob@example.com"), AUTH_OK);

	assert_resolves(f->db, "alice@example.com", "+", "", 1,
			"alice@example.com");
	assert_resolves(f->db, "ALICE@Example.Com", "+", "", 1,
			"alice@example.com");
	/* +detail keeps the sender's spelling. */
	assert_resolves(f->db, "Alice+Work@example.com", "+", "Work", 1,
			"alice@example.com");
	assert_resolves(f->db, "alice+a+b@example.com", "+", "a+b", 1,
			"alice@example.com");
	assert_resolves(f->db, "alice+@example.com", "+", "", 1,
			"alice@example.com");
	assert_resolves(f->db, "alice-work@example.com", "+-", "work", 1,
			"alice@example.com");
	/* Alias: targets in the order they were added. */
	assert_resolves(f->db, "team@example.com", "+", "", 3,
			"carol@example.com", "alice@example.com",
			"bob@example.com");
	assert_resolves(f->db, "team+list@example.com", "+", "list", 3,
			"carol@example.com", "alice@example.com",
			"bob@example.com");
	/* An exact match wins over stripping the detail. */
	assert_resolves(f->db, "x+y@example.com", "+", "", 1,
			"x+y@example.com");
	/* "x" is not a user: stripping "+z" finds nothing. */
	assert_int_equal(auth_resolve(f->db, "x+z@example.com", "+", &r),
			 AUTH_NOTFOUND);
	assert_string_equal(r.detail, "");
}

static void
test_resolve_misses(void **state)
{
	static const char *const users[] = {
		"alice@example.com", "bob@example.com",
	};
	struct fixture *f = *state;
	struct auth_resolved r;

	add_users(f->db, users, RB_N_ELEMENTS(users));
	assert_int_equal(auth_alias_add(f->db, "team@example.com",
					"alice@example.com"), AUTH_OK);
	assert_int_equal(auth_alias_add(f->db, "team@example.com",
					"bob@example.com"), AUTH_OK);
	assert_int_equal(auth_alias_add(f->db, "bobs@example.com",
					"bob@example.com"), AUTH_OK);

	/* Unknown domain, unknown user, bad syntax. */
	assert_int_equal(auth_resolve(f->db, "alice@example.org", "+", &r),
			 AUTH_NOTFOUND);
	assert_int_equal(r.count, 0);
	assert_int_equal(auth_resolve(f->db, "dave@example.com", "+", &r),
			 AUTH_NOTFOUND);
	assert_int_equal(auth_resolve(f->db, "dave+x@example.com", "+", &r),
			 AUTH_NOTFOUND);
	assert_int_equal(auth_resolve(f->db, "+alice@example.com", "+", &r),
			 AUTH_NOTFOUND);
	assert_int_equal(auth_resolve(f->db, "no address", "+", &r),
			 AUTH_PARAMS);
	/* No delimiters: no detail stripping. */
	assert_int_equal(auth_resolve(f->db, "alice+x@example.com", "", &r),
			 AUTH_NOTFOUND);
	assert_int_equal(auth_resolve(f->db, "alice+x@example.com", NULL, &r),
			 AUTH_NOTFOUND);
	assert_int_equal(auth_resolve(f->db, "alice+x@example.com", "-", &r),
			 AUTH_NOTFOUND);

	/* Disabled user: not deliverable directly, via detail or alias. */
	assert_int_equal(auth_user_set_enabled(f->db, "bob@example.com",
					       false), AUTH_OK);
	assert_int_equal(auth_resolve(f->db, "bob@example.com", "+", &r),
			 AUTH_NOTFOUND);
	assert_int_equal(auth_resolve(f->db, "bob+x@example.com", "+", &r),
			 AUTH_NOTFOUND);
	assert_resolves(f->db, "team@example.com", "+", "", 1,
			"alice@example.com");
	assert_int_equal(auth_resolve(f->db, "bobs@example.com", "+", &r),
			 AUTH_NOTFOUND);
	assert_int_equal(auth_resolve(f->db, "bobs+x@example.com", "+", &r),
			 AUTH_NOTFOUND);
}

/* ---- the database itself ---- */

static void
test_db_reopen_and_schema(void **state)
{
	struct fixture *f = *state;
	struct auth_db *db;
	struct auth_user u;
	const char *error;
	char path[160];
	struct stat sb;
	sqlite3 *raw;
	sqlite3_stmt *stmt;

	assert_int_equal(auth_user_add(f->db, "keep@example.com", "pw", 10,
				       20), AUTH_OK);
	auth_db_close(&f->db);
	assert_null(f->db);
	assert_int_equal(auth_db_open(f->path, false, false, &f->db, &error),
			 AUTH_OK);
	assert_int_equal(auth_user_lookup(f->db, "keep@example.com", &u),
			 AUTH_OK);
	assert_int_equal(u.quota_bytes, 10);
	assert_int_equal(u.quota_messages, 20);

	/* Password hashes: not readable by others. */
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 077, 0);

	/* Missing file without create. */
	rb_snprintf(path, sizeof(path), "%s/missing.db", f->dir);
	assert_int_equal(auth_db_open(path, false, false, &db, &error),
			 AUTH_NOTFOUND);
	assert_null(db);
	assert_non_null(strstr(error, "missing.db"));

	/* Schema version and WAL as promised. */
	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1,
					    &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(stmt, 0), AUTH_SCHEMA_VERSION);
	sqlite3_finalize(stmt);
	assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1,
					    &stmt, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(stmt), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(stmt, 0), "wal");
	sqlite3_finalize(stmt);
	sqlite3_close(raw);
}

static void
test_db_newer_schema(void **state)
{
	struct fixture *f = *state;
	struct auth_db *db;
	const char *error;
	char path[160];
	sqlite3 *raw;

	rb_snprintf(path, sizeof(path), "%s/raw.db", f->dir);
	assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version = 99", NULL,
				      NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	assert_int_not_equal(auth_db_open(path, true, false, &db, &error),
			     AUTH_OK);
	assert_null(db);
	assert_non_null(strstr(error, "newer"));
}

static void
test_db_busy_is_temp(void **state)
{
	struct fixture *f = *state;
	struct auth_user u;
	sqlite3 *raw;

	assert_int_equal(auth_user_add(f->db, "before@example.com", NULL, -1,
				       -1), AUTH_OK);
	/* Another writer holds the lock; keep the test quick. */
	sqlite3_busy_timeout(f->db->sql, 50);
	assert_int_equal(sqlite3_open(f->path, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "BEGIN IMMEDIATE", NULL, NULL,
				      NULL), SQLITE_OK);
	assert_int_equal(auth_user_add(f->db, "during@example.com", NULL, -1,
				       -1), AUTH_TEMP);
	assert_non_null(strstr(auth_db_error(f->db), "lock"));
	assert_int_equal(auth_user_del(f->db, "before@example.com"),
			 AUTH_TEMP);
	assert_int_equal(auth_alias_add(f->db, "al@example.com",
					"before@example.com"), AUTH_TEMP);
	/* Readers go on under WAL. */
	assert_int_equal(auth_user_lookup(f->db, "before@example.com", &u),
			 AUTH_OK);
	assert_int_equal(sqlite3_exec(raw, "ROLLBACK", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(raw);
	/* And the handle still works afterwards. */
	assert_int_equal(auth_user_add(f->db, "during@example.com", NULL, -1,
				       -1), AUTH_OK);
}

static void
test_status_names(void **state)
{
	(void)state;
	assert_string_equal(auth_status_name(AUTH_OK), "OK");
	assert_string_equal(auth_status_name(AUTH_TEMP), "TEMP");
	assert_string_equal(auth_status_name(AUTH_NOTFOUND), "NOTFOUND");
	assert_string_equal(auth_status_name((enum auth_status)77), "UNKNOWN");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hash_roundtrip),
		cmocka_unit_test(test_hash_utf8_and_long),
		cmocka_unit_test(test_crypt_sha512),
		cmocka_unit_test(test_crypt_sha256),
		cmocka_unit_test(test_crypt_bcrypt),
		cmocka_unit_test(test_crypt_yescrypt),
		cmocka_unit_test(test_malformed_hashes),
		cmocka_unit_test(test_address_syntax),
		cmocka_unit_test(test_status_names),
		T(test_password_crlf),
		T(test_normalize),
		T(test_user_add_del_list),
		T(test_user_empty_list),
		T(test_case_sensitive_localpart),
		T(test_quota),
		T(test_verify),
		T(test_import_hash),
		T(test_aliases),
		T(test_alias_target_cap),
		T(test_domains),
		T(test_resolve),
		T(test_resolve_misses),
		T(test_db_reopen_and_schema),
		T(test_db_newer_schema),
		T(test_db_busy_is_temp),
	};

	return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
