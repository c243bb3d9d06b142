"""nasflow: reproducible performance estimation for neural architecture search.

The library knows nothing about Snakemake, DVC or params.yaml: stages translate parameters into plain
arguments, so every algorithm here is callable from a notebook or a test.
"""

__version__ = "0.1.0"
