"""Upload the engine to a cluster as a content-addressed bundle: ``sync_bundle``.

The bundle is what ``python -m engine`` needs with the bundle folder as its working directory
and nothing installed: ``engine/**/*.py`` and the run-time assets the engine reads through
``engine.paths.ASSETS_DIR`` (``assets/prompts``, ``assets/presets``, ``assets/seeds``,
``assets/eval``)::

    report = sync_bundle(runner, "~/synthsmith")
    runner.run(["python3", "-m", "engine", "validate", "assets/presets/smoke-cpu.yaml"],
               cwd=report.bundle_dir).check()

Remote layout (ARCHITECTURE.md §4)::

    <workdir>/engine/.objects/<sha256>        every distinct file content, uploaded once
    <workdir>/engine/<digest>/                one bundle, immutable once complete
    <workdir>/engine/<digest>/.manifest.json  written last, atomically: "this bundle is complete"

How a sync goes (at most six round trips, whatever the number of files):

1. read ``<digest>/.manifest.json``: present and equal -> done, nothing is sent (the common
   case: a second launch of the same engine);
2. one probe command hashes the store objects the manifest names and the files already in
   the bundle folder (a crash mid-sync leaves a folder without its manifest);
3. the objects the store lacks (or holds with a wrong hash) travel in ONE gzip'd tar,
   uploaded atomically; unchanged files between engine versions never travel again;
4. one script unpacks them into the store (each object renamed into place, so a store file
   is never half-written), copies the missing or wrong bundle files out of the store (copy to
   a temp name + rename: a reader never sees a half-written file) and hashes the whole bundle;
5. the hashes must equal the manifest (else ``RemoteSetupError`` naming the files), then the
   manifest is written.

Decisions: bundle files are copies, not hard links of the store objects: a bundle is <1 MB,
and a copy keeps a running job's files independent of the store (an edit or cleanup there can
never reach them). ``pyproject.toml`` is left out: nothing at run time reads it, and it
describes the desktop app, not the engine. Bytecode is never uploaded; Python writes its own
``__pycache__`` next to the sources on the first run (new files, the sources stay untouched).
The remote side needs only a POSIX shell, ``tar`` with gzip, ``cp``/``mv`` and ``sha256sum``
(or ``shasum -a 256``); no Python is needed to sync.

Left out: garbage collection of old bundles and unused objects (a running job may still need
them; a cleanup command can come later), symlinks in the repo (regular files only), and file
modes (every file is 0644; nothing in the bundle is executed directly).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import posixpath
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from remote.errors import RemoteSetupError, TransientError
from remote.quoting import absolute_path, quote
from remote.runner import CommandRunner, run_framed

MANIFEST_NAME = ".manifest.json"
OBJECTS_DIR = ".objects"
# The asset folders the engine reads at run time (prompts by engine/prompts.py, presets and
# seeds through assets:// paths). Icons and the like belong to the desktop app.
# The bundle scripts print hashes and a few words: past this a cluster is not answering us.
SCRIPT_ANSWER_MAX_BYTES = 16 << 20
ASSET_DIRS = ("assets/prompts", "assets/presets", "assets/seeds", "assets/eval")
REPO_ROOT = Path(__file__).resolve().parents[1]

# Picks the hash tool once per script: coreutils on Linux, shasum where coreutils is missing.
_HASH_TOOL = ('if command -v sha256sum >/dev/null 2>&1; then H=sha256sum; '
              'else H="shasum -a 256"; fi')


# --- the manifest ----------------------------------------------------------------------------


def _canonical(files: dict[str, str]) -> bytes:
    return json.dumps({"files": files}, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Manifest:
    files: dict[str, str]  # relative POSIX path -> sha256 hex of its content
    digest: str  # sha256 of the canonical manifest: the bundle's name on the cluster

    @classmethod
    def of(cls, files: dict[str, str]) -> Manifest:
        files = dict(sorted(files.items()))
        return cls(files, hashlib.sha256(_canonical(files)).hexdigest())

    def to_json(self) -> str:
        return json.dumps({"digest": self.digest, "files": self.files}, sort_keys=True,
                          indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and check: a manifest whose digest does not match its files is refused."""
        raw = json.loads(text)
        manifest = cls.of({str(k): str(v) for k, v in raw["files"].items()})
        if raw.get("digest") != manifest.digest:
            raise ValueError(f"manifest digest {raw.get('digest')!r} does not match its files "
                             f"({manifest.digest})")
        return manifest


def _check_rel(rel: str) -> None:
    # The remote scripts and sha256sum's output carry these paths: refuse what either would mangle.
    if any(c in rel for c in "\n\r\\") or not rel.isprintable():
        raise ValueError(f"{rel!r}: a bundle path may not hold newlines, backslashes or "
                         "control characters")


def _bundle_paths(repo_root: Path) -> list[Path]:
    paths = [p for p in (repo_root / "engine").rglob("*.py")
             if "__pycache__" not in p.parts and p.is_file()]
    for sub in ASSET_DIRS:
        paths += [p for p in (repo_root / sub).rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in
                                              p.relative_to(repo_root).parts)]
    return sorted(paths)


def build_manifest(repo_root: Path) -> Manifest:
    """The manifest of the bundle made from ``repo_root`` (a checkout: engine/ and assets/)."""
    root = Path(repo_root)
    if not (root / "engine" / "__main__.py").is_file():
        raise FileNotFoundError(f"{root} holds no engine/__main__.py: not a SynthSmith checkout")
    files: dict[str, str] = {}
    for path in _bundle_paths(root):
        rel = path.relative_to(root).as_posix()
        _check_rel(rel)
        files[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return Manifest.of(files)


# --- syncing ---------------------------------------------------------------------------------


@dataclass
class SyncReport:
    bundle_dir: str  # absolute path of the bundle on the cluster: the cwd for python -m engine
    digest: str
    uploaded: int  # objects sent this time
    bytes: int  # their content bytes (uncompressed)
    reused: int  # manifest files whose content the cluster already held
    already_complete: bool  # the bundle was there: nothing was sent or changed


def _parse_hashes(stdout: str) -> dict[str, str]:
    """``sha256sum`` lines (``<64 hex>  <name>``) -> {name: hash}."""
    out: dict[str, str] = {}
    for line in stdout.splitlines():
        if len(line) > 66 and line[64] == " ":
            out[line[66:]] = line[:64]
    return out


def _run_script(runner: CommandRunner, script: str, what: str, timeout: float) -> str:
    # The script travels on stdin, so its length is not bound by the 128 KiB argument limit.
    # Framed (a login banner on stdout, a line "#end" say, is not part of the answer) and
    # capped: a cluster that answers without end cannot fill the desktop's memory.
    result = run_framed(runner, "sh -s", input=script, timeout=timeout,
                        max_bytes=SCRIPT_ANSWER_MAX_BYTES, what=what)
    if not result.ok:
        raise RemoteSetupError(f"{runner.name}: {what} failed (exit {result.returncode}): "
                               f"{(result.stderr or result.stdout).strip()[-800:]}")
    return result.stdout


def _probe(runner: CommandRunner, manifest: Manifest, objects: str, bundle: str,
           timeout: float) -> tuple[dict[str, str], dict[str, str]]:
    """Hashes of the store objects and of the bundle files that exist now (one command)."""
    hashes = sorted(set(manifest.files.values()))
    lines = [_HASH_TOOL,
             "echo '#objects'",
             f"cd {quote(objects)} 2>/dev/null && $H -- {' '.join(hashes)} 2>/dev/null",
             "echo '#bundle'",
             f"cd {quote(bundle)} 2>/dev/null && $H -- "
             + " ".join(quote(p) for p in manifest.files) + " 2>/dev/null",
             "echo '#end'", "exit 0"]
    out = _run_script(runner, "\n".join(lines) + "\n", "probing the engine bundle", timeout)
    if "#end" not in out:
        raise RemoteSetupError(f"{runner.name}: the bundle probe printed no end mark: {out!r}")
    obj_part, _, rest = out.partition("#bundle")
    return _parse_hashes(obj_part), _parse_hashes(rest.partition("#end")[0])


def _tar_gz(repo_root: Path, manifest: Manifest, wanted: set[str]) -> tuple[bytes, int]:
    """A tar.gz of the wanted objects, named by hash; -> (archive, content bytes)."""
    by_hash = {h: rel for rel, h in manifest.files.items()}
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.USTAR_FORMAT) as tar:
        for h in sorted(wanted):
            data = (repo_root / by_hash[h]).read_bytes()
            if hashlib.sha256(data).hexdigest() != h:
                raise RuntimeError(f"{by_hash[h]} changed while the bundle was being synced; "
                                   "sync again")
            info = tarfile.TarInfo(h)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
            total += len(data)
    return buf.getvalue(), total


def sync_bundle(runner: CommandRunner, workdir: str, repo_root: Path | None = None, *,
                timeout: float = 300, retries: int = 2) -> SyncReport:
    """Make ``<workdir>/engine/<digest>/`` on the runner's host hold this checkout's engine.

    Sends only the file contents the cluster lacks, never modifies a complete bundle, and
    verifies the result with a remote hash of every file. Raises ``RemoteSetupError`` when the
    remote side fails or the verification does not match. A link that drops mid-sync
    (``TransientError``) restarts the sync up to ``retries`` times: every step is idempotent,
    and the restart sends only what is still missing.
    """
    root = Path(repo_root) if repo_root is not None else REPO_ROOT
    manifest = build_manifest(root)
    for attempt in range(retries + 1):
        try:
            return _sync_once(runner, workdir, root, manifest, timeout)
        except TransientError:
            if attempt >= retries:
                raise
    raise AssertionError("unreachable")


def _sync_once(runner: CommandRunner, workdir: str, root: Path, manifest: Manifest,
               timeout: float) -> SyncReport:
    base = posixpath.join(absolute_path(runner.home(), workdir), "engine")
    bundle = posixpath.join(base, manifest.digest)
    objects = posixpath.join(base, OBJECTS_DIR)
    manifest_path = posixpath.join(bundle, MANIFEST_NAME)

    try:
        existing = runner.read_bytes(manifest_path)
    except FileNotFoundError:
        existing = None
    if existing is not None:
        try:
            same = Manifest.from_json(existing) == manifest
        except (ValueError, KeyError, TypeError, AttributeError):
            same = False
        if not same:
            # Same digest, other content: someone edited it. Never touch it (a job may use it).
            raise RemoteSetupError(
                f"{runner.name}: {manifest_path} does not match the engine it is named after; "
                f"the bundle was modified on the cluster. Remove {bundle} and launch again")
        return SyncReport(bundle, manifest.digest, 0, 0, len(manifest.files), True)

    have_objects, have_files = _probe(runner, manifest, objects, bundle, timeout)
    needed = set(manifest.files.values())
    missing = {h for h in needed if have_objects.get(h) != h}

    script = [_HASH_TOOL, "set -e", f"mkdir -p -- {quote(objects)} {quote(bundle)}"]
    upload = None
    sent = 0
    if missing:
        archive, sent = _tar_gz(root, manifest, missing)
        tag = uuid.uuid4().hex[:12]
        upload = posixpath.join(base, f".upload-{tag}.tar.gz")
        unpack = posixpath.join(base, f".unpack-{tag}")
        runner.put_bytes(archive, upload)
        script += [f"mkdir -p -- {quote(unpack)}",
                   f"tar -xzf {quote(upload)} -C {quote(unpack)}"]
        # rename, not copy: an object under its hash name is always whole
        script += [f"mv -f {quote(unpack + '/' + h)} {quote(objects + '/' + h)}"
                   for h in sorted(missing)]
        script += [f"rm -rf {quote(unpack)} {quote(upload)}"]

    stale = [rel for rel, h in manifest.files.items() if have_files.get(rel) != h]
    dirs = sorted({posixpath.dirname(posixpath.join(bundle, rel)) for rel in stale})
    if dirs:
        script.append("mkdir -p -- " + " ".join(quote(d) for d in dirs))
    for rel in stale:
        dst = posixpath.join(bundle, rel)
        tmp = posixpath.join(posixpath.dirname(dst), f".{posixpath.basename(dst)}.sync-tmp")
        src = posixpath.join(objects, manifest.files[rel])
        script.append(f"cp -f {quote(src)} {quote(tmp)} && mv -f {quote(tmp)} {quote(dst)}")
    # The verification: one hash over the whole bundle, after everything is in place.
    script += ["set +e", "echo '#verify'",
               f"cd {quote(bundle)} && $H -- " + " ".join(quote(p) for p in manifest.files),
               "echo '#end'", "exit 0"]
    try:
        out = _run_script(runner, "\n".join(script) + "\n", "materialising the engine bundle",
                          timeout)
    except Exception:
        if upload is not None:  # best effort: a leftover archive is harmless but wasteful
            with contextlib.suppress(Exception):  # the first error is the one to report
                runner.run(["rm", "-f", upload], timeout=30)
        raise
    if "#end" not in out:
        raise RemoteSetupError(f"{runner.name}: the bundle script stopped early: "
                               f"{out.strip()[-800:]!r}")
    got = _parse_hashes(out.partition("#verify")[2].partition("#end")[0])
    bad = sorted(rel for rel, h in manifest.files.items() if got.get(rel) != h)
    if bad:
        shown = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise RemoteSetupError(
            f"{runner.name}: bundle verification failed in {bundle}: {len(bad)} file(s) are "
            f"missing or differ from the manifest after upload ({shown}). The disk may be full "
            "or the folder shared with another writer; sync again, or remove the folder")
    runner.put_bytes(manifest.to_json().encode(), manifest_path)
    reused = sum(1 for h in manifest.files.values() if h not in missing)
    return SyncReport(bundle, manifest.digest, len(missing), sent, reused, False)


def _main() -> int:  # pragma: no cover - a manual check: python -m remote.bundle [REPO]
    import sys

    m = build_manifest(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO_ROOT)
    print(json.dumps({"digest": m.digest, "files": len(m.files)}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
