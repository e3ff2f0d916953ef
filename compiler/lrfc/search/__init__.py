"""The search: calibrate (capture feature maps), score (candidate ranks by similarity), select (methods and ranks).

``stage`` holds the pipeline's stages; ``calibrate``, ``scoring``, ``cache``,
``grid``, ``select`` and ``rank_rules`` the machinery they use.
"""
