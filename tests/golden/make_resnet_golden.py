"""Golden fixtures for tal_jax.nn.resnet / tal_jax.nn.resnet_import.

Needs torch 2.14.1 + torchvision 0.29.1 (dev only): the MMAction2 0.24.1
reference environment has them (tests/golden/README.md).

Small fixture (committed, ~1.3 MB), from the checkout:
  "$TAL_JAX_REFENV"/mmaction2-0.24.1/bin/python tests/golden/make_resnet_golden.py
writes tests/golden/resnet_tiny.pth and tests/golden/resnet_tiny.npz.

Approach: a REAL torchvision ResNet (its Bottleneck and `_make_layer`, so real
key names and forward) narrowed to width 8 (stem 8 channels, planes 8/16/32/64,
256-d output) with stage_blocks (2, 1, 1, 1) and a 10-way fc: ~130k params, so
its own state dict is the fixture. A full ResNet-50 state dict is ~100 MB and
is checked by --full instead. Weights: torchvision's init (seeded), then BN
affine params randomised and running stats calibrated on random images, so
eval-mode BN is not the identity.

The npz holds 4 synthetic 64x64 images (NHWC) and torch's outputs:
  eval/{feature_map (NHWC), pooled, logits}
  for each BN mode in MODES (MMAction2 0.24.1 ResNet.train() applied to the
  torchvision module tree): <mode>/{pooled, logits} in train mode,
  <mode>/stats/<bn>.running_{mean,var} after that forward, and
  <mode>/grad_norm/<param> of loss = sum(logits * proj) (-1: requires_grad
  False); partial_bn/grad/<param> holds the full gradients for SSN's mode.

Full check (not committed; prints numbers), from the checkout:
  "$TAL_JAX_REFENV"/mmaction2-0.24.1/bin/python tests/golden/make_resnet_golden.py --full
builds torchvision.models.resnet50() (random init, BN randomised/calibrated),
saves /tmp/resnet50_random.pth, runs a drawn 224x224 test image through torch,
then (with the system `python`, which has jax) imports the .pth through
tal_jax.nn.resnet_import and prints the max abs feature/logit differences.

MMAction2 0.24.1 check (mmaction2 0.24.1 + mmcv 1.7.0, the same environment),
from the checkout:
  "$TAL_JAX_REFENV"/mmaction2-0.24.1/bin/python tests/golden/make_resnet_golden.py --mmaction
writes tests/golden/resnet_mmaction_modes.json (committed, small): for each BN
mode, MMAction2's own ResNet(depth=50).train() -> the parameter names with
requires_grad=False and the BN modules left in training mode. It also loads the
random torchvision ResNet-50 into MMAction2's ResNet through its
'torchvision://' loader (_load_torchvision_checkpoint), saves that
MMAction2-layout state dict under 'backbone.' to /tmp/resnet50_mmaction.pth and
prints tal_jax's feature-map difference against MMAction2's forward.
"""

import argparse
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
STAGE_BLOCKS = (2, 1, 1, 1)
WIDTH = 8
NUM_CLASSES = 10
# mode -> (norm_eval, partial_bn, frozen_stages); SSN's config is partial_bn.
MODES = {
    'train_all': (False, False, -1),
    'partial_bn': (False, True, -1),
    'norm_eval': (True, False, -1),
    'frozen_stages_1': (False, False, 1),
}


def test_images(n: int, size: int) -> np.ndarray:
  """Drawn test pattern [n, size, size, 3] float32, ImageNet-normalised."""
  yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
  images = []
  for i in range(n):
    r = np.clip(xx + 0.2 * i, 0, 1)
    g = ((np.floor(xx * (4 + i)) + np.floor(yy * (4 + i))) % 2).astype(
        np.float32)
    disk = ((xx - 0.3 - 0.1 * i)**2 + (yy - 0.6)**2 < 0.05).astype(np.float32)
    b = 0.5 * np.sin(10 * yy + i) + 0.5 * disk
    images.append(np.stack([r, g, np.clip(b, 0, 1)], -1))
  images = np.stack(images)
  mean = np.array([0.485, 0.456, 0.406], np.float32)
  std = np.array([0.229, 0.224, 0.225], np.float32)
  return ((images - mean) / std).astype(np.float32)


def _randomise_bn(torch, model, calib_size):
  """Random BN affine; running stats = cumulative stats of random images."""
  nn = torch.nn
  g = torch.Generator().manual_seed(1)
  for m in model.modules():
    if isinstance(m, nn.BatchNorm2d):
      with torch.no_grad():
        m.weight.uniform_(0.5, 1.5, generator=g)
        m.bias.normal_(0.0, 0.2, generator=g)
      m.momentum = None  # cumulative average during calibration
  model.train()
  with torch.no_grad():
    for _ in range(2):
      model(torch.randn(4, 3, calib_size, calib_size, generator=g))
  for m in model.modules():
    if isinstance(m, nn.BatchNorm2d):
      m.momentum = 0.1
      m.num_batches_tracked.zero_()
  model.eval()


def build_tiny(torch):
  """Narrow torchvision ResNet (width 8, STAGE_BLOCKS, 10-way fc)."""
  import torchvision.models.resnet as tvr
  nn = torch.nn
  torch.manual_seed(0)
  model = tvr.ResNet(tvr.Bottleneck, [1, 1, 1, 1], num_classes=NUM_CLASSES)
  model.inplanes = WIDTH
  model.conv1 = nn.Conv2d(3, WIDTH, 7, 2, 3, bias=False)
  model.bn1 = nn.BatchNorm2d(WIDTH)
  for i, blocks in enumerate(STAGE_BLOCKS):
    layer = model._make_layer(tvr.Bottleneck, WIDTH * 2**i, blocks,
                              stride=1 if i == 0 else 2)
    setattr(model, f'layer{i + 1}', layer)
  model.fc = nn.Linear(WIDTH * 32, NUM_CLASSES)
  for m in model.modules():  # torchvision's own init, re-applied
    if isinstance(m, nn.Conv2d):
      nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
  _randomise_bn(torch, model, 64)
  return model


def set_mode(torch, model, norm_eval, partial_bn, frozen_stages):
  """MMAction2 0.24.1 ResNet.train(True) on a torchvision module tree."""
  nn = torch.nn
  model.train()
  for p in model.parameters():
    p.requires_grad_(True)
  if frozen_stages >= 0:
    model.bn1.eval()
    for p in list(model.conv1.parameters()) + list(model.bn1.parameters()):
      p.requires_grad_(False)
  for i in range(1, frozen_stages + 1):
    layer = getattr(model, f'layer{i}')
    layer.eval()
    for p in layer.parameters():
      p.requires_grad_(False)
  bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
  if norm_eval:
    for m in bns:
      m.eval()
  if partial_bn:
    for m in bns[1:]:
      m.eval()
      m.weight.requires_grad_(False)
      m.bias.requires_grad_(False)


def features(model, x):
  """torchvision forward split into (feature map NCHW, pooled, logits)."""
  m = model
  x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
  x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
  pooled = m.avgpool(x).flatten(1)
  return x, pooled, m.fc(pooled)


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


def _mode_outputs(torch, model, images, proj, mode, out):
  state = {k: v.clone() for k, v in model.state_dict().items()}
  set_mode(torch, model, *MODES[mode])
  model.zero_grad()
  _, pooled, logits = features(model, images)
  (logits * proj).sum().backward()
  out[f'{mode}/pooled'] = pooled.detach().numpy()
  out[f'{mode}/logits'] = logits.detach().numpy()
  for k, v in model.state_dict().items():
    if k.endswith('running_mean') or k.endswith('running_var'):
      out[f'{mode}/stats/{k}'] = v.numpy().copy()
  for k, p in model.named_parameters():
    norm = -1.0 if p.grad is None else float(p.grad.norm())
    out[f'{mode}/grad_norm/{k}'] = np.float32(norm)
    if mode == 'partial_bn' and p.grad is not None:
      out[f'{mode}/grad/{k}'] = p.grad.numpy().copy()
  model.load_state_dict(state)
  model.eval()


def make_small():
  import torch
  model = build_tiny(torch)
  images_np = test_images(4, 64)
  images = torch.from_numpy(images_np.transpose(0, 3, 1, 2).copy())
  proj = torch.from_numpy(
      np.random.default_rng(0).normal(size=(4, NUM_CLASSES)).astype(
          np.float32))
  out = {'images': images_np, 'proj': proj.numpy(),
         'stage_blocks': np.array(STAGE_BLOCKS), 'width': np.array(WIDTH),
         'num_classes': np.array(NUM_CLASSES)}
  with torch.no_grad():
    fmap, pooled, logits = features(model, images)
  out.update({'eval/feature_map': _nhwc(fmap), 'eval/pooled': pooled.numpy(),
              'eval/logits': logits.numpy()})
  for mode in MODES:
    _mode_outputs(torch, model, images, proj, mode, out)
  torch.save(model.state_dict(), os.path.join(HERE, 'resnet_tiny.pth'))
  np.savez_compressed(os.path.join(HERE, 'resnet_tiny.npz'), **out)
  print('wrote resnet_tiny.pth, resnet_tiny.npz;',
        sum(p.numel() for p in model.parameters()), 'params')


def make_full(jax_python):
  import torch
  import torchvision
  torch.manual_seed(0)
  model = torchvision.models.resnet50()
  _randomise_bn(torch, model, 96)
  pth = '/tmp/resnet50_random.pth'
  torch.save(model.state_dict(), pth)
  images_np = test_images(2, 224)
  with torch.no_grad():
    _, pooled, logits = features(
        model, torch.from_numpy(images_np.transpose(0, 3, 1, 2).copy()))
  ref = '/tmp/resnet50_random_ref.npz'
  np.savez(ref, images=images_np, pooled=pooled.numpy(),
           logits=logits.numpy())
  subprocess.run([jax_python, os.path.abspath(__file__), '--compare', pth,
                  ref], check=True, cwd=os.path.dirname(HERE))


def compare(pth, ref):
  """JAX side: import the .pth, run tal_jax's ResNet-50, print differences."""
  sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
  import tal_jax  # noqa: F401  (XLA flags first)
  import jax
  import jax.numpy as jnp
  from tal_jax.nn import resnet_import as tv
  from tal_jax.nn import resnet
  data = np.load(ref)
  num_classes = 1000 if 'logits' in data else 0
  variables = tv.load_resnet_checkpoint(pth, num_classes=num_classes)
  keys = [k for k in ('feature_map', 'pooled', 'logits') if k in data]
  for dtype in (jnp.float32, jnp.bfloat16):
    model = resnet.ResNet(num_classes=num_classes, dtype=dtype)
    out = jax.jit(model.apply)(variables, data['images'])
    for key in keys:
      diff = np.abs(np.asarray(out[key], np.float32) - data[key]).max()
      scale = np.abs(data[key]).max()
      print(f'{os.path.basename(pth)} {jnp.dtype(dtype).name:8s} {key:11s} '
            f'max|torch|={scale:.4g} max abs diff={diff:.3g} '
            f'(relative {diff / scale:.3g})')


def _mmaction_resnet(mode, pretrained=None):
  from mmaction.models.backbones.resnet import ResNet
  norm_eval, partial_bn, frozen_stages = MODES[mode]
  model = ResNet(50, pretrained=pretrained, norm_eval=norm_eval,
                 partial_bn=partial_bn, frozen_stages=frozen_stages)
  model.init_weights()
  return model


def _mode_record(torch, mode):
  """MMAction2's frozen params and training-mode BNs after .train()."""
  model = _mmaction_resnet(mode)
  model.train()
  return {
      'frozen_params': [n for n, p in model.named_parameters()
                        if not p.requires_grad],
      'bn_train': [n for n, m in model.named_modules()
                   if isinstance(m, torch.nn.BatchNorm2d) and m.training],
  }


def make_mmaction(jax_python):
  import json
  import torch
  import torchvision
  records = {mode: _mode_record(torch, mode) for mode in MODES}
  with open(os.path.join(HERE, 'resnet_mmaction_modes.json'), 'w') as f:
    json.dump(records, f, indent=1)
  torch.manual_seed(0)
  tv_model = torchvision.models.resnet50()
  _randomise_bn(torch, tv_model, 96)
  tv_pth = '/tmp/resnet50_random_tv.pth'
  torch.save(tv_model.state_dict(), tv_pth)
  model = _mmaction_resnet('partial_bn', pretrained=tv_pth)
  model.eval()
  images_np = test_images(2, 224)
  with torch.no_grad():
    fmap = model(torch.from_numpy(images_np.transpose(0, 3, 1, 2).copy()))
  pth = '/tmp/resnet50_mmaction.pth'
  torch.save({'state_dict': {'backbone.' + k: v
                             for k, v in model.state_dict().items()}}, pth)
  ref = '/tmp/resnet50_mmaction_ref.npz'
  np.savez(ref, images=images_np, feature_map=_nhwc(fmap))
  print('wrote resnet_mmaction_modes.json;', {
      m: (len(r['frozen_params']), len(r['bn_train']))
      for m, r in records.items()})
  subprocess.run([jax_python, os.path.abspath(__file__), '--compare', pth,
                  ref], check=True, cwd=os.path.dirname(HERE))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--full', action='store_true',
                      help='full-size ResNet-50 check (prints differences)')
  parser.add_argument('--jax_python', default='python',
                      help='Python with jax + tal_jax deps for --full')
  parser.add_argument('--mmaction', action='store_true',
                      help='MMAction2 0.24.1 BN-mode record + full check')
  parser.add_argument('--compare', nargs=2, metavar=('PTH', 'REF_NPZ'),
                      help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.compare:
    compare(*args.compare)
  elif args.mmaction:
    make_mmaction(args.jax_python)
  elif args.full:
    make_full(args.jax_python)
  else:
    make_small()


if __name__ == '__main__':
  main()
