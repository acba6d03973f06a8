"""SSN head, targets, loss and post-processing against MMAction2 0.24.1.

Goldens: tests/golden/make_ssn_golden.py (run with the 0.24.1 environment).
"""

import os

import tal_jax  # noqa: F401  (XLA flag before any JAX computation)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tal_jax import results_io
from tal_jax.localizers.ssn import losses as ssn_losses
from tal_jax.localizers.ssn import postprocess as ssn_postprocess
from tal_jax.data import ssn_videos
from tal_jax.localizers.ssn import targets as ssn_targets
from tal_jax.errors import TalError
from tal_jax.localizers.ssn import model as ssn

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden')
C = 4


def _load(name):
  return dict(np.load(os.path.join(GOLDEN, name)))


@pytest.fixture(scope='module')
def ds():
  return _load('ssn_dataset.npz')


@pytest.fixture(scope='module')
def head():
  return _load('ssn_head.npz')


@pytest.fixture(scope='module')
def videos(ds, tmp_path_factory):
  path = tmp_path_factory.mktemp('ssn') / 'ssn_proposal_list.txt'
  path.write_text(str(ds['proposal_list']))
  return ssn_videos.load_videos(results_io.read_proposal_list(str(path)))


def _params(g):
  out = {}
  for name in ('activity_fc', 'completeness_fc', 'regressor_fc'):
    out[name] = {'kernel': jnp.asarray(g[f'w_{name}_weight'].T),
                 'bias': jnp.asarray(g[f'w_{name}_bias'])}
  return out


def _close(actual, expected, rtol=1e-4, atol=1e-6):
  np.testing.assert_allclose(np.asarray(actual), expected, rtol=rtol,
                             atol=atol)


# ------------------------------------------------------------ targets


def test_loading_drops_videos_without_gt(ds, videos):
  assert [v.video_id for v in videos] == list(ds['video_ids'])


def test_pools_and_regression_targets(ds, videos):
  for i, video in enumerate(videos):
    pools = ssn_targets.assign_proposals(video)
    for pool, name in zip(pools, ('pos', 'inc', 'bg')):
      np.testing.assert_array_equal(pool.rows, ds[f'v{i}_{name}_rows'])
      _close(pool.reg, ds[f'v{i}_{name}_reg'], 1e-12, 1e-12)


def test_reg_normalize_constants(ds, videos):
  _close(ssn_targets.reg_normalize_constants(videos), ds['reg_norm_train'],
         1e-12, 1e-12)


def test_training_sample_matches_upstream_draws(ds, videos):
  # RandomState(123) replays upstream's np.random.seed(123) choice calls;
  # 'val' mode makes the frame indices deterministic.
  out = ssn_targets.sample_split(videos, np.random.RandomState(123),
                                 mode='val')
  np.testing.assert_array_equal(out['frame_inds'] + 1,
                                ds['train_frame_inds'].reshape(5, 8, 9))
  for key in ('proposal_type', 'proposal_labels'):
    np.testing.assert_array_equal(out[key], ds[f'train_{key}'])
  _close(out['proposal_scale_factor'], ds['train_proposal_scale_factor'])
  _close(out['reg_targets'], ds['train_reg_targets'])


def test_training_sample_with_generator(videos):
  rng = np.random.default_rng(0)
  out = ssn_targets.sample_split(videos, rng)
  assert out['frame_inds'].shape == (5, 8, 9)
  np.testing.assert_array_equal(out['proposal_type'][0],
                                [0, 1, 1, 1, 1, 1, 1, 2])
  assert (out['proposal_labels'][:, 7] == 0).all()
  assert (out['proposal_labels'][:, :7] > 0).all()
  assert (out['reg_targets'][:, 1:] == 0).all()
  num_frames = np.array([v.num_frames for v in videos])
  assert (out['frame_inds'] < num_frames[:, None, None]).all()
  assert (out['frame_inds'] >= 0).all()
  again = ssn_targets.sample_split(
      videos, np.random.default_rng(0), pools=ssn_targets.assign_split(videos))
  for key, value in out.items():
    np.testing.assert_array_equal(again[key], value)


def test_train_frame_jitter_stays_in_segment():
  start, end = np.array([100]), np.array([150])
  for seed in range(5):
    f = ssn_targets.proposal_frame_indices(start, end, 1000,
                                           np.random.default_rng(seed))[0]
    # starting stage [75, 99): 2 intervals of 12; course [100, 150): 5 of 10.
    assert all(75 + 12 * k <= f[k] < 75 + 12 * (k + 1) for k in range(2))
    assert all(100 + 10 * k <= f[2 + k] < 110 + 10 * k for k in range(5))


def test_empty_pools_raise():
  video = ssn_videos.SSNVideo('v', 100, np.array([[1, 10, 20]]),
                               np.zeros((0, 3), np.int64), np.zeros(0),
                               np.zeros(0), np.zeros(0))
  with pytest.raises(TalError, match='video v: no incomplete'):
    ssn_targets.sample_split([video], np.random.default_rng(0),
                             reg_norm=np.array([[0., 0.], [1., 1.]]))


def test_test_inputs(ds, videos):
  for i, video in enumerate(videos):
    t = ssn_targets.test_inputs(video)
    np.testing.assert_array_equal(t['frame_ticks'] + 1,
                                  ds[f'test{i}_frame_inds'])
    np.testing.assert_array_equal(t['proposal_tick_list'],
                                  ds[f'test{i}_proposal_tick_list'])
    _close(t['relative_proposal_list'], ds[f'test{i}_relative_proposal_list'],
           0, 0)
    _close(t['scale_factor_list'], ds[f'test{i}_scale_factor_list'], 0, 0)
  _close(ssn_targets.reg_normalize_constants(videos), ds['reg_norm_test'],
         1e-12, 1e-12)


# --------------------------------------------------------------- head


def test_init_matches_init_weights():
  module = ssn.SSNHead(num_classes=20)
  params = module.init(jax.random.key(0), jnp.zeros((8, 9, 2048)),
                       jnp.ones((8, 2)))['params']
  for name, out in (('activity_fc', 21), ('completeness_fc', 20),
                    ('regressor_fc', 40)):
    kernel = np.asarray(params[name]['kernel'])
    assert kernel.shape[1] == out
    assert abs(kernel.std() - 0.001) < 5e-5
    assert not np.asarray(params[name]['bias']).any()
  assert params['completeness_fc']['kernel'].shape[0] == 3 * 2048


def test_stpp_train_and_head_outputs(head, ds):
  x = jnp.asarray(head['x'].reshape(24, 9, 16))
  scale = jnp.asarray(ds['train_proposal_scale_factor'][:3].reshape(24, 2))
  course, stpp = ssn.stpp_train(x, scale)
  _close(course, head['course_feat'])
  _close(stpp, head['stpp_feat'])
  module = ssn.SSNHead(num_classes=C)
  act, comp, bbox = module.apply({'params': _params(head)}, x, scale)
  _close(act, head['activity'])
  _close(comp, head['completeness'])
  _close(bbox, head['bbox'])


@jax.jit
def _loss_and_grads(params, batch):
  def loss_fn(params, inputs):
    return ssn_losses.head_loss(ssn.SSNHead(num_classes=C), params,
                                dict(batch, inputs=inputs))
  return jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(
      params, batch['inputs'])


def test_losses_and_grads(head, ds):
  batch = {f'{k}': jnp.asarray(ds[f'train_{k}'][:3]) for k in
           ('proposal_type', 'proposal_labels', 'reg_targets',
            'proposal_scale_factor')}
  batch['inputs'] = jnp.asarray(head['x'].reshape(3, 8, 9, 16))
  (total, parts), grads = _loss_and_grads(_params(head), batch)
  for key in ('loss_activity', 'loss_completeness', 'loss_reg'):
    _close(parts[key], head[key])
  _close(total, head['loss_total'])
  for name in ('activity_fc', 'completeness_fc', 'regressor_fc'):
    _close(grads[0][name]['kernel'], head[f'grad_{name}_weight'].T,
           atol=1e-7)
    _close(grads[0][name]['bias'], head[f'grad_{name}_bias'], atol=1e-7)
  _close(grads[1], head['grad_x'].reshape(3, 8, 9, 16), atol=1e-8)


def test_ohem_keeps_one_incomplete_per_video():
  comp = jnp.zeros((2, 8, 3))
  comp = comp.at[:, 0, 0].set(2.0)  # positive class 1 complete: no loss
  comp = comp.at[0, 1:7, 0].set(jnp.array([0., 1., -2., .5, 3., -1.]))
  labels = jnp.ones((2, 8), jnp.int32)
  loss = ssn_losses.completeness_loss(comp, labels, 1, 6)
  # video 0 keeps max(1 + s) = 4, video 1 keeps 1; / (2 positives + 2).
  _close(loss, (4.0 + 1.0) / 4)


def test_fused_test_head(head, ds):
  params = _params(head)
  for i in (0, 2):
    act, comp, bbox = ssn.ssn_test_forward(
        params, jnp.asarray(head[f'test{i}_feats']),
        jnp.asarray(ds[f'test{i}_proposal_tick_list']),
        jnp.asarray(ds[f'test{i}_scale_factor_list']), C)
    kernel, bias = ssn.fused_test_fc(params)
    _close(head[f'test{i}_feats'] @ np.asarray(kernel) + np.asarray(bias),
           head[f'test{i}_scores'], atol=1e-5)
    _close(act, head[f'test{i}_activity'], atol=1e-5)
    _close(comp, head[f'test{i}_completeness'], atol=1e-5)
    bbox = ssn_postprocess.denormalize_bbox_preds(bbox, ds['reg_norm_test'])
    _close(bbox, head[f'test{i}_bbox_denorm'], atol=1e-5)


def test_padded_ticks_and_proposals_give_the_same_scores(head, ds):
  params = _params(head)
  feats = head['test0_feats']
  ticks = ds['test0_proposal_tick_list']
  scale = ds['test0_scale_factor_list']
  pad = lambda a, n: np.concatenate([a, np.zeros((n,) + a.shape[1:],
                                                 a.dtype)])
  act, comp, bbox = ssn.ssn_test_forward(
      params, pad(feats, 37) + 5.0 * (np.arange(len(feats) + 37) >=
                                      len(feats))[:, None],
      pad(ticks, 3), pad(scale, 3), C, num_ticks=len(feats))
  p = len(ticks)
  _close(act[:p], head['test0_activity'], atol=1e-5)
  _close(comp[:p], head['test0_completeness'], atol=1e-5)
  ref = ssn.ssn_test_forward(params, feats, ticks, scale, C)[2]
  _close(bbox[:p], ref, atol=1e-6)


def test_vmapped_padded_videos(head, ds):
  """Two test videos padded to common sizes, one vmapped call."""
  params = _params(head)
  vids = (0, 2)
  t_max = max(len(head[f'test{i}_feats']) for i in vids)
  p_max = max(len(ds[f'test{i}_proposal_tick_list']) for i in vids)
  pad = lambda a, n: np.concatenate([a, np.zeros((n - len(a),) + a.shape[1:],
                                                 a.dtype)])
  feats = np.stack([pad(head[f'test{i}_feats'], t_max) for i in vids])
  ticks = np.stack([pad(ds[f'test{i}_proposal_tick_list'], p_max)
                    for i in vids])
  scale = np.stack([pad(ds[f'test{i}_scale_factor_list'], p_max)
                    for i in vids])
  num_ticks = np.array([len(head[f'test{i}_feats']) for i in vids])
  fwd = jax.vmap(lambda f, t, s, n: ssn.ssn_test_forward(
      params, f, t, s, C, num_ticks=n))
  act, comp, _ = fwd(feats, ticks, scale, num_ticks)
  for b, i in enumerate(vids):
    p = len(ds[f'test{i}_proposal_tick_list'])
    _close(act[b, :p], head[f'test{i}_activity'], atol=1e-5)
    _close(comp[b, :p], head[f'test{i}_completeness'], atol=1e-5)


def _pyramid_params(head):
  return _params({k[4:]: v for k, v in head.items() if k.startswith('pyr_w')})


def test_pyramid_stage_config(head, ds):
  stage = (1, (1, 2), 1)
  x = jnp.asarray(head['pyr_x'].reshape(8, 9, 16))
  course, stpp = ssn.stpp_train(x, jnp.asarray(
      ds['train_proposal_scale_factor'][0]), stage)
  _close(course, head['pyr_course'])
  _close(stpp, head['pyr_stpp'])
  act, comp, bbox = ssn.ssn_test_forward(
      _pyramid_params(head), head['pyr_feats'],
      ds['test1_proposal_tick_list'], ds['test1_scale_factor_list'], C,
      stpp_stage=stage)
  _close(act, head['pyr_activity'], atol=1e-5)
  _close(comp, head['pyr_completeness'], atol=1e-5)
  _close(bbox.reshape(len(bbox), -1), head['pyr_bbox'], atol=1e-5)


def test_stpp_test_stage_outside_and_scales():
  # 4 ticks; scores = tick index in every column.
  scores = jnp.tile(jnp.arange(4.0)[:, None], (1, 1 + 1 + 3 * 1 + 3 * 2))
  ticks = jnp.array([[0, 1, 3, 4], [4, 4, 4, 5]])  # 2nd: all beyond T
  scale = jnp.array([[0.5, 2.0], [1.0, 1.0]])
  act, comp, reg = ssn.stpp_test(scores, ticks, scale, 1)
  _close(act[:, 0], [(1 + 2) / 2, 0.0])  # ticks 1..2; empty -> 0 (no NaN)
  # starting [0,1): 0 * .5; course [1,3): 1.5; ending [3,4): 3 * 2.
  _close(comp[:, 0], [0 + 1.5 + 6.0, 0.0])
  _close(reg[0, 0], [7.5, 7.5])


# ---------------------------------------------------------- post-process


@pytest.fixture(scope='module')
def post():
  return _load('ssn_post.npz')


def _all_detections(ds, post):
  out = {}
  for i, vid in enumerate(ds['video_ids']):
    out[str(vid)] = ssn_postprocess.video_detections(
        ds[f'test{i}_relative_proposal_list'], post[f'res{i}_activity'],
        post[f'res{i}_completeness'], post[f'res{i}_bbox'],
        np.array([[0., 0.], [1., 1.]]), top_k=30, nms=0.2)
  return out


def test_detections_after_nms(ds, post):
  dets = _all_detections(ds, post)
  rows = []
  for c in range(C):
    for v, vid in enumerate(ds['video_ids']):
      if c in dets[str(vid)]:
        rows += [[c, v] + list(r) for r in dets[str(vid)][c]]
  _close(np.array(rows), post['detections'], 1e-6, 1e-7)


def test_map(ds, post, videos):
  dets = _all_detections(ds, post)
  gt = ssn_targets.relative_ground_truth(videos)
  result = ssn_postprocess.thumos_map(gt, dets, C)
  for key, value in zip(post['map_keys'], post['map_values']):
    _close(result[str(key)], value, 1e-6, 1e-7)


def test_denormalize_uses_given_constants():
  out = ssn_postprocess.denormalize_bbox_preds(
      np.ones((1, 1, 2), np.float32), np.array([[0.1, -0.2], [2.0, 3.0]]))
  _close(out[0, 0], [2.1, 2.8])
