"""BMN's checkpoint import (MMAction2 1.2.0 state dicts) and serving hooks.

`bmn_params_from_state_dict` maps MMAction2's `BMN.state_dict()` names onto
the Flax tree of `tal_jax.localizers.bmn.model.BMN` ('x_1d_b.0.weight' ->
params['x_1d_b_0']['kernel'], transposed to Flax layout).
"""

from typing import Any, Mapping

import numpy as np

from tal_jax.engine import model_def
from tal_jax.errors import TalError
from tal_jax.localizers.bmn import postprocess
from tal_jax.localizers.bmn import windows


# (torch module, kind, in, out, kernel, groups) per layer; widths from config.
def _bmn_layers(m: Mapping[str, Any]):
  d, h1, h2, h3 = (m['feat_dim'], m['hidden_dim_1d'], m['hidden_dim_2d'],
                   m['hidden_dim_3d'])
  n = m['num_samples']
  return [
      ('x_1d_b.0', 1, d, h1, (3,), 4), ('x_1d_b.2', 1, h1, h1, (3,), 4),
      ('x_1d_s.0', 1, h1, h1, (3,), 4), ('x_1d_s.2', 1, h1, 1, (1,), 1),
      ('x_1d_e.0', 1, h1, h1, (3,), 4), ('x_1d_e.2', 1, h1, 1, (1,), 1),
      ('x_1d_p.0', 1, h1, h1, (3,), 1), ('x_3d_p.0', 3, h1, h3, (n, 1, 1), 1),
      ('x_2d_p.0', 2, h3, h2, (1, 1), 1), ('x_2d_p.2', 2, h2, h2, (3, 3), 1),
      ('x_2d_p.4', 2, h2, h2, (3, 3), 1), ('x_2d_p.6', 2, h2, 2, (1, 1), 1),
  ]


# Buffers MMAction2 stores that are constants here (built from the config).
_BMN_BUFFERS = ('sample_mask', 'bm_mask')


def _model_fields(config):
  m = config.model if hasattr(config, 'model') else config
  return {k: m[k] for k in ('temporal_dim', 'feat_dim', 'hidden_dim_1d', 'hidden_dim_2d',
                            'hidden_dim_3d', 'num_samples')}


def bmn_params_from_state_dict(state_dict: Mapping[str, np.ndarray], config,
                               source: str = 'state dict') -> dict:
  """Maps an MMAction2 BMN state dict onto tal_jax BMN params (float32).

  Args:
    state_dict: torch names -> numpy arrays (e.g. from `load_pth`).
    config: the run config (uses config.model widths) or a mapping with the
      model fields directly.
    source: names the checkpoint in error messages.
  Returns:
    {'x_1d_b_0': {'kernel', 'bias'}, ...}, the 'params' collection of BMN.
  Raises:
    TalError: missing or unexpected keys, or a shape that the config rejects.
  """
  fields = _model_fields(config)
  layers = _bmn_layers(fields)
  expected = {f'{name}.{p}' for name, *_ in layers for p in ('weight', 'bias')}
  missing = sorted(expected - set(state_dict))
  unexpected = sorted(set(state_dict) - expected - set(_BMN_BUFFERS))
  if missing or unexpected:
    raise TalError(f'checkpoint {source}: missing keys {missing}, unexpected '
                   f'keys {unexpected}')
  t = fields['temporal_dim']
  buffer_shapes = {'sample_mask': (t, fields['num_samples'] * t * t),
                   'bm_mask': (t, t)}
  for key, shape in buffer_shapes.items():
    if key in state_dict and tuple(state_dict[key].shape) != shape:
      raise TalError(f'checkpoint {source}: {key} has shape '
                     f'{tuple(state_dict[key].shape)} but config expects {shape}')
  params = {}
  for name, _, cin, cout, kernel, groups in layers:
    w = np.asarray(state_dict[f'{name}.weight'], np.float32)
    b = np.asarray(state_dict[f'{name}.bias'], np.float32)
    for key, arr, shape in ((f'{name}.weight', w,
                             (cout, cin // groups) + kernel),
                            (f'{name}.bias', b, (cout,))):
      if arr.shape != shape:
        raise TalError(f'checkpoint {source}: {key} has shape {arr.shape} but '
                       f'config expects {shape}')
    spatial = tuple(range(2, w.ndim))
    params[name.replace('.', '_')] = {
        'kernel': np.ascontiguousarray(np.transpose(w, spatial + (1, 0))),
        'bias': b}
  return params


def import_state_dict(state_dict: Mapping[str, np.ndarray], config,
                      source: str) -> dict:
  """ModelDef.import_state_dict: {'params': ...} of an MMAction2 BMN."""
  return {'params': bmn_params_from_state_dict(state_dict, config, source)}


def serving_decode(outputs: dict[str, np.ndarray], test_config):
  """BMN outputs -> (proposals [B, K, 3] normalised, valid [B, K]); a
  THUMOS14 window config (its test has nms_sigma) decodes as OpenTAD."""
  t = test_config
  if 'nms_sigma' in t:
    return windows.decode_windows((outputs['confidence_map'],
                                   outputs['start'], outputs['end']), t)
  return postprocess.bmn_post_processing(
      outputs['confidence_map'], outputs['start'], outputs['end'],
      t.soft_nms_alpha, t.soft_nms_low_threshold, t.soft_nms_high_threshold,
      t.post_process_top_k)


SERVING = model_def.Serving(output_names=('confidence_map', 'start', 'end'),
                            curves=('start', 'end'), decode=serving_decode)
