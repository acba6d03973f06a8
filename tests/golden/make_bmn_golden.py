"""Golden fixtures for BMN from MMAction2 1.2.0 (model, labels, loss, grads, .pth).

Rerun (from the checkout, with the reference environment):
  "$TAL_JAX_REFENV"/mmaction2-1.2.0/bin/python tests/golden/make_bmn_golden.py
writes
  tests/golden/bmn_tiny.npz         T=16, D=24, hidden 16/8/16, N=4, nb=2, batch 2
  tests/golden/bmn_tiny.pth         the same weights, torch.save zip format,
                                    {'meta', 'state_dict' with 'module.' prefixes}
  tests/golden/bmn_tiny_legacy.pth  the same, torch's legacy (pre-1.6) format

npz keys: 'sd/<torch name>' weights (torch layout), 'grad/<torch name>' loss
grads, features [B, T, D], gt [B, G, 2] + gt_mask [B, G] (normalised by
MMAction2's GenerateLocalizationLabels from records in 'records_json'),
confidence_map [B, T, T, 2], start/end [B, T], label_iou_map [B, T, T],
label_start/label_end [B, T], u_medium/u_low [B, T, T] (MMAction2's two
torch.rand_like draws), loss/tem_loss/pem_reg_loss/pem_cls_loss scalars,
sample_mask [T, N*T*T] and mask_cross_zero/mask_cross_end (counts of sampling
points in (-1, 0) and (T-1, T), i.e. where the modf asymmetry acts).

  "$TAL_JAX_REFENV"/mmaction2-1.2.0/bin/python tests/golden/make_bmn_golden.py --full
compares MMAction2 and tal_jax at full size (T=100, D=400, default widths,
batch 2) on the fly through a temporary file and prints the errors; nothing is
stored. It runs tal_jax with the system `python` in a subprocess.
"""

import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import torch

import mmaction_shim

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))

TINY = dict(temporal_dim=16, feat_dim=24, boundary_ratio=0.5, num_samples=4,
            num_samples_per_bin=2, hidden_dim_1d=16, hidden_dim_2d=8,
            hidden_dim_3d=16)
FULL = dict(temporal_dim=100, feat_dim=400, boundary_ratio=0.5, num_samples=32,
            num_samples_per_bin=3, hidden_dim_1d=256, hidden_dim_2d=128,
            hidden_dim_3d=512)

# Video 0: a segment from 0 s, one past the feature end (clipped to 1), one of
# zero length; video 1: a single long segment.
RECORDS = {
    'v_a': {'duration_second': 50.0, 'duration_frame': 1500,
            'feature_frame': 1488,
            'annotations': [{'segment': [0.0, 7.3], 'label': 'x'},
                            {'segment': [20.2, 31.9], 'label': 'x'},
                            {'segment': [40.0, 55.0], 'label': 'x'},
                            {'segment': [12.0, 12.0], 'label': 'x'}]},
    'v_b': {'duration_second': 12.5, 'duration_frame': 300,
            'feature_frame': 288,
            'annotations': [{'segment': [2.1, 10.4], 'label': 'y'}]},
}


def import_mmaction():
  """Imports BMN, BMNLoss and GenerateLocalizationLabels, bypassing the broken
  `mmaction.models` package __init__ (MMACTION2.md)."""
  mmaction_shim.bypass_models_init()
  import mmaction.models.losses.bmn_loss  # noqa: F401  registers BMNLoss
  from mmaction.models.localizers.bmn import BMN
  from mmaction.datasets.transforms.loading import GenerateLocalizationLabels
  return BMN, GenerateLocalizationLabels


def build_model(bmn_cls, cfg, seed):
  torch.manual_seed(seed)
  return bmn_cls(soft_nms_alpha=0.4, soft_nms_low_threshold=0.5,
                 soft_nms_high_threshold=0.9, post_process_top_k=100, **cfg)


def normalised_gt(label_transform, records):
  gts = [label_transform.transform(dict(r))['gt_bbox'] for r in records]
  g = max(len(x) for x in gts)
  gt = np.zeros((len(gts), g, 2))
  mask = np.zeros((len(gts), g), bool)
  for i, x in enumerate(gts):
    gt[i, :len(x)], mask[i, :len(x)] = x, True
  return gts, gt, mask


def run_reference(model, features, gts):
  """Forward, labels, loss (recording the rand_like draws) and grads."""
  draws = []
  real_rand_like = torch.rand_like

  def recording_rand_like(x, *args, **kwargs):
    draws.append(real_rand_like(x, *args, **kwargs))
    return draws[-1]

  torch.rand_like = recording_rand_like
  try:
    labels = model.generate_labels([torch.from_numpy(g) for g in gts])
    cmap, start, end = model._forward(torch.from_numpy(features))
    losses = model.loss_cls(cmap, start, end, *labels, model.bm_mask)
    losses[0].backward()
  finally:
    torch.rand_like = real_rand_like
  out = dict(
      confidence_map=cmap.detach().numpy().transpose(0, 2, 3, 1),
      start=start.detach().numpy(), end=end.detach().numpy(),
      label_iou_map=labels[0].numpy(), label_start=labels[1].numpy(),
      label_end=labels[2].numpy(), u_medium=draws[0].numpy(),
      u_low=draws[1].numpy())
  for name, value in zip(('loss', 'tem_loss', 'pem_reg_loss', 'pem_cls_loss'),
                         losses):
    out[name] = np.float32(value.item())
  for name, p in model.named_parameters():
    if p.requires_grad:
      out['grad/' + name] = p.grad.numpy()
  return out


def mask_crossings(cfg):
  """Counts of sampling points in (-1, 0) and in (T-1, T)."""
  t, r = cfg['temporal_dim'], cfg['boundary_ratio']
  n = cfg['num_samples'] * cfg['num_samples_per_bin']
  lo = hi = 0
  for s in range(t):
    for d in range(t - s):
      a = s - (d + 1.0) * r
      b = s + d + (d + 1.0) * r
      pts = a + (b - a) / (n - 1.0) * np.arange(n)
      lo += int(np.sum((pts > -1) & (pts < 0)))
      hi += int(np.sum((pts > t - 1) & (pts < t)))
  return lo, hi


def state_dict_numpy(model):
  return {k: v.numpy() for k, v in model.state_dict().items()
          if k not in ('bm_mask', 'sample_mask')}


def make_tiny(bmn_cls, label_transform):
  cfg = TINY
  model = build_model(bmn_cls, cfg, seed=0)
  torch.manual_seed(1)
  gts, gt, gt_mask = normalised_gt(label_transform, RECORDS.values())
  features = torch.randn(len(gts), cfg['feat_dim'], cfg['temporal_dim']).numpy()
  out = run_reference(model, features, gts)
  lo, hi = mask_crossings(cfg)
  arrays = dict(features=features.transpose(0, 2, 1), gt=gt, gt_mask=gt_mask,
                sample_mask=model.sample_mask.detach().numpy(),
                mask_cross_zero=lo, mask_cross_end=hi,
                records_json=json.dumps(RECORDS),
                config_json=json.dumps(cfg), **out)
  for k, v in state_dict_numpy(model).items():
    arrays['sd/' + k] = v
  np.savez_compressed(os.path.join(HERE, 'bmn_tiny.npz'), **arrays)
  # Real MMAction2 checkpoints carry the sample_mask and bm_mask buffers too.
  sd = {'module.' + k: v for k, v in model.state_dict().items()}
  ckpt = {'meta': {'epoch': 9, 'mmengine_version': '0.10.7'}, 'state_dict': sd}
  torch.save(ckpt, os.path.join(HERE, 'bmn_tiny.pth'))
  torch.save(ckpt, os.path.join(HERE, 'bmn_tiny_legacy.pth'),
             _use_new_zipfile_serialization=False)
  print(f'tiny: loss {out["loss"]:.6f}, mask points in (-1,0): {lo}, '
        f'in (T-1,T): {hi}')


COMPARE = r'''
import sys, json, numpy as np
import tal_jax, jax, jax.numpy as jnp
from tal_jax.localizers.bmn.model import BMN
from tal_jax.localizers.bmn import boundary_matching
from tal_jax.localizers.bmn import loss as losses
from tal_jax.localizers.bmn import targets
from tal_jax.localizers.bmn import convert as bmn_convert
ref = dict(np.load(sys.argv[1], allow_pickle=False))
cfg = json.loads(str(ref['config_json']))
sd = {k[3:]: v for k, v in ref.items() if k.startswith('sd/')}
params = bmn_convert.bmn_params_from_state_dict(sd, cfg)
x = jnp.asarray(ref['features'])
def rel(a, b): return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))
t = cfg['temporal_dim']
mask = boundary_matching.bm_sample_mask(t, cfg['num_samples'], cfg['num_samples_per_bin'],
                             cfg['boundary_ratio']).reshape(t, -1)
print(f'sample_mask max abs err {np.abs(mask - ref["sample_mask"]).max():.3g}')
lab = targets.bmn_targets_batch(ref['gt'], ref['gt_mask'], t)
for a, k in zip(lab, ('label_iou_map', 'label_start', 'label_end')):
  print(f'{k} max abs err {np.abs(a - ref[k]).max():.3g}')
bm_mask = jnp.asarray(boundary_matching.bm_valid_mask(t))
for bm in ('dense', 'reassociated'):
  model = BMN(bm_layer=bm, **cfg)
  out = jax.jit(model.apply)({'params': params}, x)
  for a, k in zip(out, ('confidence_map', 'start', 'end')):
    print(f'{bm}: {k} max abs err {np.abs(np.asarray(a) - ref[k]).max():.3g}')
  def loss_fn(p):
    o = model.apply({'params': p}, x)
    return losses.bmn_loss_from_uniforms(*o, *map(jnp.asarray, lab), bm_mask,
                                         ref['u_medium'], ref['u_low'])
  (total, parts), grads = jax.jit(jax.value_and_grad(loss_fn, has_aux=True))(params)
  for k in ('loss', 'tem_loss', 'pem_reg_loss', 'pem_cls_loss'):
    print(f'{bm}: {k} rel err {abs(float(parts[k]) - ref[k]) / abs(ref[k]):.3g}')
  gref = bmn_convert.bmn_params_from_state_dict(
      {k[5:]: v for k, v in ref.items() if k.startswith('grad/')}, cfg)
  errs = jax.tree_util.tree_map(rel, grads, gref)
  print(f'{bm}: grads max rel err {max(jax.tree_util.tree_leaves(errs)):.3g}')
'''


def make_full(bmn_cls, label_transform):
  cfg = FULL
  model = build_model(bmn_cls, cfg, seed=0)
  torch.manual_seed(1)
  gts, gt, gt_mask = normalised_gt(label_transform, RECORDS.values())
  features = torch.randn(len(gts), cfg['feat_dim'], cfg['temporal_dim']).numpy()
  out = run_reference(model, features, gts)
  arrays = dict(features=features.transpose(0, 2, 1), gt=gt, gt_mask=gt_mask,
                sample_mask=model.sample_mask.detach().numpy(),
                config_json=json.dumps(cfg), **out)
  for k, v in state_dict_numpy(model).items():
    arrays['sd/' + k] = v
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'full.npz')
    np.savez(path, **arrays)
    env = dict(os.environ, PYTHONPATH=REPO)
    subprocess.run(['python', '-c', COMPARE, path], check=True, env=env,
                   cwd=REPO)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--full', action='store_true',
                      help='compare at full size on the fly, store nothing')
  args = parser.parse_args()
  bmn_cls, label_cls = import_mmaction()
  label_transform = label_cls()
  torch.set_num_threads(2)
  if args.full:
    make_full(bmn_cls, label_transform)
  else:
    make_tiny(bmn_cls, label_transform)


if __name__ == '__main__':
  main()
