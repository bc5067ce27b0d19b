/* String and number helpers.  Everything is ASCII and locale-free: mail
 * protocols are defined on octets, not on the C library's locale. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/common.h"

int
rb_snprintf(char *dst, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(dst, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			dst[0] = '\0';
		return -1;
	}
	return 0;
}

int
rb_strlcpy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size == 0)
		return -1;
	if (len >= size) {
		dst[0] = '\0';
		return -1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

static int
ascii_lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

void
rb_str_lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)ascii_lower((unsigned char)*s);
}

int
rb_strncasecmp(const char *a, const char *b, size_t n)
{
	for (; n > 0; a++, b++, n--) {
		int ca = ascii_lower((unsigned char)*a);
		int cb = ascii_lower((unsigned char)*b);

		if (ca != cb)
			return ca - cb;
		if (ca == '\0')
			break;
	}
	return 0;
}

int
rb_strcasecmp(const char *a, const char *b)
{
	return rb_strncasecmp(a, b, SIZE_MAX);
}

int
rb_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *value_r)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v < min || v > max)
		return -1;
	*value_r = v;
	return 0;
}

int
rb_parse_size(const char *s, uint64_t *value_r)
{
	char digits[32];
	size_t len = strlen(s);
	uint64_t mult = 1, v;

	if (len == 0 || len >= sizeof(digits))
		return -1;
	memcpy(digits, s, len + 1);
	switch (digits[len - 1]) {
	case 'k': case 'K': mult = 1024ULL; break;
	case 'm': case 'M': mult = 1024ULL * 1024; break;
	case 'g': case 'G': mult = 1024ULL * 1024 * 1024; break;
	default: break;
	}
	if (mult != 1)
		digits[len - 1] = '\0';
	if (rb_parse_uint(digits, 0, UINT64_MAX, &v) < 0 ||
	    v > UINT64_MAX / mult)
		return -1;
	*value_r = v * mult;
	return 0;
}

int
rb_parse_bool(const char *s, bool *value_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < RB_N_ELEMENTS(yes); i++) {
		if (rb_strcasecmp(s, yes[i]) == 0) {
			*value_r = true;
			return 0;
		}
		if (rb_strcasecmp(s, no[i]) == 0) {
			*value_r = false;
			return 0;
		}
	}
	return -1;
}

uint64_t
rb_now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
