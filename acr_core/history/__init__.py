"""Moving-tag history: each tag-to-digest transition the cleaner learns, from events and runs."""
