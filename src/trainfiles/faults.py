"""Crash points for the tests that kill a command at each step of a commit.

`TRAINFILES_CRASH_AT=NAME` makes the process kill itself (SIGKILL, as `kill -9` would) when
it reaches the point NAME; unset, a crash point costs one dictionary lookup.
"""

import os
import signal


def crash_point(name: str) -> None:
    if os.environ.get("TRAINFILES_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
