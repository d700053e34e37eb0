"""Evaluation: verification and identification metrics, protocols and reports."""
