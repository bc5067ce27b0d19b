/*
 * Aliases and domains.
 *
 * An alias maps one address to one or more local users (one row per
 * target).  Targets must be users, not other aliases: one level keeps
 * resolution cheap, loop-free and easy to explain, and covers what a
 * mail store needs (forwarding to other hosts is the MTA's job).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth_int.h"

enum auth_status
auth_alias_add(struct auth_db *db, const char *alias, const char *target)
{
	char calias[RB_ADDR_MAX + 1], ctarget[RB_ADDR_MAX + 1];
	struct auth_user user;
	sqlite3_stmt *stmt;
	enum auth_status st;
	int rc;

	if (auth_address_normalize(db, alias, calias, sizeof(calias)) < 0)
		return auth_db_set_error(db, AUTH_PARAMS, "invalid alias");
	if (auth_address_normalize(db, target, ctarget, sizeof(ctarget)) < 0)
		return auth_db_set_error(db, AUTH_PARAMS, "invalid target");
	if (strcmp(calias, ctarget) == 0) {
		return auth_db_set_error(db, AUTH_PARAMS,
					 "an alias cannot point at itself");
	}
	if ((st = auth_db_begin(db)) != AUTH_OK)
		return st;
	st = auth_user_get(db, calias, &user, NULL, 0);
	if (st == AUTH_OK) {
		st = auth_db_set_error(db, AUTH_EXISTS,
				       "a user of that name exists");
		goto rollback;
	}
	if (st != AUTH_NOTFOUND)
		goto rollback;
	st = auth_user_get(db, ctarget, &user, NULL, 0);
	if (st == AUTH_NOTFOUND) {
		st = auth_db_set_error(db, AUTH_NOTFOUND,
				       "target is not a local user");
		goto rollback;
	}
	if (st != AUTH_OK)
		goto rollback;

	stmt = auth_db_stmt(db, AUTH_STMT_ALIAS_COUNT);
	auth_db_bind_text(stmt, 1, calias);
	rc = sqlite3_step(stmt);
	if (rc != SQLITE_ROW) {
		st = auth_db_fail(db, rc, "alias count");
		sqlite3_reset(stmt);
		goto rollback;
	}
	if (sqlite3_column_int64(stmt, 0) >= RB_ALIAS_TARGETS_MAX) {
		sqlite3_reset(stmt);
		st = auth_db_set_error(db, AUTH_PARAMS,
				       "alias has %d targets already",
				       RB_ALIAS_TARGETS_MAX);
		goto rollback;
	}
	sqlite3_reset(stmt);

	if ((st = auth_domain_ensure(db, calias)) != AUTH_OK)
		goto rollback;
	stmt = auth_db_stmt(db, AUTH_STMT_ALIAS_INSERT);
	auth_db_bind_text(stmt, 1, calias);
	auth_db_bind_text(stmt, 2, ctarget);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc == SQLITE_CONSTRAINT_UNIQUE) {
		st = auth_db_set_error(db, AUTH_EXISTS,
				       "alias already has that target");
		goto rollback;
	}
	if (rc != SQLITE_DONE) {
		st = auth_db_fail(db, rc, "alias insert");
		goto rollback;
	}
	return auth_db_commit(db);
rollback:
	auth_db_rollback(db);
	return st;
}

enum auth_status
auth_alias_del(struct auth_db *db, const char *alias, const char *target)
{
	char calias[RB_ADDR_MAX + 1], ctarget[RB_ADDR_MAX + 1];
	sqlite3_stmt *stmt;
	enum auth_status st;

	if (auth_address_normalize(db, alias, calias, sizeof(calias)) < 0)
		return auth_db_set_error(db, AUTH_PARAMS, "invalid alias");
	if (target != NULL) {
		if (auth_address_normalize(db, target, ctarget,
					   sizeof(ctarget)) < 0) {
			return auth_db_set_error(db, AUTH_PARAMS,
						 "invalid target");
		}
		stmt = auth_db_stmt(db, AUTH_STMT_ALIAS_DELETE_ONE);
		auth_db_bind_text(stmt, 2, ctarget);
	} else {
		stmt = auth_db_stmt(db, AUTH_STMT_ALIAS_DELETE_ALL);
	}
	auth_db_bind_text(stmt, 1, calias);
	if ((st = auth_db_exec_stmt(db, stmt, "alias delete")) != AUTH_OK)
		return st;
	if (sqlite3_changes(db->sql) == 0) {
		return auth_db_set_error(db, AUTH_NOTFOUND, target != NULL ?
					 "alias has no such target" :
					 "no such alias");
	}
	return AUTH_OK;
}

static void
alias_row(sqlite3_stmt *stmt, void *elem)
{
	struct auth_alias *a = elem;

	(void)auth_db_column_text(stmt, 0, a->alias, sizeof(a->alias));
	(void)auth_db_column_text(stmt, 1, a->target, sizeof(a->target));
}

enum auth_status
auth_alias_list(struct auth_db *db, struct auth_alias **aliases_r,
		size_t *count_r)
{
	void *list;
	enum auth_status st;

	st = auth_db_list(db, auth_db_stmt(db, AUTH_STMT_ALIAS_LIST),
			  sizeof(**aliases_r), alias_row, "alias list", &list,
			  count_r);
	*aliases_r = list;
	return st;
}

/* ---- domains ---- */

enum auth_status
auth_domain_add(struct auth_db *db, const char *domain)
{
	char name[RB_DOMAIN_MAX + 1];
	sqlite3_stmt *stmt;
	enum auth_status st;

	if (auth_domain_canon(domain, name, sizeof(name)) < 0)
		return auth_db_set_error(db, AUTH_PARAMS, "invalid domain");
	stmt = auth_db_stmt(db, AUTH_STMT_DOMAIN_INSERT);
	auth_db_bind_text(stmt, 1, name);
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)time(NULL));
	if ((st = auth_db_exec_stmt(db, stmt, "domain insert")) != AUTH_OK)
		return st;
	if (sqlite3_changes(db->sql) == 0)
		return auth_db_set_error(db, AUTH_EXISTS, "domain exists");
	return AUTH_OK;
}

enum auth_status
auth_domain_del(struct auth_db *db, const char *domain)
{
	char name[RB_DOMAIN_MAX + 1];
	sqlite3_stmt *stmt;
	enum auth_status st;
	int rc;

	if (auth_domain_canon(domain, name, sizeof(name)) < 0)
		return auth_db_set_error(db, AUTH_PARAMS, "invalid domain");
	if ((st = auth_db_begin(db)) != AUTH_OK)
		return st;
	stmt = auth_db_stmt(db, AUTH_STMT_DOMAIN_IN_USE);
	auth_db_bind_text(stmt, 1, name);
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc == SQLITE_ROW) {
		st = auth_db_set_error(db, AUTH_EXISTS,
				       "domain still has users or aliases");
		goto rollback;
	}
	if (rc != SQLITE_DONE) {
		st = auth_db_fail(db, rc, "domain check");
		goto rollback;
	}
	stmt = auth_db_stmt(db, AUTH_STMT_DOMAIN_DELETE);
	auth_db_bind_text(stmt, 1, name);
	if ((st = auth_db_exec_stmt(db, stmt, "domain delete")) != AUTH_OK)
		goto rollback;
	if (sqlite3_changes(db->sql) == 0) {
		st = auth_db_set_error(db, AUTH_NOTFOUND, "no such domain");
		goto rollback;
	}
	return auth_db_commit(db);
rollback:
	auth_db_rollback(db);
	return st;
}

static void
domain_row(sqlite3_stmt *stmt, void *elem)
{
	struct auth_domain *d = elem;

	(void)auth_db_column_text(stmt, 0, d->name, sizeof(d->name));
}

enum auth_status
auth_domain_list(struct auth_db *db, struct auth_domain **domains_r,
		 size_t *count_r)
{
	void *list;
	enum auth_status st;

	st = auth_db_list(db, auth_db_stmt(db, AUTH_STMT_DOMAIN_LIST),
			  sizeof(**domains_r), domain_row, "domain list", &list,
			  count_r);
	*domains_r = list;
	return st;
}
