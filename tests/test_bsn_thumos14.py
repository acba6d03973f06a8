"""The BSN chain on THUMOS14 windows end to end (tiny configs)."""

import json
import os

import numpy as np
import pytest

import tal_jax  # noqa: F401

from tal_jax.data import thumos14
from tal_jax.tools import bsn_pipeline
from tal_jax.tools import infer


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp('bsn_th14') / 'bsn')
  bsn_pipeline.main(['--workdir', path, '--dataset', 'thumos14',
                     '--preset', 'tiny', '--quiet'])
  return path


def test_bsn_chain_on_windows_writes_video_results(workdir):
  pem = os.path.join(workdir, 'pem')
  with open(os.path.join(pem, 'metrics.json')) as f:
    metrics = json.load(f)
  assert set(metrics) == {'AR@50', 'AR@100', 'AR@200', 'AR@500', 'AR@1000',
                          'mAP@0.30', 'mAP@0.40', 'mAP@0.50', 'mAP@0.60',
                          'mAP@0.70', 'average_mAP'}
  assert all(0 <= v <= 1 for v in metrics.values())
  # TEM ran on every train and test window (PGM's two modes).
  with np.load(os.path.join(workdir, 'tem', 'tem_results.npz')) as z:
    names = z['names'].tolist()
  assert any(n.startswith('video_validation') for n in names)
  assert any(n.startswith('video_test') for n in names)
  # Results are per video (not per window), in seconds of the video.
  with open(os.path.join(pem, 'results.json')) as f:
    results = json.load(f)['results']
  records = thumos14.embedded_records('test')
  assert results and all('@' not in v for v in results)
  for video, items in results.items():
    ends = [i['segment'][1] for i in items]
    assert max(ends) <= records[video]['duration_second'] + 0.01


def test_infer_cuts_a_long_video_into_windows(workdir, tmp_path):
  """tools.infer on the pipeline workdir: TEM -> PGM -> PEM per test window
  (TEM's window settings), merged with PEM's test soft-NMS."""
  feats = np.random.default_rng(0).standard_normal((1014, 16)).astype(
      np.float32)
  path = tmp_path / 'video_test_0000004.npy'
  np.save(path, feats)
  out = tmp_path / 'out.json'
  got = infer.main(['--workdir', workdir, '--features', str(path),
                    '--duration-second', '33.826', '--out', str(out),
                    '--quiet'])
  rows = got['v_video_test_0000004']
  # 1014 rows, every 5th a snippet: 203 snippets, 1015 frames over
  # 33.826 s, in 32-snippet windows: proposals reach past the first window
  # (5.3 s) and stay inside the video; PEM's test keeps at most
  # proposal_max_seg_num (1000) per video.
  assert 0 < len(rows) <= 1000
  assert rows[:, :2].min() >= 0 and rows[:, :2].max() <= 33.826
  assert rows[:, 1].max() > 10
  assert np.all(rows[:-1, 2] >= rows[1:, 2])
  with open(out) as f:
    assert len(json.load(f)['results']['video_test_0000004']) == len(rows)
