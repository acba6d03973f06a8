"""Every config loads in every preset, with MMAction2's values where it counts."""

import os

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
