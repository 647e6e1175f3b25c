"""lipjax: multilingual, low-resource lip reading in JAX."""

__version__ = "0.1.0"
