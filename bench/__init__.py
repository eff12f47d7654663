"""Benchmarks of MicroShop's building blocks against bare-driver baselines (`python -m bench.X`)."""
