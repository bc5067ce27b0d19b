/*
 * POP3 sessions (RFC 1939): one libevent bufferevent per connection,
 * plain, STLS-upgraded (RFC 2595 §4) or implicit TLS (RFC 8314 §3.3).
 *
 * Implementation notes
 * - Pipelining (RFC 2449 §6.6): every complete command in the input
 *   buffer is run in order before we return to the loop, except while a
 *   command is still in flight: a multi-line answer being produced
 *   (RETR/TOP/LIST/UIDL) or the delayed answer of a failed login.  Then
 *   input waits in the buffer (at most RB_POP3_INPUT_MAX, after which
 *   libevent stops reading the socket) and is resumed when the command
 *   completes.
 * - Back-pressure: answers are produced only while less than
 *   RB_OUTPUT_BUFFER_MAX octets wait for the peer; the write callback
 *   (low watermark half of that) produces more.  A message is never in
 *   memory as a whole, only one RB_POP3_READ_CHUNK of it.
 * - STLS: nothing the client sent before the TLS handshake is used after
 *   it (CVE-2011-0411): the input buffer and the parser are emptied when
 *   the TLS filter takes over.
 * - Under an STLS filter, the plain bufferevent below still holds
 *   encrypted output after the filter's own buffer is empty; closing
 *   waits for both (an evbuffer callback on the lower one).
 * - Sessions are never freed inside their own callbacks: closing queues
 *   ev_free, which runs from the loop (STYLE.md).
 * - A connection that drops, times out or is shut down never reaches
 *   UPDATE: nothing is removed (RFC 1939 §6).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "pop3d/pop3d_int.h"

static const char *const state_names[POP3_STATE_COUNT] = {
	[POP3_STATE_AUTHORIZATION] = "authorization",
	[POP3_STATE_SASL] = "sasl",
	[POP3_STATE_TRANSACTION] = "transaction",
	[POP3_STATE_UPDATE] = "update",
	[POP3_STATE_CLOSING] = "closing",
};

static void session_input(struct pop3_session *s);

const char *
pop3_state_name(enum pop3_state state)
{
	return (unsigned)state < POP3_STATE_COUNT ? state_names[state] : "?";
}

void
pop3_session_set_state(struct pop3_session *s, enum pop3_state state)
{
	if (s->state == state)
		return;
	SLOG_DEBUG(s, "state=%s new_state=%s", pop3_state_name(s->state),
		   pop3_state_name(state));
	s->state = state;
	/* responses to AUTH exchanges are SASL lines, not commands */
	pop3_parser_set_sasl(&s->parser, state == POP3_STATE_SASL);
}

void
pop3_reply(struct pop3_session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	va_start(ap, fmt);
	/* The output cap is enforced by not producing more (session_input,
	 * pop3_output_pump), not here: a reply is never cut. */
	(void)evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	(void)evbuffer_add(out, "\r\n", 2);
}

void
pop3_write(struct pop3_session *s, const void *p, size_t n)
{
	(void)evbuffer_add(bufferevent_get_output(s->bev), p, n);
}

size_t
pop3_output_pending(struct pop3_session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

bool
pop3_plaintext_ok(const struct pop3_session *s)
{
	switch (s->worker->cfg->auth.allow_plaintext) {
	case RB_PLAINTEXT_YES:
		return true;
	case RB_PLAINTEXT_LOOPBACK:
		return s->tls || s->loopback;
	case RB_PLAINTEXT_NO:
	default:
		return s->tls;
	}
}

static struct bufferevent *
lower_bev(struct pop3_session *s)
{
	return s->bev != NULL ? bufferevent_get_underlying(s->bev) : NULL;
}

/* Output not yet handed to the kernel, TLS filter and the plain
 * bufferevent below it together. */
static size_t
unsent(struct pop3_session *s)
{
	struct bufferevent *lower = lower_bev(s);
	size_t n = pop3_output_pending(s);

	if (lower != NULL)
		n += evbuffer_get_length(bufferevent_get_output(lower));
	return n;
}

static void on_lower_drain(struct evbuffer *buf,
			   const struct evbuffer_cb_info *info, void *arg);

static void
session_free(struct pop3_session *s)
{
	struct pop3_worker *w = s->worker;

	SLOG_INFO(s, "event=disconnect reason=%s user=%s retrieved=%u "
		  "deleted=%u", s->close_reason != NULL ? s->close_reason :
		  "closed", s->logged_in ? s->user : "",
		  s->retrieved, s->expunged);
	pop3_output_abort(s);
	pop3_sasl_end(s);
	pop3_maildrop_close(s);
	/* the line buffer may hold a password */
	OPENSSL_cleanse(s->parser.line, sizeof(s->parser.line));
	if (lower_bev(s) != NULL)
		(void)evbuffer_remove_cb(bufferevent_get_output(lower_bev(s)),
					 on_lower_drain, s);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	w->count--;
	bufferevent_free(s->bev);
	event_free(s->ev_free);
	event_free(s->ev_delay);
	free(s);
	/* last: after SIGTERM this may end the worker's loop */
	rb_server_conn_del();
}

static void
on_free(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	session_free(arg);
}

static void
schedule_free(struct pop3_session *s, const char *reason)
{
	if (s->freeing)
		return;
	s->freeing = true;
	if (s->close_reason == NULL)
		s->close_reason = reason;
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	event_active(s->ev_free, EV_TIMEOUT, 1);
}

/* The plain output below an STLS filter changed: once everything is
 * out, a closing session can go. */
static void
on_lower_drain(struct evbuffer *buf, const struct evbuffer_cb_info *info,
	       void *arg)
{
	struct pop3_session *s = arg;

	(void)info;
	if (s->state == POP3_STATE_CLOSING && !s->freeing &&
	    evbuffer_get_length(buf) == 0 && pop3_output_pending(s) == 0)
		schedule_free(s, NULL);
}

static void
close_when_sent(struct pop3_session *s)
{
	if (unsent(s) == 0)
		schedule_free(s, NULL);
	/* else on_write / on_lower_drain free once the output is sent */
}

void
pop3_session_close(struct pop3_session *s, const char *reason,
		   const char *reply)
{
	if (s->state == POP3_STATE_CLOSING || s->freeing)
		return;
	if (reply != NULL)
		pop3_reply(s, "%s", reply);
	if (s->close_reason == NULL)
		s->close_reason = reason;
	pop3_output_abort(s);
	pop3_sasl_end(s);
	/* the lock goes now, so that a client reconnecting right after
	 * QUIT is not told [IN-USE] */
	pop3_maildrop_close(s);
	pop3_session_set_state(s, POP3_STATE_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	close_when_sent(s);
}

void
pop3_session_timeouts(struct pop3_session *s)
{
	unsigned idle = s->worker->cfg->pop3.idle_timeout;
	struct timeval rd, wr;

	/* RFC 1939 §3 asks for at least 10 minutes of autologout timer;
	 * that is what [pop3] idle_timeout defaults to after login.  Before
	 * login we are stricter (STYLE.md): a peer that does not log in
	 * within a minute is not a mail client at work. */
	if (s->state == POP3_STATE_AUTHORIZATION ||
	    s->state == POP3_STATE_SASL)
		idle = idle < RB_POP3_PRELOGIN_TIMEOUT ? idle :
			RB_POP3_PRELOGIN_TIMEOUT;
	rd.tv_sec = (time_t)idle;
	rd.tv_usec = 0;
	wr.tv_sec = (time_t)s->worker->cfg->pop3.idle_timeout;
	wr.tv_usec = 0;
	bufferevent_set_timeouts(s->bev, &rd, &wr);
}

/* ---- input ---- */

static bool
busy(const struct pop3_session *s)
{
	return s->out.kind != POP3_OUTPUT_NONE || s->delaying;
}

static void
start_tls(struct pop3_session *s);

/* Runs everything complete in the input buffer (RFC 2449 §6.6). */
static void
session_input(struct pop3_session *s)
{
	while (s->state != POP3_STATE_CLOSING && !s->freeing && !busy(s)) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		struct evbuffer_iovec vec;
		struct pop3_cmd cmd;
		size_t consumed;
		int ret;

		if (pop3_output_pending(s) > RB_OUTPUT_BUFFER_MAX) {
			/* The peer does not read its answers: stop reading
			 * its commands until it does (on_write resumes). */
			s->paused = true;
			return;
		}
		if (s->quit_after_command) {
			pop3_session_close(s, "shutdown", NULL);
			return;
		}
		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 ||
		    vec.iov_len == 0)
			break;
		ret = pop3_parse(&s->parser, vec.iov_base, vec.iov_len,
				 &consumed, &cmd);
		evbuffer_drain(in, consumed);
		if (ret != 0)
			pop3_cmd_dispatch(s, ret, &cmd);
		if (s->starttls_pending) {
			start_tls(s);
			return;
		}
	}
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	session_input(arg);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct pop3_session *s = arg;

	(void)bev;
	/* called whenever the output has drained to the low watermark */
	if (s->freeing)
		return;
	if (s->state == POP3_STATE_CLOSING) {
		close_when_sent(s);
		return;
	}
	if (s->out.kind != POP3_OUTPUT_NONE) {
		if (pop3_output_pump(s) == 0)
			return;
		/* the answer is complete: go on with pipelined input */
	}
	s->paused = false;
	session_input(s);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct pop3_session *s = arg;

	(void)bev;
	if (s->freeing)
		return;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_READING) &&
		    s->out.kind != POP3_OUTPUT_NONE) {
			/* a long RETR to a slow reader: the client is busy
			 * reading, not idle (the write timeout watches it) */
			bufferevent_enable(s->bev, EV_READ);
			return;
		}
		if ((what & BEV_EVENT_WRITING) ||
		    s->state == POP3_STATE_CLOSING) {
			/* the peer does not even read: nothing to say */
			schedule_free(s, "write-timeout");
			return;
		}
		/* RFC 1939 §3: an autologout does not enter UPDATE */
		pop3_session_close(s, "timeout",
				   "-ERR Disconnected for inactivity");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* RFC 1939 §6: no QUIT, no UPDATE: nothing is removed */
		schedule_free(s, s->state == POP3_STATE_CLOSING ? NULL :
			      "eof");
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();

		if (rb_tls_active(s->bev) && err == 0)
			SLOG_INFO(s, "event=tls-error");
		else if (err != 0 && err != ECONNRESET && err != EPIPE)
			SLOG_INFO(s, "event=error error=\"%s\"",
				  evutil_socket_error_to_string(err));
		schedule_free(s, "error");
	}
}

static void
setup_bev(struct pop3_session *s)
{
	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	/* read: stop reading the socket when this much waits unparsed;
	 * write: on_write fires at half the output cap; the high mark
	 * bounds what a TLS filter pushes into the plain layer below */
	bufferevent_setwatermark(s->bev, EV_READ, 0, RB_POP3_INPUT_MAX);
	bufferevent_setwatermark(s->bev, EV_WRITE, RB_OUTPUT_BUFFER_MAX / 2,
				 RB_OUTPUT_BUFFER_MAX);
	pop3_session_timeouts(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* STLS was answered with +OK: switch the connection to TLS. */
static void
start_tls(struct pop3_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct bufferevent *tls;

	s->starttls_pending = false;
	/* RFC 2595 §4 / CVE-2011-0411: whatever the client pipelined
	 * behind STLS was sent in clear and must not be executed */
	if (evbuffer_get_length(in) > 0) {
		SLOG_INFO(s, "event=stls-discard octets=%zu",
			  evbuffer_get_length(in));
		evbuffer_drain(in, evbuffer_get_length(in));
	}
	pop3_parser_reset(&s->parser);
	tls = rb_tls_starttls(s->bev, s->worker->tls_ctx);
	if (tls == NULL) {
		SLOG_ERROR(s, "event=stls-failed");
		pop3_session_close(s, "tls-failed", NULL);
		return;
	}
	s->bev = tls;
	s->tls = true;
	/* RFC 2595 §4: forget what the client told us before TLS */
	s->have_user = false;
	s->user[0] = '\0';
	(void)evbuffer_add_cb(bufferevent_get_output(lower_bev(s)),
			      on_lower_drain, s);
	setup_bev(s);
	SLOG_DEBUG(s, "event=stls");
}

/* ---- failed-login delay ---- */

static void
on_delay(evutil_socket_t fd, short what, void *arg)
{
	struct pop3_session *s = arg;

	(void)fd;
	(void)what;
	s->delaying = false;
	if (s->freeing || s->state == POP3_STATE_CLOSING)
		return;
	if (s->close_after_delay) {
		pop3_session_close(s, "auth-failures", s->delayed_reply);
		return;
	}
	pop3_reply(s, "%s", s->delayed_reply);
	if (s->quit_after_command) {
		pop3_session_close(s, "shutdown", NULL);
		return;
	}
	session_input(s);
}

void
pop3_session_delay_reply(struct pop3_session *s, unsigned delay_ms,
			 const char *reply, bool close)
{
	struct timeval tv;

	(void)rb_strlcpy(s->delayed_reply, reply, sizeof(s->delayed_reply));
	s->close_after_delay = close;
	s->delaying = true;
	tv.tv_sec = (time_t)(delay_ms / 1000);
	tv.tv_usec = (suseconds_t)(delay_ms % 1000) * 1000;
	/* a timer, not a sleep: the worker serves everyone else meanwhile */
	evtimer_add(s->ev_delay, &tv);
}

/* ---- accept and shutdown ---- */

/* Refuses a connection we cannot serve, without a session. */
static void
refuse(int fd, const char *remote, const char *text)
{
	char line[256];

	/* best effort: the socket is fresh, so the line fits its buffer;
	 * on an implicit-TLS port the peer sees a handshake failure */
	if (rb_snprintf(line, sizeof(line), "%s\r\n", text) == 0)
		(void)send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	log_warning("remote=%s event=refused reason=\"%s\"", remote, text);
}

static unsigned
sessions_from(const struct pop3_worker *w, const char *addr)
{
	unsigned n = 0;

	for (const struct pop3_session *s = w->sessions; s != NULL;
	     s = s->next) {
		if (strcmp(s->client_addr, addr) == 0)
			n++;
	}
	return n;
}

void
pop3_session_accept(struct pop3_worker *w, int fd, bool tls,
		    const char *remote, bool loopback)
{
	const struct rb_config *cfg = w->cfg;
	struct pop3_session *s;
	char addr[64];
	int one = 1;

	rb_remote_ip(remote, addr, sizeof(addr));
	if (rb_server_shutting_down()) {
		refuse(fd, remote, "-ERR [SYS/TEMP] Server shutting down");
		return;
	}
	if (w->count >= cfg->pop3.max_connections) {
		refuse(fd, remote, "-ERR [SYS/TEMP] Too many connections, "
		       "try again later");
		return;
	}
	/* the per-address limit counts this worker's sessions (a linear
	 * walk: max_connections bounds it and accepts are rare) */
	if (addr[0] != '\0' && cfg->pop3.max_connections_per_ip > 0 &&
	    sessions_from(w, addr) >= cfg->pop3.max_connections_per_ip) {
		refuse(fd, remote, "-ERR [SYS/TEMP] Too many connections from "
		       "your address");
		return;
	}
	if (tls && w->tls_ctx == NULL) {
		refuse(fd, remote, "-ERR [SYS/PERM] TLS not configured");
		return;
	}

	(void)evutil_make_socket_nonblocking(fd);
	/* answers are small and the peer waits for them */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	s = rb_calloc(1, sizeof(*s));
	s->worker = w;
	s->lock_fd = -1;
	s->out.fd = -1;
	s->loopback = loopback;
	if (tls)
		s->bev = rb_tls_accept(w->base, w->tls_ctx, fd);
	else
		s->bev = bufferevent_socket_new(w->base, fd,
						BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		if (!tls)
			close(fd);
		free(s);
		log_error("remote=%s cannot set up the connection", remote);
		return;
	}
	s->tls = tls;
	s->ev_free = event_new(w->base, -1, 0, on_free, s);
	s->ev_delay = evtimer_new(w->base, on_delay, s);
	if (s->ev_free == NULL || s->ev_delay == NULL)
		log_fatal("event_new failed");
	rb_session_id(s->id);
	(void)rb_strlcpy(s->remote, remote, sizeof(s->remote));
	(void)rb_strlcpy(s->client_addr, addr, sizeof(s->client_addr));
	pop3_parser_init(&s->parser);

	s->next = w->sessions;
	if (w->sessions != NULL)
		w->sessions->prev = s;
	w->sessions = s;
	w->count++;
	rb_server_conn_add();

	setup_bev(s);
	SLOG_INFO(s, "event=connect tls=%s", tls ? "yes" : "no");
	/* RFC 1939 §4; no APOP timestamp: APOP is not offered */
	pop3_reply(s, "+OK roost POP3 ready");
}

void
pop3_worker_shutdown(struct pop3_worker *w)
{
	struct pop3_session *s, *next;

	for (s = w->sessions; s != NULL; s = next) {
		next = s->next;
		if (s->state == POP3_STATE_CLOSING || s->freeing)
			continue;
		if (busy(s)) {
			/* a RETR being sent or a login being answered: let
			 * it finish, then close */
			s->quit_after_command = true;
			continue;
		}
		/* UPDATE cannot be seen here: QUIT's expunge runs to the
		 * end inside one callback */
		pop3_session_close(s, "shutdown",
				   "-ERR [SYS/TEMP] Server shutting down");
	}
}
