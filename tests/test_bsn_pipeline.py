"""The BSN chain end to end on the tiny configs: TEM -> PGM -> PEM."""

import argparse
import json
import os

import numpy as np
import pytest

import tal_jax  # noqa: F401

from tal_jax.localizers.bsn import definition as bsn
from tal_jax.localizers.bsn import files as bsn_io
from tal_jax import config_utils
from tal_jax import errors
from tal_jax.localizers.bsn import pgm
from tal_jax.data import activitynet
from tal_jax.data import pipeline
from tal_jax.tools import bsn_pipeline
from tal_jax.engine import loop
from tal_jax import localizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def chain(tmp_path_factory):
  base = tmp_path_factory.mktemp('bsn')
  args = argparse.Namespace(
      workdir=str(base / 'work'), preset='tiny', cache_dir=str(base / 'cache'),
      feature_dir='', ann_file_train='', ann_file_val='', ann_file_full='',
      quiet=True)
  metrics = bsn_pipeline.run_pipeline(args)
  return args, metrics


def test_chain_writes_every_stage(chain):
  args, metrics = chain
  w = args.workdir
  assert set(metrics) == {'AR@1', 'AR@5', 'AR@10', 'AR@100', 'AUC'}
  assert 0 < metrics['AUC'] < 100
  for path in ('tem/tem_results.npz', 'tem/metrics.jsonl', 'pgm/pgm_train.npz',
               'pgm/pgm_test.npz', 'pem/results.json', 'pem/metrics.json'):
    assert os.path.isfile(os.path.join(w, path)), path
  saved = json.load(open(os.path.join(w, 'pem/metrics.json')))
  assert saved == pytest.approx(metrics)
  results = json.load(open(os.path.join(w, 'pem/results.json')))['results']
  assert len(results) == 8  # the tiny val split
  assert all(len(v) <= 100 for v in results.values())


def test_tem_results_cover_train_and_val(chain):
  args, _ = chain
  tem = bsn.load_tem_results(os.path.join(args.workdir, 'tem',
                                          bsn.TEM_RESULTS))
  assert len(tem) == 16 + 8
  out = np.stack(list(tem.values()))
  assert out.shape == (24, 16, 3)
  assert np.all((out > 0) & (out < 1))


def test_pgm_file_equals_in_memory_generation(chain):
  args, _ = chain
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bsn_pgm.py:tiny'))
  config.data.cache_dir = args.cache_dir
  paths = pipeline.annotation_paths(config)
  records = activitynet.load_annotations(paths['ann_file_train'])
  tem = bsn.load_tem_results(os.path.join(args.workdir, 'tem',
                                          bsn.TEM_RESULTS))
  names = sorted(n for n, r in records.items() if r['annotations'])
  want_p, want_f = pgm.proposal_generation(
      np.stack([tem[n] for n in names]),
      [pgm.pgm_gt_segments(records[n]) for n in names], top_k=500)
  got = bsn.load_pgm(os.path.join(args.workdir, 'pgm', 'pgm_train.npz'))
  assert sorted(got) == names
  for n, p, f in zip(names, want_p, want_f):
    np.testing.assert_array_equal(got[n][0], p)
    np.testing.assert_array_equal(got[n][1], f)


def test_mmaction2_files_round_trip(chain, tmp_path):
  args, _ = chain
  tem = bsn.load_tem_results(os.path.join(args.workdir, 'tem',
                                          bsn.TEM_RESULTS))
  names = sorted(tem)[:3]
  path = str(tmp_path / 'tem.npz')
  bsn.write_tem_results(path, names, np.stack([tem[n] for n in names]),
                        str(tmp_path / 'csv'))
  for n in names:
    rows = bsn_io.read_tem_result(bsn_io.video_path(str(tmp_path / 'csv'), n,
                                                    '.csv'))
    np.testing.assert_array_equal(rows[:, :3], tem[n])


def test_pem_without_pgm_dir_is_a_clear_error(tmp_path):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bsn_pem.py:tiny'))
  config.data.cache_dir = str(tmp_path)
  with pytest.raises(errors.TalError, match='pgm_dir'):
    loop.train_and_evaluate(localizers.get(config), config, str(tmp_path / 'w'), quiet=True)


def test_pgm_without_tem_results_is_a_clear_error(tmp_path):
  with pytest.raises(errors.TalError, match='TEM results not found'):
    bsn.load_tem_results(str(tmp_path / 'tem_results.npz'))
