#!/usr/bin/env bash
# `make run`: a development instance with everything under ./var —
# config, data, TLS certificate, a demo user — then the servers in the
# foreground (Ctrl-C stops them).
set -euo pipefail
bin=$(cd "$1" && pwd)
var=$PWD/var
conf=$var/roost.conf
mkdir -p "$var/data" "$var/tls"

as_root=
if [ "$(id -u)" -eq 0 ]; then
	as_root=1
	# Daemons started as root drop to this user; it owns the mail files.
	id roost >/dev/null 2>&1 ||
		useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin roost
fi

# The first free loopback port from $1 on (2024, 2110, 2995 unless taken
# by something else on this machine).
free_port() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
want, avoid = int(sys.argv[1]), {int(p) for p in sys.argv[2].split()}
for port in range(want, want + 200):
    if port in avoid:
        continue
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        continue
    finally:
        s.close()
    print(port)
    break
PY
}

if [ ! -f "$conf" ]; then
	lmtp_port=$(free_port 2024 "")
	pop3_port=$(free_port 2110 "$lmtp_port")
	pop3s_port=$(free_port 2995 "$lmtp_port $pop3_port")
	for p in "2024 $lmtp_port" "2110 $pop3_port" "2995 $pop3s_port"; do
		set -- $p
		[ "$1" = "$2" ] ||
			echo "make run: port $1 is taken here, using $2 instead"
	done
	cat >"$conf" <<CONF
# Development configuration written by 'make run'.  Edit freely; delete
# it to get a fresh one.  Reference: README.md, "Configuration".
[general]
data_dir = $var/data
hostname = localhost
log = stderr
log_level = info
${as_root:+mail_user = roost}

[tls]
cert = $var/tls/cert.pem
key = $var/tls/key.pem

[lmtp]
listen = 127.0.0.1:$lmtp_port, unix:$var/lmtp.sock
workers = 2

[delivery]
recipient_delimiter = +

[pop3]
listen = 127.0.0.1:$pop3_port
listen_tls = 127.0.0.1:$pop3s_port

[auth]
allow_plaintext = loopback
CONF
	echo "make run: wrote $conf"
fi

if [ ! -f "$var/tls/cert.pem" ]; then
	openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=localhost \
		-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
		-keyout "$var/tls/key.pem" -out "$var/tls/cert.pem" 2>/dev/null
	chmod 600 "$var/tls/key.pem"
	echo "make run: generated a self-signed certificate in $var/tls"
fi
[ -n "$as_root" ] && chown -R roost: "$var/data"

if ! "$bin/roostctl" -c "$conf" user show demo@example.test >/dev/null 2>&1; then
	echo demo | "$bin/roostctl" -c "$conf" user add demo@example.test \
		--password-stdin
	echo "make run: created user demo@example.test with password 'demo'"
fi

# What the config says, which may be older than this script's defaults.
port_of() {
	sed -n "/^\[$1\]/,/^\[/s/^$2 *= *127\.0\.0\.1:\([0-9]*\).*/\1/p" "$conf" | head -1
}
lmtp_port=$(port_of lmtp listen)
pop3_port=$(port_of pop3 listen)
pop3s_port=$(port_of pop3 listen_tls)

cat <<MSG

roost is starting (Ctrl-C stops it):
  LMTP  127.0.0.1:$lmtp_port and unix:$var/lmtp.sock
$( [ -x "$bin/roost-pop3d" ] && echo "  POP3  127.0.0.1:$pop3_port (STLS), 127.0.0.1:$pop3s_port (TLS); user demo@example.test, password demo")

Deliver a test message:
  swaks --server 127.0.0.1:$lmtp_port --protocol LMTP --to demo@example.test
or
  python3 -c "import smtplib; smtplib.LMTP('127.0.0.1', $lmtp_port).sendmail('me@example.test', ['demo@example.test'], b'Subject: hello\r\n\r\nhi\r\n')"
or, through the pipe agent:
  printf 'Subject: hi\n\nhello\n' | $bin/roost-deliver -c $conf -d demo@example.test
Then look:
  $bin/roostctl -c $conf mailbox status demo@example.test
  curl -k pop3s://127.0.0.1:$pop3s_port/1 -u demo@example.test:demo

MSG

pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
if [ -x "$bin/roost-pop3d" ]; then
	"$bin/roost-pop3d" -c "$conf" -f &
	pids+=($!)
fi
"$bin/roost-lmtpd" -c "$conf" -f &
pids+=($!)
wait -n "${pids[@]}"
