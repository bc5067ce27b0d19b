/*
 * base64 (RFC 4648 §4) for SASL exchanges, over OpenSSL's EVP block
 * coders.  The decoder is strict because RFC 5034 §4 and RFC 3501 §6.2.2
 * require it: every character outside the alphabet is an error (no
 * whitespace, no line breaks), the input is whole 4-character groups and
 * '=' appears only as the last one or two characters.
 */
#include <string.h>

#include <openssl/evp.h>

#include "common/common.h"

size_t
rb_base64_encode(const void *p, size_t n, char *out, size_t outsize)
{
	size_t need;
	int len;

	/* 4 * ceil(n / 3) + NUL, computed without overflow for any n the
	 * callers can hold in memory. */
	RB_CHECK(n <= (SIZE_MAX / 4) * 3 - 3);
	need = (n + 2) / 3 * 4 + 1;
	RB_CHECK(outsize >= need);
	if (n == 0) {
		out[0] = '\0';
		return 0;
	}
	/* EVP_EncodeBlock takes an int count. */
	RB_CHECK(n <= (size_t)INT32_MAX / 2);
	len = EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	RB_CHECK(len >= 0 && (size_t)len < outsize);
	return (size_t)len;
}

static bool
b64_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '+' || c == '/';
}

int
rb_base64_decode(const char *text, size_t len, void *out, size_t outsize,
		 size_t *len_r)
{
	const unsigned char *t = (const unsigned char *)text;
	unsigned char last[3];
	size_t pad = 0, groups, full, decoded;
	int ret;

	*len_r = 0;
	if (len == 0)
		return 0;
	if (len % 4 != 0 || len > (size_t)INT32_MAX / 2)
		return -1;
	if (t[len - 1] == '=') {
		pad = 1;
		if (t[len - 2] == '=')
			pad = 2;
	}
	for (size_t i = 0; i < len - pad; i++) {
		if (!b64_char(t[i]))
			return -1;
	}
	groups = len / 4;
	decoded = groups * 3 - pad;
	if (decoded > outsize)
		return -1;

	/* EVP_DecodeBlock writes 3 octets per group, padding included, and
	 * does not say how many were padding: decode every group but the
	 * last straight into out, the last one into a scratch buffer, and
	 * copy only its real octets. */
	full = groups - 1;
	if (full > 0) {
		ret = EVP_DecodeBlock(out, t, (int)(full * 4));
		if (ret != (int)(full * 3))
			return -1;
	}
	ret = EVP_DecodeBlock(last, t + full * 4, 4);
	if (ret != 3)
		return -1;
	memcpy((unsigned char *)out + full * 3, last, 3 - pad);
	OPENSSL_cleanse(last, sizeof(last));
	*len_r = decoded;
	return 0;
}
