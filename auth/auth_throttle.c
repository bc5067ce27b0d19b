/*
 * Failed-login throttling, per worker process (STYLE.md: "delay and count
 * failed logins per address").  A small fixed table of remote addresses
 * with the failures seen in the current minute; when it is full the
 * entry touched longest ago is reused, so memory stays bounded whatever
 * an attacker does (he can at worst make us forget some addresses, which
 * costs him as many failures as he makes us forget).
 *
 * Delay after the n-th failure in a minute: base_delay * 2^(n-1) seconds,
 * capped at RB_AUTH_THROTTLE_DELAY_MAX_MS.  The delay is served by the
 * protocol with a timer, never by sleeping.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "auth/auth.h"


struct throttle_entry {
	char ip[48];		/* "" = free slot; INET6_ADDRSTRLEN fits */
	time_t window_start;	/* first failure of the current window */
	time_t last;		/* last failure, for eviction */
	unsigned failures;	/* in the current window */
};

struct auth_throttle {
	unsigned base_delay;
	unsigned max_per_minute;
	struct throttle_entry e[RB_AUTH_THROTTLE_SLOTS];
};

struct auth_throttle *
auth_throttle_new(unsigned base_delay, unsigned max_per_minute)
{
	struct auth_throttle *t = rb_calloc(1, sizeof(*t));

	t->base_delay = base_delay;
	t->max_per_minute = max_per_minute;
	return t;
}

void
auth_throttle_free(struct auth_throttle **t)
{
	rb_free(t);
}

/*
 * The table key of ip.  One host must not get a fresh budget of guesses
 * by changing how its address is written, so addresses are canonical:
 * an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack
 * listener reports) counts as the IPv4 address, and IPv6 addresses
 * count per /64, the smallest prefix a site is given (RFC 6177): a peer
 * holding a /64 can use 2^64 addresses.  Anything else ("local", a
 * scoped address) is the string itself, cut to the slot size.
 */
static void
make_key(const char *ip, char *key)
{
	const size_t size = sizeof(((struct throttle_entry *)0)->ip);
	unsigned char a6[16];
	struct in_addr a4;
	size_t n;

	if (inet_pton(AF_INET6, ip, a6) == 1) {
		static const unsigned char mapped[12] = {
			0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		if (memcmp(a6, mapped, sizeof(mapped)) == 0) {
			memcpy(&a4, a6 + 12, 4);
			if (inet_ntop(AF_INET, &a4, key, (socklen_t)size) !=
			    NULL)
				return;
		} else {
			char text[INET6_ADDRSTRLEN];

			memset(a6 + 8, 0, 8);
			if (inet_ntop(AF_INET6, a6, text, sizeof(text)) !=
			    NULL &&
			    rb_snprintf(key, size, "%s/64", text) == 0)
				return;
		}
	} else if (inet_pton(AF_INET, ip, &a4) == 1 &&
		   inet_ntop(AF_INET, &a4, key, (socklen_t)size) != NULL) {
		return;
	}
	n = strnlen(ip, size - 1);
	memcpy(key, ip, n);
	key[n] = '\0';
}

/* The entry of ip, NULL if none; expired windows are reset. */
static struct throttle_entry *
find(struct auth_throttle *t, const char *ip, time_t now)
{
	char key[sizeof(t->e[0].ip)];

	make_key(ip, key);
	ip = key;
	for (size_t i = 0; i < RB_AUTH_THROTTLE_SLOTS; i++) {
		struct throttle_entry *e = &t->e[i];

		if (e->ip[0] == '\0' || strcmp(e->ip, ip) != 0)
			continue;
		/* a clock step backwards also starts a new window */
		if (now - e->window_start >= RB_AUTH_THROTTLE_WINDOW ||
		    now < e->window_start) {
			e->failures = 0;
			e->window_start = now;
		}
		return e;
	}
	return NULL;
}

bool
auth_throttle_blocked(struct auth_throttle *t, const char *ip, time_t now)
{
	struct throttle_entry *e = find(t, ip, now);

	return e != NULL && t->max_per_minute > 0 &&
	       e->failures >= t->max_per_minute;
}

unsigned
auth_throttle_failure(struct auth_throttle *t, const char *ip, time_t now)
{
	struct throttle_entry *e = find(t, ip, now);
	uint64_t ms;

	if (e == NULL) {
		struct throttle_entry *victim = &t->e[0];

		for (size_t i = 0; i < RB_AUTH_THROTTLE_SLOTS; i++) {
			if (t->e[i].ip[0] == '\0') {
				victim = &t->e[i];
				break;
			}
			if (t->e[i].last < victim->last)
				victim = &t->e[i];
		}
		e = victim;
		memset(e, 0, sizeof(*e));
		make_key(ip, e->ip);
		e->window_start = now;
	}
	e->last = now;
	if (e->failures < UINT32_MAX)
		e->failures++;
	if (t->base_delay == 0)
		return 0;
	ms = (uint64_t)t->base_delay * 1000;
	for (unsigned i = 1; i < e->failures && ms < RB_AUTH_THROTTLE_DELAY_MAX_MS;
	     i++)
		ms *= 2;
	if (ms > RB_AUTH_THROTTLE_DELAY_MAX_MS)
		ms = RB_AUTH_THROTTLE_DELAY_MAX_MS;
	return (unsigned)ms;
}

void
auth_throttle_success(struct auth_throttle *t, const char *ip)
{
	char key[sizeof(t->e[0].ip)];

	make_key(ip, key);
	ip = key;
	for (size_t i = 0; i < RB_AUTH_THROTTLE_SLOTS; i++) {
		if (t->e[i].ip[0] != '\0' && strcmp(t->e[i].ip, ip) == 0) {
			memset(&t->e[i], 0, sizeof(t->e[i]));
			return;
		}
	}
}
