/* Fault injection (SQLite's faultsim idea): ROOST_FAULT="site:N,..." makes
 * the Nth and later calls of rb_fault("site") report a failure, so tests
 * can prove that every failure point leaves a recoverable state. */
#include <stdlib.h>
#include <string.h>

#include "common/common.h"

#define FAULT_SITES_MAX 16

static struct {
	char site[32];
	unsigned long nth;
	unsigned long calls;
} faults[FAULT_SITES_MAX];
static size_t fault_count;
static int fault_state;	/* 0 unparsed, 1 none, 2 some */

static void
fault_parse(void)
{
	const char *env = getenv("ROOST_FAULT");
	char copy[512], *save = NULL;

	fault_state = 1;
	if (env == NULL || rb_strlcpy(copy, env, sizeof(copy)) < 0)
		return;
	for (char *tok = strtok_r(copy, ",", &save); tok != NULL &&
	     fault_count < FAULT_SITES_MAX; tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		uint64_t n = 1;

		if (colon != NULL) {
			*colon = '\0';
			if (rb_parse_uint(colon + 1, 1, 1000000000, &n) < 0)
				continue;
		}
		if (rb_strlcpy(faults[fault_count].site, tok,
			       sizeof(faults[0].site)) < 0)
			continue;
		faults[fault_count].nth = (unsigned long)n;
		fault_count++;
	}
	if (fault_count > 0)
		fault_state = 2;
}

bool
rb_fault(const char *site)
{
	if (fault_state == 0)
		fault_parse();
	if (fault_state == 1)
		return false;
	for (size_t i = 0; i < fault_count; i++) {
		if (strcmp(faults[i].site, site) == 0)
			return ++faults[i].calls >= faults[i].nth;
	}
	return false;
}
