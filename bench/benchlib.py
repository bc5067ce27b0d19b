"""Helpers shared by the bench/ scripts (standard library only).

Machine description, process-tree accounting (CPU, peak RSS, PSS), ports,
starting and stopping daemons by pid, the system mail user, TLS test
certificates.  The functions are the ones bench/lmtp introduced (it keeps
its own copies); bench/pop3 imports them from here.
"""

import os
import pathlib
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
MAIL_USER = "roost"

START_TIMEOUT = 20.0       # seconds for a daemon to listen
STOP_TIMEOUT = 20.0        # seconds for a daemon to exit after SIGTERM


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- machine

def mount_of(path):
    """(device, mount point, fstype, options) of the mount holding path."""
    path = os.path.realpath(path)
    best = None
    with open("/proc/mounts") as f:
        for line in f:
            dev, mnt, fstype, opts = line.split()[:4]
            mnt = mnt.replace("\\040", " ")
            if path == mnt or path.startswith(mnt.rstrip("/") + "/") \
                    or mnt == "/":
                if best is None or len(mnt) >= len(best[1]):
                    best = (dev, mnt, fstype, opts)
    return best


def block_device_of(path):
    """Name in /proc/diskstats of the disk holding path, or None."""
    try:
        st = os.stat(path)
        major, minor = os.major(st.st_dev), os.minor(st.st_dev)
        with open("/proc/diskstats") as f:
            for line in f:
                p = line.split()
                if int(p[0]) == major and int(p[1]) == minor:
                    return p[2]
    except OSError:
        pass
    return None


def fsync_probe(tmp, count=50):
    """Median ms of: create a 4 KB file, fsync it, rename it into another
    directory, fsync that directory (the durable-write pattern)."""
    d = tempfile.mkdtemp(prefix="fsync-probe-", dir=tmp)
    try:
        os.mkdir(os.path.join(d, "tmp"))
        os.mkdir(os.path.join(d, "new"))
        dfd = os.open(os.path.join(d, "new"), os.O_RDONLY | os.O_DIRECTORY)
        times = []
        for i in range(count):
            t0 = time.perf_counter()
            src = os.path.join(d, "tmp", str(i))
            fd = os.open(src, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            os.close(fd)
            os.rename(src, os.path.join(d, "new", str(i)))
            os.fsync(dfd)
            times.append(time.perf_counter() - t0)
        os.close(dfd)
        return statistics.median(times) * 1000
    finally:
        shutil.rmtree(d, ignore_errors=True)


def machine_info(tmp, probe_fsync=True):
    info = {"nproc": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "kernel": " ".join(os.uname()[2:4]),
            "python": sys.version.split()[0]}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_mb"] = int(line.split()[1]) // 1024
    except OSError:
        pass
    m = mount_of(tmp)
    if m:
        info["fs"] = {"device": m[0], "mount": m[1], "type": m[2],
                      "options": m[3]}
    info["disk"] = block_device_of(tmp)
    if probe_fsync:
        info["fsync_probe_ms"] = fsync_probe(tmp)
    try:
        r = subprocess.run(["openssl", "version"], capture_output=True,
                           text=True, timeout=10)
        info["openssl"] = r.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return info


# ---------------------------------------------------------------- processes

def proc_tree(root):
    """root and all its descendants (pids), from /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def proc_status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def proc_cpu_ticks(pid):
    """utime+stime+cutime+cstime (clock ticks) of pid."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return 0
    p = s[s.rindex(")") + 2:].split()
    return sum(int(x) for x in p[11:15])


def machine_busy_seconds():
    """CPU seconds all CPUs spent busy (not idle, not iowait) since boot."""
    with open("/proc/stat") as f:
        p = [int(x) for x in f.readline().split()[1:]]
    idle = p[3] + (p[4] if len(p) > 4 else 0)
    return (sum(p[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def machine_irq_seconds():
    """CPU seconds all CPUs spent in hard and soft interrupts since boot
    (loopback TCP is mostly softirq time, charged to no process)."""
    with open("/proc/stat") as f:
        p = [int(x) for x in f.readline().split()[1:]]
    return (p[5] + p[6]) / os.sysconf("SC_CLK_TCK")


def wait_quiet(max_wait, threshold=0.15, window=1.0):
    """Waits (at most max_wait seconds) until the machine has been nearly
    idle (< threshold CPUs busy) for two consecutive windows.  Returns the
    seconds waited and the busy CPUs of the last window."""
    t0 = time.monotonic()
    quiet = 0
    busy = 0.0
    while True:
        b0 = machine_busy_seconds()
        time.sleep(window)
        busy = (machine_busy_seconds() - b0) / window
        quiet = quiet + 1 if busy < threshold else 0
        if quiet >= 2 or time.monotonic() - t0 >= max_wait:
            return time.monotonic() - t0, busy


def tree_cpu_seconds(root):
    ticks = sum(proc_cpu_ticks(p) for p in proc_tree(root))
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_memory(root):
    """Sum of VmHWM (peak RSS), VmRSS and Pss over the process tree."""
    pids = proc_tree(root)
    procs = []
    for pid in pids:
        try:
            with open("/proc/%d/comm" % pid) as f:
                comm = f.read().strip()
        except OSError:
            continue
        procs.append({"pid": pid, "comm": comm,
                      "hwm_kb": proc_status_kb(pid, "VmHWM"),
                      "rss_kb": proc_status_kb(pid, "VmRSS"),
                      "pss_kb": proc_pss_kb(pid)})
    return {"peak_rss_kb": sum(p["hwm_kb"] for p in procs),
            "rss_kb": sum(p["rss_kb"] for p in procs),
            "pss_kb": sum(p["pss_kb"] for p in procs),
            "processes": len(procs), "procs": procs}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=START_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("daemon exited with status %d"
                               % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("daemon did not listen on 127.0.0.1:%d" % port)


def stop_process(proc, name, timeout=STOP_TIMEOUT):
    """SIGTERM the daemon by pid and wait; SIGKILL its tree if it hangs.
    Returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        pids = proc_tree(proc.pid)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log("%s: ignored SIGTERM for %ds, killing pids %s"
                % (name, timeout, pids))
            for pid in proc_tree(proc.pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait()
        # Children that outlive their master are a bug; end them by pid.
        deadline = time.monotonic() + 5
        for pid in pids[1:]:
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            else:
                try:
                    os.kill(pid, signal.SIGKILL)
                    log("%s: pid %d outlived its master; killed"
                        % (name, pid))
                except ProcessLookupError:
                    pass
    return proc.returncode


def ensure_mail_user():
    """As root, the system user that owns the stores (as tests do)."""
    if not IS_ROOT:
        return None
    try:
        return pwd.getpwnam(MAIL_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home",
                        "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", MAIL_USER],
                       check=True)
        return pwd.getpwnam(MAIL_USER)


def mail_pw():
    """passwd entry of the user owning the stores (the caller if not
    root)."""
    return pwd.getpwnam(MAIL_USER) if IS_ROOT else pwd.getpwuid(os.geteuid())


def chown_mail(path):
    if IS_ROOT:
        pw = pwd.getpwnam(MAIL_USER)
        os.chown(path, pw.pw_uid, pw.pw_gid)


# ---------------------------------------------------------------- misc

def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1,
                   int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def parse_list(s):
    """"1,4,16" -> [1, 4, 16] (for argparse type=)."""
    import argparse
    try:
        vals = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError("expected numbers like 1,4,16")
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError("expected positive numbers")
    return vals


def git_commit():
    try:
        r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short",
                            "HEAD"], capture_output=True, text=True,
                           timeout=10)
        c = r.stdout.strip()
        d = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain",
                            "--untracked-files=no"], capture_output=True,
                           text=True, timeout=10).stdout.strip()
        return c + ("+dirty" if d else "") if c else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def dovecot_version(path):
    try:
        return subprocess.run([path, "--version"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def make_tls_files(d):
    """A throw-away CA and a server certificate (RSA 2048) for 127.0.0.1 /
    localhost in directory d, made with the openssl CLI (as the protocol
    tests do).  Returns {"ca", "cert", "key"} paths."""
    d = pathlib.Path(d)
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True,
                       capture_output=True, timeout=60)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=roost bench CA", "-keyout", "ca.key",
            "-out", "ca.pem",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", "server.key", "-out", "server.csr")
    (d / "ext.cnf").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "ext.cnf", "-out", "server.pem")
    os.chmod(d / "server.pem", 0o644)
    os.chmod(d / "ca.pem", 0o644)
    os.chmod(d / "server.key", 0o600)
    return {"ca": str(d / "ca.pem"), "cert": str(d / "server.pem"),
            "key": str(d / "server.key")}
