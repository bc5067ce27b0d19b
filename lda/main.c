/*
 * roost-lmtpd: the LMTP server (RFC 2033).  main() reads the config, opens
 * the listeners as root, drops to mail_user and hands over to the worker
 * process model of common/ (rb_server_run).
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

#include "lda/lda_int.h"
#include "storage/storage.h"

static const char usage_text[] =
"NAME\n"
"    roost-lmtpd - LMTP server delivering mail into roost mailboxes\n"
"\n"
"SYNOPSIS\n"
"    roost-lmtpd [-c FILE] [-f] [-t]\n"
"    roost-lmtpd --help\n"
"\n"
"DESCRIPTION\n"
"    Accepts mail from an MTA over LMTP (RFC 2033) on TCP and unix\n"
"    sockets and delivers it to local users through the roost delivery\n"
"    pipeline: aliases and +detail folders are resolved, quotas checked,\n"
"    Return-Path, Delivered-To and Received headers added.  Recipients\n"
"    are checked at RCPT time; after the message, one reply per accepted\n"
"    recipient says whether it was delivered.  A 250 reply means the\n"
"    message is on disk, fsynced and indexed.\n"
"\n"
"    Extensions: PIPELINING (RFC 2920), ENHANCEDSTATUSCODES (RFC 2034),\n"
"    8BITMIME (RFC 6152), SIZE (RFC 1870), CHUNKING (RFC 3030, BDAT).\n"
"    HELO and EHLO are refused with 500 (RFC 2033 section 4.1).\n"
"\n"
"    Command lines may be max_line_length octets long including CRLF;\n"
"    message lines of any length are accepted.  Lines may end in CRLF\n"
"    or a bare LF.\n"
"\n"
"    Started as root, it binds its sockets (unix sockets are given to\n"
"    mail_user), then switches to [general] mail_user for good before it\n"
"    reads any byte from the network.  It never delivers as root.\n"
"\n"
"OPTIONS\n"
"    -c FILE     configuration file (default " RB_CONFIG_DEFAULT ")\n"
"    -f          stay in the foreground (the only mode; for systemd and\n"
"                other supervisors)\n"
"    -t          check the configuration and exit\n"
"    -h, --help  this text\n"
"\n"
"CONFIGURATION\n"
"    [general]  data_dir, mail_user, hostname (greeting and replies),\n"
"               log (stderr | syslog), log_level\n"
"    [lmtp]     listen            \"127.0.0.1:24, unix:/run/roost/lmtp.sock\"\n"
"               max_message_size  SIZE announced and enforced (552 5.3.4)\n"
"               workers           worker processes\n"
"               idle_timeout      seconds without input before\n"
"                                 \"421 4.4.2 timeout\"\n"
"               max_line_length   command line limit incl. CRLF (default\n"
"                                 1000, 512-65536)\n"
"               max_connections   per worker; more get 421 4.3.2\n"
"    [delivery] recipient_delimiter, quota_full (tempfail: 452 4.2.2 |\n"
"               reject: 552 5.2.2), add_received\n"
"    [quota]    default_bytes, default_messages\n"
"    [auth]     localpart_case\n"
"\n"
"SIGNALS\n"
"    SIGTERM, SIGINT  stop: idle sessions get \"421 4.3.2\" and are\n"
"                     closed, a message being received is finished and\n"
"                     answered first, then the workers exit.\n"
"\n"
"EXIT STATUS\n"
"    0   stopped cleanly, or -t found the configuration valid\n"
"    64  usage error (EX_USAGE)\n"
"    71  cannot open a listening socket (EX_OSERR)\n"
"    78  bad configuration, or root without a usable mail_user\n"
"        (EX_CONFIG)\n"
"\n"
"SEE ALSO\n"
"    roost-deliver(8), roostctl(8), RFC 2033, RFC 5321\n";

static struct lmtp_worker worker;

static int
worker_init(struct event_base *base, void *arg)
{
	struct lmtp_worker *w = arg;
	const char *error;

	w->base = base;
	if (mda_open(w->cfg, &w->mda, &error) < 0) {
		/* not fatal: each connection tries again (and gets 421
		 * while it fails), so mail flows once the db is there */
		log_error("cannot open the user database: %s", error);
		w->mda = NULL;
	}
	return 0;
}

static void
worker_exit(void *arg)
{
	struct lmtp_worker *w = arg;

	mda_close(&w->mda);
}

static void
on_accept(struct event_base *base, int fd, bool tls, const char *remote,
	  bool loopback, void *arg)
{
	(void)base;
	(void)tls;
	(void)loopback;
	lmtp_session_accept(arg, fd, remote);
}

static void
on_shutdown(void *arg)
{
	lmtp_worker_shutdown(arg);
}

static void
close_listeners(struct rb_server_listener *l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(l[i].fd);
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
	struct rb_server_listener listeners[RB_LISTEN_MAX];
	struct rb_server_params params;
	struct rb_config cfg;
	uid_t owner_uid = (uid_t)-1;
	gid_t owner_gid = (gid_t)-1;
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
			/* the foreground is the only mode for now */
			break;
		case 't':
			test_only = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fputs("usage: roost-lmtpd [-c FILE] [-f] [-t] [--help]\n",
			      stderr);
			return EX_USAGE;
		}
	}
	if (optind != argc) {
		fputs("usage: roost-lmtpd [-c FILE] [-f] [-t] [--help]\n",
		      stderr);
		return EX_USAGE;
	}

	rb_config_defaults(&cfg);
	if (rb_config_load(config_path, &cfg, &cerror) < 0) {
		ret = rb_fail(EX_CONFIG, "%s", cerror);
		free(cerror);
		rb_config_free(&cfg);
		return ret;
	}
	if (cfg.lmtp.listen.count == 0) {
		rb_config_free(&cfg);
		return rb_fail(EX_CONFIG, "%s: [lmtp] listen is empty",
			    config_path);
	}
	if (geteuid() == 0 && cfg.general.mail_user != NULL &&
	    rb_user_ids(cfg.general.mail_user, &owner_uid, &owner_gid,
			&error) < 0) {
		ret = rb_fail(EX_CONFIG, "%s: mail_user %s: %s", config_path,
			   cfg.general.mail_user, error);
		rb_config_free(&cfg);
		return ret;
	}
	if (geteuid() == 0 && cfg.general.mail_user == NULL) {
		rb_config_free(&cfg);
		return rb_fail(EX_CONFIG, "%s: running as root needs [general] "
			    "mail_user: the user that owns the mail files "
			    "(e.g. mail_user = roost)", config_path);
	}
	if (test_only) {
		printf("roost-lmtpd: %s: configuration OK\n", config_path);
		rb_config_free(&cfg);
		return 0;
	}

	rb_log_init("roost-lmtpd", cfg.general.log, cfg.general.log_level);
	for (n = 0; n < cfg.lmtp.listen.count; n++) {
		const struct rb_listen_addr *a = &cfg.lmtp.listen.addr[n];
		char name[160];

		if (rb_listen_open(a, owner_uid, owner_gid, &listeners[n].fd,
				   &error) < 0) {
			ret = rb_fail(EX_OSERR, "cannot listen on %s: %s",
				   rb_listen_name(a, name, sizeof(name)),
				   error);
			close_listeners(listeners, n);
			rb_config_free(&cfg);
			return ret;
		}
		listeners[n].tls = false;
		log_info("listening on %s",
			 rb_listen_name(a, name, sizeof(name)));
	}
	/* DESIGN.md: drop root before reading any byte from the network */
	if (rb_privdrop(cfg.general.mail_user, &error) < 0) {
		close_listeners(listeners, n);
		rb_config_free(&cfg);
		return rb_fail(EX_CONFIG, "%s", error);
	}

	/* Spools of transactions a crash (or kill -9) cut off are never
	 * acknowledged, so nothing refers to them: remove the old ones. */
	{
		unsigned removed;

		if (storage_spool_cleanup(cfg.general.data_dir,
					  RB_SPOOL_STALE_SECONDS, &removed,
					  &error) != STORAGE_OK)
			log_warning("%s", error);
		else if (removed > 0)
			log_info("removed %u stale spool files", removed);
	}
	worker.cfg = &cfg;
	memset(&params, 0, sizeof(params));
	params.name = "lmtp";
	params.listeners = listeners;
	params.listener_count = n;
	params.workers = cfg.lmtp.workers;
	/* 0: never pause accepting; a full worker answers 421 4.3.2 itself
	 * (lmtp_session_accept) so the MTA knows to retry */
	params.max_connections = 0;
	params.worker_init = worker_init;
	params.accept = on_accept;
	params.shutdown = on_shutdown;
	params.worker_exit = worker_exit;
	params.arg = &worker;
	ret = rb_server_run(&params);
	close_listeners(listeners, n);
	rb_config_free(&cfg);
	return ret;
}
