"""Property (issue 14): no CLI entry point ends in a Python traceback for
inputs drawn from a corpus of corrupted files (valid inputs truncated, emptied
or with a byte flipped).

Each CLI's main function runs in-process; an exception counts as a traceback
unless `errors.failure` turns it into one line (what `errors.run_cli` prints),
or it is argparse's SystemExit. A handful of examples per CLI keeps it fast.
"""

import json
import os
import shutil
import tempfile
import traceback

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

import tal_jax  # noqa: F401

from tal_jax import errors
from tal_jax.data import activitynet
from tal_jax import config_utils
from tal_jax.data import pipeline
from tal_jax.localizers.bsn import definition as bsn
from tal_jax.tools import bsn_proposal_generation
from tal_jax.tools import denormalize_proposal_file
from tal_jax.tools import evaluate
from tal_jax.tools import import_mmaction2
from tal_jax.tools import infer as infer_tool
from tal_jax.tools import pack_features
from tal_jax.tools import plot

from test_export import make_workdir, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOLDEN = os.path.join(ROOT, 'tests', 'golden')


def _record(duration, segments):
  return {'duration_second': duration, 'duration_frame': int(duration * 30),
          'feature_frame': int(duration * 30) // 16 * 16,
          'annotations': [{'segment': list(s), 'label': 'x'}
                          for s in segments]}


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
  """Valid inputs of every CLI under one folder."""
  base = tmp_path_factory.mktemp('corpus')
  gt = {'v_a': _record(40.0, [(0.0, 10.0), (20.0, 30.0)]),
        'v_b': _record(20.0, [(2.0, 5.0)])}
  (base / 'gt.json').write_text(json.dumps(gt))
  (base / 'p.json').write_text(json.dumps({'results': {
      'a': [{'segment': [0.0, 6.2], 'score': 0.9},
            {'segment': [20.0, 30.0], 'score': 0.5}],
      'b': [{'segment': [1.0, 5.0], 'score': 0.7}]}}))
  (base / 'd.json').write_text(json.dumps({'results': {
      'a': [{'segment': [0.0, 10.0], 'score': 0.9, 'label': 'x'}]}}))
  (base / 'norm.txt').write_text(
      '# 0\nvid\n1\n1\n1\n1 0.1 0.4\n2\n1 0.5 0.5 0.1 0.4\n0 0 0 0.6 0.9\n')
  os.makedirs(base / 'frames' / 'vid')
  for i in range(1, 11):
    (base / 'frames' / 'vid' / f'img_{i:05d}.jpg').write_bytes(b'')
  feats = base / 'feats'
  feats.mkdir()
  activitynet.write_features_csv(str(feats / 'v_a.csv'),
                                 np.arange(12, dtype=np.float32).reshape(4, 3))
  np.save(feats / 'v_b.npy', np.ones((4, 3), np.float32))
  shutil.copy(GOLDEN + '/bmn_tiny.pth', base / 'bmn_tiny.pth')
  make_workdir(base / 'work', tiny_config(base / 'cache'))
  np.save(base / 'v_x.npy', np.linspace(0, 1, 16 * 400, dtype=np.float32
                                        ).reshape(16, 400))
  (base / 'ann.json').write_text(json.dumps({'v_x': _record(8.0, [])}))
  step = base / 'work' / 'checkpoints' / '0'
  ckpt_files = sorted(os.path.relpath(os.path.join(r, f), base)
                      for r, _, fs in os.walk(step) for f in fs)
  _bsn_files(base / 'bsn')
  _window_files(base)
  return base, ckpt_files


def _bsn_files(base):
  """MMAction2's TEM CSVs and PGM files of two validation videos
  (tests/golden/bsn_mix.npz) and their annotation file."""
  g = dict(np.load(os.path.join(GOLDEN, 'bsn_mix.npz')))
  records = json.loads(str(g['records_json']))
  names = g['val_names'].tolist()
  for sub in ('tem', 'pgm/pgm_proposals', 'pgm/pgm_features'):
    os.makedirs(base / sub)
  (base / 'anno.json').write_text(json.dumps({n: records[n] for n in names}))
  for i, n in enumerate(records):
    if n in names:
      (base / 'tem' / f'{n}.csv').write_text(str(g['mm_tem_csv'][i]))
      (base / 'pgm' / 'pgm_proposals' / f'{n}.csv').write_text(
          str(g['mm_pgm_csv'][i]))
      np.save(base / 'pgm' / 'pgm_features' / f'{n}.npy',
              g[f'mm_pgm_feat_{n}'])


def _window_files(base):
  """OpenTAD's THUMOS14 annotation json of one test video, its snippet
  features, and a bmn_thumos14.py:tiny workdir (init weights)."""
  (base / 'th14.json').write_text(json.dumps({'database': {
      'video_test_0000004': {
          'subset': 'validation', 'duration': 12.0, 'frame': 360,
          'annotations': [{'segment': [1.0, 3.0], 'label': 'CliffDiving'},
                          {'segment': [5.5, 9.0], 'label': 'Diving'}]}}}))
  (base / 'th14_det.json').write_text(json.dumps({'results': {
      'video_test_0000004': [
          {'segment': [1.0, 3.2], 'score': 0.9, 'label': 'CliffDiving'},
          {'segment': [5.0, 9.0], 'score': 0.6, 'label': 'Diving'}]}}))
  np.save(base / 'video_test_0000004.npy', np.linspace(
      -1, 1, 360 * 16, dtype=np.float32).reshape(360, 16))
  config = config_utils.load_config(
      os.path.join(ROOT, 'configs/bmn_thumos14.py:tiny'))
  config.data.cache_dir = str(base / 'cache')
  make_workdir(base / 'th14_work', config)


def _bsn_config(name, d):
  config = config_utils.load_config(os.path.join(ROOT, 'configs', name))
  config.data.cache_dir = os.path.join(d, 'cache')
  config.data.feature_dir = d
  for split in ('train', 'val', 'test'):
    config.data[f'ann_file_{split}'] = os.path.join(d, 'bsn', 'anno.json')
  config.data.pgm_dir = os.path.join(d, 'bsn', 'pgm')
  return config


def _pgm(d, out):
  """PGM (tools.bsn_proposal_generation) on MMAction2's TEM CSVs."""
  bsn_proposal_generation.generate(_bsn_config('bsn_pgm.py', d),
                                   os.path.join(d, 'bsn', 'tem'), out,
                                   'test', quiet=True)


def _pem_inputs(d, out):
  """What PEM's --mode=test reads of MMAction2's PGM files."""
  config = _bsn_config('bsn_pem.py', d)
  videos = pipeline.load_split(config, 'val', uses_features=False)
  arrays = bsn.pem_eval_arrays(videos, config)
  with open(out, 'wb') as f:
    np.savez(f, **arrays)


def _cli(name, d, out):
  """(main function, argv) of CLI `name` reading the corpus copy `d`."""
  j = lambda f: os.path.join(d, f)  # noqa: E731
  return {
      'evaluate': (evaluate.main, [
          '--gt', j('gt.json'), '--proposals', j('p.json'), '--detections',
          j('d.json'), '--out', out]),
      'plot': (plot.main, ['ar-an', '--gt', j('gt.json'), '--proposals',
                           j('p.json'), '--out', out]),
      'denormalize': (denormalize_proposal_file.main, [
          '--norm-proposal-file', j('norm.txt'), '--frame-dir', j('frames'),
          '--output', out]),
      'pack_features': (pack_features.main, [
          '--feature-dir', j('feats'), '--ann-file', j('gt.json'), '--out',
          out, '--temporal-dim', '4', '--feat-dim', '3']),
      'import_mmaction2': (import_mmaction2.main, [
          '--checkpoint', j('bmn_tiny.pth'), '--config',
          os.path.join(ROOT, 'configs', 'bmn.py') + ':tiny', '--set',
          'model.feat_dim=24', '--workdir', out]),
      'infer': (infer_tool.main, [
          '--workdir', j('work'), '--features', j('v_x.npy'), '--ann-file',
          j('ann.json'), '--out', out, '--quiet']),
      'bsn_pgm': (lambda _: _pgm(d, out), []),
      'pem_files': (lambda _: _pem_inputs(d, out), []),
      'evaluate_th14': (evaluate.main, [
          '--gt', j('th14.json'), '--dataset', 'thumos14_opentad',
          '--proposals', j('th14_det.json'), '--detections',
          j('th14_det.json'), '--out', out]),
      'infer_windows': (infer_tool.main, [
          '--workdir', j('th14_work'), '--features',
          j('video_test_0000004.npy'), '--out', out, '--quiet']),
  }[name]


# The files each CLI reads (paths relative to the corpus).
FILES = {
    'evaluate': ['gt.json', 'p.json', 'd.json'],
    'plot': ['gt.json', 'p.json'],
    'denormalize': ['norm.txt'],
    'pack_features': ['gt.json', 'feats/v_a.csv', 'feats/v_b.npy'],
    'import_mmaction2': ['bmn_tiny.pth'],
    'infer': ['v_x.npy', 'ann.json', 'checkpoint'],
    'bsn_pgm': ['bsn/tem/v_mix_d.csv', 'bsn/tem/v_mix_e.csv',
                'bsn/anno.json'],
    'pem_files': ['bsn/pgm/pgm_proposals/v_mix_d.csv',
                  'bsn/pgm/pgm_features/v_mix_d.npy', 'bsn/anno.json'],
    'evaluate_th14': ['th14.json', 'th14_det.json'],
    'infer_windows': ['video_test_0000004.npy'],
}


def corrupt(blob: bytes, kind: str, where: float, byte: int) -> bytes:
  """`blob` truncated at, or with the byte at, fraction `where`; or empty."""
  if kind == 'empty' or not blob:
    return b''
  pos = min(int(where * len(blob)), len(blob) - 1)
  if kind == 'truncate':
    return blob[:pos]
  return blob[:pos] + bytes([blob[pos] ^ byte]) + blob[pos + 1:]


def _run_corrupted(corpus, name, index, kind, where, byte):
  base, ckpt_files = corpus
  with tempfile.TemporaryDirectory() as tmp:
    d = os.path.join(tmp, 'in')
    shutil.copytree(base, d, ignore=shutil.ignore_patterns('cache'))
    files = FILES[name]
    rel = files[index % len(files)]
    if rel == 'checkpoint':
      rel = ckpt_files[int(where * 997) % len(ckpt_files)]
    path = os.path.join(d, rel)
    with open(path, 'rb') as f:
      blob = f.read()
    with open(path, 'wb') as f:
      f.write(corrupt(blob, kind, where, byte))
    main, argv = _cli(name, d, os.path.join(tmp, 'out'))
    try:
      main(argv)
    except SystemExit:
      pass
    except BaseException as e:  # pylint: disable=broad-except
      if errors.failure(e) is None:
        pytest.fail(f'{name} with {rel} {kind} at {where:.3f} (byte ^{byte}) '
                    f'ends in a traceback:\n{traceback.format_exc()}')


CORRUPTIONS = dict(index=st.integers(0, 5),
                   kind=st.sampled_from(['truncate', 'flip', 'flip', 'empty']),
                   where=st.floats(0, 1), byte=st.integers(1, 255))


@pytest.mark.parametrize('name', ['evaluate', 'plot', 'denormalize',
                                  'pack_features', 'import_mmaction2'])
@settings(max_examples=8, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CORRUPTIONS)
def test_no_traceback_on_corrupted_input(corpus, name, index, kind, where,
                                         byte):
  _run_corrupted(corpus, name, index, kind, where, byte)


@pytest.mark.parametrize('name', ['bsn_pgm', 'pem_files', 'evaluate_th14',
                                  'infer_windows'])
@settings(max_examples=6, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CORRUPTIONS)
def test_new_entry_points_no_traceback_on_corrupted_input(
    corpus, name, index, kind, where, byte):
  """MMAction2's BSN files (PGM on TEM CSVs, PEM's reading of PGM files),
  OpenTAD's THUMOS14 json (evaluate), a long video for a window config
  (infer)."""
  _run_corrupted(corpus, name, index, kind, where, byte)


@settings(max_examples=5, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**CORRUPTIONS)
def test_infer_no_traceback_on_corrupted_input(corpus, index, kind, where,
                                               byte):
  """Feature file, annotation file or a checkpoint file."""
  _run_corrupted(corpus, 'infer', index, kind, where, byte)


@settings(max_examples=5, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**dict(CORRUPTIONS, index=st.just(2)))
def test_infer_no_traceback_on_corrupted_checkpoint(corpus, index, kind,
                                                    where, byte):
  _run_corrupted(corpus, 'infer', index, kind, where, byte)


@pytest.mark.parametrize('name', sorted(FILES))
def test_corpus_is_valid(corpus, tmp_path, name):
  """Uncorrupted, every CLI succeeds and writes its output (so the property
  above is not met by inputs that were broken to begin with)."""
  base, _ = corpus
  d = tmp_path / 'in'
  shutil.copytree(base, d, ignore=shutil.ignore_patterns('cache'))
  main, argv = _cli(name, str(d), str(tmp_path / 'out'))
  main(argv)
  assert os.path.exists(tmp_path / 'out')


def test_corrupt():
  assert corrupt(b'abcd', 'truncate', 0.5, 1) == b'ab'
  assert corrupt(b'abcd', 'flip', 0.5, 1) == b'abbd'
  assert corrupt(b'abcd', 'flip', 1.0, 1) == b'abce'
  assert corrupt(b'abcd', 'empty', 0.5, 1) == b''
