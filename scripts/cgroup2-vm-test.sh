#!/usr/bin/env bash
# The sandbox on cgroup v2, for real: boots a small VM (QEMU, TCG; this project's machines
# mount the memory, pids and freezer controllers as cgroup v1, so their v2 path cannot run on
# the host) whose only cgroup tree is cgroup v2, as on a modern systemd host, runs
# `gust up --sandbox strict` inside and checks, through `gust invoke`, what the sandbox
# promises there: memory and pids limits that count children, the instance's cgroup,
# the freezer, leftover children ending with their instance, a clean shutdown. Twice: Gust as
# root in the root cgroup, then Gust as an unprivileged user (uid 1000) alone in a cgroup
# delegated to it, as systemd's `Delegate=yes` gives a service (checks named `*-delegated`).
#
#   scripts/cgroup2-vm-test.sh GUST_BIN LAMBDA_SH_BIN LAMBDA_ECHO_BIN
#
# The binaries: `gust`, and the `lambda-sh` and `lambda-echo` fixtures (crates/fixtures; the VM
# has neither Node nor Python). The system test `cgroup_v2::` runs this with the binaries
# cargo built. Environment: GUST_VM_TIMEOUT (seconds, default 900), GUST_VM_KERNEL (default
# the newest /boot/vmlinuz-*), GUST_VM_KEEP=1 keeps the work directory, GUST_VM_UP_ARGS (default
# "--sandbox strict") replaces `gust up`'s sandbox arguments (e.g. "--sandbox off", to see the
# checks fail where Gust does not confine).
#
# Installs what it needs from Debian when missing: qemu-system-x86, linux-image-amd64 (the
# guest kernel and its modules), busybox-static (the guest's userland). KVM is not used
# (nested virtualisation is not available here): the guest runs under TCG, a few minutes.
#
# The guest prints one line per check, `GUSTVM CHECK <name> ok` or `GUSTVM CHECK <name> FAIL
# <detail>`, then `GUSTVM DONE`. This script exits 0 only if every expected check said ok and
# DONE appeared; otherwise it prints the whole console log.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 GUST_BIN LAMBDA_SH_BIN LAMBDA_ECHO_BIN" >&2
  exit 2
fi
for b in "$@"; do
  [[ -x "$b" ]] || { echo "cgroup2-vm-test: $b is not an executable" >&2; exit 2; }
done
GUST_BIN=$(realpath "$1")
SH_BIN=$(realpath "$2")
ECHO_BIN=$(realpath "$3")
TIMEOUT=${GUST_VM_TIMEOUT:-900}
# Every check the guest runs; each must print ok.
CHECKS="doctor startup memory-max freezer memory-child memory-oom pids leftovers shutdown"
EXPECTED="vm-cgroup2-only $CHECKS $(for c in $CHECKS; do printf '%s-delegated ' "$c"; done)"
# `gust up`'s sandbox arguments (another value shows that the checks fail where Gust does not
# confine, e.g. "--sandbox off").
UP_ARGS=${GUST_VM_UP_ARGS:---sandbox strict}

step() { echo "cgroup2-vm-test: $*" >&2; }

# --- what the VM needs, from Debian --------------------------------------------------------
newest_kernel() { ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1; }
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
[[ -n "${GUST_VM_KERNEL:-}" || -n "$(newest_kernel)" ]] || missing+=(linux-image-amd64)
busybox_static() { [[ -x /usr/bin/busybox ]] && ! ldd /usr/bin/busybox >/dev/null 2>&1; }
busybox_static || missing+=(busybox-static)
if [[ ${#missing[@]} -gt 0 ]]; then
  step "installing ${missing[*]}"
  if ! command -v apt-get >/dev/null || [[ $(id -u) -ne 0 ]]; then
    echo "cgroup2-vm-test: cannot install ${missing[*]}: needs root and apt-get (Debian); install them and run again" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; } || {
    echo "cgroup2-vm-test: apt-get could not install ${missing[*]}" >&2
    exit 1
  }
fi
KERNEL=${GUST_VM_KERNEL:-$(newest_kernel)}
[[ -r "$KERNEL" ]] || { echo "cgroup2-vm-test: cannot read the guest kernel $KERNEL" >&2; exit 1; }
KVER=$(basename "$KERNEL"); KVER=${KVER#vmlinuz-}
MODULES=/lib/modules/$KVER
[[ -d "$MODULES" ]] || { echo "cgroup2-vm-test: no modules for $KVER at $MODULES" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/gust-cg2vm.XXXXXX")
if [[ "${GUST_VM_KEEP:-0}" == 1 ]]; then step "work directory: $work"; else trap 'rm -rf "$work"' EXIT; fi
root=$work/root

# --- the initramfs ---------------------------------------------------------------------------
step "building the initramfs"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,mnt,usr/local/bin,lib/gust-modules,app/sh,app/echo}
cp /usr/bin/busybox "$root/bin/busybox"
for applet in $(/usr/bin/busybox --list); do
  [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done
# The binaries without their debug info (a quarter of the size), and the shared libraries
# they load, at the paths `ldd` names.
install_bin() {
  local src=$1 dst=$2
  cp "$src" "$dst"
  strip --strip-debug "$dst" 2>/dev/null || true
  ldd "$src" | grep -o '/[^ ]*' | while read -r lib; do
    [[ -e "$root$lib" ]] && continue
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
}
install_bin "$GUST_BIN" "$root/usr/local/bin/gust"
install_bin "$SH_BIN" "$root/app/sh/bootstrap"
install_bin "$ECHO_BIN" "$root/app/echo/bootstrap"
# The socket diagnostics the Runtime API's peer check asks (NETLINK_SOCK_DIAG); a host loads
# them on demand, this guest has no modprobe setup.
for m in inet_diag tcp_diag udp_diag unix_diag; do
  ko=$(find "$MODULES" -name "$m.ko*" | head -n 1)
  [[ -n "$ko" ]] || { echo "cgroup2-vm-test: module $m not found under $MODULES" >&2; exit 1; }
  case "$ko" in
    *.xz) xz -dc "$ko" > "$root/lib/gust-modules/$m.ko" ;;
    *.zst) zstd -qdc "$ko" > "$root/lib/gust-modules/$m.ko" ;;
    *) cp "$ko" "$root/lib/gust-modules/$m.ko" ;;
  esac
done
echo "root:x:0:0:root:/tmp/home:/bin/sh" > "$root/etc/passwd"
echo "root:x:0:" > "$root/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$root/etc/hosts"

cat > "$root/app/gust.toml" <<'EOF'
[app]
name = "cgroup2"

# Runs what its event says (the hostile function); 128 MB as in Lambda's smallest.
[functions.sh]
runtime = "provided.al2023"
dir = "sh"
memory = 128
timeout = 120
init_timeout = 120

# The same with room for a thousand processes (each costs some 100 KB of the limit).
[functions.roomy]
runtime = "provided.al2023"
dir = "sh"
memory = 512
timeout = 120
init_timeout = 120

# The same, stopped after 3 s idle: its leftovers must end with it.
[functions.brief]
runtime = "provided.al2023"
dir = "sh"
memory = 128
timeout = 120
init_timeout = 120

[functions.brief.scaling]
idle_timeout = 3

# Another function, which must keep serving.
[functions.echo]
runtime = "provided.al2023"
dir = "echo"
memory = 128
timeout = 120
init_timeout = 120
EOF
chmod -R a+rX "$root/app"

cat > "$root/init" <<'EOF'
#!/bin/sh
# The guest: cgroup v2 only, Gust strict, one line per check.
export PATH=/bin:/sbin:/usr/local/bin HOME=/tmp/home
if [ ! -e /.switched ]; then
  # The initramfs (rootfs) cannot be pivoted away from, and the sandbox pivots into each
  # instance's root: as a host boots, move to a root file system of its own first.
  mkdir -p /newroot
  mount -t tmpfs -o mode=0755 root /newroot
  for d in /*; do
    case "$d" in /newroot|/proc|/sys|/dev|/tmp|/mnt) mkdir -p "/newroot$d" ;; *) cp -a "$d" /newroot/ ;; esac
  done
  touch /newroot/.switched
  exec switch_root /newroot /init
fi
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs -o mode=1777 tmp /tmp
mkdir -p /sys/fs/cgroup /tmp/home
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
for m in inet_diag tcp_diag udp_diag unix_diag; do insmod /lib/gust-modules/$m.ko; done
CG=/sys/fs/cgroup
UP_ARGS="@UP_ARGS@"
echo "GUSTVM START $(uname -r) controllers: $(cat $CG/cgroup.controllers)"

ok() { echo "GUSTVM CHECK $1$SFX ok"; }
fail() { n=$1; shift; echo "GUSTVM CHECK $n$SFX FAIL $*"; }
now() { cut -d. -f1 /proc/uptime; }
# within SECONDS COMMAND...: polls the command every 0.2 s until it succeeds or time is up.
within() {
  end=$(( $(now) + $1 )); shift
  until "$@"; do [ "$(now)" -ge "$end" ] && return 1; usleep 200000; done
}
# inv FUNCTION JSON: `gust invoke`; sets $body (its output) and $rc (its exit status).
inv() { body=$(gust invoke --state $STATE "$1" -d "$2" 2>/tmp/invoke.err); rc=$?; }
# field NAME: the value printed as NAME=VALUE by the command in $body's `out`.
field() { echo "$body" | grep -o "$1=[^\\\"]*" | head -n 1 | cut -d= -f2-; }
# The cgroup directory of the instance that ran the last command (it printed cg=...).
cgdir() { echo "$CG$(field cg | sed 's/^0:://')"; }
is() { [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }
frozen() { is $1/cgroup.freeze 1 && grep -qx 'frozen 1' $1/cgroup.events; }
gone() { [ ! -e "$1" ]; }
events() { grep "^$2 " $1 | cut -d' ' -f2; }
# running CMDLINE: whether a process runs with that command line (arguments space-separated).
running() {
  for f in /proc/[0-9]*/cmdline; do
    [ "$(tr '\0' ' ' < $f 2>/dev/null)" = "$1 " ] && return 0
  done
  return 1
}
not_running() { ! running "$1"; }
PRINT_CG='echo cg=$(cat /proc/self/cgroup)'

# The VM is what it should be: a cgroup v2 host, v1 not even mountable.
SFX=
if grep -q ' cgroup ' /proc/mounts || mount -t cgroup -o memory none /mnt 2>/dev/null; then
  fail vm-cgroup2-only "a cgroup v1 hierarchy is mounted or mountable"
elif ! grep -qw memory $CG/cgroup.controllers || ! grep -qw pids $CG/cgroup.controllers; then
  fail vm-cgroup2-only "cgroup v2 lacks memory or pids: $(cat $CG/cgroup.controllers)"
else
  ok vm-cgroup2-only
fi

# checks SUFFIX BASE USER: every check once, with `gust` run as USER (root: in the root
# cgroup; otherwise in a fresh cgroup delegated to USER under $CG, as systemd's Delegate=yes
# gives a service) and its cgroups expected under BASE. Check names end in SUFFIX.
checks() {
SFX=$1 BASE=$2 USER=$3
STATE=/tmp/state$SFX LOG=/tmp/gust$SFX.log
if [ "$USER" != root ]; then
  mkdir -p $STATE /tmp/home$SFX; chown $USER:$USER $STATE /tmp/home$SFX
fi
as_gust() { as-gust $BASE $USER /tmp/home$SFX "$@"; }

# gust doctor: what --sandbox strict would enforce.
doctor=$(as_gust gust doctor --sandbox strict 2>&1); drc=$?
echo "$doctor" | sed "s/^/GUSTVM DOCTOR$SFX /"
if [ $drc -ne 0 ]; then fail doctor "exit $drc"
elif ! echo "$doctor" | grep -q '^resource limits *on *cgroup v2 '; then fail doctor "no cgroup v2 resource limits"
elif echo "$doctor" | grep -q ' OFF '; then fail doctor "a protection is off"
else ok doctor; fi

# Started directly (not through a function, which would be a subshell): $! is Gust.
as-gust $BASE $USER /tmp/home$SFX gust up /app --port 0 --admin-port 0 $UP_ARGS --prewarm 1 --state $STATE > $LOG 2>&1 &
GUST=$!
# exited: Gust's process is gone or a zombie.
exited() { [ ! -e /proc/$GUST ] || [ "$(cut -d' ' -f3 /proc/$GUST/stat 2>/dev/null)" = Z ]; }
ready_or_exited() { [ -s $STATE/gust.json ] || exited; }
if ! within 300 ready_or_exited; then
  fail startup "no $STATE/gust.json within 300 s"
elif [ ! -s $STATE/gust.json ]; then
  fail startup "gust up exited"
elif ! grep -q 'sandbox: instances are confined: user, file system, processes, resource limits, freezer, system calls, runtime api' $LOG; then
  fail startup "the startup report does not list every protection"
elif ! grep -q "sandbox: resource limits: cgroup v2 ($BASE[-/0-9]*/gust-[0-9]*-[0-9]*)" $LOG; then
  fail startup "the startup report does not say cgroup v2 under $BASE"
elif grep -q ' is off' $LOG; then
  fail startup "$(grep ' is off' $LOG | head -n 1)"
else
  ok startup
fi

# The instance's cgroup: in Gust's subtree, with the function's limits.
inv sh "{\"cmd\":\"$PRINT_CG\"}"
SH=$(cgdir)
if [ $rc -ne 0 ]; then fail memory-max "invoke failed ($rc): $body $(cat /tmp/invoke.err)"
elif ! echo "$SH" | grep -q "^$BASE[-0-9]*/gust-[0-9]*-[0-9]*/i-[0-9]*$"; then fail memory-max "unexpected cgroup $SH"
elif ! is $SH/memory.max $((128 << 20)); then fail memory-max "memory.max is $(cat $SH/memory.max)"
elif ! is $SH/pids.max 1024; then fail memory-max "pids.max is $(cat $SH/pids.max)"
elif ! is $SH/cpu.weight 7; then fail memory-max "cpu.weight is $(cat $SH/cpu.weight) (128 MB of 1769 per vCPU: 7)"
else ok memory-max; fi

# The freezer: idle means frozen; the next invocation thaws the same instance and runs.
if ! within 60 frozen $SH; then
  fail freezer "not frozen while idle: cgroup.freeze $(cat $SH/cgroup.freeze), $(grep frozen $SH/cgroup.events)"
else
  inv sh "{\"cmd\":\"$PRINT_CG\"}"
  if [ $rc -ne 0 ]; then fail freezer "the invocation after the freeze failed ($rc): $body"
  elif [ "$(cgdir)" != "$SH" ]; then fail freezer "another instance answered: $(cgdir), not $SH"
  elif ! within 60 frozen $SH; then fail freezer "not frozen again after the second invocation"
  else ok freezer; fi
fi

# Memory counts children: `tail` holds all 300 MB it reads in a 128 MB function, and the
# cgroup's out-of-memory killer ends it (128 + SIGKILL), not the function.
kills=$(events $SH/memory.events oom_kill)
inv sh "{\"cmd\":\"head -c 300m /dev/zero | tail > /dev/null; echo st=\$?; $PRINT_CG\"}"
if [ $rc -ne 0 ]; then fail memory-child "invoke failed ($rc): $body"
elif [ "$(field st)" != 137 ]; then fail memory-child "the child was not killed: $body"
elif [ "$(events $SH/memory.events oom_kill)" -le "${kills:-0}" ]; then fail memory-child "memory.events counts no oom_kill: $(cat $SH/memory.events)"
elif [ "$(cgdir)" != "$SH" ]; then fail memory-child "another instance answered: $(cgdir)"
else ok memory-child; fi

# The function itself over its memory: reported as Lambda reports it; the instance goes and
# the functions serve on.
inv sh '{"alloc_mb":300}'
if [ $rc -eq 0 ] || ! echo "$body" | grep -q '"errorType": *"Runtime.OutOfMemory"'; then
  fail memory-oom "300 MB in a 128 MB function: exit $rc: $body"
elif ! within 60 gone $SH; then fail memory-oom "the killed instance's cgroup $SH stays"
else
  inv echo '{"still":"serving"}'
  e=$rc; eb=$body
  inv sh "{\"cmd\":\"$PRINT_CG\"}"
  if [ $e -ne 0 ] || ! echo "$eb" | grep -q '"still":"serving"'; then fail memory-oom "echo after the kill: $eb"
  elif [ $rc -ne 0 ] || [ "$(cgdir)" = "$SH" ]; then fail memory-oom "sh after the kill: $body"
  else ok memory-oom; fi
fi

# pids: the cgroup's pids.max (1024) counts every task of the instance, threads included:
# the launcher and the namespace's init (outside the function's uid), the function's
# threads, and during the command `sh -c` and the fork loop's subshell. Measured idle (frozen,
# so nothing starts meanwhile), the loop can start exactly 1024 - idle - 2 sleeps. Where Gust
# is root the function's uid also has RLIMIT_NPROC 1024, which the launcher and init do not
# count against: the cgroup limit is met first either way, and pids.events says so.
inv roomy "{\"cmd\":\"$PRINT_CG\"}"
ROOMY=$(cgdir)
if [ $rc -ne 0 ]; then fail pids "invoke failed ($rc): $body"
elif ! within 60 frozen $ROOMY; then fail pids "roomy not idle"
else
  idle=$(cat $ROOMY/pids.current)
  max_before=$(events $ROOMY/pids.events max)
  expect=$((1024 - idle - 2))
  loop='( i=0; while [ $i -lt 1500 ]; do sleep 1000 & echo $! >> /tmp/pids; i=$((i+1)); done ) 2>/dev/null; n=0; while read p; do kill -9 $p; n=$((n+1)); done < /tmp/pids; echo started=$n'
  inv roomy "{\"cmd\":\"$loop\"}"
  started=$(field started)
  echo "GUSTVM INFO pids$SFX: idle tasks $idle, expected $expect sleeps, started $started"
  if [ $rc -ne 0 ] || [ -z "$started" ]; then fail pids "the fork loop failed ($rc): $body"
  elif [ "$started" -gt "$expect" ] || [ "$started" -lt $((expect - 3)) ]; then
    fail pids "started $started sleeps, expected $expect (1024 - $idle idle tasks - 2)"
  elif [ "$(events $ROOMY/pids.events max)" -le "${max_before:-0}" ]; then
    fail pids "pids.events counts no fork refused at pids.max: $(cat $ROOMY/pids.events)"
  else
    inv roomy "{\"cmd\":\"$PRINT_CG\"}"
    if [ $rc -ne 0 ]; then fail pids "the function does not answer after the fork loop: $body"
    else ok pids; fi
  fi
fi

# Leftover children live as long as their instance, and end with it (scaled to zero after
# 3 s idle).
inv brief "{\"cmd\":\"sleep 1001 > /dev/null 2>&1 & $PRINT_CG\"}"
BRIEF=$(cgdir)
if [ $rc -ne 0 ]; then fail leftovers "invoke failed ($rc): $body"
elif ! running "sleep 1001"; then fail leftovers "the background child is not running"
elif ! within 120 gone $BRIEF; then fail leftovers "the instance was not stopped: $BRIEF stays"
elif ! within 30 not_running "sleep 1001"; then fail leftovers "sleep 1001 outlived its instance"
else ok leftovers; fi

# Shutdown: SIGTERM, exit 0, and none of Gust's cgroups left but its own (empty) leaf.
kill -TERM $GUST
if ! within 120 exited; then
  fail shutdown "gust did not exit within 120 s of SIGTERM"
  kill -9 $GUST
else
  wait $GUST; st=$?
  left=$(find $CG -mindepth 1 -type d \( -name 'gust-*' -o -name 'i-*' \) | tr '\n' ' ')
  busy=$(for l in $BASE*/gust; do [ -n "$(cat $l/cgroup.procs)" ] && echo $l; done)
  if [ $st -ne 0 ]; then fail shutdown "gust exited with $st"
  elif [ -n "$left" ]; then fail shutdown "cgroups left: $left"
  elif [ -n "$busy" ]; then fail shutdown "processes left in $busy"
  elif [ -e $STATE/gust.json ]; then fail shutdown "$STATE/gust.json stays"
  else ok shutdown; fi
fi
sleeps=$(for f in /proc/[0-9]*/cmdline; do tr '\0' ' ' < $f; echo; done 2>/dev/null | grep -c '^sleep 100')
[ "$sleeps" = 0 ] || echo "GUSTVM INFO $sleeps sleeps left after the phase$SFX"
sed "s/^/GUSTVM LOG$SFX /" $LOG
}

# Gust as root in the root cgroup.
checks "" $CG root
# Gust as an unprivileged user in a subtree delegated to it (systemd's Delegate=yes model:
# the host enables the controllers above it and chowns the cgroup to the user).
echo "+memory +pids +cpu" > $CG/cgroup.subtree_control
checks -delegated $CG/delegated 1000
dmesg | sed 's/^/GUSTVM DMESG /'
echo "GUSTVM DONE"
poweroff -f
EOF
sed -i "s|@UP_ARGS@|$UP_ARGS|" "$root/init"
chmod 755 "$root/init"
cat > "$root/bin/as-gust" <<'EOF'
#!/bin/sh
# as-gust BASE USER HOME CMD...: CMD as root, or as USER as the only process of a new cgroup
# BASE-<n> delegated to USER (chowned as systemd's Delegate=yes does). Always by exec, so
# that the caller's $! is CMD's pid.
base=$1 user=$2 home=$3; shift 3
[ "$user" = root ] && exec "$@"
n=$base-$(cut -d' ' -f1 /proc/uptime | tr . -)
mkdir $n && chown $user:$user $n $n/cgroup.procs $n/cgroup.subtree_control $n/cgroup.threads || exit 125
echo $$ > $n/cgroup.procs || exit 125
exec nsenter -F -S $user -G $user env HOME=$home "$@"
EOF
chmod 755 "$root/bin/as-gust"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

# --- the VM ----------------------------------------------------------------------------------
step "booting $KVER under TCG ($(du -h "$work/initrd.gz" | cut -f1) initramfs, at most $TIMEOUT s)"
log=$work/console.log
start=$(date +%s)
set +e
timeout --kill-after=10 "$TIMEOUT" qemu-system-x86_64 -accel tcg -m 1024 -smp 2 \
  -kernel "$KERNEL" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 cgroup_no_v1=all loglevel=3" \
  -nodefaults -display none -serial stdio -monitor none -no-reboot -nic none \
  < /dev/null > "$log.raw" 2>&1
qemu=$?
tr -d '\r' < "$log.raw" > "$log"
set -e
step "the VM ran $(($(date +%s) - start)) s (qemu exit $qemu)"

failed=0
for c in $EXPECTED; do
  if grep -q "^GUSTVM CHECK $c ok$" "$log"; then
    echo "GUSTVM CHECK $c ok"
  else
    failed=1
    line=$(grep -a "^GUSTVM CHECK $c " "$log" | head -n 1 || true)
    echo "${line:-GUSTVM CHECK $c FAIL (no result: the guest stopped before it)}"
  fi
done
grep -aq '^GUSTVM DONE' "$log" || { failed=1; echo "GUSTVM DONE missing (qemu exit $qemu; timeout $TIMEOUT s)"; }
if [[ $failed -ne 0 ]]; then
  echo "----- console log -----"
  cat "$log"
  echo "----- end of console log -----"
  exit 1
fi
grep -a '^GUSTVM INFO' "$log" || true
echo "cgroup2-vm-test: every check passed"
