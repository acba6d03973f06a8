"""Inference: restore variables (no optimizer), batched predict, --mode=test.

`Predictor` holds what inference needs of a model (module, mesh, jitted
forward); `restore_variables` reads a checkpoint's variables onto it without
building an optimizer or a train step. `run_test` is the one `--mode=test`
start-up of every model: load the test split, restore, then the model's own
test (`ModelDef.test`) or the default below.

The default test writes, in the workdir (atomically):
- results.json: ActivityNet results format, as MMAction2's ANetMetric dumps it
  ({"version", "results": {video: [{"score", "segment": [s, e]}]}, "external_data"});
- metrics.json: AR@1, AR@5, AR@10, AR@100 (fractions) and AUC (percent).
"""

import functools
import os

import jax
import ml_collections
import numpy as np

from tal_jax import errors
from tal_jax import evaluation
from tal_jax import results_io
from tal_jax.data import activitynet
from tal_jax.data import pipeline
from tal_jax.engine import checkpointing
from tal_jax.engine import parallel
from tal_jax.engine import runlog
from tal_jax.engine.model_def import ModelDef
from tal_jax.engine.model_def import init_variables


class Predictor:
  """A model's module, device mesh and jitted data-parallel forward."""

  def __init__(self, model_def: ModelDef, config: ml_collections.ConfigDict):
    self.model_def = model_def
    self.config = config
    self.module = model_def.build(config)
    self.mesh = parallel.make_mesh()
    self.replicated = parallel.replicated(self.mesh)
    self.forward = None
    if model_def.forward is not None:
      forward = functools.partial(model_def.forward, self.module,
                                  config=config)
      self.forward = jax.jit(forward, in_shardings=(
          self.replicated, parallel.batch_sharded(self.mesh)),
                             out_shardings=self.replicated)

  def init_variables(self, rng: jax.Array) -> dict:
    """The module's initial variables, replicated on the mesh."""
    return jax.jit(functools.partial(init_variables, self.module,
                                     self.model_def, self.config),
                   out_shardings=self.replicated)(rng)

  def abstract_variables(self) -> dict:
    """Shapes and dtypes of the variables (nothing computed)."""
    return jax.eval_shape(functools.partial(
        init_variables, self.module, self.model_def, self.config),
                          jax.random.key(0))


def restore_variables(predictor: Predictor,
                      config: ml_collections.ConfigDict, workdir: str):
  """({'params', **model_state}, where) of config.checkpoint, or of the
  workdir's best checkpoint."""
  ckpt_dir, step = workdir, None
  if config.checkpoint:
    ckpt_dir, step = checkpointing.resolve_checkpoint(config.checkpoint)
  like = predictor.abstract_variables()
  params_like = like.pop('params')
  restored, where = checkpointing.restore_for_inference(
      ckpt_dir, step, params_like, predictor.replicated, config, like)
  return {'params': restored['params'], **restored['model_state']}, where


def forward_batches(predictor: Predictor, params, arrays: dict[str, np.ndarray],
                    batch_size: int, progress: bool = False):
  """Runs the model over arrays['inputs'] in order, data-parallel.

  Yields (idx [b], outputs (host numpy, b rows), host arrays of those rows);
  the last batch is padded to a fixed shape (no recompilation) and cut back.
  """
  batch_size = parallel.eval_global_batch(batch_size, predictor.mesh)
  batches = pipeline.eval_batches(len(arrays['inputs']), batch_size)
  if progress:
    from tqdm import tqdm  # pylint: disable=g-import-not-at-top
    batches = tqdm(batches, desc='inference', leave=False)
  for idx in batches:
    padded = np.concatenate([idx, np.full(batch_size - len(idx), idx[-1])])
    host = _gather(arrays, padded)
    inputs = parallel.shard_batch(
        {'x': np.asarray(host['inputs'])[parallel.host_slice(batch_size)]},
        predictor.mesh, batch_size)['x']
    outputs = jax.device_get(predictor.forward(params, inputs))
    outputs = jax.tree.map(lambda x: np.asarray(x)[:len(idx)], outputs)
    yield idx, outputs, {k: np.asarray(v)[:len(idx)] for k, v in host.items()}


def predict_split(predictor: Predictor, params, videos: activitynet.VideoSet,
                  batch_size: int, progress: bool = False,
                  arrays: dict[str, np.ndarray] | None = None
                  ) -> dict[str, np.ndarray]:
  """Proposals in seconds for every video: {name: [K, 3] (start, end, score)}.

  `arrays` are the split's eval arrays (computed from `videos` when None).
  """
  model_def, config = predictor.model_def, predictor.config
  if arrays is None:
    arrays = model_def.eval_arrays(videos, config)
  frames = videos.field('duration_frame')
  seconds = videos.field('duration_second')
  out = {}
  for idx, outputs, host in forward_batches(predictor, params, arrays,
                                            batch_size, progress):
    props, valid = model_def.decode(outputs, host, config)
    secs = model_def.to_seconds(props, frames[idx], seconds[idx])
    for j, i in enumerate(idx):
      out[videos.names[i]] = secs[j][valid[j]]
  return out


def evaluate_proposals(videos: activitynet.VideoSet,
                       proposals: dict[str, np.ndarray]) -> dict[str, float]:
  """AR@1/5/10/100 and AUC of proposals in seconds against the split's gt."""
  gt = {n: np.asarray([a['segment'] for a in r['annotations']],
                      np.float64).reshape(-1, 2)
        for n, r in zip(videos.names, videos.records)}
  return evaluation.ar_an_metrics(gt, proposals)


def _gather(arrays: dict[str, np.ndarray], idx: np.ndarray) -> dict:
  return {k: v[idx] for k, v in arrays.items()}


def proposal_test(predictor: Predictor, variables: dict,
                  videos: activitynet.VideoSet, workdir: str,
                  quiet: bool = False) -> dict[str, float]:
  """The default test: proposals of every video -> results.json and
  metrics.json (AR@AN, AUC) in the workdir."""
  config = predictor.config
  proposals = predict_split(predictor, variables['params'], videos,
                            config.test.batch_size,
                            runlog.show_progress(quiet))
  metrics = evaluate_proposals(videos, proposals)
  if jax.process_index() == 0:
    errors.write_json(os.path.join(workdir, 'results.json'),
                      results_io.proposal_results(proposals))
    errors.write_json(os.path.join(workdir, 'metrics.json'), metrics, indent=2)
  runlog.info('test: ' + runlog.format_metrics(metrics), quiet)
  return metrics


def test_startup_line(predictor: Predictor) -> str:
  """`runlog.startup_line` of --mode=test: the batch of `forward_batches` on
  config.test.batch_size, or one video on one device for a model without it
  (SSN tests video by video)."""
  config, mesh = predictor.config, predictor.mesh
  if 'batch_size' in config.test:
    batch = parallel.eval_global_batch(config.test.batch_size, mesh)
    per_device = batch // mesh.devices.size
  else:
    batch = per_device = 1
  return runlog.startup_line('test', mesh, batch, per_device,
                             runlog.compute_dtype(predictor.module))


def run_test(model_def: ModelDef, config: ml_collections.ConfigDict,
             workdir: str, quiet: bool = False) -> dict[str, float]:
  """--mode=test of every model: the test split (process 0 first: it fills a
  shared data cache), the restored variables, then `model_def.test` or
  `proposal_test`."""
  progress = runlog.show_progress(quiet)
  videos = parallel.process_0_first(
      lambda: pipeline.load_split(config, 'test', progress,
                                  model_def.uses_features), 'load_test')
  predictor = Predictor(model_def, config)
  runlog.info(test_startup_line(predictor), quiet)
  variables, where = restore_variables(predictor, config, workdir)
  runlog.info(f'restored {where}', quiet)
  test = model_def.test or proposal_test
  return test(predictor, variables, videos, workdir, quiet)
