"""lrfc: an edge-deployment compiler for CNNs built on hybrid low-rank factorization."""

__version__ = "0.1.0"
