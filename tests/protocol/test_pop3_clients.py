"""Real POP3 clients from Debian against roost-pop3d: fetchmail (keep and
no-keep, over TLS), getmail6 into a Maildir, and curl pop3:// and
pop3s:// (LIST and RETR).  Each test checks that the retrieved bytes are
the delivered messages."""
import os
import pathlib
import shutil
import stat
import subprocess
import tempfile

import pytest

from pop3_helpers import *  # noqa: F401,F403
from pop3_helpers import PASSWORD, USER, make_message


def need(program):
    if shutil.which(program) is None:
        pytest.skip("%s not installed (scripts/deps.sh test)" % program)


@pytest.fixture
def workdir():
    d = pathlib.Path(tempfile.mkdtemp(prefix="roost-client-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def maildir_messages(path):
    files = []
    for sub in ("new", "cur"):
        if (path / sub).is_dir():
            files += [p for p in (path / sub).iterdir()]
    return sorted(p.read_bytes() for p in files)


def deliver_some(pop3, n=3):
    for i in range(n):
        body = b"" if i else b".a line with a leading dot\n..two\n"
        pop3.deliver(make_message(i, body_lines=i + 1, extra=body))
    return sorted(pop3.stored())


# ---- fetchmail ----

STORE_SCRIPT = """#!/bin/sh
# a minimal Maildir delivery for fetchmail's mda
set -e
d="$1"
n=$(date +%s%N).$$
cat > "$d/tmp/$n"
mv "$d/tmp/$n" "$d/new/$n"
"""


def run_fetchmail(pop3, workdir, keep):
    md = workdir / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    script = workdir / "store.sh"
    script.write_text(STORE_SCRIPT)
    script.chmod(0o755)
    rc = workdir / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        "set invisible\n"
        "poll 127.0.0.1 with proto POP3 port %d uidl\n"
        "  user \"%s\" there with password \"%s\" is \"%s\" here\n"
        "  ssl sslcertck sslcertfile \"%s\" sslcommonname localhost\n"
        "  %s\n"
        "  mda \"%s %s\"\n" % (
            pop3.tls_port, USER, PASSWORD,
            os.environ.get("USER", "root"), pop3.tls["ca"],
            "keep" if keep else "nokeep", script, md))
    rc.chmod(stat.S_IRUSR | stat.S_IWUSR)
    env = dict(os.environ, HOME=str(workdir), FETCHMAILHOME=str(workdir))
    r = subprocess.run(["fetchmail", "-f", str(rc), "-i",
                        str(workdir / "fetchids"), "--nodetach", "-v"],
                       env=env, capture_output=True, text=True, timeout=60)
    return r, md


def test_fetchmail_keep_over_tls(pop3, workdir):
    need("fetchmail")
    delivered = deliver_some(pop3)
    r, md = run_fetchmail(pop3, workdir, keep=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert maildir_messages(md) == delivered
    # keep: still on the server, and UIDL tells fetchmail it has them
    assert sorted(pop3.stored()) == delivered
    r, md = run_fetchmail(pop3, workdir, keep=True)
    assert r.returncode == 1, r.stdout + r.stderr   # 1: no new mail
    assert maildir_messages(md) == delivered


def test_fetchmail_nokeep_over_tls(pop3, workdir):
    need("fetchmail")
    delivered = deliver_some(pop3)
    r, md = run_fetchmail(pop3, workdir, keep=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert maildir_messages(md) == delivered
    assert pop3.stored() == []


# ---- getmail6 ----

def run_getmail(pop3, workdir, delete):
    md = workdir / "Maildir"
    for sub in ("tmp", "new", "cur"):
        (md / sub).mkdir(parents=True, exist_ok=True)
    gdir = workdir / "getmail"
    gdir.mkdir(exist_ok=True)
    (gdir / "getmailrc").write_text(
        "[retriever]\n"
        "type = SimplePOP3SSLRetriever\n"
        "server = 127.0.0.1\n"
        "port = %d\n"
        "username = %s\n"
        "password = %s\n"
        "ca_certs = %s\n"
        "ssl_cert_hostname = localhost\n"
        "\n"
        "[destination]\n"
        "type = Maildir\n"
        "path = %s/\n"
        "\n"
        "[options]\n"
        "verbose = 0\n"
        "read_all = false\n"
        "delete = %s\n"
        "delivered_to = false\n"
        "received = false\n" % (pop3.tls_port, USER, PASSWORD,
                                pop3.tls["ca"], md,
                                "true" if delete else "false"))
    cmd = ["getmail", "--getmaildir", str(gdir), "--rcfile", "getmailrc"]
    if os.geteuid() == 0:
        # getmail refuses to deliver as root: run it as nobody
        subprocess.run(["chown", "-R", "nobody", str(workdir)], check=True)
        cmd = ["runuser", "-u", "nobody", "--"] + cmd
    r = subprocess.run(cmd,
                       env=dict(os.environ, HOME=str(workdir)),
                       capture_output=True, text=True, timeout=60)
    return r, md


def test_getmail_into_maildir(pop3, workdir):
    need("getmail")
    delivered = deliver_some(pop3)
    r, md = run_getmail(pop3, workdir, delete=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert maildir_messages(md) == delivered, r.stdout + r.stderr
    assert sorted(pop3.stored()) == delivered
    # getmail remembers the UIDLs it has seen: the next run fetches only
    # the new message (no duplicates in the Maildir), then deletes what
    # it has delivered, old and new
    pop3.deliver(make_message(99))
    new = [m for m in pop3.stored() if m not in delivered]
    assert len(new) == 1
    r, md = run_getmail(pop3, workdir, delete=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert maildir_messages(md) == sorted(delivered + new)
    assert pop3.stored() == []


# ---- curl ----

def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args],
                          capture_output=True, timeout=60)


def crlf(data):
    return data.replace(b"\n", b"\r\n")


def test_curl_pop3_list_and_retr(pop3):
    need("curl")
    deliver_some(pop3)
    stored = pop3.stored()
    base = "pop3://127.0.0.1:%d/" % pop3.port
    r = curl("-u", "%s:%s" % (USER, PASSWORD), base)
    assert r.returncode == 0, r.stderr
    listing = r.stdout.decode().splitlines()
    sizes = [int(x.split()[1]) for x in listing]
    assert len(sizes) == len(stored)
    # curl RETR n: the message with CRLF, byte-stuffing removed
    got = []
    for i in range(1, len(sizes) + 1):
        r = curl("-u", "%s:%s" % (USER, PASSWORD), base + str(i))
        assert r.returncode == 0, r.stderr
        assert len(r.stdout) == sizes[i - 1]
        got.append(r.stdout)
    assert sorted(got) == sorted(crlf(m) for m in stored)


def test_curl_pop3s_list_and_retr(pop3):
    need("curl")
    deliver_some(pop3)
    stored = pop3.stored()
    base = "pop3s://localhost:%d/" % pop3.tls_port
    opts = ["--cacert", pop3.tls["ca"], "--resolve",
            "localhost:%d:127.0.0.1" % pop3.tls_port,
            "-u", "%s:%s" % (USER, PASSWORD)]
    r = curl(*opts, base)
    assert r.returncode == 0, r.stderr
    sizes = [int(x.split()[1]) for x in r.stdout.decode().splitlines()]
    got = []
    for i in range(1, len(sizes) + 1):
        r = curl(*opts, base + str(i))
        assert r.returncode == 0, r.stderr
        assert len(r.stdout) == sizes[i - 1]
        got.append(r.stdout)
    assert sorted(got) == sorted(crlf(m) for m in stored)


def test_curl_pop3_stls_required(pop3):
    need("curl")
    pop3.restart({"auth": {"allow_plaintext": "no"}})
    deliver_some(pop3, 1)
    stored = pop3.stored()
    base = "pop3://localhost:%d/1" % pop3.port
    opts = ["--cacert", pop3.tls["ca"], "--resolve",
            "localhost:%d:127.0.0.1" % pop3.port,
            "-u", "%s:%s" % (USER, PASSWORD)]
    # without TLS the login is refused
    r = curl(*opts, base)
    assert r.returncode != 0
    # with STLS it works
    r = curl("--ssl-reqd", *opts, base)
    assert r.returncode == 0, r.stderr
    assert r.stdout == crlf(stored[0])
