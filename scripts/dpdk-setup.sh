#!/usr/bin/env bash
# Prepares a bare-metal machine for rill's DPDK ingress (`rill serve --dpdk ...`):
# reserves 2 MiB huge pages, loads vfio-pci and binds the NIC to it with DPDK's own
# dpdk-devbind.py (Debian package dpdk), checks that both took, and prints the kernel
# command line that makes them survive a reboot and isolates cores for the shards. Without
# --nic it reserves the huge pages only (DPDK's virtual devices, such as net_ring or
# net_af_packet, need no binding). Run as root; every step says what it does, and
# --dry-run only prints them. Undo with --unbind PCI_ADDRESS (gives the NIC back to its
# kernel driver, and checks that it took). What it sets lasts until the next reboot: run it
# again after each boot (a systemd unit can), or put the printed parameters on the kernel
# command line. A NIC is named by its PCI address, whole (0000:3b:00.0) or short (3b:00.0),
# or, while the kernel still has it, by its interface name (ens1f0).
#
# usage: scripts/dpdk-setup.sh [--nic PCI_ADDRESS|INTERFACE] [--hugepages N] [--cores LIST] [--dry-run]
#        scripts/dpdk-setup.sh --unbind PCI_ADDRESS --driver KERNEL_DRIVER
#        scripts/dpdk-setup.sh --status
# Environment, for tests only: RILL_TEST_SYSFS=DIR reads and writes a fake sysfs tree at DIR
# in place of /sys, and then changes nothing outside it (no package, module or mount; no
# root needed). tests/cli/test_dpdk_setup.sh runs the script so, with a fake dpdk-devbind.py.
set -euo pipefail

nic=""
hugepages=1024 # 2 MiB pages: 2 GiB, for the mempools and rill's rings and log buffers
cores=""
dry=0
unbind=""
driver=""
status=0
while [ $# -gt 0 ]; do
	case "$1" in
	--nic) nic=$2; shift 2 ;;
	--hugepages) hugepages=$2; shift 2 ;;
	--cores) cores=$2; shift 2 ;;
	--dry-run) dry=1; shift ;;
	--unbind) unbind=$2; shift 2 ;;
	--driver) driver=$2; shift 2 ;;
	--status) status=1; shift ;;
	-h|--help) sed -n '2,19p' "$0"; exit 0 ;;
	*) echo "dpdk-setup: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done
case "$hugepages" in ''|*[!0-9]*) echo "dpdk-setup: --hugepages takes a count" >&2; exit 2 ;; esac

sysfs=${RILL_TEST_SYSFS:-/sys}
fake=0
if [ "$sysfs" != /sys ]; then
	fake=1
	echo "dpdk-setup: RILL_TEST_SYSFS: a test's fake sysfs at $sysfs; no package, module or mount is touched"
fi

run() {
	echo "+ $*"
	if [ "$dry" -eq 0 ]; then "$@"; fi
}
# A step outside sysfs (a package, a kernel module, a mount): printed only against a fake
# sysfs, which it would not reach.
run_system() {
	if [ "$fake" -eq 1 ]; then
		echo "+ $* (skipped: RILL_TEST_SYSFS)"
		return 0
	fi
	run "$@"
}
fail() {
	echo "dpdk-setup: $*" >&2
	exit 1
}
# The kernel driver a PCI device is bound to, from its driver link; empty when none.
pci_driver() {
	local link
	link=$(readlink "$sysfs/bus/pci/devices/$1/driver" 2>/dev/null) || return 0
	basename "$link"
}
# The whole PCI address (0000:3b:00.0) of a NIC given by --nic or --unbind: as is, with the
# domain added to the short form (3b:00.0), or that of a kernel interface (ens1f0; a virtio
# NIC's interface hangs below a virtio device, below its PCI function). dpdk-devbind.py
# takes all three, but the device's driver link, which says whether a bind took, is under
# the whole address only.
pci_address() { # OPTION NAME
	local name addr dev
	name=$(printf '%s' "$2" | tr 'A-F' 'a-f')
	if [[ "$name" =~ ^[0-9a-f]+:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]]; then
		addr=$name
	elif [[ "$name" =~ ^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]]; then
		addr=0000:$name
	elif [ -n "$2" ] && [[ "$2" != */* ]] && [ -e "$sysfs/class/net/$2" ]; then
		[ -e "$sysfs/class/net/$2/device" ] ||
			fail "$1 $2: the interface has no device (a virtual one, such as a bridge or veth," \
				"needs no binding: use a virtual DPDK device, see --help)"
		dev=$(readlink -f "$sysfs/class/net/$2/device")
		addr=$(basename "$dev")
		[[ "$addr" =~ ^[0-9a-f]+:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] || addr=$(basename "$(dirname "$dev")")
		[[ "$addr" =~ ^[0-9a-f]+:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$ ]] ||
			fail "$1 $2: the interface's device ($dev) is not a PCI function: only PCI NICs bind to vfio-pci"
	else
		fail "$1 '$2' is neither a PCI address (0000:3b:00.0 or 3b:00.0) nor a network" \
			"interface of this machine (a NIC bound to vfio-pci has none: give its PCI" \
			"address; --status lists both)"
	fi
	[ -e "$sysfs/bus/pci/devices/$addr" ] ||
		fail "$1 $2: this machine has no PCI device $addr (--status lists the NICs)"
	echo "$addr"
}

nr=$sysfs/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ "$status" -eq 1 ]; then # read-only: no root, nothing installed
	grep -E 'HugePages_(Total|Free)|Hugepagesize' /proc/meminfo
	if command -v dpdk-devbind.py >/dev/null; then
		dpdk-devbind.py --status-dev net
	else
		echo "dpdk-setup: dpdk-devbind.py is missing (Debian package dpdk; this script installs it as root)"
	fi
	exit 0
fi

if [ "$(id -u)" -ne 0 ] && [ "$dry" -eq 0 ] && [ "$fake" -eq 0 ]; then
	fail "run as root (or with --dry-run)"
fi
if [ -n "$unbind" ]; then
	[ -n "$driver" ] || { echo "dpdk-setup: --unbind needs --driver (e.g. ixgbe, i40e, mlx5_core)" >&2; exit 2; }
	unbind=$(pci_address --unbind "$unbind")
fi
if [ -n "$nic" ]; then nic=$(pci_address --nic "$nic"); fi
if [ -n "$nic$unbind" ] && ! command -v dpdk-devbind.py >/dev/null; then
	echo "dpdk-setup: installing Debian's dpdk package (dpdk-devbind.py)"
	run_system env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	run_system env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpdk
	[ "$dry" -eq 1 ] || command -v dpdk-devbind.py >/dev/null ||
		fail "dpdk-devbind.py is still missing after installing Debian's dpdk package"
fi

if [ -n "$unbind" ]; then
	bound=$(pci_driver "$unbind")
	echo "dpdk-setup: giving $unbind back to $driver (its driver now: ${bound:-none})"
	run dpdk-devbind.py --bind="$driver" "$unbind"
	if [ "$dry" -eq 0 ]; then
		# As for the bind below: dpdk-devbind.py's exit status does not say whether it took.
		bound=$(pci_driver "$unbind")
		[ "$bound" = "$driver" ] ||
			fail "$unbind is not bound to $driver (its driver: ${bound:-none}): see" \
				"dpdk-devbind.py's message above; --driver takes the kernel driver's name as" \
				"lspci -k lists it (ixgbe, i40e, mlx5_core, virtio-pci), and its module must" \
				"be loadable (modprobe DRIVER)"
	fi
	exit 0
fi

[ -e "$nr" ] || fail "this kernel offers no 2 MiB huge pages ($nr is missing)"
# Only ever raised: a machine that reserves more for something else keeps them.
current=$(cat "$nr")
if [ "$current" -ge "$hugepages" ]; then
	echo "dpdk-setup: $current huge pages of 2 MiB reserved already (asked for $hugepages): kept"
else
	echo "dpdk-setup: reserving $hugepages huge pages of 2 MiB (there were $current)"
	run sh -c "echo $hugepages > $nr"
fi
run_system mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || run_system mount -t hugetlbfs nodev /dev/hugepages
if [ "$dry" -eq 0 ]; then
	got=$(cat "$nr")
	[ "$got" -ge "$hugepages" ] ||
		fail "the kernel reserved $got of $hugepages huge pages (memory is fragmented):" \
			"reserve them at boot (hugepages=$hugepages on the kernel command line, below)"
fi

if [ -n "$nic" ]; then
	echo "dpdk-setup: binding $nic to vfio-pci (the NIC leaves the kernel: its addresses go too)"
	run_system modprobe vfio-pci
	run dpdk-devbind.py --bind=vfio-pci "$nic"
	if [ "$dry" -eq 0 ]; then
		# dpdk-devbind.py exits 0 also when it declined (an interface with routes) or the
		# bind failed: the device's driver link says what happened.
		bound=$(pci_driver "$nic")
		[ "$bound" = vfio-pci ] ||
			fail "$nic is not bound to vfio-pci (its driver: ${bound:-none}): see" \
				"dpdk-devbind.py's message above; an interface still up with routes is" \
				"left alone (ip link set DEV down), and vfio-pci needs the IOMMU on (below)"
	fi
else
	echo "dpdk-setup: no --nic: huge pages only (virtual devices need no binding)"
fi

iommu="intel_iommu=on iommu=pt"
grep -q AuthenticAMD /proc/cpuinfo 2>/dev/null && iommu="amd_iommu=on iommu=pt"
echo "dpdk-setup: none of this survives a reboot. To have it at boot, add to the kernel"
echo "  command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot):"
echo "    default_hugepagesz=2M hugepagesz=2M hugepages=$hugepages $iommu"
if [ -n "$cores" ]; then
	echo "  and, to keep the kernel off cores $cores:"
	echo "    isolcpus=$cores nohz_full=$cores rcu_nocbs=$cores"
	echo "  listing the same cores for the shards; leave one core for the kernel's I/O."
fi
[ -n "$nic" ] && echo "  The binding itself is made again after each boot: run this script (or a unit that does)."

if [ -n "$nic" ]; then
	cat <<EOT
dpdk-setup: done. Start rill with, for example:
  rill serve --shards 2 --poll busy --dpdk "-a $nic -l 0 --file-prefix=rill" --dpdk-port 0
(one RX queue per shard; RSS spreads the UDP sources over them; events go to UDP port 7401)
EOT
else
	cat <<EOT
dpdk-setup: done. A virtual device, for example:
  rill serve --dpdk "--vdev=net_af_packet0,iface=eth0 -l 0 --file-prefix=rill" --dpdk-port 0
EOT
fi
