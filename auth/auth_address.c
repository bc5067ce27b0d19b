/*
 * Address syntax and canonical form.
 *
 * We accept what can be a mailbox name without quoting: the local part is
 * RFC 5322 dot-atom text (atext and dots), extended with UTF-8 as RFC 6531
 * allows; the domain is dot-separated labels of letters, digits, '-' and
 * UTF-8 (U-labels).  Quoted local parts and address literals are refused:
 * they cannot name a mailbox here, and both end up as path components on
 * disk.  '/' is refused even though RFC 5322 allows it in atext, because
 * the local part becomes a directory name.
 */
#include <string.h>

#include "auth/auth_int.h"

/* Length of the valid UTF-8 sequence (2..4 bytes) starting at p, 0 if it
 * is not one.  Overlong forms, surrogates and code points past U+10FFFF
 * are invalid (RFC 3629). */
static size_t
utf8_seq_len(const unsigned char *p)
{
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (p[0] >= 0xe0 && p[0] <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (p[0] == 0xe0 && p[1] < 0xa0)
			return 0;	/* overlong */
		if (p[0] == 0xed && p[1] >= 0xa0)
			return 0;	/* surrogate */
		return 3;
	}
	if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (p[0] == 0xf0 && p[1] < 0x90)
			return 0;	/* overlong */
		if (p[0] == 0xf4 && p[1] >= 0x90)
			return 0;	/* past U+10FFFF */
		return 4;
	}
	return 0;
}

/* RFC 5322 §3.2.3 atext, minus '/' (see the top of this file). */
static bool
is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != '\0' && strchr("!#$%&'*+-=?^_`{|}~", c) != NULL;
}

static bool
is_label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '-';
}

/*
 * Checks p[0..len) as dot-separated non-empty runs of characters accepted
 * by ok() or UTF-8.  This refuses a leading or trailing dot and "..",
 * which also keeps "." and ".." out of path components.  The bytes are
 * NUL-free because len came from a C string.
 */
static bool
dotted_valid(const unsigned char *p, size_t len, bool (*ok)(unsigned char))
{
	size_t i = 0, n, run = 0;

	while (i < len) {
		if (p[i] == '.') {
			if (run == 0)
				return false;
			run = 0;
			i++;
			continue;
		}
		if (p[i] >= 0x80) {
			/* The sequence must end inside the part: the check
			 * reads at most 3 more bytes, and a NUL or the '@'
			 * stops it because neither is a continuation. */
			n = utf8_seq_len(p + i);
			if (n == 0 || n > len - i)
				return false;
			i += n;
		} else if (ok(p[i])) {
			i++;
		} else {
			return false;
		}
		run++;
	}
	return run > 0;
}

bool
auth_domain_valid(const char *domain)
{
	size_t len;

	if (domain == NULL)
		return false;
	len = strlen(domain);
	if (len == 0 || len > RB_DOMAIN_MAX)
		return false;
	return dotted_valid((const unsigned char *)domain, len,
			    is_label_char);
}

bool
auth_address_valid(const char *address)
{
	const char *at;
	size_t llen;

	if (address == NULL)
		return false;
	at = strchr(address, '@');
	/* Exactly one '@': a second one could only be in a quoted local
	 * part, which we do not accept. */
	if (at == NULL || strchr(at + 1, '@') != NULL)
		return false;
	llen = (size_t)(at - address);
	if (llen == 0 || llen > RB_LOCALPART_MAX)
		return false;
	if (!dotted_valid((const unsigned char *)address, llen, is_atext))
		return false;
	return auth_domain_valid(at + 1);
}

const char *
auth_address_domain(const char *address)
{
	const char *at = strrchr(address, '@');

	return at != NULL ? at + 1 : "";
}

int
auth_address_canon(bool localpart_case_sensitive, const char *address,
		   char *out, size_t outsize)
{
	char *at;

	if (!auth_address_valid(address))
		return -1;
	if (rb_strlcpy(out, address, outsize) < 0)
		return -1;
	at = strchr(out, '@');
	/* ASCII only: UTF-8 case folding is locale and version dependent,
	 * and a canonical form must never change under us. */
	rb_str_lower(at + 1);
	if (!localpart_case_sensitive) {
		*at = '\0';
		rb_str_lower(out);
		*at = '@';
	}
	return 0;
}

int
auth_address_normalize(const struct auth_db *db, const char *address,
		       char *out, size_t outsize)
{
	bool cs = db != NULL && db->localpart_case_sensitive;

	return auth_address_canon(cs, address, out, outsize);
}

int
auth_domain_canon(const char *domain, char *out, size_t outsize)
{
	if (!auth_domain_valid(domain))
		return -1;
	if (rb_strlcpy(out, domain, outsize) < 0)
		return -1;
	rb_str_lower(out);
	return 0;
}
