"""The services: what kb does, each given only the stores and services it uses (no SQL here)."""
