/*
 * auth/ private interface: the db handle, its prepared statements and the
 * helpers shared between the auth_*.c files.  Not for use outside auth/.
 */
#ifndef ROOST_AUTH_INT_H
#define ROOST_AUTH_INT_H

#include <sqlite3.h>

#include "auth/auth.h"

/* Version of the users.db schema kept in PRAGMA user_version. */
#define AUTH_SCHEMA_VERSION 1

/* SQLite busy timeout: long enough to ride out another roostctl or a
 * delivery holding the write lock, short enough that the MTA gets a
 * temporary failure instead of a stuck process. */
#define AUTH_BUSY_TIMEOUT_MS 5000

/*
 * scrypt parameters for new hashes.  N = 2^14, r = 8 needs 16 MiB
 * (128 * r * N) and measured ~30 ms per hash or verify on the build host:
 * expensive for an attacker with a stolen users.db, cheap enough that a
 * burst of logins does not starve the workers.  N = 2^15 measured
 * 150-300 ms there, because glibc serves a 32 MiB block with a fresh
 * mmap (page faults on every call) while 16 MiB blocks get reused.
 * Stored hashes carry their own parameters, so raising these later
 * keeps old hashes valid.
 */
#define AUTH_SCRYPT_LN 14
#define AUTH_SCRYPT_R 8
#define AUTH_SCRYPT_P 1
#define AUTH_SCRYPT_SALT_LEN 16
#define AUTH_SCRYPT_DK_LEN 32
/* Ceiling on what verifying a stored scrypt hash may allocate: a forged
 * or corrupt hash must not make a login allocate gigabytes.  OpenSSL
 * needs 128 * r * (N + 2) + 128 * r * p bytes plus a little; 32 MiB of V
 * (ln=15, r=8) plus that slack fits. */
#define AUTH_SCRYPT_MAXMEM ((uint64_t)33 * 1024 * 1024)
/* Parameter ranges accepted when parsing a stored scrypt hash. */
#define AUTH_SCRYPT_LN_MIN 10
#define AUTH_SCRYPT_LN_MAX 20
#define AUTH_SCRYPT_R_MAX 32
#define AUTH_SCRYPT_P_MAX 16
/* Longest salt / derived key we accept in a stored scrypt hash. */
#define AUTH_SCRYPT_FIELD_MAX 64

/* Imported crypt hashes: refuse parameters that would turn one login
 * into a denial of service (bcrypt cost 31 is hours per attempt). */
#define AUTH_BCRYPT_COST_MAX 16
#define AUTH_SHACRYPT_ROUNDS_MAX 1000000

enum auth_stmt {
	AUTH_STMT_BEGIN,
	AUTH_STMT_COMMIT,
	AUTH_STMT_ROLLBACK,
	AUTH_STMT_USER_GET,
	AUTH_STMT_USER_INSERT,
	AUTH_STMT_USER_DELETE,
	AUTH_STMT_USER_SET_PASSWORD,
	AUTH_STMT_USER_SET_QUOTA,
	AUTH_STMT_USER_SET_ENABLED,
	AUTH_STMT_USER_LIST,
	AUTH_STMT_ALIAS_EXISTS,
	AUTH_STMT_ALIAS_COUNT,
	AUTH_STMT_ALIAS_INSERT,
	AUTH_STMT_ALIAS_DELETE_ONE,
	AUTH_STMT_ALIAS_DELETE_ALL,
	AUTH_STMT_ALIAS_DELETE_TARGET,
	AUTH_STMT_ALIAS_TARGETS,
	AUTH_STMT_ALIAS_LIST,
	AUTH_STMT_DOMAIN_GET,
	AUTH_STMT_DOMAIN_INSERT,
	AUTH_STMT_DOMAIN_DELETE,
	AUTH_STMT_DOMAIN_LIST,
	AUTH_STMT_DOMAIN_IN_USE,
	AUTH_STMT_COUNT
};

struct auth_db {
	sqlite3 *sql;
	bool localpart_case_sensitive;
	sqlite3_stmt *stmt[AUTH_STMT_COUNT];
	char error[256];
};

/* ---- auth_db.c ---- */

/* Records "what: sqlite message" as the db's last error and maps the
 * SQLite result code to a status: every unexpected code is AUTH_TEMP,
 * because a mail system must retry rather than bounce on a fault it
 * does not understand. */
enum auth_status auth_db_fail(struct auth_db *db, int rc, const char *what);
/* Sets the db's last error text and returns status. */
enum auth_status auth_db_set_error(struct auth_db *db,
				   enum auth_status status, const char *fmt,
				   ...) RB_PRINTF(3, 4);
/* The prepared statement, reset and with its bindings cleared. */
sqlite3_stmt *auth_db_stmt(struct auth_db *db, enum auth_stmt which);
/* Binds a NUL-terminated text (copied by SQLite). */
int auth_db_bind_text(sqlite3_stmt *stmt, int idx, const char *text);
/* BEGIN IMMEDIATE / COMMIT / ROLLBACK. */
enum auth_status auth_db_begin(struct auth_db *db);
enum auth_status auth_db_commit(struct auth_db *db);
void auth_db_rollback(struct auth_db *db);
/* Runs a statement that returns no rows (after binding); 0 rows is fine. */
enum auth_status auth_db_exec_stmt(struct auth_db *db, sqlite3_stmt *stmt,
				   const char *what);
/* Copies column text into out; -1 when NULL or too long. */
/* Steps stmt to its end, one zeroed element of elem_size per row filled
 * by row(); on success *list_r (heap, free()) and *count_r. */
enum auth_status auth_db_list(struct auth_db *db, sqlite3_stmt *stmt,
			      size_t elem_size,
			      void (*row)(sqlite3_stmt *stmt, void *elem),
			      const char *what, void **list_r,
			      size_t *count_r);
int auth_db_column_text(sqlite3_stmt *stmt, int col, char *out,
			size_t outsize);

/* ---- auth_address.c ---- */

/* Canonical form with an explicit case rule (auth_address_normalize with
 * a db).  -1 if invalid or out is too small. */
int auth_address_canon(bool localpart_case_sensitive, const char *address,
		       char *out, size_t outsize);
/* Domain syntax (the part after '@'); no case change. */
bool auth_domain_valid(const char *domain);
/* Lowercase copy of a valid domain; -1 if invalid or too long. */
int auth_domain_canon(const char *domain, char *out, size_t outsize);
/* Pointer to the domain part of a canonical address (after the '@'). */
const char *auth_address_domain(const char *address);

/* ---- auth_password.c ---- */

/* A password we are willing to hash or check: 1..RB_PASSWORD_MAX bytes,
 * no CR or LF (they cannot travel in our protocols' line-based AUTH
 * and would be a sign of a broken client or an injection attempt). */
bool auth_password_acceptable(const char *password);
/* auth_password_verify that also says whether a hash function ran
 * (false when the password or the stored hash was refused up front), so
 * that the caller can spend the same time anyway. */
bool auth_password_check(const char *hash, const char *password,
			 bool *ran_r);
/* Costs what verifying one of our own hashes costs and always fails:
 * used when the user does not exist or has no password, so that the time
 * of a failed login does not tell which users exist. */
void auth_password_dummy_verify(const char *password);

/* ---- auth_user.c ---- */

/* Reads the user row of a canonical address, and the stored hash into
 * hash (may be NULL; hash[0] = '\0' when there is none).  AUTH_NOTFOUND
 * when there is no such row. */
enum auth_status auth_user_get(struct auth_db *db, const char *canon,
			       struct auth_user *user_r, char *hash,
			       size_t hashsize);
/* True when canon is an alias name (has at least one row). */
enum auth_status auth_alias_exists(struct auth_db *db, const char *canon,
				   bool *exists_r);
/* Ensures the domain of canon is in domains (inside a transaction). */
enum auth_status auth_domain_ensure(struct auth_db *db, const char *canon);

#endif
