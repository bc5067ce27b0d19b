"""Never lose mail: a 250 (or exit 0) means the message is on disk, and
every doubt is a temporary failure that the MTA retries.

- kill -9 of roost-lmtpd in the middle of a load of 2,000 messages from 16
  connections that behave like an MTA (reconnect, retry what did not get
  250): every acknowledged message is there, acknowledged-once ones exactly
  once, and the index agrees with the files.
- a full disk (a 2 MB tmpfs as data_dir, root only): 4xx / exit 75, never a
  5xx, never a partial file, and delivery works again once there is room.
- a locked index or user database: 4xx / exit 75, then a retry gets 250.
"""
import json
import os
import poplib
import queue
import re
import subprocess
import threading
import time
import uuid

import pytest

from conftest import BIN, IS_ROOT, MAIL_USER, chown_mail
from helpers_mta import LmtpClient, LmtpError, SqliteLock, split_message, \
    wait_until

LOCK_USER = MAIL_USER if IS_ROOT else None
MSGID_RE = re.compile(rb"^Message-ID: <([^@>]+)@client\.test>", re.M | re.I)


def token_of(raw):
    m = MSGID_RE.search(raw)
    return m.group(1).decode() if m else None


def small_message(token, rcpt):
    body = "load message %s\nline two %s\n" % (token, token)
    head = ("From: <load@client.test>\nTo: <%s>\nSubject: load %s\n"
            "Message-ID: <%s@client.test>\n\n" % (rcpt, token, token))
    return (head + body).replace("\n", "\r\n").encode(), body.encode()


def index_check(roost, addr):
    r = roost.ctl("index", "check", addr, check=False)
    assert r.returncode == 0, "roostctl index check %s exited %d:\n%s%s" % (
        addr, r.returncode, r.stdout, r.stderr)


def files_by_token(roost, addr):
    """{token: [raw message, ...]} of addr's INBOX (new/ and cur/)."""
    out = {}
    if not roost.maildir(addr).exists():
        return out
    for raw in roost.messages(addr):
        out.setdefault(token_of(raw), []).append(raw)
    return out


def reply_class(code):
    return code // 100


# ----------------------------------------------------------- kill -9 ----

USERS = ["u1@example.test", "u2@example.test", "u3@example.test"]
TOTAL = 2000
CONNECTIONS = 16
KILL_AFTER = 500
LOAD_DEADLINE = 150     # seconds; only stops a hang


class Item:
    """One message and, per recipient, what the MTA knows about it."""

    def __init__(self, n, run):
        self.token = "t%s-%05d" % (run, n)
        self.rcpts = [USERS[n % 3]]
        if n % 7 == 0:
            self.rcpts.append(USERS[(n + 1) % 3])
        self.pending = list(self.rcpts)
        self.sent = {r: 0 for r in self.rcpts}    # times DATA was sent
        self.acked = {r: 0 for r in self.rcpts}   # 250 after DATA
        self.failed = []                          # 5xx replies
        self.message, self.body = small_message(self.token,
                                                ", ".join(self.rcpts))


class Load:
    def __init__(self, port):
        self.port = port
        self.run = uuid.uuid4().hex[:8]
        self.items = [Item(n, self.run) for n in range(TOTAL)]
        self.queue = queue.Queue()
        for i in range(TOTAL):
            self.queue.put(i)
        self.lock = threading.Lock()
        self.acked_total = 0
        self.done_items = 0
        self.errors = []
        self.connection_failures = 0
        self.temp_replies = 0
        self.deadline = time.monotonic() + LOAD_DEADLINE
        self.stop = threading.Event()

    def finished(self):
        with self.lock:
            return self.done_items == TOTAL

    def client(self):
        conn = None
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            try:
                idx = self.queue.get(timeout=0.2)
            except queue.Empty:
                if self.finished():
                    break
                continue
            item = self.items[idx]
            if conn is None:
                try:
                    conn = LmtpClient(self.port, timeout=60)
                    if conn.greeting[0] != 220 or conn.lhlo()[0] != 250:
                        raise LmtpError("greeting %r" % (conn.greeting,))
                except (OSError, LmtpError):
                    if conn is not None:
                        conn.close()
                    conn = None
                    with self.lock:
                        self.connection_failures += 1
                    self.queue.put(idx)
                    time.sleep(0.05)     # the daemon is restarting
                    continue
            if not self.deliver(conn, item):
                conn.close()
                conn = None
            with self.lock:
                again = bool(item.pending)
                if not again:
                    self.done_items += 1
            if again:
                self.queue.put(idx)
        if conn is not None:
            conn.quit()

    def deliver(self, conn, item):
        """One MTA attempt for the item's pending recipients; False when
        the connection is unusable."""
        def before_data(accepted):
            with self.lock:
                for r in accepted:
                    item.sent[r] += 1
        try:
            res = conn.transaction("load@client.test", list(item.pending),
                                   item.message, before_data)
        except (OSError, LmtpError):
            return False        # outcome unknown: retried
        with self.lock:
            replies = []
            if res["mail"][0] != 250:
                replies = [(r, res["mail"]) for r in item.pending]
            else:
                for r, rep in zip(item.pending, res["rcpt"]):
                    if rep[0] != 250:
                        replies.append((r, rep))
                replies += list(zip(res["accepted"], res["data"]))
            for r, (code, text) in replies:
                if code == 250:
                    item.acked[r] += 1
                    item.pending.remove(r)
                    self.acked_total += 1
                elif reply_class(code) == 4:
                    self.temp_replies += 1     # retried
                else:
                    item.failed.append((r, code, text))
                    item.pending.remove(r)
                    self.errors.append("%s to %s: %d %s" % (
                        item.token, r, code, text))
        return res["mail"][0] != 421


def test_kill_9_under_load_loses_nothing(roost):
    for u in USERS:
        roost.add_user(u)
    lmtpd = roost.start_lmtpd()
    load = Load(lmtpd.port)
    threads = [threading.Thread(target=load.client, daemon=True)
               for _ in range(CONNECTIONS)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        wait_until(lambda: load.acked_total >= KILL_AFTER or
                   load.finished(), 120, 0.01, "%d acknowledged messages"
                   % KILL_AFTER)
        assert not load.finished(), "the load ended before the kill"
        acked_at_kill = load.acked_total
        lmtpd.kill()
        lmtpd.start()
        wait_until(lambda: load.finished() or
                   time.monotonic() > load.deadline, LOAD_DEADLINE + 30,
                   0.1, "the load to finish")
    finally:
        load.stop.set()
        for t in threads:
            t.join(90)
    elapsed = time.monotonic() - started
    print("load: %d messages in %.1f s, killed after %d acks; %d "
          "connection failures, %d temporary replies" % (
              TOTAL, elapsed, acked_at_kill, load.connection_failures,
              load.temp_replies))
    assert not load.errors, "permanent failures: %s" % load.errors[:10]
    not_done = [i.token for i in load.items if i.pending]
    assert not not_done, "%d messages never got 250 (e.g. %s)\n%s" % (
        len(not_done), not_done[:5], lmtpd.log_text()[-3000:])
    assert lmtpd.stop() == 0

    problems = []
    for u in USERS:
        stored = files_by_token(roost, u)
        expected = {i.token: i for i in load.items if u in i.rcpts}
        for tok, raws in stored.items():
            item = expected.get(tok)
            if item is None:
                problems.append("%s: unexpected file with token %r" % (u,
                                                                     tok))
                continue
            for raw in raws:
                if split_message(raw)[1] != item.body:
                    problems.append("%s: %s incomplete: %r" % (u, tok,
                                                               raw[-200:]))
        for tok, item in expected.items():
            n = len(stored.get(tok, []))
            if item.acked[u] and n == 0:
                problems.append("%s: %s acknowledged but missing (LOST)" %
                                (u, tok))
            elif item.sent[u] == 1 and n != 1:
                problems.append("%s: %s sent once, stored %d times" %
                                (u, tok, n))
            elif n > item.sent[u]:
                problems.append("%s: %s sent %d times, stored %d times" %
                                (u, tok, item.sent[u], n))
    assert not problems, "%d problems (files per user: %s):\n%s" % (
        len(problems), {u: len(roost.message_files(u)) for u in USERS},
        "\n".join(problems[:30]))

    # The index: a file linked into new/ when the daemon died, before its
    # index row was committed, is not indexed until the next sync
    # (DESIGN.md, Storage).  Such a file can only come from an attempt
    # that never got its 250; every acknowledged copy must be indexed.
    orphans = 0
    for u in USERS:
        r = roost.ctl("--json", "index", "check", u, check=False)
        assert r.returncode in (0, 1), r.stderr
        doc = json.loads(r.stdout)
        expected = {i.token: i for i in load.items if u in i.rcpts}
        unindexed = {}
        for d in doc["differences"]:
            if d["problem"] != "file-not-indexed":
                problems.append("%s: index: %s" % (u, d))
                continue
            tok = token_of((roost.maildir(u) / d["detail"]).read_bytes())
            unindexed[tok] = unindexed.get(tok, 0) + 1
        orphans += sum(unindexed.values())
        for tok, n in unindexed.items():
            item = expected[tok]
            if n > item.sent[u] - item.acked[u]:
                problems.append(
                    "%s: %s: %d copies not indexed, but only %d of its %d "
                    "attempts went unacknowledged" % (
                        u, tok, n, item.sent[u] - item.acked[u],
                        item.sent[u]))
    assert not problems, "%d problems:\n%s" % (len(problems),
                                               "\n".join(problems[:30]))
    print("in flight at the kill: %d recipients; %d files left unindexed" % (
        sum(i.sent[u] - i.acked[u] for i in load.items for u in i.rcpts),
        orphans))

    # After a sync the index and the files agree exactly.
    for u in USERS:
        roost.ctl("index", "sync", u)
        index_check(roost, u)
    # A POP3 login syncs too, and then sees every file.
    if (BIN / "roost-pop3d").exists():
        roost.write_config({"pop3": {"listen_tls": ""},
                            "auth": {"allow_plaintext": "loopback"}})
        pop3d = roost.start_pop3d()
        for u in USERS:
            p = poplib.POP3("127.0.0.1", pop3d.port, timeout=60)
            try:
                p.user(u)
                p.pass_("pw")
                count, _ = p.stat()
            finally:
                p.quit()
            assert count == len(roost.message_files(u))
        assert pop3d.stop() == 0
        for u in USERS:
            index_check(roost, u)


# --------------------------------------------------------- disk full ----

def big_message(token, size=100 * 1024):
    """~size bytes; every line names the token and its number, so any
    truncation or mix-up shows."""
    lines = []
    n = 0
    total = 0
    while total < size:
        line = "%s line %06d %s\n" % (token, n, "x" * 40)
        lines.append(line)
        total += len(line)
        n += 1
    body = "".join(lines)
    head = ("From: <big@client.test>\nTo: <full@example.test>\n"
            "Subject: big %s\nMessage-ID: <%s@client.test>\n\n" % (token,
                                                                  token))
    return (head + body).replace("\n", "\r\n").encode(), body.encode()


def fill(path):
    """Writes path until the file system is full (ENOSPC)."""
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, chunk[:size])
                except OSError:
                    break
    finally:
        os.close(fd)


def leave_free(mnt, filler, nbytes):
    """Fills the file system with `filler`, then gives back nbytes
    (rounded up to pages)."""
    try:
        os.unlink(filler)
    except FileNotFoundError:
        pass
    fill(filler)
    size = os.path.getsize(filler)
    page = os.statvfs(mnt).f_frsize
    give = -(-max(nbytes, 0) // page) * page
    assert size >= give, "not enough room on the test file system"
    os.truncate(filler, size - give)
    st = os.statvfs(mnt)
    assert st.f_bavail * st.f_frsize == give


def lmtp_attempt(port, addr, message, sender="big@client.test"):
    """One transaction on a fresh connection: (stage, code, text) of the
    first failure, or ("done", 250, text)."""
    with LmtpClient(port, timeout=60) as c:
        if c.greeting[0] != 220:
            return ("greeting",) + c.greeting
        rep = c.lhlo()
        if rep[0] != 250:
            return ("lhlo",) + rep
        res = c.transaction(sender, [addr], message)
        c.quit()
    if res["mail"][0] != 250:
        return ("mail",) + res["mail"]
    if res["rcpt"][0][0] != 250:
        return ("rcpt",) + res["rcpt"][0]
    return ("data" if res["data"][0][0] != 250 else "done",) + res["data"][0]


@pytest.mark.skipif(not IS_ROOT, reason="mounting a tmpfs needs root")
def test_disk_full_is_a_temporary_failure(roost):
    addr = "full@example.test"
    mnt = roost.base / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0755",
                    "tmpfs", str(mnt)], check=True)
    lmtpd = None
    try:
        chown_mail(mnt)
        roost.data_dir = mnt
        roost.write_config({"general": {"data_dir": str(mnt)}})
        roost.add_user(addr)
        # Room kept aside, freed at the end so that the retry fits (and
        # partly before the near-full sweep, which also has to hold the
        # index's WAL between checkpoints).
        with open(mnt / "ballast", "wb") as f:
            f.write(b"\0" * 1536 * 1024)
        lmtpd = roost.start_lmtpd()

        sent = {}           # token -> body
        acked = []
        failures = []
        for n in range(60):    # 60 x 100 KB cannot fit in 3 MB
            token = "full%03d%s" % (n, uuid.uuid4().hex[:6])
            msg, body = big_message(token)
            sent[token] = body
            stage, code, text = lmtp_attempt(lmtpd.port, addr, msg)
            if code == 250 and stage == "done":
                acked.append(token)
                continue
            failures.append((token, stage, code, text))
            if len(failures) == 3:
                break
        assert failures, "60 messages of 100 KB accepted on a 3 MB disk"
        assert len(acked) >= 1, "nothing fit: %s" % failures
        first = failures[0]
        assert first[2] in (451, 452), (
            "first disk-full failure must be 451/452, got %s" % (first,))
        for tok, stage, code, text in failures:
            assert reply_class(code) == 4, (
                "disk full gave a permanent failure: %s %d %s" % (stage,
                                                                  code, text))
            assert re.match(r"4\.\d+\.\d+ ", text), (
                "no enhanced status code: %d %s" % (code, text))

        # Around the edge: leave just about the room one message needs, so
        # that the spool write, its fsync, the link or the index commit
        # runs out of space in turn.  Whatever fails must be a 4xx / 75
        # that leaves nothing behind; whatever succeeds must be whole.
        edge = []
        os.truncate(mnt / "ballast", 256 * 1024)
        for i, extra in enumerate(range(-8192, 122880, 8192)):
            tok = "edge%d%s" % (i, uuid.uuid4().hex[:6])
            msg, body = big_message(tok, 20 * 1024)
            sent[tok] = body
            leave_free(mnt, mnt / "filler", len(body) + 512 + extra)
            if i % 2 == 0:
                stage, code, text = lmtp_attempt(lmtpd.port, addr, msg)
                edge.append((extra, stage, code))
                assert reply_class(code) in (2, 4), (
                    "near-full disk: %s %d %s" % (stage, code, text))
                if code == 250:
                    acked.append(tok)
            else:
                r = roost.deliver(addr, msg.replace(b"\r\n", b"\n"))
                edge.append((extra, "deliver", r.returncode))
                assert r.returncode in (0, 75), (
                    "roost-deliver on a near-full disk exited %d: %s" % (
                        r.returncode, r.stderr))
                if r.returncode == 0:
                    acked.append(tok)
        print("edge of the disk:", edge)

        # Now completely full: the pipe delivery agent must say 75.
        fill(mnt / "filler")
        tok = "fullpipe" + uuid.uuid4().hex[:6]
        msg, body = big_message(tok)
        sent[tok] = body
        r = roost.deliver(addr, msg.replace(b"\r\n", b"\n"))
        assert r.returncode == 75, (
            "roost-deliver on a full disk exited %d: %s" % (r.returncode,
                                                             r.stderr))
        tok = "fulltiny" + uuid.uuid4().hex[:6]
        msg, body = small_message(tok, addr)
        sent[tok] = body
        stage, code, text = lmtp_attempt(lmtpd.port, addr, msg)
        assert reply_class(code) == 4, (
            "a small message on a full disk: %s %d %s" % (stage, code, text))

        # Nothing partial, nothing unacknowledged, every 250 there once.
        stored = files_by_token(roost, addr)
        for t, raws in stored.items():
            assert t in sent, "unknown file with token %r" % t
            for raw in raws:
                assert split_message(raw)[1] == sent[t], (
                    "partial file for %s in the Maildir (%d bytes)" % (
                        t, len(raw)))
        for t in acked:
            assert len(stored.get(t, [])) == 1, (
                "%s acknowledged, stored %d times" % (t, len(stored.get(t,
                                                                    []))))
        unacked = set(stored) - set(acked)
        assert not unacked, ("messages refused with 4xx were left in the "
                             "Maildir: %s" % sorted(unacked))

        # Room again: the MTA's retry succeeds.
        os.unlink(mnt / "filler")
        os.unlink(mnt / "ballast")
        retry_tok = failures[0][0]
        msg, body = big_message(retry_tok)
        stage, code, text = lmtp_attempt(lmtpd.port, addr, msg)
        assert (stage, code) == ("done", 250), (
            "retry after freeing space: %s %d %s" % (stage, code, text))
        assert len(files_by_token(roost, addr).get(retry_tok, [])) == 1
        r = roost.deliver(addr, small_message("pipeok" + uuid.uuid4().hex[:6],
                                              addr)[0])
        assert r.returncode == 0, r.stderr
        assert lmtpd.stop() == 0
        index_check(roost, addr)
    finally:
        for d in roost.daemons:
            if d.running():
                d.kill()
        if subprocess.run(["umount", str(mnt)]).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)])


# ------------------------------------------------------- locked db ----

def lmtp_attempt_while(port, addr, message, timeout=90):
    """lmtp_attempt in a thread; returns its result or fails after
    timeout (the daemon must answer while the lock is still held)."""
    out = []

    def run():
        try:
            out.append(lmtp_attempt(port, addr, message, "lock@client.test"))
        except Exception as e:   # reported below
            out.append(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    assert out, "no answer within %d s while the database was locked" % (
        timeout)
    if isinstance(out[0], Exception):
        raise AssertionError("connection failed while the database was "
                             "locked: %r" % out[0])
    return out[0]


def assert_temporary(result, what):
    stage, code, text = result
    assert stage != "done" and code != 250, (
        "%s: got 250 while the database was locked" % what)
    assert reply_class(code) == 4, "%s: %s %d %s (must be 4xx)" % (
        what, stage, code, text)
    assert re.match(r"4\.\d+\.\d+ ", text), (
        "%s: no enhanced status code: %d %s" % (what, code, text))


def count_token(roost, addr, token):
    return len(files_by_token(roost, addr).get(token, []))


def test_locked_index_lmtp(roost):
    addr = "locked@example.test"
    roost.add_user(addr)
    lmtpd = roost.start_lmtpd()
    # A first delivery creates the store and its index.
    warm, _ = small_message("warm" + uuid.uuid4().hex[:6], addr)
    assert lmtp_attempt(lmtpd.port, addr, warm)[:2] == ("done", 250)
    db = roost.maildir(addr) / "roost.db"
    assert db.exists()

    token = "lockidx" + uuid.uuid4().hex[:6]
    msg, body = small_message(token, addr)
    with SqliteLock(db, "writer", LOCK_USER):
        result = lmtp_attempt_while(lmtpd.port, addr, msg)
        assert_temporary(result, "LMTP with roost.db locked")
        assert count_token(roost, addr, token) == 0, (
            "refused message left in the Maildir")
    assert lmtp_attempt(lmtpd.port, addr, msg)[:2] == ("done", 250)
    assert count_token(roost, addr, token) == 1
    stored = files_by_token(roost, addr)[token][0]
    assert split_message(stored)[1] == body
    assert lmtpd.stop() == 0
    index_check(roost, addr)


def test_locked_user_db_lmtp(roost):
    addr = "locked@example.test"
    roost.add_user(addr)
    users_db = roost.data_dir / "users.db"
    assert users_db.exists()

    # 1. A writer holds users.db (roostctl changing a user).  WAL lets
    #    readers through, so RCPT may succeed; what must never happen is
    #    a permanent failure ("no such user") or a lost message.
    lmtpd = roost.start_lmtpd()
    token = "lockusr" + uuid.uuid4().hex[:6]
    msg, body = small_message(token, addr)
    with SqliteLock(users_db, "writer", LOCK_USER):
        stage, code, text = lmtp_attempt_while(lmtpd.port, addr, msg)
        assert reply_class(code) in (2, 4), (
            "users.db write-locked: %s %d %s" % (stage, code, text))
    if code != 250:
        assert_temporary((stage, code, text), "users.db write-locked")
        assert count_token(roost, addr, token) == 0
        assert lmtp_attempt(lmtpd.port, addr, msg)[:2] == ("done", 250)
    assert count_token(roost, addr, token) == 1
    assert lmtpd.stop() == 0

    # 2. users.db locked against readers too, while the daemon starts and
    #    while the MTA connects: 4xx (421 at the greeting, or 451 at
    #    RCPT), then mail flows once the lock is gone.
    token = "lockusr2" + uuid.uuid4().hex[:6]
    msg, body = small_message(token, addr)
    with SqliteLock(users_db, "strong", LOCK_USER):
        lmtpd = roost.start_lmtpd()
        result = lmtp_attempt_while(lmtpd.port, addr, msg)
        assert_temporary(result, "LMTP with users.db locked")
        assert count_token(roost, addr, token) == 0
    stage, code, text = lmtp_attempt(lmtpd.port, addr, msg)
    assert (stage, code) == ("done", 250), (
        "after users.db was unlocked: %s %d %s\n%s" % (
            stage, code, text, lmtpd.log_text()[-2000:]))
    assert count_token(roost, addr, token) == 1
    assert lmtpd.stop() == 0
    index_check(roost, addr)


def test_locked_databases_roost_deliver(roost):
    addr = "locked@example.test"
    roost.add_user(addr)
    warm, _ = small_message("warm" + uuid.uuid4().hex[:6], addr)
    r = roost.deliver(addr, warm)
    assert r.returncode == 0, r.stderr
    db = roost.maildir(addr) / "roost.db"
    users_db = roost.data_dir / "users.db"

    token = "deliverlock" + uuid.uuid4().hex[:6]
    msg, body = small_message(token, addr)
    msg = msg.replace(b"\r\n", b"\n")
    with SqliteLock(db, "writer", LOCK_USER):
        r = roost.deliver(addr, msg)
        assert r.returncode == 75, (
            "roost-deliver with roost.db locked exited %d: %s" % (
                r.returncode, r.stderr))
        assert count_token(roost, addr, token) == 0
    with SqliteLock(users_db, "strong", LOCK_USER):
        r = roost.deliver(addr, msg)
        assert r.returncode == 75, (
            "roost-deliver with users.db locked exited %d: %s" % (
                r.returncode, r.stderr))
        assert count_token(roost, addr, token) == 0
    r = roost.deliver(addr, msg)
    assert r.returncode == 0, r.stderr
    assert count_token(roost, addr, token) == 1
    stored = files_by_token(roost, addr)[token][0]
    assert split_message(stored)[1] == body
    index_check(roost, addr)
