"""What a candidate costs on the target: measured latency (``latency``, ``costdb``, ``devices``) or a roofline
estimate (``roofline``); ``stage`` is the pipeline's ``price`` stage."""
