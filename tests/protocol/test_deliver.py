"""roost-deliver: the pipe delivery agent, run as an MTA would run it."""
import os
import subprocess

import pytest

from conftest import BIN, IS_ROOT

MSG = b"From: a@example.org\nTo: u@example.test\nSubject: hi\n\nhello\n"


def test_delivers_into_inbox(roost):
    roost.add_user("u@example.test")
    r = roost.deliver("u@example.test", MSG, "-f", "sender@example.org")
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    msgs = roost.messages("u@example.test")
    assert len(msgs) == 1
    m = msgs[0]
    assert m.startswith(b"Return-Path: <sender@example.org>\n")
    assert b"\nDelivered-To: u@example.test\n" in m
    assert b"\nReceived: by roost.test (roost) with local id " in m
    assert m.endswith(MSG)
    # The file name carries size and CRLF size (DESIGN.md, Storage).
    name = roost.message_files("u@example.test")[0].name
    assert ",S=%d," % len(m) in name
    assert ",W=%d" % (len(m) + m.count(b"\n")) in name


def test_crlf_input_stored_with_lf(roost):
    roost.add_user("u@example.test")
    r = roost.deliver("u@example.test", MSG.replace(b"\n", b"\r\n"))
    assert r.returncode == 0, r.stderr
    m = roost.messages("u@example.test")[0]
    assert b"\r" not in m
    assert m.endswith(MSG)


def test_mbox_from_line_removed_and_used_as_sender(roost):
    roost.add_user("u@example.test")
    data = b"From bounce@example.org Mon Nov 23 10:00:00 2026\n" + MSG
    r = roost.deliver("u@example.test", data)
    assert r.returncode == 0, r.stderr
    m = roost.messages("u@example.test")[0]
    assert m.startswith(b"Return-Path: <bounce@example.org>\n")
    assert b"From bounce" not in m


def test_unknown_user_exit_67(roost):
    roost.add_user("u@example.test")
    r = roost.deliver("nobody@example.test", MSG)
    assert r.returncode == 67
    assert r.stderr.count(b"\n") == 1
    assert b"5.1.1" in r.stderr


def test_bad_address_exit_65(roost):
    roost.add_user("u@example.test")
    r = roost.deliver("not-an-address", MSG)
    assert r.returncode == 65
    assert r.stderr.count(b"\n") == 1


def test_mailbox_option(roost):
    roost.add_user("u@example.test")
    roost.ctl("mailbox", "create", "u@example.test", "Lists/roost")
    r = roost.deliver("u@example.test", MSG, "-m", "Lists/roost")
    assert r.returncode == 0, r.stderr
    assert len(roost.messages("u@example.test", "Lists/roost")) == 1
    # A folder that does not exist: INBOX, never a lost message.
    r = roost.deliver("u@example.test", MSG, "-m", "Nope")
    assert r.returncode == 0, r.stderr
    assert len(roost.messages("u@example.test")) == 1


def test_detail_and_alias(roost):
    roost.add_user("u@example.test")
    roost.add_user("v@example.test")
    roost.ctl("mailbox", "create", "u@example.test", "shop")
    roost.ctl("alias", "add", "team@example.test", "u@example.test")
    roost.ctl("alias", "add", "team@example.test", "v@example.test")
    assert roost.deliver("u+shop@example.test", MSG).returncode == 0
    assert len(roost.messages("u@example.test", "shop")) == 1
    assert roost.deliver("U+nofolder@Example.TEST", MSG).returncode == 0
    assert len(roost.messages("u@example.test")) == 1
    r = roost.deliver("team@example.test", MSG)
    assert r.returncode == 0, r.stderr
    assert len(roost.messages("u@example.test")) == 2
    assert len(roost.messages("v@example.test")) == 1


def test_quota_tempfail_and_reject(roost):
    roost.add_user("q@example.test", quota=2000)
    big = MSG + b"x" * 1200 + b"\n"
    assert roost.deliver("q@example.test", big).returncode == 0
    # A message that would pass the quota is refused; temporarily by
    # default, so the MTA retries.
    r = roost.deliver("q@example.test", big)
    assert r.returncode == 75, r.stderr
    assert b"4.2.2" in r.stderr
    roost.write_config({"delivery": {"quota_full": "reject"}})
    r = roost.deliver("q@example.test", big)
    assert r.returncode == 73, r.stderr
    assert b"5.2.2" in r.stderr
    assert len(roost.messages("q@example.test")) == 1


def test_too_big(roost):
    roost.write_config({"lmtp": {"max_message_size": "2k"}})
    roost.add_user("u@example.test")
    r = roost.deliver("u@example.test", MSG + b"y" * 3000 + b"\n")
    assert r.returncode == 73
    assert b"5.3.4" in r.stderr
    # One enormous line is refused the same way, without buffering it all.
    r = roost.deliver("u@example.test", b"z" * 100000)
    assert r.returncode == 73
    assert roost.messages("u@example.test") == []
    # Nothing left behind in the spool.
    assert os.listdir(roost.data_dir / "tmp") == []


def test_binary_and_8bit_body(roost):
    roost.add_user("u@example.test")
    body = "Subject: ünïcode\n\nGrüße\x00nul\n".encode() + bytes(range(128, 256)) + b"\n"
    assert roost.deliver("u@example.test", body).returncode == 0
    assert roost.messages("u@example.test")[0].endswith(body)


def test_bad_config_exit_78(roost):
    roost.conf.write_text("[general]\ndata_dir = /x\nfrobnicate = 1\n")
    r = roost.deliver("u@example.test", MSG)
    assert r.returncode == 78
    assert b"roost.conf:3: unknown key 'frobnicate'" in r.stderr


def test_usage_and_help():
    r = subprocess.run([str(BIN / "roost-deliver")], capture_output=True)
    assert r.returncode == 64
    r = subprocess.run([str(BIN / "roost-deliver"), "--help"],
                       capture_output=True, text=True)
    assert r.returncode == 0
    for word in ("NAME", "SYNOPSIS", "EXIT STATUS", "75"):
        assert word in r.stdout


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_refuses_root_without_mail_user(roost):
    text = roost.conf.read_text().replace("mail_user = roost\n", "")
    roost.conf.write_text(text)
    r = roost.deliver("u@example.test", MSG)
    assert r.returncode == 78
    assert b"mail_user" in r.stderr


@pytest.mark.skipif(not IS_ROOT, reason="needs root")
def test_files_owned_by_mail_user(roost):
    import pwd
    roost.add_user("u@example.test")
    assert roost.deliver("u@example.test", MSG).returncode == 0
    uid = pwd.getpwnam("roost").pw_uid
    f = roost.message_files("u@example.test")[0]
    assert f.stat().st_uid == uid
    assert (roost.maildir("u@example.test") / "roost.db").stat().st_uid == uid
