"""Regression test for the jaxlib 0.10.2 CPU miscompilation (see tal_jax/__init__.py).

`jit(sum(einsum('btc,tm->bcm', x, ones)))` at T=100, M=1000 returned garbage with
XLA's experimental YNN fusion on; `import tal_jax` turns it off.
"""

import os
import subprocess
import sys

import numpy as np

import tal_jax  # noqa: F401
import jax
import jax.numpy as jnp

SCRIPT = """
import tal_jax, jax, jax.numpy as jnp, numpy as np
x = jnp.asarray(np.random.RandomState(0).randn(4, 100, 256).astype(np.float32))
ones = jnp.ones((100, 1000), jnp.float32)
f = lambda x: jnp.sum(jnp.einsum('btc,tm->bcm', x, ones))
print(float(jax.jit(f)(x)), float(f(x)))
"""


def _fused_sum(x):
  return jnp.sum(jnp.einsum('btc,tm->bcm', x, jnp.ones((100, 1000), x.dtype)))


def test_jit_matches_eager_in_this_process():
  x = np.random.RandomState(0).randn(4, 100, 256).astype(np.float32)
  want = np.einsum('btc,tm->bcm', x.astype(np.float64),
                   np.ones((100, 1000))).sum()
  got_jit = float(jax.jit(_fused_sum)(jnp.asarray(x)))
  got_eager = float(_fused_sum(jnp.asarray(x)))
  np.testing.assert_allclose(got_jit, want, rtol=1e-4)
  np.testing.assert_allclose(got_eager, want, rtol=1e-4)


def test_flag_is_set_by_import_in_fresh_process():
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  out = subprocess.run([sys.executable, '-c', SCRIPT], env=env, check=True,
                       capture_output=True, text=True).stdout.split()
  jitted, eager = map(float, out)
  np.testing.assert_allclose(jitted, eager, rtol=1e-4)


def test_user_flags_are_kept():
  env = dict(os.environ, XLA_FLAGS='--xla_cpu_enable_fast_math=false')
  code = 'import os, tal_jax; print(os.environ["XLA_FLAGS"])'
  out = subprocess.run([sys.executable, '-c', code], env=env, check=True,
                       capture_output=True, text=True).stdout
  assert '--xla_cpu_enable_fast_math=false' in out
  assert '--xla_cpu_experimental_ynn_fusion_type=' in out
