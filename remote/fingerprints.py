"""A public key's fingerprint as people compare it: ``SHA256:<base64>``, what ``ssh-keygen -lf`` prints.

Its own module so that ``remote.errors`` (which names the key in a HostKeyChanged) and
``remote.hostkeys`` (which shows it before a user accepts a key) share it without importing
each other. Needs no paramiko import: any object with ``asbytes()`` (a ``paramiko.PKey``) will do.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Protocol


class PublicKey(Protocol):
    def asbytes(self) -> bytes: ...


def fingerprint(key: PublicKey) -> str:
    """``SHA256:<base64 without padding>``, the format ``ssh-keygen -lf`` prints."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")
