/*
 * TLS for the protocol servers: OpenSSL 3 under libevent's
 * bufferevent_openssl, for implicit-TLS ports (RFC 8314 §3.3) and for
 * STARTTLS/STLS upgrades of plain connections (RFC 2595, RFC 3501 §6.2.1).
 *
 * Policy, fixed here so that no protocol can weaken it:
 * - TLS 1.2 is the floor whatever the config says (RFC 8314 §4.1 and
 *   DESIGN.md); [tls] min_version may only raise it to 1.3.
 * - No TLS compression (CRIME) and no renegotiation (a client-initiated
 *   renegotiation is a cheap CPU DoS and has no use for mail clients).
 * - The server's cipher order wins.
 * - SSL_MODE_RELEASE_BUFFERS: an idle connection keeps no 16 KB record
 *   buffers, which is most of the memory of an idle TLS session.
 */
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "common/common.h"

/* Text of the last OpenSSL error; static, valid until the next call. */
static const char *
ssl_error(const char *what)
{
	static char buf[512];
	char ossl[256];
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		(void)rb_strlcpy(ossl, "unknown error", sizeof(ossl));
	else
		ERR_error_string_n(e, ossl, sizeof(ossl));
	ERR_clear_error();
	if (rb_snprintf(buf, sizeof(buf), "%s: %s", what, ossl) < 0)
		return what;
	return buf;
}

int
rb_tls_ctx_new(const struct rb_config *cfg, struct ssl_ctx_st **ctx_r,
	       const char **error_r)
{
	SSL_CTX *ctx;
	int minv = TLS1_2_VERSION;

	*ctx_r = NULL;
	if (cfg->tls.cert == NULL || cfg->tls.key == NULL) {
		*error_r = "[tls] cert and key must both be set";
		return -1;
	}
	if (cfg->tls.min_version != NULL &&
	    strcmp(cfg->tls.min_version, "1.3") == 0)
		minv = TLS1_3_VERSION;

	ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL) {
		*error_r = ssl_error("SSL_CTX_new");
		return -1;
	}
	if (SSL_CTX_set_min_proto_version(ctx, minv) != 1) {
		*error_r = ssl_error("cannot set the minimum TLS version");
		goto fail;
	}
	(void)SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
				  SSL_OP_NO_RENEGOTIATION |
				  SSL_OP_CIPHER_SERVER_PREFERENCE);
	(void)SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (cfg->tls.ciphers != NULL && cfg->tls.ciphers[0] != '\0' &&
	    SSL_CTX_set_cipher_list(ctx, cfg->tls.ciphers) != 1) {
		*error_r = ssl_error("[tls] ciphers");
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls.cert) != 1) {
		*error_r = ssl_error("[tls] cert");
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls.key,
					SSL_FILETYPE_PEM) != 1) {
		*error_r = ssl_error("[tls] key");
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*error_r = ssl_error("[tls] key does not match the cert");
		goto fail;
	}
	*ctx_r = ctx;
	return 0;
fail:
	SSL_CTX_free(ctx);
	return -1;
}

void
rb_tls_ctx_free(struct ssl_ctx_st **ctx)
{
	if (*ctx == NULL)
		return;
	SSL_CTX_free(*ctx);
	*ctx = NULL;
}

struct bufferevent *
rb_tls_accept(struct event_base *base, struct ssl_ctx_st *ctx, int fd)
{
	struct bufferevent *bev;
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL) {
		log_error("%s", ssl_error("SSL_new"));
		(void)evutil_closesocket(fd);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
					     BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		/* libevent frees neither on failure */
		SSL_free(ssl);
		(void)evutil_closesocket(fd);
		return NULL;
	}
	/* Many clients close without close_notify; that is not an attack
	 * on a protocol with its own end marker (QUIT, LOGOUT). */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *
rb_tls_starttls(struct bufferevent *plain, struct ssl_ctx_st *ctx)
{
	struct bufferevent *bev;
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL) {
		log_error("%s", ssl_error("SSL_new"));
		return NULL;
	}
	/* BEV_OPT_CLOSE_ON_FREE: freeing the filter frees plain (and
	 * closes its socket).  Whatever plain still has to send (the "+OK
	 * Begin TLS" reply) leaves before the first TLS record. */
	bev = bufferevent_openssl_filter_new(bufferevent_get_base(plain),
					     plain, ssl,
					     BUFFEREVENT_SSL_ACCEPTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

bool
rb_tls_active(struct bufferevent *bev)
{
	return bev != NULL && bufferevent_openssl_get_ssl(bev) != NULL;
}

const char *
rb_tls_describe(struct bufferevent *bev, char *buf, size_t size)
{
	SSL *ssl = bev != NULL ? bufferevent_openssl_get_ssl(bev) : NULL;

	if (ssl == NULL) {
		(void)rb_strlcpy(buf, "none", size);
		return buf;
	}
	if (rb_snprintf(buf, size, "%s/%s", SSL_get_version(ssl),
			SSL_get_cipher_name(ssl)) < 0)
		(void)rb_strlcpy(buf, SSL_get_version(ssl), size);
	return buf;
}
