"""roostctl: the administration CLI, run as a real program against a real
data directory (fixture `roost` from conftest.py)."""
import json
import os
import pwd
import subprocess
import sys
import time

import pytest

IS_ROOT = os.geteuid() == 0

EX_USAGE = 2
EX_TEMPFAIL = 75
EX_CONFIG = 78

MESSAGE = b"From: a@example.org\nSubject: hello\n\nbody\n"


def fails(r, code=None):
    """A refused command: non-zero exit and one 'roostctl: ...' line."""
    assert r.returncode != 0, r.stdout
    if code is not None:
        assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.startswith("roostctl: "), r.stderr
    return r.stderr


def ctl_json(roost, *args):
    r = roost.ctl("--json", *args)
    return json.loads(r.stdout)


def drop_file(roost, address, name, data=MESSAGE, mailbox="INBOX"):
    """Writes a message into new/ by hand, as another Maildir tool would."""
    path = roost.maildir(address, mailbox) / "new" / name
    path.write_bytes(data)
    if IS_ROOT:
        pw = pwd.getpwnam("roost")
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return path


# ---- users ----

def test_user_add_list_show_del(roost):
    roost.add_user("alice@example.com")
    roost.add_user("bob@example.com", quota="10M")

    out = roost.ctl("user", "list").stdout
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["ADDRESS", "ENABLED"]
    assert [l.split()[0] for l in lines[1:]] == ["alice@example.com",
                                                 "bob@example.com"]

    users = ctl_json(roost, "user", "list")
    assert [u["address"] for u in users] == ["alice@example.com",
                                             "bob@example.com"]
    assert users[0]["has_password"] is True
    assert users[0]["quota_bytes"] == -1
    assert users[1]["quota_bytes"] == 10 * 1024 * 1024

    # INBOX exists right after "user add".
    assert (roost.maildir("alice@example.com") / "new").is_dir()
    assert (roost.maildir("alice@example.com") / "cur").is_dir()

    show = ctl_json(roost, "user", "show", "alice@example.com")
    assert show["address"] == "alice@example.com"
    assert show["enabled"] is True
    assert show["usage"] == {"bytes": 0, "messages": 0}
    text = roost.ctl("user", "show", "alice@example.com").stdout
    assert "alice@example.com" in text and "usage" in text

    r = roost.ctl("user", "del", "alice@example.com")
    assert "deleted" in r.stdout
    assert not roost.maildir("alice@example.com").exists()
    users = ctl_json(roost, "user", "list")
    assert [u["address"] for u in users] == ["bob@example.com"]
    fails(roost.ctl("user", "del", "alice@example.com", check=False), 1)


def test_user_list_empty_and_json_after_command(roost):
    assert "no users" in roost.ctl("user", "list").stdout
    assert json.loads(roost.ctl("user", "list", "--json").stdout) == []
    assert json.loads(roost.ctl("alias", "list", "--json").stdout) == []


def test_user_add_twice_and_case(roost):
    roost.add_user("Carol@Example.COM")
    users = ctl_json(roost, "user", "list")
    assert [u["address"] for u in users] == ["carol@example.com"]
    err = fails(roost.ctl("user", "add", "CAROL@example.com", check=False),
                1)
    assert "exists" in err
    show = ctl_json(roost, "user", "show", "CAROL@EXAMPLE.com")
    assert show["address"] == "carol@example.com"


def test_localpart_case_sensitive(roost):
    roost.write_config({"auth": {"localpart_case": "sensitive"}})
    roost.add_user("Dave@Example.COM")
    users = ctl_json(roost, "user", "list")
    assert [u["address"] for u in users] == ["Dave@example.com"]
    fails(roost.ctl("user", "show", "dave@example.com", check=False), 1)
    roost.ctl("user", "show", "Dave@EXAMPLE.com")


def test_password_stdin(roost):
    # CRLF line end is stripped; an empty line is refused.
    roost.ctl("user", "add", "e@example.com", "--password-stdin",
              input="secret\r\n")
    assert ctl_json(roost, "user", "show", "e@example.com")["has_password"]
    fails(roost.ctl("user", "add", "f@example.com", "--password-stdin",
                    input="\n", check=False))
    fails(roost.ctl("user", "show", "f@example.com", check=False), 1)
    roost.ctl("user", "passwd", "e@example.com", "--password-stdin",
              input="other\n")
    fails(roost.ctl("user", "passwd", "e@example.com", input="x\n",
                    check=False), EX_USAGE)
    fails(roost.ctl("user", "passwd", "nobody@example.com",
                    "--password-stdin", input="x\n", check=False), 1)
    # A user without a password can exist (mail only).
    roost.ctl("user", "add", "g@example.com")
    assert not ctl_json(roost, "user", "show",
                        "g@example.com")["has_password"]


def test_import_hash(roost):
    roost.ctl("user", "add", "h@example.com")
    # A SHA512-CRYPT hash of "pw" with salt "saltsalt" (made by crypt(3)).
    crypt = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "saltsalt", "pw"],
        capture_output=True, text=True, check=True).stdout.strip()
    roost.ctl("user", "import-hash", "h@example.com", "--hash-stdin",
              input="{SHA512-CRYPT}" + crypt + "\n")
    assert ctl_json(roost, "user", "show", "h@example.com")["has_password"]
    err = fails(roost.ctl("user", "import-hash", "h@example.com",
                          "--hash-stdin", input="{PLAIN}pw\n",
                          check=False), 1)
    assert "hash" in err


def test_quota_options(roost):
    roost.ctl("user", "add", "q@example.com", "--quota", "2k",
              "--quota-messages", "100")
    u = ctl_json(roost, "user", "show", "q@example.com")
    assert (u["quota_bytes"], u["quota_messages"]) == (2048, 100)
    roost.ctl("user", "set", "q@example.com", "--quota", "unlimited")
    u = ctl_json(roost, "user", "show", "q@example.com")
    assert (u["quota_bytes"], u["quota_messages"]) == (0, 100)
    roost.ctl("user", "set", "q@example.com", "--quota-messages", "default")
    assert ctl_json(roost, "user", "show",
                    "q@example.com")["quota_messages"] == -1
    fails(roost.ctl("user", "add", "r@example.com", "--quota", "lots",
                    check=False), EX_USAGE)
    fails(roost.ctl("user", "add", "r@example.com", "--quota", check=False),
          EX_USAGE)
    fails(roost.ctl("user", "set", "q@example.com", check=False), EX_USAGE)


def test_user_disable(roost):
    roost.add_user("dis@example.com")
    roost.ctl("user", "set", "dis@example.com", "--disable")
    assert ctl_json(roost, "user", "show",
                    "dis@example.com")["enabled"] is False
    roost.ctl("user", "set", "dis@example.com", "--enable")
    assert ctl_json(roost, "user", "show", "dis@example.com")["enabled"]


# ---- aliases and domains ----

def test_alias_add_list_del(roost):
    for u in ("u1@example.com", "u2@example.com"):
        roost.add_user(u)
    roost.ctl("alias", "add", "team@example.com", "u1@example.com")
    roost.ctl("alias", "add", "Team@Example.com", "u2@example.com")
    err = fails(roost.ctl("alias", "add", "team@example.com",
                          "u2@example.com", check=False), 1)
    assert "target" in err
    fails(roost.ctl("alias", "add", "x@example.com", "ghost@example.com",
                    check=False), 1)
    fails(roost.ctl("alias", "add", "u1@example.com", "u2@example.com",
                    check=False), 1)

    assert ctl_json(roost, "alias", "list") == [
        {"alias": "team@example.com",
         "targets": ["u1@example.com", "u2@example.com"]}]
    text = roost.ctl("alias", "list").stdout
    assert "team@example.com" in text and "u2@example.com" in text

    roost.ctl("alias", "del", "team@example.com", "u1@example.com")
    assert ctl_json(roost, "alias", "list") == [
        {"alias": "team@example.com", "targets": ["u2@example.com"]}]
    roost.ctl("alias", "del", "team@example.com")
    assert ctl_json(roost, "alias", "list") == []
    fails(roost.ctl("alias", "del", "team@example.com", check=False), 1)


def test_user_del_removes_aliases(roost):
    roost.add_user("a1@example.com")
    roost.add_user("a2@example.com")
    roost.ctl("alias", "add", "all@example.com", "a1@example.com")
    roost.ctl("alias", "add", "all@example.com", "a2@example.com")
    roost.ctl("user", "del", "a1@example.com")
    assert ctl_json(roost, "alias", "list") == [
        {"alias": "all@example.com", "targets": ["a2@example.com"]}]


def test_domain_list(roost):
    roost.add_user("a@example.com")
    roost.add_user("b@example.org")
    roost.ctl("alias", "add", "c@example.org", "b@example.org")
    doms = ctl_json(roost, "domain", "list")
    assert doms == [{"domain": "example.com", "users": 1, "aliases": 0},
                    {"domain": "example.org", "users": 1, "aliases": 1}]
    fails(roost.ctl("domain", "del", "example.com", check=False), 1)
    roost.ctl("domain", "add", "example.net")
    roost.ctl("domain", "del", "example.net")
    fails(roost.ctl("domain", "add", "bad domain", check=False), EX_USAGE)


# ---- mailboxes ----

def test_mailbox_create_list_status_rename_delete(roost):
    a = "mb@example.com"
    roost.add_user(a)
    roost.ctl("mailbox", "create", a, "Archive/2026")
    roost.ctl("mailbox", "create", a, "Sent")
    names = [m["name"] for m in ctl_json(roost, "mailbox", "list", a)]
    assert names[0] == "INBOX"
    assert set(names) == {"INBOX", "Archive/2026", "Sent"}
    assert roost.maildir(a, "Archive/2026").is_dir()
    fails(roost.ctl("mailbox", "create", a, "Sent", check=False), 1)

    st = ctl_json(roost, "mailbox", "status", a, "Sent")
    assert st["name"] == "Sent"
    assert st["messages"] == 0 and st["uidnext"] >= 1
    assert st["uidvalidity"] > 0
    all_st = ctl_json(roost, "mailbox", "status", a)
    assert {m["name"] for m in all_st} == set(names)
    out = roost.ctl("mailbox", "status", a).stdout
    assert out.splitlines()[0].split() == [
        "MAILBOX", "MESSAGES", "UNSEEN", "UIDVALIDITY", "UIDNEXT", "BYTES"]

    # Children move with their parent.
    roost.ctl("mailbox", "create", a, "Archive")
    roost.ctl("mailbox", "rename", a, "Archive", "Old")
    roost.ctl("mailbox", "rename", a, "Sent", "Sent Items")
    names = {m["name"] for m in ctl_json(roost, "mailbox", "list", a)}
    assert "Sent Items" in names and "Sent" not in names
    assert {"Old", "Old/2026"} <= names
    assert not names & {"Archive", "Archive/2026"}
    fails(roost.ctl("mailbox", "rename", a, "Nope", "Other", check=False),
          1)
    fails(roost.ctl("mailbox", "rename", a, "Old", "Sent Items",
                    check=False), 1)
    roost.ctl("mailbox", "delete", a, "Sent Items")
    names = {m["name"] for m in ctl_json(roost, "mailbox", "list", a)}
    assert "Sent Items" not in names
    fails(roost.ctl("mailbox", "delete", a, "Sent Items", check=False), 1)
    fails(roost.ctl("mailbox", "delete", a, "INBOX", check=False), 1)
    fails(roost.ctl("mailbox", "status", a, "Nope", check=False), 1)
    fails(roost.ctl("mailbox", "create", a, "../escape", check=False),
          EX_USAGE)
    fails(roost.ctl("mailbox", "list", "ghost@example.com", check=False), 1)


def test_mailbox_json_escaping(roost):
    a = "esc@example.com"
    roost.add_user(a)
    odd = 'Quote"Back\\slash'
    utf = "Entw\u00fcrfe"
    roost.ctl("mailbox", "create", a, odd)
    roost.ctl("mailbox", "create", a, utf)
    names = {m["name"] for m in ctl_json(roost, "mailbox", "list", a)}
    assert odd in names and utf in names


# ---- index ----

def test_index_check_and_rebuild(roost):
    a = "ix@example.com"
    roost.add_user(a)
    r = roost.ctl("index", "check", a)
    assert "consistent" in r.stdout
    assert ctl_json(roost, "index", "check", a)["consistent"] is True

    drop_file(roost, a, "1700000000.M1P1Q1.elsewhere")
    r = roost.ctl("index", "check", a, check=False)
    assert r.returncode == 1
    assert "1700000000.M1P1Q1.elsewhere" in r.stdout
    r = roost.ctl("--json", "index", "check", a, check=False)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["consistent"] is False
    assert doc["differences"][0]["mailbox"] == "INBOX"

    roost.ctl("index", "rebuild", a)
    roost.ctl("index", "check", a)
    st = ctl_json(roost, "mailbox", "status", a, "INBOX")
    assert st["messages"] == 1 and st["unseen"] == 1
    assert st["bytes"] == len(MESSAGE)
    assert ctl_json(roost, "user", "show", a)["usage"]["messages"] == 1


def test_index_sync(roost):
    a = "sy@example.com"
    roost.add_user(a)
    roost.ctl("mailbox", "create", a, "Later")
    assert roost.deliver(a, MESSAGE).returncode == 0
    uid_before = ctl_json(roost, "mailbox", "status", a, "INBOX")["uidnext"]
    drop_file(roost, a, "1700000000.M2P2Q2.elsewhere")
    assert roost.ctl("index", "check", a, check=False).returncode == 1
    r = roost.ctl("index", "sync", a)
    assert "synced" in r.stdout
    roost.ctl("index", "check", a)
    st = ctl_json(roost, "mailbox", "status", a, "INBOX")
    # The dropped file got the next UID; nothing was renumbered.
    assert st["messages"] == 2 and st["uidnext"] == uid_before + 1
    r = roost.ctl("index", "sync", "nobody@example.com", check=False)
    assert r.returncode == 1 and "no such user" in r.stderr


def test_status_after_delivery_to_alias(roost):
    """Users and aliases made by roostctl are what delivery resolves."""
    roost.add_user("d1@example.com")
    roost.add_user("d2@example.com")
    roost.ctl("alias", "add", "both@example.com", "d1@example.com")
    roost.ctl("alias", "add", "both@example.com", "d2@example.com")
    r = roost.deliver("Both+news@Example.com", MESSAGE)
    assert r.returncode == 0, r.stderr
    for u in ("d1@example.com", "d2@example.com"):
        st = ctl_json(roost, "mailbox", "status", u, "INBOX")
        assert st["messages"] == 1, u
        roost.ctl("index", "check", u)
    roost.ctl("user", "set", "d2@example.com", "--disable")
    r = roost.deliver("d2@example.com", MESSAGE)
    assert r.returncode != 0


# ---- bad input ----

@pytest.mark.parametrize("args,code", [
    (("user", "add", "not-an-address"), EX_USAGE),
    (("user", "add", "a@@example.com"), EX_USAGE),
    (("user", "show", "nobody@example.com"), 1),
    (("frobnicate",), EX_USAGE),
    (("user", "frobnicate"), EX_USAGE),
    (("user",), EX_USAGE),
    ((), EX_USAGE),
    (("user", "add"), EX_USAGE),
    (("alias", "add", "a@example.com"), EX_USAGE),
    (("mailbox", "rename", "a@example.com", "x"), EX_USAGE),
    (("user", "add", "a@example.com", "--bogus"), EX_USAGE),
    (("user", "list", "extra"), EX_USAGE),
    (("--bogus", "user", "list"), EX_USAGE),
])
def test_bad_input(roost, args, code):
    r = roost.ctl(*args, check=False)
    fails(r, code)
    assert r.stdout == ""


def test_bad_config(roost):
    fails(roost.ctl("-c", str(roost.base / "missing.conf"), "user", "list",
                    check=False), EX_CONFIG)
    bad = roost.base / "bad.conf"
    bad.write_text("[general]\nno_such_key = 1\n")
    fails(roost.ctl("-c", str(bad), "user", "list", check=False),
          EX_CONFIG)


# ---- help ----

COMMANDS = [
    ("user", "add"), ("user", "del"), ("user", "passwd"),
    ("user", "import-hash"), ("user", "set"), ("user", "list"),
    ("user", "show"), ("alias", "add"), ("alias", "del"),
    ("alias", "list"), ("domain", "add"), ("domain", "del"),
    ("domain", "list"), ("mailbox", "list"), ("mailbox", "create"),
    ("mailbox", "delete"), ("mailbox", "rename"), ("mailbox", "status"),
    ("index", "check"), ("index", "rebuild"),
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_help_per_command(roost, cmd):
    r = roost.ctl(*cmd, "--help")
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS",
                    "EXIT STATUS"):
        assert section in r.stdout
    assert "roostctl %s %s" % cmd in r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("group", ["user", "alias", "domain", "mailbox",
                                   "index"])
def test_help_per_group(roost, group):
    r = roost.ctl(group, "--help")
    assert "SYNOPSIS" in r.stdout and "roostctl %s" % group in r.stdout


def test_help_top_level(roost):
    for args in (("--help",), ("-h",), ("help",)):
        r = roost.ctl(*args)
        for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS",
                        "OPTIONS", "EXIT STATUS", "EXAMPLES"):
            assert section in r.stdout, (args, section)
    # Help needs no config at all.
    from conftest import BIN
    r = subprocess.run([str(BIN / "roostctl"), "user", "add", "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "SYNOPSIS" in r.stdout


# ---- privileges, locking ----

@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_root_creates_files_as_mail_user(roost):
    fresh = roost.base / "fresh" / "data"
    roost.write_config({"general": {"data_dir": str(fresh)}})
    roost.add_user("own@example.com")
    uid = pwd.getpwnam("roost").pw_uid
    assert fresh.stat().st_uid == uid
    assert (fresh / "users.db").stat().st_uid == uid
    assert (fresh / "users.db").stat().st_mode & 0o077 == 0
    md = fresh / "mail" / "example.com" / "own"
    assert md.stat().st_uid == uid


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_root_without_mail_user_refuses(roost):
    conf = roost.base / "nouser.conf"
    text = roost.conf.read_text().splitlines()
    conf.write_text("\n".join(l for l in text
                              if not l.startswith("mail_user")) + "\n")
    err = fails(roost.ctl("-c", str(conf), "user", "list", check=False),
                EX_CONFIG)
    assert "mail_user" in err


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_root_data_dir_not_owned_by_mail_user(roost):
    wrong = roost.base / "rootowned"
    wrong.mkdir(mode=0o755)
    roost.write_config({"general": {"data_dir": str(wrong)}})
    err = fails(roost.ctl("user", "list", check=False), EX_CONFIG)
    assert "mail_user" in err


def test_user_del_keep_mail(roost):
    roost.add_user("keep@example.com")
    drop_file(roost, "keep@example.com", "1700000001.M1P1Q1.x")
    r = roost.ctl("user", "del", "keep@example.com", "--keep-mail")
    assert "kept" in r.stdout
    assert roost.message_files("keep@example.com")
    fails(roost.ctl("user", "show", "keep@example.com", check=False), 1)
    # Adding the user again gets the old store back.
    roost.add_user("keep@example.com")
    roost.ctl("index", "rebuild", "keep@example.com")
    assert ctl_json(roost, "user", "show",
                    "keep@example.com")["usage"]["messages"] == 1


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
"""


def test_locked_database_is_tempfail(roost):
    roost.add_user("lock@example.com")

    def demote():
        if IS_ROOT:
            pw = pwd.getpwnam("roost")
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(roost.data_dir / "users.db")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        preexec_fn=demote)
    try:
        assert locker.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        r = roost.ctl("user", "add", "wait@example.com", check=False)
        fails(r, EX_TEMPFAIL)
        assert "try again" in r.stderr
        assert time.monotonic() - t0 >= 4   # it waited for the lock
        # Reading still works while a writer holds the lock (WAL).
        roost.ctl("user", "show", "lock@example.com")
    finally:
        locker.stdin.close()
        locker.wait(timeout=10)
    roost.ctl("user", "add", "wait@example.com")
