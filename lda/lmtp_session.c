/*
 * LMTP sessions (RFC 2033): one libevent bufferevent per connection.
 *
 * Implementation notes
 * - Pipelining (RFC 2920): every complete command in the input buffer is
 *   run in order before we return to the loop; the replies pile up in the
 *   output buffer and libevent sends them together.  A command is never
 *   rejected for having input behind it (unlike OpenSMTPD).
 * - Input modes follow the state: command lines, DATA message text, BDAT
 *   chunk octets, and octets of a refused BDAT being discarded.  A mode
 *   change takes effect at the next byte, so a pipelined DATA/BDAT
 *   followed by its message in one read works.
 * - Back-pressure: while more than RB_OUTPUT_BUFFER_MAX octets of replies
 *   wait for the peer, we stop reading; the write callback resumes.
 * - Sessions are never freed inside their own callbacks: closing queues
 *   ev_free, which runs from the loop (STYLE.md).
 * - The message is streamed line by line to mda; at most one line
 *   (RB_LMTP_DATA_LINE_MAX) of it is ever in our memory.
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

#include "lda/lda_int.h"

static const char *const state_names[LMTP_STATE_COUNT] = {
	[LMTP_STATE_CONNECTED] = "connected",
	[LMTP_STATE_READY] = "ready",
	[LMTP_STATE_MAIL] = "mail",
	[LMTP_STATE_RCPT] = "rcpt",
	[LMTP_STATE_DATA] = "data",
	[LMTP_STATE_CHUNK] = "chunk",
	[LMTP_STATE_BDAT] = "bdat",
	[LMTP_STATE_CLOSING] = "closing",
};

const char *
lmtp_state_name(enum lmtp_state state)
{
	return (unsigned)state < LMTP_STATE_COUNT ? state_names[state] : "?";
}

void
lmtp_session_set_state(struct lmtp_session *s, enum lmtp_state state)
{
	if (s->state == state)
		return;
	SLOG_DEBUG(s, "state=%s new_state=%s", lmtp_state_name(s->state),
		   lmtp_state_name(state));
	s->state = state;
}

void
lmtp_reply(struct lmtp_session *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	va_start(ap, fmt);
	/* The output cap is enforced by stopping input (session_input), not
	 * here: a reply must never be lost half-way. */
	(void)evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	(void)evbuffer_add(out, "\r\n", 2);
}

static void
session_free(struct lmtp_session *s)
{
	struct lmtp_worker *w = s->worker;

	SLOG_INFO(s, "event=disconnect reason=%s transactions=%u "
		  "delivered=%u", s->close_reason != NULL ? s->close_reason :
		  "closed", s->transactions, s->delivered);
	lmtp_txn_reset(s);
	free(s->rcpts);
	lmtp_parser_free(&s->parser);
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	w->count--;
	bufferevent_free(s->bev);
	event_free(s->ev_free);
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
schedule_free(struct lmtp_session *s, const char *reason)
{
	if (s->freeing)
		return;
	s->freeing = true;
	if (s->close_reason == NULL)
		s->close_reason = reason;
	bufferevent_disable(s->bev, EV_READ | EV_WRITE);
	event_active(s->ev_free, EV_TIMEOUT, 1);
}

void
lmtp_session_close(struct lmtp_session *s, const char *reason,
		   const char *reply)
{
	if (s->state == LMTP_STATE_CLOSING || s->freeing)
		return;
	if (reply != NULL)
		lmtp_reply(s, "%s", reply);
	if (s->close_reason == NULL)
		s->close_reason = reason;
	lmtp_session_set_state(s, LMTP_STATE_CLOSING);
	bufferevent_disable(s->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		schedule_free(s, reason);
	/* else on_write frees once the output is sent */
}

/* Discards octets of a refused BDAT chunk; its reply follows them. */
static size_t
input_discard(struct lmtp_session *s, size_t len)
{
	size_t n = len;

	if (n > s->discard_left)
		n = (size_t)s->discard_left;
	s->discard_left -= n;
	if (s->discard_left == 0 && s->discard_reply[0] != '\0') {
		lmtp_reply(s, "%s", s->discard_reply);
		s->discard_reply[0] = '\0';
	}
	return n;
}

/* DATA: one event at most, so that state changes are seen at once. */
static size_t
input_data(struct lmtp_session *s, const unsigned char *p, size_t len)
{
	struct lmtp_data_event ev;
	size_t consumed;

	if (lmtp_data_parse(&s->data, p, len, &consumed, &ev) == 1) {
		if (ev.type == LMTP_DATA_LINE)
			lmtp_txn_data_line(s, &ev);
		else
			lmtp_txn_finish(s);
	}
	return consumed;
}

/* BDAT: the chunk's octets go through the same line splitter without dot
 * handling (RFC 3030 §2: the data is not dot-stuffed). */
static size_t
input_chunk(struct lmtp_session *s, const unsigned char *p, size_t len)
{
	struct lmtp_data_event ev;
	size_t consumed = 0;

	if (len > s->chunk_left)
		len = (size_t)s->chunk_left;
	if (len > 0 &&
	    lmtp_data_parse(&s->data, p, len, &consumed, &ev) == 1)
		lmtp_txn_data_line(s, &ev);
	s->chunk_left -= consumed;
	if (s->chunk_left == 0)
		lmtp_chunk_done(s);
	return consumed;
}

static size_t
input_command(struct lmtp_session *s, const unsigned char *p, size_t len)
{
	struct lmtp_cmd cmd;
	size_t consumed;
	int ret;

	ret = lmtp_parse_command(&s->parser, p, len, &consumed, &cmd);
	if (ret != 0)
		lmtp_cmd_dispatch(s, ret, &cmd);
	return consumed;
}

/* Runs everything complete in the input buffer (RFC 2920 §3). */
static void
session_input(struct lmtp_session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct evbuffer *out = bufferevent_get_output(s->bev);

	while (s->state != LMTP_STATE_CLOSING && !s->freeing) {
		struct evbuffer_iovec vec;
		const unsigned char *p;
		size_t consumed;

		if (evbuffer_get_length(out) > RB_OUTPUT_BUFFER_MAX) {
			/* The peer does not read its replies: stop reading
			 * its commands until it does. */
			s->paused = true;
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->state == LMTP_STATE_CHUNK && s->chunk_left == 0) {
			/* BDAT 0 */
			lmtp_chunk_done(s);
			continue;
		}
		if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1 ||
		    vec.iov_len == 0)
			break;
		p = vec.iov_base;
		if (s->discard_left > 0)
			consumed = input_discard(s, vec.iov_len);
		else if (s->state == LMTP_STATE_DATA)
			consumed = input_data(s, p, vec.iov_len);
		else if (s->state == LMTP_STATE_CHUNK)
			consumed = input_chunk(s, p, vec.iov_len);
		else
			consumed = input_command(s, p, vec.iov_len);
		evbuffer_drain(in, consumed);
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
	struct lmtp_session *s = arg;

	(void)bev;
	/* called when the output buffer has drained completely */
	if (s->state == LMTP_STATE_CLOSING) {
		schedule_free(s, NULL);
		return;
	}
	if (s->paused) {
		s->paused = false;
		bufferevent_enable(s->bev, EV_READ);
		session_input(s);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct lmtp_session *s = arg;
	char reply[RB_HOSTNAME_MAX + 64];

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		if (what & BEV_EVENT_WRITING) {
			/* the peer does not even read: nothing to say */
			schedule_free(s, "write-timeout");
			return;
		}
		if (s->state == LMTP_STATE_DATA ||
		    s->state == LMTP_STATE_CHUNK)
			SLOG_WARNING(s, "event=timeout-in-data "
				     "message=aborted");
		/* RFC 5321 §4.5.3.2: the server may time out; 421 is the
		 * reply for closing (§3.8). */
		if (rb_snprintf(reply, sizeof(reply), "421 4.4.2 %s timeout",
				s->worker->cfg->general.hostname) < 0)
			(void)rb_strlcpy(reply, "421 4.4.2 timeout",
					 sizeof(reply));
		lmtp_session_close(s, "timeout", reply);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		if (s->state == LMTP_STATE_DATA ||
		    s->state == LMTP_STATE_CHUNK ||
		    s->state == LMTP_STATE_BDAT)
			SLOG_WARNING(s, "event=eof-in-data message=aborted");
		/* send what is queued: the peer may have only shut down its
		 * sending side */
		lmtp_session_close(s, "eof", NULL);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		int err = EVUTIL_SOCKET_ERROR();

		if (err != 0 && err != ECONNRESET && err != EPIPE)
			SLOG_INFO(s, "event=error error=\"%s\"",
				  evutil_socket_error_to_string(err));
		schedule_free(s, "error");
	}
}

/* Refuses a connection we cannot serve, without a session. */
static void
refuse(const struct lmtp_worker *w, int fd, const char *remote,
       const char *code, const char *text)
{
	char line[RB_HOSTNAME_MAX + 128];

	/* best effort: the socket is fresh, so the line fits its buffer */
	if (rb_snprintf(line, sizeof(line), "%s %s %s\r\n", code,
			w->cfg->general.hostname, text) == 0)
		(void)send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	log_warning("remote=%s event=refused reason=\"%s\"", remote, text);
}

void
lmtp_session_accept(struct lmtp_worker *w, int fd, const char *remote)
{
	const struct rb_config *cfg = w->cfg;
	struct lmtp_session *s;
	struct timeval tv;
	const char *error;
	int one = 1;

	if (rb_server_shutting_down()) {
		refuse(w, fd, remote, "421 4.3.2", "Service shutting down");
		return;
	}
	if (w->count >= cfg->lmtp.max_connections) {
		refuse(w, fd, remote, "421 4.3.2",
		       "Too many connections, try again later");
		return;
	}
	/* worker_init may have failed to open users.db (e.g. not created
	 * yet): try again rather than refuse mail forever */
	if (w->mda == NULL && mda_open(cfg, &w->mda, &error) < 0) {
		log_error("remote=%s cannot open the user database: %s",
			  remote, error);
		refuse(w, fd, remote, "421 4.3.0",
		       "Service temporarily unavailable");
		return;
	}

	(void)evutil_make_socket_nonblocking(fd);
	/* replies are small and the peer waits for them */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	s = rb_calloc(1, sizeof(*s));
	s->worker = w;
	s->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		close(fd);
		free(s);
		log_error("remote=%s bufferevent_socket_new failed", remote);
		return;
	}
	s->ev_free = event_new(w->base, -1, 0, on_free, s);
	if (s->ev_free == NULL)
		log_fatal("event_new failed");
	rb_session_id(s->id);
	(void)rb_strlcpy(s->remote, remote, sizeof(s->remote));
	rb_remote_ip(remote, s->client_addr, sizeof(s->client_addr));
	lmtp_parser_init(&s->parser, cfg->lmtp.max_line_length);
	s->data_status = MDA_OK;

	s->next = w->sessions;
	if (w->sessions != NULL)
		w->sessions->prev = s;
	w->sessions = s;
	w->count++;
	rb_server_conn_add();

	bufferevent_setcb(s->bev, on_read, on_write, on_event, s);
	tv.tv_sec = (time_t)cfg->lmtp.idle_timeout;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);

	SLOG_INFO(s, "event=connect");
	/* RFC 5321 §4.2: the greeting carries no enhanced code (RFC 2034
	 * §4) */
	lmtp_reply(s, "220 %s roost LMTP ready", cfg->general.hostname);
}

void
lmtp_worker_shutdown(struct lmtp_worker *w)
{
	char reply[RB_HOSTNAME_MAX + 64];
	struct lmtp_session *s, *next;

	if (rb_snprintf(reply, sizeof(reply),
			"421 4.3.2 %s Service shutting down",
			w->cfg->general.hostname) < 0)
		(void)rb_strlcpy(reply, "421 4.3.2 Service shutting down",
				 sizeof(reply));
	for (s = w->sessions; s != NULL; s = next) {
		next = s->next;
		switch (s->state) {
		case LMTP_STATE_DATA:
		case LMTP_STATE_CHUNK:
		case LMTP_STATE_BDAT:
			/* a message is coming in: take it first */
			s->quit_after_txn = true;
			break;
		case LMTP_STATE_CLOSING:
			break;
		default:
			lmtp_session_close(s, "shutdown", reply);
			break;
		}
	}
}
