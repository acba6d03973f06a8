"""tools/infer: proposals of single videos from feature files, JSON and PNG."""

import json
import os

import numpy as np
import pytest

import tal_jax  # noqa: F401

from tal_jax import errors
from tal_jax.engine import predict as infer
from tal_jax.data import pipeline
from tal_jax.data import resample
from tal_jax.tools import infer as infer_tool
from tal_jax.ops import segments
from tal_jax import localizers

from test_export import make_workdir, tiny_config


@pytest.fixture(scope='module')
def run(tmp_path_factory):
  base = tmp_path_factory.mktemp('infer')
  config = tiny_config(base / 'cache')
  make_workdir(base / 'work', config, seed=1)
  return config, str(base / 'work'), base


def test_folder_with_ann_file_equals_test_mode(run, capsys):
  """The tool on a split's feature folder gives test mode's results.json."""
  config, workdir, base = run
  videos = pipeline.load_split(config, 'test')
  infer.run_test(localizers.get(config), config, workdir, quiet=True)
  with open(os.path.join(workdir, 'results.json')) as f:
    want = json.load(f)
  paths = pipeline.annotation_paths(config, config.model.temporal_dim)
  ann, feature_dir = paths['ann_file_test'], paths['feature_dir']
  out = str(base / 'all.json')
  infer_tool.main(['--workdir', workdir, '--features', feature_dir,
                   '--ann-file', ann, '--out', out, '--top', '2', '--quiet'])
  with open(out) as f:
    got = json.load(f)
  assert got == want
  text = capsys.readouterr().out
  assert f'{videos.names[0]} (' in text and 'wrote ' + out in text


def test_variable_length_npy_is_resampled(run, capsys):
  """L = 37 rows and a duration: the same proposals as the file resampled by
  tal_jax.data.resample to T rows; seconds within the duration; PNG written."""
  _, workdir, base = run
  x = np.random.default_rng(3).uniform(0, 1, (37, 400))
  np.save(base / 'v_long.npy', x)
  resampled = resample.bsn_pool_features(x, 16, 50.0, 37 * 16)
  np.save(base / 'v_short.npy', resampled.astype(np.float32))
  outs = []
  for name in ('v_long', 'v_short'):
    out = str(base / f'{name}.json')
    png = str(base / f'{name}.png')
    got = infer_tool.main(['--workdir', workdir, '--features',
                           str(base / f'{name}.npy'), '--duration-second',
                           '50', '--out', out, '--plot', png, '--top', '3'])
    rows = got[name]
    assert len(rows) == 100
    assert rows[:, 0].min() >= 0 and rows[:, 1].max() <= 50.0
    assert np.all(np.diff(rows[:, 2]) <= 0)
    with open(png, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with open(out) as f:
      outs.append(json.load(f)['results'])
  assert outs[0]['long'] == outs[1]['short']
  text = capsys.readouterr().out
  assert 'v_long (50.00 s): top 3 of 100 proposals' in text
  first = outs[0]['long'][0]
  assert f'{first["segment"][0]:9.2f} - {first["segment"][1]:9.2f} s' in text


def test_seconds_without_duration_use_fps(run):
  """No duration: L rows of 16 frames at --fps; 16 rows at 32 fps = 8 s."""
  _, workdir, base = run
  np.save(base / 'v_fps.npy', np.ones((16, 400), np.float32))
  got = infer_tool.main(['--workdir', workdir, '--features',
                         str(base / 'v_fps.npy'), '--fps', '32', '--out',
                         str(base / 'fps.json'), '--quiet'])
  rows = got['v_fps']
  assert rows[:, 1].max() <= 8.0 and rows[:, 1].max() > 4.0
  # Normalised bounds k/16 scaled by 8 s: multiples of 0.5 s.
  np.testing.assert_allclose(rows[:, :2] * 2, np.round(rows[:, :2] * 2))


def test_failed_json_write_leaves_no_file(run, monkeypatch):
  _, workdir, base = run
  np.save(base / 'v_a.npy', np.ones((16, 400), np.float32))
  out = base / 'fail' / 'a.json'

  def broken_dump(obj, f, **kw):
    f.write('{"version": "VERSION 1.3", "res')
    raise OSError(28, 'No space left on device')

  monkeypatch.setattr(json, 'dump', broken_dump)
  with pytest.raises(OSError):
    infer_tool.main(['--workdir', workdir, '--features',
                     str(base / 'v_a.npy'), '--out', str(out), '--quiet'])
  assert os.listdir(base / 'fail') == []


def test_plot_of_a_folder_needs_video(run):
  _, workdir, base = run
  d = base / 'two'
  d.mkdir()
  for n in ('v_a', 'v_b'):
    np.save(d / f'{n}.npy', np.ones((16, 400), np.float32))
  with pytest.raises(errors.TalError, match='needs --video'):
    infer_tool.main(['--workdir', workdir, '--features', str(d), '--out',
                     str(base / 'two.json'), '--plot', str(base / 'x.png'),
                     '--quiet'])
  infer_tool.main(['--workdir', workdir, '--features', str(d), '--out',
                   str(base / 'two.json'), '--plot', str(base / 'b.png'),
                   '--video', 'b', '--quiet'])
  assert os.path.getsize(base / 'b.png') > 5000


def test_to_seconds_factor_matches_postprocess():
  rec = {'duration_frame': 1000, 'duration_second': 40.0}
  want = segments.to_seconds(np.array([[[0.0, 1.0, 1.0]]]), [1000],
                                [40.0])[0, 0, 1]
  assert infer_tool.proposals_factor(rec) == pytest.approx(want)
  assert want == pytest.approx(992 / 1000 * 40)
