/*
 * The delivery pipeline.  Implementation notes:
 * - A recipient (one RCPT) expands to one or more users (aliases).  Each
 *   user's store is opened once at RCPT time, for the quota check, and
 *   kept for the delivery.
 * - The message is written once into a storage spool, fsynced once, then
 *   linked into every target; all links happen before any commit so one
 *   journal flush covers many directory fsyncs.
 * - Delivered-To names the recipient only when the transaction has one
 *   distinct recipient address: the file is shared by hard links, and a
 *   header naming one recipient must not reach another's mailbox (Dovecot
 *   does the same).
 * - The status of an alias recipient is the worst of its targets: a
 *   temporary failure of one target makes the MTA retry, which may give
 *   the other targets a second copy; a duplicate beats a lost message.
 * - Logging: mda writes the one line per recipient outcome, for the pipe
 *   and for LMTP alike (log_outcome): a refusal at RCPT time, or after the
 *   message one line per user reached with mailbox and UID.  Addresses
 *   and folder names come from the peer and are escaped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/auth.h"
#include "mda/mda.h"
#include "storage/storage.h"

/* Trace headers are short; this bounds them. */
#define MDA_HEADERS_MAX (4 * 1024)
/* An address or folder name with every octet escaped by rb_log_escape. */
#define MDA_LOG_ESC_MAX (RB_ADDR_MAX * 4 + 8)

/* An open store kept between transactions: opening a SQLite index and
 * preparing its statements costs more than the delivery itself. */
struct mda_store {
	char user[RB_ADDR_MAX + 1];	/* "" = free slot */
	struct storage *st;
	unsigned refs;			/* targets using it now */
	uint64_t used;			/* LRU clock */
};

struct mda {
	const struct rb_config *cfg;
	struct auth_db *db;
	struct mda_store stores[RB_MDA_STORES];
	uint64_t clock;
};

struct mda_target {
	char user[RB_ADDR_MAX + 1];
	char mailbox[RB_MAILBOX_NAME_MAX + 1];	/* "" = INBOX */
	struct storage *st;	/* from mda_store_get() */
	struct storage_quota quota;
	struct storage_delivery *dlv;
	enum mda_status status;
	uint32_t uid;
};

struct mda_rcpt {
	char address[RB_ADDR_MAX + 1];
	size_t first, count;	/* its targets */
};

struct mda_txn {
	struct mda *mda;
	char *sender, *helo, *addr, *protocol, *session_id;
	char *remote;		/* for logs; NULL for the pipe */
	struct mda_rcpt *rcpts;
	size_t rcpt_count, rcpt_cap;
	struct mda_target *targets;
	size_t target_count, target_cap;
	struct storage_spool *spool;
	uint64_t size;		/* what the client sent, CRLF counted */
	uint64_t size_hint;	/* what it announced (SIZE=), 0 if nothing */
	enum mda_status data_status;
};

int
mda_open(const struct rb_config *cfg, struct mda **mda_r, const char **error_r)
{
	char path[RB_PATH_MAX];
	struct mda *mda;

	if (rb_snprintf(path, sizeof(path), "%s/users.db",
			cfg->general.data_dir) < 0) {
		*error_r = "data_dir too long";
		return -1;
	}
	mda = rb_calloc(1, sizeof(*mda));
	mda->cfg = cfg;
	if (auth_db_open(path, false, cfg->auth.localpart_case_sensitive,
			 &mda->db, error_r) != AUTH_OK) {
		free(mda);
		return -1;
	}
	*mda_r = mda;
	return 0;
}

void
mda_close(struct mda **mdap)
{
	struct mda *mda = *mdap;

	if (mda == NULL)
		return;
	for (size_t i = 0; i < RB_N_ELEMENTS(mda->stores); i++)
		storage_close(&mda->stores[i].st);
	auth_db_close(&mda->db);
	free(mda);
	*mdap = NULL;
}

void
mda_reply(const struct mda *mda, enum mda_status status, bool at_rcpt,
	  struct mda_reply *r)
{
	bool reject = mda->cfg->delivery.quota_full == RB_QUOTA_FULL_REJECT;

	switch (status) {
	case MDA_OK:
		*r = at_rcpt ? (struct mda_reply){ 250, "2.1.5", "OK", 0 }
			     : (struct mda_reply){ 250, "2.0.0", "delivered",
						   0 };
		return;
	case MDA_NO_USER:
		*r = (struct mda_reply){ 550, "5.1.1", "no such user here",
					 67 /* EX_NOUSER */ };
		return;
	case MDA_OVER_QUOTA:
		*r = reject ? (struct mda_reply){ 552, "5.2.2",
						  "mailbox full", 73 }
			    : (struct mda_reply){ 452, "4.2.2",
						  "mailbox full, try again "
						  "later", 75 };
		return;
	case MDA_TOO_BIG:
		*r = (struct mda_reply){ 552, "5.3.4", "message too big",
					 73 /* EX_CANTCREAT */ };
		return;
	case MDA_BAD_INPUT:
		*r = (struct mda_reply){ 501, "5.1.3", "bad address syntax",
					 65 /* EX_DATAERR */ };
		return;
	case MDA_TOO_MANY:
		*r = (struct mda_reply){ 452, "4.5.3", "too many recipients",
					 75 };
		return;
	case MDA_TEMP:
		break;
	}
	*r = (struct mda_reply){ 451, "4.3.0",
				 "temporary failure, try again later",
				 75 /* EX_TEMPFAIL */ };
}

static const char *
status_name(enum mda_status s)
{
	static const char *const names[] = { "ok", "no-user", "over-quota",
		"too-big", "temp", "bad-input", "too-many" };

	return (size_t)s < RB_N_ELEMENTS(names) ? names[s] : "?";
}

static const char *
log_esc(const char *s, char *buf, size_t size)
{
	return rb_log_escape(s, strlen(s), buf, size);
}

/*
 * The one log line of a recipient's outcome.  status= is what the MTA
 * makes of the reply (delivered / deferred / bounced, as Postfix logs it),
 * reason= our cause when it is not ok.  t: the user an accepted recipient
 * reached (NULL at RCPT time or when the message as a whole failed).
 * size= is the message as the client sent it, CRLF counted (RFC 1870).
 */
static void
log_outcome(const struct mda_txn *txn, const char *address,
	    const struct mda_target *t, enum mda_status status, bool at_rcpt)
{
	char from[MDA_LOG_ESC_MAX], to[MDA_LOG_ESC_MAX];
	char remote[128], target[RB_ADDR_MAX + MDA_LOG_ESC_MAX + 64];
	char size[32], box[MDA_LOG_ESC_MAX];
	struct mda_reply r;

	mda_reply(txn->mda, status, at_rcpt, &r);
	remote[0] = target[0] = size[0] = '\0';
	if (txn->remote != NULL)
		(void)rb_snprintf(remote, sizeof(remote), " remote=%s",
				  txn->remote);
	if (t != NULL)
		(void)rb_snprintf(target, sizeof(target),
				  " user=%s mailbox=%s uid=%u", t->user,
				  log_esc(t->mailbox[0] != '\0' ? t->mailbox :
					  "INBOX", box, sizeof(box)), t->uid);
	if (txn->spool != NULL)
		(void)rb_snprintf(size, sizeof(size), " size=%llu",
				  (unsigned long long)txn->size);
	log_info("session=%s%s from=<%s> to=<%s>%s%s status=%s%s%s "
		 "reply=\"%u %s\"", txn->session_id, remote,
		 log_esc(txn->sender, from, sizeof(from)),
		 log_esc(address, to, sizeof(to)), target, size,
		 r.code < 300 ? "delivered" : r.code < 500 ? "deferred" :
		 "bounced", status != MDA_OK ? " reason=" : "",
		 status != MDA_OK ? status_name(status) : "", r.code,
		 r.enhanced);
}

static char *
dup_or_empty(const char *s)
{
	return rb_strdup(s != NULL ? s : "");
}

struct mda_txn *
mda_txn_new(struct mda *mda, const struct mda_txn_params *p)
{
	struct mda_txn *txn = rb_calloc(1, sizeof(*txn));

	txn->mda = mda;
	txn->sender = dup_or_empty(p->sender);
	txn->helo = p->client_helo != NULL ? rb_strdup(p->client_helo) : NULL;
	txn->addr = p->client_addr != NULL ? rb_strdup(p->client_addr) : NULL;
	txn->protocol = dup_or_empty(p->protocol);
	txn->session_id = dup_or_empty(p->session_id);
	txn->remote = p->remote != NULL ? rb_strdup(p->remote) : NULL;
	txn->size_hint = p->size_hint;
	return txn;
}

static uint64_t
quota_value(int64_t user_value, uint64_t def)
{
	return user_value < 0 ? def : (uint64_t)user_value;
}

/*
 * The user's open store: from the cache when it is there and still the
 * store on disk (storage_stale), else opened into the least recently used
 * free slot.  Several targets (recipients, concurrent sessions of this
 * worker) may share one handle: each storage call is a whole transaction,
 * so they never interleave inside SQLite.  If every slot is in use the
 * store is opened uncached and closed by mda_store_put().
 */
static enum storage_err
mda_store_get(struct mda *mda, const char *user, struct storage **st_r,
	      const char **error_r)
{
	struct mda_store *slot = NULL;
	enum storage_err err;

	for (size_t i = 0; i < RB_N_ELEMENTS(mda->stores); i++) {
		struct mda_store *s = &mda->stores[i];

		if (s->st != NULL && strcmp(s->user, user) == 0) {
			if (s->refs == 0 && storage_stale(s->st)) {
				storage_close(&s->st);
				slot = s;
				break;
			}
			s->refs++;
			s->used = ++mda->clock;
			*st_r = s->st;
			return STORAGE_OK;
		}
		if (s->refs == 0 && (slot == NULL || s->st == NULL ||
				     (slot->st != NULL && s->used < slot->used)))
			slot = s;
	}
	err = storage_open(mda->cfg->general.data_dir, user, true, st_r,
			   error_r);
	if (err != STORAGE_OK || slot == NULL)
		return err;
	storage_close(&slot->st);
	(void)rb_strlcpy(slot->user, user, sizeof(slot->user));
	slot->st = *st_r;
	slot->refs = 1;
	slot->used = ++mda->clock;
	return STORAGE_OK;
}

static void
mda_store_put(struct mda *mda, struct storage **stp)
{
	if (*stp == NULL)
		return;
	for (size_t i = 0; i < RB_N_ELEMENTS(mda->stores); i++) {
		if (mda->stores[i].st == *stp) {
			RB_CHECK(mda->stores[i].refs > 0);
			mda->stores[i].refs--;
			*stp = NULL;
			return;
		}
	}
	storage_close(stp);	/* opened uncached */
}

static void
target_close(struct mda_txn *txn, struct mda_target *t)
{
	mda_store_put(txn->mda, &t->st);
}

/* Resolves address and checks each target's quota; appends targets. */
static enum mda_status
add_targets(struct mda_txn *txn, const char *address, const char *mailbox)
{
	const struct rb_config *cfg = txn->mda->cfg;
	struct auth_resolved *res = rb_calloc(1, sizeof(*res));
	enum mda_status status = MDA_OK;
	size_t first = txn->target_count;

	switch (auth_resolve(txn->mda->db, address,
			     cfg->delivery.recipient_delimiter, res)) {
	case AUTH_OK:
		break;
	case AUTH_NOTFOUND:
		free(res);
		return MDA_NO_USER;
	case AUTH_PARAMS:
		free(res);
		return MDA_BAD_INPUT;
	default: {
		char to[MDA_LOG_ESC_MAX];

		log_error("session=%s to=<%s> user lookup failed: %s",
			  txn->session_id, log_esc(address, to, sizeof(to)),
			  auth_db_error(txn->mda->db));
		free(res);
		return MDA_TEMP;
	}
	}
	for (size_t i = 0; i < res->count && status == MDA_OK; i++) {
		struct mda_target *t;
		struct auth_user user;
		struct storage_usage usage;
		const char *err;

		if (auth_user_lookup(txn->mda->db, res->users[i], &user) !=
		    AUTH_OK) {
			status = MDA_TEMP;
			break;
		}
		if (txn->target_count == txn->target_cap) {
			txn->target_cap = txn->target_cap == 0 ? 4
					: txn->target_cap * 2;
			txn->targets = rb_realloc(txn->targets,
				txn->target_cap * sizeof(*txn->targets));
		}
		t = &txn->targets[txn->target_count++];
		memset(t, 0, sizeof(*t));
		(void)rb_strlcpy(t->user, res->users[i], sizeof(t->user));
		if (mailbox != NULL)
			(void)rb_strlcpy(t->mailbox, mailbox,
					 sizeof(t->mailbox));
		else if (res->detail[0] != '\0' &&
			 storage_mailbox_name_valid(res->detail))
			(void)rb_strlcpy(t->mailbox, res->detail,
					 sizeof(t->mailbox));
		t->quota.bytes = quota_value(user.quota_bytes,
					     cfg->quota.default_bytes);
		t->quota.messages = quota_value(user.quota_messages,
						cfg->quota.default_messages);
		/* One open store per user, however many recipients (and
		 * sessions of this worker) lead to it. */
		if (mda_store_get(txn->mda, t->user, &t->st, &err) !=
		    STORAGE_OK) {
			log_error("session=%s user=%s cannot open store: %s",
				  txn->session_id, t->user, err);
			status = MDA_TEMP;
			break;
		}
		if (t->quota.bytes == 0 && t->quota.messages == 0)
			continue;
		if (storage_usage(t->st, &usage) != STORAGE_OK) {
			log_error("session=%s user=%s quota lookup failed: %s",
				  txn->session_id, t->user,
				  storage_error(t->st));
			status = MDA_TEMP;
			break;
		}
		/* Already full, or too full for the size the client declared
		 * (SIZE=, RFC 1870): refuse now rather than after DATA. */
		if ((t->quota.bytes != 0 &&
		     (usage.bytes >= t->quota.bytes ||
		      txn->size_hint > t->quota.bytes - usage.bytes)) ||
		    (t->quota.messages != 0 &&
		     usage.messages >= t->quota.messages))
			status = MDA_OVER_QUOTA;
	}
	free(res);
	if (status != MDA_OK) {
		/* Undo this recipient's targets. */
		for (size_t i = first; i < txn->target_count; i++)
			target_close(txn, &txn->targets[i]);
		txn->target_count = first;
	}
	return status;
}

/*
 * RFC 5321 §4.5.1: a bare "Postmaster" (no domain, any case) MUST be
 * accepted; it is the postmaster of this host.  We take the first of
 * postmaster@<[general] hostname> and then postmaster@<domain> for each
 * local domain in name order that is a user or an alias, so one alias
 * (`roostctl alias add postmaster@example.com admin@example.com`) is
 * enough.  When none exists the answer is the usual 550 5.1.1: a missing
 * postmaster is a configuration problem, not a syntax error.
 */
static enum mda_status
postmaster_resolve(struct mda_txn *txn, char *out, size_t size)
{
	struct auth_db *db = txn->mda->db;
	struct auth_resolved *res = rb_calloc(1, sizeof(*res));
	struct auth_domain *domains = NULL;
	enum auth_status as = AUTH_NOTFOUND;
	enum mda_status status;
	size_t count = 0;

	/* i == 0: the host name, then domains[i - 1] */
	for (size_t i = 0;; i++) {
		const char *domain = txn->mda->cfg->general.hostname;

		if (i == 1 && (as = auth_domain_list(db, &domains, &count)) !=
			      AUTH_OK)
			break;
		if (i > count) {
			as = AUTH_NOTFOUND;
			break;
		}
		if (i > 0)
			domain = domains[i - 1].name;
		if (rb_snprintf(out, size, "postmaster@%s", domain) < 0 ||
		    !auth_address_valid(out))
			continue;
		as = auth_resolve(db, out, NULL, res);
		if (as != AUTH_NOTFOUND && as != AUTH_PARAMS)
			break;
	}
	if (as == AUTH_OK) {
		status = MDA_OK;
	} else if (as == AUTH_NOTFOUND) {
		status = MDA_NO_USER;
	} else {
		log_error("session=%s to=<Postmaster> lookup failed: %s",
			  txn->session_id, auth_db_error(db));
		status = MDA_TEMP;
	}
	free(domains);
	free(res);
	return status;
}

static enum mda_status
add_rcpt(struct mda_txn *txn, const char *address, const char *mailbox)
{
	char postmaster[RB_ADDR_MAX + 1];
	struct mda_rcpt *r;
	size_t first = txn->target_count;
	enum mda_status status;

	if (txn->rcpt_count >= RB_LMTP_RCPT_MAX)
		return MDA_TOO_MANY;
	if (rb_strcasecmp(address, "postmaster") == 0) {
		status = postmaster_resolve(txn, postmaster,
					    sizeof(postmaster));
		if (status != MDA_OK)
			return status;
		address = postmaster;
	}
	if (strlen(address) > RB_ADDR_MAX || !auth_address_valid(address))
		return MDA_BAD_INPUT;
	if (mailbox != NULL && !storage_mailbox_name_valid(mailbox))
		return MDA_BAD_INPUT;
	status = add_targets(txn, address, mailbox);
	if (status != MDA_OK)
		return status;
	if (txn->rcpt_count == txn->rcpt_cap) {
		txn->rcpt_cap = txn->rcpt_cap == 0 ? 4 : txn->rcpt_cap * 2;
		txn->rcpts = rb_realloc(txn->rcpts,
					txn->rcpt_cap * sizeof(*txn->rcpts));
	}
	r = &txn->rcpts[txn->rcpt_count++];
	(void)rb_strlcpy(r->address, address, sizeof(r->address));
	r->first = first;
	r->count = txn->target_count - first;
	return MDA_OK;
}

enum mda_status
mda_txn_add_rcpt(struct mda_txn *txn, const char *address,
		 const char *mailbox)
{
	enum mda_status status;

	if (txn->spool != NULL)
		return MDA_BAD_INPUT;	/* caller bug: after data_begin */
	status = add_rcpt(txn, address, mailbox);
	if (status != MDA_OK)
		log_outcome(txn, address, NULL, status, true);
	return status;
}

void
mda_txn_set_sender(struct mda_txn *txn, const char *sender)
{
	if (txn->spool != NULL)
		return;
	free(txn->sender);
	txn->sender = rb_strdup(sender);
}

size_t
mda_txn_rcpt_count(const struct mda_txn *txn)
{
	return txn->rcpt_count;
}

/* Writes to the spool (which buffers); a failure sticks. */
static enum mda_status
spool_write(struct mda_txn *txn, const void *p, size_t n)
{
	if (txn->data_status != MDA_OK)
		return txn->data_status;
	if (storage_spool_write(txn->spool, p, n) != STORAGE_OK) {
		log_error("session=%s spool write failed: %s", txn->session_id,
			  storage_spool_error(txn->spool));
		txn->data_status = MDA_TEMP;
	}
	return txn->data_status;
}

/* Header values built from peer input must not break the header: control
 * characters become '?'. */
static void
append_clean(struct rb_buf *b, const char *s, size_t max)
{
	for (size_t i = 0; s[i] != '\0' && i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		char ch = c < 0x20 || c == 0x7f ? '?' : (char)c;

		(void)rb_buf_append(b, &ch, 1);
	}
}

static bool
single_address(const struct mda_txn *txn)
{
	for (size_t i = 1; i < txn->rcpt_count; i++)
		if (rb_strcasecmp(txn->rcpts[i].address,
				  txn->rcpts[0].address) != 0)
			return false;
	return txn->rcpt_count > 0;
}

static void
format_trace_headers(struct mda_txn *txn, struct rb_buf *b)
{
	const struct rb_config *cfg = txn->mda->cfg;
	bool single = single_address(txn);

	(void)rb_buf_append_str(b, "Return-Path: <");
	append_clean(b, txn->sender, RB_ADDR_MAX);
	(void)rb_buf_append_str(b, ">\n");
	if (single) {
		(void)rb_buf_append_str(b, "Delivered-To: ");
		append_clean(b, txn->rcpts[0].address, RB_ADDR_MAX);
		(void)rb_buf_append_str(b, "\n");
	}
	if (!cfg->delivery.add_received)
		return;

	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	(void)rb_buf_append_str(b, "Received: ");
	if (txn->helo != NULL) {
		(void)rb_buf_append_str(b, "from ");
		append_clean(b, txn->helo, 255);
		if (txn->addr != NULL) {
			(void)rb_buf_append_str(b, " (");
			append_clean(b, txn->addr, 64);
			(void)rb_buf_append_str(b, ")");
		}
		(void)rb_buf_append_str(b, "\n\t");
	}
	(void)rb_buf_append_str(b, "by ");
	append_clean(b, cfg->general.hostname, RB_HOSTNAME_MAX);
	(void)rb_buf_printf(b, " (roost) with %s id %s", txn->protocol,
			    txn->session_id);
	if (single) {
		(void)rb_buf_append_str(b, "\n\tfor <");
		append_clean(b, txn->rcpts[0].address, RB_ADDR_MAX);
		(void)rb_buf_append_str(b, ">");
	}
	(void)rb_buf_printf(b, "; %s\n", date);
}

enum mda_status
mda_txn_data_begin(struct mda_txn *txn)
{
	const char *err;

	if (txn->rcpt_count == 0 || txn->spool != NULL)
		return MDA_BAD_INPUT;
	if (storage_spool_new(txn->mda->cfg->general.data_dir, &txn->spool,
			      &err) != STORAGE_OK) {
		log_error("session=%s cannot create spool: %s",
			  txn->session_id, err);
		txn->data_status = MDA_TEMP;
		return MDA_TEMP;
	}
	struct rb_buf headers;

	rb_buf_init(&headers, MDA_HEADERS_MAX);
	format_trace_headers(txn, &headers);
	(void)spool_write(txn, headers.data, headers.len);
	rb_buf_free(&headers);
	return txn->data_status;
}

enum mda_status
mda_txn_data_line(struct mda_txn *txn, const char *line, size_t len,
		  bool more)
{
	uint64_t max = txn->mda->cfg->lmtp.max_message_size;

	if (txn->spool == NULL)
		return MDA_BAD_INPUT;
	if (txn->data_status != MDA_OK)
		return txn->data_status;
	/* Counted as the client sent it: with CRLF line ends. */
	txn->size += (uint64_t)len + (more ? 0 : 2);
	if (txn->size > max) {
		txn->data_status = MDA_TOO_BIG;
		return MDA_TOO_BIG;
	}
	if (spool_write(txn, line, len) != MDA_OK || more)
		return txn->data_status;
	return spool_write(txn, "\n", 1);
}

static enum mda_status
storage_to_status(enum storage_err err)
{
	switch (err) {
	case STORAGE_OK:
		return MDA_OK;
	case STORAGE_ERR_QUOTA:
		return MDA_OVER_QUOTA;
	default:
		return MDA_TEMP;
	}
}

static void
deliver_all(struct mda_txn *txn)
{
	time_t now = time(NULL);

	/* First every link, then every commit (see the top of the file). */
	for (size_t i = 0; i < txn->target_count; i++) {
		struct mda_target *t = &txn->targets[i];
		enum storage_err err;

		err = storage_deliver_link(t->st, t->mailbox[0] != '\0' ?
					   t->mailbox : "INBOX", txn->spool, 0,
					   now, &t->dlv);
		if (err == STORAGE_ERR_NOTFOUND && t->mailbox[0] != '\0') {
			/* +detail or -m folder that does not exist. */
			t->mailbox[0] = '\0';
			err = storage_deliver_link(t->st, "INBOX", txn->spool,
						   0, now, &t->dlv);
		}
		t->status = storage_to_status(err);
		if (err != STORAGE_OK)
			log_error("session=%s user=%s delivery failed: %s",
				  txn->session_id, t->user,
				  storage_error(t->st));
	}
	for (size_t i = 0; i < txn->target_count; i++) {
		struct mda_target *t = &txn->targets[i];
		enum storage_err err;

		if (t->status != MDA_OK)
			continue;
		err = storage_deliver_commit(&t->dlv, &t->quota, &t->uid);
		t->status = storage_to_status(err);
		if (err != STORAGE_OK && err != STORAGE_ERR_QUOTA)
			log_error("session=%s user=%s commit failed: %s",
				  txn->session_id, t->user,
				  storage_error(t->st));
	}
}

/* Worst first: a temporary failure must win so the MTA retries. */
static int
severity(enum mda_status s)
{
	switch (s) {
	case MDA_OK: return 0;
	case MDA_NO_USER: return 1;
	case MDA_BAD_INPUT: return 1;
	case MDA_TOO_BIG: return 2;
	case MDA_OVER_QUOTA: return 3;
	case MDA_TOO_MANY: return 4;
	case MDA_TEMP: return 5;
	}
	return 5;
}

void
mda_txn_data_end(struct mda_txn *txn, enum mda_status *results)
{
	enum mda_status common = txn->spool == NULL ? MDA_TEMP
						    : txn->data_status;

	if (common == MDA_OK &&
	    storage_spool_finish(txn->spool) != STORAGE_OK) {
		log_error("session=%s spool fsync failed: %s",
			  txn->session_id, storage_spool_error(txn->spool));
		common = MDA_TEMP;
	}
	if (common == MDA_OK)
		deliver_all(txn);
	for (size_t i = 0; i < txn->rcpt_count; i++) {
		const struct mda_rcpt *r = &txn->rcpts[i];
		enum mda_status st = common;

		for (size_t j = 0; j < r->count && common == MDA_OK; j++) {
			const struct mda_target *t =
				&txn->targets[r->first + j];

			if (severity(t->status) > severity(st))
				st = t->status;
			log_outcome(txn, r->address, t, t->status, false);
		}
		if (common != MDA_OK)
			log_outcome(txn, r->address, NULL, common, false);
		results[i] = st;
	}
	storage_spool_free(&txn->spool);
}

void
mda_txn_free(struct mda_txn **txnp)
{
	struct mda_txn *txn = *txnp;

	if (txn == NULL)
		return;
	/* Aborts first: a shared store must outlive every delivery on it. */
	for (size_t i = 0; i < txn->target_count; i++)
		storage_deliver_abort(&txn->targets[i].dlv);
	for (size_t i = 0; i < txn->target_count; i++)
		target_close(txn, &txn->targets[i]);
	storage_spool_free(&txn->spool);
	free(txn->targets);
	free(txn->rcpts);
	free(txn->sender);
	free(txn->helo);
	free(txn->addr);
	free(txn->protocol);
	free(txn->session_id);
	free(txn->remote);
	free(txn);
	*txnp = NULL;
}
