/*
 * roostctl output: a minimal JSON writer and aligned text tables.
 *
 * The JSON writer exists so that scripts get a document that any parser
 * accepts whatever a mailbox or file name holds: every string goes
 * through one escaper that also replaces invalid UTF-8 (JSON text must
 * be Unicode, RFC 8259 §8.1).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin/admin_int.h"

/* Length of the valid UTF-8 sequence at p (2..4), 0 if invalid (RFC 3629:
 * no overlongs, surrogates or code points past U+10FFFF).  Stops at a NUL
 * because NUL is never a continuation byte. */
static size_t
utf8_len(const unsigned char *p)
{
	size_t n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	}
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return n;
}

void
admin_json_escape(FILE *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	fputc('"', out);
	while (*p != '\0') {
		switch (*p) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\b':
			fputs("\\b", out);
			break;
		case '\f':
			fputs("\\f", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				fprintf(out, "\\u%04x", *p);
			} else if (*p < 0x80) {
				fputc(*p, out);
			} else if ((n = utf8_len(p)) > 0) {
				fwrite(p, 1, n, out);
				p += n;
				continue;
			} else {
				fputs("\\ufffd", out);
			}
			break;
		}
		p++;
	}
	fputc('"', out);
}

void
admin_json_init(struct admin_json *j, FILE *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
}

/* Separator before a value or key at the current level. */
static void
json_sep(struct admin_json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->count[j->depth]++ > 0)
		fputc(',', j->out);
}

static void
json_open(struct admin_json *j, char c)
{
	json_sep(j);
	fputc(c, j->out);
	RB_CHECK(j->depth + 1 < ADMIN_JSON_DEPTH);
	j->count[++j->depth] = 0;
}

static void
json_close(struct admin_json *j, char c)
{
	RB_CHECK(j->depth > 0);
	j->depth--;
	fputc(c, j->out);
}

void
admin_json_obj_begin(struct admin_json *j)
{
	json_open(j, '{');
}

void
admin_json_obj_end(struct admin_json *j)
{
	json_close(j, '}');
}

void
admin_json_arr_begin(struct admin_json *j)
{
	json_open(j, '[');
}

void
admin_json_arr_end(struct admin_json *j)
{
	json_close(j, ']');
}

void
admin_json_key(struct admin_json *j, const char *key)
{
	json_sep(j);
	admin_json_escape(j->out, key);
	fputc(':', j->out);
	j->after_key = true;
}

void
admin_json_str(struct admin_json *j, const char *s)
{
	json_sep(j);
	admin_json_escape(j->out, s);
}

void
admin_json_int(struct admin_json *j, int64_t v)
{
	json_sep(j);
	fprintf(j->out, "%" PRId64, v);
}

void
admin_json_uint(struct admin_json *j, uint64_t v)
{
	json_sep(j);
	fprintf(j->out, "%" PRIu64, v);
}

void
admin_json_bool(struct admin_json *j, bool v)
{
	json_sep(j);
	fputs(v ? "true" : "false", j->out);
}

void
admin_json_null(struct admin_json *j)
{
	json_sep(j);
	fputs("null", j->out);
}

void
admin_json_finish(struct admin_json *j)
{
	RB_CHECK(j->depth == 0);
	fputc('\n', j->out);
}

/* ---- text ---- */

const char *
admin_printable(const char *s, char *buf, size_t size)
{
	size_t i;

	if (size == 0)
		return "";
	for (i = 0; s[i] != '\0' && i + 1 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	buf[i] = '\0';
	return buf;
}

/* Display width: code points, not bytes (continuation bytes do not
 * count), so UTF-8 names line up on a UTF-8 terminal. */
static size_t
text_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	}
	return w;
}

void
admin_table_init(struct admin_table *t, const char *const *headers,
		 size_t ncols)
{
	memset(t, 0, sizeof(*t));
	t->headers = headers;
	t->ncols = ncols;
}

void
admin_table_add(struct admin_table *t, const char *const *row)
{
	size_t i, len;
	char *cell;

	if (t->nrows == t->cap) {
		t->cap = t->cap == 0 ? 16 : t->cap * 2;
		t->cells = rb_realloc(t->cells,
				      t->cap * t->ncols * sizeof(*t->cells));
	}
	for (i = 0; i < t->ncols; i++) {
		len = strlen(row[i]);
		cell = rb_malloc(len + 1);
		admin_printable(row[i], cell, len + 1);
		t->cells[t->nrows * t->ncols + i] = cell;
	}
	t->nrows++;
}

static void
print_row(FILE *out, const char *const *cells, const size_t *width,
	  size_t ncols)
{
	size_t i, w;

	for (i = 0; i < ncols; i++) {
		fputs(cells[i], out);
		if (i + 1 == ncols)
			break;
		for (w = text_width(cells[i]); w < width[i] + 2; w++)
			fputc(' ', out);
	}
	fputc('\n', out);
}

void
admin_table_print(const struct admin_table *t, FILE *out)
{
	size_t *width = rb_calloc(t->ncols, sizeof(*width));
	size_t r, i, w;

	for (i = 0; i < t->ncols; i++)
		width[i] = text_width(t->headers[i]);
	for (r = 0; r < t->nrows; r++) {
		for (i = 0; i < t->ncols; i++) {
			w = text_width(t->cells[r * t->ncols + i]);
			if (w > width[i])
				width[i] = w;
		}
	}
	print_row(out, t->headers, width, t->ncols);
	for (r = 0; r < t->nrows; r++) {
		print_row(out, (const char *const *)&t->cells[r * t->ncols],
			  width, t->ncols);
	}
	free(width);
}

void
admin_table_free(struct admin_table *t)
{
	size_t i;

	for (i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

void
admin_kv(FILE *out, const char *key, const char *fmt, ...)
{
	va_list ap;
	int n;

	n = fprintf(out, "%s:", key);
	for (; n < 18; n++)
		fputc(' ', out);
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fputc('\n', out);
}

const char *
admin_time(int64_t t, char *buf, size_t size)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
		rb_snprintf(buf, size, "%" PRId64, t);
	return buf;
}

const char *
admin_quota_text(int64_t v, char *buf, size_t size)
{
	if (v == AUTH_QUOTA_DEFAULT)
		return "default";
	if (v == 0)
		return "unlimited";
	if (rb_snprintf(buf, size, "%" PRId64, v) < 0)
		return "?";
	return buf;
}

void
admin_print_done(struct admin_ctx *ctx, const char *result, const char *key,
		 const char *value, const char *text)
{
	struct admin_json j;

	if (!ctx->json) {
		printf("%s\n", text);
		return;
	}
	admin_json_init(&j, stdout);
	admin_json_obj_begin(&j);
	admin_json_key(&j, "result");
	admin_json_str(&j, result);
	admin_json_key(&j, key);
	admin_json_str(&j, value);
	admin_json_obj_end(&j);
	admin_json_finish(&j);
}
