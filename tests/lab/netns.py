"""A lab of real tunnelling tools in network namespaces the lab creates (root only).

    dwl-srv      br0 10.77.0.1  dnsmasq: the clients' resolver (a pod's node-local DNS)
                     10.77.0.3  iodined, authoritative for i.iodinelab.test (forwarded to it)
                     10.77.0.4  dns2tcpd, authoritative for d.dns2tcplab.test
    dwl-iodine       10.77.0.11 the iodine client: pings 4 KB through its tunnel
    dwl-dns2tcp      10.77.0.12 the dns2tcp client: sends 4 KB to a TCP sink behind its server
    dwl-benign       10.77.0.13 an ordinary client: hundreds of names of a local zone, looked up
                                again and again, and some NXDOMAINs

tshark captures what the resolver is asked on br0 (client <-> 10.77.0.1 only: the resolver's
own traffic to the tunnel servers stays on the namespace's loopback). Every address lives in
these namespaces; every process and wait is bounded; everything is torn down on exit.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SRV = "dwl-srv"
CLIENTS = {"iodine": "10.77.0.11", "dns2tcp": "10.77.0.12", "benign": "10.77.0.13"}
# The pods the clients stand for in Hubble's lines and metrics (address -> ns/pod).
PODS = {
    "10.77.0.11": "tunnel-lab/iodine-client-7c9d5b8f4-q2wxp",
    "10.77.0.12": "tunnel-lab/dns2tcp-client-5f6b7c8d9-h7k2m",
    "10.77.0.13": "corp/inventory-6d8f7b9c5-k4m2n",
}
NODE = "lab-node"
RESOLVER = "10.77.0.1"
IODINE_ZONE = "i.iodinelab.test"
DNS2TCP_ZONE = "d.dns2tcplab.test"
BENIGN_ZONE = "corp.benignlab.test"
BINARIES = ("ip", "iodine", "iodined", "dns2tcpc", "dns2tcpd", "dnsmasq", "tshark")
PASSWORD = "dwlab-not-a-secret"


def unavailable() -> str | None:
    """Why the lab cannot run here, or None."""
    if sys.platform != "linux":
        return "the lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the lab needs root (ip netns, tun devices)"
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        return "missing binaries: " + ", ".join(missing) + " (bash scripts/install-test-deps.sh)"
    if not os.path.exists("/dev/net/tun"):
        return "no /dev/net/tun (iodine needs a tun device)"
    probe = subprocess.run(
        ["ip", "netns", "add", "dwl-probe"], capture_output=True, text=True, timeout=10
    )
    if probe.returncode != 0:
        return f"network namespaces not permitted: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", "dwl-probe"], capture_output=True, timeout=10)
    return None


def _run(*args: str, ns: str | None = None, timeout: float = 10) -> None:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or done.returncode}")


class Lab:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.namespaces = [SRV] + [f"dwl-{c}" for c in CLIENTS]

    # -- set-up and tear-down -------------------------------------------------------------
    def up(self) -> None:
        self.down()  # a previous run killed hard leaves its namespaces behind
        for ns in self.namespaces:
            _run("ip", "netns", "add", ns)
            _run("ip", "link", "set", "lo", "up", ns=ns)
        _run("ip", "link", "add", "br0", "type", "bridge", ns=SRV)
        _run("ip", "link", "set", "br0", "up", ns=SRV)
        for addr in (RESOLVER, "10.77.0.3", "10.77.0.4"):
            _run("ip", "addr", "add", f"{addr}/24", "dev", "br0", ns=SRV)
        for i, (name, addr) in enumerate(CLIENTS.items()):
            ns = f"dwl-{name}"
            _run(
                "ip",
                "-n",
                SRV,
                "link",
                "add",
                f"vs{i}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns,
            )
            _run("ip", "link", "set", f"vs{i}", "master", "br0", "up", ns=SRV)
            _run("ip", "addr", "add", f"{addr}/24", "dev", "eth0", ns=ns)
            _run("ip", "link", "set", "eth0", "up", ns=ns)

    def down(self) -> None:
        for _, p in reversed(self.procs):
            self.stop(p)
        self.procs.clear()
        for ns in getattr(self, "namespaces", []):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)

    def start(self, name: str, ns: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"{name}.log", "wb")  # noqa: SIM115 - the child owns it
        p = subprocess.Popen(
            ["ip", "netns", "exec", ns, *args], stdout=log, stderr=subprocess.STDOUT
        )
        self.procs.append((name, p))
        return p

    def stop(self, p: subprocess.Popen[bytes]) -> None:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def wait_log(self, name: str, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        path = self.dir / f"{name}.log"
        while time.monotonic() < deadline:
            if path.exists() and text in path.read_text(errors="replace"):
                return
            time.sleep(0.2)
        tail = path.read_text(errors="replace")[-600:] if path.exists() else ""
        raise RuntimeError(f"{name}: no {text!r} after {timeout:.0f} s; log ends: {tail}")

    # -- the servers ------------------------------------------------------------------------
    def servers(self) -> None:
        hosts = self.dir / "corp.hosts"
        hosts.write_text(
            "".join(
                f"10.77.{8 + i // 250}.{i % 250 + 1} {h}.{BENIGN_ZONE}\n"
                for i, h in enumerate(benign_hosts())
            )
        )
        self.start(
            "dnsmasq",
            SRV,
            "dnsmasq",
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--user=root",
            "--pid-file=",
            f"--listen-address={RESOLVER}",
            "--bind-interfaces",
            f"--server=/{IODINE_ZONE}/10.77.0.3",
            f"--server=/{DNS2TCP_ZONE}/10.77.0.4",
            f"--local=/{BENIGN_ZONE}/",
            f"--addn-hosts={hosts}",
            "--cache-size=1000",
            "--log-queries",
            "--log-facility=-",
        )
        self.start(
            "iodined",
            SRV,
            "iodined",
            "-f",
            "-c",
            "-P",
            PASSWORD,
            "-l",
            "10.77.0.3",
            "-p",
            "53",
            "10.99.0.1/27",
            IODINE_ZONE,
        )
        conf = self.dir / "dns2tcpd.conf"
        conf.write_text(
            f"listen = 10.77.0.4\nport = 53\nuser = root\nchroot = {self.dir}\n"
            f"domain = {DNS2TCP_ZONE}\nkey = {PASSWORD}\nresources = sink:10.77.0.4:7000\n"
        )
        self.start("dns2tcpd", SRV, "dns2tcpd", "-F", "-f", str(conf))
        # The dns2tcp resource: a TCP sink that reads and discards.
        self.start("sink", SRV, sys.executable, "-c", _SINK, "10.77.0.4", "7000")
        self.wait_log("iodined", "Listening to dns for domain", 10)
        self.wait_log("sink", "listening", 10)
        _wait_port(SRV, RESOLVER, 53)

    # -- the clients ------------------------------------------------------------------------
    def iodine(self, payload: int, timeout: float) -> None:
        """Bring the tunnel up through the resolver (-r: no raw-UDP shortcut to the server),
        then ping `payload` bytes through it."""
        p = self.start(
            "iodine", "dwl-iodine", "iodine", "-f", "-r", "-P", PASSWORD, RESOLVER, IODINE_ZONE
        )
        self.wait_log("iodine", "Connection setup complete", timeout)
        # A TCP sink on the server's end of the tunnel: the bytes cross the tunnel both ways
        # (data up as query names, acknowledgements down as NULL answers).
        self.start("tunnel-sink", SRV, sys.executable, "-c", _SINK, "10.99.0.1", "7001")
        self.wait_log("tunnel-sink", "listening", 10)
        self._send_through("dwl-iodine", "10.99.0.1", 7001, payload, "tunnel-sink", timeout)
        self.stop(p)

    def dns2tcp(self, payload: int, timeout: float) -> None:
        p = self.start(
            "dns2tcpc",
            "dwl-dns2tcp",
            "dns2tcpc",
            "-z",
            DNS2TCP_ZONE,
            "-k",
            PASSWORD,
            "-r",
            "sink",
            "-l",
            "4444",
            RESOLVER,
        )
        _wait_port("dwl-dns2tcp", "127.0.0.1", 4444, tcp=True, timeout=timeout)
        self._send_through("dwl-dns2tcp", "127.0.0.1", 4444, payload, "sink", timeout)
        self.stop(p)

    def _send_through(
        self, ns: str, host: str, port: int, payload: int, sink: str, timeout: float
    ) -> None:
        """`payload` bytes over TCP from `ns` to host:port (a tunnel's entry), then wait until
        the sink at the tunnel's far end logs them all."""
        _run(sys.executable, "-c", _SEND, host, str(port), str(payload), ns=ns, timeout=timeout)
        self.wait_log(sink, f"received {payload}", timeout)

    def benign(self, seconds: float, seed: int = 5) -> None:
        plan = self.dir / "benign.plan"
        steps = benign_plan(seconds, seed)
        plan.write_text("".join(f"{at:.3f} {qt} {name}\n" for at, qt, name in steps))
        _run(
            sys.executable,
            "-c",
            _BENIGN,
            RESOLVER,
            str(plan),
            ns="dwl-benign",
            timeout=seconds + 60,
        )


def benign_hosts() -> list[str]:
    """A local zone's hosts: services, numbered machines, printers, people's laptops."""
    rng = random.Random(3)
    roles = ["web", "db", "cache", "build", "ci", "mail", "ldap", "vpn", "git", "wiki", "log"]
    names = [f"{r}-{i:02d}" for r in roles for i in range(1, 13)]
    names += [f"printer-{f}{i}" for f in "abcd" for i in range(1, 6)]
    people = ["anna", "ben", "chen", "dara", "eli", "fatma", "gus", "hana", "ivan", "jo"]
    names += [f"{p}-laptop" for p in people] + [f"{p}-desktop" for p in people]
    rng.shuffle(names)
    return names


def benign_plan(seconds: float, seed: int) -> list[tuple[float, int, str]]:
    """Each host of the local zone looked up two to four times at random moments (A, some
    AAAA), and names that do not exist (old hosts, typos: NXDOMAIN), in time order."""
    rng = random.Random(seed)
    plan: list[tuple[float, int, str]] = []
    for h in benign_hosts():
        for _ in range(rng.randint(2, 4)):
            qtype = 28 if rng.random() < 0.2 else 1  # AAAA or A
            plan.append((rng.uniform(0, seconds), qtype, f"{h}.{BENIGN_ZONE}"))
    for i in range(40):
        gone = f"old-{rng.choice(['web', 'db', 'nas'])}-{i}.{BENIGN_ZONE}"
        plan.append((rng.uniform(0, seconds), 1, gone))
    return sorted(plan)


@contextmanager
def lab(workdir: Path) -> Iterator[Lab]:
    lb = Lab(workdir)
    try:
        lb.up()
        yield lb
    finally:
        lb.down()


@contextmanager
def capture(lb: Lab, pcap: Path) -> Iterator[None]:
    """tshark on br0, what clients ask the resolver and what it answers; classic pcap."""
    p = lb.start(
        "tshark",
        SRV,
        "tshark",
        "-i",
        "br0",
        "-F",
        "pcap",
        "-w",
        str(pcap),
        "-f",
        f"udp port 53 and host {RESOLVER}",
    )
    lb.wait_log("tshark", "Capturing on", 15)
    time.sleep(0.5)
    try:
        yield
    finally:
        time.sleep(1.0)  # the last answers
        p.send_signal(signal.SIGINT)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def _wait_port(ns: str, host: str, port: int, tcp: bool = False, timeout: float = 10) -> None:
    check = _TCP_PROBE if tcp else _DNS_PROBE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", check, host, str(port)],
            capture_output=True,
            timeout=10,
        )
        if done.returncode == 0:
            return
        time.sleep(0.3)
    raise RuntimeError(f"nothing answers on {host}:{port} in {ns} after {timeout:.0f} s")


# Small programs run inside the namespaces (the interpreter is the same; no imports from here,
# so they run with any working directory).
_SINK = """
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(5); print("listening", flush=True)
def serve(c):
    n = 0
    while True:
        b = c.recv(65536)
        if not b: break
        n += len(b); print(f"received {n}", flush=True)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""
_SEND = """
import os, socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
c.sendall(os.urandom(int(sys.argv[3]))); time.sleep(3); c.close()
"""
_TCP_PROBE = """
import socket, sys
socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
"""
_DNS_PROBE = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
q = bytes.fromhex("abcd01000001000000000000") + b"\\x05probe\\x04test\\x00\\x00\\x01\\x00\\x01"
s.sendto(q, (sys.argv[1], int(sys.argv[2])))
s.recvfrom(512)
"""
# The ordinary client: sends a schedule ("offset qtype name" lines) to the resolver and reads
# each answer, as a stub resolver would.
_BENIGN = """
import socket, struct, sys, time
server, plan = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
t0 = time.monotonic()
for i, line in enumerate(open(plan)):
    at, qtype, name = line.split()
    time.sleep(max(0.0, float(at) - (time.monotonic() - t0)))
    wire = b"".join(bytes([len(x)]) + x.encode() for x in name.strip(".").split("."))
    s.sendto(struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + wire + b"\\0"
             + struct.pack(">HH", int(qtype), 1), (server, 53))
    try:
        s.recvfrom(4096)
    except TimeoutError:
        pass
"""
