"""roost-pop3d TRANSACTION commands (RFC 1939 §5, §7): STAT, LIST, RETR,
TOP, UIDL, DELE, RSET, NOOP, QUIT, their error paths, and pipelining
(RFC 2449 §6.6)."""
import time

from pop3_helpers import *  # noqa: F401,F403
from pop3_helpers import USER, make_message


def crlf(data):
    return data.replace(b"\n", b"\r\n")


def setup_messages(pop3, n=3):
    msgs = [make_message(i) for i in range(1, n + 1)]
    for m in msgs:
        pop3.deliver(m)
    return pop3.stored()


def test_stat_list_sizes_equal_retr_octets(pop3):
    stored = setup_messages(pop3)
    r = pop3.raw()
    r.login()
    total = sum(len(crlf(m)) for m in stored)
    assert r.cmd("STAT") == "+OK 3 %d" % total
    assert r.cmd("LIST") == "+OK 3 messages (%d octets)" % total
    listing = r.multiline()
    assert listing == [b"%d %d" % (i + 1, len(crlf(m)))
                       for i, m in enumerate(stored)]
    for i, m in enumerate(stored):
        size = len(crlf(m))
        assert r.cmd("LIST %d" % (i + 1)) == "+OK %d %d" % (i + 1, size)
        assert r.cmd("RETR %d" % (i + 1)) == "+OK %d octets" % size
        data = r.multiline_raw()
        # RFC 1939 §7: the size is exactly what RETR sends, CRLF line
        # ends, before byte-stuffing; none needed here
        assert len(data) == size
        assert data == crlf(m)
    r.cmd("QUIT")


def test_retr_dot_stuffing_and_lines(pop3):
    body = (b"Subject: dots\n\n.\n..\n.leading dot\nmiddle . dot\n"
            b"trailing.\n\n.\nlast\n")
    pop3.deliver(body)
    stored = pop3.stored()[0]
    r = pop3.raw()
    r.login()
    reply = r.cmd("RETR 1")
    assert reply == "+OK %d octets" % len(crlf(stored))
    raw = r.multiline_raw()
    # on the wire: every line starting with "." has one more
    expected = b"".join(
        (b"." + line if line.startswith(b".") else line) + b"\r\n"
        for line in stored.split(b"\n")[:-1])
    assert raw == expected
    # unstuffed it is the message, and its size is the announced one
    assert len(crlf(stored)) == int(reply.split()[1])
    r.cmd("QUIT")


def test_top(pop3):
    msg = (b"Subject: top\nX-Other: a\n\nbody 1\n.body 2\nbody 3\n"
           b"body 4\n")
    pop3.deliver(msg)
    stored = pop3.stored()[0]
    head, _, body = stored.partition(b"\n\n")
    r = pop3.raw()
    r.login()
    assert r.cmd("TOP 1 0").startswith("+OK")
    assert r.multiline() == head.split(b"\n") + [b""]
    assert r.cmd("TOP 1 2").startswith("+OK")
    assert r.multiline() == head.split(b"\n") + [b"", b"body 1",
                                                 b".body 2"]
    assert r.cmd("TOP 1 100").startswith("+OK")
    assert r.multiline() == stored.split(b"\n")[:-1]
    assert r.cmd("TOP 1 18446744073709551615").startswith("+OK")
    assert r.multiline() == stored.split(b"\n")[:-1]
    # errors
    assert r.cmd("TOP 1") .startswith("-ERR")
    assert r.cmd("TOP 2 1") == "-ERR No such message"
    assert r.cmd("TOP 1 x").startswith("-ERR")
    r.cmd("QUIT")


def test_top_does_not_mark_seen_and_retr_does(pop3):
    pop3.deliver(make_message(1))
    pop3.deliver(make_message(2))
    c = pop3.login()
    c.top(1, 0)
    c.retr(2)
    c.quit()
    names = [p.name for p in pop3.roost.message_files(USER)]
    flags = [n.rsplit(":2,", 1)[1] if ":2," in n else "" for n in names]
    assert "S" not in flags[0]
    assert "S" in flags[1]


def test_mark_seen_off(pop3):
    pop3.restart({"pop3": {"mark_seen_on_retr": "no"}})
    pop3.deliver(make_message(1))
    c = pop3.login()
    c.retr(1)
    c.quit()
    name = pop3.roost.message_files(USER)[0].name
    assert "S" not in name.partition(":2,")[2]


def test_uidl(pop3):
    setup_messages(pop3)
    files = pop3.roost.message_files(USER)
    bases = [f.name.split(":")[0] for f in files]
    r = pop3.raw()
    r.login()
    assert r.cmd("UIDL").startswith("+OK")
    listing = r.multiline()
    uids = [line.split(b" ", 1)[1].decode() for line in listing]
    assert [line.split(b" ")[0] for line in listing] == [b"1", b"2", b"3"]
    assert sorted(uids) == sorted(bases)
    assert len(set(uids)) == 3
    for u in uids:
        assert 1 <= len(u) <= 70
        assert all(0x21 <= ord(ch) <= 0x7E for ch in u)
    assert r.cmd("UIDL 2") == "+OK 2 %s" % uids[1]
    assert r.cmd("UIDL 4") == "-ERR No such message"
    assert r.cmd("UIDL 0") == "-ERR No such message"
    r.cmd("QUIT")


def test_dele_rset_and_errors(pop3):
    stored = setup_messages(pop3)
    sizes = [len(crlf(m)) for m in stored]
    r = pop3.raw()
    r.login()
    assert r.cmd("DELE 2") == "+OK Message 2 deleted"
    assert r.cmd("DELE 2") == "-ERR Message 2 already deleted"
    assert r.cmd("RETR 2") == "-ERR Message 2 already deleted"
    assert r.cmd("TOP 2 1") == "-ERR Message 2 already deleted"
    assert r.cmd("LIST 2") == "-ERR Message 2 already deleted"
    assert r.cmd("UIDL 2") == "-ERR Message 2 already deleted"
    assert r.cmd("STAT") == "+OK 2 %d" % (sizes[0] + sizes[2])
    assert r.cmd("LIST").startswith("+OK 2 messages")
    assert r.multiline() == [b"1 %d" % sizes[0], b"3 %d" % sizes[2]]
    assert r.cmd("UIDL").startswith("+OK")
    assert [x.split()[0] for x in r.multiline()] == [b"1", b"3"]
    assert r.cmd("RSET") == "+OK Maildrop has 3 messages (%d octets)" % \
        sum(sizes)
    assert r.cmd("STAT") == "+OK 3 %d" % sum(sizes)
    assert r.cmd("DELE 0") == "-ERR No such message"
    assert r.cmd("DELE 4") == "-ERR No such message"
    assert r.cmd("DELE 4294967295") == "-ERR No such message"
    assert r.cmd("DELE").startswith("-ERR")
    assert r.cmd("DELE x").startswith("-ERR")
    assert r.cmd("RETR 99") == "-ERR No such message"
    assert r.cmd("NOOP") == "+OK"
    assert r.cmd("NOOP x").startswith("-ERR")
    assert r.cmd("STAT x").startswith("-ERR")
    assert r.cmd("QUIT") == "+OK Bye"
    assert len(pop3.stored()) == 3


def test_capa_after_login(pop3):
    r = pop3.raw()
    r.login()
    assert r.cmd("CAPA").startswith("+OK")
    capa = [x.decode() for x in r.multiline()]
    assert capa == ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE",
                    "PIPELINING", "IMPLEMENTATION roost"]
    r.cmd("QUIT")


def test_empty_maildrop(pop3):
    r = pop3.raw()
    r.login()
    assert r.cmd("STAT") == "+OK 0 0"
    assert r.cmd("LIST") == "+OK 0 messages (0 octets)"
    assert r.multiline() == []
    assert r.cmd("UIDL").startswith("+OK")
    assert r.multiline() == []
    assert r.cmd("RETR 1") == "-ERR No such message"
    assert r.cmd("QUIT") == "+OK Bye"


def test_pipelining(pop3):
    stored = setup_messages(pop3)
    r = pop3.raw()
    # everything in one write: each command answered in order
    r.send("USER %s\r\nPASS pw\r\nSTAT\r\nLIST\r\nRETR 1\r\nUIDL 1\r\n"
           "DELE 1\r\nTOP 2 0\r\nFOO\r\nRETR 3\r\nNOOP\r\nQUIT\r\n" % USER)
    assert r.line() == "+OK"
    assert r.line().startswith("+OK Logged in")
    assert r.line().startswith("+OK 3 ")
    assert r.line().startswith("+OK 3 messages")
    assert len(r.multiline()) == 3
    assert r.line().startswith("+OK %d octets" % len(crlf(stored[0])))
    assert r.multiline_raw() == crlf(stored[0])
    assert r.line().startswith("+OK 1 ")
    assert r.line() == "+OK Message 1 deleted"
    assert r.line().startswith("+OK")
    r.multiline()
    assert r.line() == "-ERR Unknown command"
    assert r.line().startswith("+OK")
    assert r.multiline_raw() == crlf(stored[2])
    assert r.line() == "+OK"
    assert r.line() == "+OK Bye"
    assert r.closed()
    assert len(pop3.stored()) == 2


def test_pipelining_byte_at_a_time(pop3):
    setup_messages(pop3, 1)
    r = pop3.raw()
    for ch in "USER %s\r\nPASS pw\r\nSTAT\r\nQUIT\r\n" % USER:
        r.send(ch)
    assert r.line() == "+OK"
    assert r.line().startswith("+OK Logged in")
    assert r.line().startswith("+OK 1 ")
    assert r.line() == "+OK Bye"


def test_large_message_streamed(pop3):
    # bigger than the output cap: RETR must stream it, and a client
    # that reads slowly must still get every octet
    line = b"x" * 998 + b"\n"
    big = b"Subject: big\n\n" + line * 3000 + b".starts with a dot\n"
    pop3.deliver(big)
    stored = pop3.stored()[0]
    r = pop3.raw()
    r.login()
    r.send("RETR 1\r\nNOOP\r\n")
    time.sleep(0.5)
    assert r.line() == "+OK %d octets" % len(crlf(stored))
    data = r.multiline_raw()
    assert data == crlf(stored).replace(b"\r\n.starts", b"\r\n..starts")
    assert r.line() == "+OK"
    r.cmd("QUIT")
    assert "event=disconnect" in pop3.log()


def test_message_without_final_newline(pop3):
    pop3.deliver(b"Subject: no newline\n\nlast line")
    stored = pop3.stored()[0]
    r = pop3.raw()
    r.login()
    assert r.cmd("RETR 1").startswith("+OK")
    lines = r.multiline()
    assert lines[-3:] == [b"Subject: no newline", b"", b"last line"]
    assert b"\n".join(lines) == stored.rstrip(b"\n")
    r.cmd("QUIT")


def big_message():
    line = b"y" * 500 + b"\n"
    return b"Subject: big\n\n" + line * 4000 + b".dot\n" + line * 100


def test_large_message_over_tls(pop3):
    # the TLS filter (STLS) and the TLS socket (995) both stream with
    # back-pressure and lose nothing at the end
    pop3.deliver(big_message())
    stored = pop3.stored()[0]
    for how in ("stls", "implicit"):
        if how == "stls":
            c = pop3.client()
            from pop3_helpers import client_ssl_context
            c.stls(context=client_ssl_context(pop3.tls))
        else:
            c = pop3.ssl_client()
        c.user(USER)
        c.pass_("pw")
        resp, lines, octets = c.retr(1)
        assert b"\n".join(lines) + b"\n" == stored
        assert resp == b"+OK %d octets" % len(crlf(stored))
        assert c.quit() == b"+OK Bye"


def test_sigterm_finishes_retr_first(pop3):
    # bigger than what the kernel buffers and our output cap hold, so the
    # server is still sending when SIGTERM arrives
    line = b"z" * 998 + b"\n"
    pop3.deliver(b"Subject: huge\n\n" + line * 9000 + b".dot\n")
    stored = pop3.stored()[0]
    from pop3_helpers import Raw
    r = Raw(pop3.port, rcvbuf=65536)
    r.login()
    r.send("RETR 1\r\n")
    time.sleep(0.5)
    pop3.daemon.proc.send_signal(__import__("signal").SIGTERM)
    time.sleep(0.3)
    assert r.line().startswith("+OK")
    assert r.multiline_raw() == crlf(stored).replace(b"\r\n.dot",
                                                     b"\r\n..dot")
    # then the session is closed, and nothing was removed
    assert r.closed()
    assert pop3.daemon.proc.wait(10) == 0
    assert len(pop3.stored()) == 1
    log = pop3.log()
    assert log.index("worker stopping") < log.index("retrieved=1")
