"""Timing deployed artifacts: ``stage`` is the build's original-vs-compressed benchmark."""
