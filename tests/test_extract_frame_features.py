"""tal_jax.tools.extract_frame_features: rawframes -> per-frame features."""

import os

import numpy as np
import pytest

import tal_jax  # noqa: F401
import jax

from tal_jax.engine import checkpointing
from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import trainer as train
from tal_jax.nn import resnet_import as tv
from tal_jax.data import rawframes
from tal_jax.data import synthetic_frames
from tal_jax.nn import resnet
from tal_jax.tools import extract_frame_features as tool
from tal_jax.convert import pth
from tal_jax import localizers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PTH = os.path.join(ROOT, 'tests', 'golden', 'resnet_tiny.pth')
LENGTHS = {'video_a': 21, 'video_b': 9}


def _rel(a, b):
  """||a - b|| / ||b|| (jit vs eager fp32 differ in the last bits)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope='module')
def frame_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('frames')
  for i, (name, n) in enumerate(LENGTHS.items()):
    frames = synthetic_frames.synthetic_frames([[3 + i, 2, n - 2]], n, 30, 40,
                                               seed=i)
    rawframes.write_frames(str(root / name), frames)
  return str(root)


def test_pth_backbone_features(frame_dir, tmp_path):
  out = str(tmp_path / 'feats')
  written = tool.main(['--pth', PTH, '--frame-dir', frame_dir, '--out', out,
                       '--resize-scale', '40,30', '--crop-size', '24',
                       '--batch-size', '8'])
  assert sorted(os.path.basename(p) for p in written) == [
      'video_a.npy', 'video_b.npy']
  assert tool.resnet_shape(pth.load_pth(PTH)) == ((2, 1, 1, 1), 8)
  model = resnet.ResNet(stage_blocks=(2, 1, 1, 1), width=8)
  variables = tv.load_resnet_checkpoint(PTH, stage_blocks=(2, 1, 1, 1),
                                        width=8)
  for name, n in LENGTHS.items():
    got = np.load(os.path.join(out, name + '.npy'))
    clip = rawframes.load_clip(os.path.join(frame_dir, name), np.arange(n),
                               (40, 30), 24)
    want = model.apply(variables, rawframes.normalize(clip))['pooled']
    assert got.shape == (n, 32 * 8) and got.dtype == np.float32
    assert _rel(got, want) < 1e-5
  # Existing outputs are kept unless --overwrite.
  assert tool.main(['--pth', PTH, '--frame-dir', frame_dir, '--out', out,
                    '--resize-scale', '40,30', '--crop-size', '24']) == []


def _frames_workdir(tmp_path):
  config = config_utils.load_config(
      os.path.join(ROOT, 'configs/ssn.py:frames_tiny'))
  trainer = train.Trainer(localizers.get(config), config, steps_per_epoch=1)
  state = trainer.init_state(jax.random.key(3), pretrained=False)
  workdir = str(tmp_path / 'work')
  checkpointing.save_params(workdir, state.params, config,
                            model_state=state.model_state)
  config_utils.save_config(config, workdir)
  return config, trainer, state, workdir


def test_workdir_backbone_features(frame_dir, tmp_path):
  config, trainer, state, workdir = _frames_workdir(tmp_path)
  out = str(tmp_path / 'feats')
  tool.main(['--workdir', workdir, '--frame-dir', frame_dir, '--out', out])
  clip = rawframes.load_clip(os.path.join(frame_dir, 'video_b'),
                             np.arange(LENGTHS['video_b']),
                             tuple(config.data.resize_scale),
                             config.data.crop_size)
  want = trainer.module.apply(state.variables, clip, method='frame_features')
  assert _rel(np.load(os.path.join(out, 'video_b.npy')), want) < 1e-5


def test_errors_name_the_input(frame_dir, tmp_path):
  listed = tmp_path / 'list.txt'
  listed.write_text('#0\nvideo_c\n10\n1\n0\n0\n')
  with pytest.raises(errors.TalError, match='video video_c: no frame folder'):
    tool.main(['--pth', PTH, '--frame-dir', frame_dir, '--out',
               str(tmp_path / 'o'), '--videos', str(listed)])
  with pytest.raises(errors.TalError, match='no such file'):
    tool.main(['--pth', str(tmp_path / 'x.pth'), '--frame-dir', frame_dir,
               '--out', str(tmp_path / 'o')])
  config = config_utils.load_config(os.path.join(ROOT, 'configs/ssn.py:tiny'))
  config_utils.save_config(config, str(tmp_path))
  with pytest.raises(errors.TalError, match='not an SSN frame-mode run'):
    tool.main(['--workdir', str(tmp_path), '--frame-dir', frame_dir,
               '--out', str(tmp_path / 'o')])
  assert not os.path.exists(tmp_path / 'o')
