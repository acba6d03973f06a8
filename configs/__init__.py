"""tal_jax's config files (installed as tal_jax/configs; see
tal_jax.config_utils.configs_dir)."""
