"""Entries for evaluation harnesses (optional dependencies): ``lmms_eval``."""
