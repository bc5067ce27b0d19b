/*
 * Password hashing and verification.
 *
 * New hashes: $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>, salt and hash
 * in unpadded standard base64 (the PHC string format, which passlib also
 * writes for scrypt), derived with OpenSSL's EVP_KDF "SCRYPT".
 *
 * Imported hashes go through libcrypt (libxcrypt): $6$, $5$, $2y$/$2b$/$2a$
 * and $y$, optionally behind a Dovecot "{SCHEME}" prefix.  Everything else
 * is refused on purpose, notably:
 *   - {PLAIN}, {CLEARTEXT} and friends: a stored cleartext password is a
 *     breach waiting to happen; import them by hashing with
 *     `roostctl user passwd` instead;
 *   - DES crypt, $1$ (MD5-crypt), {PLAIN-MD5}, {SHA}, {SSHA}...: too weak
 *     to keep accepting, and rehashing on login would hide that.
 *
 * Every comparison of derived bytes is CRYPTO_memcmp over equal lengths.
 */
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "auth/auth_int.h"

#define SCRYPT_PREFIX "$scrypt$"

/* ---- base64 (RFC 4648 alphabet, no padding) ---- */

static const char b64_alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Encoded length of n bytes without padding (a constant expression, so
 * it can size arrays). */
#define B64_LEN(n) ((n) / 3 * 4 + ((n) % 3 == 0 ? 0 : (n) % 3 + 1))

/* out must hold B64_LEN(n) + 1 bytes. */
static void
b64_encode(const unsigned char *in, size_t n, char *out)
{
	size_t i, o = 0;
	uint32_t v;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
}

static int
b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict decoder: only the canonical encoding is accepted (no padding, no
 * junk, unused low bits zero), so one byte string has one text form.
 * Returns the decoded length or -1. */
static ssize_t
b64_decode(const char *in, size_t n, unsigned char *out, size_t outsize)
{
	size_t i, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	int v;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((v = b64_value(in[i])) < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outsize)
				return -1;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	return (ssize_t)o;
}

/* ---- scrypt ---- */

struct scrypt_hash {
	unsigned ln, r, p;
	unsigned char salt[AUTH_SCRYPT_FIELD_MAX];
	size_t salt_len;
	unsigned char dk[AUTH_SCRYPT_FIELD_MAX];
	size_t dk_len;
};

static int
scrypt_derive(const char *password, unsigned ln, unsigned r, unsigned p,
	      const unsigned char *salt, size_t salt_len, unsigned char *out,
	      size_t out_len)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *ctx;
	OSSL_PARAM params[7], *pp = params;
	uint64_t n = (uint64_t)1 << ln, maxmem = AUTH_SCRYPT_MAXMEM;
	uint32_t r32 = r, p32 = p;
	int ret;

	kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_SCRYPT, NULL);
	if (kdf == NULL)
		return -1;
	ctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (ctx == NULL)
		return -1;
	*pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
						  (void *)password,
						  strlen(password));
	*pp++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
						  (void *)salt, salt_len);
	*pp++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
	*pp++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r32);
	*pp++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p32);
	/* Without maxmem OpenSSL caps at 32 MiB by itself, but say it: the
	 * bound is a security property, not a library default. */
	*pp++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM,
					    &maxmem);
	*pp = OSSL_PARAM_construct_end();
	ret = EVP_KDF_derive(ctx, out, out_len, params) == 1 ? 0 : -1;
	/* The context holds a copy of the password. */
	EVP_KDF_CTX_free(ctx);
	return ret;
}

/* Parses a decimal unsigned within [min, max] up to the terminator term;
 * advances *pp past it. */
static int
parse_param(const char **pp, const char *name, char term, unsigned min,
	    unsigned max, unsigned *value_r)
{
	const char *p = *pp;
	size_t nlen = strlen(name);
	unsigned v = 0;
	size_t digits = 0;

	if (strncmp(p, name, nlen) != 0 || p[nlen] != '=')
		return -1;
	p += nlen + 1;
	/* No leading zeros: one value, one spelling. */
	if (p[0] == '0' && p[1] >= '0' && p[1] <= '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		if (++digits > 9)
			return -1;
		v = v * 10 + (unsigned)(*p - '0');
		p++;
	}
	if (digits == 0 || *p != term || v < min || v > max)
		return -1;
	*pp = p + 1;
	*value_r = v;
	return 0;
}

static int
scrypt_parse(const char *hash, struct scrypt_hash *h)
{
	const char *p, *end;
	ssize_t n;

	if (strncmp(hash, SCRYPT_PREFIX, strlen(SCRYPT_PREFIX)) != 0)
		return -1;
	p = hash + strlen(SCRYPT_PREFIX);
	if (parse_param(&p, "ln", ',', AUTH_SCRYPT_LN_MIN, AUTH_SCRYPT_LN_MAX,
			&h->ln) < 0 ||
	    parse_param(&p, "r", ',', 1, AUTH_SCRYPT_R_MAX, &h->r) < 0 ||
	    parse_param(&p, "p", '$', 1, AUTH_SCRYPT_P_MAX, &h->p) < 0)
		return -1;
	/* Memory OpenSSL will want; refuse here rather than fail later in
	 * a way that looks like a wrong password. */
	/* (same formula as OpenSSL's kdf_scrypt.c: V plus B) */
	if ((uint64_t)128 * h->r * (((uint64_t)1 << h->ln) + 2) +
	    (uint64_t)128 * h->r * h->p > AUTH_SCRYPT_MAXMEM)
		return -1;
	if ((end = strchr(p, '$')) == NULL)
		return -1;
	n = b64_decode(p, (size_t)(end - p), h->salt, sizeof(h->salt));
	if (n < 8)
		return -1;
	h->salt_len = (size_t)n;
	p = end + 1;
	n = b64_decode(p, strlen(p), h->dk, sizeof(h->dk));
	if (n < 16)
		return -1;
	h->dk_len = (size_t)n;
	return 0;
}

static bool
scrypt_verify(const struct scrypt_hash *h, const char *password)
{
	unsigned char dk[AUTH_SCRYPT_FIELD_MAX];
	bool ok;

	if (scrypt_derive(password, h->ln, h->r, h->p, h->salt, h->salt_len,
			  dk, h->dk_len) < 0)
		return false;
	ok = CRYPTO_memcmp(dk, h->dk, h->dk_len) == 0;
	OPENSSL_cleanse(dk, sizeof(dk));
	return ok;
}

bool
auth_password_acceptable(const char *password)
{
	size_t len;

	if (password == NULL)
		return false;
	len = strnlen(password, RB_PASSWORD_MAX + 1);
	if (len == 0 || len > RB_PASSWORD_MAX)
		return false;
	return strpbrk(password, "\r\n") == NULL;
}

int
auth_password_hash(const char *password, char **hash_r)
{
	unsigned char salt[AUTH_SCRYPT_SALT_LEN], dk[AUTH_SCRYPT_DK_LEN];
	char salt64[B64_LEN(AUTH_SCRYPT_SALT_LEN) + 1];
	char dk64[B64_LEN(AUTH_SCRYPT_DK_LEN) + 1];
	int ret = -1;

	*hash_r = NULL;
	if (password == NULL)
		return -1;
	if (RAND_bytes(salt, sizeof(salt)) != 1)
		return -1;
	if (scrypt_derive(password, AUTH_SCRYPT_LN, AUTH_SCRYPT_R,
			  AUTH_SCRYPT_P, salt, sizeof(salt), dk,
			  sizeof(dk)) == 0) {
		b64_encode(salt, sizeof(salt), salt64);
		b64_encode(dk, sizeof(dk), dk64);
		*hash_r = rb_strdup_printf(SCRYPT_PREFIX "ln=%u,r=%u,p=%u$%s$%s",
					   (unsigned)AUTH_SCRYPT_LN,
					   (unsigned)AUTH_SCRYPT_R,
					   (unsigned)AUTH_SCRYPT_P, salt64,
					   dk64);
		ret = 0;
	}
	OPENSSL_cleanse(dk, sizeof(dk));
	return ret;
}

void
auth_password_dummy_verify(const char *password)
{
	/* A fixed salt is fine: the result is thrown away. */
	static const char salt[] = "roost-dummy-salt";
	unsigned char dk[AUTH_SCRYPT_DK_LEN];

	/* An oversized password would make the dummy run longer than a
	 * real check, which the real check refuses up front. */
	if (password == NULL ||
	    strnlen(password, RB_PASSWORD_MAX + 1) > RB_PASSWORD_MAX)
		password = "";
	(void)scrypt_derive(password, AUTH_SCRYPT_LN,
			    AUTH_SCRYPT_R, AUTH_SCRYPT_P,
			    (const unsigned char *)salt, sizeof(salt) - 1,
			    dk, sizeof(dk));
	OPENSSL_cleanse(dk, sizeof(dk));
}

/* ---- crypt(3) formats ---- */

enum crypt_kind {
	CRYPT_ANY,		/* {CRYPT}: any of the ones below */
	CRYPT_SHA512,		/* $6$ */
	CRYPT_SHA256,		/* $5$ */
	CRYPT_BCRYPT,		/* $2a$ $2b$ $2y$ */
	CRYPT_YESCRYPT,		/* $y$ */
};

static const struct {
	const char *scheme;
	enum crypt_kind kind;
} dovecot_schemes[] = {
	{ "{SHA512-CRYPT}", CRYPT_SHA512 },
	{ "{SHA256-CRYPT}", CRYPT_SHA256 },
	{ "{BLF-CRYPT}", CRYPT_BCRYPT },
	{ "{CRYPT}", CRYPT_ANY },
};

/* The crypt method of hash by its prefix, -1 if not one we accept. */
static int
crypt_kind_of(const char *hash, enum crypt_kind *kind_r)
{
	if (strncmp(hash, "$6$", 3) == 0)
		*kind_r = CRYPT_SHA512;
	else if (strncmp(hash, "$5$", 3) == 0)
		*kind_r = CRYPT_SHA256;
	else if (strncmp(hash, "$2b$", 4) == 0 ||
		 strncmp(hash, "$2y$", 4) == 0 ||
		 strncmp(hash, "$2a$", 4) == 0)
		*kind_r = CRYPT_BCRYPT;
	else if (strncmp(hash, "$y$", 3) == 0)
		*kind_r = CRYPT_YESCRYPT;
	else
		return -1;
	return 0;
}

/* Characters crypt(3) strings are made of (the hash64 alphabet plus the
 * separators and "rounds="). */
static bool
crypt_chars_valid(const char *s)
{
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '/' ||
		      c == '$' || c == '='))
			return false;
	}
	return true;
}

/* Refuses work factors that make one verification a denial of service. */
static bool
crypt_cost_ok(const char *hash, enum crypt_kind kind)
{
	unsigned long v;
	char *end;

	switch (kind) {
	case CRYPT_BCRYPT:
		/* $2b$NN$ with exactly two digits */
		if (hash[4] < '0' || hash[4] > '9' || hash[5] < '0' ||
		    hash[5] > '9' || hash[6] != '$')
			return false;
		v = (unsigned long)(hash[4] - '0') * 10 +
			(unsigned long)(hash[5] - '0');
		return v >= 4 && v <= AUTH_BCRYPT_COST_MAX;
	case CRYPT_SHA256:
	case CRYPT_SHA512:
		if (strncmp(hash + 3, "rounds=", 7) != 0)
			return true;
		if (hash[10] < '0' || hash[10] > '9')
			return false;
		v = strtoul(hash + 10, &end, 10);
		return *end == '$' && v <= AUTH_SHACRYPT_ROUNDS_MAX;
	case CRYPT_YESCRYPT:
	case CRYPT_ANY:
		/* yescrypt's cost is bounded by libxcrypt's own parameter
		 * checks; we do not decode its parameter string. */
		return true;
	}
	return false;
}

/*
 * Splits an optional Dovecot "{SCHEME}" prefix off hash and checks that
 * what follows is a crypt string of the kind the scheme names.  Scheme
 * names are case-insensitive, as in Dovecot.  Returns the crypt string or
 * NULL.
 */
static const char *
crypt_string(const char *hash, enum crypt_kind *kind_r)
{
	enum crypt_kind want = CRYPT_ANY, kind;
	size_t i, len;

	if (hash[0] == '{') {
		for (i = 0; i < RB_N_ELEMENTS(dovecot_schemes); i++) {
			len = strlen(dovecot_schemes[i].scheme);
			if (rb_strncasecmp(hash, dovecot_schemes[i].scheme,
					   len) == 0)
				break;
		}
		if (i == RB_N_ELEMENTS(dovecot_schemes))
			return NULL;
		want = dovecot_schemes[i].kind;
		hash += len;
	}
	if (crypt_kind_of(hash, &kind) < 0)
		return NULL;
	if (want != CRYPT_ANY && want != kind)
		return NULL;
	if (!crypt_chars_valid(hash) || !crypt_cost_ok(hash, kind))
		return NULL;
	/* LEGACY and TOO_CHEAP are fine here: we picked the methods above
	 * ourselves (libxcrypt calls $5$ legacy), and refusing an imported
	 * hash would only lock its user out. */
	switch (crypt_checksalt(hash)) {
	case CRYPT_SALT_INVALID:
	case CRYPT_SALT_METHOD_DISABLED:
		return NULL;
	default:
		break;
	}
	*kind_r = kind;
	return hash;
}

/*
 * Runs crypt_rn(password, setting) and compares the result with the whole
 * stored string: for every accepted method the output is the setting
 * followed by the hash, so equal strings mean a matching password.
 */
static bool
crypt_verify(const char *setting, const char *password)
{
	struct crypt_data *cd;
	const char *out;
	size_t len = strlen(setting);
	bool ok = false;

	/* ~32 KiB: too big for a worker's stack. */
	cd = rb_calloc(1, sizeof(*cd));
	out = crypt_rn(password, setting, cd, (int)sizeof(*cd));
	if (out != NULL && out[0] != '*' && strlen(out) == len)
		ok = CRYPTO_memcmp(out, setting, len) == 0;
	/* It holds copies of the password and of the derived hash. */
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return ok;
}

static bool
hash_string_valid(const char *hash)
{
	size_t len;

	if (hash == NULL)
		return false;
	len = strnlen(hash, RB_HASH_MAX + 1);
	if (len == 0 || len > RB_HASH_MAX)
		return false;
	/* No whitespace or control characters anywhere (a CR or LF would
	 * also break any passwd-file export). */
	for (; *hash != '\0'; hash++) {
		if ((unsigned char)*hash <= ' ' || (unsigned char)*hash >= 0x7f)
			return false;
	}
	return true;
}

bool
auth_password_hash_valid(const char *hash)
{
	struct scrypt_hash h;
	enum crypt_kind kind;
	struct crypt_data *cd;
	const char *s, *out;
	bool ok;

	if (!hash_string_valid(hash))
		return false;
	if (strncmp(hash, SCRYPT_PREFIX, strlen(SCRYPT_PREFIX)) == 0) {
		ok = scrypt_parse(hash, &h) == 0;
		OPENSSL_cleanse(&h, sizeof(h));
		return ok;
	}
	if ((s = crypt_string(hash, &kind)) == NULL)
		return false;
	/*
	 * crypt_checksalt only looks at the setting part.  Hashing a dummy
	 * phrase proves libcrypt accepts the whole string and that the
	 * hash part has the length this method produces: one stored hash
	 * that can never match would lock the user out silently.
	 */
	cd = rb_calloc(1, sizeof(*cd));
	out = crypt_rn("x", s, cd, (int)sizeof(*cd));
	ok = out != NULL && out[0] != '*' && strlen(out) == strlen(s) &&
		strncmp(out, s, (size_t)(strrchr(s, '$') - s)) == 0;
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return ok;
}

bool
auth_password_check(const char *hash, const char *password, bool *ran_r)
{
	struct scrypt_hash h;
	enum crypt_kind kind;
	const char *s;
	bool ok;

	*ran_r = false;
	if (!auth_password_acceptable(password) || !hash_string_valid(hash))
		return false;
	if (strncmp(hash, SCRYPT_PREFIX, strlen(SCRYPT_PREFIX)) == 0) {
		if (scrypt_parse(hash, &h) < 0)
			return false;
		*ran_r = true;
		ok = scrypt_verify(&h, password);
		OPENSSL_cleanse(&h, sizeof(h));
		return ok;
	}
	if ((s = crypt_string(hash, &kind)) == NULL)
		return false;
	*ran_r = true;
	return crypt_verify(s, password);
}

bool
auth_password_verify(const char *hash, const char *password)
{
	bool ran;

	return auth_password_check(hash, password, &ran);
}
