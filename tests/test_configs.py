"""Every config loads in every preset, with MMAction2's values where it counts."""

import os
import subprocess
import sys

import pytest

from tal_jax import config_utils
from tal_jax import errors

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ('bmn', 'bsn_tem', 'bsn_pgm', 'bsn_pem')


def load(name, preset=''):
  path = os.path.join(ROOT, 'configs', f'{name}.py')
  return config_utils.load_config(f'{path}:{preset}' if preset else path)


@pytest.mark.parametrize('name', NAMES)
def test_presets(name):
  assert load(name).data.synthetic_train == 64
  assert load(name, 'full').data.synthetic_train == 9649
  assert load(name, 'full').data.synthetic_val == 4728
  assert load(name, 'tiny').data.synthetic_train == 16
  with pytest.raises(errors.TalError,
                     match=rf"^\S+/configs/{name}.py: unknown preset 'huge'"):
    load(name, 'huge')


def test_mmaction2_values():
  bmn = load('bmn')
  assert (bmn.model.temporal_dim, bmn.model.feat_dim, bmn.model.num_samples,
          bmn.model.num_samples_per_bin) == (100, 400, 32, 3)
  assert (bmn.test.soft_nms_alpha, bmn.test.soft_nms_low_threshold,
          bmn.test.soft_nms_high_threshold, bmn.test.post_process_top_k) == (
              0.4, 0.5, 0.9, 100)
  assert (bmn.train.batch_size, bmn.train.num_epochs, bmn.train.learning_rate,
          bmn.train.weight_decay, tuple(bmn.train.lr_milestones),
          bmn.train.grad_clip_norm) == (16, 9, 1e-3, 1e-4, (7,), 40.0)
  tem = load('bsn_tem')
  assert (tem.model.hidden_dim, tem.model.boundary_ratio,
          tem.train.num_epochs, tuple(tem.train.lr_milestones)) == (
              512, 0.1, 20, (7, 14))
  pem = load('bsn_pem')
  assert (pem.train.learning_rate, pem.train.weight_decay,
          tuple(pem.train.lr_milestones), pem.test.soft_nms_alpha,
          pem.test.soft_nms_low_threshold) == (1e-2, 1e-5, (10,), 0.75, 0.65)
  pgm = load('bsn_pgm').pgm
  assert (pgm.train_top_k, pgm.test_top_k, pgm.num_sample_action,
          pgm.bsp_boundary_ratio) == (500, 1000, 16, 0.2)


def _leaves(config, prefix=''):
  """{dotted key: value} of every leaf of a config."""
  out = {}
  for k, v in config.items():
    if hasattr(v, 'items'):
      out.update(_leaves(v, f'{prefix}{k}.'))
    else:
      out[prefix + k] = v
  return out


def _changed(name, preset):
  """{key: value} where the preset differs from the default config."""
  base, other = _leaves(load(name)), _leaves(load(name, preset))
  assert set(base) == set(other)
  return {k: v for k, v in other.items() if v != base[k]}


ANET = 'data/ActivityNet/'


@pytest.mark.parametrize('name, changed', [
    # MMAction2 1.2.0 bmn_2xb8-2048x100-9e_activitynet-slowonly-k700-feature.py
    ('bmn', {'model.feat_dim': 2048,
             'data.ann_file_test': ANET + 'anet_anno_val.json'}),
    # bsn_tem_1xb16-2048x100-20e_activitynet-k700-feature.py
    ('bsn_tem', {'model.feat_dim': 2048,
                 'data.ann_file_test': ANET + 'anet_anno_trainval.json'}),
    # bsn_pgm_2048x100_activitynet-slowonly-k700-feature.py
    ('bsn_pgm', {'data.ann_file_test': ANET + 'anet_anno_test.json'}),
    # bsn_pem_1xb16-2048x100-20e_activitynet-slowonly-k700-feature.py
    ('bsn_pem', {'data.ann_file_test': ANET + 'anet_anno_val.json'}),
])
def test_slowonly_k700_presets(name, changed):
  # Everything else (widths, schedule, post-processing) is the 400-d config's.
  assert _changed(name, 'slowonly_k700') == {
      'data.feature_dir': ANET + 'k700slowonly',
      'data.ann_file_train': ANET + 'anet_anno_train.json',
      'data.ann_file_val': ANET + 'anet_anno_val.json', **changed}


def test_bmn_thumos14_opentad_values():
  # OpenTAD configs/bmn/thumos_tsn.py and thumos_i3d.py.
  tsn = load('bmn_thumos14', 'tsn')
  d, t, tr = tsn.data, tsn.test, tsn.train
  assert (d.window_size, d.window_overlap_ratio, d.test_window_overlap_ratio,
          d.ioa_thresh, d.feature_stride, d.sample_stride,
          d.offset_frames) == (128, 0.5, 0.5, 0.9, 1, 5, 0)
  assert (tsn.model.temporal_dim, tsn.model.feat_dim, t.max_duration) == (
      128, 2048, 64)
  assert (t.nms_sigma, t.nms_max_seg_num, t.nms_min_score,
          t.nms_voting_thresh, t.classifier_topk) == (0.3, 200, 1e-4, 0.95, 2)
  assert (tr.batch_size, tr.num_epochs, tr.learning_rate, tr.weight_decay,
          tuple(tr.lr_milestones), tr.grad_clip_norm) == (
              16, 8, 1e-4, 1e-4, (5,), 1.0)
  i3d = load('bmn_thumos14', 'i3d').data
  assert (i3d.feature_stride, i3d.sample_stride, i3d.offset_frames) == (4, 1,
                                                                        8)
  assert load('bmn_thumos14').data.dataset == 'thumos14_windows'
  assert load('bmn_thumos14', 'tiny').model.temporal_dim == load(
      'bmn_thumos14', 'tiny').data.window_size
  with pytest.raises(errors.TalError, match='unknown preset'):
    load('bmn_thumos14', 'huge')


def test_bsn_thumos14_configs():
  # MMAction2's BSN values on OpenTAD's windows.
  tem = load('bsn_tem_thumos14')
  assert (tem.model.temporal_dim, tem.data.window_size, tem.data.test_windows,
          tem.model.hidden_dim, tem.train.num_epochs) == (128, 128, 'full',
                                                          512, 20)
  pgm = load('bsn_pgm_thumos14', 'tsn')
  assert (pgm.pgm.train_top_k, pgm.pgm.test_top_k, pgm.data.test_windows,
          pgm.data.sample_stride) == (500, 1000, 'test', 5)
  pem = load('bsn_pem_thumos14', 'i3d')
  assert (pem.test.soft_nms_alpha, pem.test.post_process_top_k,
          pem.test.nms_sigma, pem.test.classifier_topk,
          pem.data.offset_frames) == (0.75, 100, 0.3, 2, 8)
  for name in ('bsn_tem_thumos14', 'bsn_pgm_thumos14', 'bsn_pem_thumos14'):
    assert load(name, 'tiny').data.window_size == 32
    with pytest.raises(errors.TalError, match='unknown preset'):
      load(name, 'huge')


@pytest.mark.parametrize('name, text, message', [
    ('config.json', '{}', r'config.json: not a config file \(a Python file'),
    ('broken.py', 'x = (', r'broken.py: cannot be loaded \(SyntaxError: '),
    ('empty.py', 'x = 1', r'empty.py: defines no get_config\(\)$'),
])
def test_a_config_that_is_not_one_is_one_line(tmp_path, name, text, message):
  path = tmp_path / name
  path.write_text(text)
  with pytest.raises(errors.TalError, match=message):
    config_utils.load_config(str(path))
  r = subprocess.run([sys.executable, '-m', 'tal_jax.main',
                      f'--config={path}', f'--workdir={tmp_path / "w"}'],
                     cwd=ROOT, capture_output=True, text=True, check=False)
  assert r.returncode == 2 and r.stdout == ''
  assert r.stderr.startswith('error: ') and r.stderr.count('\n') == 1
