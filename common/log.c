/* Logging: one key=value line per event, to stderr or syslog.  Peer bytes
 * go through rb_log_escape so a client cannot forge log lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"

static const char *log_ident = "roost";
static enum rb_log_target log_target = RB_LOG_STDERR;
static enum rb_log_level log_level = RB_LOG_INFO;

void
rb_log_init(const char *ident, enum rb_log_target target,
	    enum rb_log_level level)
{
	log_ident = ident;
	log_target = target;
	log_level = level;
	if (target == RB_LOG_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

bool
rb_log_enabled(enum rb_log_level level)
{
	return level >= log_level;
}

static void log_v(enum rb_log_level level, const char *fmt, va_list ap)
	RB_PRINTF(2, 0);

static void
log_v(enum rb_log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = { "debug", "info", "warning",
					     "error" };
	static const int prio[] = { LOG_DEBUG, LOG_INFO, LOG_WARNING,
				    LOG_ERR };
	char line[2048];
	int n;

	if (!rb_log_enabled(level))
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	if (log_target == RB_LOG_SYSLOG) {
		syslog(prio[level], "%s: %s", names[level], line);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char stamp[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One write per line so lines of concurrent workers don't mix. */
	char out[2200];
	int m = snprintf(out, sizeof(out), "%s.%03ldZ %s[%d]: %s: %s\n", stamp,
			 ts.tv_nsec / 1000000, log_ident, (int)getpid(),
			 names[level], line);
	if (m > 0) {
		size_t len = (size_t)m < sizeof(out) ? (size_t)m
						     : sizeof(out) - 1;
		out[len - 1] = '\n';
		(void)rb_write_all(STDERR_FILENO, out, len);
	}
}

#define LOG_FN(name, level)                                                  \
	void name(const char *fmt, ...)                                      \
	{                                                                    \
		va_list ap;                                                  \
		va_start(ap, fmt);                                           \
		log_v(level, fmt, ap);                                       \
		va_end(ap);                                                  \
	}
LOG_FN(log_debug, RB_LOG_DEBUG)
LOG_FN(log_info, RB_LOG_INFO)
LOG_FN(log_warning, RB_LOG_WARNING)
LOG_FN(log_error, RB_LOG_ERROR)

void
log_fatal(const char *fmt, ...)
{
	va_list ap;
	enum rb_log_level saved = log_level;

	log_level = RB_LOG_DEBUG;
	va_start(ap, fmt);
	log_v(RB_LOG_ERROR, fmt, ap);
	va_end(ap);
	log_level = saved;
	abort();
}

const char *
rb_log_escape(const void *p, size_t n, char *out, size_t outsize)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = p;
	size_t o = 0;

	if (outsize == 0)
		return out;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		size_t need = (c < 0x20 || c >= 0x7f || c == '"' ||
			       c == '\\') ? 4 : 1;

		/* Keep room for "..." and the NUL. */
		if (o + need + 4 > outsize) {
			if (o + 4 <= outsize) {
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (need == 4) {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}
