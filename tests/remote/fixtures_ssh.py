"""Real OpenSSH servers on loopback for the remote tests (recipe: shared/notes/machine-recipes.md).

``sshd_pair`` (session scope) starts two sshd: ``target`` and ``jump`` (a jump host that
forwards TCP to the target), each on a free port with its own host key, both accepting one
client key. ``ssh_env`` (function scope) gives a test its own known_hosts file pre-seeded
with both host keys and an ssh_config file with aliases ``target`` and ``via-jump``
(ProxyJump), so tests never touch the user's ~/.ssh.

Skips when ``/usr/sbin/sshd`` is missing (``apt-get install openssh-server``; .ci/run does).
``Sshd.kill_sessions()`` kills the server-side processes of every open connection (what a
dropped link looks like from the client), leaving the listener up.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@dataclass
class Sshd:
    name: str
    port: int
    dir: Path
    host_pub: str  # "ssh-ed25519 AAAA..." of its host key
    proc: subprocess.Popen | None = None

    host = "127.0.0.1"

    @property
    def pid(self) -> int:
        return int((self.dir / "sshd.pid").read_text())

    def session_pids(self) -> list[int]:
        """Processes sshd forked for connections (children of the listener)."""
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.pid:
                out.append(int(entry.name))
        return out

    def kill_sessions(self) -> int:
        """SIGKILL every connection's server side; -> how many were killed."""
        pids = self.session_pids()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def log(self) -> str:
        path = self.dir / "sshd.log"
        return path.read_text() if path.exists() else ""


def start_sshd(name: str, root: Path, client_pub: Path, *, force_command: Path | None = None,
               sftp: str = "internal-sftp") -> Sshd:
    """A real sshd on a free loopback port under ``root/name``. ``force_command``: every
    session runs that script instead (with $SSH_ORIGINAL_COMMAND): a server that answers as a
    compromised cluster would, in tests only. Stop it with ``stop_sshd``."""
    d = root / name
    d.mkdir(exist_ok=True)
    _keygen(d / "hostkey")
    shutil.copy(client_pub, d / "authorized_keys")
    os.chmod(d / "authorized_keys", 0o600)
    Path("/run/sshd").mkdir(exist_ok=True)
    port = free_port()
    forced = f"ForceCommand {force_command}\n" if force_command is not None else ""
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'hostkey'}\n"
        f"PidFile {d / 'sshd.pid'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"UsePAM no\nStrictModes no\nAllowTcpForwarding yes\nSubsystem sftp {sftp}\n"
        f"MaxStartups 100:30:200\nMaxSessions 64\nLogLevel VERBOSE\n{forced}")
    subprocess.run([SSHD, "-t", "-f", str(d / "sshd_config")], check=True)
    subprocess.run([SSHD, "-f", str(d / "sshd_config"), "-E", str(d / "sshd.log")], check=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.05)
    host_pub = " ".join((d / "hostkey.pub").read_text().split()[:2])
    return Sshd(name, port, d, host_pub)


SFTP_SERVER = "/usr/lib/openssh/sftp-server"


def start_compromised_sshd(d: Path, client_key: Path, wrapper_text: str) -> Sshd:
    """An sshd whose every session runs ``wrapper_text`` (a shell script; ``{dir}`` and
    ``{sftp}`` filled in) in ``d``, with ``d/bin`` ready for fake tools: a cluster that
    answers as a compromised one would. SFTP goes through the wrapper to OpenSSH's
    sftp-server. Skips the test without that server."""
    if not Path(SFTP_SERVER).exists():
        pytest.skip("needs OpenSSH's sftp-server")
    (d / "bin").mkdir(exist_ok=True)
    wrapper = d / "wrapper.sh"
    wrapper.write_text(wrapper_text.format(dir=d, sftp=SFTP_SERVER))
    wrapper.chmod(0o755)
    return start_sshd("server", d, Path(f"{client_key}.pub"), force_command=wrapper,
                      sftp=SFTP_SERVER)


def stop_sshd(server: Sshd) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(server.pid, signal.SIGTERM)


@dataclass
class SshdPair:
    target: Sshd
    jump: Sshd
    client_key: Path  # private key the servers accept
    user: str


@pytest.fixture(scope="session")
def sshd_pair(tmp_path_factory) -> SshdPair:
    if not Path(SSHD).exists():
        pytest.skip("needs OpenSSH's sshd (apt-get install openssh-server)")
    root = tmp_path_factory.mktemp("sshd")
    _keygen(root / "client")
    servers = [start_sshd(n, root, root / "client.pub") for n in ("target", "jump")]
    try:
        yield SshdPair(servers[0], servers[1], root / "client", getpass.getuser())
    finally:
        for s in servers:
            with contextlib.suppress(OSError, ValueError):
                os.kill(s.pid, signal.SIGTERM)


@dataclass
class SshEnv:
    pair: SshdPair
    known_hosts: Path
    ssh_config: Path

    @property
    def target(self) -> Sshd:
        return self.pair.target

    @property
    def jump(self) -> Sshd:
        return self.pair.jump


@pytest.fixture
def ssh_env(sshd_pair, tmp_path) -> SshEnv:
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"[127.0.0.1]:{s.port} {s.host_pub}\n"
                             for s in (sshd_pair.target, sshd_pair.jump)))
    cfg = tmp_path / "ssh_config"
    t, j = sshd_pair.target, sshd_pair.jump
    cfg.write_text(
        f"Host target\n  HostName 127.0.0.1\n  Port {t.port}\n  User {sshd_pair.user}\n"
        f"  IdentityFile {sshd_pair.client_key}\n\n"
        f"Host jumpbox\n  HostName 127.0.0.1\n  Port {j.port}\n  User {sshd_pair.user}\n"
        f"  IdentityFile {sshd_pair.client_key}\n\n"
        f"Host via-jump\n  HostName 127.0.0.1\n  Port {t.port}\n  User {sshd_pair.user}\n"
        f"  IdentityFile {sshd_pair.client_key}\n  ProxyJump jumpbox\n\n"
        f"Host *\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n")
    return SshEnv(sshd_pair, known, cfg)


def keygen(path: Path, key_type: str = "ed25519", passphrase: str = "") -> Path:
    """A new key pair at ``path`` / ``path.pub`` (a key the servers do not accept, a
    passphrase-protected one, or another host key); -> ``path``."""
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-f", str(path)],
                   check=True)
    return path


def keygen_fingerprint(pub: Path) -> str:
    """``SHA256:...`` of a public key file as OpenSSH's own ``ssh-keygen -lf`` prints it."""
    out = subprocess.run(["ssh-keygen", "-lf", str(pub)], check=True, capture_output=True,
                         text=True).stdout
    return out.split()[1]
