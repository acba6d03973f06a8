"""Atomic writes and the one-line CLI error path."""

import os
import stat

import pytest

from tal_jax import errors


def test_atomic_write_gives_normal_permissions(tmp_path):
  old = os.umask(0o022)
  try:
    path = tmp_path / 'out.json'
    errors.write_json(str(path), {'a': 1})
  finally:
    os.umask(old)
  assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
  assert path.read_text() == '{"a": 1}'


def test_failed_write_keeps_old_content_and_leaves_no_temp(tmp_path):
  path = tmp_path / 'out.txt'
  errors.write_text(str(path), 'old')
  with pytest.raises(RuntimeError):
    with errors.atomic_path(str(path)) as tmp:
      with open(tmp, 'w') as f:
        f.write('half')
      raise RuntimeError('disk full')
  assert path.read_text() == 'old'
  assert os.listdir(tmp_path) == ['out.txt']


def test_run_cli_turns_tal_error_into_one_line(capsys):
  def bad():
    raise errors.TalError('file x.csv: row 3 has 2 columns')

  with pytest.raises(SystemExit) as e:
    errors.run_cli(bad)
  assert e.value.code == 2
  assert capsys.readouterr().err == 'error: file x.csv: row 3 has 2 columns\n'


@pytest.mark.parametrize('exc, line, code', [
    (KeyboardInterrupt(),
     'error: interrupted (Ctrl-C); completed outputs are intact', 130),
    (OSError(28, 'No space left on device', '/w/checkpoints/4'),
     'error: /w/checkpoints/4: No space left on device', 1),
    (NotADirectoryError(20, 'Not a directory', '/tmp/file/out.json'),
     'error: /tmp/file/out.json: Not a directory', 2),
    (PermissionError(13, 'Permission denied', '/ro/a', None, '/ro/b'),
     'error: /ro/a -> /ro/b: Permission denied', 2),
    (ZeroDivisionError('division by zero'),
     'error: ZeroDivisionError: division by zero', 1),
    (errors.TalError('x' * 5000), 'error: ' + 'x' * 1997 + '...', 2),
])
def test_run_cli_one_line_and_exit_code(capsys, exc, line, code):
  def bad():
    raise exc

  with pytest.raises(SystemExit) as e:
    errors.run_cli(bad)
  assert e.value.code == code
  assert capsys.readouterr().err == line + '\n'


def test_run_cli_lets_bugs_through():
  """A bug (TypeError...) keeps its traceback: it is not the user's fault."""
  def bug():
    raise TypeError('unsupported operand')

  with pytest.raises(TypeError):
    errors.run_cli(bug)


def test_one_line_flattens_and_caps():
  assert errors.one_line('a\n  b\tc') == 'a b c'
  assert errors.one_line('abcdefghij', limit=8) == 'abcde...'
