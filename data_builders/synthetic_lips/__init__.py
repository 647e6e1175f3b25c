"""synthetic_lips: the generated multilingual lip-reading corpus (see the builder module).

Its languages, named here (no TFDS import) for the recipe that trains on them: the
high-resource ones get many video clips, the low-resource ones few on purpose.
"""

HIGH_RESOURCE = ("en", "es", "fr")
LOW_RESOURCE = ("it", "pt")
LANGUAGES = HIGH_RESOURCE + LOW_RESOURCE
