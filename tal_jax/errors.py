"""User-facing errors and atomic file writing.

Every problem caused by the user's input (a missing feature file, a malformed
annotation, an unknown config key) raises ``TalError`` with one line that names the
file, video or key. CLIs catch it in ``run_cli`` and exit with status 2 and that
line, never a traceback.

Exit codes of every CLI (README, "Exit codes and the workdir lock"):
2 bad input (TalError, or an OSError on a path the user named: missing,
not a directory, not writable), 130 Ctrl-C, 1 any other failure turned into
one line (disk full, an I/O error, an arithmetic error).
"""

import contextlib
import errno
import json
import os
import sys
import tempfile
from typing import Any, Callable, Iterator


class TalError(Exception):
  """An error in the user's input; its message is one line naming the culprit."""


@contextlib.contextmanager
def atomic_path(path: str, suffix: str = '') -> Iterator[str]:
  """Yields a temporary path beside `path`; renames it onto `path` on success.

  A failure inside the block removes the temporary file, so `path` is either
  the old content or the complete new one, never half written.
  """
  directory = os.path.dirname(os.path.abspath(path))
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix='.' + os.path.basename(path) + '.',
        suffix=suffix or '.tmp')
  except OSError as e:  # named by the path asked for, not a temporary one
    raise OSError(e.errno, e.strerror, path) from None
  os.close(fd)
  try:
    yield tmp
    # mkstemp makes the file private (0600); give it the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def check_writable(path: str, flag: str) -> None:
  """TalError, before any work, when output `path` (given as `flag`) is an
  existing folder or its folder can neither be created nor written."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(path):
    raise TalError(f'{flag} {path}: is a folder, expected a file path')
  parent = os.path.dirname(path)
  while not os.path.exists(parent):
    parent = os.path.dirname(parent)
  if not os.path.isdir(parent):
    raise TalError(f'{flag} {path}: {parent} is not a folder')
  if not os.access(parent, os.W_OK | os.X_OK):
    raise TalError(f'{flag} {path}: {parent} is not writable')


def write_json(path: str, obj: Any, indent: int | None = None) -> None:
  """Writes `obj` as JSON to `path` atomically."""
  with atomic_path(path, '.json') as tmp:
    with open(tmp, 'w') as f:
      json.dump(obj, f, indent=indent)


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically."""
  with atomic_path(path) as tmp:
    with open(tmp, 'w') as f:
      f.write(text)


EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_FAILURE = 1

# OSErrors of the machine rather than of the user's input.
_SYSTEM_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.ENOMEM,
                  errno.EROFS)


def one_line(text: str, limit: int = 300) -> str:
  """`text` on one line, at most `limit` characters ('...' marks a cut)."""
  flat = ' '.join(str(text).split())
  return flat if len(flat) <= limit else flat[:limit - 3] + '...'


def describe_os_error(e: OSError) -> str:
  """'<path>: <reason>' (both paths of a failed rename); the reason alone
  when the error carries no path."""
  reason = e.strerror or one_line(str(e)) or type(e).__name__
  paths = [p for p in (e.filename, e.filename2) if p]
  if not paths:
    return reason
  return f'{" -> ".join(str(p) for p in paths)}: {reason}'


def failure(e: BaseException) -> tuple[str, int] | None:
  """(one line, exit code) for the failures a CLI reports without a
  traceback; None for the rest (a bug: the traceback is wanted)."""
  if isinstance(e, TalError):
    return one_line(str(e), 2000), EXIT_BAD_INPUT
  if isinstance(e, KeyboardInterrupt):
    return 'interrupted (Ctrl-C); completed outputs are intact', EXIT_INTERRUPTED
  if isinstance(e, OSError):
    code = EXIT_FAILURE if e.errno in _SYSTEM_ERRNOS else EXIT_BAD_INPUT
    return describe_os_error(e), code
  if isinstance(e, (ArithmeticError, MemoryError)):
    return f'{type(e).__name__}: {one_line(str(e))}', EXIT_FAILURE
  return None


def run_cli(main_fn: Callable[[], Any]) -> None:
  """Runs a CLI entry point; an expected failure becomes one `error:` line on
  stderr and the exit code of `failure` (2 bad input, 130 Ctrl-C, 1 other)."""
  try:
    main_fn()
  except (TalError, KeyboardInterrupt, OSError, ArithmeticError,
          MemoryError) as e:
    message, code = failure(e)
    print(f'error: {message}', file=sys.stderr)
    sys.exit(code)
