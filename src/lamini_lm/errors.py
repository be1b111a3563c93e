"""One convention for a user's mistakes: raise UserError, and entry points print one line and exit 2.

A broken data line, an unknown config choice or a missing API key is not a bug in our code, so the
user gets a single sentence naming the file, line or key and what to do, never a traceback.
"""

from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """A problem the user can fix: the message names what is wrong and what to do."""


def exit_on_user_error(fn):
    """Wrap an entry point: a UserError (also one raised inside Hydra's job) becomes one line + exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    return wrapper
