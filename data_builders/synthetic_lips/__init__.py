"""synthetic_lips: the generated multilingual lip-reading corpus (see the builder module)."""
