r"""BSN stage 2, PGM (MMAction2 1.2.0 `bsn_pgm_400x100_activitynet-feature.py`).

Usage (after TEM's --mode=test):
  python -m tal_jax.tools.bsn_proposal_generation --config=configs/bsn_pgm.py \
      --tem_dir=work_dirs/bsn/tem --out_dir=work_dirs/bsn/pgm --mode=train
  python -m tal_jax.tools.bsn_proposal_generation --config=configs/bsn_pgm.py \
      --tem_dir=work_dirs/bsn/tem --out_dir=work_dirs/bsn/pgm --mode=test
Train mode reads ann_file_train (top 500 BSP features per video), test mode
ann_file_val (top 1000), as MMAction2's tools/misc/bsn_proposal_generation.py.
Presets: '' (embedded dataset), 'full' (ActivityNet-sized), 'tiny' (tests),
'slowonly_k700' (MMAction2 1.2.0's `bsn_pgm_2048x100_activitynet-slowonly-k700-feature.py`: the same PGM
settings, MMAction2's data paths).
"""

import ml_collections

from tal_jax import config_presets
from tal_jax.data import pipeline


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """Returns the PGM config; `arg` is '', 'full', 'tiny' or 'slowonly_k700'."""
  config_presets.check_preset('bsn_pgm.py', arg,
                              config_presets.ACTIVITYNET_PRESETS)
  config = ml_collections.ConfigDict()
  config.model_name = 'bsn_pgm'
  # Data fields shared by every model (only the annotation files are read).
  config.data = data = pipeline.data_config()
  config.pgm = pgm = ml_collections.ConfigDict()
  # Inner start/end bins above this fraction of the maximum are candidates.
  pgm.peak_threshold = 0.5
  # BSP features kept per video: train and test.
  pgm.train_top_k = 500
  pgm.test_top_k = 1000
  # BSP feature: 8 start + 8 end + 16 action samples, 3 points each.
  pgm.num_sample_start = 8
  pgm.num_sample_end = 8
  pgm.num_sample_action = 16
  pgm.num_sample_interp = 3
  # Start/end regions extend by this fraction of the proposal length.
  pgm.bsp_boundary_ratio = 0.2
  pipeline.apply_data_preset(data, arg)
  if arg == 'slowonly_k700':
    # bsn_pgm_2048x100_activitynet-slowonly-k700-feature.py: ann_file_test
    # (PGM reads TEM results, not features).
    config_presets.slowonly_k700_data(data, 'anet_anno_test.json')
  return config
