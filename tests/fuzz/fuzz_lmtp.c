/*
 * libFuzzer target: the LMTP parsers, driven the way a session drives
 * them.  Command lines are parsed until DATA (then dot-stuffed message
 * data up to the "." line) or BDAT n (then n octets of chunk data, and the
 * end of the message at LAST), then commands again.
 *
 * The input is run twice: whole, and cut into pieces whose size comes
 * from the first byte.  Both runs must produce the same event stream
 * (compared by hash), so a resumability bug is a crash, not a silent
 * difference.  The first byte also picks the command line limit.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lda/lda.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum mode { MODE_CMD, MODE_DATA, MODE_CHUNK };

struct run {
	struct lmtp_parser parser;
	struct lmtp_data data;
	bool data_active;
	enum mode mode;
	uint64_t chunk_left;
	bool chunk_last;
	uint64_t hash;
};

static void
mix(struct run *r, const void *p, size_t n)
{
	const unsigned char *b = p;

	/* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		r->hash ^= b[i];
		r->hash *= 0x100000001b3ULL;
	}
}

static void
mix_u64(struct run *r, uint64_t v)
{
	mix(r, &v, sizeof(v));
}

static void
data_start(struct run *r, bool stuffed)
{
	if (r->data_active)
		lmtp_data_free(&r->data);
	lmtp_data_init(&r->data, stuffed);
	r->data_active = true;
}

static void
data_event(struct run *r, const struct lmtp_data_event *ev)
{
	if (ev->line == NULL || ev->len > RB_LMTP_DATA_LINE_MAX)
		abort();
	mix_u64(r, ev->type);
	mix_u64(r, ev->split);
	mix_u64(r, ev->len);
	mix(r, ev->line, ev->len);
}

static void
command(struct run *r, int ret, const struct lmtp_cmd *cmd)
{
	size_t alen = strlen(cmd->address);

	if (alen > RB_ADDR_MAX || cmd->arg == NULL)
		abort();
	if ((ret < 0) != (cmd->error != LMTP_PERR_NONE))
		abort();
	if (ret < 0 && cmd->error_text == NULL)
		abort();
	mix_u64(r, (uint64_t)ret);
	mix_u64(r, cmd->verb);
	mix_u64(r, cmd->error);
	mix(r, cmd->address, alen);
	mix(r, cmd->arg, strlen(cmd->arg));
	mix_u64(r, cmd->size);
	mix_u64(r, cmd->body);
	if (ret < 0)
		return;
	if (cmd->verb == LMTP_VERB_DATA) {
		data_start(r, true);
		r->mode = MODE_DATA;
	} else if (cmd->verb == LMTP_VERB_BDAT) {
		if (!r->data_active || r->data.dot_stuffed)
			data_start(r, false);
		r->chunk_left = cmd->chunk_size;
		r->chunk_last = cmd->last;
		r->mode = MODE_CHUNK;
	}
}

static void
chunk_end(struct run *r)
{
	struct lmtp_data_event ev;

	r->mode = MODE_CMD;
	if (!r->chunk_last)
		return;
	while (lmtp_data_finish(&r->data, &ev) == 1)
		data_event(r, &ev);
	lmtp_data_free(&r->data);
	r->data_active = false;
}

static uint64_t
run(const uint8_t *p, size_t size, size_t step, size_t max_line)
{
	struct run *r = calloc(1, sizeof(*r));
	size_t off = 0;
	uint64_t hash;

	if (r == NULL)
		abort();
	r->hash = 0xcbf29ce484222325ULL;
	lmtp_parser_init(&r->parser, max_line);
	while (off < size || (r->mode == MODE_CHUNK && r->chunk_left == 0)) {
		size_t n = size - off < step ? size - off : step;
		size_t consumed = 0;
		struct lmtp_cmd cmd;
		struct lmtp_data_event ev;
		int ret;

		switch (r->mode) {
		case MODE_CMD:
			ret = lmtp_parse_command(&r->parser, p + off, n,
						 &consumed, &cmd);
			if (ret != 0)
				command(r, ret, &cmd);
			else if (consumed != n)
				abort();
			break;
		case MODE_DATA:
			ret = lmtp_data_parse(&r->data, p + off, n, &consumed,
					      &ev);
			if (ret == 1) {
				data_event(r, &ev);
				if (ev.type == LMTP_DATA_END)
					r->mode = MODE_CMD;
			} else if (consumed != n) {
				abort();
			}
			break;
		case MODE_CHUNK:
			if (r->chunk_left == 0) {
				chunk_end(r);
				continue;
			}
			if (n > r->chunk_left)
				n = (size_t)r->chunk_left;
			ret = lmtp_data_parse(&r->data, p + off, n, &consumed,
					      &ev);
			if (ret == 1)
				data_event(r, &ev);
			else if (consumed != n)
				abort();
			r->chunk_left -= consumed;
			break;
		}
		if (consumed > n)
			abort();
		off += consumed;
	}
	mix_u64(r, r->mode);
	hash = r->hash;
	lmtp_parser_free(&r->parser);
	if (r->data_active)
		lmtp_data_free(&r->data);
	free(r);
	return hash;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step, max_line;

	if (size < 1)
		return 0;
	step = (size_t)(data[0] & 0x0f) + 1;
	max_line = (data[0] & 0x10) ? 512 : 1000;
	if (run(data + 1, size - 1, SIZE_MAX, max_line) !=
	    run(data + 1, size - 1, step, max_line))
		abort();
	return 0;
}
