/* The one growable buffer: binary-safe, with a hard maximum so a peer can
 * never make us grow without bound (STYLE.md, "Memory and buffers"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

void
rb_buf_init(struct rb_buf *buf, size_t max)
{
	memset(buf, 0, sizeof(*buf));
	buf->max = max;
}

void
rb_buf_free(struct rb_buf *buf)
{
	free(buf->data);
	buf->data = NULL;
	buf->len = buf->cap = 0;
}

/* Makes room for n more bytes plus the trailing NUL. */
static int
buf_reserve(struct rb_buf *buf, size_t n)
{
	size_t need, cap;

	if (rb_add_overflows(buf->len, n, &need) || need > buf->max)
		return -1;
	if (need + 1 <= buf->cap)
		return 0;
	cap = buf->cap < 64 ? 64 : buf->cap;
	while (cap < need + 1)
		cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
	buf->data = rb_realloc(buf->data, cap);
	buf->cap = cap;
	return 0;
}

int
rb_buf_append(struct rb_buf *buf, const void *p, size_t n)
{
	if (buf_reserve(buf, n) < 0)
		return -1;
	if (n > 0)
		memcpy(buf->data + buf->len, p, n);
	buf->len += n;
	buf->data[buf->len] = '\0';
	return 0;
}

int
rb_buf_append_str(struct rb_buf *buf, const char *s)
{
	return rb_buf_append(buf, s, strlen(s));
}

int
rb_buf_vprintf(struct rb_buf *buf, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || buf_reserve(buf, (size_t)n) < 0)
		return -1;
	vsnprintf((char *)buf->data + buf->len, (size_t)n + 1, fmt, ap);
	buf->len += (size_t)n;
	return 0;
}

int
rb_buf_printf(struct rb_buf *buf, const char *fmt, ...)
{
	va_list ap;
	int ret;

	va_start(ap, fmt);
	ret = rb_buf_vprintf(buf, fmt, ap);
	va_end(ap);
	return ret;
}

void
rb_buf_consume(struct rb_buf *buf, size_t n)
{
	if (n >= buf->len) {
		rb_buf_reset(buf);
		return;
	}
	memmove(buf->data, buf->data + n, buf->len - n);
	buf->len -= n;
	buf->data[buf->len] = '\0';
}

void
rb_buf_reset(struct rb_buf *buf)
{
	buf->len = 0;
	if (buf->data != NULL)
		buf->data[0] = '\0';
}
