"""Shared fixtures and helpers for the roost-pop3d tests.

- `tls_files`: a throw-away CA and a server certificate for 127.0.0.1 /
  localhost, made once per test session with the openssl CLI.
- `pop3`: a roost instance with TLS configured, plaintext allowed on
  loopback (the dev config), a user u@example.test / "pw", and a running
  roost-pop3d.  Tests that need another config call `restart(extra)`.
- `Raw`: a line-level client on a plain socket for what poplib hides
  (pipelining, exact replies, bad input).

Import the fixtures into a test module with
`from pop3_helpers import *  # noqa: F401,F403`.
"""
import base64
import os
import pathlib
import poplib
import shutil
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import IS_ROOT, chown_mail

USER = "u@example.test"
PASSWORD = "pw"

__all__ = ["tls_files", "pop3", "Raw", "USER", "PASSWORD", "make_message",
           "write_maildir_messages", "client_ssl_context", "plain_login",
           "b64"]


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True,
                   capture_output=True)


@pytest.fixture(scope="session")
def tls_files():
    d = pathlib.Path(tempfile.mkdtemp(prefix="roost-tls-"))
    os.chmod(d, 0o755)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=roost test CA", "-keyout", "ca.key",
             "-out", "ca.pem",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
             "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
             "-extfile", "ext.cnf", "-out", "server.pem", cwd=d)
    for f in d.iterdir():
        os.chmod(f, 0o644)
    yield {"ca": str(d / "ca.pem"), "cert": str(d / "server.pem"),
           "key": str(d / "server.key"), "dir": str(d)}
    shutil.rmtree(d, ignore_errors=True)


def client_ssl_context(tls_files):
    ctx = ssl.create_default_context(cafile=tls_files["ca"])
    return ctx


class Pop3Instance:
    """A roost instance with roost-pop3d running."""

    def __init__(self, roost, tls_files):
        self.roost = roost
        self.tls = tls_files
        roost.write_config({
            "tls": {"cert": tls_files["cert"], "key": tls_files["key"]},
            "auth": {"allow_plaintext": "loopback", "failure_delay": "0"},
            "pop3": {"workers": "1"},
        })
        roost.add_user(USER, PASSWORD)
        self.daemon = roost.start_pop3d()
        self.wait_ready()

    def wait_ready(self):
        # The port listens before the workers exist; a greeting proves the
        # (single) worker is up.  Stopping a daemon whose worker is still
        # starting can lose the SIGTERM (see the note in the report on
        # common/server.c), so tests never do that.
        r = Raw(self.port)
        assert r.greeting.startswith("+OK")
        r.close()

    @property
    def port(self):
        return self.daemon.port

    @property
    def tls_port(self):
        return self.daemon.tls_port

    def restart(self, extra=None):
        if extra:
            self.roost.write_config(extra)
        self.daemon.restart()
        self.wait_ready()
        return self

    def deliver(self, message, address=USER):
        r = self.roost.deliver(address, message)
        assert r.returncode == 0, r.stderr
        return r

    def stored(self, address=USER):
        return self.roost.messages(address)

    def client(self):
        return poplib.POP3("127.0.0.1", self.port, timeout=20)

    def ssl_client(self):
        return poplib.POP3_SSL("127.0.0.1", self.tls_port, timeout=20,
                               context=client_ssl_context(self.tls))

    def login(self, user=USER, password=PASSWORD):
        c = self.client()
        c.user(user)
        c.pass_(password)
        return c

    def raw(self):
        return Raw(self.port)

    def log(self):
        return self.daemon.log_text()


@pytest.fixture
def pop3(roost, tls_files):
    return Pop3Instance(roost, tls_files)


def plain_login(p):
    return p.login()


def make_message(i, body_lines=3, extra=b""):
    """A message with LF line ends, as roost stores it."""
    lines = [b"From: sender@example.org", b"To: " + USER.encode(),
             b"Subject: message %d" % i, b"Message-ID: <m%d@example.org>" % i,
             b""]
    lines += [b"line %d of message %d" % (k, i) for k in range(body_lines)]
    return b"\n".join(lines) + b"\n" + extra


def write_maildir_messages(roost, address, messages):
    """Writes message files straight into new/ (fast), named as roost
    names them; the next mailbox open or `index rebuild` indexes them."""
    md = roost.maildir(address)
    new = md / "new"
    new.mkdir(parents=True, exist_ok=True)
    now = int(time.time())
    names = []
    for n, data in enumerate(messages):
        assert b"\r" not in data
        name = "%d.M%06dP%dQ%d.roosttest,S=%d,W=%d" % (
            now, n % 1000000, os.getpid(), n, len(data),
            len(data) + data.count(b"\n"))
        path = new / name
        path.write_bytes(data)
        chown_mail(path)
        names.append(name)
    return names


class Raw:
    """A POP3 client at the level of lines."""

    def __init__(self, port, host="127.0.0.1", rcvbuf=None):
        if rcvbuf is None:
            self.sock = socket.create_connection((host, port), timeout=20)
        else:
            # a small receive window, set before connecting so that it
            # bounds the TCP window: the server cannot push far ahead
            self.sock = socket.socket()
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                 rcvbuf)
            self.sock.settimeout(20)
            self.sock.connect((host, port))
        self.f = self.sock.makefile("rb")
        self.greeting = self.line()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.line()

    def line(self):
        line = self.f.readline(8192)
        if not line:
            raise EOFError("connection closed")
        assert line.endswith(b"\r\n"), line
        return line[:-2].decode("utf-8", "replace")

    def multiline(self):
        """The lines of a multi-line answer, unstuffed, up to '.'."""
        out = []
        while True:
            line = self.f.readline(1 << 20)
            if not line:
                raise EOFError("connection closed in a multi-line answer")
            assert line.endswith(b"\r\n"), line
            line = line[:-2]
            if line == b".":
                return out
            if line.startswith(b"."):
                line = line[1:]
            out.append(line)

    def multiline_raw(self):
        """The exact octets of a multi-line answer, before '.\\r\\n'."""
        parts = []
        while True:
            chunk = self.f.readline(1 << 20)
            if not chunk:
                raise EOFError("connection closed in a multi-line answer")
            # readline returns whole lines, so "." + CRLF on its own is
            # the terminator
            if chunk == b".\r\n":
                return b"".join(parts)
            parts.append(chunk)

    def login(self, user=USER, password=PASSWORD):
        assert self.cmd("USER " + user).startswith("+OK")
        r = self.cmd("PASS " + password)
        assert r.startswith("+OK"), r
        return r

    def closed(self, timeout=5):
        """True when the server closes the connection."""
        self.sock.settimeout(timeout)
        try:
            return self.f.read(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        try:
            self.f.close()
            self.sock.close()
        except OSError:
            pass
