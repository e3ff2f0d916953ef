"""The report stage and its renderings: ``stage`` (the build's report.json document and files),
``text`` (terminal summary), ``html`` (report.html), ``plot`` (the Pareto PNG), ``files`` (writing them),
``fmt`` (formatting they share). Every renderer reads a report dict and nothing else.
"""
