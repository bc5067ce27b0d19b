/*
 * The process model: a master that forks workers and restarts them if
 * they die, and workers that each run one libevent loop serving many
 * connections on the shared listening sockets (DESIGN.md, Protocol
 * servers).  SIGTERM: the master forwards it; a worker stops accepting,
 * lets the protocol close idle sessions, and exits when the last busy
 * session has finished its command.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/event.h>

#include "common/common.h"

/* ---- worker ---- */

static struct {
	const struct rb_server_params *params;
	struct event_base *base;
	struct event *listeners[RB_LISTEN_MAX * 2];
	int fds[RB_LISTEN_MAX * 2];
	bool tls[RB_LISTEN_MAX * 2];
	size_t count;
	unsigned conns;
	bool paused;
	bool stopping;
	struct event *resume;	/* re-enables accepting after EMFILE */
} w;

static void
worker_pause(bool pause)
{
	if (w.paused == pause || w.stopping)
		return;
	for (size_t i = 0; i < w.count; i++) {
		if (pause)
			event_del(w.listeners[i]);
		else
			event_add(w.listeners[i], NULL);
	}
	w.paused = pause;
}

void
rb_server_conn_add(void)
{
	w.conns++;
	if (w.params != NULL && w.params->max_connections > 0 &&
	    w.conns >= w.params->max_connections)
		worker_pause(true);
}

void
rb_server_conn_del(void)
{
	RB_CHECK(w.conns > 0);
	w.conns--;
	if (w.stopping) {
		if (w.conns == 0 && w.base != NULL)
			event_base_loopexit(w.base, NULL);
		return;
	}
	if (w.params != NULL && w.conns < w.params->max_connections)
		worker_pause(false);
}

bool
rb_server_shutting_down(void)
{
	return w.stopping;
}

static void
remote_name(const struct sockaddr *sa, char *buf, size_t size,
	    bool *loopback_r)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	*loopback_r = false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		*loopback_r = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
		(void)rb_snprintf(buf, size, "%s:%u", ip,
				  ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		*loopback_r = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
		(void)rb_snprintf(buf, size, "[%s]:%u", ip,
				  ntohs(sin6->sin6_port));
	} else {
		/* A unix socket is as local as loopback. */
		*loopback_r = true;
		(void)rb_snprintf(buf, size, "unix");
	}
}

static void accept_failed(int err);

/*
 * One connection per wakeup, unlike libevent's listener, which accepts
 * all that are pending: every worker is woken by a new connection, so
 * this lets each idle worker take one, instead of the first to wake
 * taking a whole burst and then serving it behind its own fsyncs.
 */
static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	size_t idx = (size_t)(uintptr_t)arg;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char remote[80];
	bool loopback;
	int fd;

	(void)what;
	memset(&ss, 0, sizeof(ss));
	fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		     SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		/* EAGAIN: another worker was quicker. */
		if (errno != EAGAIN && errno != EWOULDBLOCK &&
		    errno != EINTR && errno != ECONNABORTED)
			accept_failed(errno);
		return;
	}
	remote_name((struct sockaddr *)&ss, remote, sizeof(remote),
		    &loopback);
	w.params->accept(w.base, fd, w.tls[idx], remote, loopback,
			 w.params->arg);
}

static void
on_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (w.params->max_connections == 0 ||
	    w.conns < w.params->max_connections)
		worker_pause(false);
}

static void
accept_failed(int err)
{
	static const struct timeval pause = { 0, 200 * 1000 };

	log_error("accept failed: %s", strerror(err));
	/* Out of descriptors or memory: the pending connection stays
	 * pending, so stop accepting for a moment rather than spin on it. */
	if (err == EMFILE || err == ENFILE || err == ENOBUFS ||
	    err == ENOMEM) {
		worker_pause(true);
		evtimer_add(w.resume, &pause);
	}
}

static void
listeners_free(void)
{
	for (size_t i = 0; i < w.count; i++) {
		event_free(w.listeners[i]);
		close(w.fds[i]);
	}
	w.count = 0;
}

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	if (w.stopping)
		return;
	log_info("worker stopping connections=%u", w.conns);
	/* Closing this worker's copies of the listening sockets lets a
	 * restarted daemon bind while we finish. */
	listeners_free();
	w.stopping = true;
	if (w.params->shutdown != NULL)
		w.params->shutdown(w.params->arg);
	if (w.conns == 0)
		event_base_loopexit(w.base, NULL);
}

static RB_NORETURN void
worker_main(const struct rb_server_params *p, pid_t master)
{
	struct event *sigterm, *sigint;

	/* Die with the master; if it is already gone (it died between our
	 * fork and this call), the signal would never come: leave now. */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != master)
		_exit(0);
	signal(SIGCHLD, SIG_DFL);
	w.params = p;
	w.base = event_base_new();
	if (w.base == NULL)
		log_fatal("event_base_new failed");
	sigterm = evsignal_new(w.base, SIGTERM, on_stop_signal, NULL);
	sigint = evsignal_new(w.base, SIGINT, on_stop_signal, NULL);
	evsignal_add(sigterm, NULL);
	evsignal_add(sigint, NULL);
	/* Stop signals were blocked since before fork() (see spawn): now
	 * that libevent handles them, a pending one is delivered, not lost
	 * to the master's handler we inherited. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_UNBLOCK, &stop, NULL);
	w.resume = evtimer_new(w.base, on_resume, NULL);
	if (p->worker_init != NULL && p->worker_init(w.base, p->arg) < 0) {
		log_error("%s worker init failed", p->name);
		_exit(1);
	}
	for (size_t i = 0; i < p->listener_count; i++) {
		/* The sockets are non-blocking and already listening. */
		w.fds[i] = p->listeners[i].fd;
		w.listeners[i] = event_new(w.base, w.fds[i],
					   EV_READ | EV_PERSIST, on_accept,
					   (void *)(uintptr_t)i);
		if (w.listeners[i] == NULL ||
		    event_add(w.listeners[i], NULL) < 0)
			log_fatal("cannot watch a listening socket");
		w.tls[i] = p->listeners[i].tls;
		w.count++;
	}
	event_base_dispatch(w.base);
	if (p->worker_exit != NULL)
		p->worker_exit(p->arg);
	listeners_free();
	event_free(w.resume);
	event_free(sigterm);
	event_free(sigint);
	event_base_free(w.base);
	exit(0);
}

/* ---- master ---- */

static volatile sig_atomic_t master_stop;

static void
on_master_signal(int sig)
{
	(void)sig;
	master_stop = 1;
}

static pid_t
spawn(const struct rb_server_params *p)
{
	pid_t master = getpid();
	sigset_t stop, old;
	pid_t pid;

	/* A SIGTERM arriving between fork() and the worker's own handler
	 * would hit the master's handler in the child and be lost. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	sigprocmask(SIG_BLOCK, &stop, &old);
	pid = fork();
	if (pid == 0)
		worker_main(p, master);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (pid < 0)
		log_error("fork failed: %s", strerror(errno));
	return pid;
}

int
rb_server_run(const struct rb_server_params *p)
{
	pid_t pids[RB_WORKERS_MAX];
	time_t started[RB_WORKERS_MAX];
	unsigned n = p->workers == 0 ? 1 : p->workers;
	struct sigaction sa;
	unsigned alive = 0;

	RB_CHECK(n <= RB_WORKERS_MAX);
	RB_CHECK(p->listener_count <= RB_N_ELEMENTS(w.listeners));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_master_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	for (unsigned i = 0; i < n; i++) {
		pids[i] = spawn(p);
		started[i] = time(NULL);
		if (pids[i] > 0)
			alive++;
	}
	if (alive == 0)
		return 1;
	log_info("%s started workers=%u", p->name, n);

	bool forwarded = false;
	while (alive > 0) {
		int status;
		pid_t pid;

		if (master_stop && !forwarded) {
			for (unsigned i = 0; i < n; i++)
				if (pids[i] > 0)
					kill(pids[i], SIGTERM);
			forwarded = true;
		}
		pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (unsigned i = 0; i < n; i++) {
			if (pids[i] != pid)
				continue;
			pids[i] = -1;
			alive--;
			if (master_stop)
				break;
			if (WIFSIGNALED(status))
				log_error("%s worker pid=%d died signal=%d",
					  p->name, (int)pid, WTERMSIG(status));
			else
				log_error("%s worker pid=%d exited status=%d",
					  p->name, (int)pid,
					  WEXITSTATUS(status));
			/* Don't spin if workers die at once. */
			if (time(NULL) - started[i] < 1)
				sleep(1);
			pids[i] = spawn(p);
			started[i] = time(NULL);
			if (pids[i] > 0)
				alive++;
			break;
		}
	}
	log_info("%s stopped", p->name);
	return 0;
}
