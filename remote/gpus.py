"""GPU use of a cluster host or of a running Slurm job: ``nvidia-smi`` over any ``CommandRunner``.

    report = sample_gpus(runner)                                   # the runner's own host
    report = sample_gpus(runner, slurm_job="4711", env={"SLURM_CONF": conf})   # the job's nodes
    for s in report.samples:
        print(s.host, s.index, s.name, s.util_pct, s.mem_used_mib, s.mem_total_mib)
    print(report.problems)      # one line per host (or job) that gave no samples, and why

One remote command per sample. On each host a small ``sh`` script prints the host name and
``nvidia-smi --query-gpu=index,name,utilization.gpu,memory.used,memory.total
--format=csv,noheader,nounits`` (machine-readable: one ``0, NVIDIA H200, 35, 1024, 143771``
line per GPU, memory in MiB), each line tagged with the host, so the answers of several nodes
can share one stream. For a Slurm job the script runs as an extra job step on every node of
the job: ``srun --jobid=<id> --overlap --nodes=<N> --ntasks-per-node=1`` (``--overlap``: the
step shares the job's CPUs, memory and GPUs with the running step instead of waiting for them;
a step gets all of the job's GPUs by default, so on a cluster that constrains devices with
cgroups it sees exactly the job's GPUs, elsewhere every GPU of the node). The node count comes
from ``squeue -h -j <id> -o '%T|%D'`` first; a job that is not RUNNING is not sampled.

What is not an error: a host without ``nvidia-smi``, one whose driver does not answer, or one
with no GPU gives no samples and ONE line in ``problems`` saying so (a caller shows it once,
not at every sample). A field the GPU cannot report (``[Not Supported]``, ``[N/A]``) is
``None``. What raises: the link itself (``TransientError`` and friends, from the runner), and
a Slurm command that fails for another reason than the job being gone (``CommandFailed``).

Left out: job arrays (the GPU stages are never arrays here), per-process GPU use
(``--query-compute-apps``), and any clock but the desktop's (``t`` is when the answer came).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from remote.errors import CommandFailed
from remote.quoting import command_line
from remote.runner import CommandRunner, RunResult, run_framed

FIELDS = ("index", "name", "utilization.gpu", "memory.used", "memory.total")
NVIDIA_SMI_ARGV = ("nvidia-smi", "--query-gpu=" + ",".join(FIELDS),
                   "--format=csv,noheader,nounits")
TIMEOUT_S = 30.0
# What a cluster may send back, at most: an answer is a line per GPU; past these it is not ours.
ANSWER_MAX_BYTES = 1 << 20
MAX_SAMPLES = 4096
MAX_PROBLEMS = 64
MAX_FIELD_CHARS = 200  # a host or GPU name longer than this is cut (it is shown in charts)
# nvidia-smi's words for a value it has not got; all become None.
_NO_VALUE = ("[not supported]", "[n/a]", "n/a", "[unknown error]", "[gpu requires reset]",
             "[insufficient permissions]", "")


@dataclass(frozen=True)
class GpuSample:
    host: str
    index: int
    name: str
    util_pct: float | None  # utilization.gpu, percent
    mem_used_mib: float | None
    mem_total_mib: float | None
    t: float  # desktop time the answer arrived

    @property
    def mem_used_gib(self) -> float | None:
        return None if self.mem_used_mib is None else self.mem_used_mib / 1024.0

    @property
    def mem_frac(self) -> float | None:
        if self.mem_used_mib is None or not self.mem_total_mib:
            return None
        return self.mem_used_mib / self.mem_total_mib


@dataclass
class GpuReport:
    samples: list[GpuSample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # hosts (or the job) without samples: why

    @property
    def hosts(self) -> list[str]:
        return list(dict.fromkeys(s.host for s in self.samples))


# --- the script run on each host ---------------------------------------------------------------


def host_script() -> str:
    """Prints ``@gpu<TAB>host<TAB>csv line`` per GPU, or one ``@none``/``@fail`` line."""
    smi = command_line(list(NVIDIA_SMI_ARGV))
    return (
        'h=$(hostname 2>/dev/null || uname -n)\n'
        'if ! command -v nvidia-smi >/dev/null 2>&1; then\n'
        '  printf \'@none\\t%s\\tnvidia-smi is not installed (or not on PATH)\\n\' "$h"; exit 0\n'
        'fi\n'
        f'out=$({smi} 2>&1); code=$?\n'
        'if [ "$code" -ne 0 ]; then\n'
        '  printf \'@fail\\t%s\\t%s\\t%s\\n\' "$h" "$code" "$(printf \'%s\' "$out" | head -n 3 '
        '| tr \'\\n\\t\' \'  \')"; exit 0\n'
        'fi\n'
        'printf \'%s\\n\' "$out" | while IFS= read -r line; do\n'
        '  [ -n "$line" ] && printf \'@gpu\\t%s\\t%s\\n\' "$h" "$line"\n'
        'done\n'
        'printf \'@done\\t%s\\n\' "$h"\n'
    )


def _number(text: str) -> float | None:
    word = text.strip()
    if word.lower() in _NO_VALUE:
        return None
    try:
        return float(word)
    except ValueError:
        return None


def parse_csv_line(line: str, host: str, t: float) -> GpuSample | None:
    """One ``index, name, util, mem.used, mem.total`` line -> a sample (None: not such a line).
    A name may hold commas: the index is the first field, the numbers the last three."""
    parts = [p.strip() for p in line.split(",")]
    if len(parts) < len(FIELDS) or not parts[0].isdigit():
        return None
    name = ", ".join(parts[1:-3])
    util, used, total = (_number(p) for p in parts[-3:])
    return GpuSample(host, int(parts[0]), name, util, used, total, t)


def parse_answer(stdout: str, t: float) -> GpuReport:
    """The script's output (of one host or of many, interleaved by line) -> a report.
    Untrusted: at most ``MAX_SAMPLES`` samples and ``MAX_PROBLEMS`` problem lines are kept,
    names are cut to ``MAX_FIELD_CHARS``; lines that are not ours are ignored."""
    report = GpuReport()
    done: set[str] = set()
    seen: set[str] = set()
    for raw in stdout.splitlines():
        if len(report.samples) >= MAX_SAMPLES or len(report.problems) >= MAX_PROBLEMS:
            report.problems.append(f"the GPU answer was cut after {len(report.samples)} "
                                   f"samples and {len(report.problems)} problems")
            break
        tag, _, rest = raw.partition("\t")
        rest = "\t".join(part[:MAX_FIELD_CHARS] for part in rest.split("\t"))
        if tag == "@gpu":
            host, _, line = rest.partition("\t")
            seen.add(host)
            sample = parse_csv_line(line, host, t)
            if sample is not None:
                report.samples.append(sample)
            else:
                report.problems.append(f"{host}: nvidia-smi printed {line.strip()[:120]!r}, "
                                       "not a GPU line")
        elif tag == "@none":
            host, _, why = rest.partition("\t")
            report.problems.append(f"{host}: {why} - no GPU samples from this host")
        elif tag == "@fail":
            host, code, why = (rest.split("\t", 2) + ["", ""])[:3]
            hint = why.strip() or "no output"
            report.problems.append(f"{host}: nvidia-smi exited {code}: {hint} - no GPU samples "
                                   "from this host")
        elif tag == "@done":
            done.add(rest.strip())
    for host in sorted(done - seen):  # it answered, with no line at all
        report.problems.append(f"{host}: nvidia-smi lists no GPU - no GPU samples from this host")
    return report


# --- sampling ----------------------------------------------------------------------------------


def sample_gpus(runner: CommandRunner, *, slurm_job: str | None = None,
                env: Mapping[str, str] | None = None,
                timeout: float = TIMEOUT_S) -> GpuReport:
    """GPU samples of the runner's host, or (``slurm_job``) of every node of that running job.
    ``env``: for the Slurm commands (``SLURM_CONF`` where a non-login shell lacks it)."""
    script = host_script()
    if slurm_job is None:
        result = _framed(runner, ["sh", "-c", script], None, timeout, "the GPU probe")
        report = parse_answer(result.stdout, time.time())
        if not report.samples and not report.problems:
            report.problems.append(f"{runner.name}: the GPU probe exited {result.returncode} "
                                   f"without an answer: {result.stderr.strip()[-300:]}")
        return report
    return _sample_slurm_job(runner, str(slurm_job), dict(env or {}), script, timeout)


def _sample_slurm_job(runner: CommandRunner, job_id: str, env: dict[str, str], script: str,
                      timeout: float) -> GpuReport:
    if not job_id.isdigit():
        return GpuReport(problems=[f"job {job_id!r}: only plain Slurm job ids are sampled "
                                   "(no arrays)"])
    q = _framed(runner, ["squeue", "-h", "-j", job_id, "-o", "%T|%D"], env, timeout,
                "squeue for the GPU probe")
    # Only lines of squeue's shape (a STATE word, a node count): anything else is not its answer.
    rows = [parts for parts in (line.strip().split("|") for line in q.stdout.splitlines())
            if len(parts) == 2 and re.fullmatch(r"[A-Z_]+", parts[0])
            and re.fullmatch(r"[0-9]+", parts[1])]
    if not q.ok or not rows:
        if "Invalid job id" in q.stderr or (q.ok and not rows):
            return GpuReport(problems=[f"job {job_id} is no longer in the queue"])
        raise CommandFailed(q)
    state, nodes = rows[0][0].strip(), rows[0][1].strip()
    if state != "RUNNING":
        return GpuReport(problems=[f"job {job_id} is {state}, not running: no GPUs to sample"])
    n = min(int(nodes), 4096) if nodes.isascii() and nodes.isdigit() and int(nodes) > 0 else 1
    # --overlap: share the job's resources with its running step (module docstring);
    # --quiet: srun's own progress lines would mix into the answer.
    argv = ["srun", f"--jobid={job_id}", "--overlap", f"--nodes={n}", f"--ntasks={n}",
            "--ntasks-per-node=1", "--quiet", "sh", "-c", script]
    result = _framed(runner, argv, env, timeout, "the GPU probe (srun)")
    report = parse_answer(result.stdout, time.time())
    if not result.ok and not report.samples:
        report.problems.append(f"job {job_id}: `srun --overlap` exited {result.returncode}: "
                               f"{result.stderr.strip()[-300:]}")
    return report


def _framed(runner: CommandRunner, argv: list[str], env: dict[str, str] | None,
            timeout: float, what: str) -> RunResult:
    # Framed and capped (remote.runner.run_framed): a login banner line starting with
    # "@gpu" is never read as a sample, and an endless answer cannot fill the desktop's memory.
    return run_framed(runner, command_line(argv, env=env), timeout=timeout,
                      max_bytes=ANSWER_MAX_BYTES, what=what)


__all__ = ["FIELDS", "NVIDIA_SMI_ARGV", "GpuReport", "GpuSample", "host_script",
           "parse_answer", "parse_csv_line", "sample_gpus"]
