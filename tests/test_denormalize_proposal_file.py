"""Tests for tal_jax.tools.denormalize_proposal_file (MMAction2 0.24.1 tool)."""

import json
import os
import subprocess
import sys

import tal_jax  # pylint: disable=unused-import
import pytest

from tal_jax import errors
from tal_jax import results_io
from tal_jax.errors import TalError
from tal_jax.tools import denormalize_proposal_file as dpf

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden',
                      'denormalize_proposal.json')
TAG_LIST = 'activitynet1.2_tag_val_normalized_proposal_list.txt'
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _make_folders(root, folders):
  """Rawframes folders of empty files, as make_denormalize_golden.py."""
  for video, spec in folders.items():
    folder = root / video
    folder.mkdir(parents=True)
    names = [f'img_{i:05d}.jpg' for i in range(1, spec['img_frames'] + 1)]
    for name in names + spec.get('extra', []):
      if name.endswith('/'):
        (folder / name).mkdir()
      else:
        (folder / name).touch()
  return str(root)


def _write(path, text):
  path.write_text(text)
  return str(path)


@pytest.fixture(scope='module')
def golden():
  with open(GOLDEN) as f:
    return json.load(f)


def test_golden_bytes(tmp_path, golden):
  frames = _make_folders(tmp_path / 'rawframes', golden['folders'])
  norm = _write(tmp_path / 'synthetic_tag_normalized_proposal_list.txt',
                golden['input'])
  out = dpf.main(['--norm-proposal-file', norm, '--frame-dir', frames])
  assert out == str(tmp_path / 'synthetic_tag_proposal_list.txt')
  with open(out, 'rb') as f:
    assert f.read() == golden['output'].encode()


def test_counts_match_parse_directory(tmp_path, golden):
  frames = _make_folders(tmp_path / 'rawframes', golden['folders'])
  for video, count in golden['counts'].items():
    assert dpf.count_rgb_frames(frames, video) == count
  # Gaps, other extensions, a sub folder and a bare 'img_' all count.
  assert golden['counts']['video_validation_0000053'] == 11


def test_golden_edges_by_hand(golden):
  out = golden['output']
  assert out.startswith('# 0\nvideo_validation_0000051\n100\n1\n2\n7 28 56\n')
  assert '# 2\nvideo_validation_0000053\n11\n1\n1\n4 2 9\n0\n# 3\n' in out
  assert '# 4\nvideo_test_0000005\n1000\n1\n0\n0\n# 5\n' in out
  assert '\n1\n0\n3\n3 0.9684 0.9996 99 199\n' in out   # no gts
  assert '8 0.0833 0.0833 3944 5666\n8 0.0960 0.0961 4173 5666\n' in out
  assert out.endswith('video_test_0000006\n0\n1\n1\n2 0 0\n1\n'
                      '2 0.5000 0.5000 0 0\n')


def test_activitynet_tag_list_first_videos(tmp_path, real_data):
  videos = results_io.read_proposal_list(real_data(TAG_LIST))[:3]
  counts = {'nEOpfvJ7g_g': 1000, 'hokqvyeqhmg': 2000, '_uOfIm1tFcI': 250}
  assert [v.video_id for v in videos] == list(counts)
  frames = _make_folders(tmp_path, {v: {'img_frames': n}
                                    for v, n in counts.items()})
  text, empty = dpf.denormalize(videos, frames)
  assert empty == 0
  blocks = text.split('# ')[1:]
  assert len(blocks) == 3
  lines = [b.splitlines() for b in blocks]
  # 0.9728 * 1000 = 972.8; 0.9414 * 1000 = 941.4.
  assert lines[0][:7] == ['0', 'nEOpfvJ7g_g', '1000', '1', '1', '58 0 972',
                          '15']
  assert lines[0][7] == '58 0.9684 0.9996 0 941'
  assert len(lines[0]) == 7 + 15
  # 0.2543 * 2000 = 508.6, 0.9793 * 2000 = 1958.6; 0.7835, 0.8175 exact.
  assert lines[1][:5] == ['1', 'hokqvyeqhmg', '2000', '1', '1']
  assert lines[1][5] == '71 508 1958'
  assert lines[1][7] == '71 0.0470 1.0000 1567 1635'
  # 0.0483 * 250 = 12.075, 0.9297 * 250 = 232.425; 0.033, 0.9427 -> 8.25,
  # 235.675.
  assert lines[2][:7] == ['2', '_uOfIm1tFcI', '250', '1', '1', '88 12 232',
                          '39']
  assert lines[2][7] == '88 0.9687 0.9687 8 235'


def test_default_output_keeps_folder(tmp_path):
  assert dpf.default_output('a/normalized_x/th14_normalized_list.txt') == (
      os.path.join('a/normalized_x', 'th14_list.txt'))


def test_explicit_output_and_empty_folder_warning(tmp_path, capsys):
  frames = _make_folders(tmp_path / 'f', {'v': {'img_frames': 0}})
  norm = _write(tmp_path / 'in.txt', '# 0\nv\n1\n1\n1\n3 0.5 1.0\n0\n')
  out = str(tmp_path / 'sub' / 'out.txt')
  dpf.main(['--norm-proposal-file', norm, '--frame-dir', frames,
            '--output', out])
  with open(out) as f:
    assert f.read() == '# 0\nv\n0\n1\n1\n3 0 0\n0\n'
  assert '1 video folder(s) hold no img_* frame' in capsys.readouterr().out


def _cli_error(argv, capsys):
  with pytest.raises(SystemExit) as exc:
    errors.run_cli(lambda: dpf.main(argv))
  assert exc.value.code == 2
  err = capsys.readouterr().err.strip()
  assert '\n' not in err
  return err


def test_missing_video_folder(tmp_path, capsys):
  frames = _make_folders(tmp_path / 'f', {'a': {'img_frames': 2}})
  norm = _write(tmp_path / 'x_normalized_list.txt',
                '# 0\na\n1\n1\n0\n0\n# 1\nb\n1\n1\n0\n0\n')
  err = _cli_error(['--norm-proposal-file', norm, '--frame-dir', frames],
                   capsys)
  assert err == f'error: video b: no frame folder {os.path.join(frames, "b")}'
  assert not os.path.exists(tmp_path / 'x_list.txt')


@pytest.mark.parametrize('text, match', [
    ('', 'no "# idx" video blocks'),
    ('# 0\nv\n1\n1\nx\n', 'v: expected the number of gts'),
    ('# 0\nv\n1\n1\n1\n3 0.5\n0\n', 'v: expected 3 numbers'),
    ('# 0\nv\n1\n1\n1\n3.5 0.5 0.6\n0\n', 'v: a gt label is not an integer'),
    ('# 0\nv\n1\n1\n0\n1\n1 0.5 0.5 nan 0.6\n',
     "v: non-finite number in '1 0.5 0.5 nan 0.6'"),
])
def test_bad_list(tmp_path, capsys, text, match):
  frames = _make_folders(tmp_path / 'f', {'v': {'img_frames': 2}})
  norm = _write(tmp_path / 'l_normalized_x.txt', text)
  err = _cli_error(['--norm-proposal-file', norm, '--frame-dir', frames],
                   capsys)
  assert match in err
  assert not os.path.exists(tmp_path / 'l_x.txt')


def test_bad_paths(tmp_path, capsys):
  frames = _make_folders(tmp_path / 'f', {'v': {'img_frames': 2,
                                                'extra': ['flow_x_1.jpg']}})
  plain = _write(tmp_path / 'list.txt', '# 0\nv\n1\n1\n0\n0\n')
  err = _cli_error(['--norm-proposal-file', plain, '--frame-dir', frames],
                   capsys)
  assert err == f'error: {plain}: output would overwrite the input; pass --output'
  missing = str(tmp_path / 'nope')
  err = _cli_error(['--norm-proposal-file', plain, '--frame-dir', missing,
                    '--output', str(tmp_path / 'o.txt')], capsys)
  assert err == f'error: {missing}: frame folder not found'
  err = _cli_error(['--norm-proposal-file', plain, '--frame-dir', frames,
                    '--output', str(tmp_path / 'o.txt')], capsys)
  assert err.endswith('1 flow_x_* but 0 flow_y_* files')
  err = _cli_error(['--norm-proposal-file', str(tmp_path / 'no_normalized_'),
                    '--frame-dir', frames], capsys)
  assert 'cannot read' in err
  with open(plain) as f:
    assert f.read() == '# 0\nv\n1\n1\n0\n0\n'


def test_help():
  result = subprocess.run(
      [sys.executable, '-m', 'tal_jax.tools.denormalize_proposal_file',
       '--help'], cwd=ROOT, capture_output=True, text=True, check=True)
  assert '--norm-proposal-file' in result.stdout
  assert '--frame-dir' in result.stdout
