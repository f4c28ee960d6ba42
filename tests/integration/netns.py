"""Hosts on one machine, for the tests of the dataplane between hosts.

Network namespaces A - M - B (and C, D with hosts="ABC" or "ABCD"): A, B,
C and D are the hosts (10.77.0.1, .2, .3 and .4 on their veth), M a
bridge between them (veth pairs, MTU 9000), so a frame dropped in M is
lost on the wire and not retried by the sender's kernel.  nftables'
netdev egress hooks on M's ports drop a share of the frames at random:
towards B, and (with both_ways) towards A.

    net = Net("lmt", "lt")     # names carry this process's pid
    net.teardown(); net.setup(); net.drop(5); ...; net.teardown()

Hosts can run OpenSSH's sshd (net.sshd(WORK, "BCD")): a client key, a
host key and an ssh config made in WORK; the ssh command it returns is
what lamina takes as $LAMINA_SSH.  net.teardown() stops them.  With
own=(FOLDER, ...) each host's sshd (and all it starts) runs in a mount
namespace of its own where each FOLDER is WORK/hosts/H/<FOLDER with '/'
made '_'> (net.own_path(work, h, folder)), so hosts share no state
folder; net.in_host(h, *argv) runs a command there.
"""
import os
import re
import shutil
import subprocess
import time

ADDR = {"A": "10.77.0.1", "B": "10.77.0.2", "C": "10.77.0.3",
        "D": "10.77.0.4"}


def sh(*args, ok=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise SystemExit(f"{' '.join(args)}: {p.stderr.strip()}")
    return p


def pid_alive(pid):
    """Whether process pid (a laminad started in a namespace) still runs."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except (FileNotFoundError, TypeError):
        return False


class Net:
    def __init__(self, ns_prefix, if_prefix, both_ways=False, hosts="AB"):
        tag = f"{os.getpid() % 100000}"
        self.hosts = hosts
        self.ns = {k: f"{ns_prefix}{k}{tag}" for k in hosts + "M"}
        # interface names are at most 15 characters: host h's veth is
        # self.ifs[h.lower()], its peer in M self.ifs[h.lower() + "m"]
        self.ifs = {k: f"{if_prefix}{k}{tag}"
                    for h in hosts.lower() for k in (h, h + "m")}
        # M's port towards each host
        self.towards = {"B": "bm", "A": "am"} if both_ways else {"B": "bm"}
        self.sshds = {}

    def ns_run(self, n, *args, ok=True):
        return sh("ip", "netns", "exec", self.ns[n], *args, ok=ok)

    def setup(self):
        ns, ifs = self.ns, self.ifs
        for n in self.hosts + "M":
            sh("ip", "netns", "add", ns[n])
            sh("ip", "-n", ns[n], "link", "set", "lo", "up")
        sh("ip", "-n", ns["M"], "link", "add", "br0", "type", "bridge")
        for n in self.hosts:
            h = n.lower()
            sh("ip", "link", "add", ifs[h], "type", "veth", "peer", "name",
               ifs[h + "m"])
            sh("ip", "link", "set", ifs[h], "netns", ns[n])
            sh("ip", "link", "set", ifs[h + "m"], "netns", ns["M"])
            sh("ip", "-n", ns["M"], "link", "set", ifs[h + "m"], "mtu",
               "9000", "master", "br0", "up")
        sh("ip", "-n", ns["M"], "link", "set", "br0", "mtu", "9000", "up")
        for n in self.hosts:
            h = n.lower()
            sh("ip", "-n", ns[n], "link", "set", ifs[h], "mtu", "9000", "up")
            sh("ip", "-n", ns[n], "addr", "add", ADDR[n] + "/24", "dev",
               ifs[h])
        self.ns_run("M", "nft", "add", "table", "netdev", "lmt")
        for host, port in self.towards.items():
            self.ns_run("M", "nft", "add", "chain", "netdev", "lmt",
                        self.chain(host),
                        f"{{ type filter hook egress device {ifs[port]} "
                        "priority 0; }")

    @staticmethod
    def chain(host):
        return "out" if host == "B" else "out" + host.lower()

    def drop(self, percent):
        """Drop percent of the frames M sends towards each host."""
        for host in self.towards:
            c = self.chain(host)
            self.ns_run("M", "nft", "flush", "chain", "netdev", "lmt", c)
            if percent:
                self.ns_run("M", "nft", "add", "rule", "netdev", "lmt", c,
                            "numgen", "random", "mod", "100", "<",
                            str(percent), "counter", "drop")

    def dropped(self, host="B"):
        out = self.ns_run("M", "nft", "list", "chain", "netdev", "lmt",
                          self.chain(host)).stdout
        m = re.search(r"counter packets (\d+)", out)
        return int(m.group(1)) if m else 0

    @staticmethod
    def own_path(work, host, folder):
        return os.path.join(work, "hosts", host,
                            folder.strip("/").replace("/", "_"))

    def in_host(self, host, *argv, ok=True):
        """argv in host's network and mount namespaces (its sshd's)."""
        return sh("nsenter", "-t", str(self.sshds[host].pid), "-m", "-n",
                  *argv, ok=ok)

    def sshd(self, work, hosts, own=()):
        """sshd in each of hosts, reached as root with a key made in work;
        the ssh command (for $LAMINA_SSH) once each one answers from A."""
        key = os.path.join(work, "id")
        host_key = os.path.join(work, "host_key")
        for k in (key, host_key):
            if not os.path.exists(k):
                sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", k)
        auth = os.path.join(work, "authorized_keys")
        shutil.copy(key + ".pub", auth)
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation
        for h in hosts:
            conf = os.path.join(work, f"sshd_{h}")
            with open(conf, "w") as f:
                f.write(f"ListenAddress {ADDR[h]}\nPort 22\n"
                        f"HostKey {host_key}\nAuthorizedKeysFile {auth}\n"
                        "PermitRootLogin prohibit-password\n"
                        "PasswordAuthentication no\n"
                        "KbdInteractiveAuthentication no\nUsePAM no\n"
                        f"StrictModes no\nPidFile {work}/sshd_{h}.pid\n")
            binds = ""
            for folder in own:
                mine = self.own_path(work, h, folder)
                os.makedirs(mine, exist_ok=True)
                os.makedirs(folder, exist_ok=True)
                binds += f"mount --bind {mine} {folder} && "
            self.sshds[h] = subprocess.Popen(
                ["ip", "netns", "exec", self.ns[h], "unshare", "--mount",
                 "--propagation", "private", "sh", "-c",
                 binds + f"exec /usr/sbin/sshd -D -e -f {conf}"],
                stdout=subprocess.DEVNULL, stderr=open(conf + ".log", "w"))
        config = os.path.join(work, "ssh_config")
        with open(config, "w") as f:
            f.write(f"Host *\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
                    "  StrictHostKeyChecking no\n"
                    "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
        ssh = f"ssh -F {config}"
        for h in hosts:
            for _ in range(50):  # until it listens
                p = subprocess.run(
                    ["ip", "netns", "exec", self.ns["A"]] + ssh.split() +
                    ["-o", "BatchMode=yes", "-o", "ConnectTimeout=2",
                     "root@" + ADDR[h], "true"], capture_output=True,
                    text=True, timeout=30)
                if p.returncode == 0 or self.sshds[h].poll() is not None:
                    break
                time.sleep(0.1)
            if p.returncode != 0:
                raise SystemExit(f"ssh to {h}: {p.stderr.strip()}")
        return ssh

    def laminads(self, host):
        """Pids of laminads running in namespace host."""
        pids = []
        for p in sh("ip", "netns", "pids", self.ns[host],
                    ok=False).stdout.split():
            try:
                with open(f"/proc/{p}/comm") as f:
                    if f.read().startswith("laminad"):
                        pids.append(int(p))
            except OSError:
                pass
        return pids

    def teardown(self):
        for proc in self.sshds.values():
            proc.kill()
            proc.wait()
        self.sshds = {}
        for n in self.hosts + "M":
            sh("ip", "netns", "del", self.ns[n], ok=False)

    def left(self):
        """Whether any of the namespaces is still there."""
        out = sh("ip", "netns", "list").stdout
        return any(self.ns[n] in out for n in self.hosts + "M")
