r"""BSN's PGM stage: candidate proposals and BSP features from TEM results.

  python -m tal_jax.tools.bsn_proposal_generation --config=configs/bsn_pgm.py \
      --tem_dir=work_dirs/bsn/tem --out_dir=work_dirs/bsn/pgm --mode=train
  python -m tal_jax.tools.bsn_proposal_generation --config=configs/bsn_pgm.py \
      --tem_dir=work_dirs/bsn/tem --out_dir=work_dirs/bsn/pgm --mode=test

As MMAction2's tools/misc/bsn_proposal_generation.py: train mode processes the
videos of config.data.ann_file_train (top 500 BSP features), test mode those of
ann_file_val (top 1000); videos without annotations are skipped. --tem_dir
holds tal_jax's tem_results.npz or, without one, MMAction2's TEM output CSVs
(<video>.csv, in the folder itself or in its tem_results/). Writes
<out_dir>/pgm_<mode>.npz; --mmaction2_files also writes MMAction2's
pgm_proposals/<video>.csv and pgm_features/<video>.npy under <out_dir>, which
PEM reads as well as the npz. The dashed spellings (--tem-dir, --out-dir,
--mmaction2-files) work too.
"""

import os
import sys
import time

from absl import app
from absl import flags
from ml_collections import config_flags

import tal_jax  # noqa: F401
from tal_jax.localizers.bsn import definition as bsn
from tal_jax import config_utils
from tal_jax import errors
from tal_jax.engine import runlog
from tal_jax.data import activitynet
from tal_jax.data import pipeline
from tal_jax.data import thumos14_windows

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'configs/bsn_pgm.py[:preset]',
                                lock_config=True)
flags.DEFINE_string('tem_dir', None, 'TEM workdir holding tem_results.npz, '
                    "or a folder of MMAction2's TEM CSVs <video>.csv.")
flags.DEFINE_string('out_dir', None, 'Where pgm_<mode>.npz is written.')
flags.DEFINE_enum('mode', 'test', ['train', 'test'], 'train or test split.')
flags.DEFINE_bool('mmaction2_files', False, "Also write MMAction2's "
                  'pgm_proposals/*.csv and pgm_features/*.npy.')
flags.DEFINE_bool('quiet', False, 'No progress bar or summary line.')


def generate(config, tem_dir: str, out_dir: str, mode: str,
             mmaction2_files: bool = False, quiet: bool = False) -> str:
  """Runs PGM for `mode`; returns the path of pgm_<mode>.npz."""
  split = 'train' if mode == 'train' else 'val'
  windowed = thumos14_windows.is_windowed(config)
  if windowed:  # THUMOS14: train windows, or every test window
    videos = pipeline.load_split(config, 'train' if mode == 'train'
                                 else 'test', uses_features=False)
    records = dict(zip(videos.names, videos.records))
  else:
    paths = pipeline.annotation_paths(config)
    records = activitynet.load_annotations(paths[f'ann_file_{split}'])
  names = bsn.pgm_names(records, windowed)
  if not names:
    raise errors.TalError(
        f'{pipeline.annotation_paths(config)[f"ann_file_{split}"]}: no video '
        f'with annotations for PGM --mode={mode}')
  out = os.path.join(out_dir, f'pgm_{mode}.npz')
  errors.check_writable(out, '--out_dir')
  tem = bsn.load_tem_dir(tem_dir, names)
  top_k = config.pgm.train_top_k if mode == 'train' else config.pgm.test_top_k
  start = time.time()
  count = bsn.run_pgm(tem, records, out, top_k, config.pgm,
                      out_dir if mmaction2_files else '',
                      runlog.show_progress(quiet), keep_unannotated=windowed)
  runlog.info(f'PGM {mode}: {count} videos in {time.time() - start:.1f} s -> '
              f'{out}', quiet)
  return out


def run(argv) -> None:
  runlog.quiet_libraries()
  if len(argv) > 1:
    raise errors.TalError(f'unexpected arguments: {" ".join(argv[1:])}')
  if not FLAGS.tem_dir or not FLAGS.out_dir:
    raise errors.TalError('--tem_dir and --out_dir are required')
  generate(FLAGS.config, FLAGS.tem_dir, FLAGS.out_dir, FLAGS.mode,
           FLAGS.mmaction2_files, FLAGS.quiet)


DASHED = ('tem-dir', 'out-dir', 'mmaction2-files', 'nommaction2-files')


def underscore_flags(argv: list[str]) -> list[str]:
  """argv with the dashed spellings of this tool's flags (--tem-dir=...)
  written as absl defines them (--tem_dir=...)."""
  out = []
  for a in argv:
    name = a[2:].split('=', 1)[0] if a.startswith('--') else ''
    if name in DASHED:
      a = '--' + name.replace('-', '_') + a[2 + len(name):]
    out.append(a)
  return out


def main() -> None:
  argv = config_utils.explain_config_errors(underscore_flags(sys.argv))
  app.run(lambda a: errors.run_cli(lambda: run(a)), argv=argv)


if __name__ == '__main__':
  main()
