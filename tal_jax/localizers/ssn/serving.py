"""What exporting SSN serves (`tal_jax.tools.export`): the test-time head of
one video in feature mode, as `definition.video_detections` runs it.

  tick_features [ticks, D] float32   features of the frames sampled every
                                     config.test.test_interval frames
  proposal_ticks [proposals, 4] int32   (real start, start, end, real end)
                                     tick indices of each proposal
  scale_factors [proposals, 2] float32  starting / ending stage scales
  -> activity [proposals, C + 1], completeness [proposals, C], bbox_preds
     [proposals, C, 2] (normalised; without regression, no bbox_preds)

(the inputs of `ssn_targets.test_inputs`; detections then come from
`ssn_postprocess.video_detections`). Frame mode (a ResNet backbone on
rawframes) is not exported.
"""

import ml_collections

from tal_jax import errors
from tal_jax.engine import model_def
from tal_jax.localizers.ssn import frames as ssn_frames
from tal_jax.localizers.ssn import model as ssn_models


def inputs(config: ml_collections.ConfigDict
           ) -> tuple[model_def.ServingInput, ...]:
  """The head's three inputs; TalError in frame mode."""
  if ssn_frames.is_frames(config):
    raise errors.TalError("SSN in frame mode (config.data.mode='frames') "
                          'cannot be exported; feature mode can')
  return (model_def.ServingInput('tick_features',
                                 ('ticks', config.model.feat_dim)),
          model_def.ServingInput('proposal_ticks', ('proposals', 4), 'int32'),
          model_def.ServingInput('scale_factors', ('proposals', 2)))


def forward(module, params, tick_features, proposal_ticks, scale_factors,
            config: ml_collections.ConfigDict):
  """(activity, completeness, bbox_preds or None) of one video's proposals."""
  del module
  m = config.model
  return ssn_models.ssn_test_forward(
      params['head'], tick_features, proposal_ticks, scale_factors,
      m.num_classes, ssn_models.stage(config), m.use_regression)


SERVING = model_def.Serving(
    output_names=('activity', 'completeness', 'bbox_preds'), curves=(),
    decode=None, inputs=inputs, forward=forward)
