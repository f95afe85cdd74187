#!/usr/bin/env bash
# scripts/dpdk-setup.sh against a fake sysfs (RILL_TEST_SYSFS) and a fake dpdk-devbind.py
# that, as the real one, takes a whole PCI address, a short one or an interface name, and
# exits 0 also when it leaves the device as it was. A bind given the short address or an
# interface name succeeds and says so, with the whole address in the EAL example; --unbind
# checks that the NIC went back; a name that is no NIC of the machine is refused. Nothing of
# the machine's own is touched: modprobe, mount and apt-get are stubs that fail the test.
# usage: test_dpdk_setup.sh RILL_BINARY (unused: the script is found beside the tests)
. "$(dirname "$0")/../common/test_env.sh"

script=$(cd "$(dirname "$0")/../../scripts" && pwd)/dpdk-setup.sh
# A script that ignores RILL_TEST_SYSFS would reserve huge pages and bind on this machine.
if ! grep -q RILL_TEST_SYSFS "$script"; then
	echo "FAIL: $script does not take RILL_TEST_SYSFS: not run (it would change this machine)"
	exit 1
fi

sys=$tmp/sys
bin=$tmp/bin
mkdir -p "$bin" "$sys/bus/pci/devices" "$sys/bus/pci/drivers"/{ixgbe,virtio-pci,vfio-pci} \
	"$sys/kernel/mm/hugepages/hugepages-2048kB" "$sys/class/net"
# A PCI function as sysfs shows one: its folder under devices/, a link to it from
# bus/pci/devices/, its driver link, and its interface (while the kernel has it) in class/net.
pci_add() { # ADDRESS DRIVER [INTERFACE [VIRTIO]]
	local dev=$sys/devices/pci0000:00/$1
	mkdir -p "$dev"
	ln -s "../../../devices/pci0000:00/$1" "$sys/bus/pci/devices/$1"
	ln -sfn "../../../bus/pci/drivers/$2" "$dev/driver"
	[ -n "${3:-}" ] || return 0
	if [ -n "${4:-}" ]; then # a virtio NIC: PCI function, then virtioN, then the interface
		mkdir -p "$dev/$4/net/$3"
		ln -s "../../../$4" "$dev/$4/net/$3/device"
		ln -s "../../devices/pci0000:00/$1/$4/net/$3" "$sys/class/net/$3"
	else
		mkdir -p "$dev/net/$3"
		ln -s "../../../$1" "$dev/net/$3/device"
		ln -s "../../devices/pci0000:00/$1/net/$3" "$sys/class/net/$3"
	fi
}
pci_add 0000:3b:00.0 ixgbe ens1f0
pci_add 0000:00:03.0 virtio-pci eth0 virtio2
mkdir -p "$sys/devices/virtual/net/lo"
ln -s ../../devices/virtual/net/lo "$sys/class/net/lo"
echo 0 >"$sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
driver_of() { basename "$(readlink "$sys/bus/pci/devices/$1/driver")"; }

# The fake dpdk-devbind.py: resolves its device as the real one does, records its
# arguments, moves the driver link, and with FAKE_DEVBIND_DECLINE set declines and still
# exits 0 (as the real one does for an interface with routes, or a bind that failed).
cat >"$bin/dpdk-devbind.py" <<'EOF'
#!/usr/bin/env bash
echo "$*" >>"$FAKE_DEVBIND_LOG"
sys=$RILL_TEST_SYSFS driver="" dev=""
for a; do case "$a" in --bind=*) driver=${a#--bind=} ;; -*) ;; *) dev=$a ;; esac; done
if [ -e "$sys/bus/pci/devices/$dev" ]; then addr=$dev
elif [ -e "$sys/bus/pci/devices/0000:$dev" ]; then addr=0000:$dev
elif [ -e "$sys/class/net/$dev/device" ]; then # a virtio NIC's is below its PCI function
	addr=$(readlink -f "$sys/class/net/$dev/device")
	case "$addr" in */virtio*) addr=$(dirname "$addr") ;; esac
	addr=$(basename "$addr")
else echo "Error: Unknown device: $dev" >&2; exit 1; fi
if [ -n "${FAKE_DEVBIND_DECLINE:-}" ]; then
	echo "Warning: routing table indicates that interface $addr is active. Not modifying"
	exit 0
fi
ln -sfn "../../../bus/pci/drivers/$driver" "$sys/bus/pci/devices/$addr/driver"
EOF
# What must not run against a fake sysfs: each records its call and fails.
for tool in modprobe mount umount apt-get; do
	printf '#!/bin/sh\necho "%s $*" >>"%s"\nexit 1\n' "$tool" "$tmp/system.log" >"$bin/$tool"
done
chmod +x "$bin"/*
export PATH="$bin:$PATH" RILL_TEST_SYSFS=$sys FAKE_DEVBIND_LOG=$tmp/devbind.log
: >"$tmp/system.log"

setup() { # ARGS...: runs the script; its status in $rc, stdout+stderr in $out
	: >"$FAKE_DEVBIND_LOG"
	out=$("$script" "$@" 2>&1)
	rc=$?
}

setup --nic 3b:00.0 --hugepages 8
check "--nic 3b:00.0 (short address) exits 0" '[ $rc -eq 0 ] || { echo "$out"; false; }'
check "... and the NIC is bound to vfio-pci" '[ "$(driver_of 0000:3b:00.0)" = vfio-pci ]'
check "... dpdk-devbind.py was given the whole address" \
	'grep -qx -- "--bind=vfio-pci 0000:3b:00.0" "$FAKE_DEVBIND_LOG"'
check "... the EAL example has the whole address" '[[ "$out" == *"-a 0000:3b:00.0 "* ]]'
check "... the huge pages went to the fake sysfs" \
	'[ "$(cat "$sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")" = 8 ]'

ln -sfn ../../../bus/pci/drivers/ixgbe "$sys/devices/pci0000:00/0000:3b:00.0/driver"
setup --nic ens1f0
check "--nic ens1f0 (interface name) exits 0" '[ $rc -eq 0 ] || { echo "$out"; false; }'
check "... and its NIC is bound to vfio-pci" '[ "$(driver_of 0000:3b:00.0)" = vfio-pci ]'
check "... the EAL example has its PCI address, not the interface name" \
	'[[ "$out" == *"-a 0000:3b:00.0 "* && "$out" != *"-a ens1f0"* ]]'

setup --nic eth0
check "--nic of a virtio NIC's interface binds its PCI function" \
	'[ $rc -eq 0 ] && [ "$(driver_of 0000:00:03.0)" = vfio-pci ] || { echo "$out"; false; }'

ln -sfn ../../../bus/pci/drivers/ixgbe "$sys/devices/pci0000:00/0000:3b:00.0/driver"
FAKE_DEVBIND_DECLINE=1 setup --nic 0000:3b:00.0
check "a bind dpdk-devbind.py declined (exit 0) fails, naming the driver" \
	'[ $rc -eq 1 ] && [[ "$out" == *"not bound to vfio-pci (its driver: ixgbe)"* ]]'

ln -sfn ../../../bus/pci/drivers/vfio-pci "$sys/devices/pci0000:00/0000:3b:00.0/driver"
FAKE_DEVBIND_DECLINE=1 setup --unbind 3b:00.0 --driver ixgbe
check "--unbind that dpdk-devbind.py did not carry out (exit 0) fails" '[ $rc -ne 0 ]'
check "... saying the NIC is still with vfio-pci" \
	'[[ "$out" == *"0000:3b:00.0 is not bound to ixgbe (its driver: vfio-pci)"* ]]'
setup --unbind 3b:00.0 --driver ixgbe
check "--unbind 3b:00.0 gives the NIC back and exits 0" \
	'[ $rc -eq 0 ] && [ "$(driver_of 0000:3b:00.0)" = ixgbe ] || { echo "$out"; false; }'

for bad in nosuch0 lo 3b:00.1 0000:3b:00 ../3b:00.0; do
	setup --nic "$bad"
	check "--nic $bad is refused with a message, nothing bound" \
		'[ $rc -eq 1 ] && [[ "$out" == *"dpdk-setup: --nic"* ]] && [ ! -s "$FAKE_DEVBIND_LOG" ]'
done
setup --nic nosuch0
check "... an unknown name is said to be neither an address nor an interface" \
	'[[ "$out" == *"neither a PCI address"* ]]'

ln -sfn ../../../bus/pci/drivers/ixgbe "$sys/devices/pci0000:00/0000:3b:00.0/driver"
pages=$(cat "$sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
setup --nic 3b:00.0 --hugepages $((pages + 8)) --dry-run
check "--dry-run exits 0 and changes nothing" \
	'[ $rc -eq 0 ] && [ "$(driver_of 0000:3b:00.0)" = ixgbe ] && [ ! -s "$FAKE_DEVBIND_LOG" ] &&
	 [ "$(cat "$sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")" = "$pages" ]'

check "no modprobe, mount or apt-get ran" '[ ! -s "$tmp/system.log" ] || { cat "$tmp/system.log"; false; }'
exit $fail
