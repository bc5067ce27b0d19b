#!/usr/bin/env bash
# Checks that the Debian packages roost needs are installed; as root it
# installs the missing ones with apt-get, otherwise it names them and fails.
#   deps.sh build   compilers and libraries
#   deps.sh test    build + everything the tests run (clients, postfix)
#   deps.sh bench   test + dovecot for side-by-side benchmarks
#   deps.sh all     everything
set -euo pipefail

build=(gcc clang make pkg-config libsqlite3-dev libssl-dev libevent-dev
	libsasl2-dev libsasl2-modules uuid-dev libcrypt-dev libcmocka-dev
	libclang-rt-14-dev)
test=(python3 python3-pytest swaks openssl postfix fetchmail getmail6 curl
	sqlite3 procps)
bench=(dovecot-imapd dovecot-pop3d dovecot-lmtpd)

want=("${build[@]}")
case "${1:-build}" in
build) ;;
test) want+=("${test[@]}") ;;
bench | all) want+=("${test[@]}" "${bench[@]}") ;;
*) echo "usage: deps.sh build|test|bench|all" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "roost: missing Debian packages: ${missing[*]}" >&2
	echo "roost: install them with: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi

echo "roost: installing missing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Servers (postfix, dovecot) are installed only as programs for tests to
# run privately: keep the distribution's services from starting.
policy=/usr/sbin/policy-rc.d
made_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 755 "$policy"
	made_policy=1
fi
trap '[ -n "$made_policy" ] && rm -f "$policy"' EXIT
echo "postfix postfix/main_mailer_type select No configuration" |
	debconf-set-selections 2>/dev/null || true
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
