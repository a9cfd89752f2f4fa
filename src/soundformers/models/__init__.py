"""One folder per model architecture; nothing is imported here."""
