"""Golden fixture: MMAction2 1.2.0's own BMN inference on the tiny checkpoint.

Rerun (from the checkout, with the reference environment, after
make_bmn_golden.py has written bmn_tiny.npz / bmn_tiny.pth):
  "$TAL_JAX_REFENV"/mmaction2-1.2.0/bin/python tests/golden/make_bmn_predict_golden.py
writes tests/golden/bmn_predict.npz.

It builds MMAction2's BMN with bmn_tiny.npz's config_json (T=16, D=24,
hidden 16/8/16), loads bmn_tiny.pth with mmengine's `load_checkpoint` (which
strips the 'module.' prefixes), and calls `BMN.forward(..., mode='predict')`
once per video (upstream `predict` reads batch element 0 only) with an
ActionDataSample carrying video_name, duration_second, duration_frame,
feature_frame and annotations, as PackLocalizationInputs would. The
predictions then go through `ANetMetric` (metric_type 'AR@AN', json dump), as
a test run does (refenv's numpy 2.4 lacks `np.trapz`, which upstream AR@AN
calls; the script aliases it to `np.trapezoid`).

Videos: the two fixture videos of bmn_tiny.npz (v_a, v_b; white-noise
features) and four seeded smooth random videos (Gaussian-filtered noise plus
a few bumps, of growing amplitude) with realistic durations, so the candidate
sets (all 120 cells down to a few dozen) and soft-NMS differ from video to
video.

Settings: 'default' is MMAction2's BMN test setting (soft_nms_alpha 0.4,
low 0.5, high 0.9, top_k 100; at T=16 at most 120 candidates: videos with
120 are cut to 100, the others keep every candidate); 'small_k' (alpha 0.75, low 0.65, high 0.9,
top_k 10) cuts soft-NMS short and re-sorts.

npz keys:
  features [V, T, D] float32; names [V] str; records_json (annotation records
  {name: record}); config_json (model config);
  for each setting S: S/params [4] (alpha, low, high, top_k), S/counts [V]
  int, S/proposals [sum(counts), 3] float64 (start_s, end_s, score) in
  MMAction2's order, video after video; S/results_json (the file ANetMetric
  dumped, verbatim); S/metrics_json (ANetMetric's AR@AN metrics);
  S/num_candidates [V] (candidates entering soft-NMS).
"""

import json
import os
import tempfile

import numpy as np
import torch

import mmaction_shim

HERE = os.path.dirname(os.path.abspath(__file__))

SETTINGS = {
    'default': (0.4, 0.5, 0.9, 100),
    'small_k': (0.75, 0.65, 0.9, 10),
}

# Extra videos: realistic ActivityNet-like durations (30 and 25 fps, frame
# counts not multiples of 16).
EXTRA_RECORDS = {
    'v_smooth1': {'duration_second': 183.6, 'duration_frame': 5508,
                  'feature_frame': 5504,
                  'annotations': [{'segment': [12.4, 60.9], 'label': 'p'},
                                  {'segment': [101.0, 170.2], 'label': 'p'}]},
    'v_smooth2': {'duration_second': 31.2, 'duration_frame': 780,
                  'feature_frame': 768,
                  'annotations': [{'segment': [3.0, 28.7], 'label': 'q'}]},
    'v_smooth3': {'duration_second': 97.03, 'duration_frame': 2909,
                  'feature_frame': 2896,
                  'annotations': [{'segment': [0.0, 14.2], 'label': 'r'},
                                  {'segment': [40.5, 52.0], 'label': 'r'},
                                  {'segment': [80.3, 97.03], 'label': 'r'}]},
    'v_smooth4': {'duration_second': 212.45, 'duration_frame': 6373,
                  'feature_frame': 6368,
                  'annotations': [{'segment': [55.5, 140.0], 'label': 's'}]},
}


# Amplitude of each extra video's features.
FEATURE_SCALES = (5.0, 20.0, 40.0, 60.0)


def import_mmaction():
  """BMN, ActionDataSample, ANetMetric and load_checkpoint, bypassing the
  broken `mmaction.models` package __init__ (MMACTION2.md)."""
  mmaction_shim.bypass_models_init()
  import mmaction.models.losses.bmn_loss  # noqa: F401  registers BMNLoss
  from mmaction.models.localizers.bmn import BMN
  from mmaction.structures import ActionDataSample
  from mmaction.evaluation.metrics.anet_metric import ANetMetric
  from mmengine.runner.checkpoint import load_checkpoint
  return BMN, ActionDataSample, ANetMetric, load_checkpoint


def smooth_features(rng, t, d, scale):
  """[t, d] float32: Gaussian-filtered noise (sigma 1.5 bins) plus 1-3 bumps,
  times `scale` (the random tiny model needs large inputs for its start/end
  curves to leave ~0.5, i.e. for candidate selection to drop bins)."""
  pad = 6
  noise = rng.standard_normal((t + 2 * pad, d))
  k = np.exp(-0.5 * (np.arange(-pad, pad + 1) / 1.5) ** 2)
  k /= k.sum()
  x = np.stack([np.convolve(noise[:, j], k, mode='valid') for j in range(d)],
               axis=1)
  x /= x.std()
  for _ in range(rng.integers(1, 4)):
    centre, width = rng.uniform(0, t), rng.uniform(1, 4)
    x += (rng.uniform(1, 3) * np.exp(-0.5 * ((np.arange(t) - centre) / width)
                                     ** 2))[:, None] * rng.standard_normal(d)
  return (scale * x).astype(np.float32)


def predict(model, sample_cls, features, name, record):
  """MMAction2's predict for one video; returns (output dict, data sample)."""
  sample = sample_cls()
  sample.set_metainfo(dict(video_name=name, **record))
  with torch.no_grad():
    out = model([torch.from_numpy(features.T.copy())], [sample],
                mode='predict')
  return out[0], sample


def count_candidates(model, features):
  """Candidates (start/end bin pairs) MMAction2's predict feeds soft-NMS."""
  with torch.no_grad():
    _, start, end = model._forward(torch.from_numpy(features.T[None].copy()))
  s, e = start[0].numpy(), end[0].numpy()

  def bins(x, edge):
    b = np.zeros(len(x), bool)
    b[edge] = True
    mid = x[1:-1]
    b[1:-1] = ((mid > x[2:]) & (mid > x[:-2])) | (mid > 0.5 * x.max())
    return b

  sb, eb = bins(s, 0), bins(e, -1)
  return sum(int(sb[i] and eb[j]) for i in range(len(s))
             for j in range(i + 1, len(e)))


def run_setting(classes, cfg, features, names, records, setting):
  bmn_cls, sample_cls, metric_cls, load_checkpoint = classes
  alpha, low, high, top_k = setting
  torch.manual_seed(0)
  model = bmn_cls(soft_nms_alpha=alpha, soft_nms_low_threshold=low,
                  soft_nms_high_threshold=high, post_process_top_k=top_k,
                  **cfg)
  load_checkpoint(model, os.path.join(HERE, 'bmn_tiny.pth'),
                  map_location='cpu', strict=True)
  model.eval()
  with tempfile.TemporaryDirectory() as tmp:
    out_path = os.path.join(tmp, 'results.json')
    metric = metric_cls(metric_type='AR@AN',
                        dump_config=dict(out=out_path, output_format='json'))
    rows, counts, cands = [], [], []
    for x, name in zip(features, names):
      pred, sample = predict(model, sample_cls, x, name, records[name])
      metric.process({'data_samples': [sample]}, [pred])
      counts.append(len(pred['proposal_list']))
      cands.append(count_candidates(model, x))
      rows += [[p['segment'][0], p['segment'][1], p['score']]
               for p in pred['proposal_list']]
    metrics = metric.compute_metrics(metric.results)
    with open(out_path) as f:
      results_text = f.read()
  return dict(params=np.asarray(setting, np.float64),
              counts=np.asarray(counts, np.int32),
              num_candidates=np.asarray(cands, np.int32),
              proposals=np.asarray(rows, np.float64).reshape(-1, 3),
              results_json=results_text,
              metrics_json=json.dumps({k: float(v) for k, v in metrics.items()}))


def check_forward(classes, cfg, tiny):
  """The loaded model reproduces bmn_tiny.npz's forward outputs."""
  model = classes[0](soft_nms_alpha=0.4, soft_nms_low_threshold=0.5,
                     soft_nms_high_threshold=0.9, post_process_top_k=100,
                     **cfg)
  classes[3](model, os.path.join(HERE, 'bmn_tiny.pth'), map_location='cpu',
             strict=True)
  model.eval()
  with torch.no_grad():
    cmap, _, _ = model._forward(
        torch.from_numpy(tiny['features'].transpose(0, 2, 1).copy()))
  err = np.abs(cmap.numpy().transpose(0, 2, 3, 1) - tiny['confidence_map']).max()
  assert err < 1e-6, err


def main():
  torch.set_num_threads(2)
  if not hasattr(np, 'trapz'):  # numpy 2.4 dropped it; AR@AN upstream uses it
    np.trapz = np.trapezoid
  classes = import_mmaction()
  tiny = dict(np.load(os.path.join(HERE, 'bmn_tiny.npz'), allow_pickle=False))
  cfg = json.loads(str(tiny['config_json']))
  check_forward(classes, cfg, tiny)
  t, d = cfg['temporal_dim'], cfg['feat_dim']
  records = {**json.loads(str(tiny['records_json'])), **EXTRA_RECORDS}
  rng = np.random.default_rng(20261126)
  extra = [smooth_features(rng, t, d, scale) for scale in FEATURE_SCALES]
  features = np.concatenate([tiny['features'].astype(np.float32),
                             np.stack(extra)])
  names = list(records)
  arrays = dict(features=features, names=np.asarray(names),
                records_json=json.dumps(records),
                config_json=str(tiny['config_json']))
  for key, setting in SETTINGS.items():
    out = run_setting(classes, cfg, features, names, records, setting)
    for k, v in out.items():
      arrays[f'{key}/{k}'] = v
    print(f'{key}: candidates {out["num_candidates"].tolist()}, '
          f'proposals {out["counts"].tolist()}, metrics {out["metrics_json"]}')
  path = os.path.join(HERE, 'bmn_predict.npz')
  np.savez_compressed(path, **arrays)
  print(f'wrote {path} ({os.path.getsize(path):,} bytes)')


if __name__ == '__main__':
  main()
