"""known_hosts read as OpenSSH reads it (remote.hostkeys.load): hashed and wildcard entries,
negation, [host]:port, @revoked honoured, @cert-authority and bad lines skipped with a warning
without disabling the file; and end to end against the real sshd of fixtures_ssh."""

from __future__ import annotations

import base64
import socket
import subprocess
from pathlib import Path

import paramiko
import pytest
from fixtures_ssh import keygen

from remote import hostkeys
from remote.errors import HostKeyChanged, HostKeyRevoked, HostKeyUnknown
from remote.ssh import SSHRunner


def pub(path: Path) -> str:
    """``type base64`` of ``path``.pub."""
    return " ".join(Path(f"{path}.pub").read_text().split()[:2])


def key_of(line: str) -> paramiko.PKey:
    key_type, b64 = line.split()[:2]
    return paramiko.PKey.from_type_string(key_type, base64.b64decode(b64))


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, str]:
    """A few public keys as ``type base64`` strings."""
    d = tmp_path_factory.mktemp("keys")
    return {"a": pub(keygen(d / "a")), "b": pub(keygen(d / "b")),
            "c": pub(keygen(d / "c", "ecdsa")), "rsa": pub(keygen(d / "rsa", "rsa"))}


def write(tmp_path: Path, text: str, name: str = "known_hosts") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def names(found: list[paramiko.PKey]) -> list[str]:
    return [k.get_base64() for k in found]


def b64(line: str) -> str:
    return line.split()[1]


# -- parsing units -----------------------------------------------------------------------

def test_plain_port_and_several_patterns(tmp_path, keys):
    path = write(tmp_path, f"# a comment\n\n   \nlogin.example.org,10.0.0.5 {keys['a']} alice@x\n"
                           f"[login.example.org]:2222 {keys['b']}\n"
                           f"  # indented comment\n[other]:2200,[other]:2201 {keys['rsa']}\n")
    known = hostkeys.load([path])
    assert known.warnings == []
    assert names(known.lookup("login.example.org", 22)) == [b64(keys["a"])]
    assert names(known.lookup("LOGIN.Example.org", 22)) == [b64(keys["a"])]  # case-insensitive
    assert names(known.lookup("10.0.0.5", 22)) == [b64(keys["a"])]
    # Another port matches only [host]:port, never the plain name.
    assert names(known.lookup("login.example.org", 2222)) == [b64(keys["b"])]
    assert known.lookup("10.0.0.5", 2222) == []
    assert names(known.lookup("other", 2201)) == [b64(keys["rsa"])]
    assert known.lookup("other", 22) == [] and known.lookup("other", 2202) == []
    assert known.lookup("login.example.org.evil", 22) == []


def test_port_22_is_the_plain_name_only(tmp_path, keys):
    known = hostkeys.load([write(tmp_path, f"[h]:22 {keys['a']}\nh {keys['b']}\n")])
    assert names(known.lookup("h", 22)) == [b64(keys["b"])]  # as ssh: [h]:22 is never looked up


def test_wildcards_and_negation(tmp_path, keys):
    path = write(tmp_path, f"*.example.org,!bad.example.org {keys['a']}\n"
                           f"node?? {keys['b']}\n"
                           f"[10.1.2.*]:* {keys['c']}\n")
    known = hostkeys.load([path])
    assert known.warnings == []
    assert names(known.lookup("x.example.org", 22)) == [b64(keys["a"])]
    assert known.lookup("bad.example.org", 22) == []  # the negated pattern excludes the line
    assert known.lookup("example.org", 22) == []
    assert names(known.lookup("node12", 22)) == [b64(keys["b"])]
    assert known.lookup("node1", 22) == [] and known.lookup("node123", 22) == []
    assert names(known.lookup("10.1.2.77", 2222)) == [b64(keys["c"])]
    assert known.lookup("10.1.2.77", 22) == []  # port 22 is the plain name
    assert known.lookup("10.1.3.7", 2222) == []
    # Brackets are literal, not fnmatch classes.
    assert hostkeys.match_host(["[h]:22?"], "[h]:220")
    assert not hostkeys.match_host(["[ab]"], "a")


def test_negation_alone_matches_nothing(tmp_path, keys):
    known = hostkeys.load([write(tmp_path, f"!foo {keys['a']}\n")])
    assert known.lookup("bar", 22) == [] and known.lookup("foo", 22) == []


def test_hashed_entries_written_by_openssh(tmp_path, keys):
    path = write(tmp_path, f"cluster.example.org {keys['a']}\n[127.0.0.1]:2222 {keys['b']}\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(path)], check=True, capture_output=True)
    lines = path.read_text().splitlines()
    assert all(line.startswith("|1|") for line in lines)
    known = hostkeys.load([path])
    assert known.warnings == []
    assert names(known.lookup("cluster.example.org", 22)) == [b64(keys["a"])]
    assert names(known.lookup("Cluster.Example.ORG", 22)) == [b64(keys["a"])]
    assert names(known.lookup("127.0.0.1", 2222)) == [b64(keys["b"])]
    assert known.lookup("127.0.0.1", 22) == [] and known.lookup("cluster.example.com", 22) == []
    # And what accept_host_key hashes, OpenSSH finds (and we too).
    ours = tmp_path / "ours"
    hostkeys.accept_host_key(ours, "h.example.org", 2200, key_of(keys["c"]), hash_name=True)
    found = subprocess.run(["ssh-keygen", "-F", "[h.example.org]:2200", "-f", str(ours)],
                           capture_output=True, text=True)
    assert found.returncode == 0
    assert names(hostkeys.load([ours]).lookup("h.example.org", 2200)) == [b64(keys["c"])]


def test_bad_lines_are_skipped_with_warnings(tmp_path, keys):
    key_type, good_b64 = keys["rsa"].split()
    truncated = good_b64[:len(good_b64) // 2 // 4 * 4]  # still valid base64, half a key
    path = write(tmp_path, "\n".join([
        f"good1 {keys['a']}",                                         # 1
        f"@cert-authority *.example.org {keys['b']}",                 # 2
        "this is not a known_hosts line at all",                      # 3
        f"trunc {key_type} {truncated}",                              # 4
        f"badb64 {keys['a'].split()[0]} !!!notbase64!!!",             # 5
        f"unknowntype ssh-foo {good_b64}",                            # 6
        f"@frobnicate host {keys['a']}",                              # 7
        "onlyhost",                                                   # 8
        f"mismatch ssh-ed25519 {good_b64}",                           # 9
        "|1|bad|hash " + keys["a"],                                   # 10
        "old 1024 65537 12345678901234567890",                        # 11
        f"good2 {keys['c']} trailing comment words",                  # 12
    ]) + "\n")
    path.write_bytes(path.read_bytes() + b"bin\xff\xfe " + keys["a"].encode() + b"\n")  # 13
    known = hostkeys.load([path])
    assert names(known.lookup("good1", 22)) == [b64(keys["a"])]
    assert names(known.lookup("good2", 22)) == [b64(keys["c"])]
    for host in ("trunc", "badb64", "unknowntype", "host", "mismatch", "x.example.org", "bin"):
        assert known.lookup(host, 22) == [], host
    assert [(w.path, w.line) for w in known.warnings] == [
        (str(path), n) for n in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13)]
    why = {w.line: w.reason for w in known.warnings}
    assert "cert-authority" in why[2] and "not supported" in why[2]
    assert "unknown or unsupported key type 'is'" in why[3]
    assert "not a known_hosts line" in why[8]
    assert "truncated" in why[4] or "cannot be decoded" in why[4]
    assert "base64" in why[5]
    assert "ssh-foo" in why[6]
    assert "@frobnicate" in why[7]
    assert "ssh-rsa" in why[9] and "ssh-ed25519" in why[9]
    assert "hashed" in why[10]
    assert "SSH-1" in why[11]
    assert "UTF-8" in why[13]
    assert str(known.warnings[0]) == f"{path}:2: {why[2]}"


def test_truncated_ed25519_is_not_padded_into_another_key(tmp_path, keys):
    # paramiko zero-pads a short blob: without our check this would load a wrong key.
    key_type, b64_ = keys["a"].split()
    blob = base64.b64decode(b64_)
    short = base64.b64encode(blob[:-4]).decode()
    known = hostkeys.load([write(tmp_path, f"h {key_type} {short}\n")])
    assert known.lookup("h", 22) == [] and len(known.warnings) == 1
    assert "truncated" in known.warnings[0].reason


def test_revoked_key_refused_for_every_host(tmp_path, keys):
    path = write(tmp_path, f"h1,h2 {keys['a']}\nh1 {keys['b']}\n@revoked * {keys['a']}\n")
    known = hostkeys.load([path])
    assert known.warnings == []
    assert known.is_revoked(key_of(keys["a"])) and not known.is_revoked(key_of(keys["b"]))
    assert names(known.lookup("h1", 22)) == [b64(keys["b"])]  # the others stay fine
    assert known.lookup("h2", 22) == []
    with pytest.raises(HostKeyRevoked) as info:
        known.check("h1", 22, key_of(keys["a"]))
    e = info.value
    assert (e.known_file, e.line, e.host, e.port) == (str(path), 3, "h1", 22)
    assert f"{path} line 3" in str(e) and "REVOKED" in str(e)
    assert e.fingerprint == hostkeys.fingerprint(key_of(keys["a"]))
    known.check("h1", 22, key_of(keys["b"]))  # accepted: no exception


def test_check_unknown_and_changed(tmp_path, keys):
    first = write(tmp_path, f"h {keys['a']}\n", "first")
    second = write(tmp_path, f"other {keys['c']}\n", "second")
    known = hostkeys.load([tmp_path / "missing", first, second])
    known.check("h", 22, key_of(keys["a"]))
    with pytest.raises(HostKeyChanged) as changed:
        known.check("h", 22, key_of(keys["b"]))
    assert str(first) in str(changed.value)
    with pytest.raises(HostKeyUnknown) as unknown:
        known.check("nobody", 22, key_of(keys["b"]))
    assert unknown.value.key.asbytes() == key_of(keys["b"]).asbytes()
    assert names(known.lookup("other", 22)) == [b64(keys["c"])]  # several files


def test_transport_factory_asks_for_known_key_types_first(tmp_path, keys):
    known = hostkeys.load([write(tmp_path, f"h {keys['rsa']}\nh {keys['c']}\n")])
    a, b = socket.socketpair()
    try:
        t = known.transport_factory("h", 22)(a)
        order = list(t.get_security_options().key_types)
        t.close()
    finally:
        a.close()
        b.close()
    assert order[:3] == ["rsa-sha2-512", "rsa-sha2-256", key_of(keys["c"]).get_name()]
    assert "ssh-ed25519" in order[3:]


# -- end to end against the real sshd ----------------------------------------------------

def runner(ssh_env, known: Path) -> SSHRunner:
    return SSHRunner("target", ssh_config=ssh_env.ssh_config, known_hosts=known, retries=2,
                     backoff_s=0.01, use_agent=False, connect_timeout=5)


def test_cert_authority_and_garbage_do_not_disable_the_file(ssh_env, tmp_path):
    t = ssh_env.target
    known = write(tmp_path, f"@cert-authority *.example.org {ssh_env.jump.host_pub}\n"
                            "garbage garbage\n"
                            f"[127.0.0.1]:{t.port} {t.host_pub}\n", "kh")
    # paramiko's own reader gives up on this file (what the issue saw).
    with pytest.raises(Exception):  # noqa: B017, PT011
        paramiko.HostKeys(str(known))
    r = runner(ssh_env, known)
    try:
        assert r.run(["echo", "ok"]).stdout == "ok\n"
    finally:
        r.close()


def test_revoked_server_key_refused_although_accepted(ssh_env, tmp_path):
    t = ssh_env.target
    known = write(tmp_path, f"[127.0.0.1]:{t.port} {t.host_pub}\n"
                            f"@revoked [127.0.0.1]:* {t.host_pub}\n", "kh")
    marker = tmp_path / "marker"
    r = runner(ssh_env, known)
    try:
        with pytest.raises(HostKeyRevoked) as info:
            r.run(["touch", marker])
    finally:
        r.close()
    assert (info.value.known_file, info.value.line) == (str(known), 2)
    assert not marker.exists()


def test_wildcard_entry_accepts(ssh_env, tmp_path):
    t = ssh_env.target
    known = write(tmp_path, f"[127.0.0.?]:* {t.host_pub}\n", "kh")
    r = runner(ssh_env, known)
    try:
        assert r.run(["true"]).ok
    finally:
        r.close()
    # The same key under a negated pattern for this host is not an accept: unknown.
    known.write_text(f"[127.0.0.*]:*,![127.0.0.1]:{t.port} {t.host_pub}\n")
    r = runner(ssh_env, known)
    try:
        with pytest.raises(HostKeyUnknown):
            r.connect()
    finally:
        r.close()


def test_hashed_file_from_ssh_keygen_connects_through_jump(ssh_env, tmp_path):
    known = tmp_path / "kh"
    known.write_text(ssh_env.known_hosts.read_text())
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    r = SSHRunner("via-jump", ssh_config=ssh_env.ssh_config, known_hosts=known, retries=2,
                  backoff_s=0.01, use_agent=False, connect_timeout=5)
    try:
        assert r.run(["echo", "hi"]).stdout == "hi\n"
    finally:
        r.close()
