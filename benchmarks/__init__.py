"""Measurements of the training path: throughput against the lecture loop, repeatability."""
