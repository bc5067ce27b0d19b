/*
 * admin/ — roostctl, the administration command line: users, aliases,
 * domains, mailboxes and index maintenance.  The program is a thin main()
 * around admin_main() so the whole CLI can be driven from tests.
 */
#ifndef ROOST_ADMIN_H
#define ROOST_ADMIN_H

/* Exit codes (also documented in `roostctl --help`). */
#define ADMIN_EXIT_OK 0
#define ADMIN_EXIT_FAIL 1	/* not found, exists, inconsistent index */
#define ADMIN_EXIT_USAGE 2	/* bad command line or argument value */
#define ADMIN_EXIT_TEMP 75	/* EX_TEMPFAIL: locked database, I/O error */
#define ADMIN_EXIT_CONFIG 78	/* EX_CONFIG: unreadable or bad config */

/* Runs roostctl with the given arguments (argv[0] is ignored) and returns
 * the exit code.  Writes results to stdout and errors to stderr; may drop
 * privileges for good when run as root. */
int admin_main(int argc, char **argv);

#endif
