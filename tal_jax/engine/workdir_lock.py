"""One run per workdir: <workdir>/tal_jax.lock holds the holder's pid and host.

Two trainings on one workdir would race on its checkpoints and double its
metrics.jsonl rows; the second one stops with one line instead. A lock left
by a process that no longer runs on this host (killed with SIGKILL, a crash)
is taken over with a message; one from another host is never guessed stale.
"""

import contextlib
import json
import os
import socket
import time
from typing import Callable, Iterator

from tal_jax import errors

LOCK_NAME = 'tal_jax.lock'


def _alive(pid: int) -> bool:
  """Whether process `pid` runs on this host."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # another user's process
  return True


def read_holder(path: str) -> dict | None:
  """{'pid', 'host', 'since'} of a lock file; None when unreadable (a lock
  whose writer died mid-write)."""
  try:
    with open(path) as f:
      holder = json.load(f)
    int(holder['pid'])
    str(holder['host'])
  except (OSError, ValueError, KeyError, TypeError):
    return None
  return holder


def is_stale(holder: dict | None, host: str) -> bool:
  """A garbled lock, or one of a dead pid on this host."""
  if holder is None:
    return True
  return holder['host'] == host and not _alive(int(holder['pid']))


def acquire(workdir: str, say: Callable[[str], None] = print) -> str:
  """Creates the lock file (exclusively) and returns its path; takes over a
  stale one (saying so); TalError naming the holder of a live one."""
  path = os.path.join(workdir, LOCK_NAME)
  host = socket.gethostname()
  mine = {'pid': os.getpid(), 'host': host,
          'since': time.strftime('%Y-%m-%d %H:%M:%S')}
  for _ in range(2):
    try:
      fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      holder = read_holder(path)
      if not is_stale(holder, host):
        raise errors.TalError(
            f"{workdir} is in use by pid {holder['pid']} on {holder['host']} "
            f"(since {holder.get('since', '?')}); wait for it to end, or "
            f'delete {path} if that process is gone') from None
      who = (f"pid {holder['pid']}, no longer running" if holder
             else 'unreadable')
      say(f'taking over the stale lock {path} ({who})')
      with contextlib.suppress(FileNotFoundError):
        os.remove(path)
      continue
    with os.fdopen(fd, 'w') as f:
      json.dump(mine, f)
    return path
  raise errors.TalError(f'{path}: another run took the lock at the same time')


def release(path: str) -> None:
  """Removes the lock file if this process still holds it."""
  holder = read_holder(path)
  if holder and holder['pid'] == os.getpid() and (
      holder['host'] == socket.gethostname()):
    os.remove(path)


@contextlib.contextmanager
def hold(workdir: str, enabled: bool = True,
         say: Callable[[str], None] = print) -> Iterator[None]:
  """Holds the workdir's lock for the block (nothing when not `enabled`:
  processes other than 0 of a multi-host run)."""
  if not enabled:
    yield
    return
  path = acquire(workdir, say)
  try:
    yield
  finally:
    release(path)
