/*
 * roostctl alias and domain commands.  Both are thin: auth/ enforces the
 * rules (targets must be users, an alias may not shadow a user, a domain
 * in use cannot be removed) and we report its answer.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_int.h"

/* ---- alias ---- */

int
admin_cmd_alias_add(struct admin_ctx *ctx)
{
	char alias[RB_ADDR_MAX + 1], target[RB_ADDR_MAX + 1];
	char text[2 * RB_ADDR_MAX + 32];
	enum auth_status st;
	int rc;

	if ((rc = admin_canon_address(ctx, ctx->pos[0], alias,
				      sizeof(alias))) != 0 ||
	    (rc = admin_canon_address(ctx, ctx->pos[1], target,
				      sizeof(target))) != 0)
		return rc;
	if ((st = auth_alias_add(ctx->db, alias, target)) != AUTH_OK)
		return admin_fail_auth(ctx, st, alias);
	rb_snprintf(text, sizeof(text), "alias %s -> %s added", alias, target);
	admin_print_done(ctx, "added", "alias", alias, text);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_alias_del(struct admin_ctx *ctx)
{
	char alias[RB_ADDR_MAX + 1], target[RB_ADDR_MAX + 1];
	char text[2 * RB_ADDR_MAX + 32];
	enum auth_status st;
	int rc;

	if ((rc = admin_canon_address(ctx, ctx->pos[0], alias,
				      sizeof(alias))) != 0)
		return rc;
	if (ctx->npos > 1 &&
	    (rc = admin_canon_address(ctx, ctx->pos[1], target,
				      sizeof(target))) != 0)
		return rc;
	if (ctx->db == NULL)
		return admin_error(ADMIN_EXIT_FAIL, "%s: no such alias", alias);
	st = auth_alias_del(ctx->db, alias, ctx->npos > 1 ? target : NULL);
	if (st != AUTH_OK)
		return admin_fail_auth(ctx, st, alias);
	if (ctx->npos > 1)
		rb_snprintf(text, sizeof(text), "alias %s -> %s removed",
			    alias, target);
	else
		rb_snprintf(text, sizeof(text), "alias %s removed", alias);
	admin_print_done(ctx, "deleted", "alias", alias, text);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_alias_list(struct admin_ctx *ctx)
{
	static const char *const headers[] = { "ALIAS", "TARGETS" };
	struct auth_alias *list = NULL;
	struct admin_table t;
	struct admin_json j;
	struct rb_buf targets;
	enum auth_status st;
	size_t count = 0, i, k;

	if (ctx->db != NULL &&
	    (st = auth_alias_list(ctx->db, &list, &count)) != AUTH_OK)
		return admin_fail_auth(ctx, st, "alias list");
	/* Rows come ordered by alias, then in delivery order: group runs
	 * of one alias. */
	if (ctx->json) {
		admin_json_init(&j, stdout);
		admin_json_arr_begin(&j);
		for (i = 0; i < count; i = k) {
			admin_json_obj_begin(&j);
			admin_json_key(&j, "alias");
			admin_json_str(&j, list[i].alias);
			admin_json_key(&j, "targets");
			admin_json_arr_begin(&j);
			for (k = i; k < count &&
			     strcmp(list[k].alias, list[i].alias) == 0; k++)
				admin_json_str(&j, list[k].target);
			admin_json_arr_end(&j);
			admin_json_obj_end(&j);
		}
		admin_json_arr_end(&j);
		admin_json_finish(&j);
		free(list);
		return ADMIN_EXIT_OK;
	}
	admin_table_init(&t, headers, RB_N_ELEMENTS(headers));
	/* At most RB_ALIAS_TARGETS_MAX targets of RB_ADDR_MAX + 2 bytes. */
	rb_buf_init(&targets, (size_t)RB_ALIAS_TARGETS_MAX * (RB_ADDR_MAX + 2)
		    + 1);
	for (i = 0; i < count; i = k) {
		rb_buf_reset(&targets);
		for (k = i; k < count &&
		     strcmp(list[k].alias, list[i].alias) == 0; k++) {
			if (k > i)
				(void)rb_buf_append_str(&targets, ", ");
			(void)rb_buf_append_str(&targets, list[k].target);
		}
		const char *row[] = {
			list[i].alias,
			targets.data != NULL ? (const char *)targets.data : "",
		};
		admin_table_add(&t, row);
	}
	if (count > 0)
		admin_table_print(&t, stdout);
	else
		printf("no aliases\n");
	rb_buf_free(&targets);
	admin_table_free(&t);
	free(list);
	return ADMIN_EXIT_OK;
}

/* ---- domain ---- */

static int
check_domain(const char *domain, char *canon, size_t size)
{
	char probe[RB_ADDR_MAX + 1], shown[64];

	/* Domain syntax is the domain part of an address. */
	if (rb_snprintf(probe, sizeof(probe), "postmaster@%s", domain) < 0 ||
	    !auth_address_valid(probe) || rb_strlcpy(canon, domain, size) < 0) {
		return admin_error(ADMIN_EXIT_USAGE, "invalid domain '%s'",
				   admin_printable(domain, shown,
						   sizeof(shown)));
	}
	rb_str_lower(canon);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_domain_add(struct admin_ctx *ctx)
{
	char domain[RB_DOMAIN_MAX + 1], text[RB_DOMAIN_MAX + 32];
	enum auth_status st;
	int rc;

	if ((rc = check_domain(ctx->pos[0], domain, sizeof(domain))) != 0)
		return rc;
	if ((st = auth_domain_add(ctx->db, domain)) != AUTH_OK)
		return admin_fail_auth(ctx, st, domain);
	rb_snprintf(text, sizeof(text), "domain %s added", domain);
	admin_print_done(ctx, "added", "domain", domain, text);
	return ADMIN_EXIT_OK;
}

int
admin_cmd_domain_del(struct admin_ctx *ctx)
{
	char domain[RB_DOMAIN_MAX + 1], text[RB_DOMAIN_MAX + 32];
	enum auth_status st;
	int rc;

	if ((rc = check_domain(ctx->pos[0], domain, sizeof(domain))) != 0)
		return rc;
	if (ctx->db == NULL)
		return admin_error(ADMIN_EXIT_FAIL, "%s: no such domain",
				   domain);
	if ((st = auth_domain_del(ctx->db, domain)) != AUTH_OK)
		return admin_fail_auth(ctx, st, domain);
	rb_snprintf(text, sizeof(text), "domain %s removed", domain);
	admin_print_done(ctx, "deleted", "domain", domain, text);
	return ADMIN_EXIT_OK;
}

static bool
in_domain(const char *address, const char *domain)
{
	const char *at = strrchr(address, '@');

	return at != NULL && strcmp(at + 1, domain) == 0;
}

int
admin_cmd_domain_list(struct admin_ctx *ctx)
{
	static const char *const headers[] = { "DOMAIN", "USERS", "ALIASES" };
	struct auth_domain *domains = NULL;
	struct auth_user *users = NULL;
	struct auth_alias *aliases = NULL;
	size_t ndomains = 0, nusers = 0, naliases = 0, i, k;
	uint64_t nu, na;
	char nubuf[24], nabuf[24];
	struct admin_table t;
	struct admin_json j;
	enum auth_status st = AUTH_OK;
	int rc = ADMIN_EXIT_OK;

	if (ctx->db != NULL &&
	    ((st = auth_domain_list(ctx->db, &domains, &ndomains)) != AUTH_OK ||
	     (st = auth_user_list(ctx->db, &users, &nusers)) != AUTH_OK ||
	     (st = auth_alias_list(ctx->db, &aliases, &naliases)) != AUTH_OK)) {
		rc = admin_fail_auth(ctx, st, "domain list");
		goto out;
	}
	if (ctx->json) {
		admin_json_init(&j, stdout);
		admin_json_arr_begin(&j);
	} else {
		admin_table_init(&t, headers, RB_N_ELEMENTS(headers));
	}
	for (i = 0; i < ndomains; i++) {
		nu = na = 0;
		for (k = 0; k < nusers; k++)
			nu += in_domain(users[k].address, domains[i].name);
		/* Count aliases, not alias rows. */
		for (k = 0; k < naliases; k++) {
			if (in_domain(aliases[k].alias, domains[i].name) &&
			    (k == 0 || strcmp(aliases[k].alias,
					      aliases[k - 1].alias) != 0))
				na++;
		}
		if (ctx->json) {
			admin_json_obj_begin(&j);
			admin_json_key(&j, "domain");
			admin_json_str(&j, domains[i].name);
			admin_json_key(&j, "users");
			admin_json_uint(&j, nu);
			admin_json_key(&j, "aliases");
			admin_json_uint(&j, na);
			admin_json_obj_end(&j);
		} else {
			rb_snprintf(nubuf, sizeof(nubuf), "%" PRIu64, nu);
			rb_snprintf(nabuf, sizeof(nabuf), "%" PRIu64, na);
			const char *row[] = { domains[i].name, nubuf, nabuf };
			admin_table_add(&t, row);
		}
	}
	if (ctx->json) {
		admin_json_arr_end(&j);
		admin_json_finish(&j);
	} else {
		if (ndomains > 0)
			admin_table_print(&t, stdout);
		else
			printf("no domains\n");
		admin_table_free(&t);
	}
out:
	free(domains);
	free(users);
	free(aliases);
	return rc;
}
