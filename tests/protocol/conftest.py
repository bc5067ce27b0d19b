"""Shared fixtures for protocol tests: real daemons on real sockets.

Each test gets a private roost instance: its own directory, config, data
and loopback ports.  As root (CI), files belong to the system user
`roost`, created here if missing, as the daemons drop privileges to it.
"""
import os
import pathlib
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("ROOST_BIN", REPO / "build" / "bin"))
IS_ROOT = os.geteuid() == 0
# Set by `make check-protocol-asan`: the daemons are ASan/UBSan builds.
SANITIZED = bool(os.environ.get("ROOST_SANITIZED"))
MAIL_USER = "roost"


def ensure_mail_user():
    if not IS_ROOT:
        return
    try:
        pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", MAIL_USER],
                       check=True)


def chown_mail(path):
    if IS_ROOT:
        pw = pwd.getpwnam(MAIL_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=15.0, host="127.0.0.1"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("daemon exited with %d" % proc.returncode)
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("daemon did not listen on port %d" % port)


class Daemon:
    """A roost daemon started from the instance's config."""

    def __init__(self, roost, program, port, log_name):
        self.roost = roost
        self.program = program
        self.port = port
        self.log_path = roost.base / log_name
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(BIN / self.program), "-c", str(self.roost.conf), "-f"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        wait_port(self.port, self.proc)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=20):
        """SIGTERM, then wait; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("%s ignored SIGTERM" % self.program)
        self.log.close()
        return self.proc.returncode

    def kill(self):
        """SIGKILL the master and its workers, as a crash would.

        The master goes first so it cannot fork replacements; then the
        workers it had; then we wait until every one is gone, so that a
        restart can bind the ports again."""
        if self.proc is None or self.proc.poll() is not None:
            return
        workers = self.children()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        workers += [p for p in self.children() if p not in workers]
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while any(os.path.exists("/proc/%d" % p) and
                  not _is_zombie(p) for p in workers):
            if time.monotonic() > deadline:
                raise AssertionError("workers survived SIGKILL: %s" % workers)
            time.sleep(0.02)
        self.log.close()

    def children(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)],
                             capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    def restart(self):
        if self.running():
            self.stop()
        return self.start()

    def log_text(self):
        return self.log_path.read_text(errors="replace")


class Roost:
    def __init__(self):
        ensure_mail_user()
        self.base = pathlib.Path(tempfile.mkdtemp(prefix="roost-test-"))
        os.chmod(self.base, 0o755)
        self.data_dir = self.base / "data"
        self.data_dir.mkdir()
        chown_mail(self.data_dir)
        self.conf = self.base / "roost.conf"
        self.lmtp_port = free_port()
        self.lmtp_sock = self.base / "lmtp.sock"
        self.pop3_port = free_port()
        self.pop3s_port = free_port()
        self.extra = {}
        self.daemons = []
        self.write_config({})

    def config_sections(self):
        general = {
            "data_dir": str(self.data_dir),
            "hostname": "roost.test",
            "log": "stderr",
            "log_level": "debug",
        }
        if IS_ROOT:
            general["mail_user"] = MAIL_USER
        cfg = {
            "general": general,
            "lmtp": {
                "listen": "127.0.0.1:%d, unix:%s" % (self.lmtp_port,
                                                     self.lmtp_sock),
                "workers": "2",
            },
            "pop3": {
                "listen": "127.0.0.1:%d" % self.pop3_port,
                "listen_tls": "127.0.0.1:%d" % self.pop3s_port,
            },
        }
        for section, keys in self.extra.items():
            cfg.setdefault(section, {}).update(keys)
        return cfg

    def write_config(self, extra):
        """Merges extra ({section: {key: value}}) over the config."""
        for section, keys in extra.items():
            self.extra.setdefault(section, {}).update(
                {k: str(v) for k, v in keys.items()})
        lines = []
        for section, keys in self.config_sections().items():
            lines.append("[%s]" % section)
            lines += ["%s = %s" % kv for kv in keys.items()]
            lines.append("")
        self.conf.write_text("\n".join(lines))

    # ---- programs ----

    def ctl(self, *args, input=None, check=True):
        r = subprocess.run([str(BIN / "roostctl"), "-c", str(self.conf),
                            *[str(a) for a in args]],
                           input=input, capture_output=True, text=True,
                           timeout=60)
        if check and r.returncode != 0:
            raise AssertionError("roostctl %s failed (%d): %s%s" % (
                " ".join(map(str, args)), r.returncode, r.stdout, r.stderr))
        return r

    def add_user(self, address, password="pw", quota=None):
        args = ["user", "add", address, "--password-stdin"]
        if quota is not None:
            args += ["--quota", str(quota)]
        return self.ctl(*args, input=password + "\n")

    def deliver(self, address, message, *args):
        """roost-deliver -d address; returns CompletedProcess (bytes)."""
        return subprocess.run(
            [str(BIN / "roost-deliver"), "-c", str(self.conf), "-d",
             address, *[str(a) for a in args]],
            input=message, capture_output=True, timeout=60)

    def start_lmtpd(self):
        d = Daemon(self, "roost-lmtpd", self.lmtp_port, "lmtpd.log")
        d.sock = str(self.lmtp_sock)
        self.daemons.append(d)
        return d.start()

    def start_pop3d(self):
        d = Daemon(self, "roost-pop3d", self.pop3_port, "pop3d.log")
        d.tls_port = self.pop3s_port
        self.daemons.append(d)
        return d.start()

    # ---- looking at the store ----

    def maildir(self, address, mailbox="INBOX"):
        local, domain = address.lower().rsplit("@", 1)
        user = self.data_dir / "mail" / domain / local
        if mailbox.upper() == "INBOX":
            return user
        parts = [p.replace("%", "%25").replace(".", "%2E")
                 .replace("~", "%7E") for p in mailbox.split("/")]
        return user / ("." + ".".join(parts))

    def message_files(self, address, mailbox="INBOX"):
        md = self.maildir(address, mailbox)
        files = []
        for sub in ("new", "cur"):
            d = md / sub
            if d.is_dir():
                files += [p for p in d.iterdir() if not p.name.startswith(".")]
        return sorted(files, key=lambda p: p.name)

    def messages(self, address, mailbox="INBOX"):
        return [p.read_bytes() for p in self.message_files(address, mailbox)]

    def close(self):
        for d in self.daemons:
            try:
                if d.running():
                    d.stop()
            except Exception:
                d.kill()
        if os.environ.get("ROOST_KEEP_TEST_DIRS"):
            return
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def roost():
    r = Roost()
    yield r
    r.close()
