/*
 * roost-deliver: the pipe delivery agent.  One message on stdin for one
 * recipient; the exit code tells the MTA what happened (<sysexits.h>, as
 * qmail and Postfix's local(8) expect).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "mda/mda.h"

static const char usage_text[] =
"NAME\n"
"    roost-deliver - deliver one message from stdin into a roost mailbox\n"
"\n"
"SYNOPSIS\n"
"    roost-deliver [-c FILE] -d ADDRESS [-f SENDER] [-m MAILBOX] [-v]\n"
"\n"
"DESCRIPTION\n"
"    Reads one RFC 5322 message on standard input and delivers it to the\n"
"    roost user (or alias) ADDRESS, through the same pipeline as\n"
"    roost-lmtpd: aliases and +detail folders are resolved, the quota is\n"
"    checked, Return-Path, Delivered-To and (with add_received = yes)\n"
"    Received headers are added, and the message is written to disk and\n"
"    fsynced before the program exits 0.  A leading mbox \"From \" line,\n"
"    as Postfix's local(8) prepends, is removed; its sender is used when\n"
"    -f is not given.  Lines may end in LF or CRLF.\n"
"\n"
"    Started as root, it switches to [general] mail_user before reading\n"
"    the message; it never delivers as root.\n"
"\n"
"OPTIONS\n"
"    -c FILE     configuration file (default " RB_CONFIG_DEFAULT ")\n"
"    -d ADDRESS  recipient, local@domain (required)\n"
"    -f SENDER   envelope sender for Return-Path (\"\" or <> for none)\n"
"    -m MAILBOX  deliver into this folder (\"Archive/2026\"); INBOX if it\n"
"                does not exist\n"
"    -v          log to stderr as well (default: syslog, facility mail)\n"
"    -h, --help  this text\n"
"\n"
"EXIT STATUS\n"
"    0   delivered (on disk and fsynced)\n"
"    64  usage error\n"
"    65  unreadable input or bad address syntax (EX_DATAERR)\n"
"    67  unknown recipient (EX_NOUSER)\n"
"    73  message too big, or over quota with quota_full = reject\n"
"    75  temporary failure: disk, database lock, quota with\n"
"        quota_full = tempfail (EX_TEMPFAIL); the MTA retries\n"
"    78  bad configuration (EX_CONFIG)\n"
"    On failure one line on stderr says why.\n"
"\n"
"EXAMPLES\n"
"    Postfix main.cf:\n"
"        mailbox_command = /usr/local/bin/roost-deliver -f \"$SENDER\" "
"-d \"$USER@$DOMAIN\"\n"
"\n"
"SEE ALSO\n"
"    roost-lmtpd(8), roostctl(8)\n";

struct feed {
	struct mda_txn *txn;
	char *from_sender;
	size_t from_size;
	bool sender_given;
	bool first;
	bool begun;
};

/* The sender from an mbox "From sender date" line. */
static void
from_line_sender(struct feed *f, const unsigned char *line, size_t len)
{
	size_t i = 5, n = 0;

	while (i < len && line[i] != ' ' && n + 1 < f->from_size)
		f->from_sender[n++] = (char)line[i++];
	f->from_sender[n] = '\0';
	if (strcmp(f->from_sender, "MAILER-DAEMON") == 0)
		f->from_sender[0] = '\0';
}

/* One input line (its LF removed), or with more = true a piece of a line
 * too long to hold (the rest follows).  Returns false once delivery can
 * no longer succeed (too big, write error). */
static bool
feed_line(struct feed *f, const unsigned char *line, size_t len, bool more)
{
	if (!more && len > 0 && line[len - 1] == '\r')
		len--;
	if (f->first) {
		f->first = false;
		/* an mbox "From " line is short: a split one is text */
		if (!more && len >= 5 && memcmp(line, "From ", 5) == 0) {
			if (!f->sender_given) {
				from_line_sender(f, line, len);
				mda_txn_set_sender(f->txn, f->from_sender);
			}
			return true;
		}
	}
	if (!f->begun) {
		if (mda_txn_data_begin(f->txn) != MDA_OK)
			return false;
		f->begun = true;
	}
	return mda_txn_data_line(f->txn, (const char *)line, len, more) ==
	       MDA_OK;
}

/* Streams stdin line by line into the transaction, as LMTP does: at most
 * RB_LMTP_DATA_LINE_MAX octets of a line are held, a longer one is handed
 * on in pieces, so memory stays bounded whatever the input.  Returns 0,
 * or -1 on a read error. */
static int
feed_stdin(struct feed *f)
{
	struct rb_buf line;
	char chunk[65536];
	bool eof = false, go = true;

	rb_buf_init(&line, RB_LMTP_DATA_LINE_MAX);
	while (!eof && go) {
		ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
		size_t pos = 0;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			rb_buf_free(&line);
			return -1;
		}
		eof = n == 0;
		while (go && pos < (size_t)n) {
			const char *nl = memchr(chunk + pos, '\n',
						(size_t)n - pos);
			size_t take = nl != NULL ? (size_t)(nl - chunk) - pos
						 : (size_t)n - pos;

			size_t room = line.max - line.len;

			if (take > room) {
				/* Hand on a full piece; a CR at its end stays
				 * for the next one, where an LF may end the
				 * line (CRLF becomes LF). */
				bool cr;

				RB_CHECK(rb_buf_append(&line, chunk + pos,
						       room) == 0);
				pos += room;
				cr = line.data[line.len - 1] == '\r';
				go = feed_line(f, line.data,
					       line.len - (cr ? 1 : 0), true);
				rb_buf_reset(&line);
				if (cr)
					(void)rb_buf_append(&line, "\r", 1);
				continue;
			}
			RB_CHECK(rb_buf_append(&line, chunk + pos, take) == 0);
			pos += take;
			if (nl == NULL)
				break;
			pos++;
			go = feed_line(f, line.data, line.len, false);
			rb_buf_reset(&line);
		}
		if (eof && go && line.len > 0)
			(void)feed_line(f, line.data, line.len, false);
	}
	rb_buf_free(&line);
	return 0;
}

/* Everything after the configuration is loaded; returns the exit code. */
static int
deliver(const struct rb_config *cfg, const char *rcpt, const char *sender,
	const char *mailbox)
{
	char from_sender[RB_ADDR_MAX + 1] = "";
	struct mda *mda;
	struct mda_txn *txn;
	struct mda_reply reply;
	enum mda_status status, result;
	char session[32];
	const char *err;

	if (rb_privdrop(cfg->general.mail_user, &err) < 0)
		return rb_fail(EX_CONFIG, "%s", err);
	if (mda_open(cfg, &mda, &err) < 0)
		return rb_fail(EX_TEMPFAIL, "cannot open the user database: %s",
			    err);

	(void)rb_snprintf(session, sizeof(session), "d%llx",
			  (unsigned long long)rb_now_usec());
	if (sender != NULL && sender[0] == '<' &&
	    sender[strlen(sender) - 1] == '>') {
		/* Accept "<addr>" as MTAs sometimes pass it. */
		size_t len = strlen(sender);
		(void)rb_snprintf(from_sender, sizeof(from_sender), "%.*s",
				  (int)(len >= 2 ? len - 2 : 0), sender + 1);
		sender = from_sender;
	}
	struct mda_txn_params params = {
		.sender = sender != NULL ? sender : "",
		.protocol = "local",
		.session_id = session,
	};
	txn = mda_txn_new(mda, &params);
	status = mda_txn_add_rcpt(txn, rcpt, mailbox);
	if (status != MDA_OK) {
		mda_reply(mda, status, true, &reply);
		mda_txn_free(&txn);
		mda_close(&mda);
		fprintf(stderr, "roost-deliver: <%s>: %s (%s)\n", rcpt,
			reply.text, reply.enhanced);
		return reply.exit_code;
	}
	struct feed f = {
		.txn = txn,
		.from_sender = from_sender,
		.from_size = sizeof(from_sender),
		.sender_given = sender != NULL,
		.first = true,
	};
	if (feed_stdin(&f) < 0) {
		mda_txn_free(&txn);
		mda_close(&mda);
		return rb_fail(EX_DATAERR, "cannot read the message from "
			    "standard input");
	}
	if (!f.begun)	/* empty input: an empty message */
		(void)mda_txn_data_begin(txn);
	mda_txn_data_end(txn, &result);
	mda_reply(mda, result, false, &reply);
	mda_txn_free(&txn);
	mda_close(&mda);
	if (result != MDA_OK) {
		fprintf(stderr, "roost-deliver: <%s>: %s (%s)\n", rcpt,
			reply.text, reply.enhanced);
	}
	return reply.exit_code;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf = RB_CONFIG_DEFAULT, *rcpt = NULL, *sender = NULL;
	const char *mailbox = NULL;
	char *cerr = NULL;
	bool verbose = false;
	struct rb_config cfg;
	int c;

	while ((c = getopt_long(argc, argv, "c:d:f:m:vh", longopts, NULL)) !=
	       -1) {
		switch (c) {
		case 'c': conf = optarg; break;
		case 'd': rcpt = optarg; break;
		case 'f': sender = optarg; break;
		case 'm': mailbox = optarg; break;
		case 'v': verbose = true; break;
		case 'h': fputs(usage_text, stdout); return 0;
		default:
			return rb_fail(EX_USAGE, "usage: roost-deliver [-c FILE] "
				    "-d ADDRESS [-f SENDER] [-m MAILBOX]");
		}
	}
	if (rcpt == NULL || optind != argc)
		return rb_fail(EX_USAGE, "usage: roost-deliver [-c FILE] "
			    "-d ADDRESS [-f SENDER] [-m MAILBOX]");

	rb_config_defaults(&cfg);
	if (rb_config_load(conf, &cfg, &cerr) < 0) {
		c = rb_fail(EX_CONFIG, "%s", cerr);
		free(cerr);
		rb_config_free(&cfg);
		return c;
	}
	rb_log_init("roost-deliver", verbose ? RB_LOG_STDERR : RB_LOG_SYSLOG,
		    cfg.general.log_level);
	c = deliver(&cfg, rcpt, sender, mailbox);
	rb_config_free(&cfg);
	return c;
}
