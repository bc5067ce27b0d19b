"""Helpers for the MTA-facing tests (test_postfix.py, test_durability.py).

- LmtpClient: a small raw-socket LMTP client (RFC 2033) that reports every
  reply, including the one-per-recipient replies after DATA, which
  smtplib.LMTP does not.
- Postfix: a private Postfix instance (its own config, queue and data
  directories, log file and loopback port) run as a child process.
- wait_until(): polling with a generous deadline, so that slow machines do
  not fail tests (timeouts only stop hangs; they never decide a result).
"""
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import time

POSTFIX_SBIN = pathlib.Path("/usr/lib/postfix/sbin")
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
POSTQUEUE = shutil.which("postqueue") or "/usr/sbin/postqueue"


def wait_until(predicate, timeout=60.0, interval=0.1, what="condition"):
    """Polls predicate() until it returns a true value, which is returned.
    Raises AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" %
                                 (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------- LMTP ----

class LmtpError(Exception):
    """The connection failed or closed before a complete reply."""


class LmtpClient:
    """A blocking LMTP client on a TCP port or a unix socket path."""

    def __init__(self, port=None, path=None, host="127.0.0.1", timeout=60):
        if path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = str(path)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target = (host, port)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(target)
        except OSError:
            self.sock.close()
            raise
        self.buf = b""
        self.greeting = self.reply()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _line(self):
        while b"\n" not in self.buf:
            try:
                data = self.sock.recv(65536)
            except OSError as e:
                raise LmtpError("receive failed: %s" % e) from e
            if not data:
                raise LmtpError("connection closed by server")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """One (possibly multi-line) reply: (code, text of last line)."""
        lines = []
        while True:
            line = self._line()
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                break
        try:
            code = int(lines[-1][:3])
        except ValueError as e:
            raise LmtpError("bad reply %r" % lines) from e
        return code, "\n".join(l[4:] for l in lines)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        try:
            self.sock.sendall(data)
        except OSError as e:
            raise LmtpError("send failed: %s" % e) from e

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def lhlo(self, name="client.test"):
        return self.cmd("LHLO " + name)

    def transaction(self, sender, rcpts, message, before_data=None):
        """MAIL, RCPT for each, DATA.  Returns a dict: mail, rcpt (list of
        replies in order), accepted (recipients that got 250 to RCPT),
        data (one reply per accepted recipient, in the order of the
        accepted recipients; [] when DATA was not reached).
        message: bytes with CRLF or LF line ends, dot-stuffed here.
        before_data(accepted) is called just before the message is sent
        (from then on the server may store it)."""
        res = {"mail": None, "rcpt": [], "data": [], "accepted": []}
        res["mail"] = self.cmd("MAIL FROM:<%s>" % sender)
        if res["mail"][0] != 250:
            return res
        for r in rcpts:
            rep = self.cmd("RCPT TO:<%s>" % r)
            res["rcpt"].append(rep)
            if rep[0] == 250:
                res["accepted"].append(r)
        if not res["accepted"]:
            self.cmd("RSET")
            return res
        rep = self.cmd("DATA")
        if rep[0] != 354:
            res["data"] = [rep] * len(res["accepted"])
            return res
        if before_data is not None:
            before_data(res["accepted"])
        self.send(dot_stuff(message) + b".\r\n")
        res["data"] = [self.reply() for _ in res["accepted"]]
        return res

    def quit(self):
        try:
            self.cmd("QUIT")
        except LmtpError:
            pass
        self.close()


def dot_stuff(message):
    if isinstance(message, str):
        message = message.encode()
    lines = message.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = [b"." + l if l.startswith(b".") else l for l in lines]
    return b"\r\n".join(out) + b"\r\n"


def split_message(raw):
    """(headers as a list of (name-lower, value), body) of a stored
    message (LF or CRLF)."""
    raw = raw.replace(b"\r\n", b"\n")
    head, sep, body = raw.partition(b"\n\n")
    headers = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + b"\n" + line)
        elif b":" in line:
            name, value = line.split(b":", 1)
            headers.append((name.strip().lower().decode(), value.strip()))
    return headers, body


# ------------------------------------------------------------- Postfix ----

def postfix_available():
    return (POSTFIX_SBIN.joinpath("master").exists() and
            os.path.exists(POSTCONF) and os.path.exists(POSTFIX))


MASTER_CF = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{listen} inet  n       -       n       -       -       smtpd
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
smtp      unix  -       -       n       -       -       smtp
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Postfix:
    """A private Postfix: config in base/etc, queue in base/spool, data in
    base/lib, log in base/maillog, SMTP on 127.0.0.1:port.  Mail for
    example.test (virtual_mailbox_domains) goes to `transport`
    ("lmtp:unix:/path" or "lmtp:inet:127.0.0.1:port")."""

    def __init__(self, base, port, transport, domain="example.test"):
        self.base = pathlib.Path(base)
        self.port = port
        self.transport = transport
        self.domain = domain
        self.etc = self.base / "etc"
        self.spool = self.base / "spool"
        self.lib = self.base / "lib"
        self.maillog = self.base / "maillog"
        self.proc = None
        self.stderr_path = self.base / "master.stderr"

    def setup(self):
        for d in (self.base, self.etc, self.spool, self.lib):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)
        pw = pwd.getpwnam("postfix")
        os.chown(self.lib, pw.pw_uid, pw.pw_gid)
        os.chmod(self.lib, 0o700)
        (self.etc / "main.cf").write_text("")
        (self.etc / "master.cf").write_text(
            MASTER_CF.format(listen="127.0.0.1:%d" % self.port))
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.spool),
            "data_directory": str(self.lib),
            "mail_owner": "postfix",
            "myhostname": "mta.example.test",
            "mydomain": "example.test",
            "myorigin": "$myhostname",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "mydestination": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "alias_maps": "",
            "alias_database": "",
            "virtual_alias_maps": "",
            "virtual_mailbox_domains": self.domain,
            "virtual_mailbox_maps": "",
            "virtual_transport": self.transport,
            # roost decides who exists: Postfix must pass every recipient
            # on (with an empty virtual_mailbox_maps it would refuse).
            "smtpd_reject_unlisted_recipient": "no",
            "smtputf8_enable": "no",
            "biff": "no",
            "append_dot_mydomain": "no",
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.base),
            "smtp_dns_support_level": "disabled",
            "lmtp_host_lookup": "native",
            "smtpd_banner": "$myhostname ESMTP",
            # No retries while a test waits: deliver at once.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
            "lmtp_connect_timeout": "10s",
            "daemon_timeout": "120s",
        }
        subprocess.run([POSTCONF, "-c", str(self.etc), "-e"] +
                       ["%s=%s" % kv for kv in settings.items()],
                       check=True, capture_output=True, text=True)
        # Creates the queue directories with their owners and modes.
        r = subprocess.run([POSTFIX, "-c", str(self.etc), "check"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("postfix check failed (%d): %s%s" % (
                r.returncode, r.stdout, r.stderr))

    def env(self):
        env = dict(os.environ)
        env["MAIL_CONFIG"] = str(self.etc)
        return env

    def start(self):
        """Runs master in the foreground (-d) as our child, in its own
        process group (its services are in it too)."""
        self.stderr = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen(
            [str(POSTFIX_SBIN / "master"), "-c", str(self.etc), "-d"],
            stdin=subprocess.DEVNULL, stdout=self.stderr,
            stderr=self.stderr, env=self.env(), start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postfix master exited with %d: %s\n%s" % (
                    self.proc.returncode, self.stderr_path.read_text(
                        errors="replace"), self.log_text()))
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=2) as s:
                    s.settimeout(10)
                    if s.recv(512).startswith(b"220"):
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("postfix did not answer on port %d" % self.port)

    def stop(self):
        """SIGTERM to master (it stops its services), then wait; SIGKILL to
        the process group if that does not work."""
        if self.proc is None:
            return
        pid = self.proc.pid
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        # Its services share master's process group (pgid = master's pid).
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        # Give the killed services a moment to go (bounded; no result
        # depends on it).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.05)
        self.stderr.close()
        self.proc = None

    def log_text(self):
        try:
            return self.maillog.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def queue_listing(self):
        r = subprocess.run([POSTQUEUE, "-c", str(self.etc), "-p"],
                           capture_output=True, text=True, timeout=60,
                           env=self.env())
        return r.stdout + r.stderr

    def flush(self):
        subprocess.run([POSTQUEUE, "-c", str(self.etc), "-f"],
                       capture_output=True, timeout=60, env=self.env())


# --------------------------------------------------------- SQLite lock ----

LOCKER = r"""
import sqlite3, sys
path, mode = sys.argv[1], sys.argv[2]
c = sqlite3.connect(path, timeout=30, isolation_level=None)
if mode == "strong":
    # Without shared memory: even readers are kept out (WAL mode lets
    # readers past a plain exclusive transaction).
    c.execute("PRAGMA locking_mode = EXCLUSIVE")
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
c.execute("ROLLBACK")
c.close()
print("released", flush=True)
"""


class SqliteLock:
    """Holds an exclusive lock on an SQLite database from another process,
    as another program would, until release().  It runs as `user` (the
    mail user when root) so that any -wal/-shm file it creates belongs to
    the same user as roost's own.

    mode "writer": BEGIN EXCLUSIVE: in WAL mode this keeps out writers
    only.  mode "strong": PRAGMA locking_mode = EXCLUSIVE first: keeps out
    readers too; it can only be taken while no other connection has the
    database open."""

    def __init__(self, path, mode="writer", user=None, timeout=60):
        import sys
        kwargs = {}
        if user is not None:
            pw = pwd.getpwnam(user)
            kwargs = {"user": pw.pw_uid, "group": pw.pw_gid,
                      "extra_groups": []}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(path), mode],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd="/", **kwargs)
        import threading
        line = []
        t = threading.Thread(target=lambda: line.append(
            self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        if not line or line[0].strip() != "locked":
            self.proc.kill()
            out, err = self.proc.communicate()
            raise RuntimeError("could not lock %s (%s): %s" % (
                path, mode, err))

    def release(self):
        if self.proc is None:
            return
        try:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            out, err = self.proc.communicate(timeout=60)
            if "released" not in out:
                raise RuntimeError("lock holder failed: %s" % err)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
