/* libFuzzer entry point for storage/'s name parsers: Maildir file names,
 * flag letters, mailbox names and addresses.  Besides "no crash", it
 * checks the invariants path safety rests on: a valid mailbox name maps
 * to exactly one folder entry (no '/', never "." or ".."), and that entry
 * decodes back to the same name. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_filename(const char *name)
{
	char base[STORAGE_NAME_MAX + 1], letters[8];
	uint64_t size, vsize;
	uint32_t flags;
	size_t blen;

	if (storage_filename_parse(name, base, sizeof(base), &size, &vsize,
				   &flags) < 0)
		return;
	blen = strlen(base);
	if (blen == 0 || strncmp(name, base, blen) != 0 ||
	    (name[blen] != '\0' && name[blen] != ':') || base[0] == '.' ||
	    strchr(base, '/') != NULL)
		abort();
	if ((flags & ~STORAGE_FLAGS_ALL) != 0)
		abort();
	storage_flags_format(flags, letters, sizeof(letters));
	if (storage_flags_parse(letters) != flags)
		abort();
}

static void
check_mailbox(const char *name)
{
	char rel[STORAGE_NAME_MAX + 2], back[RB_MAILBOX_NAME_MAX + 1];
	size_t len;

	if (!storage_mailbox_name_valid(name) || maildir_is_inbox(name))
		return;
	if (maildir_folder_rel(name, rel, sizeof(rel)) < 0)
		abort();
	len = strlen(rel);
	/* ".Enc.oded/": one entry of the user dir, then the '/'. */
	if (len < 3 || rel[0] != '.' || rel[len - 1] != '/' ||
	    memchr(rel, '/', len - 1) != NULL || strcmp(rel, "../") == 0)
		abort();
	rel[len - 1] = '\0';
	if (maildir_folder_decode(rel, back, sizeof(back)) < 0 ||
	    strcmp(back, name) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[1024], back[RB_MAILBOX_NAME_MAX + 1];

	if (size >= sizeof(name))
		return 0;
	memcpy(name, data, size);
	name[size] = '\0';
	check_filename(name);
	check_mailbox(name);
	(void)storage_address_valid(name);
	/* Whatever decodes as a folder must be a valid, canonical name. */
	if (maildir_folder_decode(name, back, sizeof(back)) == 0 &&
	    !storage_mailbox_name_valid(back))
		abort();
	return 0;
}
