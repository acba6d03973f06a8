"""Writes tests/golden/ssn_*.npz from MMAction2 0.24.1 (SSN exists only in 0.x).

Rerun (from the repository root) with the MMAction2 0.24.1 reference
environment (tests/golden/README.md: torch==2.14.1, torchvision==0.29.1,
numpy<1.24, mmcv==1.7.0 built with MMCV_WITH_OPS=0, mmaction2==0.24.1):

  "$TAL_JAX_REFENV"/mmaction2-0.24.1/bin/python tests/golden/make_ssn_golden.py

Fixtures (all small; features D=16, C=4 classes):
* ssn_dataset.npz: a synthetic de-normalised proposal list (its text), the
  videos kept, per video the positive / incomplete / background pools with
  regression targets, reg_norm_consts of the train and test datasets,
  prepare_train_frames outputs under np.random.seed(123) with 'val'-mode frame
  sampling, and prepare_test_frames outputs.
* ssn_head.npz: SSNHead weights (torch layout), STPPTrain features, head
  outputs, SSNLoss terms and gradients (weights and input features) for 3
  videos; the fused test FC and STPPTest outputs of 2 test videos; with
  stpp_stage (1, (1, 2), 1) (pyr_*), STPPTrain features and STPPTest outputs.
* ssn_post.npz: crafted test results of every test video, the detections
  after results_to_detections (top_k 30) + perform_regression + temporal_nms,
  and `evaluate`'s mAP at 0.1..0.9.
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
from mmaction.localization import perform_regression, temporal_nms  # noqa
from mmaction.models.heads.ssn_head import SSNHead  # noqa
from mmaction.models.losses.ssn_loss import SSNLoss  # noqa

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ssn024_config  # pylint: disable=g-import-not-at-top
C, D = 4, 16

TRAIN_CFG = ConfigDict(ssn024_config.TRAIN_CFG)
TEST_CFG = ConfigDict(dict(ssn=dict(
    sampler=dict(test_interval=6, batch_size=16),
    evaluater=dict(top_k=30, nms=0.2, softmax_before_filter=True,
                   cls_score_dict=None, cls_top_k=2))))


def _iou_iop(p, g):
  inter = max(0, min(p[1], g[1]) - max(p[0], g[0]))
  return inter / (p[1] - p[0] + g[1] - g[0] - inter), inter / (p[1] - p[0])


def _proposal_line(p, gts):
  if not gts or p[1] <= p[0]:
    return f'0 0 0 {p[0]} {p[1]}'
  stats = [_iou_iop(p, (g[1], g[2])) for g in gts]
  iou = max(s[0] for s in stats)
  iop = max(s[1] for s in stats)
  if iou == 0 and iop == 0:
    return f'0 0 0 {p[0]} {p[1]}'
  label = gts[int(np.argmax([s[0] for s in stats]))][0]
  return f'{label} {iou:.4f} {iop:.4f} {p[0]} {p[1]}'


def _video_proposals(rs, n, gts, far):
  props = []
  for _, s, e in gts:
    if far:
      break
    length = e - s
    for _ in range(3):  # near the gt: positives
      j = rs.randint(-length // 12, length // 12 + 1, size=2)
      props.append((max(0, s + j[0]), e + j[1]))
    for _ in range(4):  # inside the gt: incompletes
      a = rs.randint(s, s + length // 2)
      props.append((a, a + max(2, length // 5)))
  for _ in range(8):  # anywhere
    a = rs.randint(0, n - 20)
    props.append((a, min(n + 15, a + rs.randint(8, n // 3))))
  if far:
    props = [(0, 12), (n - 30, n - 2)]
  props += [(40, 40), (n + 3, n + 20)]  # filtered by the loader
  return props


def proposal_list_text():
  """Synthetic de-normalised proposal list (frames), edge cases included."""
  rs = np.random.RandomState(7)
  specs = [(420, [(1, 40, 120), (3, 200, 260)]), (600, [(2, 100, 220)]),
           (333, [(4, 30, 90), (1, 150, 200), (4, 250, 345)]),
           (500, []), (510, [(3, 300, 420), (2, 60, 130)]),
           (480, [(4, 150, 260)])]
  blocks = []
  for i, (n, gts) in enumerate(specs):
    far = i == 5  # no positive/incomplete of its own
    props = _video_proposals(rs, n, gts, far)
    lines = [f'#{i}', f'video_{i:03d}', str(n), '1', str(len(gts))]
    lines += [f'{l} {s} {e}' for l, s, e in gts]
    lines.append(str(len(props)))
    lines += [_proposal_line(p, gts) for p in props]
    blocks.append('\n'.join(lines) + '\n')
  return ''.join(blocks)


def _dataset(path, test_mode, pipeline):
  return SSNDataset(path, pipeline, TRAIN_CFG, TEST_CFG, data_prefix='frames',
                    test_mode=test_mode, aug_ratio=0.5, body_segments=5,
                    aug_segments=(2, 2))


def _pool_rows(items):
  rows = np.array([[p.label, p.start_frame, p.end_frame] for p in items],
                  np.int64).reshape(-1, 3)
  reg = np.array([list(p.regression_targets) for p in items],
                 np.float64).reshape(-1, 2)
  return rows, reg


def dataset_golden(path, text):
  ds = _dataset(path, False, [dict(
      type='SampleProposalFrames', clip_len=1, body_segments=5,
      aug_segments=(2, 2), aug_ratio=0.5, mode='val')])
  out = {'proposal_list': np.array(text),
         'video_ids': np.array([v['video_id'] for v in ds.video_infos]),
         'reg_norm_train': np.array(ds.reg_norm_consts, np.float64)}
  a = TRAIN_CFG.ssn.assigner
  for i, info in enumerate(ds.video_infos):
    pos = ds.get_positives(info['gts'], info['proposals'],
                           a.positive_iou_threshold, True)
    inc, bg = ds.get_negatives(info['proposals'], a.incomplete_iou_threshold,
                               a.background_iou_threshold,
                               a.background_coverage_threshold,
                               a.incomplete_overlap_threshold)
    for name, items in (('pos', pos), ('inc', inc), ('bg', bg)):
      out[f'v{i}_{name}_rows'], out[f'v{i}_{name}_reg'] = _pool_rows(items)
  np.random.seed(123)
  keys = ('frame_inds', 'proposal_scale_factor', 'proposal_type',
          'proposal_labels', 'reg_targets')
  samples = [ds.prepare_train_frames(i) for i in range(len(ds))]
  for k in keys:
    out[f'train_{k}'] = np.stack([np.asarray(s[k]) for s in samples])
  test = _dataset(path, True, [dict(
      type='SampleProposalFrames', clip_len=1, body_segments=5,
      aug_segments=(2, 2), aug_ratio=0.5, mode='test')])
  out['reg_norm_test'] = np.array(test.reg_norm_consts, np.float64)
  for i in range(len(test)):
    r = test.prepare_test_frames(i)
    for k in ('frame_inds', 'relative_proposal_list', 'scale_factor_list',
              'proposal_tick_list'):
      out[f'test{i}_{k}'] = np.asarray(r[k])
  return ds, test, out


def head_golden(ds_out):
  torch.manual_seed(0)
  head = SSNHead(dropout_ratio=0., in_channels=D, num_classes=C, consensus=dict(
      type='STPPTrain', stpp_stage=(1, 1, 1), num_segments_list=(2, 5, 2)))
  head.init_weights()
  out = {'init_std_activity': head.activity_fc.weight.std().item()}
  with torch.no_grad():  # larger weights so hinges are both on and off
    for fc in (head.activity_fc, head.completeness_fc, head.regressor_fc):
      fc.weight.normal_(0, 0.2)
      fc.bias.normal_(0, 0.1)
  for name, p in head.state_dict().items():
    out['w_' + name.replace('.', '_')] = p.numpy().copy()
  b = 3
  x = torch.randn(b * 8 * 9, D, requires_grad=True)
  scale = torch.from_numpy(ds_out['train_proposal_scale_factor'][:b])
  course, stpp = head.consensus(x, scale.reshape(-1, 2))
  act, comp, bbox = head((x, scale.reshape(-1, 2)))
  ptype = torch.from_numpy(ds_out['train_proposal_type'][:b]).long()
  labels = torch.from_numpy(ds_out['train_proposal_labels'][:b]).long()
  reg = torch.from_numpy(ds_out['train_reg_targets'][:b])
  losses = SSNLoss()(act, comp, bbox, ptype, labels, reg, TRAIN_CFG)
  total = sum(losses.values())
  total.backward()
  out.update(x=x.detach().numpy(), course_feat=course.detach().numpy(),
             stpp_feat=stpp.detach().numpy(), activity=act.detach().numpy(),
             completeness=comp.detach().numpy(), bbox=bbox.detach().numpy(),
             loss_total=total.item(), grad_x=x.grad.numpy())
  for k, v in losses.items():
    out[k] = v.item()
  for name, p in head.named_parameters():
    out['grad_' + name.replace('.', '_')] = p.grad.numpy().copy()
  return head, out


def test_head_golden(head, ds_out, reg_norm):
  test_head = SSNHead(dropout_ratio=0., in_channels=D, num_classes=C,
                      consensus=dict(type='STPPTest', stpp_stage=(1, 1, 1)))
  test_head.load_state_dict(head.state_dict())
  test_head.prepare_test_fc(test_head.consensus.num_multipliers)
  out = {}
  for i in (0, 2):
    ticks = ds_out[f'test{i}_proposal_tick_list']
    feats = torch.randn(len(ds_out[f'test{i}_frame_inds']), D)
    with torch.no_grad():
      scores, act, comp, bbox = test_head(
          (feats, torch.from_numpy(ticks), torch.from_numpy(
              ds_out[f'test{i}_scale_factor_list'])), test_mode=True)
      bbox = bbox.view(-1, C, 2)
      bbox[:, :, 0] = bbox[:, :, 0] * reg_norm[1, 0] + reg_norm[0, 0]
      bbox[:, :, 1] = bbox[:, :, 1] * reg_norm[1, 1] + reg_norm[0, 1]
    out.update({f'test{i}_feats': feats.numpy(),
                f'test{i}_scores': scores.numpy(),
                f'test{i}_activity': act.numpy(),
                f'test{i}_completeness': comp.numpy(),
                f'test{i}_bbox_denorm': bbox.numpy()})
  return out


def pyramid_golden(ds_out):
  """stpp_stage (1, (1, 2), 1): train STPP features and the test head."""
  torch.manual_seed(1)
  stage = (1, (1, 2), 1)
  train = SSNHead(dropout_ratio=0., in_channels=D, num_classes=C, consensus=dict(
      type='STPPTrain', stpp_stage=stage, num_segments_list=(2, 5, 2)))
  for fc in (train.activity_fc, train.completeness_fc, train.regressor_fc):
    torch.nn.init.normal_(fc.weight, 0, 0.2)
  x = torch.randn(8 * 9, D)
  scale = torch.from_numpy(ds_out['train_proposal_scale_factor'][0])
  course, stpp = train.consensus(x, scale)
  test = SSNHead(dropout_ratio=0., in_channels=D, num_classes=C,
                 consensus=dict(type='STPPTest', stpp_stage=stage))
  test.load_state_dict(train.state_dict())
  test.prepare_test_fc(test.consensus.num_multipliers)
  feats = torch.randn(len(ds_out['test1_frame_inds']), D)
  with torch.no_grad():
    _, act, comp, bbox = test(
        (feats, torch.from_numpy(ds_out['test1_proposal_tick_list']),
         torch.from_numpy(ds_out['test1_scale_factor_list'])), test_mode=True)
  out = {'pyr_x': x.numpy(), 'pyr_course': course.numpy(),
         'pyr_stpp': stpp.numpy(), 'pyr_feats': feats.numpy(),
         'pyr_activity': act.numpy(), 'pyr_completeness': comp.numpy(),
         'pyr_bbox': bbox.numpy()}
  for name, p in train.state_dict().items():
    out['pyr_w_' + name.replace('.', '_')] = p.numpy().copy()
  return out


def post_golden(test, ds_out):
  rs = np.random.RandomState(11)
  results, out = [], {}
  for i, info in enumerate(test.video_infos):
    rel = ds_out[f'test{i}_relative_proposal_list']
    p = len(rel)
    labels = np.array([q.label for q in info['proposals']] or [0])
    ious = np.array([q.best_iou for q in info['proposals']] or [0.])
    act = rs.randn(p, C + 1).astype(np.float32)
    act[np.arange(p), labels] += 3
    comp = (rs.randn(p, C) * 0.5 + (ious[:, None] - 0.5)).astype(np.float32)
    bbox = (rs.randn(p, C, 2) * 0.1).astype(np.float32)
    results.append(dict(relative_proposal_list=rel, activity_scores=act,
                        completeness_scores=comp, bbox_preds=bbox))
    out.update({f'res{i}_activity': act, f'res{i}_completeness': comp,
                f'res{i}_bbox': bbox})
  dets = test.results_to_detections(results, **test.evaluater)
  rows = []
  for c, by_video in enumerate(dets):
    for vid, d in by_video.items():
      d = temporal_nms(perform_regression(d), test.evaluater.nms)
      v = [x['video_id'] for x in test.video_infos].index(vid)
      rows += [[c, v] + list(r) for r in d]
  out['detections'] = np.array(rows, np.float64)
  mean_ap = test.evaluate(results)
  out['map_keys'] = np.array(list(mean_ap))
  out['map_values'] = np.array(list(mean_ap.values()), np.float64)
  return out


def main():
  text = proposal_list_text()
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, 'ssn_proposal_list.txt')
    with open(path, 'w') as f:
      f.write(text)
    _, test, ds_out = dataset_golden(path, text)
    head, head_out = head_golden(ds_out)
    head_out.update(test_head_golden(head, ds_out, ds_out['reg_norm_test']))
    head_out.update(pyramid_golden(ds_out))
    post_out = post_golden(test, ds_out)
  np.savez(os.path.join(HERE, 'ssn_dataset.npz'), **ds_out)
  np.savez(os.path.join(HERE, 'ssn_head.npz'), **head_out)
  np.savez(os.path.join(HERE, 'ssn_post.npz'), **post_out)
  print('losses', {k: head_out[k] for k in ('loss_activity',
                                            'loss_completeness', 'loss_reg')})
  print('mAP', dict(zip(post_out['map_keys'], post_out['map_values'])))
  print('detections', post_out['detections'].shape)


if __name__ == '__main__':
  sys.exit(main())
