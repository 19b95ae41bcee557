"""Deciding, purely: the policy and its patterns, the planner's stages and the plan they produce.
No I/O, no clock, no logging; imports nothing but the standard library, RE2 and acr_core.models
and acr_core.names (tests/unit/test_imports.py holds it to that)."""
