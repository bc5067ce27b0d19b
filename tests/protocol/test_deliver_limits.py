"""roost-deliver: bounded memory for long lines, and the bare Postmaster."""
import resource

import pytest

from conftest import BIN, SANITIZED  # noqa: F401  (the fixture module)

MSG = b"From: a@example.org\nTo: u@example.test\nSubject: hi\n\nhello\n"


def _limit_heap():
    # 32 MB of data segment: far more than roost-deliver needs when it
    # streams, far less than one 48 MB line held whole.
    resource.setrlimit(resource.RLIMIT_DATA, (32 << 20, 32 << 20))


@pytest.mark.skipif(SANITIZED, reason="ASan reserves its shadow memory up "
                    "front, which no RLIMIT_DATA cap leaves room for")
def test_huge_line_streams_in_bounded_memory(roost):
    import subprocess
    roost.write_config({"lmtp": {"max_message_size": "64M"}})
    roost.add_user("u@example.test")
    line = b"y" * (48 << 20)
    # a CR at a piece boundary (64 KiB) must still pair with its LF
    msg = MSG + b"z" * (64 * 1024 - 1) + b"\r\n" + line + b"\r\nend\n"
    r = subprocess.run([str(BIN / "roost-deliver"), "-c", str(roost.conf),
                        "-d", "u@example.test"], input=msg,
                       capture_output=True, timeout=120,
                       preexec_fn=_limit_heap)
    assert r.returncode == 0, r.stderr
    m = roost.messages("u@example.test")[0]
    assert m.endswith(MSG + b"z" * (64 * 1024 - 1) + b"\n" + line +
                      b"\nend\n")


def test_too_big_single_line(roost):
    import subprocess
    roost.write_config({"lmtp": {"max_message_size": "1M"}})
    roost.add_user("u@example.test")
    r = subprocess.run([str(BIN / "roost-deliver"), "-c", str(roost.conf),
                        "-d", "u@example.test"],
                       input=MSG + b"y" * (3 << 20) + b"\n",
                       capture_output=True, timeout=60)
    assert r.returncode == 73, r.stderr
    assert b"5.3.4" in r.stderr
    assert roost.message_files("u@example.test") == []


def test_bare_postmaster(roost):
    roost.add_user("u@example.test")
    roost.ctl("alias", "add", "postmaster@example.test", "u@example.test")
    r = roost.deliver("Postmaster", MSG)
    assert r.returncode == 0, r.stderr
    m = roost.messages("u@example.test")[0]
    assert b"\nDelivered-To: postmaster@example.test\n" in m
