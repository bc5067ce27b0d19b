/* Small things every program and protocol session needs the same way. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "common/common.h"

int
rb_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", program_invocation_short_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

void
rb_session_id(char *out)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	static uint64_t counter;
	uint64_t v;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != (ssize_t)sizeof(v)) {
		/* No entropy yet (early boot): ids need to be unique, not
		 * secret. */
		v = rb_now_usec() ^ ((uint64_t)getpid() << 40) ^ ++counter;
	}
	for (size_t i = 0; i < RB_SESSION_ID_LEN; i++) {
		out[i] = alphabet[v & 31];
		v >>= 5;
	}
	out[RB_SESSION_ID_LEN] = '\0';
}

void
rb_remote_ip(const char *remote, char *out, size_t size)
{
	const char *colon = strrchr(remote, ':');
	const char *start = remote;
	size_t n;

	out[0] = '\0';
	if (colon == NULL)
		return;
	n = (size_t)(colon - remote);
	if (n >= 2 && remote[0] == '[' && remote[n - 1] == ']') {
		start++;
		n -= 2;
	}
	if (n >= size)
		return;
	memcpy(out, start, n);
	out[n] = '\0';
}
