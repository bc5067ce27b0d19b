/* Allocation wrappers: a worker that cannot allocate is restarted by its
 * master, so failing loudly here beats threading ENOMEM everywhere. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

static RB_NORETURN void
oom(size_t size)
{
	log_fatal("out of memory allocating %zu bytes", size);
}

void *
rb_malloc(size_t size)
{
	void *p = malloc(size == 0 ? 1 : size);

	if (p == NULL)
		oom(size);
	return p;
}

void *
rb_calloc(size_t nmemb, size_t size)
{
	void *p;

	if (size != 0 && nmemb > SIZE_MAX / size)
		oom(SIZE_MAX);
	p = calloc(nmemb == 0 ? 1 : nmemb, size == 0 ? 1 : size);
	if (p == NULL)
		oom(nmemb * size);
	return p;
}

void *
rb_realloc(void *p, size_t size)
{
	void *n = realloc(p, size == 0 ? 1 : size);

	if (n == NULL)
		oom(size);
	return n;
}

char *
rb_strdup(const char *s)
{
	return rb_strndup(s, strlen(s));
}

char *
rb_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = rb_malloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

char *
rb_strdup_printf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		oom(0);
	va_end(ap);
	return p;
}

void
rb_free(void *pp)
{
	void **p = pp;

	free(*p);
	*p = NULL;
}

bool
rb_add_overflows(size_t a, size_t b, size_t *sum_r)
{
	return __builtin_add_overflow(a, b, sum_r);
}
