"""nnlens: a reproducible research workbook on how trained networks represent data."""
__version__ = "0.1.0"
