"""tal_jax: MMAction2's temporal action localizers (BMN, BSN, SSN) in JAX/Flax.

Importing the package guards against a jaxlib 0.10.2 CPU miscompilation: XLA's
experimental YNN fusion on CPU silently computes wrong results for some fused
matmul-reductions (``jit(sum(einsum('btc,tm->bcm', x, ones)))`` at T=100,
M=1000). The flag below turns that fusion off; it only has an effect if it is set
before JAX creates its CPU backend, so ``import tal_jax`` before running any JAX
computation. ``tests/test_xla_guard.py`` keeps a jit-vs-eager regression check.
"""

import os

_YNN_OFF = '--xla_cpu_experimental_ynn_fusion_type='


def _disable_ynn_fusion() -> None:
  flags = os.environ.get('XLA_FLAGS', '')
  if 'xla_cpu_experimental_ynn_fusion_type' not in flags:
    os.environ['XLA_FLAGS'] = (flags + ' ' + _YNN_OFF).strip()


_disable_ynn_fusion()

__version__ = '0.1.0'
