/* Listen addresses: "host:port", "[v6]:port", "unix:/path". */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/common.h"

static int
parse_one(const char *s, size_t len, struct rb_listen_addr *a,
	  const char **error_r)
{
	char tmp[RB_PATH_MAX];
	char *colon;
	uint64_t port;

	memset(a, 0, sizeof(*a));
	if (len >= sizeof(tmp)) {
		*error_r = "listen address too long";
		return -1;
	}
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (strncmp(tmp, "unix:", 5) == 0) {
		a->is_unix = true;
		if (tmp[5] == '\0' ||
		    rb_strlcpy(a->path, tmp + 5, sizeof(a->path)) < 0) {
			*error_r = "unix socket path empty or longer than 107";
			return -1;
		}
		return 0;
	}
	if (tmp[0] == '[') {
		char *close = strchr(tmp, ']');

		if (close == NULL || close[1] != ':') {
			*error_r = "expected [address]:port";
			return -1;
		}
		*close = '\0';
		colon = close + 1;
		if (rb_strlcpy(a->host, tmp + 1, sizeof(a->host)) < 0) {
			*error_r = "host too long";
			return -1;
		}
	} else {
		colon = strrchr(tmp, ':');
		if (colon == NULL || colon == tmp) {
			*error_r = "expected host:port or unix:/path";
			return -1;
		}
		*colon = '\0';
		if (rb_strlcpy(a->host, tmp, sizeof(a->host)) < 0) {
			*error_r = "host too long";
			return -1;
		}
	}
	if (rb_parse_uint(colon + 1, 1, 65535, &port) < 0) {
		*error_r = "port must be 1-65535";
		return -1;
	}
	(void)rb_snprintf(a->port, sizeof(a->port), "%u", (unsigned)port);
	return 0;
}

int
rb_listen_parse(const char *value, struct rb_listen_list *list_r,
		const char **error_r)
{
	struct rb_listen_list list;
	const char *p = value;

	memset(&list, 0, sizeof(list));
	while (*p != '\0') {
		size_t len;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, ", \t");
		if (list.count == RB_LISTEN_MAX) {
			*error_r = "too many listen addresses";
			return -1;
		}
		if (parse_one(p, len, &list.addr[list.count], error_r) < 0)
			return -1;
		list.count++;
		p += len;
	}
	/* An empty list is allowed: "listen =" is refused earlier as an
	 * empty value, but "none" lets a protocol be switched off. */
	*list_r = list;
	return 0;
}

const char *
rb_listen_name(const struct rb_listen_addr *a, char *buf, size_t size)
{
	if (a->is_unix)
		(void)rb_snprintf(buf, size, "unix:%s", a->path);
	else if (strchr(a->host, ':') != NULL)
		(void)rb_snprintf(buf, size, "[%s]:%s", a->host, a->port);
	else
		(void)rb_snprintf(buf, size, "%s:%s", a->host, a->port);
	return buf;
}

static int
open_unix(const struct rb_listen_addr *a, uid_t uid, gid_t gid, int *fd_r,
	  const char **error_r)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (rb_strlcpy(sun.sun_path, a->path, sizeof(sun.sun_path)) < 0) {
		*error_r = "unix socket path too long";
		return -1;
	}
	/* Only ever remove a stale socket, never another kind of file. */
	if (lstat(a->path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			*error_r = "unix socket path exists and is not a socket";
			return -1;
		}
		(void)unlink(a->path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*error_r = strerror(errno);
		return -1;
	}
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(a->path, 0666) < 0 || listen(fd, 128) < 0) {
		*error_r = strerror(errno);
		close(fd);
		return -1;
	}
	if (uid != (uid_t)-1 && chown(a->path, uid, gid) < 0) {
		*error_r = strerror(errno);
		close(fd);
		return -1;
	}
	*fd_r = fd;
	return 0;
}

int
rb_listen_open(const struct rb_listen_addr *a, uid_t owner_uid,
	       gid_t owner_gid, int *fd_r, const char **error_r)
{
	static char errbuf[256];
	struct addrinfo hints, *res = NULL;
	int fd, one = 1, ret;

	if (a->is_unix)
		return open_unix(a, owner_uid, owner_gid, fd_r, error_r);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	ret = getaddrinfo(a->host, a->port, &hints, &res);
	if (ret != 0) {
		(void)rb_snprintf(errbuf, sizeof(errbuf), "%s",
				  gai_strerror(ret));
		*error_r = errbuf;
		return -1;
	}
	fd = socket(res->ai_family,
		    res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		*error_r = strerror(errno);
		freeaddrinfo(res);
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (res->ai_family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				 sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    listen(fd, 511) < 0) {
		*error_r = strerror(errno);
		close(fd);
		freeaddrinfo(res);
		return -1;
	}
	freeaddrinfo(res);
	*fd_r = fd;
	return 0;
}
