"""The deletion ledger: an append-only record of every action a run applies (or plans, dry)."""
