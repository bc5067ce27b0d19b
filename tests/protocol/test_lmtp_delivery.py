"""roost-lmtpd: MAIL, RCPT and DATA end to end — per-recipient replies
(RFC 2033 §4.2), the message as stored, sizes, quota, aliases, +detail —
with smtplib.LMTP, swaks and a raw client."""
import json
import os
import shutil
import smtplib
import subprocess

import pytest

from helpers_mta import LmtpClient, split_message

U = "u@example.test"
V = "v@example.test"


@pytest.fixture
def lmtpd(roost):
    roost.add_user(U)
    roost.add_user(V)
    return roost.start_lmtpd()


def lmtp(d):
    s = smtplib.LMTP("127.0.0.1", d.port, timeout=30)
    code, _ = s.ehlo("client.test")     # smtplib.LMTP sends LHLO
    assert code == 250
    return s


def data_replies(s, message, accepted):
    """smtplib.LMTP.data() reads only the first reply after the final
    dot; the others (one per accepted recipient) are read here."""
    first = s.data(message)
    return [first] + [s.getreply() for _ in range(accepted - 1)]


def body_of(stored):
    return split_message(stored)[1]


def test_smtplib_single_recipient(lmtpd, roost):
    s = lmtp(lmtpd)
    assert "pipelining" in s.esmtp_features
    assert s.has_extn("8bitmime") and s.has_extn("enhancedstatuscodes")
    msg = b"From: a@example.org\r\nSubject: hello\r\n\r\nHi there.\r\n"
    assert s.sendmail("sender@example.org", [U], msg) == {}
    s.quit()
    m = roost.messages(U)
    assert len(m) == 1
    assert m[0].startswith(b"Return-Path: <sender@example.org>\n")
    assert b"\nDelivered-To: %s\n" % U.encode() in m[0]
    assert b"\nReceived: from client.test (127.0.0.1)\n" in m[0]
    assert m[0].endswith(b"Subject: hello\n\nHi there.\n")


def test_multi_recipient_with_unknown_user(lmtpd, roost):
    s = lmtp(lmtpd)
    assert s.mail("sender@example.org")[0] == 250
    assert s.rcpt(U) == (250, b"2.1.5 <%s> OK" % U.encode())
    code, text = s.rcpt("nobody@example.test")
    assert code == 550 and text.startswith(b"5.1.1 ")
    assert s.rcpt(V)[0] == 250
    # the same address twice: two replies after DATA (RFC 2033 §4.2)
    assert s.rcpt(U)[0] == 250
    replies = data_replies(s, b"Subject: many\r\n\r\nbody\r\n", 3)
    assert replies == [
        (250, b"2.0.0 <%s> delivered" % U.encode()),
        (250, b"2.0.0 <%s> delivered" % V.encode()),
        (250, b"2.0.0 <%s> delivered" % U.encode()),
    ]
    assert s.noop()[0] == 250
    s.quit()
    assert len(roost.messages(U)) == 2
    assert len(roost.messages(V)) == 1
    assert not (roost.data_dir / "mail" / "example.test" /
                "nobody").exists()


def test_null_sender(lmtpd, roost):
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        res = c.transaction("", [U], b"Subject: bounce\r\n\r\nx\r\n")
        assert res["mail"][0] == 250
        assert res["data"] == [(250, "2.0.0 <%s> delivered" % U)]
    assert roost.messages(U)[0].startswith(b"Return-Path: <>\n")


def test_dot_stuffing_round_trip(lmtpd, roost):
    body = (b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n..two\r\n"
            b"middle . dot\r\n. \r\nend.\r\n")
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        c.cmd("MAIL FROM:<a@example.org>")
        c.cmd("RCPT TO:<%s>" % U)
        assert c.cmd("DATA")[0] == 354
        # stuffed by hand: every line starting with "." gets one more
        c.send(b"Subject: dots\r\n\r\n..\r\n...\r\n..leading\r\n...two\r\n"
               b"middle . dot\r\n.. \r\nend.\r\n.\r\n")
        assert c.reply()[0] == 250
    assert body_of(roost.messages(U)[0]) == \
        body_of(body.replace(b"\r\n", b"\n"))
    # and smtplib's own stuffing gives the same
    s = lmtp(lmtpd)
    assert s.sendmail("a@example.org", [U], body) == {}
    s.quit()
    m = roost.messages(U)
    assert body_of(m[0]) == body_of(m[1])


def test_8bit_body(lmtpd, roost):
    body = ("Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Type: text/plain; "
            "charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "Grüße, déjà vu — ☃\r\n").encode("utf-8") + b"\xff\xfe raw\r\n"
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        assert c.cmd("MAIL FROM:<a@example.org> BODY=8BITMIME")[0] == 250
        c.cmd("RCPT TO:<%s>" % U)
        assert c.cmd("DATA")[0] == 354
        c.send(body + b".\r\n")
        assert c.reply()[0] == 250
    assert roost.messages(U)[0].endswith(body.replace(b"\r\n", b"\n"))


@pytest.mark.parametrize("length", [5000, 200 * 1024 + 7])
def test_long_text_line_accepted(lmtpd, roost, length):
    # RFC 5321 allows 1000 octets; longer lines must not lose the mail,
    # and a line longer than what is held in memory is stored unbroken.
    line = bytes(b"xyz"[i % 3] for i in range(length))
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", [U],
                            b"Subject: long\r\n\r\n" + line + b"\r\nend\r\n")
        assert res["data"][0][0] == 250
    assert roost.messages(U)[0].endswith(b"\n" + line + b"\nend\n")


def size_config(roost):
    roost.write_config({"lmtp": {"max_message_size": "10k"}})
    roost.add_user(U)
    roost.add_user(V)
    return roost.start_lmtpd()


def test_size_parameter(roost):
    d = size_config(roost)
    with LmtpClient(port=d.port) as c:
        code, text = c.lhlo()
        assert "SIZE 10240" in text.split("\n")
        # RFC 1870 §6.1: refused at MAIL
        assert c.cmd("MAIL FROM:<a@example.org> SIZE=10241") == (
            552, "5.3.4 Message size exceeds fixed maximum message size")
        assert c.cmd("MAIL FROM:<a@example.org> SIZE=99999999999999999999"
                     )[0] == 552
        assert c.cmd("MAIL FROM:<a@example.org> SIZE=10240")[0] == 250


def test_message_just_under_and_just_over(roost):
    d = size_config(roost)
    # 100 lines of 100 octets + CRLF = 10200 octets
    under = b"".join(b"%0100d\r\n" % i for i in range(100))
    assert len(under) == 10200
    over = under + b"y" * 39 + b"\r\n"          # 10241 octets
    with LmtpClient(port=d.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", [U, V], under)
        assert [r[0] for r in res["data"]] == [250, 250]
        # too big: one 552 5.3.4 per recipient, after the whole message
        res = c.transaction("a@example.org", [U, V], over)
        assert res["data"] == [
            (552, "5.3.4 <%s> message too big" % U),
            (552, "5.3.4 <%s> message too big" % V),
        ]
        # the session is in step and usable
        assert c.cmd("NOOP")[0] == 250
    assert len(roost.messages(U)) == 1 and len(roost.messages(V)) == 1
    assert os.listdir(roost.data_dir / "tmp") == []


def quota_config(roost, **delivery):
    # A quota of one message: the first fits whatever the message size,
    # so the second RCPT meets a full mailbox.
    roost.write_config({"quota": {"default_messages": "1"}})
    if delivery:
        roost.write_config({"delivery": delivery})
    roost.add_user("q@example.test")
    roost.add_user(U)
    return roost.start_lmtpd()


def test_quota_tempfail_at_rcpt(roost):
    d = quota_config(roost)
    with LmtpClient(port=d.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", ["q@example.test"],
                            b"Subject: first\r\n\r\nx\r\n")
        assert res["data"][0][0] == 250
        # now over quota: a temporary failure by default, at RCPT time,
        # and only for that recipient
        c.cmd("MAIL FROM:<a@example.org>")
        code, text = c.cmd("RCPT TO:<q@example.test>")
        assert (code, text[:5]) == (452, "4.2.2")
        assert c.cmd("RCPT TO:<%s>" % U)[0] == 250
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: second\r\n\r\nx\r\n.\r\n")
        assert c.reply() == (250, "2.0.0 <%s> delivered" % U)
    assert len(roost.messages("q@example.test")) == 1


def test_quota_reject(roost):
    d = quota_config(roost, quota_full="reject")
    with LmtpClient(port=d.port) as c:
        c.lhlo()
        assert c.transaction("a@example.org", ["q@example.test"],
                             b"Subject: first\r\n\r\nx\r\n"
                             )["data"][0][0] == 250
        c.cmd("MAIL FROM:<a@example.org>")
        code, text = c.cmd("RCPT TO:<q@example.test>")
        assert (code, text[:5]) == (552, "5.2.2")
    assert len(roost.messages("q@example.test")) == 1


def test_alias_to_two_users(lmtpd, roost):
    roost.ctl("alias", "add", "team@example.test", U)
    roost.ctl("alias", "add", "team@example.test", V)
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", ["team@example.test"],
                            b"Subject: team\r\n\r\nall of you\r\n")
        # one RCPT, one reply
        assert res["data"] == [(250, "2.0.0 <team@example.test> "
                                "delivered")]
    assert b"Subject: team" in roost.messages(U)[0]
    assert b"Subject: team" in roost.messages(V)[0]


def test_detail_folder_and_fallback_to_inbox(lmtpd, roost):
    roost.ctl("mailbox", "create", U, "shop")
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", ["u+shop@example.test"],
                            b"Subject: to shop\r\n\r\nx\r\n")
        assert res["data"][0][0] == 250
        res = c.transaction("a@example.org", ["u+nosuch@example.test"],
                            b"Subject: to inbox\r\n\r\nx\r\n")
        assert res["data"][0][0] == 250
    assert len(roost.messages(U, "shop")) == 1
    assert b"Subject: to shop" in roost.messages(U, "shop")[0]
    inbox = roost.messages(U)
    assert len(inbox) == 1 and b"Subject: to inbox" in inbox[0]


def test_trace_headers(lmtpd, roost):
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo("mx.example.org")
        c.transaction("bounce@example.org", [U], b"Subject: t\r\n\r\nx\r\n")
    headers, _ = split_message(roost.messages(U)[0])
    names = [h[0] for h in headers]
    assert names[:3] == ["return-path", "delivered-to", "received"]
    assert headers[0][1] == b"<bounce@example.org>"
    assert headers[1][1] == U.encode()
    assert b"from mx.example.org (127.0.0.1)" in headers[2][1]
    assert b"with LMTP id " in headers[2][1]


def test_eof_in_data_delivers_nothing(lmtpd, roost):
    c = LmtpClient(port=lmtpd.port)
    c.lhlo()
    c.cmd("MAIL FROM:<a@example.org>")
    c.cmd("RCPT TO:<%s>" % U)
    assert c.cmd("DATA")[0] == 354
    c.send(b"Subject: cut\r\n\r\nhalf a message")
    c.close()
    # a later session works and only its message arrives
    with LmtpClient(port=lmtpd.port) as c2:
        c2.lhlo()
        assert c2.transaction("a@example.org", [U], b"Subject: ok\r\n\r\n"
                              b"x\r\n")["data"][0][0] == 250
    msgs = roost.messages(U)
    assert len(msgs) == 1 and b"Subject: ok" in msgs[0]


def test_many_transactions_one_connection(lmtpd, roost):
    s = lmtp(lmtpd)
    for i in range(20):
        assert s.sendmail("a@example.org", [U],
                          b"Subject: n%d\r\n\r\nx\r\n" % i) == {}
    s.quit()
    assert len(roost.messages(U)) == 20


def swaks(*args):
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed")
    return subprocess.run(["swaks", "--protocol", "LMTP", "--helo",
                           "client.test", *args], capture_output=True,
                          text=True, timeout=60)


def test_swaks_tcp_and_unix_socket(lmtpd, roost):
    r = swaks("--server", "127.0.0.1:%d" % lmtpd.port, "--from",
              "s@example.org", "--to", U, "--header", "Subject: swaks tcp",
              "--body", "via tcp")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<-  250 2.0.0 <%s> delivered" % U in r.stdout
    r = swaks("--socket", lmtpd.sock, "--from", "s@example.org", "--to", U,
              "--header", "Subject: swaks unix", "--body", "via unix")
    assert r.returncode == 0, r.stdout + r.stderr
    msgs = roost.messages(U)
    assert sum(b"Subject: swaks tcp" in m for m in msgs) == 1
    assert sum(b"Subject: swaks unix" in m for m in msgs) == 1


def test_swaks_pipelining_with_unknown_user(lmtpd, roost):
    r = swaks("--server", "127.0.0.1:%d" % lmtpd.port, "--pipeline",
              "--from", "s@example.org", "--to",
              "%s,nobody@example.test,%s" % (U, V), "--body", "piped")
    # one recipient refused: swaks reports it, the others are delivered
    assert "550 5.1.1 <nobody@example.test>" in r.stdout, r.stdout
    assert "<-  250 2.0.0 <%s> delivered" % U in r.stdout, r.stdout
    assert "<-  250 2.0.0 <%s> delivered" % V in r.stdout, r.stdout
    assert len(roost.messages(U)) == 1 and len(roost.messages(V)) == 1


def test_recipient_limit(lmtpd, roost):
    # RB_LMTP_RCPT_MAX = 1000; the next one gets 452 4.5.3
    # (RFC 5321 §4.5.3.1.10), and the message still reaches the others.
    n = 1000
    with LmtpClient(port=lmtpd.port) as c:
        c.lhlo()
        c.send("MAIL FROM:<a@example.org>\r\n" +
               "RCPT TO:<%s>\r\n" % U * (n + 1))
        assert c.reply()[0] == 250
        codes = [c.reply()[0] for _ in range(n + 1)]
        assert codes == [250] * n + [452]
        assert c.cmd("DATA")[0] == 354
        c.send(b"Subject: many\r\n\r\nx\r\n.\r\n")
        assert [c.reply()[0] for _ in range(n)] == [250] * n
    assert len(roost.message_files(U)) == n


def test_small_byte_quota_at_end_of_data(roost):
    # A message that would take the mailbox past its byte quota passes
    # RCPT (the mailbox is not full yet) and is refused for that recipient
    # only, after the data: temporarily by default.
    roost.add_user("q@example.test", quota=2000)
    roost.add_user(U)
    d = roost.start_lmtpd()
    big = b"Subject: big\r\n\r\n" + b"x" * 1200 + b"\r\n"
    with LmtpClient(port=d.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", ["q@example.test"], big)
        assert res["data"][0][0] == 250
        res = c.transaction("a@example.org", ["q@example.test", U], big)
        assert [r[0] for r in res["rcpt"]] == [250, 250]
        code, text = res["data"][0]
        assert (code, text[:5]) == (452, "4.2.2")
        assert res["data"][1] == (250, "2.0.0 <%s> delivered" % U)
    roost.write_config({"delivery": {"quota_full": "reject"}})
    d.restart()
    with LmtpClient(port=d.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", ["q@example.test"], big)
        code, text = res["data"][0]
        assert (code, text[:5]) == (552, "5.2.2")
    assert len(roost.messages("q@example.test")) == 1
    assert len(roost.messages(U)) == 1


@pytest.mark.parametrize("site", ["spool_write", "spool_fsync",
                                  "deliver_link", "index_commit"])
def test_storage_failure_is_temporary(roost, monkeypatch, site):
    """A disk or index failure is 451 4.3.0 for each recipient — never a
    250 for mail that is not safely stored, never a 5xx that would bounce
    it (DESIGN.md, Errors)."""
    roost.write_config({"lmtp": {"workers": "1"}})
    roost.add_user(U)
    roost.add_user(V)
    monkeypatch.setenv("ROOST_FAULT", "%s:1" % site)
    d = roost.start_lmtpd()
    with LmtpClient(port=d.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", [U, V],
                            b"Subject: fault\r\n\r\nx\r\n")
        assert res["data"] == [
            (451, "4.3.0 <%s> temporary failure, try again later" % U),
            (451, "4.3.0 <%s> temporary failure, try again later" % V),
        ]
        assert c.cmd("NOOP")[0] == 250
    assert roost.messages(U) == [] and roost.messages(V) == []


def test_declared_size_over_quota_refused_at_rcpt(roost):
    """RFC 1870 SIZE= lets RCPT refuse a message that cannot fit, instead
    of taking it in and deferring it after DATA."""
    roost.add_user(U, quota=5000)
    roost.add_user(V)
    d = roost.start_lmtpd()
    with LmtpClient(port=d.port) as c:
        c.lhlo()
        assert c.cmd("MAIL FROM:<a@example.org> SIZE=8000")[0] == 250
        rep = c.cmd("RCPT TO:<%s>" % U)
        assert rep[0] == 452 and rep[1].startswith("4.2.2"), rep
        assert c.cmd("RCPT TO:<%s>" % V)[0] == 250   # no quota: fine
        c.cmd("RSET")
        assert c.cmd("MAIL FROM:<a@example.org> SIZE=1000")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % U)[0] == 250
        c.cmd("RSET")
    roost.write_config({"delivery": {"quota_full": "reject"}})
    d.restart()
    with LmtpClient(port=d.port) as c:
        c.lhlo()
        assert c.cmd("MAIL FROM:<a@example.org> SIZE=8000")[0] == 250
        assert c.cmd("RCPT TO:<%s>" % U)[0] == 552


def test_many_recipients_one_user(roost):
    """One store per user and transaction: 500 RCPTs naming the same
    user (and its +details) cost one index connection, not 500."""
    roost.add_user(U)
    d = roost.start_lmtpd()
    rcpts = [U if i % 2 else U.replace("@", "+x%d@" % i) for i in range(500)]
    with LmtpClient(port=d.port) as c:
        c.lhlo()
        res = c.transaction("a@example.org", rcpts, b"Subject: many\r\n\r\nx\r\n")
        assert [r[0] for r in res["rcpt"]] == [250] * 500
        assert [r[0] for r in res["data"]] == [250] * 500
    assert len(roost.messages(U)) == 500
    assert roost.ctl("index", "check", U).returncode == 0


def test_cached_store_follows_user_recreation_and_rebuild(roost):
    """Workers keep user stores open between deliveries; a store deleted
    and created again, or an index replaced by a rebuild, must be noticed
    so that the next message lands in the store on disk, indexed."""
    roost.write_config({"lmtp": {"workers": "1"}})
    roost.add_user(U)
    d = roost.start_lmtpd()

    def send(tag):
        with LmtpClient(port=d.port) as c:
            c.lhlo()
            res = c.transaction("a@example.org", [U],
                                b"Subject: %s\r\n\r\nbody\r\n" % tag)
            assert [r[0] for r in res["data"]] == [250], res

    send(b"one")
    roost.ctl("user", "del", U)
    roost.add_user(U)
    send(b"two")
    msgs = roost.messages(U)
    assert len(msgs) == 1 and b"Subject: two" in msgs[0]
    roost.ctl("index", "check", U)
    st = json.loads(roost.ctl("--json", "mailbox", "status", U, "INBOX").stdout)
    assert st["messages"] == 1

    # A corrupt index is moved aside by rebuild: a new file, a new inode.
    db = roost.maildir(U) / "roost.db"
    for extra in ("-wal", "-shm"):
        try:
            os.unlink(str(db) + extra)
        except FileNotFoundError:
            pass
    d.stop()
    db.write_bytes(b"\xa5" * 8192)
    roost.ctl("index", "rebuild", U)
    d.start()
    send(b"three")
    roost.ctl("index", "rebuild", U)   # a healthy rebuild, in place
    send(b"four")
    roost.ctl("index", "check", U)
    st = json.loads(roost.ctl("--json", "mailbox", "status", U, "INBOX").stdout)
    assert st["messages"] == 3
