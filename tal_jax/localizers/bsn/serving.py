"""What exporting BSN's networks serves (`tal_jax.tools.export`).

  TEM: features [batch, T, D] float32 -> tem_output [batch, T, 3] (action,
       start, end probabilities: what tem_results.npz holds and PGM reads).
  PEM: bsp_features [batch, proposals, 32] float32 -> iou_score [batch,
       proposals] (the predicted IoU; PEM's score multiplies it by the
       proposal's start and end scores before soft-NMS).
Neither output is a list of proposals (PGM sits between the two), so tools.infer
does not serve either workdir alone; it serves a tools.bsn_pipeline workdir (the
whole chain, tools.infer_bsn).
"""

import ml_collections

from tal_jax.engine import model_def


def pem_inputs(config: ml_collections.ConfigDict
               ) -> tuple[model_def.ServingInput, ...]:
  """PEM's exported input: BSP features [batch, proposals, feat_dim]."""
  return (model_def.ServingInput(
      'bsp_features', ('batch', 'proposals', config.model.feat_dim)),)


TEM_SERVING = model_def.Serving(output_names=('tem_output',), curves=(),
                                decode=None)

PEM_SERVING = model_def.Serving(output_names=('iou_score',), curves=(),
                                decode=None, inputs=pem_inputs)
