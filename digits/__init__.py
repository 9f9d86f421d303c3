"""Plumbing around the networks: photos of numbers, the web app."""
