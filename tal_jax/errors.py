"""User-facing errors and atomic file writing.

Every problem caused by the user's input (a missing feature file, a malformed
annotation, an unknown config key) raises ``TalError`` with one line that names the
file, video or key. CLIs catch it in ``run_cli`` and exit with status 2 and that
line, never a traceback.
"""

import contextlib
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
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(
      dir=directory, prefix='.' + os.path.basename(path) + '.', suffix=suffix
      or '.tmp')
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


def run_cli(main_fn: Callable[[], Any]) -> None:
  """Runs a CLI entry point; a TalError becomes one line on stderr, exit 2."""
  try:
    main_fn()
  except TalError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
