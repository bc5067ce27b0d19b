"""roost-lmtpd: the bare Postmaster recipient (RFC 5321 §4.5.1) and the
delivery log lines (one per recipient, peer bytes escaped)."""
import pytest

from helpers_mta import LmtpClient

U = "u@example.test"
V = "v@example.test"


@pytest.fixture
def lmtpd(roost):
    roost.add_user(U)
    roost.add_user(V)
    return roost.start_lmtpd()


def test_bare_postmaster_goes_to_the_domain_alias(lmtpd, roost):
    # RFC 5321 §4.5.1: "Postmaster" without a domain MUST be accepted.
    # [general] hostname (roost.test) is not a local domain here, so the
    # first local domain's postmaster@ alias is used.
    roost.ctl("alias", "add", "postmaster@example.test", V)
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", ["Postmaster", U],
                            b"Subject: pm\r\n\r\nhello postmaster\r\n")
        assert res["rcpt"][0] == (250, "2.1.5 <Postmaster> OK")
        assert res["data"] == [(250, "2.0.0 <Postmaster> delivered"),
                               (250, "2.0.0 <%s> delivered" % U)]
        # any case, RFC 5321 §4.5.1
        res = c.transaction("", ["POSTMASTER"], b"Subject: 2\r\n\r\nx\r\n")
        assert res["data"] == [(250, "2.0.0 <POSTMASTER> delivered")]
    assert len(roost.messages(V)) == 2
    assert b"hello postmaster" in roost.messages(V)[0]


def test_bare_postmaster_prefers_hostname(lmtpd, roost):
    roost.add_user("postmaster@roost.test")
    roost.ctl("alias", "add", "postmaster@example.test", V)
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", ["postmaster"],
                            b"Subject: pm\r\n\r\nx\r\n")
        assert res["data"] == [(250, "2.0.0 <postmaster> delivered")]
    assert len(roost.messages("postmaster@roost.test")) == 1
    assert roost.messages(V) == []


def test_bare_postmaster_without_one_is_unknown_user(lmtpd, roost):
    # Not a syntax error (501) but a missing mailbox, like any other.
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        c.cmd("MAIL FROM:<a@example.org>")
        code, text = c.cmd("RCPT TO:<Postmaster>")
        assert (code, text[:5]) == (550, "5.1.1")


def test_one_log_line_per_recipient_with_details(lmtpd, roost):
    roost.ctl("mailbox", "create", U, "shop")
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        res = c.transaction("s@example.org",
                            ["u+shop@example.test", V, "nobody@example.test"],
                            b"Subject: x\r\n\r\nbody\r\n")
        assert [r[0] for r in res["rcpt"]] == [250, 250, 550]
        c.quit()
    lmtpd.stop()
    lines = [l for l in lmtpd.log_text().splitlines()
             if "to=<" in l and "session=" in l]
    delivered = [l for l in lines if "status=delivered" in l]
    assert len(delivered) == 2, lines
    shop = [l for l in delivered if "to=<u+shop@example.test>" in l]
    assert len(shop) == 1
    assert "remote=127.0.0.1:" in shop[0]
    assert "user=%s mailbox=shop uid=1 " % U in shop[0]
    assert 'reply="250 2.0.0"' in shop[0]
    refused = [l for l in lines if "to=<nobody@example.test>" in l]
    assert len(refused) == 1, lines
    assert "status=bounced reason=no-user" in refused[0]
    assert 'reply="550 5.1.1"' in refused[0]


def test_peer_address_is_escaped_in_logs(lmtpd, roost):
    # A quoted local part may hold '"' and '\': copied raw into the log it
    # would let the peer forge key=value pairs.  The sender is such an
    # address in every delivery line.
    evil = r'"x\" status=bounced user=root"@example.org'
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        res = c.transaction(evil, [U, "nobody@example.test"],
                            b"Subject: x\r\n\r\nbody\r\n")
        assert res["mail"][0] == 250
        assert res["data"] == [(250, "2.0.0 <%s> delivered" % U)]
        c.quit()
    lmtpd.stop()
    log = lmtpd.log_text()
    assert 'x\\" status=bounced' not in log
    esc = 'from=<\\x22x\\x5c\\x22 status=bounced user=root\\x22@example.org>'
    lines = [l for l in log.splitlines() if esc in l]
    assert len(lines) == 2, log
