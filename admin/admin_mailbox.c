/*
 * roostctl mailbox / index commands: thin wrappers over storage/, after
 * checking that the user exists in users.db (so a typo in an address is
 * "no such user", not a new empty store).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"

static int
check_mailbox_name(const char *name)
{
	char shown[RB_MAILBOX_NAME_MAX + 1];

	if (!storage_mailbox_name_valid(name)) {
		return admin_error(ADMIN_EXIT_USAGE, "invalid mailbox name "
				   "'%s'", admin_printable(name, shown,
							   sizeof(shown)));
	}
	return ADMIN_EXIT_OK;
}

static int
mailbox_fail(struct storage *st, enum storage_err err, const char *canon,
	     const char *name)
{
	char what[RB_ADDR_MAX + RB_MAILBOX_NAME_MAX + 8];
	char shown[RB_MAILBOX_NAME_MAX + 1];

	rb_snprintf(what, sizeof(what), "%s: %s", canon,
		    admin_printable(name, shown, sizeof(shown)));
	switch (err) {
	case STORAGE_ERR_NOTFOUND:
		return admin_error(ADMIN_EXIT_FAIL, "%s: no such mailbox",
				   what);
	case STORAGE_ERR_EXISTS:
		return admin_error(ADMIN_EXIT_FAIL, "%s: mailbox exists",
				   what);
	default:
		return admin_fail_storage(err, what, storage_error(st));
	}
}

static void
json_mailbox(struct admin_json *j, const struct storage_mailbox_info *mb)
{
	admin_json_obj_begin(j);
	admin_json_key(j, "name");
	admin_json_str(j, mb->name);
	admin_json_key(j, "messages");
	admin_json_uint(j, mb->messages);
	admin_json_key(j, "unseen");
	admin_json_uint(j, mb->unseen);
	admin_json_key(j, "uidvalidity");
	admin_json_uint(j, mb->uidvalidity);
	admin_json_key(j, "uidnext");
	admin_json_uint(j, mb->uidnext);
	admin_json_key(j, "highestmodseq");
	admin_json_uint(j, mb->highestmodseq);
	admin_json_key(j, "bytes");
	admin_json_uint(j, mb->bytes);
	admin_json_key(j, "vbytes");
	admin_json_uint(j, mb->vbytes);
	admin_json_key(j, "special_use");
	if (mb->special_use[0] != '\0')
		admin_json_str(j, mb->special_use);
	else
		admin_json_null(j);
	admin_json_key(j, "subscribed");
	admin_json_bool(j, mb->subscribed);
	admin_json_obj_end(j);
}

static void
print_done(struct admin_ctx *ctx, const char *result, const char *canon,
	   const char *name, const char *text)
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
	admin_json_key(&j, "address");
	admin_json_str(&j, canon);
	admin_json_key(&j, "mailbox");
	admin_json_str(&j, name);
	admin_json_obj_end(&j);
	admin_json_finish(&j);
}

int
admin_cmd_mailbox_list(struct admin_ctx *ctx)
{
	static const char *const headers[] = {
		"MAILBOX", "SPECIAL-USE", "SUBSCRIBED",
	};
	struct storage_mailbox_info *list = NULL;
	char canon[RB_ADDR_MAX + 1];
	struct storage *st;
	struct admin_table t;
	struct admin_json j;
	enum storage_err err;
	size_t count = 0, i;
	int rc;

	if ((rc = admin_user_store(ctx, ctx->pos[0], true, canon,
				   sizeof(canon), &st)) != 0)
		return rc;
	if ((err = storage_mailbox_list(st, &list, &count)) != STORAGE_OK) {
		rc = admin_fail_storage(err, canon, storage_error(st));
		storage_close(&st);
		return rc;
	}
	storage_close(&st);
	if (ctx->json) {
		admin_json_init(&j, stdout);
		admin_json_arr_begin(&j);
		for (i = 0; i < count; i++)
			json_mailbox(&j, &list[i]);
		admin_json_arr_end(&j);
		admin_json_finish(&j);
	} else {
		admin_table_init(&t, headers, RB_N_ELEMENTS(headers));
		for (i = 0; i < count; i++) {
			const char *row[] = {
				list[i].name,
				list[i].special_use[0] != '\0' ?
					list[i].special_use : "-",
				list[i].subscribed ? "yes" : "no",
			};
			admin_table_add(&t, row);
		}
		admin_table_print(&t, stdout);
		admin_table_free(&t);
	}
	free(list);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_mailbox_create(struct admin_ctx *ctx)
{
	char canon[RB_ADDR_MAX + 1], shown[RB_MAILBOX_NAME_MAX + 1];
	char text[RB_MAILBOX_NAME_MAX + 32];
	const char *name = ctx->pos[1];
	struct storage *st;
	enum storage_err err;
	int rc;

	if ((rc = check_mailbox_name(name)) != 0 ||
	    (rc = admin_user_store(ctx, ctx->pos[0], true, canon,
				   sizeof(canon), &st)) != 0)
		return rc;
	err = storage_mailbox_create(st, name);
	if (err != STORAGE_OK) {
		rc = mailbox_fail(st, err, canon, name);
		storage_close(&st);
		return rc;
	}
	storage_close(&st);
	rb_snprintf(text, sizeof(text), "mailbox %s created",
		    admin_printable(name, shown, sizeof(shown)));
	print_done(ctx, "created", canon, name, text);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_mailbox_delete(struct admin_ctx *ctx)
{
	char canon[RB_ADDR_MAX + 1], shown[RB_MAILBOX_NAME_MAX + 1];
	char text[RB_MAILBOX_NAME_MAX + 32];
	const char *name = ctx->pos[1];
	struct storage *st;
	enum storage_err err;
	int rc;

	if ((rc = check_mailbox_name(name)) != 0 ||
	    (rc = admin_user_store(ctx, ctx->pos[0], true, canon,
				   sizeof(canon), &st)) != 0)
		return rc;
	err = storage_mailbox_delete(st, name);
	if (err == STORAGE_ERR_PERM) {
		storage_close(&st);
		return admin_error(ADMIN_EXIT_FAIL, "%s: INBOX cannot be "
				   "deleted", canon);
	}
	if (err != STORAGE_OK) {
		rc = mailbox_fail(st, err, canon, name);
		storage_close(&st);
		return rc;
	}
	storage_close(&st);
	rb_snprintf(text, sizeof(text), "mailbox %s deleted",
		    admin_printable(name, shown, sizeof(shown)));
	print_done(ctx, "deleted", canon, name, text);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_mailbox_rename(struct admin_ctx *ctx)
{
	char canon[RB_ADDR_MAX + 1], text[2 * RB_MAILBOX_NAME_MAX + 32];
	char s_old[RB_MAILBOX_NAME_MAX + 1], s_new[RB_MAILBOX_NAME_MAX + 1];
	const char *oldname = ctx->pos[1], *newname = ctx->pos[2];
	struct storage *st;
	enum storage_err err;
	int rc;

	if ((rc = check_mailbox_name(oldname)) != 0 ||
	    (rc = check_mailbox_name(newname)) != 0 ||
	    (rc = admin_user_store(ctx, ctx->pos[0], true, canon,
				   sizeof(canon), &st)) != 0)
		return rc;
	err = storage_mailbox_rename(st, oldname, newname);
	if (err != STORAGE_OK) {
		/* EXISTS is about the new name, everything else the old. */
		rc = mailbox_fail(st, err, canon, err == STORAGE_ERR_EXISTS ?
				  newname : oldname);
		storage_close(&st);
		return rc;
	}
	storage_close(&st);
	rb_snprintf(text, sizeof(text), "mailbox %s renamed to %s",
		    admin_printable(oldname, s_old, sizeof(s_old)),
		    admin_printable(newname, s_new, sizeof(s_new)));
	print_done(ctx, "renamed", canon, newname, text);
	return ADMIN_EXIT_OK;
}

static void
status_row(struct admin_table *t, const struct storage_mailbox_info *mb)
{
	char msgs[16], unseen[16], uidv[16], uidn[16], bytes[24];

	rb_snprintf(msgs, sizeof(msgs), "%" PRIu32, mb->messages);
	rb_snprintf(unseen, sizeof(unseen), "%" PRIu32, mb->unseen);
	rb_snprintf(uidv, sizeof(uidv), "%" PRIu32, mb->uidvalidity);
	rb_snprintf(uidn, sizeof(uidn), "%" PRIu32, mb->uidnext);
	rb_snprintf(bytes, sizeof(bytes), "%" PRIu64, mb->bytes);
	const char *row[] = { mb->name, msgs, unseen, uidv, uidn, bytes };
	admin_table_add(t, row);
}

int
admin_cmd_mailbox_status(struct admin_ctx *ctx)
{
	static const char *const headers[] = {
		"MAILBOX", "MESSAGES", "UNSEEN", "UIDVALIDITY", "UIDNEXT",
		"BYTES",
	};
	struct storage_mailbox_info *list = NULL, one;
	const char *name = ctx->npos > 1 ? ctx->pos[1] : NULL;
	char canon[RB_ADDR_MAX + 1];
	struct storage *st;
	struct admin_table t;
	struct admin_json j;
	enum storage_err err;
	size_t count = 0, i;
	int rc;

	if (name != NULL && (rc = check_mailbox_name(name)) != 0)
		return rc;
	if ((rc = admin_user_store(ctx, ctx->pos[0], true, canon,
				   sizeof(canon), &st)) != 0)
		return rc;
	if (name != NULL) {
		err = storage_mailbox_status(st, name, &one);
		if (err != STORAGE_OK) {
			rc = mailbox_fail(st, err, canon, name);
			storage_close(&st);
			return rc;
		}
		list = &one;
		count = 1;
	} else if ((err = storage_mailbox_list(st, &list, &count)) !=
		   STORAGE_OK) {
		rc = admin_fail_storage(err, canon, storage_error(st));
		storage_close(&st);
		return rc;
	}
	storage_close(&st);

	if (ctx->json) {
		admin_json_init(&j, stdout);
		if (name == NULL)
			admin_json_arr_begin(&j);
		for (i = 0; i < count; i++)
			json_mailbox(&j, &list[i]);
		if (name == NULL)
			admin_json_arr_end(&j);
		admin_json_finish(&j);
	} else {
		admin_table_init(&t, headers, RB_N_ELEMENTS(headers));
		for (i = 0; i < count; i++)
			status_row(&t, &list[i]);
		admin_table_print(&t, stdout);
		admin_table_free(&t);
	}
	if (list != &one)
		free(list);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_index_check(struct admin_ctx *ctx)
{
	static const char *const headers[] = { "MAILBOX", "PROBLEM", "DETAIL" };
	struct storage_check_item *items = NULL;
	char canon[RB_ADDR_MAX + 1];
	struct storage *st;
	struct admin_table t;
	struct admin_json j;
	enum storage_err err;
	size_t count = 0, i;
	int rc;

	/* Without create: checking must not make a store appear. */
	if ((rc = admin_user_store(ctx, ctx->pos[0], false, canon,
				   sizeof(canon), &st)) != 0)
		return rc;
	err = storage_index_check(st, &items, &count);
	if (err != STORAGE_OK) {
		rc = admin_fail_storage(err, canon, storage_error(st));
		storage_close(&st);
		return rc;
	}
	storage_close(&st);

	if (ctx->json) {
		admin_json_init(&j, stdout);
		admin_json_obj_begin(&j);
		admin_json_key(&j, "address");
		admin_json_str(&j, canon);
		admin_json_key(&j, "consistent");
		admin_json_bool(&j, count == 0);
		admin_json_key(&j, "differences");
		admin_json_arr_begin(&j);
		for (i = 0; i < count; i++) {
			admin_json_obj_begin(&j);
			admin_json_key(&j, "mailbox");
			admin_json_str(&j, items[i].mailbox);
			admin_json_key(&j, "problem");
			admin_json_str(&j, items[i].what);
			admin_json_key(&j, "detail");
			admin_json_str(&j, items[i].detail);
			admin_json_obj_end(&j);
		}
		admin_json_arr_end(&j);
		admin_json_obj_end(&j);
		admin_json_finish(&j);
	} else if (count == 0) {
		printf("index of %s is consistent with the files\n", canon);
	} else {
		admin_table_init(&t, headers, RB_N_ELEMENTS(headers));
		for (i = 0; i < count; i++) {
			const char *row[] = {
				items[i].mailbox, items[i].what,
				items[i].detail,
			};
			admin_table_add(&t, row);
		}
		admin_table_print(&t, stdout);
		admin_table_free(&t);
		printf("\n%zu difference%s; 'roostctl index sync %s' takes "
		       "new and vanished files in, 'roostctl index rebuild "
		       "%s' repairs anything\n", count,
		       count == 1 ? "" : "s", canon, canon);
	}
	free(items);
	return count == 0 ? ADMIN_EXIT_OK : ADMIN_EXIT_FAIL;
}

int
admin_cmd_index_rebuild(struct admin_ctx *ctx)
{
	char canon[RB_ADDR_MAX + 1], text[RB_ADDR_MAX + 32];
	struct auth_user user;
	enum storage_err err;
	enum auth_status st;
	const char *error;
	int rc;

	if ((rc = admin_canon_address(ctx, ctx->pos[0], canon,
				      sizeof(canon))) != 0)
		return rc;
	if (ctx->db == NULL)
		return admin_error(ADMIN_EXIT_FAIL, "%s: no such user", canon);
	if ((st = auth_user_lookup(ctx->db, canon, &user)) != AUTH_OK)
		return admin_fail_auth(ctx, st, canon);
	err = storage_index_rebuild(ctx->cfg.general.data_dir, canon, &error);
	if (err == STORAGE_ERR_NOTFOUND) {
		return admin_error(ADMIN_EXIT_FAIL,
				   "%s: the user has no mail store", canon);
	}
	if (err != STORAGE_OK)
		return admin_fail_storage(err, canon, error);
	rb_snprintf(text, sizeof(text), "index of %s rebuilt", canon);
	if (ctx->json) {
		struct admin_json j;

		admin_json_init(&j, stdout);
		admin_json_obj_begin(&j);
		admin_json_key(&j, "result");
		admin_json_str(&j, "rebuilt");
		admin_json_key(&j, "address");
		admin_json_str(&j, canon);
		admin_json_obj_end(&j);
		admin_json_finish(&j);
	} else {
		printf("%s\n", text);
	}
	return ADMIN_EXIT_OK;
}

int
admin_cmd_index_sync(struct admin_ctx *ctx)
{
	struct storage_mailbox_info *list = NULL;
	char canon[RB_ADDR_MAX + 1], text[RB_ADDR_MAX + 64];
	struct storage *st;
	enum storage_err err;
	size_t count = 0;
	int rc;

	if ((rc = admin_user_store(ctx, ctx->pos[0], false, canon,
				   sizeof(canon), &st)) != 0)
		return rc;
	err = storage_mailbox_list(st, &list, &count);
	for (size_t i = 0; err == STORAGE_OK && i < count; i++) {
		struct storage_mailbox *box;

		/* Opening a mailbox syncs it with its folder. */
		err = storage_mailbox_open(st, list[i].name, &box);
		if (err == STORAGE_OK)
			storage_mailbox_close(&box);
	}
	free(list);
	if (err != STORAGE_OK) {
		rc = admin_fail_storage(err, canon, storage_error(st));
		storage_close(&st);
		return rc;
	}
	storage_close(&st);
	rb_snprintf(text, sizeof(text), "index of %s synced (%zu mailbox%s)",
		    canon, count, count == 1 ? "" : "es");
	print_done(ctx, "synced", canon, "*", text);
	return ADMIN_EXIT_OK;
}
