"""A real MTA in front of roost: a private Postfix instance (own config,
queue and data directories, SMTP on a free loopback port) hands mail for
example.test to roost-lmtpd over LMTP, once on the unix socket and once
on TCP.  Mail is sent to Postfix with smtplib; the test polls the user's
Maildir until Postfix has passed it on.
"""
import re
import smtplib
import uuid

import pytest

from conftest import IS_ROOT, free_port
from helpers_mta import Postfix, postfix_available, split_message, wait_until

# Postfix hands mail on within a second or two; the deadline only stops a
# hang (a slow CI machine must not fail the test).
DELIVERY_TIMEOUT = 60


def require_postfix():
    if not postfix_available():
        if IS_ROOT:
            pytest.fail("postfix is not installed (scripts/deps.sh test "
                        "installs it)")
        pytest.skip("postfix is not installed")
    if not IS_ROOT:
        pytest.skip("a private Postfix master must run as root")


@pytest.fixture
def postfix(roost):
    """Returns start(transport) -> a running private Postfix; stopped (by
    pid) at the end of the test whatever happens."""
    require_postfix()
    started = []

    def start(transport):
        pf = Postfix(roost.base / "postfix", free_port(), transport)
        started.append(pf)
        pf.setup()
        return pf.start()

    yield start
    for pf in started:
        pf.stop()


def message(token, sender, to, subject="roost via postfix"):
    """A message whose body has dot-stuffing traps and the token."""
    body = ("Hello from Postfix, token %s.\r\n"
            ".a line that starts with a dot\r\n"
            "..two dots\r\n"
            ".\r\n"
            "last line %s\r\n" % (token, token))
    head = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s %s\r\n"
            "Message-ID: <%s@client.test>\r\n\r\n" % (
                sender, to, subject, token, token))
    return (head + body).encode(), body.replace("\r\n", "\n").encode()


def find_with(roost, addr, token):
    """The stored messages of addr containing token."""
    if not roost.maildir(addr).exists():
        return []
    return [m for m in roost.messages(addr) if token.encode() in m]


def wait_delivered(roost, pf, addr, token, count=1):
    def found():
        got = find_with(roost, addr, token)
        return got if len(got) >= count else None
    try:
        return wait_until(found, DELIVERY_TIMEOUT,
                          what="token %s in %s's Maildir" % (token, addr))
    except AssertionError:
        raise AssertionError(
            "message %s not delivered to %s\n--- postfix log:\n%s\n"
            "--- postqueue -p:\n%s" % (token, addr, pf.log_text(),
                                       pf.queue_listing()))


def header_values(raw, name):
    headers, _ = split_message(raw)
    return [v.decode(errors="replace") for n, v in headers if n == name]


def send(pf, sender, rcpts, msg):
    with smtplib.SMTP("127.0.0.1", pf.port, timeout=60) as s:
        s.ehlo("client.test")
        refused = s.sendmail(sender, rcpts, msg)
    assert refused == {}, "postfix refused %r" % refused


def check_delivered(raw, sender, rcpt, body):
    _, stored_body = split_message(raw)
    assert stored_body == body, "body changed on the way: %r" % stored_body
    # roost's trace headers come first, before Postfix's Received.
    headers, _ = split_message(raw)
    names = [n for n, _ in headers]
    assert names[0] == "return-path", names
    assert header_values(raw, "return-path") == ["<%s>" % sender]
    assert header_values(raw, "delivered-to") == [rcpt]
    received = header_values(raw, "received")
    assert any("(Postfix)" in r for r in received), (
        "no Postfix Received header: %r" % received)


def run_basic(roost, pf):
    sender = "sender@example.test"
    alice = "alice@example.test"
    token = uuid.uuid4().hex
    msg, body = message(token, sender, alice)
    send(pf, sender, [alice], msg)
    got = wait_delivered(roost, pf, alice, token)
    assert len(got) == 1, "delivered %d times" % len(got)
    check_delivered(got[0], sender, alice, body)
    wait_until(lambda: re.search(
        r"to=<%s>.*relay=.*status=sent \(250 " % re.escape(alice),
        pf.log_text()), 30, what="postfix log line for the delivery")
    return token


def test_postfix_lmtp_unix_socket(roost, postfix):
    for a in ("alice@example.test", "bob@example.test",
              "sender@example.test"):
        roost.add_user(a)
    lmtpd = roost.start_lmtpd()
    pf = postfix("lmtp:unix:%s" % lmtpd.sock)

    run_basic(roost, pf)

    # One message, two recipients: Postfix sends both in one LMTP
    # transaction and gets one reply per recipient after DATA.
    token = uuid.uuid4().hex
    rcpts = ["alice@example.test", "bob@example.test"]
    msg, body = message(token, "sender@example.test", ", ".join(rcpts))
    send(pf, "sender@example.test", rcpts, msg)
    for r in rcpts:
        got = wait_delivered(roost, pf, r, token)
        assert len(got) == 1
        assert split_message(got[0])[1] == body
        assert header_values(got[0], "return-path") == [
            "<sender@example.test>"]
    assert not lmtpd.log_text().count("status=temp"), lmtpd.log_text()
    wait_until(lambda: "Mail queue is empty" in pf.queue_listing(), 30,
               what="an empty postfix queue")


def test_postfix_lmtp_tcp_and_unknown_recipient_bounces(roost, postfix):
    for a in ("alice@example.test", "sender@example.test"):
        roost.add_user(a)
    lmtpd = roost.start_lmtpd()
    pf = postfix("lmtp:inet:127.0.0.1:%d" % lmtpd.port)

    run_basic(roost, pf)

    # alice exists, nobody does: alice gets the message, Postfix bounces
    # nobody back to the sender (a roost user, so the bounce comes back
    # through roost too).
    sender = "sender@example.test"
    token = uuid.uuid4().hex
    rcpts = ["alice@example.test", "nobody@example.test"]
    msg, body = message(token, sender, ", ".join(rcpts))
    send(pf, sender, rcpts, msg)

    got = wait_delivered(roost, pf, "alice@example.test", token)
    assert len(got) == 1
    assert split_message(got[0])[1] == body

    def bounce():
        for m in find_with(roost, sender, token):
            if b"Undelivered Mail Returned to Sender" in m:
                return m
        return None
    try:
        dsn = wait_until(bounce, DELIVERY_TIMEOUT, what="the bounce")
    except AssertionError:
        raise AssertionError("no bounce for nobody@\n--- postfix log:\n%s"
                             "\n--- lmtpd log:\n%s" % (
                                 pf.log_text(), lmtpd.log_text()))
    text = dsn.decode(errors="replace")
    assert "nobody@example.test" in text
    assert re.search(r"Status: 5\.1\.1", text), text
    assert re.search(r"Diagnostic-Code: smtp; 550 5\.1\.1", text), text
    # The bounce has the null sender.
    assert header_values(dsn, "return-path") == ["<>"]

    log = pf.log_text()
    assert re.search(r"to=<nobody@example\.test>.*dsn=5\.1\.1, "
                     r"status=bounced .*said: 550 5\.1\.1", log), log
    # roost never stored anything for the unknown user.
    assert not roost.maildir("nobody@example.test").exists()
    assert not find_with(roost, "alice@example.test", "Undelivered")
    wait_until(lambda: "Mail queue is empty" in pf.queue_listing(), 30,
               what="an empty postfix queue")
