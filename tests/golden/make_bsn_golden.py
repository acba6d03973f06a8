"""Golden fixtures for BSN (TEM -> PGM -> PEM) from MMAction2 1.2.0.

Rerun (from the checkout, with the reference environment; ~15 s, deterministic
seeds, so the files only change if MMAction2/torch/numpy do):
  "$TAL_JAX_REFENV"/mmaction2-1.2.0/bin/python tests/golden/make_bsn_golden.py
writes
  tests/golden/bsn_tem.npz   TEM at T=16, D=8, hidden 16, batch 3: 'sd/<torch
      name>' weights (torch layout), features [B, T, D], gt [B, G, 2] + gt_mask
      (from GenerateLocalizationLabels on 'records_json'), tem_output [B, T, 3],
      label_action/start/end [B, T], loss_action (x2)/loss_start/loss_end/loss,
      'grad/<torch name>', tem_rows [B, T, 5] (TEM.predict rows, float64).
  tests/golden/bsn_pgm.npz   PGM at T=100 on 4 fixed TEM outputs (smooth,
      quantised with many score ties, noisy around 0.5 with 4,950 candidates,
      monotone, few candidates): tem_output [N, T, 3] float32, records_json,
      proposals_<i> [P, 7] float64 and bsp_<i> [min(P, 1000), 32] float64
      from MMAction2's
      own generate_candidate_proposals / generate_bsp_feature run on TEM CSVs
      written as ANetMetric writes them (and proposal CSVs written as
      tools/misc/bsn_proposal_generation.py writes them) in a temp dir;
      bsp500_0 the train-time top_k=500 features of video 0.
  tests/golden/bsn_pem.npz   PEM at full size (32 -> 256 -> 1): 'sd/...',
      loss on videos 0 and 1 (top 500 each, as the train pipeline):
      train_feature [M, 32], train_iou [M], u_medium/u_low [M] (the two
      torch.rand draws), train_output [M], loss, 'grad/...'; predict on each
      video i (top 1000): pem_output_<i> [K], result_<i> [k, 3] (segment
      start s, end s, score) from PEM.predict's proposal_list.
"""

import json
import os
import tempfile
import types

import numpy as np
import torch

import mmaction_shim

HERE = os.path.dirname(os.path.abspath(__file__))

TEM_CFG = dict(temporal_dim=16, boundary_ratio=0.1, tem_feat_dim=8,
               tem_hidden_dim=16, tem_match_threshold=0.5)
PEM_CFG = dict(pem_feat_dim=32, pem_hidden_dim=256, pem_u_ratio_m=1,
               pem_u_ratio_l=2, pem_high_temporal_iou_threshold=0.6,
               pem_low_temporal_iou_threshold=0.2, soft_nms_alpha=0.75,
               soft_nms_low_threshold=0.65, soft_nms_high_threshold=0.9,
               post_process_top_k=100)
T_PGM = 100

TEM_RECORDS = [
    {'duration_second': 50.0, 'duration_frame': 1500, 'feature_frame': 1488,
     'annotations': [{'segment': [0.0, 7.3]}, {'segment': [20.2, 31.9]},
                     {'segment': [40.0, 55.0]}, {'segment': [12.0, 12.0]}]},
    {'duration_second': 12.5, 'duration_frame': 300, 'feature_frame': 288,
     'annotations': [{'segment': [2.1, 10.4]}]},
    {'duration_second': 80.0, 'duration_frame': 2000, 'feature_frame': 1984,
     'annotations': [{'segment': [1.0, 2.0]}, {'segment': [30.0, 70.0]}]},
]

PGM_RECORDS = {
    'v_smooth': {'duration_second': 120.0, 'duration_frame': 3600,
                 'feature_frame': 3584,
                 'annotations': [{'segment': [10.0, 35.5]},
                                 {'segment': [60.2, 90.0]},
                                 {'segment': [100.0, 125.0]}]},
    'v_ties': {'duration_second': 30.0, 'duration_frame': 750,
               'feature_frame': 736,
               'annotations': [{'segment': [3.0, 12.0]}]},
    'v_noisy': {'duration_second': 200.0, 'duration_frame': 6000,
                'feature_frame': 5984,
                'annotations': [{'segment': [0.0, 50.0]},
                                {'segment': [80.0, 81.0]},
                                {'segment': [150.0, 199.0]}]},
    'v_mono': {'duration_second': 61.3, 'duration_frame': 1839,
               'feature_frame': 1824,
               'annotations': [{'segment': [20.0, 40.0]}]},
}


def import_mmaction():
  """TEM, PEM, the PGM functions and GenerateLocalizationLabels, bypassing the
  broken `mmaction.models` package __init__ (MMACTION2.md)."""
  mmaction_shim.bypass_models_init()
  import mmaction.models.losses.binary_logistic_regression_loss  # noqa: F401
  from mmaction.models.localizers import bsn
  from mmaction.models.localizers.utils import bsn_utils
  from mmaction.datasets.transforms.loading import GenerateLocalizationLabels
  return bsn, bsn_utils, GenerateLocalizationLabels


def sample(**gt_instances):
  return types.SimpleNamespace(gt_instances=gt_instances, metainfo={})


def grads(model):
  return {'grad/' + n: p.grad.numpy().copy()
          for n, p in model.named_parameters()}


def state_dict(model):
  return {'sd/' + k: v.numpy().copy() for k, v in model.state_dict().items()}


def make_tem(bsn, label_transform):
  torch.manual_seed(0)
  model = bsn.TEM(**TEM_CFG)
  t, d = TEM_CFG['temporal_dim'], TEM_CFG['tem_feat_dim']
  gts = [label_transform.transform(dict(r))['gt_bbox'] for r in TEM_RECORDS]
  g = max(len(x) for x in gts)
  gt = np.zeros((len(gts), g, 2))
  gt_mask = np.zeros((len(gts), g), bool)
  for i, x in enumerate(gts):
    gt[i, :len(x)], gt_mask[i, :len(x)] = x, True
  features = torch.randn(len(gts), d, t)
  labels = model.generate_labels([torch.from_numpy(x) for x in gts])
  losses = model.loss(features, [sample(gt_bbox=torch.from_numpy(x))
                                 for x in gts])
  total = sum(losses.values())
  total.backward()
  with torch.no_grad():
    out = model._forward(features).numpy().transpose(0, 2, 1)
    rows = model.predict(features, [types.SimpleNamespace(
        metainfo={'video_name': f'v_{i}'}) for i in range(len(gts))])
  arrays = dict(features=features.numpy().transpose(0, 2, 1), gt=gt,
                gt_mask=gt_mask, tem_output=out,
                label_action=labels[0].numpy(), label_start=labels[1].numpy(),
                label_end=labels[2].numpy(), loss=np.float32(total.item()),
                tem_rows=np.stack([r for _, r in rows]),
                records_json=json.dumps(TEM_RECORDS),
                config_json=json.dumps(TEM_CFG), **grads(model),
                **state_dict(model))
  for k, v in losses.items():
    arrays[k] = np.float32(v.item())
  np.savez_compressed(os.path.join(HERE, 'bsn_tem.npz'), **arrays)
  print(f'tem: loss {total.item():.6f}')


def pgm_tem_outputs(rng):
  """Four [T, 3] float32 TEM outputs exercising PGM's branches."""
  x = np.arange(T_PGM) / T_PGM

  def bumps(centres, width):
    return sum(np.exp(-0.5 * ((x - c) / width)**2) for c in centres)

  smooth = np.stack([0.1 + 0.8 * bumps([0.2, 0.6, 0.9], 0.08),
                     0.05 + 0.9 * bumps([0.1, 0.5, 0.83], 0.02),
                     0.05 + 0.9 * bumps([0.3, 0.75, 0.99], 0.02)], 1)
  smooth = np.clip(smooth + 0.01 * rng.standard_normal(smooth.shape), 0.01,
                   0.99)
  ties = np.round(rng.uniform(0.05, 0.95, (T_PGM, 3)) * 8) / 8
  noisy = 0.5 + 1e-3 * rng.standard_normal((T_PGM, 3))
  mono = np.stack([x, np.exp(-5 * x), np.exp(-5 * (1 - x))], 1) * 0.9 + 0.05
  return np.stack([smooth, ties, noisy, mono]).astype(np.float32)


def write_csv(path, rows, header):
  np.savetxt(path, rows, header=header, delimiter=',', comments='')


def make_pgm(bsn, bsn_utils):
  rng = np.random.default_rng(0)
  tem_output = pgm_tem_outputs(rng)
  names = list(PGM_RECORDS)
  infos = [dict(PGM_RECORDS[n], video_name=n) for n in names]
  tem = bsn.TEM(temporal_dim=T_PGM, boundary_ratio=0.1, tem_feat_dim=4,
                tem_hidden_dim=4, tem_match_threshold=0.5)
  arrays = dict(tem_output=tem_output, records_json=json.dumps(PGM_RECORDS))
  with tempfile.TemporaryDirectory() as tmp:
    tem_dir, prop_dir = os.path.join(tmp, 'tem'), os.path.join(tmp, 'prop')
    os.makedirs(tem_dir)
    os.makedirs(prop_dir)
    for name, out in zip(names, tem_output):
      rows = np.stack((out[:, 0], out[:, 1], out[:, 2], tem.anchors_tmins,
                       tem.anchors_tmaxs), axis=1)  # as TEM.predict
      write_csv(os.path.join(tem_dir, name + '.csv'), rows,
                'action,start,end,tmin,tmax')
    props = bsn_utils.generate_candidate_proposals(
        range(len(names)), infos, tem_dir, T_PGM, 0.5)
    for name in names:
      write_csv(os.path.join(prop_dir, name + '.csv'), props[name],
                'tmin,tmax,tmin_score,tmax_score,score,match_iou,match_ioa')
    feats = bsn_utils.generate_bsp_feature(range(len(names)), infos, tem_dir,
                                           prop_dir, top_k=1000)
    feats500 = bsn_utils.generate_bsp_feature([0], infos, tem_dir, prop_dir,
                                              top_k=500)
    loaded = [np.loadtxt(os.path.join(prop_dir, n + '.csv'), dtype=np.float32,
                         delimiter=',', skiprows=1) for n in names]
  for i, name in enumerate(names):
    arrays[f'proposals_{i}'] = props[name]
    arrays[f'bsp_{i}'] = feats[name]
    print(f'pgm {name}: {len(props[name])} proposals')
  arrays['bsp500_0'] = feats500[names[0]]
  np.savez_compressed(os.path.join(HERE, 'bsn_pgm.npz'), **arrays)
  return names, loaded, [feats[n] for n in names]


def make_pem(bsn, names, loaded, feats):
  torch.manual_seed(0)
  model = bsn.PEM(**PEM_CFG)
  arrays = {}
  train = []
  for i in (0, 1):
    p, f = loaded[i][:500], feats[i][:500].astype(np.float32)
    train.append(sample(bsp_feature=torch.from_numpy(f),
                        reference_temporal_iou=torch.from_numpy(p[:, 5])))
  torch.manual_seed(1)
  loss = model.loss(None, train)['temporal_iou_loss']
  loss.backward()
  m = sum(len(s.gt_instances['bsp_feature']) for s in train)
  torch.manual_seed(1)
  arrays['u_medium'] = torch.rand(m).numpy()
  arrays['u_low'] = torch.rand(m).numpy()
  feature = torch.cat([s.gt_instances['bsp_feature'] for s in train])
  arrays.update(train_feature=feature.numpy(),
                train_iou=torch.cat([s.gt_instances['reference_temporal_iou']
                                     for s in train]).numpy(),
                loss=np.float32(loss.item()), **grads(model),
                **state_dict(model))
  with torch.no_grad():
    arrays['train_output'] = model._forward(feature).view(-1).numpy()
    for i, name in enumerate(names):
      p = loaded[i][:1000]
      f = feats[i][:1000].astype(np.float32)
      meta = dict(PGM_RECORDS[name], video_name=name)
      s = sample(bsp_feature=torch.from_numpy(f),
                 tmin=torch.from_numpy(p[:, 0]), tmax=torch.from_numpy(p[:, 1]),
                 tmin_score=torch.from_numpy(p[:, 2]),
                 tmax_score=torch.from_numpy(p[:, 3]))
      s.metainfo = meta
      out = model.predict(None, [s])[0]['proposal_list']
      arrays[f'pem_output_{i}'] = model._forward(
          torch.from_numpy(f)).view(-1).numpy()
      arrays[f'result_{i}'] = np.array(
          [[x['segment'][0], x['segment'][1], x['score']] for x in out],
          np.float64)
  arrays['config_json'] = json.dumps(PEM_CFG)
  np.savez_compressed(os.path.join(HERE, 'bsn_pem.npz'), **arrays)
  print(f'pem: loss {loss.item():.6f}')


def main():
  bsn, bsn_utils, label_cls = import_mmaction()
  make_tem(bsn, label_cls())
  names, loaded, feats = make_pgm(bsn, bsn_utils)
  make_pem(bsn, names, loaded, feats)


if __name__ == '__main__':
  main()
