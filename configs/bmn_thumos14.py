r"""BMN on THUMOS14 in sliding windows (OpenTAD `configs/bmn/thumos_tsn.py`).

Usage:
  python -m tal_jax.main --config=configs/bmn_thumos14.py --workdir=/tmp/bmn_th14
  python -m tal_jax.main --config=configs/bmn_thumos14.py --workdir=/tmp/bmn_th14 \
      --mode=test
  python -m tal_jax.main --config=configs/bmn_thumos14.py:tsn --workdir=W \
      --config.data.feature_dir=data/thumos-14/features/tsn_gtad_stride1_thumos \
      --config.data.ann_file_train=data/thumos-14/annotations/thumos_14_anno.json \
      --config.data.ann_file_val=data/thumos-14/annotations/thumos_14_anno.json \
      --config.data.ann_file_test=data/thumos-14/annotations/thumos_14_anno.json \
      --config.test.classifier_file=data/thumos-14/classifiers/uNet_test.npy

Presets: '' (the embedded set: real THUMOS14 ground truth of 12 validation
videos to train on and 6 test videos, synthetic 64-d snippet features, a
narrow BMN, lr 1e-3 and gradient clip 40, so it learns in minutes on a CPU;
OpenTAD's window, schedule and post-processing values otherwise), 'tsn' / 'i3d' (OpenTAD's
thumos_tsn.py / thumos_i3d.py: 2048-d features, full BMN widths, 8 epochs,
real sizes of the embedded set), 'tiny' (tests).

Test mode writes results.json (detections: each proposal labelled with the
top-2 UntrimmedNet classes of its video, score = proposal x class score),
proposals.json, and metrics.json: AR@50..AR@1000 (tIoU 0.5:0.05:1.0) and
mAP@0.3..0.7 (OpenTAD's evaluator); `tal_jax.tools.evaluate --dataset
thumos14_opentad` scores the same files.

The network is MMAction2's BMN (as configs/bmn.py) on T = 128 snippets; OpenTAD
uses its own BMN variant (grouped-conv projection, a 64-long duration axis,
the projection's weight decay x10). Windows, labels, optimizer, schedule and
post-processing are OpenTAD's; proposals longer than 64 snippets are not
decoded (its dscale=64).
"""

import ml_collections

from tal_jax import config_presets
from tal_jax import config_utils
from tal_jax.data import pipeline
from tal_jax.data import thumos14_windows


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """The BMN THUMOS14 config; `arg` is '', 'tsn', 'i3d' or 'tiny'."""
  config_presets.check_preset('bmn_thumos14.py', arg,
                              config_presets.THUMOS14_PRESETS)
  config = config_utils.base_config('bmn')
  config.data = data = pipeline.data_config()
  thumos14_windows.add_data_fields(data)
  data.synthetic_train = 12
  data.synthetic_val = 6

  config.model = model = ml_collections.ConfigDict()
  # tscale = window_size = 128 (thumos_tsn.py: proposal_generator tscale=128).
  model.temporal_dim = 128
  # The embedded set's width (thumos_tsn.py: projection in_channels=2048).
  model.feat_dim = 64
  # BMN extractor: prop_extend_ratio=0.5 (_base_/models/bmn.py).
  model.boundary_ratio = 0.5
  model.num_samples = 32
  model.num_samples_per_bin = 3
  # Embedded: narrow widths (OpenTAD/MMAction2: 256, 128, 512).
  model.hidden_dim_1d = 64
  model.hidden_dim_2d = 32
  model.hidden_dim_3d = 64
  model.bm_layer = 'reassociated'

  config.test = test = thumos14_windows.test_config()
  # thumos_tsn.py: optimizer Adam lr=1e-4, weight_decay=1e-4; MultiStepLR
  # milestones=[5], gamma 0.1, max_epoch=8; batch_size=16; clip_grad_norm=1.
  config.train = train = config_utils.train_config(
      batch_size=16, num_epochs=8, learning_rate=1e-4, weight_decay=1e-4,
      lr_milestones=(5,), videos_per_loss=16)
  train.grad_clip_norm = 1.0

  if arg in ('', 'tiny'):
    # Embedded (tal_jax's choice, so the few steps of a CPU run learn):
    # lr 1e-3 and the clip at MMAction2's 40 instead of OpenTAD's 1e-4 and 1.
    train.learning_rate = 1e-3
    train.grad_clip_norm = 40.0
  if arg == 'tiny':
    data.synthetic_train, data.synthetic_val = 2, 1
    data.window_size = model.temporal_dim = 32
    test.max_duration = 16
    model.feat_dim = 16
    model.num_samples, model.num_samples_per_bin = 4, 2
    model.hidden_dim_1d = model.hidden_dim_2d = model.hidden_dim_3d = 8
    train.batch_size = train.videos_per_loss = 4
    train.num_epochs, train.lr_milestones = 1, ()
  elif arg in ('tsn', 'i3d'):
    model.feat_dim = 2048
    model.hidden_dim_1d, model.hidden_dim_2d, model.hidden_dim_3d = (
        256, 128, 512)
    data.synthetic_train, data.synthetic_val = 193, 198
    if arg == 'i3d':
      # thumos_i3d.py / features_i3d_sw.py.
      data.feature_stride, data.sample_stride, data.offset_frames = 4, 1, 8
  return config
