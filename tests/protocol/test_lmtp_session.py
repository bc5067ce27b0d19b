"""roost-lmtpd: the session itself (RFC 2033, RFC 5321 §4, RFC 2920):
greeting, LHLO, refused HELO/EHLO, simple commands, order of commands,
errors and limits, pipelining, timeouts, connection limit, SIGTERM."""
import os
import signal
import socket
import threading
import time

import pytest

from helpers_mta import LmtpClient, LmtpError, wait_until

USER = "u@example.test"


@pytest.fixture
def lmtpd(roost):
    roost.add_user(USER)
    return roost.start_lmtpd()


def client(d):
    return LmtpClient(port=d.port, timeout=30)


def read_eof(c, timeout=30):
    """True when the server closes the connection (no more replies)."""
    c.sock.settimeout(timeout)
    try:
        while True:
            data = c.sock.recv(4096)
            if not data:
                return True
            c.buf += data
    except OSError:
        return False


def test_greeting_and_lhlo(lmtpd):
    with client(lmtpd) as c:
        assert c.greeting == (220, "roost.test roost LMTP ready")
        code, text = c.lhlo("mx.example.org")
        assert code == 250
        lines = text.split("\n")
        assert lines[0] == "roost.test"
        for ext in ("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME",
                    "CHUNKING"):
            assert ext in lines
        assert "SIZE %d" % (50 * 1024 * 1024) in lines
        # LHLO again is allowed and resets like RSET (RFC 5321 §4.1.4).
        assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
        assert c.lhlo("again")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % USER) == (503, "5.5.1 Need MAIL "
                                                "command")


def test_helo_and_ehlo_refused(lmtpd):
    # RFC 2033 §4.1: not a positive reply; 500 recommended.
    with client(lmtpd) as c:
        code, text = c.cmd("HELO client.test")
        assert code == 500 and text.startswith("5.5.1")
        code, text = c.cmd("EHLO client.test")
        assert code == 500 and text.startswith("5.5.1")
        assert c.cmd("MAIL FROM:<>") == (503, "5.5.1 Send LHLO first")


def test_simple_commands(lmtpd):
    with client(lmtpd) as c:
        # allowed before LHLO too
        assert c.cmd("NOOP") == (250, "2.0.0 OK")
        assert c.cmd("NOOP with an argument") == (250, "2.0.0 OK")
        code, text = c.cmd("VRFY u")
        assert code == 252 and text.startswith("2.5.0 ")
        assert c.cmd("VRFY")[0] == 501
        code, text = c.cmd("HELP")
        assert code == 214
        assert all(l.startswith("2.0.0") for l in text.split("\n"))
        assert "LHLO" in text
        assert c.cmd("RSET") == (250, "2.0.0 OK")
        assert c.cmd("RSET now")[0] == 501
        c.lhlo()
        assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
        assert c.cmd("RSET") == (250, "2.0.0 OK")
        # the transaction is gone
        assert c.cmd("RCPT TO:<%s>" % USER)[0] == 503
        assert c.cmd("QUIT") == (221, "2.0.0 roost.test closing connection")
        assert read_eof(c)


def test_bad_sequences(lmtpd):
    with client(lmtpd) as c:
        c.lhlo()
        # RCPT before MAIL, DATA before MAIL
        assert c.cmd("RCPT TO:<%s>" % USER) == (503, "5.5.1 Need MAIL "
                                                "command")
        code, text = c.cmd("DATA")
        assert code == 503 and text.startswith("5.5.1")
        assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
        # MAIL twice
        assert c.cmd("MAIL FROM:<b@example.org>") == (
            503, "5.5.1 Nested MAIL command")
        # DATA with no successful RCPT: 503 (RFC 2033 §4.2)
        assert c.cmd("RCPT TO:<nobody@example.test>")[0] == 550
        assert c.cmd("DATA") == (503, "5.5.1 No valid recipients")
        # the transaction goes on
        assert c.cmd("RCPT TO:<%s>" % USER)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        assert c.reply()[0] == 250
        # after the message, a new transaction is needed
        assert c.cmd("RCPT TO:<%s>" % USER)[0] == 503


def test_unknown_command_and_syntax_errors(lmtpd):
    with client(lmtpd) as c:
        assert c.cmd("XYZZY") == (500, "5.5.2 Command unrecognized")
        assert c.cmd("") == (500, "5.5.2 Command unrecognized")
        c.lhlo()
        assert c.cmd("MAIL FROM:joe@example.org")[0:1] == (501,)
        code, text = c.cmd("MAIL FROM:<a b@example.org>")
        assert (code, text[:5]) == (501, "5.1.7")
        code, text = c.cmd("MAIL FROM:<a@example.org> FOO=bar")
        assert (code, text[:5]) == (555, "5.5.4")
        code, text = c.cmd("MAIL FROM:<a@example.org> SIZE=lots")
        assert (code, text[:5]) == (501, "5.5.4")
        code, text = c.cmd("MAIL FROM:<a@example.org> BODY=BINARYMIME")
        assert (code, text[:5]) == (501, "5.5.4")
        assert c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME "
                     "SIZE=100")[0] == 250
        code, text = c.cmd("RCPT TO:<%s> NOTIFY=NEVER" % USER)
        assert (code, text[:5]) == (555, "5.5.4")
        code, text = c.cmd("RCPT TO:<>")
        assert (code, text[:5]) == (501, "5.1.3")
        code, text = c.cmd("RCPT TO:<not-an-address>")
        assert (code, text[:5]) == (501, "5.1.3")
        assert c.cmd("DATA now")[0] == 501
        assert c.cmd("RCPT TO:<%s>" % USER)[0] == 250


def test_line_too_long(roost):
    roost.add_user(USER)
    d = roost.start_lmtpd()
    with client(d) as c:
        c.lhlo()
        # default limit 1000 octets with CRLF: 998 + CRLF is fine
        assert c.cmd("NOOP " + "x" * 993) == (250, "2.0.0 OK")
        assert c.cmd("NOOP " + "x" * 994) == (500, "5.5.2 Line too long")
        # much longer, and the session is in step again after it
        assert c.cmd("MAIL FROM:<" + "a" * 100000 + "@b>") == (
            500, "5.5.2 Line too long")
        assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250


def test_line_limit_configured(roost):
    roost.write_config({"lmtp": {"max_line_length": "600"}})
    roost.add_user(USER)
    d = roost.start_lmtpd()
    with client(d) as c:
        assert c.cmd("NOOP " + "x" * 593) == (250, "2.0.0 OK")
        assert c.cmd("NOOP " + "x" * 594) == (500, "5.5.2 Line too long")


def test_too_many_errors(lmtpd):
    with client(lmtpd) as c:
        for _ in range(19):
            assert c.cmd("BOGUS")[0] == 500
        assert c.cmd("BOGUS")[0] == 500
        code, text = c.reply()
        assert code == 421 and text.startswith("4.7.0 roost.test")
        assert read_eof(c)


def test_sequence_errors_do_not_disconnect(lmtpd):
    # A pipelining client whose MAIL failed gets a 503 per RCPT; that is
    # not abuse.
    with client(lmtpd) as c:
        c.lhlo()
        c.send("".join("RCPT TO:<%s>\r\n" % USER for _ in range(50)))
        for _ in range(50):
            assert c.reply()[0] == 503
        assert c.cmd("NOOP")[0] == 250


def test_pipelining_one_write(lmtpd, roost):
    """RFC 2920: several commands in one write, then all the replies."""
    with client(lmtpd) as c:
        c.send("LHLO client.test\r\n"
               "MAIL FROM:<sender@example.org>\r\n"
               "RCPT TO:<%s>\r\n"
               "RCPT TO:<nobody@example.test>\r\n"
               "RCPT TO:<%s>\r\n"
               "DATA\r\n" % (USER, USER))
        assert c.reply()[0] == 250        # LHLO
        assert c.reply()[0] == 250        # MAIL
        assert c.reply()[0] == 250
        assert c.reply()[0] == 550
        assert c.reply()[0] == 250
        assert c.reply()[0] == 354
        # message, end and the next commands in one write
        c.send(b"Subject: pipelined\r\n\r\nhello\r\n.\r\n"
               b"MAIL FROM:<>\r\nRCPT TO:<%s>\r\nDATA\r\n" % USER.encode())
        assert c.reply()[0] == 250        # first accepted RCPT
        assert c.reply()[0] == 250        # second (same address)
        assert c.reply()[0] == 250        # MAIL
        assert c.reply()[0] == 250        # RCPT
        assert c.reply()[0] == 354
        c.send(b"Subject: second\r\n\r\nbye\r\n.\r\nQUIT\r\n")
        assert c.reply()[0] == 250
        assert c.reply()[0] == 221
        assert read_eof(c)
    msgs = roost.messages(USER)
    assert len(msgs) == 3
    assert sum(b"Subject: pipelined" in m for m in msgs) == 2
    assert sum(b"Subject: second" in m for m in msgs) == 1


def test_pipelining_backpressure(lmtpd):
    """Many pipelined commands whose replies the client reads only later:
    the server stops reading while its output is full, then goes on; no
    reply is lost."""
    n = 100000
    with client(lmtpd) as c:
        payload = b"NOOP\r\n" * n
        t = threading.Thread(target=c.sock.sendall, args=(payload,))
        t.start()
        time.sleep(0.5)
        for _ in range(n):
            assert c.reply() == (250, "2.0.0 OK")
        t.join()
        assert c.cmd("QUIT")[0] == 221


def test_bare_lf_commands(lmtpd, roost):
    with client(lmtpd) as c:
        c.send(b"LHLO x\nMAIL FROM:<a@example.org>\nRCPT TO:<%s>\nDATA\n"
               % USER.encode())
        for code in (250, 250, 250, 354):
            assert c.reply()[0] == code
        c.send(b"Subject: lf\n\nline\n.\n")
        assert c.reply()[0] == 250
    assert roost.messages(USER)[0].endswith(b"Subject: lf\n\nline\n")


def test_quit_closes_with_pending_input_ignored(lmtpd):
    with client(lmtpd) as c:
        c.send("QUIT\r\nNOOP\r\n")
        assert c.reply()[0] == 221
        assert read_eof(c)
        assert c.buf == b""


def test_idle_timeout(roost):
    roost.write_config({"lmtp": {"idle_timeout": "1"}})
    roost.add_user(USER)
    d = roost.start_lmtpd()
    with client(d) as c:
        c.lhlo()
        start = time.monotonic()
        code, text = c.reply()
        assert (code, text) == (421, "4.4.2 roost.test timeout")
        assert time.monotonic() - start < 10
        assert read_eof(c)


def test_idle_timeout_in_data_loses_nothing_half_done(roost):
    roost.write_config({"lmtp": {"idle_timeout": "1"}})
    roost.add_user(USER)
    d = roost.start_lmtpd()
    with client(d) as c:
        c.lhlo()
        c.cmd("MAIL FROM:<a@example.org>")
        c.cmd("RCPT TO:<%s>" % USER)
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: half\r\n\r\nno end")
        assert c.reply()[0] == 421
        assert read_eof(c)
    assert roost.messages(USER) == []
    # nothing left in the spool either
    assert os.listdir(roost.data_dir / "tmp") == []


def test_connection_limit(roost):
    roost.write_config({"lmtp": {"workers": "1", "max_connections": "2"}})
    roost.add_user(USER)
    d = roost.start_lmtpd()
    # wait_port in conftest opened and closed one connection; let the
    # worker see it go
    time.sleep(0.3)
    a, b = client(d), client(d)
    try:
        assert a.greeting[0] == 220 and b.greeting[0] == 220
        c = LmtpClient(port=d.port, timeout=30)
        assert c.greeting == (421, "4.3.2 roost.test Too many connections, "
                                   "try again later")
        assert read_eof(c)
        c.close()
        b.quit()
        # a freed slot is usable again
        def slot_free():
            x = LmtpClient(port=d.port, timeout=30)
            ok = x.greeting[0] == 220
            x.close()
            return ok
        wait_until(slot_free, timeout=10, what="slot free")
        assert a.cmd("NOOP")[0] == 250
    finally:
        a.close()
        b.close()


def test_unix_socket(lmtpd, roost):
    with LmtpClient(path=lmtpd.sock, timeout=30) as c:
        assert c.greeting[0] == 220
        c.lhlo()
        res = c.transaction("a@example.org", [USER],
                            b"Subject: via unix\r\n\r\nhi\r\n")
        assert res["data"] == [(250, "2.0.0 <%s> delivered" % USER)]
    m = roost.messages(USER)[0]
    assert b"Subject: via unix" in m
    # no client address for a unix socket, so none in Received
    assert b"(127.0.0.1)" not in m


def test_sigterm_idle_and_busy_sessions(roost):
    """SIGTERM: idle sessions get 421 and close; a session in the middle
    of DATA finishes its message (and gets its 250) first."""
    roost.write_config({"lmtp": {"workers": "1"}})
    roost.add_user(USER)
    d = roost.start_lmtpd()
    idle, busy = client(d), client(d)
    try:
        idle.lhlo()
        busy.lhlo()
        busy.cmd("MAIL FROM:<a@example.org>")
        busy.cmd("RCPT TO:<%s>" % USER)
        assert busy.cmd("DATA")[0] == 354
        busy.send(b"Subject: during shutdown\r\n\r\nfirst half\r\n")
        time.sleep(0.2)
        os.kill(d.pid, signal.SIGTERM)
        code, text = idle.reply()
        assert code == 421 and text.startswith("4.3.2 ")
        assert read_eof(idle)
        busy.send(b"second half\r\n.\r\n")
        assert busy.reply() == (250, "2.0.0 <%s> delivered" % USER)
        code, text = busy.reply()
        assert code == 421 and text.startswith("4.3.2 ")
        assert read_eof(busy)
        d.proc.wait(20)
        assert d.proc.returncode == 0
    finally:
        idle.close()
        busy.close()
    assert roost.messages(USER)[0].endswith(b"first half\nsecond half\n")


def test_logs_have_session_and_remote(lmtpd, roost):
    with client(lmtpd) as c:
        c.lhlo()
        c.transaction("s@example.org", [USER], b"Subject: x\r\n\r\nsecret "
                      b"body text\r\n")
        c.quit()
    lmtpd.stop()
    log = lmtpd.log_text()
    line = [l for l in log.splitlines()
            if "status=delivered" in l and "remote=127.0.0.1:" in l]
    assert len(line) == 1
    assert "session=" in line[0] and "from=<s@example.org>" in line[0]
    assert "to=<%s>" % USER in line[0] and "size=" in line[0]
    assert "secret body text" not in log


def test_config_test_flag(roost):
    import subprocess
    from conftest import BIN
    r = subprocess.run([str(BIN / "roost-lmtpd"), "-c", str(roost.conf),
                        "-t"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    roost.conf.write_text("[lmtp]\nbogus = 1\n")
    r = subprocess.run([str(BIN / "roost-lmtpd"), "-c", str(roost.conf),
                        "-t"], capture_output=True, text=True)
    assert r.returncode == 78
    assert "bogus" in r.stderr
    r = subprocess.run([str(BIN / "roost-lmtpd"), "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS",
                    "CONFIGURATION", "SIGNALS", "EXIT STATUS", "SEE ALSO"):
        assert section in r.stdout
