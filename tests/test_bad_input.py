"""Bad input for the serving tools and the file parsers: one line naming the
culprit. (Feature files, annotations, unknown config keys and unwritable
workdirs are covered in test_activitynet.py and test_train.py.)"""

import json
import os
import subprocess
import sys
import tempfile

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
import pytest

import tal_jax  # noqa: F401

from tal_jax import config_utils
from tal_jax.engine import checkpointing
from tal_jax import errors
from tal_jax import results_io
from tal_jax.engine import workdir_lock
from tal_jax.tools import evaluate
from tal_jax.tools import export as export_tool
from tal_jax.tools import infer as infer_tool

from test_export import make_workdir, tiny_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  base = tmp_path_factory.mktemp('bad')
  make_workdir(base / 'work', tiny_config(base / 'cache'))
  return base


def _infer(base, *extra, features=None):
  return infer_tool.main(['--workdir', str(base / 'work'), '--features',
                          str(features), '--out', str(base / 'o.json'),
                          '--quiet', *extra])


def test_feature_dim_not_matching_config(workdir):
  path = workdir / 'v_narrow.npy'
  np.save(path, np.ones((20, 300), np.float32))
  with pytest.raises(errors.TalError) as e:
    _infer(workdir, features=path)
  assert str(e.value) == (f'{path}: features have 300 columns, the model '
                          'expects feat_dim 400')


def test_feature_dim_not_matching_checkpoint_cli(workdir):
  """--set model.feat_dim=300 with a 400-wide checkpoint: exit 2, one line."""
  path = workdir / 'v_300.npy'
  np.save(path, np.ones((16, 300), np.float32))
  res = subprocess.run(
      [sys.executable, '-m', 'tal_jax.tools.infer', '--workdir',
       str(workdir / 'work'), '--features', str(path), '--set',
       'model.feat_dim=300', '--out', str(workdir / 'o.json')],
      cwd=ROOT, capture_output=True, text=True, check=False)
  assert res.returncode == 2
  lines = res.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: ')
  assert lines[0].endswith('checkpoint has model.feat_dim=400, config has '
                           'model.feat_dim=300')


def test_checkpoint_of_another_model(workdir):
  other = tiny_config(workdir / 'cache')
  other.model_name = 'bsn_pem'
  checkpointing.save_params(str(workdir / 'pem'), {'w': np.zeros(3)}, other)
  with pytest.raises(errors.TalError,
                     match=r"pem/checkpoints/0: checkpoint of model "
                     r"'bsn_pem', config is 'bmn'$"):
    export_tool.main(['--workdir', str(workdir / 'pem'), '--config',
                      os.path.join(ROOT, 'configs/bmn.py:tiny'), '--out',
                      str(workdir / 'm')])
  assert not os.path.exists(workdir / 'm')


def test_unknown_override_key_names_nearest(workdir):
  np.save(workdir / 'v_ok.npy', np.ones((16, 400), np.float32))
  with pytest.raises(errors.TalError,
                     match=r"unknown config key 'config.model.feat_dm'; did "
                     'you mean model.feat_dim'):
    _infer(workdir, '--set', 'model.feat_dm=3',
           features=workdir / 'v_ok.npy')


@pytest.mark.parametrize('name, content, match', [
    ('v_nan.csv', 'a,b\n1,nan\n', r'v_nan.csv: nan value in line 2, column 2$'),
    ('v_text.csv', 'a,b\n1,x\n', r"v_text.csv: non-numeric value 'x'"),
])
def test_bad_feature_file(workdir, name, content, match):
  (workdir / name).write_text(content)
  with pytest.raises(errors.TalError, match=match):
    _infer(workdir, features=workdir / name)


def test_missing_features_and_bad_duration(workdir):
  with pytest.raises(errors.TalError, match='feature file not found: .*nope'):
    _infer(workdir, features=workdir / 'nope.csv')
  np.save(workdir / 'v_d.npy', np.ones((16, 400), np.float32))
  with pytest.raises(errors.TalError, match='--duration-second must be > 0'):
    _infer(workdir, '--duration-second', '-3', features=workdir / 'v_d.npy')


@pytest.mark.parametrize('flag, value, match', [
    ('--top', '-1', '--top must be >= 1, got -1'),
    ('--batch-size', '0', '--batch-size must be >= 1, got 0'),
    ('--fps', 'nan', '--fps must be > 0, got nan'),
])
def test_infer_numeric_flags(workdir, flag, value, match):
  np.save(workdir / 'v_d.npy', np.ones((16, 400), np.float32))
  with pytest.raises(errors.TalError, match=f'^{match}$'):
    _infer(workdir, flag, value, features=workdir / 'v_d.npy')


@pytest.mark.parametrize('out, match', [
    ('{base}', r'--out {base}: is a folder, expected a file path'),
    ('{base}/v_d.npy/o.json', r'--out {base}/v_d.npy/o.json: {base}/v_d.npy '
     'is not a folder'),
])
def test_infer_unusable_out(workdir, out, match):
  """Checked before the model is loaded; nothing is written."""
  np.save(workdir / 'v_d.npy', np.ones((16, 400), np.float32))
  out = out.format(base=workdir)
  with pytest.raises(errors.TalError, match='^' + match.format(base=workdir)):
    infer_tool.main(['--workdir', str(workdir / 'work'), '--features',
                     str(workdir / 'v_d.npy'), '--out', out, '--quiet'])


def test_atomic_write_into_a_read_only_folder_names_the_path(tmp_path):
  ro = tmp_path / 'ro'
  ro.mkdir()
  os.chmod(ro, 0o500)
  try:
    if os.access(ro, os.W_OK):
      pytest.skip('running as a user who can write anywhere')
    with pytest.raises(PermissionError) as e:
      errors.write_json(str(ro / 'x.json'), {})
    assert e.value.filename == str(ro / 'x.json')
  finally:
    os.chmod(ro, 0o700)


def test_listed_video_without_feature_file(workdir):
  """Folder mode: a video of --ann-file with no feature file is an error
  naming it, never a silent drop."""
  folder = workdir / 'folder'
  folder.mkdir()
  np.save(folder / 'v_a.npy', np.ones((16, 400), np.float32))
  np.save(folder / 'v_c.npy', np.ones((16, 400), np.float32))
  rec = {'duration_second': 10.0, 'duration_frame': 300,
         'feature_frame': 288, 'annotations': []}
  ann = workdir / 'ann3.json'
  ann.write_text(json.dumps({'v_a': rec, 'v_b': rec, 'c': rec}))
  with pytest.raises(errors.TalError, match=(
      rf'^{folder}: no feature file \(.csv or .npy\) for 1 of the 3 videos '
      rf'{ann} lists: v_b$')):
    _infer(workdir, '--ann-file', str(ann), features=folder)
  assert not os.path.exists(workdir / 'o.json')


def test_video_missing_from_ann_file(workdir):
  np.save(workdir / 'v_zz.npy', np.ones((16, 400), np.float32))
  ann = workdir / 'ann.json'
  ann.write_text(json.dumps({'v_other': {
      'duration_second': 10.0, 'duration_frame': 300, 'feature_frame': 288,
      'annotations': []}}))
  with pytest.raises(errors.TalError, match=r'ann.json: no video v_zz$'):
    _infer(workdir, '--ann-file', str(ann), features=workdir / 'v_zz.npy')


def test_unknown_video_ids_in_results_are_named(tmp_path, capsys):
  gt = tmp_path / 'gt.json'
  gt.write_text(json.dumps({'v_a': {
      'duration_second': 40.0, 'duration_frame': 1200, 'annotations': [
          {'segment': [0.0, 10.0], 'label': 'x'}]}}))
  props = tmp_path / 'p.json'
  props.write_text(json.dumps({'results': {
      'a': [{'segment': [0.0, 10.0], 'score': 0.9}],
      'zzz_unknown': [{'segment': [1.0, 2.0], 'score': 0.5}]}}))
  metrics = evaluate.main(['--gt', str(gt), '--proposals', str(props)])
  out = capsys.readouterr().out.splitlines()
  assert out[0] == ('warning: 1 proposal videos are not in the ground truth '
                    '(e.g. zzz_unknown); ignored')
  assert metrics['AR@1'] == 1.0


# ------------------------------------------------- parsers (hypothesis)

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() |
    st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=4), children, max_size=4), max_leaves=12)
_RESULTS_LIKE = st.dictionaries(
    st.sampled_from(['results', 'version', 'external_data']),
    st.dictionaries(st.text(max_size=4), st.lists(st.dictionaries(
        st.sampled_from(['segment', 'score', 'label']), _JSON, max_size=3
    ), max_size=3), max_size=3)
    | _JSON, max_size=3)


def _parse_or_tal_error(fn, path):
  try:
    return fn(path)
  except errors.TalError as e:
    assert '\n' not in str(e)
    return None


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.one_of(_JSON.map(json.dumps), _RESULTS_LIKE.map(json.dumps),
                 st.text(max_size=60)))
def test_results_reader_raises_only_tal_error(text):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'r.json')
    with open(path, 'w') as f:
      f.write(text)
    got = _parse_or_tal_error(results_io.read_results, path)
  if got is not None:
    arrays = results_io.proposal_arrays(got)
    assert all(a.shape[1] == 3 for a in arrays.values())


_FINITE = st.floats(-1e6, 1e6, allow_nan=False)


@settings(max_examples=100, deadline=None, database=None)
@given(st.dictionaries(
    st.text(st.characters(codec='utf-8'), min_size=1, max_size=6),
    st.lists(st.tuples(_FINITE, _FINITE, _FINITE), max_size=4), max_size=4))
def test_results_round_trip_property(rows):
  results = {v: [{'segment': [s, e], 'score': c} for s, e, c in items]
             for v, items in rows.items()}
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'r.json')
    results_io.write_results(path, results)
    assert results_io.read_results(path) == results


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(st.lists(st.one_of(
    st.sampled_from(['#0', '# 1', 'v', '', ' ', '0', '1', '2', '-1', 'x',
                     '1 2 3', '0 1 2', '1 0.5 0.5 1 2', '0 0 0 1 2', 'nan',
                     '1e999', '3 0.1']),
    st.text(st.sampled_from('0123456789 .-#ex\t'), max_size=12)), max_size=16))
def test_proposal_list_reader_raises_only_tal_error(lines):
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'list.txt')
    with open(path, 'w') as f:
      f.write('\n'.join(lines))
    got = _parse_or_tal_error(results_io.read_proposal_list, path)
  for video in got or []:
    assert video.gts.shape[1] == 3 and video.proposals.shape[1] == 5


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.tuples(
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
            max_size=8).filter(lambda s: not s.startswith('#')),
    st.lists(st.tuples(st.integers(0, 5), _FINITE, _FINITE), max_size=3),
    st.lists(st.tuples(_FINITE, _FINITE), min_size=1, max_size=3)),
                max_size=3))
def test_proposal_list_round_trip_property(videos):
  # Ground-truth segments in order (the reader rejects reversed ones).
  videos = [(vid, [(lab, min(s, e), max(s, e)) for lab, s, e in gts], props)
            for vid, gts, props in videos]
  blocks = [results_io.format_proposal_list_video(
      i, vid, 100, 30.0, [(s, e, lab) for lab, s, e in gts], props)
            for i, (vid, gts, props) in enumerate(videos)]
  with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, 'list.txt')
    results_io.write_proposal_list(path, blocks)
    got = results_io.read_proposal_list(path)
  assert [v.video_id for v in got] == [v[0] for v in videos]
  for video, (_, gts, props) in zip(got, videos):
    np.testing.assert_array_equal(video.gts, np.array(gts, float).reshape(-1,
                                                                          3))
    np.testing.assert_array_equal(video.proposals[:, 3:],
                                  np.array(props, float).reshape(-1, 2))


@pytest.mark.parametrize('content', [
    pytest.param(b'{"results": {"a": [{"segment": "12", "score": 1}]}}',
                 id='string-segment'),
    pytest.param(b'{"results": {"a": [{"segment": [1' + b'0' * 400 +
                 b', 2], "score": 1}]}}', id='int-overflow'),
    pytest.param(b'\xff\xfe{"results": {}}', id='not-utf8'),
    pytest.param(b'{"results": {"a": [{"segment": [1, "x"], "score": 1}]}}',
                 id='non-numeric-segment'),
])
def test_results_reader_known_cases(tmp_path, content):
  path = tmp_path / 'r.json'
  path.write_bytes(content)
  assert _parse_or_tal_error(results_io.read_results, str(path)) is None


def test_proposal_list_reader_not_utf8(tmp_path):
  path = tmp_path / 'list.txt'
  path.write_bytes(b'\xff#0\n')
  assert _parse_or_tal_error(results_io.read_proposal_list, str(path)) is None


def test_proposal_list_video_without_proposals():
  text = results_io.format_proposal_list_video(0, 'v', 100, 30.0,
                                               [(1.0, 2.0, 3)], [])
  assert text.endswith('\n0\n')


# --- issue 14: configs, workdirs, imports -----------------------------------

def _main_cli(*args):
  return subprocess.run([sys.executable, '-m', 'tal_jax.main', *args],
                        cwd=ROOT, capture_output=True, text=True, check=False)


def test_unknown_preset_is_one_line():
  with pytest.raises(errors.TalError, match=(
      r"^configs/bmn.py: unknown preset 'tine' \(use '', 'full', 'tiny' "
      r"or 'slowonly_k700'\)$")):
    config_utils.load_config('configs/bmn.py:tine')


@pytest.mark.parametrize('key, value', [
    ('train.batch_size', 0), ('test.batch_size', -1),
    ('train.log_every_steps', 0), ('train.num_epochs', -2)])
def test_count_fields_must_be_positive(key, value):
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  section, field = key.split('.')
  config[section][field] = value
  bound = 0 if field == 'num_epochs' else 1
  with pytest.raises(errors.TalError,
                     match=rf'^config.{key}={value} must be >= {bound}$'):
    config_utils.check_config(config)


def test_bad_config_or_refused_resume_writes_no_config_json(tmp_path):
  """Exit 2, one line; config.json is not written (bad config) or not
  overwritten (a resume refused for a changed model field)."""
  res = _main_cli('--config=configs/bmn.py:tiny', f'--workdir={tmp_path}/a',
                  '--config.train.batch_size=0')
  assert res.returncode == 2
  assert res.stderr == 'error: config.train.batch_size=0 must be >= 1\n'
  assert not os.path.exists(tmp_path / 'a' / 'config.json')
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  make_workdir(tmp_path / 'b', config)
  before = (tmp_path / 'b' / 'config.json').read_text()
  res = _main_cli('--config=configs/bmn.py:tiny', f'--workdir={tmp_path}/b',
                  f'--config.data.cache_dir={tmp_path}/cache',
                  '--config.model.num_samples=16')
  assert res.returncode == 2
  assert res.stderr == (f'error: {tmp_path}/b/checkpoints/0: checkpoint has '
                        'model.num_samples=4, config has '
                        'model.num_samples=16\n')
  assert (tmp_path / 'b' / 'config.json').read_text() == before
  assert sorted(os.listdir(tmp_path / 'b')) == ['checkpoints', 'config.json']


def test_second_training_on_a_locked_workdir(tmp_path):
  path = workdir_lock.acquire(str(tmp_path))
  res = _main_cli('--config=configs/bmn.py:tiny', f'--workdir={tmp_path}')
  workdir_lock.release(path)
  assert res.returncode == 2
  assert res.stderr.startswith(f'error: {tmp_path} is in use by pid '
                               f'{os.getpid()} on ')
  assert len(res.stderr.splitlines()) == 1
  assert os.listdir(tmp_path) == []


# --- issue 14: non-finite numbers and damaged arrays ------------------------

def _write_npz(path, **arrays):
  with open(path, 'wb') as f:
    np.savez(f, **arrays)


TEM_SHAPES = {'names': ('N',), 'tem_output': ('N', 'T', 3)}


def test_read_npz_checks_shapes_and_values(tmp_path):
  path = str(tmp_path / 'tem_results.npz')
  good = np.zeros((2, 5, 3), np.float32)
  _write_npz(path, names=np.array(['a', 'b']), tem_output=good)
  got = results_io.read_npz(path, TEM_SHAPES, 'TEM --mode=test')
  np.testing.assert_array_equal(got['tem_output'], good)
  _write_npz(path, names=np.array(['a', 'b']), tem_output=good[:, :, :2])
  with pytest.raises(errors.TalError, match=(
      r'tem_results.npz: tem_output has shape \(2, 5, 2\), expected \[2x5x3\];'
      r' write it again \(TEM --mode=test\)$')):
    results_io.read_npz(path, TEM_SHAPES, 'TEM --mode=test')
  _write_npz(path, names=np.array(['a']), tem_output=good)
  with pytest.raises(errors.TalError, match=r'tem_output has shape '
                     r'\(2, 5, 3\), expected \[1xTx3\]'):
    results_io.read_npz(path, TEM_SHAPES, 'TEM --mode=test')
  bad = good.copy()
  bad[1, 3, 2] = np.nan
  _write_npz(path, names=np.array(['a', 'b']), tem_output=bad)
  with pytest.raises(errors.TalError, match=(
      r'tem_results.npz: tem_output has a nan value at index \[1, 3, 2\]$')):
    results_io.read_npz(path, TEM_SHAPES, 'TEM --mode=test')
  _write_npz(path, names=np.array(['a', 'b']))
  with pytest.raises(errors.TalError,
                     match=r"tem_results.npz: no array 'tem_output'"):
    results_io.read_npz(path, TEM_SHAPES, 'TEM --mode=test')


def test_truncated_tem_results_is_one_line(tmp_path):
  from tal_jax.localizers.bsn import definition as bsn  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / 'tem_results.npz')
  _write_npz(path, names=np.array(['a', 'b']),
             tem_output=np.zeros((2, 5, 3), np.float32))
  with open(path, 'rb') as f:
    blob = f.read()
  with open(path, 'wb') as f:
    f.write(blob[:len(blob) // 2])
  with pytest.raises(errors.TalError, match=(
      r'tem_results.npz: not a readable .npz \(.*\); write it again '
      r'\(tal_jax.main --mode=test with configs/bsn_tem.py\)$')):
    bsn.load_tem_results(path)


@pytest.mark.parametrize('item, match', [
    ({'segment': [float('nan'), 2.0], 'score': 0.5},
     r'"segment" \[nan, 2.0\] is not finite'),
    ({'segment': [1.0, 2.0], 'score': float('inf')},
     r'"score" inf is not finite'),
])
def test_results_non_finite(tmp_path, item, match):
  path = tmp_path / 'r.json'
  path.write_text(json.dumps({'results': {'v1': [item]}}))
  with pytest.raises(errors.TalError, match=rf'r.json: video v1: {match}$'):
    results_io.read_results(str(path))


@pytest.mark.parametrize('gt, prop, match', [
    ('1 20 10', '1 0.5 0.5 0 10', r'p.txt:6: video vid: ground-truth segment '
     r'ends \(frame 10\) before it starts \(frame 20\)$'),
    ('1 10 20', '1 0.5 0.5 nan 10', r"p.txt:8: video vid: non-finite number "
     r"in '1 0.5 0.5 nan 10'$"),
    ('1 10 inf', '1 0.5 0.5 0 10', r"p.txt:6: video vid: non-finite number "
     r"in '1 10 inf'$"),
])
def test_proposal_list_reversed_gt_and_non_finite(tmp_path, gt, prop, match):
  path = tmp_path / 'p.txt'
  path.write_text(f'# 0\nvid\n100\n1\n1\n{gt}\n1\n{prop}\n')
  with pytest.raises(errors.TalError, match=match):
    results_io.read_proposal_list(str(path))


def test_proposal_list_error_does_not_echo_a_whole_file(tmp_path):
  """An ActivityNet JSON (one long line) given as a proposal list."""
  path = tmp_path / 'anet.json'
  path.write_text(json.dumps({f'v_{i}': {'duration_second': 1.0}
                              for i in range(5000)}))
  with pytest.raises(errors.TalError) as e:
    results_io.read_proposal_list(str(path))
  assert len(str(e.value)) < 200
  assert str(e.value).startswith(f'{path}:1: expected a "# index" line, got '
                                 '\'{"v_0"')


def test_bsn_csv_names_the_non_finite_column(tmp_path):
  from tal_jax.localizers.bsn import files as bsn_io  # pylint: disable=g-import-not-at-top
  path = tmp_path / 'v.csv'
  path.write_text(bsn_io.TEM_HEADER + '\n0.1,0.2,0.3,0,0.5\n0.1,nan,0.3,0.5,1'
                  '\n')
  with pytest.raises(errors.TalError,
                     match=r"v.csv: nan value in column 'start' of line 3$"):
    bsn_io.read_tem_result(str(path))
  np.save(tmp_path / 'f.npy', np.array([[0.0, 1.0], [np.inf, 0.0]]))
  with pytest.raises(errors.TalError,
                     match=r'f.npy: NaN or inf in BSP feature row 1 \(0-based\)'):
    bsn_io.read_bsp_feature(str(tmp_path / 'f.npy'))


# --- issue 14: evaluation, disk full, Ctrl-C ---------------------------------

@pytest.fixture()
def mismatched(tmp_path):
  """A ground truth and proposals whose video ids never match."""
  gt = tmp_path / 'gt.json'
  gt.write_text(json.dumps({'v_a': {
      'duration_second': 10.0, 'duration_frame': 300, 'feature_frame': 288,
      'annotations': [{'segment': [1.0, 2.0], 'label': 'x'}]}}))
  props = tmp_path / 'p.json'
  props.write_text(json.dumps({'results': {'zzz': [
      {'segment': [1.0, 2.0], 'score': 0.5}]}}))
  return str(gt), str(props)


NO_MATCH = (r'^AR@AN: none of the 1 proposals belongs to one of the 1 '
            r'ground-truth videos \(e.g. a\); do the video ids match\?$')


def test_evaluate_no_matching_video_id(mismatched):
  gt, props = mismatched
  with pytest.raises(errors.TalError, match=NO_MATCH):
    evaluate.main(['--gt', gt, '--proposals', props])


def test_plot_ar_an_no_matching_video_id(mismatched, tmp_path):
  from tal_jax.tools import plot  # pylint: disable=g-import-not-at-top
  gt, props = mismatched
  with pytest.raises(errors.TalError, match=NO_MATCH):
    plot.main(['ar-an', '--gt', gt, '--proposals', props, '--out',
               str(tmp_path / 'x.png')])
  assert not os.path.exists(tmp_path / 'x.png')


def test_evaluate_negative_max_avg_proposals(mismatched):
  gt, props = mismatched
  with pytest.raises(errors.TalError,
                     match=r'^--max-avg-proposals must be >= 1, got -3$'):
    evaluate.main(['--gt', gt, '--proposals', props, '--max-avg-proposals',
                   '-3'])


def _no_space(*args, **kwargs):
  raise OSError(28, 'No space left on device', 'x')


def test_disk_full_writing_results_is_one_line(mismatched, tmp_path, capsys,
                                              monkeypatch):
  """ENOSPC mid-write: exit 1, one line naming the file, the old file kept."""
  gt, _ = mismatched
  props = tmp_path / 'ok.json'
  props.write_text(json.dumps({'results': {'a': [
      {'segment': [1.0, 2.0], 'score': 0.5}]}}))
  out = tmp_path / 'm.json'
  out.write_text('{"old": 1}')
  monkeypatch.setattr(json, 'dump', _no_space)
  with pytest.raises(SystemExit) as e:
    errors.run_cli(lambda: evaluate.main(['--gt', gt, '--proposals',
                                          str(props), '--out', str(out)]))
  assert e.value.code == 1
  assert capsys.readouterr().err == 'error: x: No space left on device\n'
  assert out.read_text() == '{"old": 1}'
  assert sorted(os.listdir(tmp_path)) == ['gt.json', 'm.json', 'ok.json',
                                          'p.json']


def test_disk_full_during_checkpoint_keeps_the_older_steps(tmp_path, capsys,
                                                          monkeypatch):
  """ENOSPC while Orbax writes a step: one line (exit 1); the earlier
  checkpoint is still the one restored."""
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  params = {'w': np.ones(3, np.float32)}
  meta = {**checkpointing.model_meta(config), 'epoch': 1}
  mngr = checkpointing.manager(str(tmp_path))
  checkpointing.save(mngr, 4, params, params, meta, {'AUC': 1.0})
  monkeypatch.setattr(ocp.CheckpointManager, 'save', _no_space)
  with pytest.raises(SystemExit) as e:
    errors.run_cli(lambda: checkpointing.save(mngr, 8, params, params, meta,
                                              {'AUC': 2.0}))
  assert e.value.code == 1
  assert capsys.readouterr().err == 'error: x: No space left on device\n'
  mngr.close()
  monkeypatch.undo()
  sharding = __import__('jax').sharding.SingleDeviceSharding(
      __import__('jax').devices()[0])
  _, where = checkpointing.restore_for_inference(str(tmp_path), None, params,
                                                 sharding, config)
  assert where.endswith('checkpoints/4')


def test_ctrl_c_is_exit_130_one_line(mismatched, capsys, monkeypatch):
  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
  gt, props = mismatched
  monkeypatch.setattr(results_io, 'read_ground_truth', interrupted)
  with pytest.raises(SystemExit) as e:
    errors.run_cli(lambda: evaluate.main(['--gt', gt, '--proposals', props]))
  assert e.value.code == 130
  assert capsys.readouterr().err == (
      'error: interrupted (Ctrl-C); completed outputs are intact\n')


def test_ctrl_c_in_a_cli_process(tmp_path):
  """SIGINT to a real CLI process: exit 130, one line, no traceback."""
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  script = ('import sys, time\nfrom tal_jax import errors\n'
            'def main():\n  print("ready", flush=True)\n  time.sleep(60)\n'
            'errors.run_cli(main)\n')
  proc = subprocess.Popen([sys.executable, '-c', script], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  assert proc.stdout.readline() == 'ready\n'
  time.sleep(0.1)
  proc.send_signal(signal.SIGINT)
  _, err = proc.communicate(timeout=60)
  assert proc.returncode == 130
  assert err == 'error: interrupted (Ctrl-C); completed outputs are intact\n'


def test_workdir_or_cache_dir_under_a_file(tmp_path, capsys):
  afile = tmp_path / 'afile'
  afile.write_text('x')
  with pytest.raises(errors.TalError,
                     match=rf'^workdir {afile} is a file, not a folder$'):
    config_utils.check_workdir(str(afile))
  with pytest.raises(errors.TalError, match=(
      rf'^workdir {afile}/w cannot be created \(Not a directory\)$')):
    config_utils.check_workdir(str(afile / 'w'))
  from tal_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  config = config_utils.load_config(os.path.join(ROOT, 'configs/bmn.py:tiny'))
  config.data.cache_dir = str(afile / 'cache')
  with pytest.raises(SystemExit) as e:
    errors.run_cli(lambda: pipeline.load_split(config, 'train'))
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith(f'error: {afile}/cache') and err.endswith(
      ': Not a directory\n')
  assert len(err.splitlines()) == 1


def test_bsn_proposal_generation_accepts_dashed_flags():
  from tal_jax.tools import bsn_proposal_generation as pg  # pylint: disable=g-import-not-at-top
  assert pg.underscore_flags(
      ['x', '--tem-dir=/a', '--out-dir', '/b', '--mmaction2-files',
       '--mode=test', '--config.data.cache_dir=/c']) == [
           'x', '--tem_dir=/a', '--out_dir', '/b', '--mmaction2_files',
           '--mode=test', '--config.data.cache_dir=/c']
  assert '--tem-dir=' not in pg.__doc__ and '--tem_dir=' in pg.__doc__
