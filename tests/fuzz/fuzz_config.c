/* libFuzzer target: the INI config parser must never crash, leak or read
 * out of bounds, whatever the bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rb_config cfg;
	char *err = NULL;

	rb_config_defaults(&cfg);
	(void)rb_config_parse("fuzz", (const char *)data, size, &cfg, &err);
	free(err);
	rb_config_free(&cfg);
	return 0;
}
