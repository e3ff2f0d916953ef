"""What every stage uses and no stage owns: atomic writes, quiet TensorFlow imports, progress bars, peak memory."""
