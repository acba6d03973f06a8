"""An imported MMAction2 BMN checkpoint reproduces MMAction2's proposals.

End to end: tests/golden/bmn_tiny.pth -> `tal_jax.tools.import_mmaction2` ->
Orbax workdir -> `predict.restore_variables` -> `predict.predict_split` (and
`predict.run_test` from feature files and an annotation file) against what
MMAction2 1.2.0's `BMN.forward(mode='predict')` and `ANetMetric` gave on the
same videos (tests/golden/bmn_predict.npz, make_bmn_predict_golden.py).
"""

import json
import os

import tal_jax  # noqa: F401
import numpy as np
import pytest

from tal_jax import config_utils
from tal_jax.engine import predict as infer
from tal_jax.engine import trainer as train
from tal_jax.data import activitynet
from tal_jax.tools import import_mmaction2
from tal_jax import results_io
from tal_jax import localizers

GOLDEN_DIR = os.path.join(os.path.dirname(__file__), 'golden')
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, 'configs', 'bmn.py') + ':tiny'
SETTINGS = ('default', 'small_k')
RTOL = 1e-6


@pytest.fixture(scope='module')
def golden():
  return dict(np.load(os.path.join(GOLDEN_DIR, 'bmn_predict.npz'),
                      allow_pickle=False))


def model_overrides(golden):
  """--set values making configs/bmn.py:tiny the golden model (all model
  fields; today only model.feat_dim=24 differs from the preset)."""
  cfg = json.loads(str(golden['config_json']))
  return [f'model.{k}={v}' for k, v in sorted(cfg.items())]


@pytest.fixture(scope='module')
def workdir(golden, tmp_path_factory):
  """A workdir holding bmn_tiny.pth imported through the CLI's main()."""
  path = tmp_path_factory.mktemp('imported')
  argv = ['--checkpoint', os.path.join(GOLDEN_DIR, 'bmn_tiny.pth'),
          '--config', CONFIG, '--workdir', str(path)]
  for item in model_overrides(golden):
    argv += ['--set', item]
  import_mmaction2.main(argv)
  return str(path)


def make_config(golden, setting):
  config = config_utils.load_config(CONFIG)
  for k, v in json.loads(str(golden['config_json'])).items():
    config.model[k] = v
  alpha, low, high, top_k = golden[f'{setting}/params']
  config.test.soft_nms_alpha = float(alpha)
  config.test.soft_nms_low_threshold = float(low)
  config.test.soft_nms_high_threshold = float(high)
  config.test.post_process_top_k = int(top_k)
  return config


def golden_proposals(golden, setting):
  """{name: [K, 3] (start_s, end_s, score)} in MMAction2's order."""
  rows = golden[f'{setting}/proposals']
  bounds = np.cumsum(np.concatenate([[0], golden[f'{setting}/counts']]))
  return {str(n): rows[a:b] for n, a, b in
          zip(golden['names'], bounds[:-1], bounds[1:])}


def assert_scores_close(got, want, name):
  """Scores of one video to fp32 tolerance as a relative norm (a float32
  forward's rounding depends on the CPU's vector width: elementwise errors
  reach 2e-6 on AVX2 machines, the norm stays below 1e-6)."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
  assert err < RTOL, (name, err)


def assert_results_equal(got, want):
  """Same ActivityNet results dict, floats to RTOL relative."""
  assert got.keys() == want.keys()
  for video in want:
    assert len(got[video]) == len(want[video]), video
    assert_scores_close([g['score'] for g in got[video]],
                        [w['score'] for w in want[video]], video)
    for g, w in zip(got[video], want[video]):
      assert g.keys() == w.keys() == {'score', 'segment'}
      np.testing.assert_allclose(g['segment'], w['segment'], rtol=RTOL,
                                 atol=0)


@pytest.mark.parametrize('setting', SETTINGS)
def test_predict_split_reproduces_mmaction2(golden, workdir, setting):
  config = make_config(golden, setting)
  records = json.loads(str(golden['records_json']))
  names = [str(n) for n in golden['names']]
  videos = activitynet.VideoSet(names, golden['features'],
                                [records[n] for n in names])
  trainer = train.Trainer(localizers.get(config), config, steps_per_epoch=1)
  variables, _ = infer.restore_variables(trainer.predictor, config, workdir)
  got = infer.predict_split(trainer.predictor, variables['params'], videos,
                            config.test.batch_size)
  want = golden_proposals(golden, setting)
  assert list(got) == names
  for name in names:
    # Same count and order; segments bit-exact (float64 host arithmetic in
    # MMAction2's order), scores to RTOL as a relative norm (float32 forward).
    assert got[name].shape == want[name].shape, name
    np.testing.assert_array_equal(got[name][:, :2], want[name][:, :2],
                                  err_msg=name)
    assert_scores_close(got[name][:, 2], want[name][:, 2], name)
  dumped = json.loads(str(golden[f'{setting}/results_json']))
  ours = results_io.proposal_results(got)
  assert ours.keys() == dumped.keys()
  assert ours['version'] == dumped['version'] == 'VERSION 1.3'
  assert ours['external_data'] == dumped['external_data'] == {}
  assert set(ours['results']) == {n[2:] for n in names}
  assert_results_equal(ours['results'], dumped['results'])


def test_golden_exercises_candidates_and_soft_nms(golden):
  # Some videos keep every candidate (< top_k + 1), some are cut to top_k.
  cands = golden['default/num_candidates']
  counts = golden['default/counts']
  assert cands.max() == 120 and cands.min() < 100
  np.testing.assert_array_equal(counts, np.minimum(cands, 100))
  np.testing.assert_array_equal(golden['small_k/counts'], 10)


def test_run_test_writes_mmaction2_results_and_metrics(golden, workdir,
                                                       tmp_path):
  # From feature files and an annotation file, as a user runs --mode=test.
  config = make_config(golden, 'default')
  feature_dir = tmp_path / 'features'
  feature_dir.mkdir()
  names = [str(n) for n in golden['names']]
  for name, x in zip(names, golden['features']):
    np.save(feature_dir / f'{name}.npy', x)
  ann_file = tmp_path / 'anno.json'
  ann_file.write_text(str(golden['records_json']))
  config.data.feature_dir = str(feature_dir)
  config.data.ann_file_test = str(ann_file)
  config.data.cache_dir = str(tmp_path / 'cache')
  metrics = infer.run_test(localizers.get(config), config, workdir, quiet=True)
  with open(os.path.join(workdir, 'results.json')) as f:
    ours = json.load(f)
  dumped = json.loads(str(golden['default/results_json']))
  assert ours.keys() == dumped.keys()
  assert ours['version'] == dumped['version']
  assert ours['external_data'] == dumped['external_data']
  assert_results_equal(ours['results'], dumped['results'])
  want = json.loads(str(golden['default/metrics_json']))
  with open(os.path.join(workdir, 'metrics.json')) as f:
    assert json.load(f) == metrics
  assert set(metrics) == {'AR@1', 'AR@5', 'AR@10', 'AR@100', 'AUC'}
  for k in ('AR@1', 'AR@5', 'AR@10', 'AR@100'):
    np.testing.assert_allclose(metrics[k], want[k], rtol=1e-9, err_msg=k)
  np.testing.assert_allclose(metrics['AUC'], want['auc'], rtol=1e-9)
