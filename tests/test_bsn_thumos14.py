"""The BSN chain on THUMOS14 windows end to end (tiny configs)."""

import json
import os

import numpy as np

import tal_jax  # noqa: F401

from tal_jax.data import thumos14
from tal_jax.tools import bsn_pipeline


def test_bsn_chain_on_windows_writes_video_results(tmp_path):
  workdir = str(tmp_path / 'bsn')
  bsn_pipeline.main(['--workdir', workdir, '--dataset', 'thumos14',
                     '--preset', 'tiny', '--quiet'])
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
