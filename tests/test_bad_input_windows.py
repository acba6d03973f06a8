"""Bad input for the THUMOS14 window configs and the BSN folders of
MMAction2 files: one TalError line naming the file, video or config key
(exit 2 from a CLI), never a traceback nor a silently wrong split."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tal_jax  # noqa: F401

from tal_jax import config_utils
from tal_jax import errors
from tal_jax.data import pipeline
from tal_jax.data import thumos14_windows
from tal_jax.localizers.bsn import definition as bsn
from tal_jax.tools import bsn_pipeline
from tal_jax.tools import bsn_proposal_generation
from tal_jax.tools import infer

from test_export import make_workdir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEO = 'video_validation_0000051'


def _database():
  """Two training videos whose actions each fill a tiny-config window, and
  one test video (OpenTAD's thumos_14_anno.json form)."""
  return {'database': {
      VIDEO: {'subset': 'training', 'duration': 20.0, 'frame': 600,
              'annotations': [
                  {'segment': [2.0, 3.0], 'label': 'BaseballPitch'},
                  {'segment': ['10.0', '12.0'], 'label': 'Ambiguous'}]},
      'video_validation_0000052': {
          'subset': 'training', 'duration': 10.0, 'frame': 300,
          'annotations': [{'segment': [1.0, 3.0], 'label': 'CliffDiving'}]},
      'video_test_0000004': {
          'subset': 'validation', 'duration': 12.0, 'frame': 360,
          'annotations': [{'segment': [1.0, 3.0], 'label': 'CliffDiving'}]}}}


def _layout(tmp_path, database=None):
  """configs/bmn_thumos14.py:tiny on an OpenTAD layout under tmp_path."""
  database = database or _database()
  (tmp_path / 'anno.json').write_text(json.dumps(database))
  os.makedirs(tmp_path / 'f', exist_ok=True)
  rng = np.random.default_rng(0)
  for name, rec in database['database'].items():
    np.save(tmp_path / 'f' / f'{name}.npy',
            rng.random((600 if name == VIDEO else int(rec['frame']), 16),
                       np.float32))
  config = config_utils.load_config(
      os.path.join(ROOT, 'configs/bmn_thumos14.py:tiny'))
  config.data.feature_dir = str(tmp_path / 'f')
  for split in ('train', 'val', 'test'):
    config.data[f'ann_file_{split}'] = str(tmp_path / 'anno.json')
  return config


def test_valid_layout_windows(tmp_path):
  """The layout the cases below break: one window per training video, the
  gt in snippets from the window start ((2 s * 30 - 0) / 5 = 12)."""
  videos = thumos14_windows.load_split(_layout(tmp_path), 'train')
  assert videos.names == [f'{VIDEO}@0', 'video_validation_0000052@0']
  assert [r['annotations'][0]['segment'] for r in videos.records] == [
      [12.0, 18.0], [6.0, 18.0]]


@pytest.mark.parametrize('field, value, match', [
    ('duration', 0, 'duration must be > 0, got 0'),
    ('duration', -5.0, 'duration must be > 0, got -5.0'),
    ('duration', 'x', "duration must be > 0, got 'x'"),
    ('frame', 0, 'frame must be an integer >= 1, got 0'),
    ('frame', 600.5, 'frame must be an integer >= 1, got 600.5'),
    ('annotations', 5, 'annotations is not a list'),
    ('segment', [6.0, 2.0], r'annotation 0: segment \[6.0, 2.0\] ends before '
     'it starts'),
    ('segment', [-4.0, -1.0], r'annotation 0: segment \[-4.0, -1.0\] starts '
     'before 0'),
    ('segment', [2.0], r'annotation 0: segment must be \[start, end\] '
     r'seconds, got \[2.0\]'),
    ('segment', ['a', 2.0], 'annotation 0: segment must be'),
    ('segment', None, 'annotation 0: segment must be'),
    ('label', 'Foo', "annotation 0: label 'Foo' is not a THUMOS14 class"),
])
def test_malformed_record_names_file_video_and_field(tmp_path, field, value,
                                                     match):
  """Before: ZeroDivisionError, TypeError, ValueError (NaN to int, unknown
  label), IndexError; a negative duration, frame 0 or a reversed segment
  dropped the video's windows silently."""
  database = _database()
  rec = database['database'][VIDEO]
  if field in ('segment', 'label'):
    rec['annotations'][0][field] = value
  else:
    rec[field] = value
  config = _layout(tmp_path, database)
  with pytest.raises(errors.TalError,
                     match=f'^{tmp_path}/anno.json: video {VIDEO}: {match}'):
    thumos14_windows.load_split(config, 'train')


def test_nan_duration_in_json(tmp_path):
  config = _layout(tmp_path)
  text = (tmp_path / 'anno.json').read_text().replace('20.0', 'NaN', 1)
  (tmp_path / 'anno.json').write_text(text)
  with pytest.raises(errors.TalError, match='duration must be > 0, got nan'):
    thumos14_windows.load_split(config, 'train')


@pytest.mark.parametrize('database, match', [
    ([], '"database" is not an object'),
    ({VIDEO: 3}, f'video {VIDEO}: record is not an object'),
])
def test_malformed_database(tmp_path, database, match):
  config = _layout(tmp_path)
  (tmp_path / 'anno.json').write_text(json.dumps({'database': database}))
  with pytest.raises(errors.TalError, match=match):
    thumos14_windows.load_split(config, 'train')


@pytest.mark.parametrize('key, value, match', [
    ('window_size', 0, 'window_size=0 must be an integer >= 1'),
    ('sample_stride', -1, 'sample_stride=-1 must be an integer >= 1'),
    ('feature_stride', 0, 'feature_stride=0 must be an integer >= 1'),
    ('window_overlap_ratio', 1.0, r'window_overlap_ratio=1.0 must be in '
     r'\[0, 1\)'),
    ('window_overlap_ratio', 0.99, 'window_overlap_ratio=0.99 must be'),
    ('window_overlap_ratio', -0.5, 'window_overlap_ratio=-0.5 must be'),
    ('test_window_overlap_ratio', 1.0, 'test_window_overlap_ratio=1.0'),
    ('ioa_thresh', 1.5, r'ioa_thresh=1.5 must be in \[0, 1\]'),
    ('fps', 0.0, 'fps=0.0 must be > 0, or -1'),
    ('test_windows', 'fulll', "test_windows='fulll' must be 'test' or"),
])
def test_window_setting_out_of_range(tmp_path, key, value, match):
  """Before: ZeroDivisionError (exit 1) for a zero step, range() ValueError
  for a zero stride; a negative overlap, ioa_thresh or fps 0, or an unknown
  test_windows ran on silently."""
  config = _layout(tmp_path)
  config.data[key] = value
  with pytest.raises(errors.TalError, match=f'^config.data.{match}'):
    thumos14_windows.load_split(config, 'train')


@pytest.mark.parametrize('array, match', [
    (np.zeros((0, 16), np.float32), r'float32 \(0, 16\), expected numbers'),
    (np.zeros((600, 16), 'U3'), r'<U3 \(600, 16\), expected numbers'),
    (np.concatenate([np.zeros((7, 16), np.float32),
                     np.full((593, 16), np.inf, np.float32)]),
     r'NaN or inf in row 10 \(0-based\)'),  # snippet rows: every 5th
    (None, r'cannot read .* \(No data left in file\)'),  # empty file
])
def test_bad_feature_file_names_video_and_file(tmp_path, array, match):
  config = _layout(tmp_path)
  path = tmp_path / 'f' / f'{VIDEO}.npy'
  if array is None:
    path.write_bytes(b'')
  else:
    np.save(path, array)
  with pytest.raises(errors.TalError, match=f'^video {VIDEO}: .*{match}'):
    thumos14_windows.load_split(config, 'train')


def test_block_list_not_text(tmp_path):
  config = _layout(tmp_path)
  (tmp_path / 'b.txt').write_bytes(b'\xff\xfe\x00')
  config.data.block_list = str(tmp_path / 'b.txt')
  with pytest.raises(errors.TalError,
                     match=f'^config.data.block_list {tmp_path}/b.txt: '):
    thumos14_windows.load_split(config, 'train')


@pytest.mark.parametrize('kind, match', [
    ('npz', r'an .npz archive, expected the .npy array \[videos, 101\]'),
    ('nan', r'NaN or inf in row 1 \(video 2\)'),
    ('empty', 'cannot read the UntrimmedNet scores'),
    ('text', r'<U1 \(3, 101\), expected numbers'),
])
def test_untrimmednet_scores_file(tmp_path, kind, match):
  path = tmp_path / ('u.npz' if kind == 'npz' else 'u.npy')
  table = np.zeros((3, 101), np.float32)
  if kind == 'npz':
    np.savez(path, scores=table)
  elif kind == 'nan':
    table[1, 4] = np.nan
    np.save(path, table)
  elif kind == 'text':
    np.save(path, np.full((3, 101), 'a'))
  else:
    path.write_bytes(b'')
  with pytest.raises(errors.TalError, match=f'^{path}: {match}'):
    thumos14_windows.untrimmednet_scores(str(path))


# ------------------------------------------ BSN folders of MMAction2 files


@pytest.fixture(scope='module')
def mm_files(tmp_path_factory):
  """tests/golden/bsn_mix.npz's MMAction2 TEM CSVs and PGM files, laid out
  as MMAction2 writes them, with its annotation files."""
  g = dict(np.load(os.path.join(ROOT, 'tests', 'golden', 'bsn_mix.npz')))
  base = tmp_path_factory.mktemp('mm')
  records = json.loads(str(g['records_json']))
  for split in ('train', 'val'):
    (base / f'anno_{split}.json').write_text(json.dumps(
        {n: records[n] for n in g[f'{split}_names'].tolist()}))
  for sub in ('tem/tem_results', 'pgm/pgm_proposals', 'pgm/pgm_features'):
    os.makedirs(base / sub)
  for i, n in enumerate(records):
    (base / 'tem' / 'tem_results' / f'{n}.csv').write_text(
        str(g['mm_tem_csv'][i]))
    (base / 'pgm' / 'pgm_proposals' / f'{n}.csv').write_text(
        str(g['mm_pgm_csv'][i]))
    np.save(base / 'pgm' / 'pgm_features' / f'{n}.npy',
            g[f'mm_pgm_feat_{n}'])
  return base


def _copy(mm_files, tmp_path):
  shutil.copytree(mm_files, tmp_path / 'in')
  return tmp_path / 'in'


def _bsn_config(name, base):
  config = config_utils.load_config(os.path.join(ROOT, f'configs/{name}.py'))
  config.data.cache_dir = str(base / 'cache')
  config.data.feature_dir = str(base)
  config.data.ann_file_train = str(base / 'anno_train.json')
  config.data.ann_file_val = config.data.ann_file_test = str(
      base / 'anno_val.json')
  config.data.pgm_dir = str(base / 'pgm')
  return config


def _edit_line(path, line, column, value):
  """Sets `column` of 1-based `line` of a CSV to `value`."""
  lines = path.read_text().splitlines()
  cells = lines[line - 1].split(',')
  cells[column] = value
  lines[line - 1] = ','.join(cells)
  path.write_text('\n'.join(lines) + '\n')


def _pgm(base):
  return bsn_proposal_generation.generate(
      _bsn_config('bsn_pgm', base), str(base / 'tem'), str(base / 'out'),
      'test', quiet=True)


@pytest.mark.parametrize('column, value, match', [
    (0, '5.0', 'line 4: action 5.0 is not a probability in \\[0, 1\\]'),
    (2, '-1', 'line 4: end -1.0 is not a probability in \\[0, 1\\]'),
    (4, '0.0', 'line 4: tmax 0.0 < tmin 0.125 \\(reversed segment\\)'),
])
def test_tem_csv_values_out_of_range(mm_files, tmp_path, column, value,
                                     match):
  """Before: PGM ran on them and wrote proposals."""
  base = _copy(mm_files, tmp_path)
  path = base / 'tem' / 'tem_results' / 'v_mix_d.csv'
  _edit_line(path, 4, column, value)
  with pytest.raises(errors.TalError, match=f'^{path}: {match}$'):
    _pgm(base)
  assert not os.path.exists(base / 'out')


def test_tem_csvs_of_different_lengths_name_both_files(mm_files, tmp_path):
  """Before: only the second video was named, as if it were the short one."""
  base = _copy(mm_files, tmp_path)
  folder = base / 'tem' / 'tem_results'
  lines = (folder / 'v_mix_d.csv').read_text().splitlines()
  (folder / 'v_mix_d.csv').write_text('\n'.join(lines[:9]) + '\n')
  with pytest.raises(errors.TalError, match=(
      f'^video v_mix_e: {folder}/v_mix_e.csv has 16 rows, '
      f'{folder}/v_mix_d.csv has 8 ')):
    _pgm(base)


@pytest.mark.parametrize('content', ['{}', json.dumps(
    {'v_mix_d': {'duration_second': 10.0, 'duration_frame': 300,
                 'feature_frame': 300, 'annotations': []}})])
def test_pgm_without_annotated_videos(mm_files, tmp_path, content):
  """Before: an empty pgm_test.npz, and PEM found no proposals later."""
  base = _copy(mm_files, tmp_path)
  (base / 'anno_val.json').write_text(content)
  with pytest.raises(errors.TalError, match=(
      f'^{base}/anno_val.json: no video with annotations for PGM '
      '--mode=test$')):
    _pgm(base)
  assert not os.path.exists(base / 'out')


def test_pgm_out_dir_is_a_file(mm_files, tmp_path):
  """Before: '<out>/pgm_test.npz: File exists', after the whole PGM run."""
  base = _copy(mm_files, tmp_path)
  (base / 'out').write_text('')
  with pytest.raises(errors.TalError, match=(
      f'^--out_dir {base}/out/pgm_test.npz: {base}/out is not a folder$')):
    _pgm(base)


def _pem_eval(base):
  config = _bsn_config('bsn_pem', base)
  videos = pipeline.load_split(config, 'val', uses_features=False)
  return bsn.pem_eval_arrays(videos, config)


def test_pem_bsp_features_of_another_width(mm_files, tmp_path):
  """Before: numpy's 'could not broadcast' ValueError, a traceback."""
  base = _copy(mm_files, tmp_path)
  np.save(base / 'pgm' / 'pgm_features' / 'v_mix_d.npy',
          np.zeros((60, 16)))
  with pytest.raises(errors.TalError, match=(
      f'^video v_mix_d: BSP features in {base}/pgm have 16 columns, '
      'config.model.feat_dim is 32$')):
    _pem_eval(base)


def test_pem_reversed_proposal(mm_files, tmp_path):
  """Before: PEM scored the reversed proposal and wrote it out."""
  base = _copy(mm_files, tmp_path)
  path = base / 'pgm' / 'pgm_proposals' / 'v_mix_e.csv'
  _edit_line(path, 3, 1, '0.0')
  with pytest.raises(errors.TalError,
                     match=f'^{path}: line 3: tmax 0.0 < tmin .* '
                     r'\(reversed segment\)$'):
    _pem_eval(base)


def test_pem_cli_bad_pgm_dir_is_one_line(mm_files, tmp_path):
  base = _copy(mm_files, tmp_path)
  np.save(base / 'pgm' / 'pgm_features' / 'v_mix_d.npy',
          np.zeros((60, 16)))
  res = subprocess.run(
      [sys.executable, '-m', 'tal_jax.main',
       '--config', os.path.join(ROOT, 'configs/bsn_pem.py'),
       f'--config.data.ann_file_train={base / "anno_train.json"}',
       f'--config.data.ann_file_val={base / "anno_val.json"}',
       f'--config.data.ann_file_test={base / "anno_val.json"}',
       f'--config.data.feature_dir={base}',
       f'--config.data.pgm_dir={base / "pgm"}',
       f'--workdir={tmp_path / "w"}', '--mode=train'],
      cwd=ROOT, capture_output=True, text=True, check=False)
  lines = res.stderr.strip().splitlines()
  assert res.returncode == 2, res.stderr
  assert lines[-1] == (f'error: video v_mix_d: BSP features in {base}/pgm '
                       'have 16 columns, config.model.feat_dim is 32')


def test_bsn_pipeline_tem_dir_missing(tmp_path, capsys):
  with pytest.raises(SystemExit) as e:
    errors.run_cli(lambda: bsn_pipeline.main([
        '--workdir', str(tmp_path / 'w'), '--preset', 'tiny',
        '--tem_dir', str(tmp_path / 'nope'), '--quiet']))
  assert e.value.code == 2
  assert capsys.readouterr().err == (
      f'error: --tem_dir {tmp_path}/nope: no such folder (TEM results: '
      "tem_results.npz or MMAction2's CSVs)\n")
  assert not os.path.exists(tmp_path / 'w')


# ------------------------------------------------- tools.infer on windows


@pytest.fixture(scope='module')
def window_workdir(tmp_path_factory):
  """configs/bmn_thumos14.py:tiny with init weights (tools.infer cuts
  windows by the config alone)."""
  base = tmp_path_factory.mktemp('win')
  config = config_utils.load_config(
      os.path.join(ROOT, 'configs/bmn_thumos14.py:tiny'))
  config.data.cache_dir = str(base / 'cache')
  make_workdir(base / 'work', config)
  return base / 'work'


def _infer_windows(workdir, features, out, *extra):
  return infer.main(['--workdir', str(workdir), '--features', str(features),
                     '--out', str(out), '--quiet', *extra])


def test_infer_windows_video_without_rows(window_workdir, tmp_path):
  """Before: ZeroDivisionError (exit 1)."""
  path = tmp_path / 'video_test_0000004.npy'
  np.save(path, np.zeros((0, 16), np.float32))
  with pytest.raises(errors.TalError, match=f'^{path}: no feature rows$'):
    _infer_windows(window_workdir, path, tmp_path / 'o.json')
  assert not os.path.exists(tmp_path / 'o.json')


@pytest.fixture
def two_videos(tmp_path):
  """A folder of two videos' snippet features, 1014 and 500 rows."""
  rng = np.random.default_rng(0)
  os.makedirs(tmp_path / 'f')
  for name, rows in (('video_test_0000004', 1014),
                     ('video_test_0000006', 500)):
    np.save(tmp_path / 'f' / f'{name}.npy',
            rng.standard_normal((rows, 16)).astype(np.float32))
  return tmp_path / 'f'


def test_infer_one_duration_for_a_folder(window_workdir, two_videos,
                                         tmp_path):
  """Before: both videos were given that length (the 500-row one
  stretched), silently."""
  with pytest.raises(errors.TalError, match=(
      f"^--duration-second is one video's length, --features {two_videos} "
      'has 2 files')):
    _infer_windows(window_workdir, two_videos, tmp_path / 'o.json',
                   '--duration-second', '33.8')


def test_infer_windows_take_durations_of_ann_file(window_workdir, two_videos,
                                                  tmp_path):
  """Before: --ann-file's durations were ignored by the window path (each
  video lasted its frames at --fps)."""
  ann = tmp_path / 'a.json'
  ann.write_text(json.dumps({
      v: {'duration_second': d, 'duration_frame': 900, 'feature_frame': 900,
          'annotations': []}
      for v, d in (('video_test_0000004', 30.5), ('video_test_0000006',
                                                   12.25))}))
  got = _infer_windows(window_workdir, two_videos, tmp_path / 'o.json',
                       '--ann-file', str(ann))
  # The last window ends at the last snippet: the video's end, clipped to
  # its duration (the frames at 30 fps would give 169.0 s and 83.33 s).
  assert got['v_video_test_0000004'][:, 1].max() == pytest.approx(30.5)
  assert got['v_video_test_0000006'][:, 1].max() == pytest.approx(12.25)


@pytest.mark.parametrize('key, value, match', [
    ('nms_sigma', 0.0, 'nms_sigma=0.0 must be > 0'),
    ('nms_min_score', 2.0, r'nms_min_score=2.0 must be in \[0, 1\)'),
    ('nms_voting_thresh', 1.5, r'nms_voting_thresh=1.5 must be in \[0, 1\]'),
    ('nms_max_seg_num', 0, 'nms_max_seg_num=0 must be an integer >= 1'),
    ('proposal_max_seg_num', 0, 'proposal_max_seg_num=0 must be an integer'),
    ('max_duration', 0, 'max_duration=0 must be an integer >= 1'),
    ('classifier_topk', 0, 'classifier_topk=0 must be an integer >= 1'),
    ('classifier_topk', -1, 'classifier_topk=-1 must be an integer >= 1'),
    ('classifier_topk', 30, 'classifier_topk=30 must be <= 20'),
])
def test_window_test_config_out_of_range(window_workdir, tmp_path, key, value,
                                         match):
  """Before: classifier_topk 0 ended in numpy's 'need at least one array to
  concatenate', -1 kept 19 classes, sigma 0 or min_score 2 ran on, a zero
  count said only 'AR@AN needs ground truth and proposals'."""
  config = config_utils.load_config(
      os.path.join(ROOT, 'configs/bmn_thumos14.py:tiny'))
  config.test[key] = value
  with pytest.raises(errors.TalError, match=f'^config.test.{match}'):
    thumos14_windows.check_test_config(config.test)
  path = tmp_path / 'video_test_0000004.npy'
  np.save(path, np.zeros((300, 16), np.float32))
  with pytest.raises(errors.TalError, match=f'^config.test.{key}='):
    _infer_windows(window_workdir, path, tmp_path / 'o.json', '--set',
                   f'test.{key}={value}')
  assert not os.path.exists(tmp_path / 'o.json')


def test_shipped_window_configs_pass_the_checks():
  for spec in ('bmn_thumos14.py', 'bmn_thumos14.py:i3d', 'bsn_pem_thumos14.py',
               'bsn_tem_thumos14.py', 'bsn_pgm_thumos14.py'):
    config = config_utils.load_config(os.path.join(ROOT, 'configs', spec))
    thumos14_windows.check_data_config(config.data)
    if 'test' in config:  # the PGM config has none
      thumos14_windows.check_test_config(config.test)


@pytest.mark.parametrize('key, value, match', [
    ('test_top_k', 0, 'test_top_k=0 must be an integer >= 1'),
    ('num_sample_start', 0, 'num_sample_start=0 must be an integer >= 1'),
    ('peak_threshold', float('nan'), r'peak_threshold=nan must be in \[0, 1\]'),
    ('bsp_boundary_ratio', -1.0, 'bsp_boundary_ratio=-1.0 must be > 0'),
])
def test_pgm_config_out_of_range(mm_files, tmp_path, key, value, match):
  """Before: test_top_k 0 ended in numpy's 'could not broadcast', a zero
  sample count in a JAX traceback; NaN or a negative ratio ran on."""
  base = _copy(mm_files, tmp_path)
  config = _bsn_config('bsn_pgm', base)
  config.pgm[key] = value
  with pytest.raises(errors.TalError, match=f'^config.pgm.{match}$'):
    bsn_proposal_generation.generate(config, str(base / 'tem'),
                                     str(base / 'out'), 'test', quiet=True)
  assert not os.path.exists(base / 'out' / 'pgm_test.npz')
