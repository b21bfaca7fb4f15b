"""Reads and small computations behind the pages (no Dash here), each tested directly."""
