"""Which SQLite journal a store file gets: WAL on a local file system, DELETE on a network
one (detected from /proc/self/mounts; ``SYNTHSMITH_STORE_JOURNAL`` overrides).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.store.records import JournalMode, StoreError

JOURNAL_ENV = "SYNTHSMITH_STORE_JOURNAL"

# File systems where SQLite's WAL (an mmap'ed -shm index shared between processes) is unsafe.
NETWORK_FS_TYPES = frozenset(
    {
        "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb", "smb2", "smb3", "smbfs", "beegfs",
        "ceph", "cephfs", "glusterfs", "9p", "afs", "openafs", "ocfs2", "gfs2", "panfs",
        "pvfs2", "orangefs", "wekafs", "quobyte", "davfs", "ncpfs", "coda", "virtiofs",
        "fuse.sshfs", "fuse.ceph", "fuse.cephfs", "fuse.glusterfs", "fuse.beegfs",
        "fuse.s3fs", "fuse.gcsfuse", "fuse.rclone", "fuse.juicefs", "fuse.davfs",
        "fuse.lizardfs", "fuse.moosefs", "fuse.mfs", "fuse.goofys", "fuse.blobfuse",
    }
)



# ---------------------------------------------------------------------------------------------
# File-system detection


def is_network_fs(fstype: str) -> bool:
    """True for a file-system type (as in /proc/mounts) on which WAL is unsafe."""
    t = fstype.strip().lower()
    if t in NETWORK_FS_TYPES:
        return True
    if t.startswith("nfs"):
        return True  # nfs, nfs4, nfsd variants
    return t.startswith("fuse.") and t[5:] in {x.split(".", 1)[-1] for x in NETWORK_FS_TYPES}


def _unescape_mount(field_: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes (\040 ...).
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field_)


def mount_fstype(path: str | os.PathLike[str], mounts_text: str | None = None) -> str | None:
    """The fstype of the mount that holds ``path`` (longest mount-point prefix), or None."""
    if mounts_text is None:
        try:
            mounts_text = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
    target = os.path.realpath(os.fspath(path))
    best: tuple[int, str] | None = None
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt, fstype = _unescape_mount(parts[1]), parts[2]
        mnt_norm = mnt.rstrip("/") or "/"
        inside = (
            mnt_norm == "/"
            or target == mnt_norm
            or target.startswith(mnt_norm + "/")
        )
        if inside and (best is None or len(mnt_norm) >= best[0]):
            best = (len(mnt_norm), fstype)
    return best[1] if best else None


def _choose_journal(path: Path, requested: JournalMode) -> str:
    mode = requested
    if mode == "auto":
        env = os.environ.get(JOURNAL_ENV, "auto").strip().lower()
        if env not in ("auto", "wal", "delete"):
            raise StoreError(f"{JOURNAL_ENV}={env!r}: set it to 'wal', 'delete' or 'auto'")
        mode = env  # type: ignore[assignment]
    if mode == "auto":
        fstype = mount_fstype(path.parent)
        return "delete" if fstype is not None and is_network_fs(fstype) else "wal"
    return mode


