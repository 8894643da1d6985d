"""A host of a test's own, joined to this one by a virtual cable the test can cut."""

import os
import subprocess

from tests.system.procs import Disposable

# A locally administered address no interface has: frames sent to it are dropped unseen.
NOWHERE_MAC = "02:00:00:00:00:01"


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


class NetworkNamespace(Disposable):
    """A host of the test's own: a network namespace joined to this one by a veth pair."""

    def __init__(self, name_prefix: str = "pzq", subnet: str = "10.231.17"):
        self.name = f"{name_prefix}{os.getpid()}"
        # Interface names are at most 15 characters.
        self.host_veth, self.ns_veth = f"{self.name}h"[:15], f"{self.name}n"[:15]
        if self.host_veth == self.ns_veth:
            raise ValueError(f"name prefix {name_prefix!r} too long for interface names")
        self.host_address, self.address = f"{subnet}.1", f"{subnet}.2"

    def start(self) -> None:
        """The namespace, the veth pair between it and this namespace, addresses, links up."""
        ip("netns", "add", self.name)
        ip("link", "add", self.host_veth, "type", "veth", "peer", "name", self.ns_veth, "netns", self.name)
        ip("addr", "add", f"{self.host_address}/24", "dev", self.host_veth)
        ip("link", "set", self.host_veth, "up")
        ip("-n", self.name, "addr", "add", f"{self.address}/24", "dev", self.ns_veth)
        ip("-n", self.name, "link", "set", self.ns_veth, "up")
        ip("-n", self.name, "link", "set", "lo", "up")

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def cut(self) -> None:
        """Make every packet between the two sides vanish, both ways, telling no one."""
        # Not `ip route add blackhole`: a blackhole route makes the sender's own connect()
        # fail at once with EINVAL, and one on this side only still lets the namespace's
        # packets in (a query runs, its answer is lost). Pointing each side's neighbour
        # entry at a MAC address nobody has drops the frames at the receiving veth, so
        # connects and sends on either side just go unanswered, as behind a dead switch.
        ip("neigh", "replace", self.address, "lladdr", NOWHERE_MAC, "dev", self.host_veth, "nud", "permanent")
        ip("-n", self.name, "neigh", "replace", self.host_address, "lladdr", NOWHERE_MAC,
           "dev", self.ns_veth, "nud", "permanent")

    def heal(self) -> None:
        """Undo ``cut``: the sides find each other's real MAC addresses again over ARP."""
        ip("neigh", "del", self.address, "dev", self.host_veth, check=False)
        ip("-n", self.name, "neigh", "del", self.host_address, "dev", self.ns_veth, check=False)

    def remove(self) -> None:
        """Delete the namespace and the veth pair (cut or not); safe to call twice."""
        # Deleting either end of a veth pair deletes both; the namespace may be gone already
        # or never have got its end.
        ip("link", "del", self.host_veth, check=False)
        ip("netns", "del", self.name, check=False)
