/*
 * The INI configuration: "[section]", "key = value", and comment lines
 * starting with '#' or ';', and inline comments: a '#' after white space
 * ends the value.  Every key is declared in one table below with
 * its type and bounds; an unknown section or key, a bad value, an over-long
 * line or a missing file is an error naming the file, the line and the key.
 * Values are otherwise taken literally (no quotes), so cipher strings and
 * paths need no escaping.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/common.h"

enum key_type {
	KEY_STR,	/* char * (heap) */
	KEY_SIZE,	/* uint64_t with k/M/G */
	KEY_UINT,	/* unsigned */
	KEY_BOOL,
	KEY_LISTEN,	/* struct rb_listen_list */
	KEY_DELIM,	/* char[8] */
	KEY_LOG,	/* enum rb_log_target */
	KEY_LOGLEVEL,	/* enum rb_log_level */
	KEY_QUOTAFULL,	/* enum rb_quota_full */
	KEY_PLAINTEXT,	/* enum rb_plaintext */
	KEY_LPCASE,	/* bool: "sensitive" / "insensitive" */
	KEY_TLSVER,	/* char *: "1.2" / "1.3" */
};

struct key_def {
	const char *section;
	const char *key;
	enum key_type type;
	size_t offset;
	uint64_t min, max;	/* KEY_UINT, KEY_SIZE */
};

#define OFF(field) offsetof(struct rb_config, field)
static const struct key_def keys[] = {
	{ "general", "data_dir", KEY_STR, OFF(general.data_dir), 0, 0 },
	{ "general", "mail_user", KEY_STR, OFF(general.mail_user), 0, 0 },
	{ "general", "hostname", KEY_STR, OFF(general.hostname), 0, 0 },
	{ "general", "log", KEY_LOG, OFF(general.log), 0, 0 },
	{ "general", "log_level", KEY_LOGLEVEL, OFF(general.log_level), 0, 0 },
	{ "tls", "cert", KEY_STR, OFF(tls.cert), 0, 0 },
	{ "tls", "key", KEY_STR, OFF(tls.key), 0, 0 },
	{ "tls", "min_version", KEY_TLSVER, OFF(tls.min_version), 0, 0 },
	{ "tls", "ciphers", KEY_STR, OFF(tls.ciphers), 0, 0 },
	{ "lmtp", "listen", KEY_LISTEN, OFF(lmtp.listen), 0, 0 },
	{ "lmtp", "max_message_size", KEY_SIZE, OFF(lmtp.max_message_size),
	  1024, RB_MESSAGE_SIZE_CEILING },
	{ "lmtp", "workers", KEY_UINT, OFF(lmtp.workers), 1, RB_WORKERS_MAX },
	{ "lmtp", "idle_timeout", KEY_UINT, OFF(lmtp.idle_timeout), 1, 86400 },
	{ "lmtp", "max_line_length", KEY_UINT, OFF(lmtp.max_line_length),
	  RB_LMTP_LINE_MIN, RB_LMTP_LINE_CEILING },
	{ "lmtp", "max_connections", KEY_UINT, OFF(lmtp.max_connections), 1,
	  RB_CONNECTIONS_PER_WORKER_MAX },
	{ "delivery", "recipient_delimiter", KEY_DELIM,
	  OFF(delivery.recipient_delimiter), 0, 0 },
	{ "delivery", "quota_full", KEY_QUOTAFULL, OFF(delivery.quota_full), 0,
	  0 },
	{ "delivery", "add_received", KEY_BOOL, OFF(delivery.add_received), 0,
	  0 },
	{ "quota", "default_bytes", KEY_SIZE, OFF(quota.default_bytes), 0,
	  UINT64_MAX },
	{ "quota", "default_messages", KEY_SIZE, OFF(quota.default_messages),
	  0, UINT64_MAX },
	{ "pop3", "listen", KEY_LISTEN, OFF(pop3.listen), 0, 0 },
	{ "pop3", "listen_tls", KEY_LISTEN, OFF(pop3.listen_tls), 0, 0 },
	{ "pop3", "workers", KEY_UINT, OFF(pop3.workers), 1, RB_WORKERS_MAX },
	{ "pop3", "mark_seen_on_retr", KEY_BOOL, OFF(pop3.mark_seen_on_retr),
	  0, 0 },
	{ "pop3", "idle_timeout", KEY_UINT, OFF(pop3.idle_timeout), 1, 86400 },
	{ "pop3", "max_connections", KEY_UINT, OFF(pop3.max_connections), 1,
	  RB_CONNECTIONS_PER_WORKER_MAX },
	{ "pop3", "max_connections_per_ip", KEY_UINT,
	  OFF(pop3.max_connections_per_ip), 1, 100000 },
	{ "pop3", "login_delay", KEY_UINT, OFF(pop3.login_delay), 0, 86400 },
	{ "auth", "mechanisms", KEY_STR, OFF(auth.mechanisms), 0, 0 },
	{ "auth", "allow_plaintext", KEY_PLAINTEXT, OFF(auth.allow_plaintext),
	  0, 0 },
	{ "auth", "failure_delay", KEY_UINT, OFF(auth.failure_delay), 0, 60 },
	{ "auth", "max_failures_per_ip", KEY_UINT,
	  OFF(auth.max_failures_per_ip), 1, 100000 },
	{ "auth", "localpart_case", KEY_LPCASE,
	  OFF(auth.localpart_case_sensitive), 0, 0 },
};

void
rb_config_defaults(struct rb_config *cfg)
{
	char host[RB_HOSTNAME_MAX + 1];
	const char *err;

	memset(cfg, 0, sizeof(*cfg));
	cfg->general.data_dir = rb_strdup("/var/lib/roost");
	if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		(void)rb_strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	cfg->general.hostname = rb_strdup(host);
	cfg->general.log = RB_LOG_STDERR;
	cfg->general.log_level = RB_LOG_INFO;
	cfg->tls.min_version = rb_strdup("1.2");
	(void)rb_listen_parse("127.0.0.1:24", &cfg->lmtp.listen, &err);
	cfg->lmtp.max_message_size = RB_MESSAGE_SIZE_DEFAULT;
	cfg->lmtp.workers = 2;
	cfg->lmtp.idle_timeout = 300;	/* RFC 5321 §4.5.3.2.7: 5 minutes */
	cfg->lmtp.max_line_length = RB_LMTP_LINE_MAX;
	cfg->lmtp.max_connections = 1024;
	(void)rb_strlcpy(cfg->delivery.recipient_delimiter, "+",
			 sizeof(cfg->delivery.recipient_delimiter));
	cfg->delivery.quota_full = RB_QUOTA_FULL_TEMPFAIL;
	cfg->delivery.add_received = true;
	(void)rb_listen_parse("0.0.0.0:110", &cfg->pop3.listen, &err);
	(void)rb_listen_parse("0.0.0.0:995", &cfg->pop3.listen_tls, &err);
	cfg->pop3.workers = 2;
	cfg->pop3.mark_seen_on_retr = true;
	cfg->pop3.idle_timeout = 600;	/* RFC 1939 §3: at least 10 minutes */
	cfg->pop3.max_connections = 1024;
	cfg->pop3.max_connections_per_ip = 20;
	cfg->auth.mechanisms = rb_strdup("PLAIN LOGIN");
	cfg->auth.allow_plaintext = RB_PLAINTEXT_NO;
	cfg->auth.failure_delay = 2;
	cfg->auth.max_failures_per_ip = 10;
}

void
rb_config_free(struct rb_config *cfg)
{
	for (size_t i = 0; i < RB_N_ELEMENTS(keys); i++) {
		if (keys[i].type == KEY_STR || keys[i].type == KEY_TLSVER) {
			char **p = (char **)((char *)cfg + keys[i].offset);
			rb_free(p);
		}
	}
	rb_free(&cfg->path);
}

static int
enum_value(const char *value, const char *const *names, size_t count,
	   int *v_r)
{
	for (size_t i = 0; i < count; i++) {
		if (strcmp(value, names[i]) == 0) {
			*v_r = (int)i;
			return 0;
		}
	}
	return -1;
}

/* Sets one key; on a bad value returns -1 with *why_r. */
static int
set_key(struct rb_config *cfg, const struct key_def *k, const char *value,
	const char **why_r)
{
	void *field = (char *)cfg + k->offset;
	uint64_t u;
	int e;

	switch (k->type) {
	case KEY_STR:
		if (value[0] == '\0') {
			*why_r = "empty value";
			return -1;
		}
		free(*(char **)field);
		*(char **)field = rb_strdup(value);
		return 0;
	case KEY_TLSVER:
		if (strcmp(value, "1.2") != 0 && strcmp(value, "1.3") != 0) {
			*why_r = "must be 1.2 or 1.3";
			return -1;
		}
		free(*(char **)field);
		*(char **)field = rb_strdup(value);
		return 0;
	case KEY_SIZE:
		if (rb_parse_size(value, &u) < 0 || u < k->min || u > k->max) {
			*why_r = "not a size in range (digits with optional "
				 "k, M or G)";
			return -1;
		}
		*(uint64_t *)field = u;
		return 0;
	case KEY_UINT:
		if (rb_parse_uint(value, k->min, k->max, &u) < 0) {
			*why_r = "not a number in the allowed range";
			return -1;
		}
		*(unsigned *)field = (unsigned)u;
		return 0;
	case KEY_BOOL:
		if (rb_parse_bool(value, (bool *)field) < 0) {
			*why_r = "must be yes or no";
			return -1;
		}
		return 0;
	case KEY_LISTEN:
		return rb_listen_parse(value, field, why_r);
	case KEY_DELIM:
		for (const char *p = value; *p != '\0'; p++) {
			if (*p == '@' || (unsigned char)*p <= ' ' ||
			    (unsigned char)*p >= 0x7f) {
				*why_r = "delimiters must be printable ASCII "
					 "other than '@'";
				return -1;
			}
		}
		if (rb_strlcpy(field, value, 8) < 0) {
			*why_r = "at most 7 delimiter characters";
			return -1;
		}
		return 0;
	case KEY_LOG: {
		static const char *const n[] = { "stderr", "syslog" };
		if (enum_value(value, n, 2, &e) < 0) {
			*why_r = "must be stderr or syslog";
			return -1;
		}
		*(enum rb_log_target *)field = (enum rb_log_target)e;
		return 0;
	}
	case KEY_LOGLEVEL: {
		static const char *const n[] = { "debug", "info", "warning",
						 "error" };
		if (enum_value(value, n, 4, &e) < 0) {
			*why_r = "must be debug, info, warning or error";
			return -1;
		}
		*(enum rb_log_level *)field = (enum rb_log_level)e;
		return 0;
	}
	case KEY_QUOTAFULL: {
		static const char *const n[] = { "tempfail", "reject" };
		if (enum_value(value, n, 2, &e) < 0) {
			*why_r = "must be tempfail or reject";
			return -1;
		}
		*(enum rb_quota_full *)field = (enum rb_quota_full)e;
		return 0;
	}
	case KEY_PLAINTEXT: {
		static const char *const n[] = { "no", "yes", "loopback" };
		if (enum_value(value, n, 3, &e) < 0) {
			*why_r = "must be no, yes or loopback";
			return -1;
		}
		*(enum rb_plaintext *)field = (enum rb_plaintext)e;
		return 0;
	}
	case KEY_LPCASE: {
		static const char *const n[] = { "insensitive", "sensitive" };
		if (enum_value(value, n, 2, &e) < 0) {
			*why_r = "must be insensitive or sensitive";
			return -1;
		}
		*(bool *)field = e == 1;
		return 0;
	}
	}
	*why_r = "internal error";
	return -1;
}

static char *
trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
			   end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

static bool
section_known(const char *section)
{
	for (size_t i = 0; i < RB_N_ELEMENTS(keys); i++)
		if (strcmp(keys[i].section, section) == 0)
			return true;
	return false;
}

int
rb_config_parse(const char *name, const char *text, size_t len,
		struct rb_config *cfg, char **error_r)
{
	char section[32] = "";
	char line[RB_CONFIG_LINE_MAX + 1];
	size_t pos = 0;
	unsigned lineno = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl != NULL ? (size_t)(nl - (text + pos))
				       : len - pos;
		char *s, *eq, *key, *value;
		const char *why = NULL;

		lineno++;
		if (ll > RB_CONFIG_LINE_MAX) {
			*error_r = rb_strdup_printf("%s:%u: line longer than "
						    "%d bytes", name, lineno,
						    RB_CONFIG_LINE_MAX);
			return -1;
		}
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos += ll + (nl != NULL ? 1 : 0);
		if (memchr(line, '\0', ll) != NULL) {
			*error_r = rb_strdup_printf("%s:%u: NUL byte in line",
						    name, lineno);
			return -1;
		}
		s = trim(line, line + ll);
		if (*s == '\0' || *s == '#' || *s == ';')
			continue;
		for (char *h = s + 1; *h != '\0'; h++) {
			if (*h == '#' && (h[-1] == ' ' || h[-1] == '\t')) {
				*h = '\0';
				s = trim(s, h);
				break;
			}
		}
		if (*s == '[') {
			char *close = strchr(s, ']');
			char *sec;

			if (close == NULL || close[1] != '\0') {
				*error_r = rb_strdup_printf(
					"%s:%u: malformed section header",
					name, lineno);
				return -1;
			}
			sec = trim(s + 1, close);
			if (!section_known(sec) ||
			    rb_strlcpy(section, sec, sizeof(section)) < 0) {
				*error_r = rb_strdup_printf(
					"%s:%u: unknown section [%s]", name,
					lineno, sec);
				return -1;
			}
			continue;
		}
		eq = strchr(s, '=');
		if (eq == NULL) {
			*error_r = rb_strdup_printf("%s:%u: expected "
						    "'key = value'", name,
						    lineno);
			return -1;
		}
		char *lend = s + strlen(s);

		key = trim(s, eq);	/* writes NUL over '=' */
		value = trim(eq + 1, lend);
		if (section[0] == '\0') {
			*error_r = rb_strdup_printf("%s:%u: key '%s' outside "
						    "any [section]", name,
						    lineno, key);
			return -1;
		}
		const struct key_def *k = NULL;
		for (size_t i = 0; i < RB_N_ELEMENTS(keys); i++) {
			if (strcmp(keys[i].section, section) == 0 &&
			    strcmp(keys[i].key, key) == 0) {
				k = &keys[i];
				break;
			}
		}
		if (k == NULL) {
			*error_r = rb_strdup_printf("%s:%u: unknown key '%s' "
						    "in [%s]", name, lineno,
						    key, section);
			return -1;
		}
		if (set_key(cfg, k, value, &why) < 0) {
			*error_r = rb_strdup_printf("%s:%u: bad value for '%s' "
						    "in [%s]: %s", name,
						    lineno, key, section, why);
			return -1;
		}
	}
	return 0;
}

int
rb_config_load(const char *path, struct rb_config *cfg, char **error_r)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t len = 0, cap = 0;
	int ret;

	if (f == NULL) {
		*error_r = rb_strdup_printf("%s: cannot open: %s", path,
					    strerror(errno));
		return -1;
	}
	for (;;) {
		if (cap - len < 4096) {
			if (cap > 16 * 1024 * 1024) {
				fclose(f);
				free(text);
				*error_r = rb_strdup_printf("%s: file too "
							    "large", path);
				return -1;
			}
			cap = cap == 0 ? 8192 : cap * 2;
			text = rb_realloc(text, cap);
		}
		size_t n = fread(text + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	if (ferror(f)) {
		*error_r = rb_strdup_printf("%s: read error: %s", path,
					    strerror(errno));
		fclose(f);
		free(text);
		return -1;
	}
	fclose(f);
	ret = rb_config_parse(path, text, len, cfg, error_r);
	free(text);
	if (ret == 0) {
		free(cfg->path);
		cfg->path = rb_strdup(path);
	}
	return ret;
}
