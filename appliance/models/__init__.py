"""Local model store: import, verify and list the speech and language models."""
