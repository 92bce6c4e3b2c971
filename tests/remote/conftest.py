"""Fixtures of the remote suite: real sshd servers (fixtures_ssh.py) and a real Slurm
(fixtures_slurm.py)."""

from fixtures_slurm import *  # noqa: F403
from fixtures_ssh import *  # noqa: F403
