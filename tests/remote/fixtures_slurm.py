"""A real single-node Slurm on loopback for the scheduler tests (recipe:
shared/notes/machine-recipes.md, "Real single-node Slurm on localhost").

``slurm_cluster`` (session scope) starts munged with its own key and socket, then slurmctld
and slurmd from a slurm.conf written under a temporary folder: every file (state, spool, pid,
logs, munge socket) lives there and both daemons listen on free ports, so a system Slurm, if
any, is never touched. The node has ``nproc`` CPUs, the machine's memory less a margin, and
four fake GPUs (gres ``File=`` entries pointing at ``mknod`` character devices) so that
``--gpus-per-node`` / ``--gres=gpu:N`` jobs are accepted and see ``CUDA_VISIBLE_DEVICES``.
``MinJobAge`` is an hour so finished jobs stay readable with ``scontrol show job`` (there is
no slurmdbd, hence no sacct). Yields ``SlurmCluster`` with ``.env`` (``{"SLURM_CONF": ...}``,
to pass to every Slurm command: a non-login shell does not inherit it), ``.partition`` and
``.conf_dir``.

Skips when slurmctld or munged is missing (``apt-get install slurm-wlm munge``) or when not
root (slurmd runs jobs as their submitting user and must be root for that). Leaves out
accounting, cgroups and multi-node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

SLURMCTLD = shutil.which("slurmctld") or "/usr/sbin/slurmctld"
SLURMD = shutil.which("slurmd") or "/usr/sbin/slurmd"
MUNGED = shutil.which("munged") or "/usr/sbin/munged"
MUNGEKEY = shutil.which("mungekey") or "/usr/sbin/mungekey"
FAKE_GPUS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb() -> int:
    """MemTotal less a margin: slurmd drains a node that reports less than RealMemory."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            total = int(line.split()[1]) // 1024
            return max(256, total - max(1024, total // 10))
    return 1024


@dataclass
class SlurmCluster:
    conf_dir: Path
    partition: str
    node: str
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *argv: str, check: bool = True, timeout: float = 20) -> str:
        """A Slurm client command against this cluster; -> stdout."""
        proc = subprocess.run(list(argv), env={**os.environ, **self.env}, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr}")
        return proc.stdout

    def logs(self) -> str:
        """The daemons' log tails, for a failing test's message."""
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            path = self.conf_dir / name
            if path.exists():
                out.append(f"--- {name}\n" + "\n".join(path.read_text(
                    errors="replace").splitlines()[-30:]))
        return "\n".join(out)


def _write_conf(d: Path, node: str) -> None:
    ctld_port, slurmd_port = _free_port(), _free_port()
    while slurmd_port == ctld_port:
        slurmd_port = _free_port()
    for sub in ("state", "spool"):
        (d / sub).mkdir()
    gpu_files = []
    for i in range(FAKE_GPUS):
        dev = d / f"fakegpu{i}"
        os.mknod(dev, 0o666 | 0o020000, os.makedev(1, 3))  # a char device like /dev/null
        gpu_files.append(dev)
    (d / "gres.conf").write_text(
        f"AutoDetect=off\nNodeName={node} Name=gpu File={d}/fakegpu[0-{FAKE_GPUS - 1}]\n")
    (d / "slurm.conf").write_text(f"""\
ClusterName=synthsmith-test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={d}/munge.sock
CredType=cred/munge
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
SchedulerType=sched/backfill
PlugStackConfig={d}/plugstack.conf
MinJobAge=3600
SlurmdTimeout=30
SlurmctldTimeout=30
InactiveLimit=0
KillWait=10
ReturnToService=2
GresTypes=gpu
NodeName={node} NodeAddr=127.0.0.1 CPUs={os.cpu_count() or 2} RealMemory={_mem_mb()} \
Gres=gpu:{FAKE_GPUS} State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
""")
    (d / "plugstack.conf").write_text("")  # not the system's /etc/slurm/plugstack.conf


def _wait_node_idle(cluster: SlurmCluster, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        try:
            state = cluster.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=5).strip()
        except subprocess.TimeoutExpired:
            state = "(sinfo timed out)"
        if state.startswith("idle") or state.startswith("mixed"):
            return
        time.sleep(0.3)
    raise RuntimeError(f"the test Slurm node did not become idle (state {state!r}):\n"
                       + cluster.logs())


def _kill_pidfile(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running single-node Slurm (module docstring)."""
    missing = [p for p in (SLURMCTLD, SLURMD, MUNGED, MUNGEKEY) if not os.path.exists(p)]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing: apt-get install slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("a test Slurm needs root (slurmd starts jobs as their user)")
    # A short path: the munge socket path must fit in sun_path (108 bytes).
    d = Path(tempfile.mkdtemp(prefix="ss-slurm-"))
    node = socket.gethostname().split(".")[0]
    _write_conf(d, node)
    cluster = SlurmCluster(conf_dir=d, partition="debug", node=node,
                           env={"SLURM_CONF": str(d / "slurm.conf")})
    env = {**os.environ, **cluster.env}
    try:
        subprocess.run([MUNGEKEY, "-c", "-k", str(d / "munge.key")], check=True,
                       capture_output=True)
        os.chmod(d / "munge.key", 0o600)
        subprocess.run([MUNGED, "--force", f"--socket={d}/munge.sock",
                        f"--key-file={d}/munge.key", f"--pid-file={d}/munged.pid",
                        f"--log-file={d}/munged.log", f"--seed-file={d}/munged.seed"],
                       check=True, capture_output=True)
        subprocess.run([SLURMCTLD], env=env, check=True, capture_output=True, timeout=30)
        subprocess.run([SLURMD], env=env, check=True, capture_output=True, timeout=30)
        _wait_node_idle(cluster)
    except Exception as e:
        _stop(cluster)
        detail = e.stderr if isinstance(e, subprocess.CalledProcessError) else ""
        pytest.fail(f"the test Slurm did not start: {e} {detail}\n{cluster.logs()}")
    try:
        yield cluster
    finally:
        _stop(cluster)


def _stop(cluster: SlurmCluster) -> None:
    d = cluster.conf_dir
    try:
        cluster.run("scancel", "--full", "-u", "root", check=False, timeout=10)
        cluster.run("scontrol", "shutdown", check=False, timeout=15)
    except (subprocess.TimeoutExpired, OSError):
        pass
    for pid_file in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
        _kill_pidfile(d / pid_file)
    shutil.rmtree(d, ignore_errors=True)



# --- Engine jobs for the scheduler tests (real engine, no model) ---------------------------

REPO = Path(__file__).resolve().parents[2]  # the engine bundle the jobs run: this checkout
# The interpreter running the tests: it has the engine's packages in every venv CI uses.
PYTHON = sys.executable


@pytest.fixture(scope="session")
def hanging_llm() -> Iterator[str]:
    """An OpenAI base URL whose server accepts connections and never answers: a stage that
    calls it runs until it is signalled."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except (TimeoutError, OSError):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()


def write_config(folder: Path, *, llm_url: str | None = None, seeds: Path | None = None) -> Path:
    """A small config: bundled seeds (or the ``seeds`` file); with ``llm_url`` both LLM
    endpoints point there with an hour's timeout and no retries."""
    import json

    source = str(seeds) if seeds else "assets://seeds/seeds.jsonl"
    text = ("schema_version: 1\nrun: {name: sched-test}\n"
            f"seeds:\n  sources:\n    - path: {json.dumps(source)}\n  max_seeds: 2\n")
    if llm_url:
        ep = (f"{{backend: openai, base_url: {json.dumps(llm_url)}, model: m, "
              "timeout_s: 3600, max_retries: 0}")
        text += f"llms:\n  generator: {ep}\n  solver: {ep}\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(text)
    return path


def engine_run(config: Path, run_dir: Path, stage: str) -> int:
    """Run a stage here, in the foreground (to prepare a run dir)."""
    return subprocess.run([PYTHON, "-m", "engine", "run", "--config", str(config),
                           "--run-dir", str(run_dir), "--stages", stage], cwd=REPO,
                          capture_output=True, timeout=60).returncode


def stage_status(run_dir: Path) -> dict[str, str]:
    """stage (or shard key) -> status, from the run's state.json."""
    import json

    state = json.loads((run_dir / "state.json").read_text())
    return {k: v["status"] for k, v in state["stages"].items()}


__all__ = ["slurm_cluster", "SlurmCluster", "hanging_llm", "write_config", "engine_run",
           "stage_status", "REPO", "PYTHON"]
