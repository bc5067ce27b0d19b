"""roost-lmtpd: CHUNKING / BDAT (RFC 3030 §2, RFC 2033 §4.3)."""
import pytest

from helpers_mta import LmtpClient

U = "u@example.test"
V = "v@example.test"


@pytest.fixture
def c(roost):
    roost.add_user(U)
    roost.add_user(V)
    d = roost.start_lmtpd()
    with LmtpClient(port=d.port, timeout=30) as cl:
        assert "CHUNKING" in cl.lhlo()[1].split("\n")
        yield cl


def envelope(c, *rcpts):
    assert c.cmd("MAIL FROM:<a@example.org>")[0] == 250
    for r in rcpts:
        c.cmd("RCPT TO:<%s>" % r)


def test_bdat_chunks(c, roost):
    envelope(c, U, V)
    part1 = b"Subject: chunked\r\n\r\nline one\r\n.not stuffed\r\nspl"
    part2 = b"it line\r\n"
    c.send(b"BDAT %d\r\n" % len(part1) + part1)
    assert c.reply() == (250, "2.0.0 %d octets received" % len(part1))
    c.send(b"BDAT %d LAST\r\n" % len(part2) + part2)
    # one reply per recipient at LAST (RFC 2033 §4.3)
    assert c.reply() == (250, "2.0.0 <%s> delivered" % U)
    assert c.reply() == (250, "2.0.0 <%s> delivered" % V)
    m = roost.messages(U)[0]
    assert m.endswith(b"Subject: chunked\n\nline one\n.not stuffed\n"
                      b"split line\n")
    assert roost.messages(V)[0] == m


def test_bdat_pipelined_with_empty_last(c, roost):
    body = b"Subject: piped\r\n\r\nx\r\n"
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<%s>\r\n" % U.encode() +
           b"BDAT %d\r\n" % len(body) + body + b"BDAT 0 LAST\r\nNOOP\r\n")
    assert [c.reply()[0] for _ in range(5)] == [250, 250, 250, 250, 250]
    assert roost.messages(U)[0].endswith(b"Subject: piped\n\nx\n")


def test_bdat_without_mail_is_discarded(c):
    # the octets of a refused chunk must not be read as commands
    junk = b"QUIT\r\nQUIT\r\n"
    c.send(b"BDAT %d\r\n" % len(junk) + junk)
    code, text = c.reply()
    assert code == 503 and text.startswith("5.5.1")
    assert c.cmd("NOOP") == (250, "2.0.0 OK")


def test_bdat_no_valid_recipient(c, roost):
    envelope(c, "nobody@example.test")
    junk = b"RSET\r\n"
    c.send(b"BDAT %d\r\n" % len(junk) + junk)
    assert c.reply() == (503, "5.5.1 No valid recipients")
    # BDAT LAST with no successful RCPT returns zero replies
    # (RFC 2033 §4.3): the next reply is the NOOP's
    c.send(b"BDAT %d LAST\r\n" % len(junk) + junk + b"NOOP\r\n")
    assert c.reply() == (250, "2.0.0 OK")
    assert roost.messages(U) == []


def test_data_after_bdat_refused(c):
    envelope(c, U)
    c.send(b"BDAT 3\r\nabc")
    assert c.reply()[0] == 250
    assert c.cmd("DATA")[0] == 503
    assert c.cmd("RCPT TO:<%s>" % V)[0] == 503
    assert c.cmd("RSET")[0] == 250
    envelope(c, U)
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: data\r\n\r\nx\r\n.\r\n")
    assert c.reply()[0] == 250


def test_bdat_syntax_error_closes(c):
    # without a size the chunk cannot be told from commands
    c.send(b"BDAT lots\r\n")
    code, text = c.reply()
    assert code == 501 and text.startswith("5.5.4")
    c.sock.settimeout(10)
    assert c.sock.recv(100) == b""


def test_bdat_too_big_fails_the_transaction(roost):
    roost.write_config({"lmtp": {"max_message_size": "1k"}})
    roost.add_user(U)
    d = roost.start_lmtpd()
    with LmtpClient(port=d.port, timeout=30) as cl:
        cl.lhlo()
        envelope(cl, U)
        chunk = b"x" * 2000 + b"\r\n"
        cl.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        assert cl.reply() == (552, "5.3.4 message too big")
        # a pipelined follow-up chunk is discarded with 503 (RFC 3030 §2)
        cl.send(b"BDAT 4 LAST\r\nQUIT")
        assert cl.reply()[0] == 503
        assert cl.cmd("NOOP")[0] == 250
    assert roost.messages(U) == []
