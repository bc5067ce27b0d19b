/*
 * Recipient resolution for delivery: user, alias, then +detail.
 *
 * Order matters and follows what Postfix's virtual(5) and Dovecot do: an
 * exact match wins over a detail match, so a user literally named
 * "a+b@x" still gets mail for "a+b@x", and only a miss strips the detail.
 */
#include <string.h>

#include "auth/auth_int.h"

enum match {
	MATCH_NONE,		/* neither user nor alias: try without detail */
	MATCH_FOUND,		/* r->users filled */
	MATCH_DEAD,		/* exists but nothing deliverable: stop */
};

static bool
already_listed(const struct auth_resolved *r, const char *user)
{
	size_t i;

	for (i = 0; i < r->count; i++) {
		if (strcmp(r->users[i], user) == 0)
			return true;
	}
	return false;
}

static enum auth_status
resolve_alias(struct auth_db *db, const char *canon,
	      struct auth_resolved *r, enum match *match_r)
{
	sqlite3_stmt *stmt = auth_db_stmt(db, AUTH_STMT_ALIAS_TARGETS);
	char target[RB_ADDR_MAX + 1];
	enum auth_status st;
	bool rows = false;
	int rc;

	auth_db_bind_text(stmt, 1, canon);
	while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
		rows = true;
		/* A disabled target drops out; the others still get it. */
		if (sqlite3_column_int(stmt, 1) == 0)
			continue;
		if (auth_db_column_text(stmt, 0, target, sizeof(target)) < 0)
			continue;
		if (already_listed(r, target))
			continue;
		/* auth_alias_add keeps aliases under the cap; a db edited by
		 * hand gets the first RB_ALIAS_TARGETS_MAX. */
		if (r->count == RB_ALIAS_TARGETS_MAX)
			break;
		memcpy(r->users[r->count++], target, sizeof(target));
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		st = auth_db_fail(db, rc, "alias lookup");
		sqlite3_reset(stmt);
		r->count = 0;
		return st;
	}
	sqlite3_reset(stmt);
	if (r->count > 0)
		*match_r = MATCH_FOUND;
	else
		*match_r = rows ? MATCH_DEAD : MATCH_NONE;
	return AUTH_OK;
}

/* One canonical address without detail handling. */
static enum auth_status
resolve_one(struct auth_db *db, const char *canon, struct auth_resolved *r,
	    enum match *match_r)
{
	struct auth_user user;
	enum auth_status st;

	st = auth_user_get(db, canon, &user, NULL, 0);
	if (st == AUTH_OK) {
		if (!user.enabled) {
			*match_r = MATCH_DEAD;
			return AUTH_OK;
		}
		rb_strlcpy(r->users[0], canon, sizeof(r->users[0]));
		r->count = 1;
		*match_r = MATCH_FOUND;
		return AUTH_OK;
	}
	if (st != AUTH_NOTFOUND)
		return st;
	return resolve_alias(db, canon, r, match_r);
}

static enum auth_status
domain_known(struct auth_db *db, const char *canon, bool *known_r)
{
	sqlite3_stmt *stmt = auth_db_stmt(db, AUTH_STMT_DOMAIN_GET);
	enum auth_status st = AUTH_OK;
	int rc;

	auth_db_bind_text(stmt, 1, auth_address_domain(canon));
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*known_r = true;
	else if (rc == SQLITE_DONE)
		*known_r = false;
	else
		st = auth_db_fail(db, rc, "domain lookup");
	sqlite3_reset(stmt);
	return st;
}

enum auth_status
auth_resolve(struct auth_db *db, const char *address, const char *delimiters,
	     struct auth_resolved *r)
{
	char canon[RB_ADDR_MAX + 1], base[RB_ADDR_MAX + 1];
	enum auth_status st;
	enum match match;
	size_t llen, pos;
	bool known = false;

	memset(r, 0, sizeof(*r));
	if (auth_address_normalize(db, address, canon, sizeof(canon)) < 0)
		return auth_db_set_error(db, AUTH_PARAMS, "invalid address");
	if ((st = domain_known(db, canon, &known)) != AUTH_OK)
		return st;
	if (!known)
		return auth_db_set_error(db, AUTH_NOTFOUND, "unknown domain");

	if ((st = resolve_one(db, canon, r, &match)) != AUTH_OK)
		return st;
	if (match == MATCH_FOUND)
		return AUTH_OK;
	if (match == MATCH_DEAD || delimiters == NULL || delimiters[0] == '\0')
		return auth_db_set_error(db, AUTH_NOTFOUND, "no such user");

	/* Canonicalization only changes case, so offsets in canon are
	 * offsets in address; the detail keeps the sender's spelling (it
	 * may name a folder). */
	llen = (size_t)(strchr(canon, '@') - canon);
	pos = strcspn(canon, delimiters);
	if (pos == 0 || pos >= llen)
		return auth_db_set_error(db, AUTH_NOTFOUND, "no such user");
	memcpy(base, canon, pos);
	memcpy(base + pos, canon + llen, strlen(canon + llen) + 1);
	if ((st = resolve_one(db, base, r, &match)) != AUTH_OK)
		return st;
	if (match != MATCH_FOUND)
		return auth_db_set_error(db, AUTH_NOTFOUND, "no such user");
	memcpy(r->detail, address + pos + 1, llen - pos - 1);
	r->detail[llen - pos - 1] = '\0';
	return AUTH_OK;
}
