"""Golden fixture for mixing BSN stages of MMAction2 1.2.0 and tal_jax.

Rerun (from the checkout, with the reference environment and a Python that
has tal_jax's requirements on PATH, or named by --jax_python; ~20 s):
  "$TAL_JAX_REFENV"/mmaction2-1.2.0/bin/python \
      tests/golden/make_bsn_mix_golden.py [--jax_python python3]
writes tests/golden/bsn_mix.npz, at T=16 (D=8, hidden 16), five videos:
  records_json        {video: annotation record}; train_names, val_names.
  features [N, T, D]  float32 TEM inputs (channels last); 'sd/<torch name>'
                      the TEM weights (MMAction2's TEM, torch.manual_seed(0),
                      conv3 weight and bias x600, bias -150, so that scores spread over
                      (0.02, 0.6) and PGM keeps 5 to 12 of the 16 bins).
  mm_tem_csv [N]      the text of MMAction2's tem_results/<video>.csv: TEM.predict
                      rows dumped by ANetMetric.dump_results (output_format
                      'csv'), as MMAction2's TEM --mode=test writes them.
  tj_tem_output [N, T, 3]  tal_jax's TEM on the same weights and features
                      (run by --jax_python; what tal_jax wrote as
                      tem_results.npz + tem_results/<video>.csv).
  mm_pgm_csv [N]      the text of pgm_proposals/<video>.csv and
  mm_pgm_feat_<video> [K, 32] float64 the pgm_features/<video>.npy array that
                      MMAction2's own generate_candidate_proposals /
                      generate_bsp_feature made from tal_jax's TEM CSVs, saved
                      as tools/misc/bsn_proposal_generation.py saves them
                      (top_k 500 for train_names, 1000 for val_names).
tests/test_bsn_mix.py replays both mixes against all-tal_jax runs.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
T, D, H = 16, 8, 16
TRAIN = {
    'v_mix_a': {'duration_second': 40.0, 'duration_frame': 1200,
                'feature_frame': 1184,
                'annotations': [{'segment': [3.0, 14.5], 'label': 'x'},
                                {'segment': [22.0, 35.0], 'label': 'x'}]},
    'v_mix_b': {'duration_second': 12.5, 'duration_frame': 300,
                'feature_frame': 288,
                'annotations': [{'segment': [2.1, 10.4], 'label': 'x'}]},
    'v_mix_c': {'duration_second': 80.0, 'duration_frame': 2000,
                'feature_frame': 1984,
                'annotations': [{'segment': [1.0, 2.0], 'label': 'x'},
                                {'segment': [30.0, 70.0], 'label': 'x'}]},
}
VAL = {
    'v_mix_d': {'duration_second': 61.3, 'duration_frame': 1839,
                'feature_frame': 1824,
                'annotations': [{'segment': [20.0, 40.0], 'label': 'x'}]},
    'v_mix_e': {'duration_second': 150.0, 'duration_frame': 4500,
                'feature_frame': 4496,
                'annotations': [{'segment': [0.0, 50.0], 'label': 'x'},
                                {'segment': [80.0, 81.0], 'label': 'x'},
                                {'segment': [100.0, 149.0], 'label': 'x'}]},
}
PGM_HEADER = 'tmin,tmax,tmin_score,tmax_score,score,match_iou,match_ioa'


def mmaction_tem_csvs(names, features, out_dir):
  """MMAction2's TEM on `features` [N, D, T] (torch); dumps its CSVs into
  out_dir as its TEM test does. Returns the torch state dict (numpy)."""
  import torch
  import mmaction_shim
  mmaction_shim.bypass_models_init()
  import mmaction.models.losses.binary_logistic_regression_loss  # noqa: F401
  from mmaction.models.localizers import bsn
  from mmaction.evaluation.metrics.anet_metric import ANetMetric
  torch.manual_seed(0)
  model = bsn.TEM(temporal_dim=T, boundary_ratio=0.1, tem_feat_dim=D,
                  tem_hidden_dim=H, tem_match_threshold=0.5)
  with torch.no_grad():
    model.conv3.weight.mul_(600.)
    model.conv3.bias.mul_(600.).sub_(150.)
    rows = model.predict(torch.from_numpy(features), [
        types.SimpleNamespace(metainfo={'video_name': n}) for n in names])
  ANetMetric(metric_type='TEM',
             dump_config=dict(out=out_dir, output_format='csv')
             ).dump_results(rows)
  return {'sd/' + k: v.numpy().copy() for k, v in model.state_dict().items()}


def mmaction_pgm(records, names, tem_dir, prop_dir, top_k):
  """MMAction2's PGM functions on the TEM CSVs of tem_dir; writes proposal
  CSVs into prop_dir as its tool does; returns {video: bsp features}."""
  from mmaction.models.localizers.utils import bsn_utils
  infos = [dict(records[n], video_name=n) for n in names]
  props = bsn_utils.generate_candidate_proposals(range(len(names)), infos,
                                                 tem_dir, T, 0.5)
  for name in names:
    np.savetxt(os.path.join(prop_dir, name + '.csv'), props[name],
               header=PGM_HEADER, delimiter=',', comments='')
  return bsn_utils.generate_bsp_feature(range(len(names)), infos, tem_dir,
                                        prop_dir, top_k=top_k)


def tal_jax_tem(in_npz, out_dir):
  """Run by --jax_python: tal_jax's TEM on the weights and features of
  in_npz; writes tem_results.npz and tem_results/<video>.csv into out_dir."""
  sys.path.insert(0, ROOT)
  import tal_jax  # noqa: F401  (XLA flags first)
  from tal_jax.localizers.bsn import definition
  from tal_jax.localizers.bsn import model
  with np.load(in_npz) as f:
    arrays = dict(f)
  params = model.params_from_state_dict(
      {k[3:]: v for k, v in arrays.items() if k.startswith('sd/')})
  tem = model.TEM(temporal_dim=T, feat_dim=D, hidden_dim=H)
  out = np.asarray(tem.apply({'params': params}, arrays['features']))
  definition.write_tem_results(
      os.path.join(out_dir, definition.TEM_RESULTS),
      arrays['names'].tolist(), out, os.path.join(out_dir, 'tem_results'))


def read_text(path):
  with open(path) as f:
    return f.read()


def make(jax_python):
  records = {**TRAIN, **VAL}
  names = list(records)
  rng = np.random.default_rng(0)
  features = rng.standard_normal((len(names), D, T)).astype(np.float32)
  arrays = dict(records_json=json.dumps(records),
                train_names=np.asarray(list(TRAIN)),
                val_names=np.asarray(list(VAL)),
                features=features.transpose(0, 2, 1).copy())
  with tempfile.TemporaryDirectory() as tmp:
    mm_tem = os.path.join(tmp, 'mm_tem')
    arrays.update(mmaction_tem_csvs(names, features, mm_tem))
    arrays['mm_tem_csv'] = np.asarray(
        [read_text(os.path.join(mm_tem, n + '.csv')) for n in names])
    tem_in = os.path.join(tmp, 'tem_in.npz')
    np.savez(tem_in, names=np.asarray(names), **{
        k: v for k, v in arrays.items() if k.startswith('sd/')},
             features=arrays['features'])
    tj_tem = os.path.join(tmp, 'tj_tem')
    subprocess.run([jax_python, os.path.abspath(__file__), '--tal_jax_tem',
                    tem_in, tj_tem], check=True, cwd=ROOT)
    with np.load(os.path.join(tj_tem, 'tem_results.npz')) as f:
      assert f['names'].tolist() == names
      arrays['tj_tem_output'] = f['tem_output']
    prop_dir = os.path.join(tmp, 'pgm_proposals')
    os.makedirs(prop_dir)
    feats = {}
    for split, top_k in ((TRAIN, 500), (VAL, 1000)):
      feats.update(mmaction_pgm(records, list(split),
                                os.path.join(tj_tem, 'tem_results'), prop_dir,
                                top_k))
    arrays['mm_pgm_csv'] = np.asarray(
        [read_text(os.path.join(prop_dir, n + '.csv')) for n in names])
  for name in names:
    arrays[f'mm_pgm_feat_{name}'] = feats[name]
    print(f'{name}: {len(feats[name])} proposals')
  tem_spread = arrays['tj_tem_output'].std()
  print(f'TEM output std {tem_spread:.3f}')
  np.savez_compressed(os.path.join(HERE, 'bsn_mix.npz'), **arrays)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--jax_python', default='python',
                      help='a Python with tal_jax requirements')
  parser.add_argument('--tal_jax_tem', nargs=2, metavar=('IN_NPZ', 'OUT_DIR'),
                      help='(internal) the tal_jax side')
  args = parser.parse_args()
  if args.tal_jax_tem:
    tal_jax_tem(*args.tal_jax_tem)
  else:
    make(args.jax_python)


if __name__ == '__main__':
  main()
