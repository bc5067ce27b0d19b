/* Dropping root for good: root only reads the config, binds and loads the
 * TLS key; everything that touches mail runs as mail_user (STYLE.md,
 * Security; OpenSMTPD refuses deliveries as root the same way). */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

int
rb_user_ids(const char *user, uid_t *uid_r, gid_t *gid_r,
	    const char **error_r)
{
	struct passwd pw, *res = NULL;
	char buf[16384];
	int err = getpwnam_r(user, &pw, buf, sizeof(buf), &res);

	if (err != 0) {
		*error_r = "cannot look up mail_user in the password database";
		return -1;
	}
	if (res == NULL) {
		*error_r = "mail_user does not exist";
		return -1;
	}
	*uid_r = pw.pw_uid;
	*gid_r = pw.pw_gid;
	return 0;
}

int
rb_privdrop(const char *mail_user, const char **error_r)
{
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0 && getuid() != 0)
		return 0;
	if (mail_user == NULL) {
		*error_r = "running as root needs [general] mail_user: the user "
			   "that owns the mail files (e.g. mail_user = roost)";
		return -1;
	}
	if (rb_user_ids(mail_user, &uid, &gid, error_r) < 0)
		return -1;
	if (uid == 0) {
		*error_r = "mail_user must not be root";
		return -1;
	}
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0) {
		*error_r = "cannot switch to mail_user (setgroups/setresgid/"
			   "setresuid failed)";
		return -1;
	}
	/* Verify it cannot come back. */
	if (setuid(0) == 0 || seteuid(0) == 0) {
		*error_r = "privilege drop failed: root can be regained";
		return -1;
	}
	return 0;
}
