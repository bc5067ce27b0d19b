"""roost-pop3d AUTHORIZATION state: greeting, CAPA, TLS (STLS, implicit
TLS), USER/PASS, AUTH (RFC 5034), plaintext policy, failed logins and
throttling."""
import poplib
import socket
import ssl
import time

import pytest

from pop3_helpers import *  # noqa: F401,F403
from pop3_helpers import (PASSWORD, USER, Raw, b64, client_ssl_context,
                          make_message)


def capa_of(raw):
    assert raw.cmd("CAPA").startswith("+OK")
    return [line.decode() for line in raw.multiline()]


def test_greeting_and_capa_plain_loopback(pop3):
    r = pop3.raw()
    assert r.greeting.startswith("+OK")
    capa = capa_of(r)
    # exactly what works here: plaintext is allowed on loopback
    assert capa == ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE",
                    "PIPELINING", "USER", "SASL PLAIN LOGIN", "STLS",
                    "IMPLEMENTATION roost"]
    assert not any(c.startswith("APOP") for c in capa)
    assert r.cmd("QUIT") == "+OK Bye"
    assert r.closed()


def test_poplib_plain(pop3):
    pop3.deliver(make_message(1))
    c = pop3.client()
    assert c.getwelcome().startswith(b"+OK")
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    resp, lines, octets = c.retr(1)
    assert b"Subject: message 1" in lines
    c.quit()


def test_poplib_stls(pop3):
    pop3.deliver(make_message(1))
    c = pop3.client()
    caps = c.capa()
    assert "STLS" in caps
    c.stls(context=client_ssl_context(pop3.tls))
    caps = c.capa()
    # RFC 2595 §4: no STLS once TLS is active
    assert "STLS" not in caps and "USER" in caps
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    c.quit()


def test_poplib_implicit_tls(pop3):
    pop3.deliver(make_message(1))
    c = pop3.ssl_client()
    caps = c.capa()
    assert "STLS" not in caps
    assert caps["SASL"] == ["PLAIN", "LOGIN"]
    c.user(USER)
    c.pass_(PASSWORD)
    assert c.stat()[0] == 1
    assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
    c.quit()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_tls_below_1_2_refused(pop3):
    ctx = client_ssl_context(pop3.tls)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    try:
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        poplib.POP3_SSL("127.0.0.1", pop3.tls_port, timeout=10, context=ctx)


def test_stls_twice_and_pipelined_input_discarded(pop3):
    r = pop3.raw()
    # a command pipelined behind STLS was sent in clear: it must be
    # dropped, not run after the handshake (CVE-2011-0411)
    r.send("STLS\r\nUSER injected@example.test\r\n")
    assert r.line() == "+OK Begin TLS negotiation"
    ctx = client_ssl_context(pop3.tls)
    tls = ctx.wrap_socket(r.sock, server_hostname="localhost")
    f = tls.makefile("rb")
    tls.sendall(b"PASS pw\r\n")
    # USER was discarded, so PASS has no user
    assert f.readline() == b"-ERR USER first\r\n"
    tls.sendall(b"STLS\r\n")
    assert f.readline().startswith(b"-ERR")
    tls.sendall(b"USER %s\r\nPASS %s\r\nQUIT\r\n" % (USER.encode(),
                                                      PASSWORD.encode()))
    assert f.readline() == b"+OK\r\n"
    assert f.readline().startswith(b"+OK Logged in")
    assert f.readline() == b"+OK Bye\r\n"
    tls.close()


def test_user_pass_errors(pop3):
    r = pop3.raw()
    assert r.cmd("PASS pw").startswith("-ERR")
    assert r.cmd("USER").startswith("-ERR")
    assert r.cmd("STAT") == "-ERR Not logged in"
    assert r.cmd("LIST").startswith("-ERR")
    assert r.cmd("RETR 1").startswith("-ERR")
    assert r.cmd("NOOP").startswith("-ERR")
    assert r.cmd("APOP u 0123456789abcdef0123456789abcdef").startswith(
        "-ERR")
    # AUTHORIZATION still works after all that
    r.login()
    assert r.cmd("USER x").startswith("-ERR")
    assert r.cmd("AUTH PLAIN").startswith("-ERR")
    assert r.cmd("STLS").startswith("-ERR")
    assert r.cmd("QUIT") == "+OK Bye"


def test_login_case_insensitive_and_password_with_spaces(pop3):
    pop3.roost.ctl("user", "add", "s@example.test", "--password-stdin",
                   input="with space \n")
    r = pop3.raw()
    assert r.cmd("user S@EXAMPLE.TEST") == "+OK"
    assert r.cmd("pass with space ").startswith("+OK")
    r.cmd("QUIT")


def test_wrong_password_delayed_and_third_failure_closes(pop3):
    pop3.restart({"auth": {"failure_delay": "1"}})
    r = pop3.raw()
    t0 = time.monotonic()
    assert r.cmd("USER " + USER) == "+OK"
    assert r.cmd("PASS wrong") == "-ERR [AUTH] Authentication failed"
    t1 = time.monotonic()
    assert t1 - t0 >= 0.9
    # the delay grows with repeats from the same address
    assert r.cmd("USER nobody@example.test") == "+OK"
    assert r.cmd("PASS x") == "-ERR [AUTH] Authentication failed"
    t2 = time.monotonic()
    assert t2 - t1 >= 1.9
    log = pop3.log()
    assert "event=auth-failed" in log and "remote=127.0.0.1:" in log
    assert "delay_ms=2000" in log
    assert "PASS wrong" not in log and "x\"" not in log


def test_third_failure_closes(pop3):
    r = pop3.raw()
    for pw in ("wrong", "wrong again"):
        assert r.cmd("USER " + USER) == "+OK"
        assert r.cmd("PASS " + pw) == "-ERR [AUTH] Authentication failed"
    assert r.cmd("AUTH PLAIN " + b64("\0%s\0nope" % USER)) == \
        "-ERR [AUTH] Authentication failed"
    assert r.closed()
    assert "wrong again" not in pop3.log()


def test_delay_does_not_block_other_sessions(pop3):
    pop3.restart({"auth": {"failure_delay": "3"}})
    bad = pop3.raw()
    bad.cmd("USER " + USER)
    bad.send("PASS wrong\r\n")
    time.sleep(0.2)
    t0 = time.monotonic()
    good = pop3.raw()
    # one worker: the delayed answer must not hold up this login
    assert good.cmd("NOOP").startswith("-ERR")
    assert time.monotonic() - t0 < 1.5
    assert bad.line() == "-ERR [AUTH] Authentication failed"


def test_throttling_blocks_address(pop3):
    pop3.restart({"auth": {"failure_delay": "0",
                           "max_failures_per_ip": "4"}})
    for _ in range(2):
        r = pop3.raw()
        for _ in range(2):
            r.cmd("USER " + USER)
            assert r.cmd("PASS bad").startswith("-ERR [AUTH]")
        r.close()
    # 4 failures this minute: the address is refused even with the
    # right password, before the password is checked
    r = pop3.raw()
    r.cmd("USER " + USER)
    reply = r.cmd("PASS " + PASSWORD)
    assert reply.startswith("-ERR [SYS/TEMP]"), reply
    assert r.closed()
    assert "event=auth-blocked" in pop3.log()


def test_plaintext_refused_when_not_allowed(pop3):
    pop3.restart({"auth": {"allow_plaintext": "no"}})
    r = pop3.raw()
    capa = capa_of(r)
    assert "USER" not in capa
    assert not any(c.startswith("SASL") for c in capa)
    assert "STLS" in capa
    reply = r.cmd("USER " + USER)
    assert reply.startswith("-ERR [AUTH]") and "STLS" in reply
    assert r.cmd("PASS " + PASSWORD).startswith("-ERR [AUTH]")
    assert r.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD))
                 ).startswith("-ERR [AUTH]")
    # after STLS it works
    c = pop3.client()
    c.stls(context=client_ssl_context(pop3.tls))
    assert "USER" in c.capa()
    c.user(USER)
    c.pass_(PASSWORD)
    c.quit()
    # and on the implicit-TLS port
    c = pop3.ssl_client()
    c.user(USER)
    c.pass_(PASSWORD)
    c.quit()


def test_plaintext_yes(pop3):
    pop3.restart({"auth": {"allow_plaintext": "yes"}})
    r = pop3.raw()
    assert "USER" in capa_of(r)
    r.login()


def test_auth_plain(pop3):
    r = pop3.raw()
    reply = r.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD)))
    assert reply.startswith("+OK"), reply
    assert r.cmd("STAT").startswith("+OK 0 0")
    # RFC 5034 §4: no AUTH after a successful one
    assert r.cmd("AUTH PLAIN").startswith("-ERR")
    r.cmd("QUIT")


def test_auth_plain_with_authzid(pop3):
    r = pop3.raw()
    reply = r.cmd("AUTH PLAIN " + b64("%s\0%s\0%s" % (USER, USER,
                                                       PASSWORD)))
    assert reply.startswith("+OK"), reply
    pop3.roost.add_user("v@example.test", "vpw")
    r = pop3.raw()
    # no proxy authentication
    reply = r.cmd("AUTH PLAIN " + b64("v@example.test\0%s\0%s" % (
        USER, PASSWORD)))
    assert reply == "-ERR [AUTH] Authentication failed"


def test_auth_plain_challenge_and_cancel(pop3):
    r = pop3.raw()
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd("*") == "-ERR Authentication cancelled"
    assert r.cmd("AUTH plain") == "+ "
    reply = r.cmd(b64("\0%s\0%s" % (USER, PASSWORD)))
    assert reply.startswith("+OK"), reply


def test_auth_login(pop3):
    r = pop3.raw()
    assert r.cmd("AUTH LOGIN") == "+ " + b64("Username:")
    assert r.cmd(b64(USER)) == "+ " + b64("Password:")
    assert r.cmd(b64(PASSWORD)).startswith("+OK")
    r.cmd("QUIT")
    # with the user name as initial response
    r = pop3.raw()
    assert r.cmd("AUTH LOGIN " + b64(USER)) == "+ " + b64("Password:")
    assert r.cmd(b64(PASSWORD)).startswith("+OK")


def test_auth_errors(pop3):
    r = pop3.raw()
    assert r.cmd("AUTH CRAM-MD5").startswith("-ERR")
    assert r.cmd("AUTH SCRAM-SHA-256").startswith("-ERR")
    # RFC 5034 §4: bad base64 is an -ERR, in the initial response...
    assert r.cmd("AUTH PLAIN AGEA=YQ==") == "-ERR Invalid base64 data"
    assert r.cmd("AUTH PLAIN A") == "-ERR Invalid base64 data"
    assert r.cmd("AUTH PLAIN AG!A") == "-ERR Invalid base64 data"
    # ... and in a response line
    assert r.cmd("AUTH PLAIN") == "+ "
    assert r.cmd("not base64!") == "-ERR Invalid base64 data"
    # "=" is an empty initial response: PLAIN cannot use it
    assert r.cmd("AUTH PLAIN =").startswith("-ERR")
    # the list form
    assert r.cmd("AUTH").startswith("+OK")
    assert r.multiline() == [b"PLAIN", b"LOGIN"]
    # still usable
    assert r.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD))
                 ).startswith("+OK")


def test_auth_wrong_password(pop3):
    r = pop3.raw()
    assert r.cmd("AUTH PLAIN " + b64("\0%s\0nope" % USER)) == \
        "-ERR [AUTH] Authentication failed"
    assert r.cmd("AUTH LOGIN") .startswith("+ ")
    r.cmd(b64(USER))
    assert r.cmd(b64("nope")) == "-ERR [AUTH] Authentication failed"
    assert r.cmd("AUTH PLAIN " + b64("\0%s\0nope" % USER)) == \
        "-ERR [AUTH] Authentication failed"
    assert r.closed()


def test_disabled_user(pop3):
    pop3.roost.ctl("user", "set", USER, "--disable")
    r = pop3.raw()
    r.cmd("USER " + USER)
    assert r.cmd("PASS " + PASSWORD) == "-ERR [AUTH] Authentication failed"


def test_line_too_long_and_bad_commands(pop3):
    r = pop3.raw()
    # RFC 2449 §4: 255 octets with CRLF; the session goes on
    assert r.cmd("NOOP " + "x" * 300) == "-ERR Line too long"
    assert r.cmd("USER " + "a" * 248) == "+OK"
    assert r.cmd("USER " + "a" * 249) == "-ERR Line too long"
    assert r.cmd("FOO") == "-ERR Unknown command"
    for _ in range(30):
        reply = r.cmd("BOGUS")
        if reply != "-ERR Unknown command":
            break
    assert reply.startswith("-ERR Too many bad commands")
    assert r.closed()


def test_idle_timeout_before_login(pop3):
    pop3.restart({"pop3": {"idle_timeout": "1"}})
    r = pop3.raw()
    time.sleep(1.5)
    assert r.line() == "-ERR Disconnected for inactivity"
    assert r.closed()


def test_max_connections_per_ip(pop3):
    pop3.restart({"pop3": {"max_connections_per_ip": "2"}})
    a, b = pop3.raw(), pop3.raw()
    c = socket.create_connection(("127.0.0.1", pop3.port), timeout=5)
    line = c.makefile("rb").readline()
    assert line.startswith(b"-ERR [SYS/TEMP]")
    a.close()
    time.sleep(0.2)
    d = pop3.raw()
    assert d.greeting.startswith("+OK")
    b.close()
    d.close()


def test_sigterm_closes_idle_sessions(pop3):
    r = pop3.raw()
    r.login()
    assert pop3.daemon.stop() == 0
    assert r.line().startswith("-ERR [SYS/TEMP]")
    assert r.closed()
