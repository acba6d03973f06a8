r"""BSN stage 2, PGM, on THUMOS14 sliding windows (see
configs/bsn_tem_thumos14.py for the chain).

MMAction2 1.2.0's PGM values (configs/bsn_pgm.py) on each window: train mode
reads the train windows (top 500 BSP features each), test mode every test
window (top 1000).
"""

import ml_collections

from tal_jax import config_utils


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """The PGM THUMOS14 config; `arg` is '', 'tsn', 'i3d' or 'tiny'."""
  tem = config_utils.load_config(f'bsn_tem_thumos14:{arg}' if arg
                                 else 'bsn_tem_thumos14')
  config = config_utils.load_config('bsn_pgm')
  config.data = tem.data
  config.data.test_windows = 'test'
  return config
