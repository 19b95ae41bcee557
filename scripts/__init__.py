"""Developer scripts: the demo and the helpers it shares with the function tests."""
