"""Layer engine: tar changesets with whiteouts, generate (diff) and apply, overlay form, compression."""
