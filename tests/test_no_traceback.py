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
  return base, ckpt_files


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
  }[name]


# The files each CLI reads (paths relative to the corpus).
FILES = {
    'evaluate': ['gt.json', 'p.json', 'd.json'],
    'plot': ['gt.json', 'p.json'],
    'denormalize': ['norm.txt'],
    'pack_features': ['gt.json', 'feats/v_a.csv', 'feats/v_b.npy'],
    'import_mmaction2': ['bmn_tiny.pth'],
    'infer': ['v_x.npy', 'ann.json', 'checkpoint'],
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
