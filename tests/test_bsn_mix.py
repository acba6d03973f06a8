"""BSN stages of MMAction2 1.2.0 and tal_jax mixed, both ways, vs all-tal_jax.

Fixture tests/golden/bsn_mix.npz (make_bsn_mix_golden.py), five videos at
T=16: MMAction2's TEM CSVs (its TEM test's tem_results/<video>.csv) and
MMAction2's own PGM output (pgm_proposals/<video>.csv, pgm_features/
<video>.npy) computed from tal_jax's TEM CSVs, on the same TEM weights and
features. Mix A: MMAction2 TEM -> tal_jax PGM -> tal_jax PEM. Mix B: tal_jax
TEM -> MMAction2 PGM -> tal_jax PEM. Each is compared with tal_jax alone at
float32 tolerance (TEM outputs of torch and XLA differ by float32 rounding).
Proposal rows are compared in a canonical order ((tmin, tmax) for PGM,
(start, end) for the results), so score ties or near-ties may come out in
either order.
"""

import argparse
import json
import os
import subprocess
import sys

import tal_jax  # noqa: F401
import jax
import numpy as np
import pytest

from tal_jax import config_utils
from tal_jax import errors
from tal_jax import localizers
from tal_jax.data import pipeline
from tal_jax.engine import loop
from tal_jax.engine import predict
from tal_jax.localizers.bsn import definition as bsn
from tal_jax.localizers.bsn import files as bsn_io
from tal_jax.localizers.bsn import model as bsn_model
from tal_jax.tools import bsn_pipeline
from tal_jax.tools import bsn_proposal_generation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, 'tests', 'golden')
RTOL = 1e-6


def _rel(got, want) -> float:
  """Relative norm of the difference."""
  got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
  return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def _config(name, base, pgm_dir=''):
  """configs/<name>.py[:preset] on the fixture's annotation files."""
  spec, _, preset = name.partition(':')
  config = config_utils.load_config(os.path.join(
      ROOT, f'configs/{spec}.py' + (f':{preset}' if preset else '')))
  config.data.cache_dir = str(base / 'cache')
  config.data.feature_dir = str(base)  # unused: PGM and PEM read no features
  config.data.ann_file_train = str(base / 'anno_train.json')
  config.data.ann_file_val = str(base / 'anno_val.json')
  config.data.ann_file_test = str(base / 'anno_val.json')
  if pgm_dir:
    config.data.pgm_dir = str(pgm_dir)
  return config


@pytest.fixture(scope='module')
def mix(tmp_path_factory):
  """The fixture laid out as both tools write it, and tal_jax's PGM runs."""
  g = dict(np.load(os.path.join(GOLDEN, 'bsn_mix.npz')))
  base = tmp_path_factory.mktemp('mix')
  records = json.loads(str(g['records_json']))
  names = list(records)
  for split in ('train', 'val'):
    with open(base / f'anno_{split}.json', 'w') as f:
      json.dump({n: records[n] for n in g[f'{split}_names'].tolist()}, f)
  with open(base / 'anno_all.json', 'w') as f:
    json.dump(records, f)
  sd = {k[3:]: v for k, v in g.items() if k.startswith('sd/')}
  tem = bsn_model.TEM(temporal_dim=16, feat_dim=8, hidden_dim=16)
  tj_out = np.asarray(jax.jit(tem.apply)(
      {'params': bsn_model.params_from_state_dict(sd)}, g['features']))
  bsn.write_tem_results(str(base / 'tj_tem' / bsn.TEM_RESULTS), names, tj_out)
  os.makedirs(base / 'mm_tem' / 'tem_results')
  os.makedirs(base / 'mm_pgm' / 'pgm_proposals')
  os.makedirs(base / 'mm_pgm' / 'pgm_features')
  for i, n in enumerate(names):
    (base / 'mm_tem' / 'tem_results' / f'{n}.csv').write_text(
        str(g['mm_tem_csv'][i]))
    (base / 'mm_pgm' / 'pgm_proposals' / f'{n}.csv').write_text(
        str(g['mm_pgm_csv'][i]))
    np.save(base / 'mm_pgm' / 'pgm_features' / f'{n}.npy',
            g[f'mm_pgm_feat_{n}'])
  config = _config('bsn_pgm', base)
  for mode in ('train', 'test'):
    for tem_dir, out in (('tj_tem', 'tj_pgm'), ('mm_tem', 'mix_pgm')):
      bsn_proposal_generation.generate(config, str(base / tem_dir),
                                       str(base / out), mode, quiet=True)
  return dict(g=g, base=base, names=names, tj_out=tj_out)


def _canonical(props):
  """Row order of PGM proposals [P, >=2] by (tmin, tmax)."""
  return np.lexsort((props[:, 1], props[:, 0]))


def test_tal_jax_tem_is_the_fixtures(mix):
  # Mix B's MMAction2 PGM ran on these outputs (written by tal_jax).
  assert _rel(mix['tj_out'], mix['g']['tj_tem_output']) <= RTOL


def test_mmaction2_tem_csvs_read_as_tal_jax_outputs(mix):
  base, names = mix['base'], mix['names']
  rows = bsn.load_tem_dir(str(base / 'mm_tem'), names)
  assert sorted(rows) == sorted(names)
  got = np.stack([rows[n] for n in names])
  assert got.shape == (5, 16, 5) and got.dtype == np.float32
  assert 0 < _rel(got[..., :3], mix['tj_out']) <= RTOL
  np.testing.assert_array_equal(got[0, :, 3], np.float32(np.arange(16) / 16))


@pytest.mark.parametrize('mode', ['train', 'test'])
def test_pgm_on_mmaction2_tem_equals_all_tal_jax(mix, mode):
  base = mix['base']
  got = bsn.load_pgm(str(base / 'mix_pgm' / f'pgm_{mode}.npz'))
  want = bsn.load_pgm(str(base / 'tj_pgm' / f'pgm_{mode}.npz'))
  assert sorted(got) == sorted(want) and len(got) in (2, 3)
  for name, (props, feats) in want.items():
    g_props, g_feats = got[name]
    assert g_props.shape == props.shape and g_feats.shape == feats.shape
    assert np.all(np.diff(g_props[:, 4]) <= 0)
    # P <= 120 < top_k: every proposal has its feature row.
    assert len(props) == len(feats)
    mine, ref = _canonical(g_props), _canonical(props)
    np.testing.assert_array_equal(g_props[mine, :2], props[ref, :2])
    assert _rel(g_props[mine], props[ref]) <= RTOL, name
    assert _rel(g_feats[mine], feats[ref]) <= RTOL, name


@pytest.mark.parametrize('mode', ['train', 'test'])
def test_mmaction2_pgm_on_tal_jax_tem_equals_tal_jax_pgm(mix, mode):
  base = mix['base']
  want = bsn.load_pgm(str(base / 'tj_pgm' / f'pgm_{mode}.npz'))
  got = bsn.load_pgm_dir(str(base / 'mm_pgm'), mode, sorted(want), 1000)
  assert sorted(got) == sorted(want)
  for name, (props, feats) in want.items():
    g_props, g_feats = got[name]
    assert g_props.dtype == np.float32 and g_feats.dtype == np.float32
    mine, ref = _canonical(g_props), _canonical(props)
    assert _rel(g_props[mine], props[ref]) <= RTOL, name
    assert _rel(g_feats[mine], feats[ref]) <= RTOL, name


def _pem_results(base, pgm_dir):
  """PEM train arrays, and test results {video: [k, 3] seconds} of one PGM
  folder, with the same PEM weights (tal_jax's init, seed 0)."""
  config = _config('bsn_pem', base, base / pgm_dir)
  definition = bsn.PEM_DEFINITION
  train = pipeline.load_split(config, 'train', uses_features=False)
  val = pipeline.load_split(config, 'val', uses_features=False)
  train_arrays = definition.train_arrays(train, config)
  arrays = definition.eval_arrays(val, config)
  module = definition.build(config)
  params = module.init(jax.random.key(0), arrays['inputs'][:1])['params']
  out = np.asarray(definition.forward(module, params, arrays['inputs'],
                                      config))
  picks, ok = definition.decode(out, arrays, config)
  seconds = definition.to_seconds(picks, val.field('duration_frame'),
                                  val.field('duration_second'))
  return train_arrays, {n: seconds[i][ok[i]] for i, n in enumerate(val.names)}


def _rows_by_segment(result):
  """Result rows [k, 3] (start, end, score) ordered by (start, end)."""
  return result[np.lexsort((result[:, 1], result[:, 0]))]


@pytest.mark.parametrize('pgm_dir', ['mix_pgm', 'mm_pgm'])
def test_pem_on_mixed_stages_equals_all_tal_jax(mix, pgm_dir):
  base = mix['base']
  got_train, got = _pem_results(base, pgm_dir)
  want_train, want = _pem_results(base, 'tj_pgm')
  for key in ('inputs', 'iou', 'valid'):
    assert got_train[key].shape == want_train[key].shape == (
        (3, 500, 32) if key == 'inputs' else (3, 500))
  np.testing.assert_array_equal(got_train['valid'], want_train['valid'])
  for i in range(3):
    rows = [np.hstack([a['inputs'][i], a['iou'][i][:, None]])
            for a in (got_train, want_train)]
    rows = [r[np.lexsort(r.T[::-1])] for r in rows]
    assert _rel(*rows) <= RTOL
  assert sorted(got) == sorted(want) == ['v_mix_d', 'v_mix_e']
  for name in want:
    assert got[name].shape == want[name].shape and len(want[name]) > 10
    assert _rel(_rows_by_segment(got[name]),
                _rows_by_segment(want[name])) <= RTOL, name


def test_missing_tem_csv_names_the_video(mix, tmp_path):
  src = mix['base'] / 'mm_tem' / 'tem_results'
  for name in ('v_mix_a', 'v_mix_c'):  # v_mix_b of the train split is missing
    (tmp_path / f'{name}.csv').write_text((src / f'{name}.csv').read_text())
  config = _config('bsn_pgm', mix['base'])
  with pytest.raises(errors.TalError,
                     match=r'^video v_mix_b: no TEM result .*v_mix_b\.csv$'):
    bsn_proposal_generation.generate(config, str(tmp_path),
                                     str(tmp_path / 'out'), 'train')
  assert not os.path.exists(tmp_path / 'out')


def test_cli_folder_without_tem_results(mix, tmp_path):
  base = mix['base']
  res = subprocess.run(
      [sys.executable, '-m', 'tal_jax.tools.bsn_proposal_generation',
       '--config', os.path.join(ROOT, 'configs/bsn_pgm.py'),
       f'--config.data.ann_file_train={base / "anno_train.json"}',
       f'--config.data.ann_file_val={base / "anno_val.json"}',
       f'--config.data.feature_dir={base}', f'--tem_dir={tmp_path}',
       f'--out_dir={tmp_path / "out"}', '--quiet'],
      cwd=ROOT, capture_output=True, text=True, check=False)
  assert res.returncode == 2, res.stderr
  lines = res.stderr.strip().splitlines()
  assert len(lines) == 1
  assert lines[0].startswith(f'error: {tmp_path}: no TEM results')
  assert not os.path.exists(tmp_path / 'out')


def test_pgm_folder_errors(mix, tmp_path):
  with pytest.raises(errors.TalError, match=f'^{tmp_path}: no PGM results'):
    bsn.load_pgm_dir(str(tmp_path), 'test', ['v_mix_d'], 1000)
  props = tmp_path / 'pgm_proposals'
  os.makedirs(props)
  src = mix['base'] / 'mm_pgm'
  (props / 'v_mix_d.csv').write_text(
      (src / 'pgm_proposals' / 'v_mix_d.csv').read_text())
  with pytest.raises(errors.TalError, match='v_mix_d.npy: BSP feature file'):
    bsn.load_pgm_dir(str(tmp_path), 'test', ['v_mix_d'], 1000)
  feats = np.load(src / 'pgm_features' / 'v_mix_d.npy')
  os.makedirs(tmp_path / 'pgm_features')
  bsn_io.write_bsp_feature(str(tmp_path / 'pgm_features' / 'v_mix_d.npy'),
                           feats[:10])
  with pytest.raises(errors.TalError,
                     match=r'^video v_mix_d: 10 BSP features for 52 '):
    bsn.load_pgm_dir(str(tmp_path), 'test', ['v_mix_d'], 1000)
  # A video without a proposal file gets none, as from pgm_<mode>.npz.
  assert list(bsn.load_pgm_dir(str(tmp_path), 'test', ['v_mix_d', 'v_x'],
                               10)) == ['v_mix_d']


def test_pipeline_from_mmaction2_tem_csvs_equals_all_tal_jax(mix):
  """bsn_pipeline --tem_dir: PGM, PEM training (all five videos: the tiny
  batch is 4) and test on either TEM."""
  base = mix['base']
  metrics = {}
  for tem_dir in ('mm_tem', 'tj_tem'):
    args = argparse.Namespace(
        workdir=str(base / f'chain_{tem_dir}'), preset='tiny',
        cache_dir=str(base / 'cache'), feature_dir=str(base),
        ann_file_train=str(base / 'anno_all.json'),
        ann_file_val=str(base / 'anno_val.json'),
        ann_file_full=str(base / 'anno_all.json'),
        tem_dir=str(base / tem_dir), quiet=True)
    metrics[tem_dir] = bsn_pipeline.run_pipeline(args)
    assert not os.path.exists(base / f'chain_{tem_dir}' / 'tem')
  assert 0 < metrics['tj_tem']['AUC'] < 100
  assert metrics['mm_tem'] == pytest.approx(metrics['tj_tem'], rel=RTOL)


def test_pem_training_and_test_on_mmaction2_pgm_folders(mix):
  """Mix B through tal_jax.main's loop: PEM trained and tested on MMAction2's
  pgm_proposals/ + pgm_features/ (all five videos) equals PEM on tal_jax's
  pgm_train.npz / pgm_test.npz of the same TEM outputs."""
  base = mix['base']
  config = _config('bsn_pgm', base)
  config.data.ann_file_train = str(base / 'anno_all.json')
  for mode in ('train', 'test'):
    bsn_proposal_generation.generate(config, str(base / 'tj_tem'),
                                     str(base / 'tj_pgm_all'), mode,
                                     quiet=True)
  metrics = {}
  for pgm_dir in ('mm_pgm', 'tj_pgm_all'):
    pem = _config('bsn_pem:tiny', base, base / pgm_dir)
    pem.data.ann_file_train = str(base / 'anno_all.json')
    work = str(base / f'pem_{pgm_dir}')
    loop.train_and_evaluate(localizers.get(pem), pem, work, quiet=True)
    metrics[pgm_dir] = predict.run_test(localizers.get(pem), pem, work,
                                        quiet=True)
  assert 0 < metrics['tj_pgm_all']['AUC'] < 100
  assert metrics['mm_pgm'] == pytest.approx(metrics['tj_pgm_all'], rel=RTOL)
