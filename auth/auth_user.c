/*
 * Users: add, delete, change, list, and the login check.
 *
 * Password hashing runs before a write transaction is opened: a KDF run
 * takes tens of milliseconds and must not hold the users.db write lock.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/auth_int.h"

/* Columns: address, password, quota_bytes, quota_messages, enabled,
 * created (AUTH_STMT_USER_GET and AUTH_STMT_USER_LIST). */
static void
user_from_row(sqlite3_stmt *stmt, struct auth_user *u)
{
	memset(u, 0, sizeof(*u));
	if (auth_db_column_text(stmt, 0, u->address, sizeof(u->address)) < 0)
		u->address[0] = '\0';
	u->has_password = sqlite3_column_type(stmt, 1) != SQLITE_NULL;
	u->quota_bytes = sqlite3_column_int64(stmt, 2);
	u->quota_messages = sqlite3_column_int64(stmt, 3);
	u->enabled = sqlite3_column_int(stmt, 4) != 0;
	u->created = sqlite3_column_int64(stmt, 5);
}

static enum auth_status
canon_or_fail(struct auth_db *db, const char *address, char *out,
	      size_t outsize)
{
	if (auth_address_normalize(db, address, out, outsize) < 0) {
		return auth_db_set_error(db, AUTH_PARAMS,
					 "invalid address");
	}
	return AUTH_OK;
}

static bool
quota_valid(int64_t v)
{
	return v >= AUTH_QUOTA_DEFAULT;
}

enum auth_status
auth_user_get(struct auth_db *db, const char *canon, struct auth_user *user_r,
	      char *hash, size_t hashsize)
{
	sqlite3_stmt *stmt = auth_db_stmt(db, AUTH_STMT_USER_GET);
	enum auth_status st;
	int rc;

	if (hash != NULL && hashsize > 0)
		hash[0] = '\0';
	auth_db_bind_text(stmt, 1, canon);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_DONE) {
		sqlite3_reset(stmt);
		return auth_db_set_error(db, AUTH_NOTFOUND, "no such user");
	}
	if (rc != SQLITE_ROW) {
		st = auth_db_fail(db, rc, "user lookup");
		sqlite3_reset(stmt);
		return st;
	}
	user_from_row(stmt, user_r);
	if (hash != NULL && user_r->has_password &&
	    auth_db_column_text(stmt, 1, hash, hashsize) < 0) {
		/* Too long to be anything we wrote: treat as no usable
		 * password rather than truncating it. */
		user_r->has_password = false;
		hash[0] = '\0';
	}
	sqlite3_reset(stmt);
	return AUTH_OK;
}

enum auth_status
auth_user_lookup(struct auth_db *db, const char *address,
		 struct auth_user *user_r)
{
	char canon[RB_ADDR_MAX + 1];
	enum auth_status st;

	if ((st = canon_or_fail(db, address, canon, sizeof(canon))) != AUTH_OK)
		return st;
	return auth_user_get(db, canon, user_r, NULL, 0);
}

enum auth_status
auth_alias_exists(struct auth_db *db, const char *canon, bool *exists_r)
{
	sqlite3_stmt *stmt = auth_db_stmt(db, AUTH_STMT_ALIAS_EXISTS);
	enum auth_status st = AUTH_OK;
	int rc;

	auth_db_bind_text(stmt, 1, canon);
	rc = sqlite3_step(stmt);
	if (rc == SQLITE_ROW)
		*exists_r = true;
	else if (rc == SQLITE_DONE)
		*exists_r = false;
	else
		st = auth_db_fail(db, rc, "alias lookup");
	sqlite3_reset(stmt);
	return st;
}

enum auth_status
auth_domain_ensure(struct auth_db *db, const char *canon)
{
	sqlite3_stmt *stmt = auth_db_stmt(db, AUTH_STMT_DOMAIN_INSERT);

	auth_db_bind_text(stmt, 1, auth_address_domain(canon));
	sqlite3_bind_int64(stmt, 2, (sqlite3_int64)time(NULL));
	return auth_db_exec_stmt(db, stmt, "domain insert");
}

/* Hashes password (NULL stays NULL) before any transaction. */
static enum auth_status
hash_for_store(struct auth_db *db, const char *password, char **hash_r)
{
	*hash_r = NULL;
	if (password == NULL)
		return AUTH_OK;
	if (!auth_password_acceptable(password)) {
		return auth_db_set_error(db, AUTH_PARAMS,
			"password must be 1..%d bytes without CR or LF",
			RB_PASSWORD_MAX);
	}
	if (auth_password_hash(password, hash_r) < 0) {
		return auth_db_set_error(db, AUTH_TEMP,
					 "password hashing failed (OpenSSL)");
	}
	return AUTH_OK;
}

enum auth_status
auth_user_add(struct auth_db *db, const char *address, const char *password,
	      int64_t quota_bytes, int64_t quota_messages)
{
	char canon[RB_ADDR_MAX + 1];
	char *hash = NULL;
	sqlite3_stmt *stmt;
	enum auth_status st;
	bool alias;
	int rc;

	if ((st = canon_or_fail(db, address, canon, sizeof(canon))) != AUTH_OK)
		return st;
	if (!quota_valid(quota_bytes) || !quota_valid(quota_messages))
		return auth_db_set_error(db, AUTH_PARAMS, "invalid quota");
	if ((st = hash_for_store(db, password, &hash)) != AUTH_OK)
		return st;
	if ((st = auth_db_begin(db)) != AUTH_OK)
		goto out;
	/* A user and an alias of one name would make resolution depend on
	 * which is looked at first. */
	if ((st = auth_alias_exists(db, canon, &alias)) != AUTH_OK)
		goto rollback;
	if (alias) {
		st = auth_db_set_error(db, AUTH_EXISTS,
				       "an alias of that name exists");
		goto rollback;
	}
	if ((st = auth_domain_ensure(db, canon)) != AUTH_OK)
		goto rollback;
	stmt = auth_db_stmt(db, AUTH_STMT_USER_INSERT);
	auth_db_bind_text(stmt, 1, canon);
	auth_db_bind_text(stmt, 2, hash);
	sqlite3_bind_int64(stmt, 3, quota_bytes);
	sqlite3_bind_int64(stmt, 4, quota_messages);
	sqlite3_bind_int64(stmt, 5, (sqlite3_int64)time(NULL));
	rc = sqlite3_step(stmt);
	sqlite3_reset(stmt);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE) {
		st = auth_db_set_error(db, AUTH_EXISTS, "user exists");
		goto rollback;
	}
	if (rc != SQLITE_DONE) {
		st = auth_db_fail(db, rc, "user insert");
		goto rollback;
	}
	st = auth_db_commit(db);
	goto out;
rollback:
	auth_db_rollback(db);
out:
	free(hash);
	return st;
}

enum auth_status
auth_user_del(struct auth_db *db, const char *address)
{
	char canon[RB_ADDR_MAX + 1];
	sqlite3_stmt *stmt;
	enum auth_status st;

	if ((st = canon_or_fail(db, address, canon, sizeof(canon))) != AUTH_OK)
		return st;
	if ((st = auth_db_begin(db)) != AUTH_OK)
		return st;
	/* Explicitly, not only through ON DELETE CASCADE: a db opened by
	 * a tool without PRAGMA foreign_keys must not keep dangling
	 * aliases either. */
	stmt = auth_db_stmt(db, AUTH_STMT_ALIAS_DELETE_TARGET);
	auth_db_bind_text(stmt, 1, canon);
	if ((st = auth_db_exec_stmt(db, stmt, "alias delete")) != AUTH_OK)
		goto rollback;
	stmt = auth_db_stmt(db, AUTH_STMT_USER_DELETE);
	auth_db_bind_text(stmt, 1, canon);
	if ((st = auth_db_exec_stmt(db, stmt, "user delete")) != AUTH_OK)
		goto rollback;
	if (sqlite3_changes(db->sql) == 0) {
		st = auth_db_set_error(db, AUTH_NOTFOUND, "no such user");
		goto rollback;
	}
	return auth_db_commit(db);
rollback:
	auth_db_rollback(db);
	return st;
}

/* Runs an UPDATE on one user row outside an explicit transaction (one
 * statement is atomic); NOTFOUND when no row matched. */
static enum auth_status
user_update(struct auth_db *db, sqlite3_stmt *stmt, const char *what)
{
	enum auth_status st;

	if ((st = auth_db_exec_stmt(db, stmt, what)) != AUTH_OK)
		return st;
	if (sqlite3_changes(db->sql) == 0)
		return auth_db_set_error(db, AUTH_NOTFOUND, "no such user");
	return AUTH_OK;
}

static enum auth_status
set_hash(struct auth_db *db, const char *canon, const char *hash)
{
	sqlite3_stmt *stmt = auth_db_stmt(db, AUTH_STMT_USER_SET_PASSWORD);

	auth_db_bind_text(stmt, 1, canon);
	auth_db_bind_text(stmt, 2, hash);
	return user_update(db, stmt, "set password");
}

enum auth_status
auth_user_set_password(struct auth_db *db, const char *address,
		       const char *password)
{
	char canon[RB_ADDR_MAX + 1];
	enum auth_status st;
	char *hash;

	if ((st = canon_or_fail(db, address, canon, sizeof(canon))) != AUTH_OK)
		return st;
	if ((st = hash_for_store(db, password, &hash)) != AUTH_OK)
		return st;
	st = set_hash(db, canon, hash);
	free(hash);
	return st;
}

enum auth_status
auth_user_set_password_hash(struct auth_db *db, const char *address,
			    const char *hash)
{
	char canon[RB_ADDR_MAX + 1];
	enum auth_status st;

	if ((st = canon_or_fail(db, address, canon, sizeof(canon))) != AUTH_OK)
		return st;
	if (!auth_password_hash_valid(hash)) {
		return auth_db_set_error(db, AUTH_PARAMS,
					 "unsupported or malformed hash");
	}
	return set_hash(db, canon, hash);
}

enum auth_status
auth_user_set_quota(struct auth_db *db, const char *address,
		    int64_t quota_bytes, int64_t quota_messages)
{
	char canon[RB_ADDR_MAX + 1];
	sqlite3_stmt *stmt;
	enum auth_status st;

	if ((st = canon_or_fail(db, address, canon, sizeof(canon))) != AUTH_OK)
		return st;
	if (!quota_valid(quota_bytes) || !quota_valid(quota_messages))
		return auth_db_set_error(db, AUTH_PARAMS, "invalid quota");
	stmt = auth_db_stmt(db, AUTH_STMT_USER_SET_QUOTA);
	auth_db_bind_text(stmt, 1, canon);
	sqlite3_bind_int64(stmt, 2, quota_bytes);
	sqlite3_bind_int64(stmt, 3, quota_messages);
	return user_update(db, stmt, "set quota");
}

enum auth_status
auth_user_set_enabled(struct auth_db *db, const char *address, bool enabled)
{
	char canon[RB_ADDR_MAX + 1];
	sqlite3_stmt *stmt;
	enum auth_status st;

	if ((st = canon_or_fail(db, address, canon, sizeof(canon))) != AUTH_OK)
		return st;
	stmt = auth_db_stmt(db, AUTH_STMT_USER_SET_ENABLED);
	auth_db_bind_text(stmt, 1, canon);
	sqlite3_bind_int(stmt, 2, enabled ? 1 : 0);
	return user_update(db, stmt, "set enabled");
}

static void
user_row(sqlite3_stmt *stmt, void *elem)
{
	user_from_row(stmt, elem);
}

enum auth_status
auth_user_list(struct auth_db *db, struct auth_user **users_r,
	       size_t *count_r)
{
	void *list;
	enum auth_status st;

	st = auth_db_list(db, auth_db_stmt(db, AUTH_STMT_USER_LIST),
			  sizeof(**users_r), user_row, "user list", &list,
			  count_r);
	*users_r = list;
	return st;
}

enum auth_status
auth_verify(struct auth_db *db, const char *address, const char *password,
	    struct auth_user *user_r)
{
	char canon[RB_ADDR_MAX + 1], hash[RB_HASH_MAX + 1];
	struct auth_user user;
	enum auth_status st;
	bool ok, ran;

	memset(user_r, 0, sizeof(*user_r));
	if (auth_address_normalize(db, address, canon, sizeof(canon)) < 0) {
		auth_password_dummy_verify(password);
		return auth_db_set_error(db, AUTH_FAILED, "invalid address");
	}
	st = auth_user_get(db, canon, &user, hash, sizeof(hash));
	if (st == AUTH_TEMP)
		return st;
	if (st == AUTH_NOTFOUND || !user.has_password) {
		/* Same work as a real check: the time of the answer must not
		 * tell whether the user exists. */
		auth_password_dummy_verify(password);
		return auth_db_set_error(db, AUTH_FAILED, st == AUTH_NOTFOUND ?
					 "no such user" : "no password set");
	}
	ok = auth_password_check(hash, password, &ran);
	OPENSSL_cleanse(hash, sizeof(hash));
	if (!ran)
		auth_password_dummy_verify(password);
	if (!ok)
		return auth_db_set_error(db, AUTH_FAILED, "wrong password");
	/* Checked after the password so that a disabled account answers
	 * exactly like a wrong password, with the same cost. */
	if (!user.enabled)
		return auth_db_set_error(db, AUTH_FAILED, "user disabled");
	*user_r = user;
	return AUTH_OK;
}
