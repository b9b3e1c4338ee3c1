"""``python -m carecast.cli``: the ``carecast`` command."""

from carecast.cli import console

console()
