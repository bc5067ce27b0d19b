/* Maildir names: flag letters, message file names, mailbox name checks and
 * their on-disk encoding, unique names.  Pure string work, no index. */
#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "storage/storage_int.h"

/* System flags in the ASCII order Maildir wants them written. */
static const struct {
	char letter;
	uint32_t flag;
} flag_letters[] = {
	{ 'D', STORAGE_FLAG_DRAFT },
	{ 'F', STORAGE_FLAG_FLAGGED },
	{ 'P', STORAGE_FLAG_PASSED },
	{ 'R', STORAGE_FLAG_ANSWERED },
	{ 'S', STORAGE_FLAG_SEEN },
	{ 'T', STORAGE_FLAG_DELETED },
};

static uint32_t
flag_of_letter(char c)
{
	for (size_t i = 0; i < RB_N_ELEMENTS(flag_letters); i++) {
		if (flag_letters[i].letter == c)
			return flag_letters[i].flag;
	}
	return 0;
}

uint32_t
storage_flags_parse(const char *letters)
{
	uint32_t flags = 0;

	if (letters == NULL)
		return 0;
	for (const char *p = letters; *p != '\0'; p++)
		flags |= flag_of_letter(*p);
	return flags;
}

const char *
storage_flags_format(uint32_t flags, char *buf, size_t size)
{
	size_t n = 0;

	if (size == 0)
		return "";
	for (size_t i = 0; i < RB_N_ELEMENTS(flag_letters); i++) {
		if ((flags & flag_letters[i].flag) == 0)
			continue;
		if (n + 1 >= size)
			break;
		buf[n++] = flag_letters[i].letter;
	}
	buf[n] = '\0';
	return buf;
}

/* Parses the digits of "S=123" up to ',' or the end; false when absent or
 * malformed (other tools' fields are ignored, never trusted half-way). */
static bool
parse_size_field(const char *p, const char *end, uint64_t *value_r)
{
	uint64_t v = 0;

	if (p == end)
		return false;
	for (; p < end && *p != ','; p++) {
		if (*p < '0' || *p > '9')
			return false;
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	*value_r = v;
	return true;
}

int
storage_filename_parse(const char *name, char *base_r, size_t base_size,
		       uint64_t *size_r, uint64_t *vsize_r, uint32_t *flags_r)
{
	const char *colon, *end, *p;
	uint64_t size = 0, vsize = 0;
	uint32_t flags = 0;
	size_t base_len;

	if (name == NULL || name[0] == '\0' || name[0] == '.' ||
	    strchr(name, '/') != NULL)
		return -1;
	/* Like Dovecot, the base ends at the first ':' whatever follows;
	 * only ":2," carries flags (":1," is experimental and unused). */
	colon = strchr(name, ':');
	base_len = colon != NULL ? (size_t)(colon - name) : strlen(name);
	if (base_len == 0 || base_len >= base_size)
		return -1;
	end = name + base_len;
	for (p = strchr(name, ','); p != NULL && p < end;
	     p = memchr(p + 1, ',', (size_t)(end - p - 1))) {
		const char *field = p + 1, *fend;

		fend = memchr(field, ',', (size_t)(end - field));
		if (fend == NULL)
			fend = end;
		if (fend - field > 2 && field[1] == '=') {
			if (field[0] == 'S')
				(void)parse_size_field(field + 2, fend, &size);
			else if (field[0] == 'W')
				(void)parse_size_field(field + 2, fend, &vsize);
		}
		if (fend == end)
			break;
	}
	if (colon != NULL && colon[1] == '2' && colon[2] == ',')
		flags = storage_flags_parse(colon + 3);
	memcpy(base_r, name, base_len);
	base_r[base_len] = '\0';
	if (size_r != NULL)
		*size_r = size;
	if (vsize_r != NULL)
		*vsize_r = vsize;
	if (flags_r != NULL)
		*flags_r = flags;
	return 0;
}

uint32_t
maildir_name_flags(const char *name)
{
	const char *info = strchr(name, ':');

	if (info == NULL || info[1] != '2' || info[2] != ',')
		return 0;
	return storage_flags_parse(info + 3);
}

int
maildir_filename_make(const char *base, uint32_t flags, const char *old_name,
		      char *buf, size_t size)
{
	char letters[8 + 26 + 1];
	bool extra[26] = { false };
	const char *info;
	size_t n;

	storage_flags_format(flags, letters, 8);
	n = strlen(letters);
	/* Keep other tools' keyword letters (a-z, their meaning lives in
	 * their own keyword file) so a flag change here does not drop
	 * them; written after ours, which keeps the ASCII order. */
	info = old_name != NULL ? strchr(old_name, ':') : NULL;
	if (info != NULL && info[1] == '2' && info[2] == ',') {
		for (const char *p = info + 3; *p != '\0'; p++) {
			if (*p >= 'a' && *p <= 'z')
				extra[*p - 'a'] = true;
		}
	}
	for (int i = 0; i < 26; i++) {
		if (extra[i])
			letters[n++] = (char)('a' + i);
	}
	letters[n] = '\0';
	return rb_snprintf(buf, size, "%s:2,%s", base, letters);
}

const char *
maildir_sub_name(enum maildir_sub sub)
{
	return sub == MAILDIR_CUR ? "cur" : "new";
}

/* ---- unique names ---- */

/* The host as it may appear in a file name: '/' and ':' would break the
 * path and the info separator (Maildir convention \057, \072); ',' is
 * escaped too because the fields after it (S=, W=) are parsed. */
static const char *
unique_host(void)
{
	static char host[STORAGE_HOST_MAX + 1];
	char raw[RB_HOSTNAME_MAX + 1];
	size_t n = 0;

	if (host[0] != '\0')
		return host;
	if (gethostname(raw, sizeof(raw)) < 0 || raw[0] == '\0')
		rb_strlcpy(raw, "localhost", sizeof(raw));
	raw[sizeof(raw) - 1] = '\0';
	for (const char *p = raw; *p != '\0'; p++) {
		const char *esc = NULL;
		size_t len;

		if (*p == '/')
			esc = "\\057";
		else if (*p == ':')
			esc = "\\072";
		else if (*p == ',')
			esc = "\\054";
		len = esc != NULL ? 4 : 1;
		if (n + len > STORAGE_HOST_MAX)
			break;
		if (esc != NULL)
			memcpy(host + n, esc, len);
		else
			host[n] = (*p > 0x20 && *p < 0x7f) ? *p : '_';
		n += len;
	}
	host[n] = '\0';
	return host;
}

int
maildir_unique_base(char *buf, size_t size)
{
	static unsigned long counter;
	struct timeval tv;

	gettimeofday(&tv, NULL);
	counter++;
	return rb_snprintf(buf, size, "%lld.M%06ldP%ldQ%lu.%s",
			   (long long)tv.tv_sec, (long)tv.tv_usec,
			   (long)getpid(), counter, unique_host());
}

/* ---- mailbox names ---- */

bool
maildir_is_inbox(const char *name)
{
	return rb_strcasecmp(name, "INBOX") == 0;
}

const char *
maildir_name_canon(const char *name)
{
	return maildir_is_inbox(name) ? "INBOX" : name;
}

/* Length of the UTF-8 sequence at p, or 0 if it is malformed (overlong,
 * surrogate, past U+10FFFF, truncated). */
static size_t
utf8_seq_len(const unsigned char *p)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1fu;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0fu;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07u;
	} else {
		return 0;
	}
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* '.' is the hierarchy separator on disk, '%' the escape itself, and '~'
 * is escaped so names cannot look like editor backups or home paths. */
static const char *
escape_of(char c)
{
	switch (c) {
	case '.':
		return "%2E";
	case '%':
		return "%25";
	case '~':
		return "%7E";
	default:
		return NULL;
	}
}

static bool
is_escaped_char(char c)
{
	return escape_of(c) != NULL;
}

bool
storage_mailbox_name_valid(const char *name)
{
	size_t len, comp_len = 0, depth = 1, disk_len = 1;
	const unsigned char *p;

	if (name == NULL)
		return false;
	len = strlen(name);
	if (len == 0 || len > RB_MAILBOX_NAME_MAX)
		return false;
	if (maildir_is_inbox(name))
		return true;
	p = (const unsigned char *)name;
	while (*p != '\0') {
		size_t n;

		if (*p == '/') {
			if (comp_len == 0 || ++depth > RB_MAILBOX_DEPTH_MAX)
				return false;
			if ((comp_len == 1 && p[-1] == '.') ||
			    (comp_len == 2 && p[-1] == '.' && p[-2] == '.'))
				return false;
			comp_len = 0;
			disk_len++;
			p++;
			continue;
		}
		if (*p < 0x20 || *p == 0x7f)
			return false;
		n = utf8_seq_len(p);
		if (n == 0)
			return false;
		disk_len += is_escaped_char((char)*p) ? 3 : n;
		comp_len += n;
		p += n;
	}
	if (comp_len == 0)
		return false;
	if ((comp_len == 1 && p[-1] == '.') ||
	    (comp_len == 2 && p[-1] == '.' && p[-2] == '.'))
		return false;
	/* The folder ".Enc.oded" is one directory entry. */
	return disk_len <= STORAGE_NAME_MAX;
}

int
maildir_folder_rel(const char *name, char *buf, size_t size)
{
	size_t n = 0;

	if (!storage_mailbox_name_valid(name))
		return -1;
	if (maildir_is_inbox(name)) {
		if (size == 0)
			return -1;
		buf[0] = '\0';
		return 0;
	}
	if (size < 1)
		return -1;
	buf[n++] = '.';
	for (const char *p = name; *p != '\0'; p++) {
		size_t need = is_escaped_char(*p) ? 3 : 1;

		/* This char, then room for the final '/' and NUL. */
		if (n + need + 2 > size)
			return -1;
		if (*p == '/') {
			buf[n++] = '.';
		} else if (is_escaped_char(*p)) {
			memcpy(buf + n, escape_of(*p), 3);
			n += 3;
		} else {
			buf[n++] = *p;
		}
	}
	buf[n++] = '/';
	buf[n] = '\0';
	return 0;
}

int
maildir_folder_decode(const char *entry, char *name_r, size_t size)
{
	char check[STORAGE_NAME_MAX + 2];
	size_t n = 0;

	if (entry[0] != '.' || entry[1] == '\0')
		return -1;
	for (const char *p = entry + 1; *p != '\0'; p++) {
		char c = *p;

		if (n + 1 >= size)
			return -1;
		if (c == '.') {
			c = '/';
		} else if (c == '%') {
			if (strncmp(p, "%2E", 3) == 0)
				c = '.';
			else if (strncmp(p, "%25", 3) == 0)
				c = '%';
			else if (strncmp(p, "%7E", 3) == 0)
				c = '~';
			else
				return -1;
			p += 2;
		}
		name_r[n++] = c;
	}
	name_r[n] = '\0';
	/* Canonical only: "INBOX" is the user dir, never ".INBOX", and an
	 * entry another tool wrote with a raw '~' is not one of ours. */
	if (maildir_is_inbox(name_r) ||
	    maildir_folder_rel(name_r, check, sizeof(check)) < 0)
		return -1;
	n = strlen(check);
	if (n < 2 || strncmp(check, entry, n - 1) != 0 ||
	    entry[n - 1] != '\0')
		return -1;
	return 0;
}

/* ---- addresses ---- */

static bool
path_component_valid(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '/' || c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

int
maildir_address_split(const char *address, char *local_r, size_t local_size,
		      char *domain_r, size_t domain_size)
{
	const char *at;
	size_t llen, dlen;

	if (address == NULL || (at = strrchr(address, '@')) == NULL)
		return -1;
	llen = (size_t)(at - address);
	dlen = strlen(at + 1);
	if (!path_component_valid(address, llen, RB_LOCALPART_MAX) ||
	    !path_component_valid(at + 1, dlen, RB_DOMAIN_MAX) ||
	    llen >= local_size || dlen >= domain_size)
		return -1;
	memcpy(local_r, address, llen);
	local_r[llen] = '\0';
	memcpy(domain_r, at + 1, dlen + 1);
	return 0;
}

bool
storage_address_valid(const char *address)
{
	char local[RB_LOCALPART_MAX + 1], domain[RB_DOMAIN_MAX + 1];

	return maildir_address_split(address, local, sizeof(local), domain,
				     sizeof(domain)) == 0;
}

/* ---- sizes ---- */

int
maildir_file_vsize(int fd, uint64_t *size_r, uint64_t *vsize_r)
{
	unsigned char buf[65536];
	uint64_t size = 0, lfs = 0;
	unsigned char prev = 0;
	ssize_t r;

	/* Bare LFs only: a file another tool stored with CRLF already has
	 * its CRLF size as its size. */
	for (;;) {
		r = read(fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] == '\n' && prev != '\r')
				lfs++;
			prev = buf[i];
		}
		size += (uint64_t)r;
	}
	*size_r = size;
	*vsize_r = size + lfs;
	return 0;
}
