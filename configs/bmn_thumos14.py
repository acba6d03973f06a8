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
narrow BMN and 4 epochs, so it trains in minutes on a CPU: OpenTAD's window,
optimizer and post-processing values otherwise), 'tsn' / 'i3d' (OpenTAD's
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

from tal_jax import config_utils
from tal_jax.data import pipeline


def data_config() -> ml_collections.ConfigDict:
  """config.data of the THUMOS14 window configs (BMN, BSN TEM/PEM)."""
  data = pipeline.data_config()
  data.dataset = 'thumos14_windows'
  # OpenTAD thumos_14_anno.json subsets: 'training' holds the THUMOS14
  # validation videos, 'validation' the test videos (features_tsn_sw.py:
  # train subset_name="training", val and test "validation").
  data.subset_train = 'training'
  data.subset_val = 'validation'
  data.subset_test = 'validation'
  # Videos to skip (features_tsn_sw.py: block_list = missing_files.txt).
  data.block_list = ''
  # Frames per feature row, rows per snippet, frame of row 0 (thumos_tsn.py:
  # feature_stride=1, sample_stride=5; thumos_i3d.py: 4, 1, offset_frames=8).
  data.feature_stride = 1
  data.sample_stride = 5
  data.offset_frames = 0
  # Snippets per window; overlap of train/val and test windows; a train/val
  # window is kept when it holds more than ioa_thresh of an action
  # (thumos_tsn.py: window_size=128, window_overlap_ratio=0.5 in all three
  # splits, ioa_thresh=0.9 in train and val).
  data.window_size = 128
  data.window_overlap_ratio = 0.5
  data.test_window_overlap_ratio = 0.5
  data.ioa_thresh = 0.9
  # Video fps for frames -> seconds; -1: frame / duration of each video
  # (SlidingWindowDataset's fps=-1).
  data.fps = -1.0
  # Embedded set: frames per second of its videos (THUMOS14 is 30 fps).
  data.frame_rate = 30.0
  return data


def test_config() -> ml_collections.ConfigDict:
  """config.test: OpenTAD's post-processing of thumos_tsn.py."""
  test = ml_collections.ConfigDict()
  # post_processing.nms: use_soft_nms=True, sigma=0.3, max_seg_num=200,
  # min_score=0.0001, multiclass=False, voting_thresh=0.95 (per window, then
  # again per video after merging the windows).
  test.nms_sigma = 0.3
  test.nms_max_seg_num = 200
  test.nms_min_score = 0.0001
  test.nms_voting_thresh = 0.95
  # Proposals kept per video for AR@AN (tal_jax's: AR@1000 needs 1000).
  test.proposal_max_seg_num = 1000
  # post_processing.external_cls: UntrimmedNetTHUMOSClassifier, topk=2.
  # Empty file: the shipped uNet_test.npy rows of the THUMOS14 test videos.
  test.classifier_file = ''
  test.classifier_topk = 2
  # roi_head.proposal_generator dscale=64: longest decoded proposal.
  test.max_duration = 64
  # Windows per inference batch (solver.test batch_size=16).
  test.batch_size = 16
  return test


def get_config(arg: str = '') -> ml_collections.ConfigDict:
  """The BMN THUMOS14 config; `arg` is '', 'tsn', 'i3d' or 'tiny'."""
  config = config_utils.base_config('bmn')
  config.data = data = data_config()
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

  config.test = test = test_config()
  # thumos_tsn.py: optimizer Adam lr=1e-4, weight_decay=1e-4; MultiStepLR
  # milestones=[5], gamma 0.1, max_epoch=8; batch_size=16; clip_grad_norm=1.
  config.train = train = config_utils.train_config(
      batch_size=16, num_epochs=8, learning_rate=1e-4, weight_decay=1e-4,
      lr_milestones=(5,), videos_per_loss=16)
  train.grad_clip_norm = 1.0

  if arg in ('', 'tiny'):
    # Embedded: a few epochs at a larger rate (tal_jax's choice for a CPU).
    train.num_epochs, train.lr_milestones = 4, (3,)
    train.learning_rate = 1e-3
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
  elif arg != '':
    raise ValueError(f"configs/bmn_thumos14.py: unknown preset '{arg}' "
                     "(use '', 'tsn', 'i3d' or 'tiny')")
  return config
