/*
 * roostctl's command table: what each command is called, what it takes
 * and its manual text.  The parser (admin_main.c) and the help pages
 * (admin_help.c) both read it, so usage and documentation cannot drift.
 */
#include "admin/admin_int.h"

#define U(o) ADMIN_OPTBIT(ADMIN_OPT_##o)

const struct admin_group admin_groups[] = {
	{ "user", "manage users (addresses that can log in or receive mail)",
	  "    Users live in data_dir/users.db.  Each user has a mail store\n"
	  "    under data_dir/mail/<domain>/<local part>/, created by\n"
	  "    'user add' and removed by 'user del'." },
	{ "alias", "manage aliases (addresses delivered to other users)",
	  "    An alias forwards mail for one address to one or more local\n"
	  "    users.  Targets must be users, not other aliases." },
	{ "domain", "list and manage the domains mail is accepted for",
	  "    A domain is added automatically with its first user or\n"
	  "    alias.  Mail for a domain that is not listed is refused." },
	{ "mailbox", "manage a user's mailboxes (folders)",
	  "    Mailbox names use '/' as the hierarchy separator, as IMAP\n"
	  "    clients show them (\"Archive/2026\"); INBOX always exists." },
	{ "index", "check or rebuild a user's index",
	  "    The Maildir files are the source of truth; the per-user\n"
	  "    SQLite index is a cache of them.  'index check' compares the\n"
	  "    two; 'index sync' takes new and vanished files into the\n"
	  "    index; 'index rebuild' recreates the index from the files,\n"
	  "    keeping every UID the old index still knows." },
};
const size_t admin_group_count = RB_N_ELEMENTS(admin_groups);

#define OPT_PASSWORD_STDIN \
	"    --password-stdin\n" \
	"        Read the password from the first line of standard input\n" \
	"        (a trailing CR/LF is removed; an empty line is refused).\n" \
	"        On a terminal, a prompt is shown and echo is turned off.\n"
#define OPT_QUOTA \
	"    --quota BYTES\n" \
	"        Storage quota: a number of bytes with an optional k, M or\n" \
	"        G suffix (1024-based), 'unlimited' (or 0), or 'default'\n" \
	"        to follow [quota] default_bytes of the config.\n" \
	"    --quota-messages N\n" \
	"        Message count quota: a number, 'unlimited' (or 0), or\n" \
	"        'default' for [quota] default_messages.\n"

const struct admin_cmd admin_cmds[] = {
	{ "user", "add", "ADDRESS [--password-stdin] [--quota BYTES] "
	  "[--quota-messages N]", { "ADDRESS" }, 1, 1,
	  U(PASSWORD_STDIN) | U(QUOTA) | U(QUOTA_MESSAGES),
	  ADMIN_NEED_DB_CREATE, admin_cmd_user_add,
	  "create a user and their mail store",
	  "    Creates ADDRESS in users.db and its mail store with an INBOX,\n"
	  "    so mail can be delivered at once.  The address is stored in\n"
	  "    canonical form: the domain in lowercase, and the local part\n"
	  "    too unless the config says [auth] localpart_case =\n"
	  "    sensitive.  Without --password-stdin the user can receive\n"
	  "    mail but not log in.\n"
	  "    Quotas default to the config's [quota] settings.\n",
	  OPT_PASSWORD_STDIN OPT_QUOTA,
	  "    printf '%s\\n' \"$pw\" | roostctl user add alice@example.com "
	  "--password-stdin\n"
	  "    roostctl user add bob@example.com --quota 2G\n" },
	{ "user", "del", "ADDRESS [--keep-mail]", { "ADDRESS" }, 1, 1,
	  U(KEEP_MAIL), ADMIN_NEED_DB, admin_cmd_user_del,
	  "delete a user, their aliases and their mail",
	  "    Deletes ADDRESS from users.db, removes it from every alias,\n"
	  "    then deletes the user's mail store (all mailboxes and\n"
	  "    messages) unless --keep-mail is given.  This cannot be\n"
	  "    undone.\n",
	  "    --keep-mail\n"
	  "        Leave the mail store on disk.\n",
	  "    roostctl user del alice@example.com\n" },
	{ "user", "passwd", "ADDRESS --password-stdin", { "ADDRESS" }, 1, 1,
	  U(PASSWORD_STDIN), ADMIN_NEED_DB, admin_cmd_user_passwd,
	  "set a user's password",
	  "    Hashes the new password (scrypt) and stores it.  Sessions\n"
	  "    already logged in are not affected.\n",
	  OPT_PASSWORD_STDIN,
	  "    printf '%s\\n' \"$pw\" | roostctl user passwd alice@example.com "
	  "--password-stdin\n" },
	{ "user", "import-hash", "ADDRESS --hash-stdin", { "ADDRESS" }, 1, 1,
	  U(HASH_STDIN), ADMIN_NEED_DB, admin_cmd_user_import_hash,
	  "set a user's password from an existing hash",
	  "    Stores a password hash taken from another system, so users\n"
	  "    keep their passwords when moving from Dovecot or\n"
	  "    /etc/shadow.  Accepted: $scrypt$ (roost), $6$ (SHA512-CRYPT),\n"
	  "    $5$ (SHA256-CRYPT), $2y$/$2b$ (bcrypt) and $y$ (yescrypt),\n"
	  "    optionally with a Dovecot {SCHEME} prefix such as\n"
	  "    {SHA512-CRYPT} or {BLF-CRYPT}.  {PLAIN} and other weak\n"
	  "    schemes are refused: set those passwords with 'user passwd'.\n",
	  "    --hash-stdin\n"
	  "        Read the hash from the first line of standard input.\n",
	  "    grep '^alice:' /etc/dovecot/passwd | cut -d: -f2 |\n"
	  "        roostctl user import-hash alice@example.com --hash-stdin\n" },
	{ "user", "set", "ADDRESS [--quota BYTES] [--quota-messages N] "
	  "[--enable | --disable]", { "ADDRESS" }, 1, 1,
	  U(QUOTA) | U(QUOTA_MESSAGES) | U(ENABLE) | U(DISABLE),
	  ADMIN_NEED_DB, admin_cmd_user_set,
	  "change a user's quota or enable/disable them",
	  "    Changes the given settings and leaves the others alone.  A\n"
	  "    disabled user can neither log in nor receive mail (delivery\n"
	  "    answers 'no such user'); their mail is kept.\n",
	  OPT_QUOTA
	  "    --enable, --disable\n"
	  "        Enable or disable the user.\n",
	  "    roostctl user set alice@example.com --quota 10G\n" },
	{ "user", "list", "", { NULL }, 0, 0, 0, ADMIN_NEED_DB,
	  admin_cmd_user_list, "list all users",
	  "    Lists every user with their state and quotas, ordered by\n"
	  "    address.  With --json: an array of objects with address,\n"
	  "    enabled, has_password, quota_bytes, quota_messages (-1 means\n"
	  "    the config default, 0 unlimited) and created (unix time).\n",
	  NULL, NULL },
	{ "user", "show", "ADDRESS", { "ADDRESS" }, 1, 1, 0, ADMIN_NEED_DB,
	  admin_cmd_user_show, "show one user with quota and usage",
	  "    Shows the user's settings, the quota in effect and the\n"
	  "    current usage of their mail store (bytes and messages, from\n"
	  "    the index).\n",
	  NULL, NULL },
	{ "alias", "add", "ALIAS TARGET", { "ALIAS", "TARGET" }, 2, 2, 0,
	  ADMIN_NEED_DB_CREATE, admin_cmd_alias_add,
	  "add a target user to an alias",
	  "    Makes mail for ALIAS go to the user TARGET (too).  Run it\n"
	  "    once per target for an alias with several users.  ALIAS may\n"
	  "    not be the address of a user.\n",
	  NULL, "    roostctl alias add postmaster@example.com "
	  "alice@example.com\n" },
	{ "alias", "del", "ALIAS [TARGET]", { "ALIAS" }, 1, 2, 0,
	  ADMIN_NEED_DB, admin_cmd_alias_del,
	  "remove one target or a whole alias",
	  "    Removes TARGET from ALIAS, or the whole alias when TARGET\n"
	  "    is omitted.\n",
	  NULL, NULL },
	{ "alias", "list", "", { NULL }, 0, 0, 0, ADMIN_NEED_DB,
	  admin_cmd_alias_list, "list aliases and their targets",
	  "    Lists every alias with its targets in delivery order.  With\n"
	  "    --json: an array of {\"alias\": ..., \"targets\": [...]}.\n",
	  NULL, NULL },
	{ "domain", "add", "DOMAIN", { "DOMAIN" }, 1, 1, 0,
	  ADMIN_NEED_DB_CREATE, admin_cmd_domain_add,
	  "accept mail for a domain before it has users",
	  "    Adds DOMAIN to the list of local domains.  Adding a user or\n"
	  "    alias does this by itself.\n",
	  NULL, NULL },
	{ "domain", "del", "DOMAIN", { "DOMAIN" }, 1, 1, 0, ADMIN_NEED_DB,
	  admin_cmd_domain_del, "stop accepting mail for an empty domain",
	  "    Removes DOMAIN; refused while users or aliases of it exist.\n",
	  NULL, NULL },
	{ "domain", "list", "", { NULL }, 0, 0, 0, ADMIN_NEED_DB,
	  admin_cmd_domain_list, "list domains with user and alias counts",
	  "    Lists the local domains and how many users and aliases each\n"
	  "    has.\n",
	  NULL, NULL },
	{ "mailbox", "list", "ADDRESS", { "ADDRESS" }, 1, 1, 0,
	  ADMIN_NEED_DB, admin_cmd_mailbox_list, "list a user's mailboxes",
	  "    Lists the user's mailboxes, INBOX first, with their\n"
	  "    special-use attribute and subscription state.\n",
	  NULL, NULL },
	{ "mailbox", "create", "ADDRESS NAME", { "ADDRESS", "NAME" }, 2, 2, 0,
	  ADMIN_NEED_DB, admin_cmd_mailbox_create, "create a mailbox",
	  "    Creates mailbox NAME (\"Archive/2026\") for the user.\n",
	  NULL, "    roostctl mailbox create alice@example.com Archive/2026\n" },
	{ "mailbox", "delete", "ADDRESS NAME", { "ADDRESS", "NAME" }, 2, 2, 0,
	  ADMIN_NEED_DB, admin_cmd_mailbox_delete,
	  "delete a mailbox and its messages",
	  "    Deletes mailbox NAME with all its messages.  INBOX cannot\n"
	  "    be deleted.\n",
	  NULL, NULL },
	{ "mailbox", "rename", "ADDRESS OLD NEW", { "ADDRESS", "OLD", "NEW" },
	  3, 3, 0, ADMIN_NEED_DB, admin_cmd_mailbox_rename,
	  "rename a mailbox and its children",
	  "    Renames OLD to NEW; child mailboxes (\"OLD/x\") move along.\n"
	  "    Renaming INBOX moves its messages into NEW and leaves an\n"
	  "    empty INBOX (RFC 9051 section 6.3.6).\n",
	  NULL, NULL },
	{ "mailbox", "status", "ADDRESS [NAME]", { "ADDRESS" }, 1, 2, 0,
	  ADMIN_NEED_DB, admin_cmd_mailbox_status,
	  "show message counts, UIDs and size",
	  "    Shows messages, unseen, UIDVALIDITY, UIDNEXT and bytes of\n"
	  "    mailbox NAME, or of every mailbox when NAME is omitted.  The\n"
	  "    figures come from the index; 'index check' tells whether it\n"
	  "    matches the files.  With --json and NAME: one object;\n"
	  "    without NAME: an array.\n",
	  NULL, NULL },
	{ "index", "check", "ADDRESS", { "ADDRESS" }, 1, 1, 0, ADMIN_NEED_DB,
	  admin_cmd_index_check, "compare a user's index with the files",
	  "    Compares the user's Maildir files with the index without\n"
	  "    changing either, and prints every difference.  Exits 1 when\n"
	  "    anything differs.\n",
	  NULL, "    roostctl index check alice@example.com || "
	  "roostctl index rebuild alice@example.com\n" },
	{ "index", "sync", "ADDRESS", { "ADDRESS" }, 1, 1, 0, ADMIN_NEED_DB,
	  admin_cmd_index_sync, "take file changes into a user's index",
	  "    Syncs every mailbox of the user as a mail client's login\n"
	  "    would: files that other tools (or a delivery cut short by a\n"
	  "    crash) left in new/ or cur/ get the next UIDs, rows of\n"
	  "    vanished files are dropped, flag renames are taken in.  No\n"
	  "    UID changes; cheaper and gentler than 'index rebuild'.\n",
	  NULL, NULL },
	{ "index", "rebuild", "ADDRESS", { "ADDRESS" }, 1, 1, 0,
	  ADMIN_NEED_DB, admin_cmd_index_rebuild,
	  "recreate a user's index from the files",
	  "    Recreates the index from the Maildir files.  UIDs (and\n"
	  "    UIDVALIDITY) the old index knows are kept, so clients do\n"
	  "    not download mail again; other files get new UIDs.  Works\n"
	  "    when the index is missing or corrupt (a corrupt one is kept\n"
	  "    as roost.db.corrupt.<time>).\n",
	  NULL, NULL },
};
const size_t admin_cmd_count = RB_N_ELEMENTS(admin_cmds);
