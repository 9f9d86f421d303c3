"""The plumbing around the networks: files and formats that other programs read."""
