"""Moving a run's artifacts off a cluster: to another cluster at a hand-over, or to this computer.

    listing = artifact_files(src, "/scratch/me/synthsmith/runs/r1")      # what there is
    if not direct_copy(src, src_profile, a, dst, dst_profile, b):        # cluster to cluster
        relay_file(src, a, dst, b, local_tmp)                            # through the desktop
    relay_download(src, path, local, deadline=time.time() + 3600)        # `synthsmith fetch`

What a cluster answers is untrusted: the listing is one framed ``find`` capped in bytes and
time, each entry must be a plain relative path under what was asked for, and every copy is
checked against the source's sha256. ``direct_copy`` lets the destination pull the file with
``ssh``/``cat`` in batch mode (a known host key required, no prompt), used when the
destination can reach the source on its own; otherwise the file is relayed through the
desktop in resumable chunks (a ``.part`` file that grows) and uploaded.

Left out: rsync-style deltas (a changed file is copied whole) and parallel transfers.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.contracts.rundir import CHECKPOINTS, EXPORTS, STATE, STORE
from remote.errors import LaunchError, RemoteError
from remote.profiles import ClusterProfile
from remote.quoting import command_line, quote, quote_path
from remote.runner import CommandRunner, run_framed
from remote.safe_paths import (
    OutputTooLarge,
    UnsafeRemotePath,
    check_relative,
    private_dir,
    private_open,
    run_capped,
)

RELAY_CHUNK = 8 << 20
ARTIFACTS = (STATE, STORE, EXPORTS, CHECKPOINTS)  # what a later segment needs
LIST_MAX_BYTES = 16 << 20  # a `find` listing of a run's artifacts, at most
LIST_TIMEOUT_S = 120.0
HASH_TIMEOUT_S = 1800.0  # sha256sum of one (large) artifact


@dataclass
class Listing:
    """The artifact files a cluster listed: ``files`` (relative, checked) and ``refused``
    ((path, why) for each entry that was not a plain path under what we asked for)."""

    files: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def describe(self, limit: int = 10) -> str:
        shown = "; ".join(f"{p!r} ({why})" for p, why in self.refused[:limit])
        more = len(self.refused) - limit
        return shown + (f"; and {more} more" if more > 0 else "")


_LIST_MARK = "@@synthsmith-list"


def artifact_files(runner: CommandRunner, run_dir: str,
                    which: Sequence[str] = ARTIFACTS) -> Listing:
    """Relative paths of the artifact files under a run dir (folders walked), in one remote
    ``find`` (NUL-separated; capped in bytes and time); missing ones are skipped. What the
    cluster answers is untrusted: each entry must be a plain relative path (``check_relative``)
    equal to or under one of ``which``; others are refused and listed."""
    paths = [f"{run_dir}/{rel}" for rel in which]
    # Framed: whatever a login banner prints before the mark is not part of the answer.
    script = f'printf "%s\\0" {_LIST_MARK}; exec find "$@" -type f -print0'
    try:  # exits 1 for missing paths: fine
        result = run_capped(runner, ["sh", "-c", script, "sh", *paths],
                            max_bytes=LIST_MAX_BYTES, timeout=LIST_TIMEOUT_S,
                            what=f"listing the artifacts of {run_dir}")
    except OutputTooLarge as exc:
        raise LaunchError(f"{exc}. Nothing was fetched") from None
    prefix = run_dir.rstrip("/") + "/"
    listing = Listing()
    head, mark, body = result.stdout.partition(_LIST_MARK + "\0")
    if not mark:
        raise LaunchError(f"{runner.name}: listing the artifacts of {run_dir} gave no "
                          f"answer (exit {result.returncode}: "
                          f"{(result.stderr or head).strip()[-300:]!r})")
    for entry in body.split("\0"):
        if not entry or entry.endswith((".tmp", ".part")):
            continue
        if not entry.startswith(prefix):
            listing.refused.append((entry, f"not under {prefix}"))
            continue
        rel = entry[len(prefix):]
        try:
            check_relative(rel)
        except UnsafeRemotePath as exc:
            listing.refused.append((rel, exc.why))
            continue
        if not any(rel == w or rel.startswith(w.rstrip("/") + "/") for w in which):
            listing.refused.append((rel, f"not one of {', '.join(which)}"))
            continue
        listing.files.append(rel)
    listing.files = sorted(set(listing.files))
    return listing


COPY_SSH_CONFIG_ENV = "SYNTHSMITH_SSH_CONFIG"  # in a profile's env: its ssh_config for copies


def direct_copy(src: CommandRunner, src_profile: ClusterProfile, src_path: str,
                dst: CommandRunner, dst_profile: ClusterProfile, dst_path: str) -> bool:
    """Let the destination pull the file from the source itself (``scp`` in batch mode: no
    prompt, no password, a known host key required), then check its sha256. False when it
    cannot (no route, no key there, the source is this computer): the caller relays."""
    if src_profile.is_local or dst_profile.is_local:
        return False
    want = _remote_sha256(src, src_path)
    if want is None:
        return False
    where = f"{src_profile.user}@{src_profile.host}" if src_profile.user else src_profile.host
    argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=10"]
    if dst_profile.env.get(COPY_SSH_CONFIG_ENV):
        argv += ["-F", dst_profile.env[COPY_SSH_CONFIG_ENV]]
    if src_profile.port:
        argv += ["-p", str(src_profile.port)]
    part = f"{dst_path}.part"
    dst.makedirs(dst_path.rsplit("/", 1)[0])
    # `ssh host cat -- PATH` on the destination: the source's shell parses the remote
    # command, so PATH is quoted once more for it (one quoting point, applied twice).
    remote_cmd = command_line(["cat", "--", src_path])
    result = dst.run_shell(f"{command_line([*argv, where, remote_cmd])} > {quote(part)}",
                           timeout=3600)
    if not result.ok or _remote_sha256(dst, part) != want:
        dst.run(["rm", "-f", "--", part])
        return False
    return dst.run(["mv", "-f", "--", part, dst_path]).ok


def relay_download(src: CommandRunner, path: str, local: Path, *,
                   deadline: float | None = None) -> None:
    """Download in chunks to ``local`` (resumable: a ``.part`` file grows), then check the
    size and the source's sha256. Folders it creates are 0700, the file 0600; past
    ``deadline`` (a ``time.time()``) it stops with a ``LaunchError``."""
    size = src.size(path)
    if size is None:
        raise FileNotFoundError(f"{src.name}: {path}")
    if not local.parent.exists():
        private_dir(local.parent, fix_existing=False)  # the folders it creates: 0700
    part = local.with_name(local.name + ".part")
    if part.is_symlink():
        part.unlink()
    have = part.stat().st_size if part.exists() else 0
    if have > size:  # the source changed under us: start over
        part.unlink()
        have = 0
    with private_open(part, "ab") as f:
        while have < size:
            if deadline is not None and time.time() > deadline:
                raise LaunchError(f"{path} from {src.name}: the fetch ran past its time limit "
                                  f"({have} of {size} bytes; run it again to resume)")
            chunk = src.read_bytes(path, have, min(RELAY_CHUNK, size - have))
            if not chunk:
                break
            f.write(chunk)
            have += len(chunk)
        f.flush()
        os.fsync(f.fileno())
    if have != size:
        raise LaunchError(f"{path} from {src.name} ended early ({have} of {size} bytes); "
                          "run the command again to resume")
    want = _remote_sha256(src, path)
    got = _local_sha256(part)
    if want is not None and got != want:
        part.unlink()
        raise LaunchError(f"{path} from {src.name} arrived corrupted (sha256 {got[:12]} != "
                          f"{want[:12]}); run the command again")
    os.replace(part, local)


def relay_file(src: CommandRunner, src_path: str, dst: CommandRunner, dst_path: str,
               local: Path) -> None:
    if dst.size(dst_path) == src.size(src_path) and \
            _remote_sha256(dst, dst_path) == _remote_sha256(src, src_path):
        return  # already there (a resumed hand-over)
    relay_download(src, src_path, local)
    dst.put_file(local, dst_path)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def read_capped(runner: CommandRunner, path: str, limit: int, timeout: float) -> bytes | None:
    """At most ``limit + 1`` bytes of a remote file (None when it does not exist), through
    ``head -c`` in a framed command: capped in bytes and time, whatever the cluster does."""
    q = quote_path(path)
    script = (f"if [ ! -e {q} ]; then echo missing; exit 0; fi; echo present; "
              f"head -c {limit + 1} -- {q}")
    result = run_framed(runner, script, timeout=timeout, max_bytes=limit + (1 << 20),
                        what=f"reading {path}", idempotent=True)  # a read: safe to ask again
    status, _, body = result.stdout.partition("\n")
    if status == "missing":
        return None
    if status != "present" or not result.ok:
        raise RemoteError(f"exit {result.returncode}: {result.stderr.strip()[-300:]!r}")
    return body.encode("utf-8", "surrogateescape")


def _remote_sha256(runner: CommandRunner, path: str) -> str | None:
    # Framed: a login banner line that starts with 64 hex digits is never taken for it.
    result = run_framed(runner, command_line(["sha256sum", "--", path]),
                        timeout=HASH_TIMEOUT_S, max_bytes=1 << 16, what="sha256sum")
    if not result.ok:
        return None
    for line in result.stdout.splitlines():
        word = line.split(" ", 1)[0].lstrip("\\")
        if _SHA256.fullmatch(word):
            return word
    return None


def _local_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
