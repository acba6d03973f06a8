r"""Import an MMAction2 BMN, BSN TEM or BSN PEM checkpoint (.pth) into a workdir.

No torch needed. The config names the model (configs/bmn.py, configs/bsn_tem.py,
configs/bsn_pem.py).

Usage:
  python -m tal_jax.tools.import_mmaction2 \
      --checkpoint bmn_400x100_2x8_9e_activitynet_feature_20200619-42a3b111.pth \
      --config configs/bmn.py --workdir /tmp/bmn_imported
  python -m tal_jax.main --config=configs/bmn.py --workdir=/tmp/bmn_imported --mode=test
  python -m tal_jax.tools.import_mmaction2 --checkpoint tem_epoch_20.pth \
      --config configs/bsn_tem.py --workdir work_dirs/bsn/tem

The config's model widths must match the checkpoint; `--set model.feat_dim=2048`
(repeatable) changes config fields before the check.
"""

import argparse

from tal_jax import checkpointing
from tal_jax import config_utils
from tal_jax.convert import mmaction2
from tal_jax.errors import TalError, run_cli


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


def main(argv=None):
  parser = argparse.ArgumentParser(
      description='Import an MMAction2 BMN / BSN TEM / BSN PEM .pth checkpoint '
      'into a workdir.')
  parser.add_argument('--checkpoint', required=True,
                      help='MMAction2 .pth (torch.save zip or legacy format)')
  parser.add_argument('--config', required=True,
                      help="config file[:preset], e.g. configs/bmn.py")
  parser.add_argument('--workdir', required=True,
                      help='where the imported parameters are saved')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='override a config field, e.g. model.feat_dim=2048')
  args = parser.parse_args(argv)
  config = config_utils.load_config(args.config)
  _apply_overrides(config, args.set)
  print(f'reading {args.checkpoint}')
  params = mmaction2.load_checkpoint(args.checkpoint, config)
  path = checkpointing.save_params(args.workdir, params, config)
  print(f'saved {sum(v.size for p in params.values() for v in p.values()):,} '
        f'parameters to {path}')
  return path


if __name__ == '__main__':
  run_cli(main)
