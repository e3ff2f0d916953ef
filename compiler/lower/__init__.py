"""Lowering: Keras models to deployable files, one module and one entry function per target."""
