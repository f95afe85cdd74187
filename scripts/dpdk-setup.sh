#!/usr/bin/env bash
# Prepares a bare-metal machine for rill's DPDK ingress (`rill serve --dpdk ...`):
# reserves 2 MiB huge pages, loads vfio-pci and binds the NIC to it with DPDK's own
# dpdk-devbind.py (Debian package dpdk), and prints the kernel command line that isolates
# cores for the shards. Run as root; every step says what it does, and --dry-run only
# prints them. Undo with --unbind PCI_ADDRESS (gives the NIC back to its kernel driver).
#
# usage: scripts/dpdk-setup.sh --nic PCI_ADDRESS [--hugepages N] [--cores LIST] [--dry-run]
#        scripts/dpdk-setup.sh --unbind PCI_ADDRESS --driver KERNEL_DRIVER
#        scripts/dpdk-setup.sh --status
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
	-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
	*) echo "dpdk-setup: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
done

run() {
	echo "+ $*"
	if [ "$dry" -eq 0 ]; then "$@"; fi
}

if [ "$(id -u)" -ne 0 ] && [ "$dry" -eq 0 ] && [ "$status" -eq 0 ]; then
	echo "dpdk-setup: run as root (or with --dry-run)" >&2
	exit 1
fi
if ! command -v dpdk-devbind.py >/dev/null; then
	echo "dpdk-setup: installing Debian's dpdk package (dpdk-devbind.py)"
	run apt-get install -y -qq --no-install-recommends dpdk
fi

if [ "$status" -eq 1 ]; then
	grep -E 'HugePages_(Total|Free)' /proc/meminfo
	dpdk-devbind.py --status-dev net
	exit 0
fi

if [ -n "$unbind" ]; then
	[ -n "$driver" ] || { echo "dpdk-setup: --unbind needs --driver (e.g. ixgbe, i40e, mlx5_core)" >&2; exit 2; }
	run dpdk-devbind.py --bind="$driver" "$unbind"
	exit 0
fi

[ -n "$nic" ] || { echo "dpdk-setup: --nic PCI_ADDRESS needed (see: $0 --status)" >&2; exit 2; }

echo "dpdk-setup: reserving $hugepages huge pages of 2 MiB"
run sh -c "echo $hugepages > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"
run mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || run mount -t hugetlbfs nodev /dev/hugepages

echo "dpdk-setup: binding $nic to vfio-pci (the NIC leaves the kernel: its addresses go too)"
run modprobe vfio-pci
run dpdk-devbind.py --bind=vfio-pci "$nic"

if [ -n "$cores" ]; then
	echo "dpdk-setup: to keep the kernel off cores $cores, add to the kernel command line"
	echo "  (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot):"
	echo "    isolcpus=$cores nohz_full=$cores rcu_nocbs=$cores"
	echo "  and list the same cores for the shards; leave one core for the kernel's I/O."
fi

cat <<EOF
dpdk-setup: done. Start rill with, for example:
  rill serve --shards 2 --poll busy --dpdk "-a $nic -l 0 --file-prefix=rill" --dpdk-port 0
(one RX queue per shard; RSS spreads the UDP sources over them; events go to UDP port 7401)
EOF
