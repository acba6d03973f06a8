"""SSN's checkpoint import (MMAction2 0.24.1 state dicts)."""

from typing import Mapping

import jax
import numpy as np

from tal_jax.engine import model_def
from tal_jax.errors import TalError
from tal_jax.localizers.ssn import frames as ssn_frames
from tal_jax.localizers.ssn import model
from tal_jax.nn import resnet_import as tv


_SSN_HEAD_FCS = ('activity_fc', 'completeness_fc', 'regressor_fc')


def ssn_variables_from_state_dict(state_dict: Mapping[str, np.ndarray],
                                  config, source: str = 'state dict') -> dict:
  """An MMAction2 0.24.1 SSN state dict -> {'params': {'head', 'backbone'?},
  'batch_stats'?}: the head from 'cls_head.*' (FC weights transposed), and in
  frame mode the ResNet from 'backbone.*' (tal_jax.nn.resnet_import).

  Raises:
    TalError: a missing head FC or a shape the config rejects.
  """
  head = {}
  for fc in _SSN_HEAD_FCS:
    if fc == 'regressor_fc' and not config.model.use_regression:
      continue
    try:
      w, b = (state_dict[f'cls_head.{fc}.weight'],
              state_dict[f'cls_head.{fc}.bias'])
    except KeyError as e:
      raise TalError(f'checkpoint {source}: missing key {e.args[0]} for '
                     'ssn') from None
    head[fc] = {'kernel': np.asarray(w, np.float32).T,
                'bias': np.asarray(b, np.float32)}
  out = {'params': {'head': head}}
  if ssn_frames.is_frames(config):
    b = config.model.backbone
    backbone = tv.resnet_variables_from_state_dict(
        state_dict, stage_blocks=tuple(b.stage_blocks), width=b.width,
        source=source)
    out['params']['backbone'] = backbone['params']
    out['batch_stats'] = {'backbone': backbone['batch_stats']}
  _check_shapes(out['params'], config, source)
  return out


def _check_shapes(params, config, source):
  """TalError naming the first leaf whose shape the config rejects."""
  got = {model_def.leaf_name(path): tuple(x.shape)
         for path, x in jax.tree_util.tree_leaves_with_path(params)}
  want = model_def.module_param_shapes(model.build(config),
                                       model.init_inputs(config))
  for key in sorted(want):
    if key not in got:
      raise TalError(f'checkpoint {source}: no {key} for {config.model_name}')
    if got[key] != want[key]:
      raise TalError(f'checkpoint {source}: {key} has shape {got[key]} but '
                     f'the config expects {want[key]}')


def import_state_dict(state_dict: Mapping[str, np.ndarray], config,
                      source: str) -> dict:
  """ModelDef.import_state_dict: {'params': {'head', 'backbone'?},
  'batch_stats'?} of an MMAction2 0.24.1 SSN."""
  return ssn_variables_from_state_dict(state_dict, config, source)
