r"""BSN stage 1, TEM, on THUMOS14 sliding windows.

The BSN chain on THUMOS14 (no OpenTAD or MMAction2 config exists: the model
values are MMAction2 1.2.0's BSN, configs/bsn_tem.py; the windows, labels and
the merge of a video's windows are OpenTAD's BMN THUMOS14 setting,
configs/bmn_thumos14.py, each window a 128-snippet "video"):
  python -m tal_jax.main --config=configs/bsn_tem_thumos14.py --workdir=W/tem
  python -m tal_jax.main --config=configs/bsn_tem_thumos14.py --workdir=W/tem \
      --mode=test                       # TEM on every train and test window
  python -m tal_jax.tools.bsn_proposal_generation \
      --config=configs/bsn_pgm_thumos14.py --tem_dir=W/tem --out_dir=W/pgm \
      --mode=train                      # and --mode=test
  python -m tal_jax.main --config=configs/bsn_pem_thumos14.py --workdir=W/pem \
      --config.data.pgm_dir=W/pgm       # then --mode=test: results.json,
                                        # proposals.json, metrics.json
Presets: '' (the embedded set of configs/bmn_thumos14.py: 12 validation / 6
test videos, 64-d synthetic snippet features), 'tsn' / 'i3d' (2048-d
features in OpenTAD's layout, see configs/bmn_thumos14.py), 'tiny' (tests).
"""

import ml_collections

from tal_jax import config_presets
from tal_jax import config_utils
from tal_jax.data import pipeline
from tal_jax.data import thumos14_windows


def window_data(arg: str) -> ml_collections.ConfigDict:
  """config.data of the BSN THUMOS14 configs for preset `arg`."""
  data = pipeline.data_config()
  thumos14_windows.add_data_fields(data)
  data.synthetic_train, data.synthetic_val = {
      'tiny': (2, 1), 'tsn': (193, 198), 'i3d': (193, 198)}.get(arg, (12, 6))
  if arg == 'tiny':
    data.window_size = 32
  if arg == 'i3d':
    # OpenTAD features_i3d_sw.py.
    data.feature_stride, data.sample_stride, data.offset_frames = 4, 1, 8
  return data


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """The TEM THUMOS14 config; `arg` is '', 'tsn', 'i3d' or 'tiny'."""
  config_presets.check_preset('bsn_tem_thumos14.py', arg,
                              config_presets.THUMOS14_PRESETS)
  # MMAction2's TEM (hidden 512, boundary ratio 0.1, Adam 1e-3, 20 epochs,
  # x0.1 at 7 and 14); its tiny preset for 'tiny'.
  config = config_utils.load_config('bsn_tem:tiny' if arg == 'tiny'
                                    else 'bsn_tem')
  config.data = data = window_data(arg)
  # TEM's test feeds PGM in both modes: every train and test window.
  data.test_windows = 'full'
  config.model.temporal_dim = data.window_size
  config.model.feat_dim = {'tiny': 16, 'tsn': 2048, 'i3d': 2048}.get(arg, 64)
  return config
