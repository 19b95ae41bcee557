"""Benchmarks: our cleanup against Microsoft's SDK doing the same job, on the emulator."""
