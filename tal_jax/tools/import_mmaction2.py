r"""Import an MMAction2 BMN, BSN TEM, BSN PEM or SSN checkpoint (.pth) into a
workdir.

No torch needed. The config names the model (configs/bmn.py, configs/bsn_tem.py,
configs/bsn_pem.py, configs/ssn.py). An SSN checkpoint (MMAction2 0.24.1) gives
the head, and with `--set data.mode=frames` the ResNet backbone and its BN
statistics as well.

Usage:
  python -m tal_jax.tools.import_mmaction2 \
      --checkpoint bmn_400x100_2x8_9e_activitynet_feature_20200619-42a3b111.pth \
      --config configs/bmn.py --workdir /tmp/bmn_imported
  python -m tal_jax.main --config=configs/bmn.py --workdir=/tmp/bmn_imported --mode=test
  python -m tal_jax.tools.import_mmaction2 --checkpoint tem_epoch_20.pth \
      --config configs/bsn_tem.py --workdir work_dirs/bsn/tem
  python -m tal_jax.tools.import_mmaction2 \
      --checkpoint ssn_r50_450e_thumos14_rgb_20201012-1920ab16.pth \
      --config configs/ssn.py --set data.mode=frames --set model.feat_dim=2048 \
      --workdir work_dirs/ssn_imported

A workdir that already holds checkpoints is refused (test, infer, export and
resume would keep restoring its trained steps, never the import); `--force`
moves its `checkpoints/` folder to `checkpoints.before-import` (nothing is
deleted), so the import is the only step every later command restores.

The config's model widths must match the checkpoint; `--set model.feat_dim=2048`
(repeatable) changes config fields before the check.
"""

import argparse

import jax
import numpy as np

from tal_jax.engine import checkpointing
from tal_jax import config_utils
from tal_jax.convert import pth
from tal_jax.errors import TalError, run_cli
from tal_jax import localizers


def _apply_overrides(config, overrides):
  """Applies 'a.b=value' strings, parsing the value with the field's type."""
  config_utils.check_override_keys(config, [o.split('=', 1)[0]
                                            for o in overrides])
  for item in overrides:
    if '=' not in item:
      raise TalError(f"--set {item!r}: expected key=value")
    key, value = item.split('=', 1)
    *parents, leaf = key.split('.')
    node = config
    for p in parents:
      node = node[p]
    old = node[leaf]
    try:
      node[leaf] = type(old)(value) if not isinstance(old, bool) else (
          value.lower() in ('1', 'true', 'yes'))
    except ValueError:
      raise TalError(f'--set {item}: cannot parse {value!r} as '
                     f'{type(old).__name__}') from None


def load_checkpoint(path: str, config) -> dict:
  """Variables ({'params', ...}) of config.model_name from an MMAction2 .pth
  (the model's `import_state_dict`)."""
  model_def = localizers.MODELS.get(config.model_name)
  if model_def is None or model_def.import_state_dict is None:
    importable = sorted(k for k, v in localizers.MODELS.items()
                        if v.import_state_dict)
    raise TalError(f'cannot import a {config.model_name!r} checkpoint '
                   f'(supported: {importable})')
  return model_def.import_state_dict(pth.load_pth(path), config, path)


def main(argv=None):
  parser = argparse.ArgumentParser(
      description='Import an MMAction2 BMN / BSN TEM / BSN PEM / SSN .pth '
      'checkpoint into a workdir.')
  parser.add_argument('--checkpoint', required=True,
                      help='MMAction2 .pth (torch.save zip or legacy format)')
  parser.add_argument('--config', required=True,
                      help="config file[:preset], e.g. configs/bmn.py")
  parser.add_argument('--workdir', required=True,
                      help='where the imported parameters are saved')
  parser.add_argument('--force', action='store_true',
                      help='the workdir already holds checkpoints: move them '
                      'to checkpoints.before-import so the import is the '
                      'step every later command restores')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='override a config field, e.g. model.feat_dim=2048')
  args = parser.parse_args(argv)
  config = config_utils.load_config(args.config)
  _apply_overrides(config, args.set)
  print(f'reading {args.checkpoint}')
  variables = dict(load_checkpoint(args.checkpoint, config))
  moved = checkpointing.clear_for_import(args.workdir, args.force)
  if moved:
    print(f'--force: moved the existing checkpoints to {moved}')
  params = variables.pop('params')
  path = checkpointing.save_params(args.workdir, params, config,
                                   model_state=variables)
  count = sum(np.size(v) for v in jax.tree.leaves(params))
  print(f'saved {count:,} parameters to {path}')
  return path


if __name__ == '__main__':
  run_cli(main)
