"""The function app's logic on plain data: settings, event parsing, the coalescer, the sweep's
listing and messages, the managed identity and the three flows. `function_app.py` only converts
the worker's objects and calls `acr_core.app.handlers`; nothing here imports azure.functions."""
