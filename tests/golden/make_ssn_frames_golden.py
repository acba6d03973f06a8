"""Writes tests/golden/ssn_frames.npz: SSN frame mode (ResNet + head) in 0.24.1.

Rerun (from the repository root) with the MMAction2 0.24.1 reference
environment (tests/golden/README.md):

  "$TAL_JAX_REFENV"/mmaction2-0.24.1/bin/python tests/golden/make_ssn_frames_golden.py

Model: MMAction2 0.24.1's own `SSN` localizer built from its registry as
ssn_r50_450e_thumos14_rgb_{train,test}.py do (ResNet depth=50, norm_eval=False,
partial_bn=True; SSNHead STPPTrain (1, 1, 1) / (2, 5, 2) for training, STPPTest
(1, 1, 1) for testing, use_regression=True), made small:
* `ResNet.arch_settings[50]` is set to (Bottleneck, (1, 1, 1, 1)) before
  building (full widths: 64-channel stem, 2048-d features); pretrained=None.
* num_classes=4 (head in_channels 2048); localizer and head dropout_ratio=0.
* 64x64 images (feature map 2x2). Upstream's `pool` is AvgPool2d((7, 7)),
  which only equals the spatial mean for 224x224 input; `model.pool` is
  replaced by nn.AdaptiveAvgPool2d(1) (= spatial mean, as in tal_jax).
Weights: every state-dict entry from `ssn_frames_weights.state_dict` (seeded
numpy, see that module), loaded with strict=True and checked bit for bit.

Train (model.train(): partial BN, so only backbone.conv1.bn uses batch
statistics, over all 2*8*9 = 144 frames, and updates its running stats; every
other BN is in eval mode with weight/bias frozen): imgs [2, 8, 9, 3, 64, 64]
(NPTCHW) = ssn_frames_weights.images(..., TRAIN_IMAGE_SEED); proposals of 2
synthetic videos from SSNDataset.prepare_train_frames under np.random.seed(0).
forward_train -> losses, _parse_losses sum, backward.
Test (model.eval()): SSN built with STPPTest + test_cfg (sampler batch_size 16,
so 41 ticks run as chunks of 16, 16, 9), same weights; imgs [1, 41, 3, 64, 64]
(the data loader's batch dim, which forward_test treats as num_crops=1) =
images(..., TEST_IMAGE_SEED); proposals from SSNDataset.prepare_test_frames of
video 0 (test_interval 6, 245 frames -> 41 ticks).

npz keys (P = proposals per video in upstream order: 1 positive, 6
incomplete, 1 background):
  state_names [108], state_shapes [108, 4] (-1 padded): the state dict for
    ssn_frames_weights.state_dict; check/{names, sums, train_imgs_sum,
    test_imgs_sum}: float64 sums proving the regeneration.
  train/{proposal_scale_factor [2, 8, 2], proposal_type [2, 8],
    proposal_labels [2, 8], reg_targets [2, 8, 2], reg_norm_consts [2, 2]}.
  train/{loss_activity, loss_completeness, loss_reg, loss}: float64 scalars.
  train/pooled_first9 [9, 2048]: pooled backbone features of frames 0..8
    (video 0, proposal 0); train/{activity_scores [16, 5],
    completeness_scores [16, 4], bbox_preds [16, 4, 2]}: head outputs.
  train/bn1_running_{mean,var} [64]: stem BN stats after the forward.
  frozen_names: params with requires_grad False; grad_names [25],
    grad_norm [25], grad_dot [25]: L2 norm of each trainable param's grad and
    its dot with ssn_frames_weights.grad_direction(state-dict index, shape).
  grad/cls_head.*: full head gradients (torch layout).
  test/{relative_proposal_list [11, 2], scale_factor_list [11, 2],
    proposal_tick_list [11, 4], reg_norm_consts [2, 2], num_ticks}: inputs;
    test/pooled_first8 [8, 2048]; test/{activity_scores [11, 5],
    completeness_scores [11, 4], bbox_preds [11, 4, 2] (de-normalised)}.
  config/{stage_blocks, num_classes, image_size, seeds, test_batch_size}.
"""

import os
import sys
import tempfile
import warnings

import numpy as np

warnings.filterwarnings('ignore')
import torch  # pylint: disable=g-import-not-at-top
from mmcv import ConfigDict  # pylint: disable=g-import-not-at-top
from mmaction.datasets.ssn_dataset import SSNDataset  # noqa
from mmaction.models import build_localizer  # noqa
from mmaction.models.backbones.resnet import Bottleneck, ResNet  # noqa

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ssn_frames_weights as sfw  # pylint: disable=g-import-not-at-top
from ssn024_config import TRAIN_CFG  # pylint: disable=g-import-not-at-top

STAGE_BLOCKS = (1, 1, 1, 1)
NUM_CLASSES = 4
IMAGE_SIZE = 64
TEST_CFG = dict(ssn=dict(
    sampler=dict(test_interval=6, batch_size=16),
    evaluater=dict(top_k=2000, nms=0.2, softmax_before_filter=True,
                   cls_score_dict=None, cls_top_k=2)))

# (num_frames, gts [(label, start, end)], proposals [(start, end)]).
VIDEOS = (
    (245, [(1, 40, 110), (3, 150, 220)],
     [(42, 108), (38, 112), (152, 221), (50, 70), (60, 75), (160, 180),
      (170, 190), (45, 60), (5, 30), (225, 244), (100, 160)]),
    (300, [(2, 60, 150), (4, 200, 280)],
     [(62, 147), (203, 285), (70, 90), (100, 120), (210, 230), (240, 255),
      (10, 40), (290, 299), (130, 210)]),
)


def _proposal_line(p, gts):
  stats = []
  for _, s, e in gts:
    inter = max(0, min(p[1], e) - max(p[0], s))
    stats.append((inter / (p[1] - p[0] + e - s - inter), inter / (p[1] - p[0])))
  iou, iop = max(s[0] for s in stats), max(s[1] for s in stats)
  if iou == 0 and iop == 0:
    return f'0 0 0 {p[0]} {p[1]}'
  label = gts[int(np.argmax([s[0] for s in stats]))][0]
  return f'{label} {iou:.4f} {iop:.4f} {p[0]} {p[1]}'


def proposal_list_text():
  blocks = []
  for i, (n, gts, props) in enumerate(VIDEOS):
    lines = [f'#{i}', f'video_{i:03d}', str(n), '1', str(len(gts))]
    lines += [f'{l} {s} {e}' for l, s, e in gts]
    lines += [str(len(props))] + [_proposal_line(p, gts) for p in props]
    blocks.append('\n'.join(lines) + '\n')
  return ''.join(blocks)


def _dataset(path, test_mode):
  mode = 'test' if test_mode else 'val'
  return SSNDataset(
      path, [dict(type='SampleProposalFrames', clip_len=1, body_segments=5,
                  aug_segments=(2, 2), aug_ratio=0.5, mode=mode)],
      ConfigDict(TRAIN_CFG), ConfigDict(TEST_CFG), data_prefix='frames',
      test_mode=test_mode, aug_ratio=0.5, body_segments=5,
      aug_segments=(2, 2))


def proposal_inputs():
  """Train targets of both videos and test inputs of video 0 (numpy)."""
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'ssn_frames_proposal_list.txt')
    with open(path, 'w') as f:
      f.write(proposal_list_text())
    train, test = _dataset(path, False), _dataset(path, True)
    np.random.seed(0)
    samples = [train.prepare_train_frames(i) for i in range(2)]
    r = test.prepare_test_frames(0)
  out = {f'train/{k}': np.stack([np.asarray(s[k]) for s in samples])
         for k in ('proposal_scale_factor', 'proposal_type',
                   'proposal_labels', 'reg_targets')}
  out['train/reg_norm_consts'] = np.asarray(train.reg_norm_consts)
  for k in ('relative_proposal_list', 'scale_factor_list',
            'proposal_tick_list', 'reg_norm_consts'):
    out[f'test/{k}'] = np.asarray(r[k])
  out['test/num_ticks'] = np.array(len(r['frame_inds']))
  return out


def build_ssn(test_mode):
  """MMAction2's SSN (registry build), small ResNet-50, spatial-mean pool."""
  ResNet.arch_settings[50] = (Bottleneck, STAGE_BLOCKS)
  consensus = (dict(type='STPPTest', stpp_stage=(1, 1, 1)) if test_mode else
               dict(type='STPPTrain', stpp_stage=(1, 1, 1),
                    num_segments_list=(2, 5, 2)))
  cfg = dict(
      type='SSN',
      backbone=dict(type='ResNet', pretrained=None, depth=50,
                    norm_eval=False, partial_bn=True),
      spatial_type='avg', dropout_ratio=0., loss_cls=dict(type='SSNLoss'),
      cls_head=dict(type='SSNHead', dropout_ratio=0., in_channels=2048,
                    num_classes=NUM_CLASSES, consensus=consensus,
                    use_regression=True))
  cfg['test_cfg' if test_mode else 'train_cfg'] = (
      TEST_CFG if test_mode else TRAIN_CFG)
  model = build_localizer(ConfigDict(cfg))
  assert isinstance(model.pool, torch.nn.AvgPool2d), model.pool
  model.pool = torch.nn.AdaptiveAvgPool2d(1)
  return model


def load_weights(model):
  names_and_shapes = [(k, tuple(v.shape))
                      for k, v in model.state_dict().items()]
  sd = sfw.state_dict(names_and_shapes, sfw.WEIGHT_SEED)
  model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()},
                        strict=True)
  for k, v in model.state_dict().items():  # bit-for-bit
    assert (v.numpy().dtype == sd[k].dtype and v.shape == sd[k].shape
            and v.numpy().tobytes() == sd[k].tobytes()), k
  return names_and_shapes, sd


def _capture(module, store, key):
  def hook(_, inputs, output):
    store[key] = (inputs, output)
  return module.register_forward_hook(hook)


def _check_stem_bn(model, sd, conv_out):
  """Upstream's bn1 update: batch stats of ALL 144 frames, unbiased var."""
  y = conv_out.double()
  n = y.numel() // y.shape[1]
  mean = y.mean((0, 2, 3))
  var = y.var((0, 2, 3), unbiased=False) * n / (n - 1)
  bn = model.backbone.conv1.bn
  want_mean = 0.9 * sd['backbone.conv1.bn.running_mean'] + 0.1 * mean.numpy()
  want_var = 0.9 * sd['backbone.conv1.bn.running_var'] + 0.1 * var.numpy()
  np.testing.assert_allclose(bn.running_mean.numpy(), want_mean, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(bn.running_var.numpy(), want_var, rtol=1e-5)


def train_golden(inputs):
  model = build_ssn(test_mode=False)
  names_and_shapes, sd = load_weights(model)
  model.train()
  frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
  bn_train = [n for n, m in model.named_modules()
              if isinstance(m, torch.nn.BatchNorm2d) and m.training]
  assert bn_train == ['backbone.conv1.bn'], bn_train
  shape = (2, 8, 9, 3, IMAGE_SIZE, IMAGE_SIZE)
  imgs = torch.from_numpy(sfw.images(shape, sfw.TRAIN_IMAGE_SEED))
  t = {k.split('/')[1]: torch.from_numpy(v) for k, v in inputs.items()
       if k.startswith('train/') and k != 'train/reg_norm_consts'}
  store = {}
  hooks = [_capture(model.pool, store, 'pool'),
           _capture(model.cls_head, store, 'head'),
           _capture(model.backbone.conv1.conv, store, 'conv1')]
  losses = model(imgs, return_loss=True, **t)
  loss, log_vars = model._parse_losses(losses)  # pylint: disable=W0212
  loss.backward()
  for h in hooks:
    h.remove()
  _check_stem_bn(model, sd, store['conv1'][1].detach())
  act, comp, bbox = store['head'][1]
  out = {f'train/{k}': np.float64(v) for k, v in log_vars.items()}
  out.update({
      'train/pooled_first9': store['pool'][1][:9, :, 0, 0].detach().numpy(),
      'train/activity_scores': act.detach().numpy(),
      'train/completeness_scores': comp.detach().numpy(),
      'train/bbox_preds': bbox.detach().numpy(),
      'train/bn1_running_mean': model.backbone.conv1.bn.running_mean.numpy(),
      'train/bn1_running_var': model.backbone.conv1.bn.running_var.numpy(),
      'frozen_names': np.array(frozen)})
  out.update(_grad_stats(model, names_and_shapes))
  names, shapes = sfw.encode_shapes(names_and_shapes)
  out.update({'state_names': names, 'state_shapes': shapes})
  out.update(_check_values(sd, imgs.numpy()))
  return out, sd


def _grad_stats(model, names_and_shapes):
  index = {n: i for i, (n, _) in enumerate(names_and_shapes)}
  names, norms, dots = [], [], []
  out = {}
  for n, p in model.named_parameters():
    if not p.requires_grad:
      assert p.grad is None, n
      continue
    g = p.grad.numpy().astype(np.float64)
    names.append(n)
    norms.append(np.sqrt(np.sum(g * g)))
    dots.append(np.sum(g * sfw.grad_direction(index[n], g.shape)))
    if n.startswith('cls_head.'):
      out[f'grad/{n}'] = p.grad.numpy().copy()
  out.update({'grad_names': np.array(names), 'grad_norm': np.array(norms),
              'grad_dot': np.array(dots)})
  return out


def _check_values(sd, train_imgs):
  keys = ('backbone.conv1.conv.weight',
          'backbone.layer4.0.conv2.bn.running_var',
          'cls_head.regressor_fc.weight')
  return {'check/names': np.array(keys),
          'check/sums': np.array([np.sum(sd[k], dtype=np.float64)
                                  for k in keys]),
          'check/train_imgs_sum': np.sum(train_imgs, dtype=np.float64)}


def test_golden(inputs, sd):
  model = build_ssn(test_mode=True)
  names_and_shapes, test_sd = load_weights(model)
  assert list(test_sd) == list(sd), 'train/test state dicts differ'
  model.eval()
  num_ticks = int(inputs['test/num_ticks'])
  shape = (1, num_ticks, 3, IMAGE_SIZE, IMAGE_SIZE)
  imgs = torch.from_numpy(sfw.images(shape, sfw.TEST_IMAGE_SEED))
  t = {k.split('/')[1]: torch.from_numpy(inputs[k])[None]
       for k in inputs if k.startswith('test/') and k != 'test/num_ticks'}
  pooled = []
  hook = model.pool.register_forward_hook(
      lambda _, __, y: pooled.append(y[:, :, 0, 0].numpy().copy()))
  with torch.no_grad():
    (result,) = model(imgs, return_loss=False, **t)
  hook.remove()
  assert [len(p) for p in pooled] == [16, 16, num_ticks - 32], pooled
  return {'test/pooled_first8': pooled[0][:8],
          'test/activity_scores': result['activity_scores'],
          'test/completeness_scores': result['completeness_scores'],
          'test/bbox_preds': result['bbox_preds'],
          'check/test_imgs_sum': np.sum(imgs.numpy(), dtype=np.float64)}


def main():
  torch.manual_seed(0)
  inputs = proposal_inputs()
  out, sd = train_golden(inputs)
  out.update(test_golden(inputs, sd))
  out.update(inputs)
  out.update({'config/stage_blocks': np.array(STAGE_BLOCKS),
              'config/num_classes': np.array(NUM_CLASSES),
              'config/image_size': np.array(IMAGE_SIZE),
              'config/seeds': np.array([sfw.WEIGHT_SEED, sfw.TRAIN_IMAGE_SEED,
                                        sfw.TEST_IMAGE_SEED,
                                        sfw.DIRECTION_SEED]),
              'config/test_batch_size': np.array(16)})
  path = os.path.join(HERE, 'ssn_frames.npz')
  np.savez_compressed(path, **out)
  print('wrote', path, os.path.getsize(path), 'bytes')
  for k in sorted(out):
    if k.startswith('train/loss') or k == 'train/loss':
      print(k, out[k])
  print('train types', out['train/proposal_type'].tolist())
  print('completeness', np.round(out['train/completeness_scores'], 2).tolist())
  print('activity', np.round(out['train/activity_scores'], 2).tolist())
  print('pooled mean/std', out['train/pooled_first9'].mean(),
        out['train/pooled_first9'].std())
  print('test activity', np.round(out['test/activity_scores'], 2)[:3])
  print('frozen', len(out['frozen_names']), 'trainable',
        len(out['grad_names']))


if __name__ == '__main__':
  sys.exit(main())
