"""Feedback: true labels joined to captured predictions, counted exactly once into their windows."""
