r"""BSN stage 3, PEM, on THUMOS14 sliding windows (see
configs/bsn_tem_thumos14.py for the chain).

MMAction2 1.2.0's PEM (configs/bsn_pem.py: its soft-NMS and top 100 per
window); a video's windows are then merged as OpenTAD's BMN THUMOS14 test
(config.test.nms_*: Gaussian soft-NMS 0.3 with voting 0.95) and labelled
with the top-2 UntrimmedNet classes; --mode=test writes results.json,
proposals.json and metrics.json (AR@50..AR@1000, mAP@0.3..0.7).
"""

import ml_collections

from tal_jax import config_utils
from tal_jax.data import thumos14_windows


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """The PEM THUMOS14 config; `arg` is '', 'tsn', 'i3d' or 'tiny'."""
  tem = config_utils.load_config(f'bsn_tem_thumos14:{arg}' if arg
                                 else 'bsn_tem_thumos14')
  config = config_utils.load_config('bsn_pem:tiny' if arg == 'tiny'
                                    else 'bsn_pem')
  config.data = tem.data
  config.data.test_windows = 'test'
  merge = thumos14_windows.test_config()
  del merge['batch_size'], merge['max_duration']
  config.test.update(merge)
  return config
