/* libFuzzer target: the POP3 command parser must never crash or read out
 * of bounds, must consume every byte, and must give the same commands
 * whether the input arrives whole or one byte at a time.  The first input
 * byte chooses the mode switches (SASL response lines after AUTH) so the
 * fuzzer reaches both modes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "pop3d/pop3d.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fingerprint of one result, cheap to compare. */
static uint64_t
digest(uint64_t h, int ret, const struct pop3_cmd *cmd)
{
	const char *strs[2] = { cmd->arg, cmd->arg2 };

	h = h * 31 + (uint64_t)(ret + 2);
	h = h * 31 + (uint64_t)cmd->verb;
	h = h * 31 + (uint64_t)cmd->error;
	h = h * 31 + cmd->argc;
	h = h * 31 + cmd->msg;
	h = h * 31 + cmd->lines;
	for (size_t i = 0; i < 2; i++) {
		if (strs[i] == NULL)
			continue;
		for (const char *p = strs[i]; *p != '\0'; p++)
			h = h * 131 + (unsigned char)*p;
	}
	if (ret < 0 && cmd->error_text == NULL)
		abort();
	return h;
}

static uint64_t
run(const uint8_t *data, size_t size, size_t step, bool sasl_after_auth)
{
	static struct pop3_parser p;
	uint64_t h = 0;
	size_t off = 0;

	pop3_parser_init(&p);
	while (off < size) {
		size_t n = step == 0 || size - off < step ? size - off : step;
		size_t done = 0;

		while (done < n) {
			struct pop3_cmd cmd;
			size_t consumed;
			int ret;

			ret = pop3_parse(&p, data + off + done, n - done,
					 &consumed, &cmd);
			if (consumed > n - done)
				abort();
			done += consumed;
			if (ret == 0) {
				if (done != n)
					abort();
				continue;
			}
			h = digest(h, ret, &cmd);
			/* as the session does: AUTH mech without a response
			 * starts response mode, "*" ends it */
			if (sasl_after_auth) {
				if (ret == 1 && cmd.verb == POP3_VERB_AUTH &&
				    cmd.argc == 1)
					pop3_parser_set_sasl(&p, true);
				else if (cmd.verb == POP3_VERB_SASL_RESPONSE &&
					 strcmp(cmd.arg, "*") == 0)
					pop3_parser_set_sasl(&p, false);
			}
		}
		off += n;
	}
	return h;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool sasl;

	if (size == 0)
		return 0;
	sasl = (data[0] & 1) != 0;
	data++;
	size--;
	if (run(data, size, 0, sasl) != run(data, size, 1, sasl))
		abort();
	return 0;
}
