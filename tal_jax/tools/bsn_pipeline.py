r"""The whole BSN chain in one command: TEM -> PGM -> PEM, train and test.

  python -m tal_jax.tools.bsn_pipeline --workdir=work_dirs/bsn
  python -m tal_jax.tools.bsn_pipeline --workdir=work_dirs/bsn \
      --feature_dir=data/ActivityNet/csv_mean_100 \
      --ann_file_train=data/ActivityNet/anet_anno_train.json \
      --ann_file_val=data/ActivityNet/anet_anno_val.json \
      --ann_file_full=data/ActivityNet/anet_anno_full.json

Runs, with configs/bsn_{tem,pgm,pem}.py:
  1. TEM training in <workdir>/tem, then TEM --mode=test over every video
     (tem_results.npz);
  2. PGM in train and test mode into <workdir>/pgm (and its config.json);
  3. PEM training in <workdir>/pem, then PEM --mode=test: <workdir>/pem/
     results.json and metrics.json (AR@AN, AUC).
--dataset=thumos14 runs configs/bsn_{tem,pgm,pem}_thumos14.py instead (THUMOS14
in sliding windows; presets '', tsn, i3d, tiny; real data: --feature_dir and
--ann_file_train = OpenTAD's thumos_14_anno.json, read for every split), and
PEM's test writes proposals.json, results.json (UntrimmedNet labels) and
metrics.json (AR@50..AR@1000, mAP@0.3..0.7).
With --tem_dir, step 1 is skipped and PGM reads that folder: tal_jax's
tem_results.npz or MMAction2's TEM output CSVs (tem_results/<video>.csv).
Each step is the documented single command (see README), so a stopped chain can
be resumed step by step; re-running this command resumes training stages from
their latest checkpoints.
"""

import argparse
import json
import os

import tal_jax  # noqa: F401
from tal_jax import config_utils
from tal_jax import errors
from tal_jax import localizers
from tal_jax.engine import loop
from tal_jax.engine import predict
from tal_jax.engine import runlog
from tal_jax.engine import workdir_lock
from tal_jax.tools import bsn_proposal_generation


def stage_config(name: str, preset: str, args) -> object:
  """configs/bsn_<name>.py[:preset] with the command's data paths."""
  thumos = getattr(args, 'dataset', 'activitynet') == 'thumos14'
  suffix = '_thumos14' if thumos else ''
  spec = os.path.join(config_utils.configs_dir(), f'bsn_{name}{suffix}.py')
  config = config_utils.load_config(f'{spec}:{preset}' if preset else spec)
  data = config.data
  data.cache_dir = args.cache_dir
  if thumos and args.feature_dir:
    data.feature_dir = args.feature_dir
    data.ann_file_train = data.ann_file_val = data.ann_file_test = (
        args.ann_file_train)
  elif args.feature_dir or args.ann_file_train:
    data.feature_dir = args.feature_dir
    data.ann_file_train = args.ann_file_train
    data.ann_file_val = args.ann_file_val
    data.ann_file_test = (args.ann_file_full if name == 'tem' else
                          args.ann_file_val)
  return config


def run_pipeline(args) -> dict[str, float]:
  """Runs the six steps; returns PEM's test metrics."""
  given_tem = getattr(args, 'tem_dir', '')
  tem_dir = given_tem or os.path.join(args.workdir, 'tem')
  pgm_dir = os.path.join(args.workdir, 'pgm')
  pem_dir = os.path.join(args.workdir, 'pem')
  if given_tem and not os.path.isdir(os.path.expanduser(given_tem)):
    raise errors.TalError(f'--tem_dir {given_tem}: no such folder (TEM '
                          "results: tem_results.npz or MMAction2's CSVs)")
  config_utils.check_workdir(args.workdir)
  tem = None
  if not given_tem:
    tem = stage_config('tem', args.preset, args)
    config_utils.check_workdir(tem_dir)
    config_utils.check_config(tem)
  with workdir_lock.hold(args.workdir):
    return _run_stages(args, tem, tem_dir, pgm_dir, pem_dir)


def _run_stages(args, tem, tem_dir, pgm_dir, pem_dir) -> dict[str, float]:
  if tem is not None:  # else --tem_dir: TEM results given
    loop.train_and_evaluate(localizers.get(tem), tem, tem_dir, args.quiet)
    predict.run_test(localizers.get(tem), tem, tem_dir, args.quiet)
  pgm = stage_config('pgm', args.preset, args)
  config_utils.check_workdir(pgm_dir)
  config_utils.save_config(pgm, pgm_dir)  # what tools.infer's PGM uses
  for mode in ('train', 'test'):
    bsn_proposal_generation.generate(pgm, tem_dir, pgm_dir, mode,
                                     quiet=args.quiet)
  pem = stage_config('pem', args.preset, args)
  pem.data.pgm_dir = pgm_dir
  config_utils.check_workdir(pem_dir)
  config_utils.check_config(pem)
  loop.train_and_evaluate(localizers.get(pem), pem, pem_dir, args.quiet)
  return predict.run_test(localizers.get(pem), pem, pem_dir, args.quiet)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--workdir', required=True)
  parser.add_argument('--dataset', default='activitynet',
                      choices=['activitynet', 'thumos14'],
                      help='configs/bsn_*.py or configs/bsn_*_thumos14.py')
  parser.add_argument('--preset', default='',
                      choices=['', 'full', 'tiny', 'slowonly_k700', 'tsn',
                               'i3d'],
                      help="configs' preset ('' = embedded default dataset)")
  parser.add_argument('--cache_dir', default='~/.cache/tal_jax')
  parser.add_argument('--feature_dir', default='')
  parser.add_argument('--ann_file_train', default='')
  parser.add_argument('--ann_file_val', default='')
  parser.add_argument('--ann_file_full', default='',
                      help='every video (TEM --mode=test), as MMAction2')
  parser.add_argument('--tem_dir', default='',
                      help='skip step 1: PGM reads these TEM results '
                      "(tal_jax's tem_results.npz or MMAction2's TEM CSVs)")
  parser.add_argument('--quiet', action='store_true')
  args = parser.parse_args(argv)
  if args.dataset == 'thumos14':
    if bool(args.feature_dir) != bool(args.ann_file_train):
      raise errors.TalError('THUMOS14 real data needs --feature_dir and '
                            '--ann_file_train (thumos_14_anno.json)')
  elif (args.feature_dir or args.ann_file_train) and not all(
      (args.feature_dir, args.ann_file_train, args.ann_file_val,
       args.ann_file_full)):
    raise errors.TalError('real data needs --feature_dir, --ann_file_train, '
                          '--ann_file_val and --ann_file_full')
  runlog.quiet_libraries()
  metrics = run_pipeline(args)
  print(json.dumps(metrics, indent=2))


if __name__ == '__main__':
  errors.run_cli(main)
