"""Built-in target profiles: one TOML file per device, read by ``lrfc.targets``."""
