/*
 * Every numeric limit of roost in one place (the sqliteLimit.h pattern).
 * Each has a one-line reason and a compile-time ceiling check, so a
 * careless edit cannot raise a limit past what the code was written for.
 */
#ifndef ROOST_LIMITS_H
#define ROOST_LIMITS_H

/* Longest config line; longer lines are an error, never truncated. */
#define RB_CONFIG_LINE_MAX 4096
/* Longest path we ever build (Linux PATH_MAX). */
#define RB_PATH_MAX 4096
/* local@domain: RFC 5321 §4.5.3.1 allows 64 + 1 + 255. */
#define RB_ADDR_MAX 320
#define RB_LOCALPART_MAX 64
#define RB_DOMAIN_MAX 255
/* One IMAP mailbox name (UTF-7 or UTF-8) as stored on disk. */
#define RB_MAILBOX_NAME_MAX 255
/* Hierarchy depth of mailbox names, to keep recursion and paths bounded. */
#define RB_MAILBOX_DEPTH_MAX 32
/* Host names (RFC 1035). */
#define RB_HOSTNAME_MAX 255

/* LMTP: RFC 5321 §4.5.3.1.4 command line is 512; we allow more for long
 * parameters, and the text line of DATA is 1000 (§4.5.3.1.6). */
#define RB_LMTP_LINE_MAX 1000
/* Bounds of [lmtp] max_line_length: RFC 5321 §4.5.3.1.4 needs 512. */
#define RB_LMTP_LINE_MIN 512
#define RB_LMTP_LINE_CEILING 65536
/* Longest message line held whole in memory; longer lines (real mail
 * sometimes passes the 1000 of §4.5.3.1.6) are streamed on in pieces of
 * this size rather than refused, because refusing would bounce mail. */
#define RB_LMTP_DATA_LINE_MAX (64 * 1024)
/* Recipients in one transaction (RFC 5321 §4.5.3.1.8 asks for >= 100). */
#define RB_LMTP_RCPT_MAX 1000
/* Targets one address may expand to via aliases. */
#define RB_ALIAS_TARGETS_MAX 64
/* Default and ceiling of max_message_size. */
#define RB_MESSAGE_SIZE_DEFAULT (50 * 1024 * 1024)
#define RB_MESSAGE_SIZE_CEILING (1024LL * 1024 * 1024)
/* Age (mtime) past which a file in data_dir/tmp is a spool that a dead
 * process left behind: the Maildir convention for tmp/ (qmail), far more
 * than any live transaction, whose spool is written at least every
 * idle_timeout. */
#define RB_SPOOL_STALE_SECONDS (36 * 3600)
/* Bad commands before an LMTP/POP3 session is dropped. */
#define RB_BAD_COMMANDS_MAX 20
/* Output buffered for one session before we stop reading its input. */
#define RB_OUTPUT_BUFFER_MAX (256 * 1024)
/* Workers per daemon. */
#define RB_WORKERS_MAX 256
/* Connections one worker serves at once. */
#define RB_CONNECTIONS_PER_WORKER_MAX 4096
/* Listen entries per protocol. */
#define RB_LISTEN_MAX 16
/* POP3 (RFC 2449 §4): command lines are at most 255 octets with CRLF. */
#define RB_POP3_LINE_MAX 255
/* A base64 SASL response line with CRLF: PLAIN with a maximal address
 * twice and RB_PASSWORD_MAX is about 2.2 KB encoded. */
#define RB_POP3_SASL_LINE_MAX 4096
/* RFC 1939 §3: arguments are at most 40 characters (USER and PASS, an
 * address and a password, are bounded by their own limits). */
#define RB_POP3_ARG_MAX 40
/* Failed logins before a POP3 session is closed. */
#define RB_POP3_AUTH_FAILURES_MAX 3
/* Seconds allowed before login (after it: [pop3] idle_timeout): an
 * unauthenticated connection costs memory and gives the peer nothing. */
#define RB_POP3_PRELOGIN_TIMEOUT 60
/* Pipelined input buffered before we stop reading the socket. */
#define RB_POP3_INPUT_MAX (64 * 1024)
/* Bytes of a message file read at a time by RETR/TOP. */
#define RB_POP3_READ_CHUNK (16 * 1024)
/* RFC 1939 §7: a UIDL is 1 to 70 characters in 0x21-0x7E. */
#define RB_POP3_UIDL_MAX 70
/* Remote addresses the failed-login throttle remembers per process
 * (about 80 bytes each). */
#define RB_AUTH_THROTTLE_SLOTS 4096
/* Seconds over which failed logins are counted. */
#define RB_AUTH_THROTTLE_WINDOW 60
/* Longest delay imposed on one failed-login answer. */
#define RB_AUTH_THROTTLE_DELAY_MAX_MS 15000u

/* Open user stores an LMTP worker keeps between deliveries (LRU). */
#define RB_MDA_STORES 32

/* Password bytes we accept for hashing/verification. */
#define RB_PASSWORD_MAX 1024
/* A stored password hash string. */
#define RB_HASH_MAX 512

#if RB_LMTP_LINE_MAX < 512
#error "RFC 5321 needs command lines of at least 512 octets"
#endif
#if RB_LMTP_RCPT_MAX < 100 || RB_LMTP_RCPT_MAX > 100000
#error "RB_LMTP_RCPT_MAX out of range"
#endif
#if RB_ADDR_MAX < RB_LOCALPART_MAX + 1 + RB_DOMAIN_MAX
#error "RB_ADDR_MAX too small"
#endif
#if RB_POP3_LINE_MAX < 255
#error "RFC 2449 §4 needs 255-octet POP3 command lines"
#endif
#if RB_POP3_UIDL_MAX != 70
#error "RFC 1939 §7 fixes UIDLs at 70 characters at most"
#endif
#if RB_PATH_MAX > 65536
#error "RB_PATH_MAX unreasonably large"
#endif

#endif
