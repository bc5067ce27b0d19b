/*
 * auth/ — users, aliases and domains in data_dir/users.db (SQLite), and
 * password hashing/verification.  Knows users, not messages.
 *
 * Addresses are "local@domain".  The domain is always compared
 * case-insensitively (stored lowercase); the local part case-insensitively
 * unless the db was opened with localpart_case_sensitive.
 *
 * Passwords are stored as self-describing strings.  New hashes are
 *   $scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt b64>$<hash b64>
 * (OpenSSL's EVP_KDF "SCRYPT").  Verification also accepts what Dovecot
 * passwd-files and /etc/shadow hold, through libcrypt: $6$ (SHA512-CRYPT),
 * $5$ (SHA256-CRYPT), $2y$/$2b$ (bcrypt) and $y$ (yescrypt), optionally
 * with a Dovecot "{SCHEME}" prefix such as {SHA512-CRYPT} or {BLF-CRYPT}.
 * Comparisons of derived hashes are constant-time (CRYPTO_memcmp).
 *
 * The API takes plain request values and returns result structs with no
 * pointers into caller state, so it can later run behind a socket.
 */
#ifndef ROOST_AUTH_H
#define ROOST_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/common.h"

enum auth_status {
	AUTH_OK = 0,
	AUTH_NOTFOUND,	/* no such user / alias / domain */
	AUTH_EXISTS,	/* already there */
	AUTH_FAILED,	/* wrong password, disabled user, no password set */
	AUTH_TEMP,	/* database busy or I/O error: try again later */
	AUTH_PARAMS,	/* invalid address, password or value */
};

const char *auth_status_name(enum auth_status status);

struct auth_db;

/* Opens data_dir/users.db at path; with create, creates the file and the
 * schema if missing.  *error_r is static or valid until the next call. */
enum auth_status auth_db_open(const char *path, bool create,
			      bool localpart_case_sensitive,
			      struct auth_db **db_r, const char **error_r);
void auth_db_close(struct auth_db **db);
/* Text of the last error on db (for logs). */
const char *auth_db_error(const struct auth_db *db);

/* Syntax check: local@domain, 1..64 and 1..255 octets.  The local part is
 * RFC 5322 dot-atom text (atext and dots) or UTF-8, without '/'; the
 * domain is dot-separated labels of letters, digits, '-' or UTF-8.  No
 * leading, trailing or doubled dots; quoted local parts and address
 * literals are refused (they cannot name a mailbox here). */
bool auth_address_valid(const char *address);
/* Canonical form of an address for this db: domain lowercased, local
 * part lowercased unless case-sensitive.  -1 if invalid. */
int auth_address_normalize(const struct auth_db *db, const char *address,
			   char *out, size_t outsize);

/* ---- users ---- */

#define AUTH_QUOTA_DEFAULT (-1)	/* use [quota] default_* from the config */

struct auth_user {
	char address[RB_ADDR_MAX + 1];	/* canonical */
	int64_t quota_bytes;		/* AUTH_QUOTA_DEFAULT, 0 = unlimited */
	int64_t quota_messages;
	bool enabled;
	bool has_password;
	int64_t created;		/* unix time */
};

enum auth_status auth_user_lookup(struct auth_db *db, const char *address,
				  struct auth_user *user_r);
/* password may be NULL (no password: the user can receive mail but not
 * log in).  The user's domain is added to domains if new. */
enum auth_status auth_user_add(struct auth_db *db, const char *address,
			       const char *password, int64_t quota_bytes,
			       int64_t quota_messages);
/* Also deletes aliases pointing at the user. */
enum auth_status auth_user_del(struct auth_db *db, const char *address);
/* password NULL removes the password (the user can no longer log in).
 * AUTH_PARAMS for an empty password, one longer than RB_PASSWORD_MAX or
 * one holding CR or LF (also in auth_user_add). */
enum auth_status auth_user_set_password(struct auth_db *db,
					const char *address,
					const char *password);
/* Stores an already-hashed password (import from Dovecot); the hash must
 * be in a format auth_password_verify understands. */
enum auth_status auth_user_set_password_hash(struct auth_db *db,
					     const char *address,
					     const char *hash);
enum auth_status auth_user_set_quota(struct auth_db *db, const char *address,
				     int64_t quota_bytes,
				     int64_t quota_messages);
enum auth_status auth_user_set_enabled(struct auth_db *db,
				       const char *address, bool enabled);
/* All users ordered by address; *users_r is heap-allocated, free() it. */
enum auth_status auth_user_list(struct auth_db *db,
				struct auth_user **users_r, size_t *count_r);

/* Password check for a login.  AUTH_FAILED for unknown user, invalid
 * address, wrong password, disabled user or no password (the same answer
 * for all, and the same work: an unknown user still costs one KDF run);
 * AUTH_TEMP when the database fails.  On AUTH_OK *user_r is filled,
 * otherwise it is zeroed. */
enum auth_status auth_verify(struct auth_db *db, const char *address,
			     const char *password, struct auth_user *user_r);

/* ---- aliases ---- */

struct auth_alias {
	char alias[RB_ADDR_MAX + 1];
	char target[RB_ADDR_MAX + 1];
};

/* target must be an existing local user (AUTH_NOTFOUND otherwise).  One
 * alias may have several targets (one row each), at most
 * RB_ALIAS_TARGETS_MAX (AUTH_PARAMS past it).  An alias may not have the
 * name of a user, nor a user the name of an alias (AUTH_EXISTS). */
enum auth_status auth_alias_add(struct auth_db *db, const char *alias,
				const char *target);
/* target NULL removes every target of alias. */
enum auth_status auth_alias_del(struct auth_db *db, const char *alias,
				const char *target);
enum auth_status auth_alias_list(struct auth_db *db,
				 struct auth_alias **aliases_r,
				 size_t *count_r);

/* ---- domains ---- */

/* AUTH_EXISTS if already there. */
enum auth_status auth_domain_add(struct auth_db *db, const char *domain);
/* AUTH_EXISTS (refused) while users or aliases of the domain exist. */
enum auth_status auth_domain_del(struct auth_db *db, const char *domain);
struct auth_domain {
	char name[RB_DOMAIN_MAX + 1];	/* canonical (lowercase) */
};
/* *domains_r is heap-allocated, free() it. */
enum auth_status auth_domain_list(struct auth_db *db,
				  struct auth_domain **domains_r,
				  size_t *count_r);

/* ---- recipient resolution (for delivery) ---- */

struct auth_resolved {
	/* Final users (canonical), duplicates removed, in alias order. */
	char users[RB_ALIAS_TARGETS_MAX][RB_ADDR_MAX + 1];
	size_t count;
	/* The part after the recipient delimiter, "" if none. */
	char detail[RB_LOCALPART_MAX + 1];
};

/*
 * Resolves a recipient address: an enabled user as is, or an alias to its
 * users.  If neither matches and the local part holds one of the
 * characters in delimiters (e.g. "+"), the part from the first delimiter
 * on is taken off, saved as detail, and the rest resolved again.
 * AUTH_NOTFOUND when nothing matches (or the user is disabled).
 */
enum auth_status auth_resolve(struct auth_db *db, const char *address,
			      const char *delimiters,
			      struct auth_resolved *r);

/* ---- passwords ---- */

/* New hash of password in the $scrypt$ format (heap string, free()).
 * -1 only if OpenSSL fails. */
int auth_password_hash(const char *password, char **hash_r);
/* True when password matches hash in any supported format. */
bool auth_password_verify(const char *hash, const char *password);
/* True when hash is in a format auth_password_verify understands. */
bool auth_password_hash_valid(const char *hash);

/* ---- SASL (Cyrus SASL glue, RFC 4422) ---- */

/* Once per process (before forking workers is fine): sasl_server_init with
 * roost's callbacks, so mechanisms verify against users.db, never against
 * /etc/sasldb2 or saslauthd. */
int auth_sasl_global_init(const char **error_r);

enum auth_sasl_result {
	AUTH_SASL_CONTINUE,	/* send *out_r as a challenge, read more */
	AUTH_SASL_OK,		/* authenticated: auth_sasl_user() */
	AUTH_SASL_FAILED,	/* wrong credentials or disabled user */
	AUTH_SASL_TEMP,		/* database trouble: try again later */
	AUTH_SASL_BAD,		/* malformed client data */
	AUTH_SASL_NOMECH,	/* mechanism not offered */
};

struct auth_sasl;

/* A SASL exchange for one connection.  service is "pop" or "imap";
 * mechanisms the configured list ("PLAIN LOGIN SCRAM-SHA-256"); ips are
 * "a.b.c.d;port" per Cyrus SASL (may be NULL). */
enum auth_status auth_sasl_new(struct auth_db *db, const char *service,
			       const char *mechanisms, const char *local_ip,
			       const char *remote_ip, struct auth_sasl **sasl_r);
void auth_sasl_free(struct auth_sasl **sasl);
/* The mechanisms offered, space-separated (what CAPA/CAPABILITY list). */
const char *auth_sasl_mechanisms(const struct auth_sasl *sasl);
/* Starts mech with an optional initial response (have_in false: none
 * given; have_in true and inlen 0: an empty one, "=" on the wire).  out
 * is owned by sasl and valid until the next call. */
enum auth_sasl_result auth_sasl_start(struct auth_sasl *sasl,
				      const char *mech, bool have_in,
				      const void *in, size_t inlen,
				      const void **out_r, size_t *outlen_r);
enum auth_sasl_result auth_sasl_step(struct auth_sasl *sasl, const void *in,
				     size_t inlen, const void **out_r,
				     size_t *outlen_r);
/* After AUTH_SASL_OK: the canonical address of the user. */
const char *auth_sasl_user(const struct auth_sasl *sasl);

/* ---- failed-login throttling ---- */

/* Per-process record of failed logins by remote address. */
struct auth_throttle;

/* base_delay seconds after a first failure, doubling with each further
 * failure from that address within a minute (capped); max_per_minute
 * failures from one address block it until the minute has passed. */
struct auth_throttle *auth_throttle_new(unsigned base_delay,
					unsigned max_per_minute);
void auth_throttle_free(struct auth_throttle **t);
/* True when ip has too many recent failures to try at all. */
bool auth_throttle_blocked(struct auth_throttle *t, const char *ip,
			   time_t now);
/* Records a failure; returns the delay in milliseconds to wait before
 * answering it. */
unsigned auth_throttle_failure(struct auth_throttle *t, const char *ip,
			       time_t now);
void auth_throttle_success(struct auth_throttle *t, const char *ip);

#endif
