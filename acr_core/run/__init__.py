"""One run: gather snapshots through the client, plan with the planner, apply with the executor at
the pace the limiter allows, and report what happened. The CLI, the function app, the demo and the
benchmarks all go through `acr_core.run.service.run_cleanup`."""
