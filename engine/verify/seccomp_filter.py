"""The sandbox's syscall filter: a classic-BPF seccomp program built with libseccomp.

``build_filter()`` returns the raw program (what ``seccomp_export_bpf`` writes: an array
of ``struct sock_filter``, 8 bytes each, native byte order) for the native architecture;
the worker (``forkserver.py --seccomp-filter PATH``) installs it in every child with
``prctl(PR_SET_NO_NEW_PRIVS)`` + ``prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)``
before untrusted code runs. ``describe()`` says what the filter does, in words.
``SeccompUnavailable``: libseccomp cannot be loaded or refuses the policy; the sandbox then
runs without a filter and says so (``IsolationPlan.describe()["seccomp"]``).

Why a ctypes binding to libseccomp itself (libseccomp.so.2, the library runc, systemd,
podman and Docker build their filters with; Debian ships it in every base system): the
PyPI ``pyseccomp`` is unmaintained since 2021, and Debian's ``python3-seccomp`` is built
for the system interpreter only (no wheel for a venv or pyenv Python). The binding uses
six stable C functions, so it works with every libseccomp 2.x.

Policy: default ALLOW. The sandbox already has namespaces, read-only mounts, the uid drop
and rlimits; the filter removes the kernel surface an unprivileged program can still reach
and that a solution never needs (kernel exploits mostly start there) and the channels that
outlive a run. Calls not listed, including syscalls newer than this libseccomp knows, are
allowed. A syscall from another ABI (i386 via ``int 0x80``, x32 from x86_64) kills the
process (SCMP_ACT_KILL_PROCESS: ``bad_arch``; libseccomp's own default would kill only the
thread), so no rule can be dodged by switching ABI.

Denied with EPERM (unconditionally unless a condition is given):

=========================================  ===============================================
syscall                                    why
=========================================  ===============================================
add_key, keyctl, request_key               kernel keyring: data outlives the run (a uid's
                                           keyring is shared across sandboxes); CVEs
ptrace                                     inspect/alter another process (the worker,
                                           other runs' leftovers)
process_vm_readv, process_vm_writev        read/write another process's memory
kcmp, pidfd_getfd                          compare / steal another process's fds
mount, umount2, pivot_root, chroot         change the mount table
fsopen, fsconfig, fsmount, fspick,         the new mount API (same as mount)
move_mount, open_tree, mount_setattr
unshare, setns                             new or other namespaces (user namespaces give
                                           capabilities and a large kernel surface)
clone if flags & any CLONE_NEW*            same as unshare, at process creation (masked
                                           argument comparison, one rule per flag)
socket, socketpair if family != AF_UNIX    no AF_VSOCK (reaches the host across the
                                           network namespace), AF_NETLINK, AF_PACKET,
                                           AF_INET/6 (blocks the network even without
                                           bwrap), AF_ALG, AF_BLUETOOTH...
bpf                                        eBPF verifier/JIT: a classic escape surface
perf_event_open                            profiling: side channels, many CVEs
userfaultfd                                stalls kernel page faults: exploit primitive
io_uring_setup, io_uring_enter,            io_uring runs I/O, opens files and sockets
io_uring_register                          beside seccomp; a large CVE history
kexec_load, kexec_file_load, reboot        replace or stop the kernel
init_module, finit_module, delete_module   load/unload kernel modules
swapon, swapoff, acct, quotactl,           system administration
quotactl_fd
name_to_handle_at, open_by_handle_at       open files by handle, past the mount view
                                           (the "shocker" container escape)
iopl, ioperm, modify_ldt                   x86 I/O ports, LDT (CVEs; no use in solutions)
syslog                                     read the kernel log (addresses, other jobs)
uselib, lookup_dcookie                     obsolete, old attack surface
fanotify_init                              watch other processes' file accesses
=========================================  ===============================================

clone3 returns ENOSYS instead: its flags live in a struct seccomp cannot read, and glibc
(2.34+, threads and posix_spawn) falls back to clone on ENOSYS, which is filtered above.

Leaves out: an allow-list (a default-deny filter would have to follow every libc and
compiler change); Landlock; filtering ioctl or prctl arguments; non-native architectures
other than killing their calls.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import platform

__all__ = ["DENIED", "SeccompUnavailable", "build_filter", "describe", "libseccomp_version"]


class SeccompUnavailable(RuntimeError):
    """libseccomp cannot be loaded here, or refused the policy; the message says why."""


# libseccomp's constants (seccomp.h, stable since 2.0; KILL_PROCESS since 2.4).
SCMP_ACT_KILL_PROCESS = 0x80000000
SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_FLTATR_ACT_BADARCH = 2
SCMP_FLTATR_CTL_OPTIMIZE = 8  # libseccomp >= 2.5
SCMP_CMP_NE = 1
SCMP_CMP_MASKED_EQ = 7


def SCMP_ACT_ERRNO(err: int) -> int:  # noqa: N802 - libseccomp's name
    return 0x00050000 | (err & 0xFFFF)


AF_UNIX = 1
CLONE_NEW_FLAGS = {
    "CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}  # CLONE_NEWTIME (0x80) overlaps clone()'s exit-signal byte; clone() cannot use it.

# Denied outright with EPERM, each with its reason (the table in the docstring).
DENIED: dict[str, str] = {
    "add_key": "kernel keyring", "keyctl": "kernel keyring", "request_key": "kernel keyring",
    "ptrace": "another process's memory and registers",
    "process_vm_readv": "another process's memory",
    "process_vm_writev": "another process's memory",
    "kcmp": "another process's fds", "pidfd_getfd": "another process's fds",
    "mount": "mount table", "umount2": "mount table", "pivot_root": "mount table",
    "chroot": "mount table", "fsopen": "mount API", "fsconfig": "mount API",
    "fsmount": "mount API", "fspick": "mount API", "move_mount": "mount API",
    "open_tree": "mount API", "mount_setattr": "mount API",
    "unshare": "namespaces", "setns": "namespaces",
    "bpf": "eBPF", "perf_event_open": "profiling, side channels",
    "userfaultfd": "exploit primitive",
    "io_uring_setup": "io_uring bypasses seccomp", "io_uring_enter": "io_uring",
    "io_uring_register": "io_uring",
    "kexec_load": "replace the kernel", "kexec_file_load": "replace the kernel",
    "reboot": "stop the machine", "init_module": "kernel modules",
    "finit_module": "kernel modules", "delete_module": "kernel modules",
    "swapon": "administration", "swapoff": "administration", "acct": "administration",
    "quotactl": "administration", "quotactl_fd": "administration",
    "name_to_handle_at": "open by handle, past the mount view",
    "open_by_handle_at": "open by handle, past the mount view",
    "iopl": "I/O ports", "ioperm": "I/O ports", "modify_ldt": "x86 LDT",
    "syslog": "kernel log", "uselib": "obsolete", "lookup_dcookie": "obsolete",
    "fanotify_init": "watch others' file accesses",
}
# Denied only when an argument matches: name -> (reason, description of the condition).
CONDITIONAL: dict[str, str] = {
    "clone": "flags & CLONE_NEW* (any namespace flag)",
    "socket": "family != AF_UNIX",
    "socketpair": "family != AF_UNIX",
}
ENOSYS_CALLS = ("clone3",)


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):
    """struct scmp_version."""
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


@functools.lru_cache(maxsize=1)
def _lib() -> ctypes.CDLL:
    names = ["libseccomp.so.2", ctypes.util.find_library("seccomp")]
    errors = []
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name, use_errno=True)
            break
        except OSError as exc:
            errors.append(str(exc))
    else:
        raise SeccompUnavailable(
            "libseccomp is not installed (apt-get install libseccomp2): "
            + "; ".join(errors or ["not found"]))
    try:
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_attr_set.restype = ctypes.c_int
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                               ctypes.c_uint, ctypes.POINTER(_ArgCmp)]
        lib.seccomp_rule_add_array.restype = ctypes.c_int
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_export_bpf.restype = ctypes.c_int
        lib.seccomp_version.argtypes = []
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
    except AttributeError as exc:  # libseccomp < 2.2 has no seccomp_version
        raise SeccompUnavailable(f"libseccomp is too old: {exc}") from exc
    return lib


def libseccomp_version() -> str:
    """e.g. "2.5.4"; raises SeccompUnavailable."""
    v = _lib().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def _clone_flags_arg() -> int:
    # clone(flags, stack, ...) everywhere except s390/s390x: clone(stack, flags, ...).
    return 1 if platform.machine().startswith("s390") else 0


@functools.lru_cache(maxsize=1)
def _build() -> tuple[bytes, int, tuple[str, ...], tuple[str, ...]]:
    """(program, rules added, syscalls denied, names unknown on this architecture)."""
    lib = _lib()
    version = tuple(int(x) for x in libseccomp_version().split("."))
    ctx = lib.seccomp_init(SCMP_ACT_ALLOW)
    if not ctx:
        raise SeccompUnavailable("seccomp_init failed")
    rules = 0
    denied: list[str] = []
    unknown: list[str] = []

    def check(rc: int, what: str) -> None:
        if rc < 0:
            raise SeccompUnavailable(f"libseccomp refused {what}: {os.strerror(-rc)}")

    def add(name: str, action: int, conditions: list[tuple[int, int, int, int]] = ()) -> None:
        nonlocal rules
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr < 0:  # unknown to this libseccomp, or not a syscall of this architecture
            unknown.append(name)
            return
        array = (_ArgCmp * max(1, len(conditions)))(*[_ArgCmp(*c) for c in conditions])
        check(lib.seccomp_rule_add_array(ctx, action, nr, len(conditions), array),
              f"the rule for {name}")
        rules += 1
        if name not in denied:
            denied.append(name)

    try:
        check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS),
              "KILL_PROCESS as the bad-architecture action")
        if version >= (2, 5, 0):
            # A binary tree by syscall number: an allowed call walks ~log2(rules) jumps
            # instead of every rule.
            check(lib.seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2), "optimize=2")
        eperm = SCMP_ACT_ERRNO(errno.EPERM)
        for name in DENIED:
            add(name, eperm)
        flags_arg = _clone_flags_arg()
        for flag in CLONE_NEW_FLAGS.values():
            add("clone", eperm, [(flags_arg, SCMP_CMP_MASKED_EQ, flag, flag)])
        for name in ("socket", "socketpair"):
            add(name, eperm, [(0, SCMP_CMP_NE, AF_UNIX, 0)])
        for name in ENOSYS_CALLS:
            add(name, SCMP_ACT_ERRNO(errno.ENOSYS))
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            check(lib.seccomp_export_bpf(ctx, fd), "to export the program")
            size = os.lseek(fd, 0, os.SEEK_END)
            program = os.pread(fd, size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    if not program or len(program) % 8:
        raise SeccompUnavailable(f"libseccomp exported {len(program)} bytes, not a BPF program")
    return program, rules, tuple(denied), tuple(unknown)


def build_filter() -> bytes:
    """The raw classic-BPF program (struct sock_filter[]) for the native architecture.

    Built once per process. Raises SeccompUnavailable when libseccomp cannot be loaded or
    refuses a rule.
    """
    return _build()[0]


def describe() -> dict[str, object]:
    """What the filter does, in words (raises SeccompUnavailable like ``build_filter``)."""
    program, rules, denied, unknown = _build()
    return {
        "libseccomp": libseccomp_version(),
        "arch": platform.machine(),
        "default": "allow",
        "bad_arch": "kill process",
        "rules": rules,
        "instructions": len(program) // 8,
        "denied": [n for n in denied if n not in ENOSYS_CALLS],  # EPERM
        "conditional": {n: c for n, c in CONDITIONAL.items() if n in denied},
        "enosys": [n for n in ENOSYS_CALLS if n in denied],
        "unknown": list(unknown),  # not on this architecture / unknown to this libseccomp
    }
