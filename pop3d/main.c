/*
 * roost-pop3d: the POP3 server (RFC 1939, 2449, 2595, 5034, 8314).
 * main() reads the config, loads the TLS key and opens the listeners as
 * root, drops to mail_user and hands over to the worker process model of
 * common/ (rb_server_run).
 */
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <event2/event.h>

#include "pop3d/pop3d_int.h"

static const char usage_text[] =
"NAME\n"
"    roost-pop3d - POP3 server for roost mailboxes\n"
"\n"
"SYNOPSIS\n"
"    roost-pop3d [-c FILE] [-f] [-t]\n"
"    roost-pop3d --help\n"
"\n"
"DESCRIPTION\n"
"    Serves each user's INBOX over POP3 (RFC 1939) on plain ports with\n"
"    STLS (RFC 2595) and on implicit-TLS ports (RFC 8314, usually 995).\n"
"    Commands: USER, PASS, AUTH (RFC 5034, SASL PLAIN and LOGIN through\n"
"    Cyrus SASL against users.db), STLS, CAPA, STAT, LIST, RETR, TOP,\n"
"    UIDL, DELE, RSET, NOOP, QUIT.  Extensions (RFC 2449): TOP, UIDL,\n"
"    USER, SASL, RESP-CODES, AUTH-RESP-CODE, PIPELINING, LOGIN-DELAY\n"
"    (when configured), STLS.  APOP is not offered.\n"
"\n"
"    At login the maildrop is locked (a second session of the same user\n"
"    gets -ERR [IN-USE]; delivery goes on) and snapshotted: message\n"
"    numbers and sizes stay fixed for the session.  Sizes are the octets\n"
"    RETR sends (CRLF line ends).  DELE only marks; QUIT removes the\n"
"    marked messages and answers +OK once they are gone.  A connection\n"
"    that drops without QUIT removes nothing.  UIDLs are the Maildir\n"
"    base names and survive restarts and index rebuilds.\n"
"\n"
"    Plaintext passwords (USER/PASS, AUTH PLAIN/LOGIN) are refused on\n"
"    unencrypted connections unless [auth] allow_plaintext permits\n"
"    them; CAPA then omits USER.  Failed logins are logged with the\n"
"    remote address, answered after a delay that doubles with each\n"
"    failure from that address, and the third one closes the session.\n"
"\n"
"    Started as root, it reads the TLS key and binds its ports, then\n"
"    switches to [general] mail_user for good before it reads any byte\n"
"    from the network.\n"
"\n"
"OPTIONS\n"
"    -c FILE     configuration file (default " RB_CONFIG_DEFAULT ")\n"
"    -f          stay in the foreground (the only mode; for systemd and\n"
"                other supervisors)\n"
"    -t          check the configuration (and load the TLS key) and exit\n"
"    -h, --help  this text\n"
"\n"
"CONFIGURATION\n"
"    [general]  data_dir, mail_user, hostname, log, log_level\n"
"    [pop3]     listen                  plain ports with STLS\n"
"                                       (\"0.0.0.0:110\"; empty: none)\n"
"               listen_tls              implicit-TLS ports (\"0.0.0.0:995\")\n"
"               workers                 worker processes\n"
"               mark_seen_on_retr       set \\Seen on RETR (yes)\n"
"               idle_timeout            seconds idle after login (600);\n"
"                                       before login at most 60\n"
"               max_connections         per worker\n"
"               max_connections_per_ip  per worker and remote address\n"
"               login_delay             seconds between logins of a user,\n"
"                                       announced as LOGIN-DELAY (0: off)\n"
"    [tls]      cert, key, min_version (1.2 | 1.3), ciphers\n"
"    [auth]     mechanisms              SASL mechanisms (PLAIN LOGIN)\n"
"               allow_plaintext         no | yes | loopback\n"
"               failure_delay           seconds after a first failure\n"
"               max_failures_per_ip     per minute, then refused\n"
"               localpart_case          as for delivery\n"
"\n"
"SIGNALS\n"
"    SIGTERM, SIGINT  stop: idle sessions get \"-ERR [SYS/TEMP]\" and are\n"
"                     closed without removing anything; a message being\n"
"                     sent and a QUIT being carried out are finished\n"
"                     first, then the workers exit.\n"
"\n"
"EXIT STATUS\n"
"    0   stopped cleanly, or -t found the configuration valid\n"
"    64  usage error (EX_USAGE)\n"
"    71  cannot open a listening socket (EX_OSERR)\n"
"    78  bad configuration, unusable TLS key or certificate, or root\n"
"        without a usable mail_user (EX_CONFIG)\n"
"\n"
"SEE ALSO\n"
"    roost-lmtpd(8), roostctl(8), RFC 1939, RFC 2449, RFC 2595,\n"
"    RFC 5034, RFC 8314\n";

static const char usage_short[] =
	"usage: roost-pop3d [-c FILE] [-f] [-t] [--help]\n";

static struct pop3_worker worker;

static int
worker_init(struct event_base *base, void *arg)
{
	struct pop3_worker *w = arg;
	struct auth_sasl *probe = NULL;

	w->base = base;
	w->throttle = auth_throttle_new(w->cfg->auth.failure_delay,
					w->cfg->auth.max_failures_per_ip);
	/* which configured mechanisms we can serve, once per worker */
	w->mechs[0] = '\0';
	if (auth_sasl_new(NULL, "pop", w->cfg->auth.mechanisms, NULL, NULL,
			  &probe) == AUTH_OK) {
		(void)rb_strlcpy(w->mechs, auth_sasl_mechanisms(probe),
				 sizeof(w->mechs));
		auth_sasl_free(&probe);
	} else {
		log_error("SASL unavailable: AUTH is not offered");
	}
	/* users.db is opened on the first login (pop3_auth.c) */
	return 0;
}

static void
worker_exit(void *arg)
{
	struct pop3_worker *w = arg;

	auth_db_close(&w->db);
	auth_throttle_free(&w->throttle);
}

static void
on_accept(struct event_base *base, int fd, bool tls, const char *remote,
	  bool loopback, void *arg)
{
	(void)base;
	pop3_session_accept(arg, fd, tls, remote, loopback);
}

static void
on_shutdown(void *arg)
{
	pop3_worker_shutdown(arg);
}

static void
close_listeners(struct rb_server_listener *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(l[i].fd);
}

static int
open_listeners(const struct rb_listen_list *list, bool tls,
	       struct rb_server_listener *l, size_t *n)
{
	const char *error;

	for (size_t i = 0; i < list->count; i++) {
		const struct rb_listen_addr *a = &list->addr[i];
		char name[160];

		if (rb_listen_open(a, (uid_t)-1, (gid_t)-1, &l[*n].fd,
				   &error) < 0) {
			(void)rb_fail(EX_OSERR, "cannot listen on %s: %s",
				   rb_listen_name(a, name, sizeof(name)),
				   error);
			return -1;
		}
		l[*n].tls = tls;
		(*n)++;
		log_info("listening on %s%s",
			 rb_listen_name(a, name, sizeof(name)),
			 tls ? " (TLS)" : "");
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config_path = RB_CONFIG_DEFAULT;
	bool test_only = false;
	struct rb_server_listener listeners[RB_LISTEN_MAX * 2];
	struct rb_server_params params;
	struct rb_config cfg;
	struct ssl_ctx_st *tls_ctx = NULL;
	uid_t uid;
	gid_t gid;
	const char *error;
	char *cerror = NULL;
	size_t n = 0;
	int c, ret;

	while ((c = getopt_long(argc, argv, "c:fth", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'f':
			/* the foreground is the only mode */
			break;
		case 't':
			test_only = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs(usage_short, stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage_short, stderr);
		return EX_USAGE;
	}

	rb_config_defaults(&cfg);
	if (rb_config_load(config_path, &cfg, &cerror) < 0) {
		ret = rb_fail(EX_CONFIG, "%s", cerror);
		free(cerror);
		rb_config_free(&cfg);
		return ret;
	}
	ret = EX_CONFIG;
	if (cfg.pop3.listen.count + cfg.pop3.listen_tls.count == 0) {
		(void)rb_fail(EX_CONFIG, "%s: [pop3] listen and listen_tls are "
			   "both empty", config_path);
		goto out;
	}
	if (geteuid() == 0 && cfg.general.mail_user == NULL) {
		(void)rb_fail(EX_CONFIG, "%s: running as root needs [general] "
			   "mail_user: the user that owns the mail files "
			   "(e.g. mail_user = roost)", config_path);
		goto out;
	}
	if (geteuid() == 0 &&
	    rb_user_ids(cfg.general.mail_user, &uid, &gid, &error) < 0) {
		(void)rb_fail(EX_CONFIG, "%s: mail_user %s: %s", config_path,
			   cfg.general.mail_user, error);
		goto out;
	}
	/* The key is read as root so that it can stay root-only; without
	 * [tls], implicit-TLS ports are an error and STLS is not offered. */
	if (cfg.tls.cert != NULL || cfg.tls.key != NULL) {
		if (rb_tls_ctx_new(&cfg, &tls_ctx, &error) < 0) {
			(void)rb_fail(EX_CONFIG, "%s: %s", config_path, error);
			goto out;
		}
	} else if (cfg.pop3.listen_tls.count > 0) {
		(void)rb_fail(EX_CONFIG, "%s: [pop3] listen_tls needs [tls] cert "
			   "and key", config_path);
		goto out;
	}
	if (auth_sasl_global_init(&error) < 0) {
		(void)rb_fail(EX_CONFIG, "cannot initialize Cyrus SASL: %s",
			   error);
		goto out;
	}
	if (test_only) {
		printf("roost-pop3d: %s: configuration OK\n", config_path);
		ret = 0;
		goto out;
	}

	rb_log_init("roost-pop3d", cfg.general.log, cfg.general.log_level);
	if (open_listeners(&cfg.pop3.listen, false, listeners, &n) < 0 ||
	    open_listeners(&cfg.pop3.listen_tls, true, listeners, &n) < 0) {
		ret = EX_OSERR;
		goto out_listeners;
	}
	/* DESIGN.md: drop root before reading any byte from the network */
	if (rb_privdrop(cfg.general.mail_user, &error) < 0) {
		(void)rb_fail(EX_CONFIG, "%s", error);
		goto out_listeners;
	}

	worker.cfg = &cfg;
	worker.tls_ctx = tls_ctx;
	memset(&params, 0, sizeof(params));
	params.name = "pop3";
	params.listeners = listeners;
	params.listener_count = n;
	params.workers = cfg.pop3.workers;
	/* a full worker stops accepting; the kernel queues the rest */
	params.max_connections = cfg.pop3.max_connections;
	params.worker_init = worker_init;
	params.accept = on_accept;
	params.shutdown = on_shutdown;
	params.worker_exit = worker_exit;
	params.arg = &worker;
	ret = rb_server_run(&params);
out_listeners:
	close_listeners(listeners, n);
out:
	rb_tls_ctx_free(&tls_ctx);
	rb_config_free(&cfg);
	return ret;
}
