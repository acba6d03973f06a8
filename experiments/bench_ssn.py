"""SSN head-side speed and agreement at THUMOS size: tal_jax vs MMAction2 0.24.1.

Usage (needs the MMAction2 0.24.1 reference environment: $TAL_JAX_REFENV,
experiments/README.md):
  python experiments/bench_ssn.py

Measures (median of 3, warm; D=2048 ResNet-50 features, C=20 classes):
* train step of the head: STPP + FCs + SSNLoss + backward, 8 videos x 8
  proposals x 9 segments (upstream: 8 GPUs x 1 video);
* test head of one video: fused FC on 1,000 ticks + STPPTest of 500 proposals;
* post-processing of that video: scores, top-2000, regression, per-class NMS.
Both sides run on the same inputs; the table reports the largest relative
difference of the outputs.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

import refenv

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top
import tal_jax  # noqa: F401
import jax
from tal_jax.localizers.ssn import losses as ssn_losses
from tal_jax.localizers.ssn import postprocess as ssn_postprocess
from tal_jax.data import ssn_videos
from tal_jax.localizers.ssn import targets as ssn_targets
from tal_jax.localizers.ssn import model as ssn
# pylint: enable=g-import-not-at-top

C, D, B, K, T, P = 20, 2048, 8, 8, 1000, 500

REF = r'''
import sys, time, warnings
warnings.filterwarnings('ignore')
import numpy as np, torch
from mmcv import ConfigDict
from mmaction.models.heads.ssn_head import SSNHead
from mmaction.models.losses.ssn_loss import SSNLoss
from mmaction.localization import perform_regression, temporal_nms
from mmaction.core import softmax
torch.set_num_threads(2)
d = dict(np.load(sys.argv[1]))
C = 20
cfg = ConfigDict(dict(ssn=dict(sampler=dict(num_per_video=8, positive_ratio=1,
    background_ratio=1, incomplete_ratio=6),
    loss_weight=dict(comp_loss_weight=0.1, reg_loss_weight=0.1))))
head = SSNHead(dropout_ratio=0., in_channels=2048, num_classes=C,
               consensus=dict(type='STPPTrain', stpp_stage=(1, 1, 1),
                              num_segments_list=(2, 5, 2)))
sd = {k: torch.from_numpy(d['w_' + k.replace('.', '_')])
      for k in head.state_dict()}
head.load_state_dict(sd)
def train():
  head.zero_grad()
  x = torch.from_numpy(d['x'].reshape(-1, 2048))
  a, c, b = head((x, torch.from_numpy(d['scale'].reshape(-1, 2))))
  losses = SSNLoss()(a, c, b, torch.from_numpy(d['ptype']).long(),
                     torch.from_numpy(d['labels']).long(),
                     torch.from_numpy(d['reg']), cfg)
  total = sum(losses.values()); total.backward()
  return total.item(), head.completeness_fc.weight.grad.numpy().copy()
test = SSNHead(dropout_ratio=0., in_channels=2048, num_classes=C,
               consensus=dict(type='STPPTest', stpp_stage=(1, 1, 1)))
test.load_state_dict(sd); test.prepare_test_fc(3)
def infer():
  with torch.no_grad():
    return test((torch.from_numpy(d['feats']), torch.from_numpy(d['ticks']),
                 torch.from_numpy(d['tscale'])), test_mode=True)
def post():
  comb = softmax(d['act'][:, 1:], dim=1) * np.exp(d['comp'])
  keep = np.argsort(comb.ravel())[-2000:]
  dets = {}
  for k in keep:
    ci, pi = k % C, k // C
    item = [d['rel'][pi, 0], d['rel'][pi, 1], comb[pi, ci], d['bbox'][pi, ci, 0],
            d['bbox'][pi, ci, 1]]
    dets[ci] = np.array([item]) if ci not in dets else np.vstack([dets[ci], item])
  return {c: temporal_nms(perform_regression(v), 0.2) for c, v in dets.items()}
out = {}
for name, fn in (('train', train), ('test', infer), ('post', post)):
  fn(); ts = []
  for _ in range(3):
    t0 = time.perf_counter(); r = fn(); ts.append(time.perf_counter() - t0)
  out[name + '_s'] = np.median(ts)
out['loss'] = train()[0]
out['grad_comp'] = train()[1]
_, a, c, b = infer()
out.update(act=a.numpy(), comp=c.numpy(), bbox=b.numpy())
dets = post()
out['dets'] = np.concatenate([np.c_[np.full(len(v), c), v] for c, v in sorted(dets.items())])
np.savez(sys.argv[2], **out)
'''


def make_inputs(rs):
  """Random head weights, a training batch and one test video."""
  d = {}
  for name, shape in (('activity_fc', (C + 1, D)), ('completeness_fc',
                                                    (C, 3 * D)),
                      ('regressor_fc', (2 * C, 3 * D))):
    d[f'w_{name}_weight'] = (rs.randn(*shape) * 0.01).astype(np.float32)
    d[f'w_{name}_bias'] = (rs.randn(shape[0]) * 0.01).astype(np.float32)
  d['x'] = rs.rand(B, K, 9, D).astype(np.float32)
  d['scale'] = rs.uniform(0.5, 1.2, (B, K, 2)).astype(np.float32)
  d['ptype'] = np.tile(np.repeat(np.arange(3), (1, 6, 1)), (B, 1)).astype(
      np.int32)
  d['labels'] = np.where(d['ptype'] == 2, 0, rs.randint(1, C + 1, (B, K)))
  d['reg'] = np.where(d['ptype'][..., None] == 0, rs.randn(B, K, 2),
                      0).astype(np.float32)
  starts = rs.randint(0, 5800, P)
  props = np.stack([rs.randint(1, C + 1, P), starts,
                    starts + rs.randint(10, 600, P)], axis=1)
  video = ssn_videos.SSNVideo('v', 6 * T + 1, np.zeros((1, 3), np.int64),
                               props, np.zeros(P), np.zeros(P), np.zeros(P))
  t = ssn_targets.test_inputs(video)
  d['feats'] = rs.rand(len(t['frame_ticks']), D).astype(np.float32)
  d['ticks'] = t['proposal_tick_list']
  d['tscale'] = t['scale_factor_list']
  d['rel'] = t['relative_proposal_list']
  d['act'] = rs.randn(P, C + 1).astype(np.float32)
  d['comp'] = rs.randn(P, C).astype(np.float32)
  d['bbox'] = (rs.randn(P, C, 2) * 0.1).astype(np.float32)
  return d


def _median_time(fn, reps=3):
  fn()
  times = []
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return float(np.median(times))


def run_tal_jax(d):
  params = {n: {'kernel': d[f'w_{n}_weight'].T, 'bias': d[f'w_{n}_bias']}
            for n in ('activity_fc', 'completeness_fc', 'regressor_fc')}
  module = ssn.SSNHead(num_classes=C)
  batch = {'inputs': d['x'], 'proposal_scale_factor': d['scale'],
           'proposal_type': d['ptype'], 'proposal_labels': d['labels'],
           'reg_targets': d['reg']}
  step = jax.jit(jax.value_and_grad(
      lambda p, b: ssn_losses.head_loss(module, p, b)[0]))
  infer = lambda: ssn.ssn_test_forward(params, d['feats'], d['ticks'],
                                       d['tscale'], C)
  post = lambda: ssn_postprocess.video_detections(
      d['rel'], d['act'], d['comp'], d['bbox'], np.array([[0., 0.], [1., 1.]]))
  out = {'train_s': _median_time(lambda: step(params, batch)),
         'test_s': _median_time(infer), 'post_s': _median_time(post)}
  loss, grads = step(params, batch)
  act, comp, bbox = infer()
  dets = post()
  out.update(loss=float(loss),
             grad_comp=np.asarray(grads['completeness_fc']['kernel']).T,
             act=np.asarray(act), comp=np.asarray(comp),
             bbox=np.asarray(bbox).reshape(P, -1),
             dets=np.concatenate([np.c_[np.full(len(v), c), v]
                                  for c, v in sorted(dets.items())]))
  return out


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.parse_args(argv)
  ref_python = refenv.python(refenv.MMACTION2_0241)
  d = make_inputs(np.random.RandomState(0))
  mine = run_tal_jax(d)
  with tempfile.TemporaryDirectory() as tmp:
    np.savez(os.path.join(tmp, 'in.npz'), **d)
    subprocess.run([ref_python, '-c', REF, os.path.join(tmp, 'in.npz'),
                    os.path.join(tmp, 'out.npz')], check=True,
                   stderr=subprocess.DEVNULL)
    ref = dict(np.load(os.path.join(tmp, 'out.npz')))
  same_dets = mine['dets'].shape == ref['dets'].shape
  diffs = {'train': max(_rel(mine['loss'], ref['loss']),
                        _rel(mine['grad_comp'], ref['grad_comp'])),
           'test': max(_rel(mine[k], ref[k]) for k in ('act', 'comp', 'bbox')),
           'post': _rel(mine['dets'], ref['dets']) if same_dets else np.inf}
  print('| work | MMAction2 0.24.1 s | tal_jax s | speed-up | max rel diff |')
  print('|---|---|---|---|---|')
  for name, label in (('train', f'head train step ({B}x{K} proposals, '
                                'loss + grads)'),
                      ('test', f'test head, {T} ticks x {P} proposals'),
                      ('post', f'post-processing, {P} proposals x {C} '
                               'classes')):
    r, m = ref[name + '_s'], mine[name + '_s']
    print(f'| {label} | {r:.4f} | {m:.4f} | {r / m:.1f}x | '
          f'{diffs[name]:.1e} |')


if __name__ == '__main__':
  sys.exit(main())
